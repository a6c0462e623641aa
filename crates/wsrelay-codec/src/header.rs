//! Frame headers: parsing from a byte slice without allocation, and encoding into a fixed buffer.

use crate::ProtocolError;

/// The longest possible header: 2 fixed bytes, 8 length bytes, 4 masking-key bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// Longest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Bit of RSV1 in the first header byte (used by permessage-deflate, RFC 7692).
pub const RSV1: u8 = 0x40;
/// Bit of RSV2 in the first header byte.
pub const RSV2: u8 = 0x20;
/// Bit of RSV3 in the first header byte.
pub const RSV3: u8 = 0x10;

/// Bit `n` set when opcode `n` is defined: 0x0-0x2 and 0x8-0xA.
const VALID_OPCODES: u16 = 0b0000_0111_0000_0111;

/// The rule the first two header bytes break, checked in the order the RFC lists them.
#[cold]
#[inline(never)]
fn first_error(b0: u8, b1: u8, config: ParseConfig) -> ProtocolError {
    let opcode = match OpCode::from_u8(b0 & 0x0F) {
        Ok(op) => op,
        Err(e) => return e,
    };
    let forbidden = b0 & (RSV1 | RSV2 | RSV3) & !config.allowed_rsv;
    if forbidden != 0 {
        return ProtocolError::ReservedBits(forbidden >> 4);
    }
    match (config.role, b1 & 0x80 != 0) {
        (Role::Server, false) => return ProtocolError::UnmaskedClientFrame,
        (Role::Client, true) => return ProtocolError::MaskedServerFrame,
        _ => {}
    }
    debug_assert!(opcode.is_control());
    if b0 & 0x80 == 0 {
        ProtocolError::FragmentedControlFrame
    } else {
        ProtocolError::ControlFrameTooLong(u64::from(b1 & 0x7F))
    }
}

/// A frame's opcode: the non-reserved values of RFC 6455 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// A later fragment of a fragmented message.
    Continuation = 0x0,
    /// First frame of a text message.
    Text = 0x1,
    /// First frame of a binary message.
    Binary = 0x2,
    /// Close control frame.
    Close = 0x8,
    /// Ping control frame.
    Ping = 0x9,
    /// Pong control frame.
    Pong = 0xA,
}

impl OpCode {
    /// Decodes the 4-bit opcode field; reserved values are a protocol error.
    #[inline]
    pub fn from_u8(value: u8) -> Result<OpCode, ProtocolError> {
        Ok(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// Control frames (close, ping, pong) may interleave with fragments and carry at most 125 bytes.
    #[inline]
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }

    /// Text, binary or continuation: the frames that carry message data.
    #[inline]
    pub fn is_data(self) -> bool {
        !self.is_control()
    }
}

/// Whose frames a parser reads, which fixes the masking rule of RFC 6455 §5.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We are the server: frames come from a client and must be masked.
    Server,
    /// We are the client: frames come from a server and must not be masked.
    Client,
}

/// What the parser enforces: the reader's role and the RSV bits a negotiated extension allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParseConfig {
    /// Our role, which decides whether frames must be masked.
    pub role: Role,
    /// RSV bits allowed on frames, as a mask of [`RSV1`], [`RSV2`], [`RSV3`]; 0 when no extension is negotiated.
    pub allowed_rsv: u8,
}

impl ParseConfig {
    /// Strict RFC 6455 rules for `role` with no extension negotiated.
    pub const fn new(role: Role) -> ParseConfig {
        ParseConfig {
            role,
            allowed_rsv: 0,
        }
    }

    /// Allows the given RSV bits (e.g. [`RSV1`] after permessage-deflate was negotiated).
    pub const fn with_allowed_rsv(mut self, bits: u8) -> ParseConfig {
        self.allowed_rsv = bits & (RSV1 | RSV2 | RSV3);
        self
    }
}

/// The outcome of [`FrameHeader::parse`] when the bytes do not break the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// At least this many more bytes are needed before the header can be decoded.
    Incomplete(usize),
    /// A header and the number of bytes it occupied at the start of the input.
    Complete(FrameHeader, usize),
}

/// A decoded frame header: everything before the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// RSV1-3 as they stand in the first byte (mask with [`RSV1`] etc.).
    pub rsv: u8,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes (at most 2^63 - 1).
    pub payload_len: u64,
}

impl FrameHeader {
    /// A final, unmasked frame with no RSV bits: the common case for frames we build ourselves.
    pub const fn new(opcode: OpCode, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Parses a header from the start of `buf` and checks it against `config`.
    ///
    /// Returns how many more bytes are needed, or the header with its encoded length, or the rule broken.
    /// Errors are reported as early as the bytes allow: a reserved opcode fails on the first two bytes.
    ///
    /// ```
    /// use wsrelay_codec::{FrameHeader, OpCode, Parse, ParseConfig, Role};
    /// // A masked "Hi" text frame from a client.
    /// let bytes = [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2];
    /// let Parse::Complete(h, len) = FrameHeader::parse(&bytes, ParseConfig::new(Role::Server))? else { panic!() };
    /// assert_eq!((h.opcode, h.payload_len, len), (OpCode::Text, 2, 6));
    /// # Ok::<(), wsrelay_codec::ProtocolError>(())
    /// ```
    #[inline(always)]
    pub fn parse(buf: &[u8], config: ParseConfig) -> Result<Parse, ProtocolError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(Parse::Incomplete(2 - buf.len())),
        };
        // One combined check keeps the valid path short; the cold path names the rule broken.
        let opcode_bits = b0 & 0x0F;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        let is_control = opcode_bits & 0x08 != 0;
        let bad = (VALID_OPCODES >> opcode_bits) & 1 == 0
            || b0 & (RSV1 | RSV2 | RSV3) & !config.allowed_rsv != 0
            || masked != (config.role == Role::Server)
            || (is_control && (b0 & 0x80 == 0 || len7 > 125));
        if bad {
            return Err(first_error(b0, b1, config));
        }
        let opcode = match opcode_bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            _ => OpCode::Pong,
        };
        let len_bytes = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(Parse::Incomplete(header_len - buf.len()));
        }
        let payload_len = match len7 {
            126 => {
                let n = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
                if n < 126 {
                    return Err(ProtocolError::NonMinimalLength(n));
                }
                n
            }
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&buf[2..10]);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(ProtocolError::LengthTopBitSet);
                }
                if n <= 0xFFFF {
                    return Err(ProtocolError::NonMinimalLength(n));
                }
                n
            }
            n => u64::from(n),
        };
        let mask = if masked {
            let at = 2 + len_bytes;
            Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
        } else {
            None
        };
        Ok(Parse::Complete(
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv: b0 & (RSV1 | RSV2 | RSV3),
                opcode,
                mask,
                payload_len,
            },
            header_len,
        ))
    }

    /// Number of bytes [`FrameHeader::encode`] writes for this header.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes the header (minimal length encoding) into `buf` and returns the bytes used.
    ///
    /// The caller is responsible for a sensible header: a payload length of 2^63 or more is
    /// encoded with its top bit cleared, which no parser would accept otherwise.
    ///
    /// ```
    /// use wsrelay_codec::{FrameHeader, OpCode};
    /// let mut buf = [0u8; 14];
    /// assert_eq!(FrameHeader::new(OpCode::Binary, 300).encode(&mut buf), &[0x82, 126, 1, 44]);
    /// ```
    #[inline]
    pub fn encode<'a>(&self, buf: &'a mut [u8; MAX_HEADER_LEN]) -> &'a [u8] {
        buf[0] = (u8::from(self.fin) << 7) | (self.rsv & (RSV1 | RSV2 | RSV3)) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.payload_len {
            n @ 0..=125 => {
                buf[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                buf[1] = mask_bit | 126;
                buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                buf[1] = mask_bit | 127;
                buf[2..10].copy_from_slice(&(n & (u64::MAX >> 1)).to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            buf[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        &buf[..at]
    }
}

/// Appends a whole frame to `out`: `header` (its length set from `payload`), then the payload,
/// masked with the header's key if it has one.
///
/// For frames built outside the hot path (a server's replies, tests); the relay itself never
/// builds frames this way.
///
/// ```
/// use wsrelay_codec::{write_frame, FrameHeader, OpCode};
/// let mut out = Vec::new();
/// write_frame(&mut out, FrameHeader::new(OpCode::Text, 0), b"hi");
/// assert_eq!(out, [0x81, 2, b'h', b'i']);
/// ```
pub fn write_frame(out: &mut Vec<u8>, header: FrameHeader, payload: &[u8]) {
    let header = FrameHeader {
        payload_len: payload.len() as u64,
        ..header
    };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    out.extend_from_slice(header.encode(&mut hbuf));
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = header.mask {
        crate::apply_mask(&mut out[start..], key, 0);
    }
}
