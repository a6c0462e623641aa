//! A built-in WebSocket echo server: the demo upstream and a test peer.
//!
//! It checks the client's frames with the relay's own [`Forwarder`] and echoes each frame as it
//! arrives (same opcode, same fragmentation, unmasked), streaming payloads in chunks; pings get
//! pongs and a close gets its close echoed.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsrelay_codec::{
    apply_mask, write_frame, CloseFrame, FrameHeader, OpCode, Parse, ParseConfig, Role,
    MAX_HEADER_LEN,
};
use wsrelay_handshake::{parse_upgrade_request, write_switching_protocols, Limits};

use crate::head::{read_head, HeadError};
use wsrelay_relay::forwarder::Event;
use wsrelay_relay::{Forwarder, ForwarderConfig};

/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;

/// Binds an echo server on `addr` and serves it on a background task; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(local)
}

/// Accepts connections on `listener` forever, echoing each on its own task.
pub async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    if let Err(e) = echo_connection(stream).await {
                        tracing::debug!(error = %e, "echo connection ended with an error");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "echo server accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs the handshake and the echo loop on one connection.
pub async fn echo_connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(CHUNK);
    let limits = Limits::default();
    let parse = |b: &[u8]| parse_upgrade_request(b, &limits);
    let (request, consumed) = match read_head(&mut stream, &mut buf, parse).await {
        Ok(((_, request), consumed)) => (request, consumed),
        Err(HeadError::Closed) => return Ok(()),
        Err(HeadError::Io(e)) => return Err(e),
        Err(HeadError::Parse(e)) => {
            let mut out = Vec::new();
            e.write_response(&mut out);
            return stream.write_all(&out).await;
        }
    };
    let mut response = Vec::new();
    let protocol = request.protocols.first().map(String::as_str);
    write_switching_protocols(&mut response, &request.accept(), protocol, None, &[]);
    stream.write_all(&response).await?;
    // The head's buffer becomes the frame buffer, with what was pipelined behind the head.
    let filled = buf.len() - consumed;
    buf.drain(..consumed);
    buf.resize(CHUNK.max(filled), 0);
    echo_frames(&mut stream, buf, filled).await
}

/// Echoes frames until a close or a violation; `buf[..filled]` holds bytes already read.
async fn echo_frames(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    mut filled: usize,
) -> io::Result<()> {
    let mut checker = Forwarder::new(ForwarderConfig::new(Role::Server));
    let mut reframer = Reframer::default();
    let mut out = Vec::with_capacity(CHUNK + MAX_HEADER_LEN);
    loop {
        let ready = if checker.at_frame_boundary() {
            ready_to_echo(&buf[..filled], buf.len())
        } else {
            filled
        };
        if ready > 0 {
            let step = checker.process(&buf[..ready]);
            out.clear();
            let done = reframer.echo(&mut buf[..step.forward], &mut out);
            if let Some(Event::Violation(v)) = step.event {
                if !step.mid_frame {
                    push_close(&mut out, v.close_code(), &v.to_string());
                }
            }
            stream.write_all(&out).await?;
            if done || step.event.is_some() {
                stream.shutdown().await?;
                return drain(stream, &mut buf).await;
            }
            buf.copy_within(step.consumed..filled, 0);
            filled -= step.consumed;
            if step.consumed > 0 {
                continue;
            }
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    }
}

/// How many of the buffered bytes to echo now: the first frame once it is whole, so that no
/// echo starts for a frame that may still turn out invalid (a close could not follow a
/// half-sent frame). Frames larger than the buffer cannot be held and are streamed.
fn ready_to_echo(buffered: &[u8], capacity: usize) -> usize {
    match FrameHeader::parse(buffered, ParseConfig::new(Role::Server)) {
        Ok(Parse::Complete(header, len)) => {
            let frame_len = (len as u64).saturating_add(header.payload_len);
            if frame_len <= buffered.len() as u64 {
                frame_len as usize
            } else if frame_len > capacity as u64 {
                buffered.len()
            } else {
                0
            }
        }
        Ok(Parse::Incomplete(_)) => 0,
        // The checker names the rule broken.
        Err(_) => buffered.len(),
    }
}

/// Reads until the peer hangs up, so our close does not turn into a reset.
async fn drain(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let wait = async {
        while stream.read(buf).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
    Ok(())
}

/// Turns checked client frames into the echo's unmasked frames.
#[derive(Default)]
struct Reframer {
    /// Remaining payload of the data frame being echoed, and its masking position.
    payload: Option<(u64, Option<[u8; 4]>, u64)>,
}

impl Reframer {
    /// Echoes the checked bytes `input` into `out`; true once a close was echoed.
    fn echo(&mut self, input: &mut [u8], out: &mut Vec<u8>) -> bool {
        let mut pos = 0;
        while pos < input.len() {
            if let Some((remaining, mask, offset)) = self.payload {
                let take = remaining.min((input.len() - pos) as u64) as usize;
                let chunk = &mut input[pos..pos + take];
                if let Some(key) = mask {
                    apply_mask(chunk, key, offset);
                }
                out.extend_from_slice(chunk);
                pos += take;
                let remaining = remaining - take as u64;
                self.payload = (remaining > 0).then_some((remaining, mask, offset + take as u64));
                continue;
            }
            // The checker passed these bytes, so every header here is complete and valid.
            let Ok(Parse::Complete(header, len)) =
                FrameHeader::parse(&input[pos..], ParseConfig::new(Role::Server))
            else {
                return true;
            };
            pos += len;
            let reply = FrameHeader {
                mask: None,
                ..header
            };
            if header.opcode.is_control() {
                let end = pos + header.payload_len as usize;
                let payload = &mut input[pos..end];
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                pos = end;
                match header.opcode {
                    OpCode::Ping => push_frame(out, OpCode::Pong, payload),
                    OpCode::Close => {
                        // Already validated by the checker: echo code and reason as received.
                        push_frame(out, OpCode::Close, payload);
                        return true;
                    }
                    _ => {}
                }
                continue;
            }
            let mut hbuf = [0u8; MAX_HEADER_LEN];
            out.extend_from_slice(reply.encode(&mut hbuf));
            if header.payload_len > 0 {
                self.payload = Some((header.payload_len, header.mask, 0));
            }
        }
        false
    }
}

fn push_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    write_frame(out, FrameHeader::new(opcode, 0), payload);
}

fn push_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut pbuf = [0u8; 125];
    let payload = CloseFrame::encode(code, reason, &mut pbuf);
    push_frame(out, OpCode::Close, payload);
}
