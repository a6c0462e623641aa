//! Relay target: arbitrary bytes through the relay's per-direction state machine.

use wsrelay_codec::{
    is_valid_close_code, FrameHeader, OpCode, Parse, ParseConfig, Role, MAX_HEADER_LEN, RSV1,
};
use wsrelay_relay::forwarder::Event;
use wsrelay_relay::{Forwarder, ForwarderConfig};

/// The relay's buffer bound in this target: the pump never holds more unconsumed bytes.
const BUFFER: usize = 512;

/// Feeds bytes to a [`Forwarder`] in data-chosen chunks, exactly as the relay's pump does
/// (unconsumed bytes are kept and passed again with the next chunk), and checks:
/// forward <= consumed <= input; unconsumed bytes never exceed the buffer bound; the forwarded
/// stream is a valid frame sequence for the reader's role (complete, except a final frame cut
/// by a violation or by the end of input); every close has a valid code; the frame count
/// matches the headers forwarded; nothing is forwarded after an event.
pub fn relay_forwarder(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let Some((&chunking, input)) = rest.split_first() else {
        return;
    };
    let role = if knobs & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let config = ForwarderConfig {
        role,
        allowed_rsv: if knobs & 2 != 0 { RSV1 } else { 0 },
        max_frame_size: if knobs & 4 != 0 { 64 } else { u64::MAX },
        max_message_size: if knobs & 8 != 0 { 100 } else { u64::MAX },
        validate_utf8: knobs & 16 == 0,
    };
    let mut forwarder = Forwarder::new(config);
    let mut pending: Vec<u8> = Vec::new();
    let mut output: Vec<u8> = Vec::new();
    let mut frames = 0u64;
    let mut ended = false;
    let mut last_mid_frame = false;
    let chunk = usize::from(chunking % 64) + 1;
    for piece in input.chunks(chunk) {
        pending.extend_from_slice(piece);
        let step = forwarder.process(&pending);
        assert!(step.forward <= step.consumed && step.consumed <= pending.len());
        if ended {
            assert_eq!(step.forward, 0, "forwarded after the stream ended");
            continue;
        }
        output.extend_from_slice(&pending[..step.forward]);
        frames += step.frames;
        last_mid_frame = step.mid_frame;
        pending.drain(..step.consumed);
        // What stays unconsumed is at most a header or a control frame: it fits any relay buffer.
        assert!(
            pending.len() <= BUFFER.max(MAX_HEADER_LEN + 125),
            "{} bytes held",
            pending.len()
        );
        match step.event {
            Some(Event::Close(close)) => {
                assert!(close.code().is_none_or(is_valid_close_code));
                assert!(close.as_bytes().len() != 1);
                ended = true;
            }
            Some(Event::Violation(v)) => {
                assert!(matches!(v.close_code(), 1002 | 1007 | 1009));
                ended = true;
            }
            None => {}
        }
        if ended {
            assert!(forwarder.is_done());
        }
    }
    check_frame_sequence(&output, role, config.allowed_rsv, frames, last_mid_frame);
}

/// The forwarded bytes parse as frames; only the last may be cut short, and only mid-payload.
fn check_frame_sequence(output: &[u8], role: Role, allowed_rsv: u8, frames: u64, mid_frame: bool) {
    let config = ParseConfig::new(role).with_allowed_rsv(allowed_rsv);
    let mut at = 0usize;
    let mut seen = 0u64;
    let mut open_message = false;
    while at < output.len() {
        let (h, n) = match FrameHeader::parse(&output[at..], config) {
            Ok(Parse::Complete(h, n)) => (h, n),
            other => panic!("forwarded bytes at {at} are not a frame header: {other:?}"),
        };
        seen += 1;
        match h.opcode {
            OpCode::Continuation => assert!(open_message, "continuation without a message"),
            OpCode::Text | OpCode::Binary => assert!(!open_message, "interleaved message"),
            _ => assert!(h.payload_len <= 125),
        }
        if !h.opcode.is_control() {
            open_message = !h.fin;
        }
        let end = at as u64 + n as u64 + h.payload_len;
        if end > output.len() as u64 {
            assert!(mid_frame, "a cut frame must leave the stream mid-frame");
            break;
        }
        at = end as usize;
    }
    assert_eq!(
        seen, frames,
        "frame count differs from the headers forwarded"
    );
}
