//! Bytes on the wire, written independently of the code under test: frames of any shape (valid or
//! not), a tolerant frame reader, and both sides of the opening handshake.

use base64::Engine;
use sha1::{Digest, Sha1};

/// Opcodes by name (RFC 6455 §5.2).
pub mod op {
    /// Continuation frame.
    pub const CONT: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close frame.
    pub const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub const PING: u8 = 0x9;
    /// Pong frame.
    pub const PONG: u8 = 0xA;
}

/// The masking key the driver uses when it plays the client.
pub const MASK_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How the payload length is written; `Minimal` is what the RFC requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenForm {
    /// The shortest encoding (RFC 6455 §5.2 requires it).
    Minimal,
    /// Always the 16-bit form (non-minimal for lengths below 126).
    Force16,
    /// Always the 64-bit form (non-minimal for lengths below 65536).
    Force64,
}

/// One frame to put on the wire, valid or not.
#[derive(Debug, Clone)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1..RSV3 as a 3-bit number (RSV1 = 4).
    pub rsv: u8,
    /// The 4-bit opcode, reserved ones included.
    pub opcode: u8,
    /// Unmasked payload.
    pub payload: Vec<u8>,
    /// Masking key; `None` sends the frame unmasked.
    pub mask: Option<[u8; 4]>,
    /// Length encoding.
    pub len_form: LenForm,
}

impl Frame {
    /// A frame from the client side: masked with [`MASK_KEY`].
    pub fn client(opcode: u8, fin: bool, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            fin,
            rsv: 0,
            opcode,
            payload: payload.into(),
            mask: Some(MASK_KEY),
            len_form: LenForm::Minimal,
        }
    }

    /// A frame from the server side: unmasked.
    pub fn server(opcode: u8, fin: bool, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            mask: None,
            ..Frame::client(opcode, fin, payload)
        }
    }

    /// Sets the RSV bits.
    pub fn rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv;
        self
    }

    /// Sets or removes the mask.
    pub fn mask(mut self, mask: Option<[u8; 4]>) -> Frame {
        self.mask = mask;
        self
    }

    /// Sets the length encoding.
    pub fn len_form(mut self, form: LenForm) -> Frame {
        self.len_form = form;
        self
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len() as u64;
        let mut out = Vec::with_capacity(self.payload.len() + 14);
        out.push(((self.fin as u8) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 0x0f));
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let form = match self.len_form {
            LenForm::Minimal if len < 126 => 0,
            LenForm::Minimal if len < 65536 => 16,
            LenForm::Minimal => 64,
            LenForm::Force16 if len < 65536 => 16,
            LenForm::Force16 | LenForm::Force64 => 64,
        };
        match form {
            0 => out.push(mask_bit | len as u8),
            16 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// The payload of a close frame with `code` and `reason`.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// A frame read off the wire, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFrame {
    /// FIN bit.
    pub fin: bool,
    /// RSV bits as a 3-bit number.
    pub rsv: u8,
    /// Opcode.
    pub opcode: u8,
    /// Whether the frame was masked.
    pub masked: bool,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

/// Reads one frame from the front of `buf`: `Ok(None)` when more bytes are needed, the frame and
/// its length otherwise. Frames the driver cannot represent (a length over `max`) are errors.
pub fn read_frame(buf: &[u8], max: u64) -> Result<Option<(ReadFrame, usize)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() < 4 => return Ok(None),
        126 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() < 10 => return Ok(None),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (n as u64, 2),
    };
    if len > max {
        return Err(format!(
            "frame of {len} bytes is larger than the driver accepts"
        ));
    }
    let key = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let mut k = [0u8; 4];
        k.copy_from_slice(&buf[at..at + 4]);
        at += 4;
        Some(k)
    } else {
        None
    };
    let end = at + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let mut payload = buf[at..end].to_vec();
    if let Some(k) = key {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= k[i % 4]);
    }
    let frame = ReadFrame {
        fin: buf[0] & 0x80 != 0,
        rsv: (buf[0] >> 4) & 7,
        opcode: buf[0] & 0x0f,
        masked,
        payload,
    };
    Ok(Some((frame, end)))
}

/// Whether `bytes`, read as a sequence of frames from its start, holds a close frame (walks the
/// headers only; stops at the first incomplete frame).
pub fn holds_close(bytes: &[u8]) -> bool {
    let mut at = 0usize;
    while bytes.len() >= at + 2 {
        let (b0, b1) = (bytes[at], bytes[at + 1]);
        if b0 & 0x0f == op::CLOSE {
            return true;
        }
        let (len, mut head) = match b1 & 0x7f {
            126 if bytes.len() >= at + 4 => {
                (u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as u64, 4)
            }
            127 if bytes.len() >= at + 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes[at + 2..at + 10]);
                (u64::from_be_bytes(b), 10)
            }
            126 | 127 => return false,
            n => (n as u64, 2),
        };
        if b1 & 0x80 != 0 {
            head += 4;
        }
        let Some(next) = (at as u64).checked_add(head + len) else {
            return false;
        };
        if next > bytes.len() as u64 {
            return false;
        }
        at = next as usize;
    }
    false
}

/// The `Sec-WebSocket-Accept` value for `key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The key the driver sends as a client (any 16 bytes, base64).
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A client upgrade request for `path` on `host`.
pub fn upgrade_request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A response head parsed from the front of a buffer.
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// The `Sec-WebSocket-Accept` header, if any.
    pub accept: Option<String>,
    /// Bytes of the head, so what follows can be kept.
    pub len: usize,
}

/// Parses a response head: `Ok(None)` when incomplete.
pub fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => {
            let accept = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            Ok(Some(ResponseHead {
                status: response.code.unwrap_or(0),
                accept,
                len,
            }))
        }
        Err(e) => Err(format!("bad response head: {e}")),
    }
}

/// A request head parsed from the front of a buffer (the driver as upstream).
pub struct RequestHead {
    /// The request target.
    pub path: String,
    /// The `Sec-WebSocket-Key` header.
    pub key: String,
    /// Bytes of the head.
    pub len: usize,
}

/// Parses an upgrade request head: `Ok(None)` when incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => {
            let key = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .ok_or("upgrade request without Sec-WebSocket-Key")?;
            Ok(Some(RequestHead {
                path: request.path.unwrap_or("/").to_owned(),
                key,
                len,
            }))
        }
        Err(e) => Err(format!("bad request head: {e}")),
    }
}

/// The 101 response the driver sends as upstream.
pub fn switching_protocols(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_close_behind_other_frames() {
        let bytes = [
            Frame::client(op::TEXT, true, vec![1u8; 300]).encode(),
            Frame::client(op::CLOSE, true, close_payload(1000, b"")).encode(),
        ]
        .concat();
        assert!(holds_close(&bytes));
        assert!(!holds_close(&bytes[..300]));
        assert!(!holds_close(&Frame::server(op::PING, true, "x").encode()));
    }

    #[test]
    fn rfc_accept_vector() {
        assert_eq!(accept_key(CLIENT_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn encode_then_read_every_length_form() {
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            for form in [LenForm::Minimal, LenForm::Force16, LenForm::Force64] {
                if form == LenForm::Force16 && len > 65535 {
                    continue;
                }
                let frame = Frame::client(op::BINARY, true, vec![7u8; len]).len_form(form);
                let bytes = frame.encode();
                let (read, used) = read_frame(&bytes, u64::MAX).unwrap().unwrap();
                assert_eq!(used, bytes.len());
                assert_eq!(read.payload, frame.payload);
                assert!(read.masked && read.fin && read.opcode == op::BINARY);
                assert_eq!(
                    read_frame(&bytes[..bytes.len() - 1], u64::MAX).unwrap(),
                    None
                );
            }
        }
    }
}
