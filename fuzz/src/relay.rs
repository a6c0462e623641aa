//! Relay fuzz body: arbitrary bytes through the relay's per-direction state machine
//! ([`Forwarder`]), fed in data-chosen chunks the way the relay's pump feeds it, with the
//! forwarded stream, the step fields and the events checked against independent models.

use wsrelay_codec::{
    apply_mask, is_valid_close_code, CloseFrame, FrameHeader, OpCode, Parse, ParseConfig,
    ProtocolError, Role, RSV1,
};
use wsrelay_relay::forwarder::{Event, Step, MAX_CONTROL_FRAME};
use wsrelay_relay::{Forwarder, ForwarderConfig, Remask, Violation};

/// The relay's state machine over one direction of traffic.
///
/// Input layout: byte 0 picks the configuration (bit 0 role: a client's masked frames or an
/// upstream's unmasked ones; bit 1 RSV1 allowed; bit 2 UTF-8 checking off; bits 3-4 the frame
/// size limit, none/0/20/200; bits 5-6 the message size limit, none/0/50/300). The low two bits
/// of byte 1 say how many chunk sizes follow (1-4, cycled; 0 feeds no new bytes), its bits 2-3
/// the re-masking mode (never, auto, always, auto). The rest is the peer's byte stream.
///
/// The stream is fed as the pump does: unconsumed bytes are kept and passed again in front of
/// the next chunk, `consumed` bytes are dropped, `forward` bytes are appended to the output.
/// Checked:
/// - per step: `forward <= consumed <= input`, and `forward == consumed` unless a violation;
///   `frames` equals the headers in the forwarded bytes; `mid_frame` is true exactly when the
///   output ends inside a frame; without an event the unconsumed rest is shorter than a control
///   frame, is empty when mid-frame, and feeding it again does nothing, and `at_frame_boundary`,
///   `payload_remaining` and `in_message` agree with the output;
/// - the output: a sequence of frames that parse for the same role and RSV bits, all complete
///   except a last one the stream is still inside; fragments in order, RSV1 only on a message's
///   first frame, control frames of at most 125 bytes, size limits kept, complete text messages
///   valid UTF-8 (a cut one a valid prefix) when checked, close payloads valid, nothing after a
///   close;
/// - events: a close event carries a valid code (or none) and is the output's last frame; a
///   violation maps to 1002, 1007 or 1009; after any event nothing more is forwarded;
/// - chunking does not change decisions: the whole stream in one call gives the same event, and
///   exactly what a plain whole-buffer reference reader (written from RFC 6455) accepts; the
///   chunked run forwards the same bytes, plus only the start of the offending frame when a
///   violation is found in a frame that was already partly forwarded;
/// - re-masking (the chunked run re-masks in place as the pump does): the frames forwarded
///   carry the same headers and unmasked payloads as the whole-stream run's, whatever the
///   chunking; nothing is re-masked under `never` or towards a client, everything under
///   `always`.
pub fn relay_forwarder(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let Some((&plan, rest)) = rest.split_first() else {
        return;
    };
    let size_count = usize::from(plan & 3) + 1;
    if rest.len() < size_count {
        return;
    }
    let (sizes, input) = rest.split_at(size_count);
    let config = ForwarderConfig {
        role: if knobs & 1 == 0 {
            Role::Server
        } else {
            Role::Client
        },
        allowed_rsv: if knobs & 2 != 0 { RSV1 } else { 0 },
        validate_utf8: knobs & 4 == 0,
        max_frame_size: [None, Some(0), Some(20), Some(200)][usize::from(knobs >> 3 & 3)],
        max_message_size: [None, Some(0), Some(50), Some(300)][usize::from(knobs >> 5 & 3)],
        remask: [Remask::Never, Remask::Auto, Remask::Always, Remask::Auto]
            [usize::from(plan >> 2 & 3)],
    };

    let expected = reference(input, &config);

    // The whole stream in one call.
    let mut whole = Forwarder::new(config);
    let mut whole_out = OutputCheck::new(&config);
    let step = whole.process(input);
    check_step(&step, input, &mut whole_out);
    assert_eq!(
        step.forward, expected.forward,
        "forwarded prefix differs from the reference"
    );
    assert_same_event(&step.event, &expected.event);
    whole_out.check_event(&step.event);
    whole_out.finish();
    after_event(&mut whole, &step, &input[step.consumed..]);

    // The same stream in data-chosen chunks.
    let chunked = feed_in_chunks(input, sizes, config);
    assert_same_event(&chunked.event, &expected.event);
    let extra = chunked
        .forwarded
        .checked_sub(expected.forward)
        .expect("the chunked run forwarded less than the whole-stream run");
    if extra > 0 {
        // Only a violation inside a frame that was partly forwarded can add bytes: the start
        // of that one frame.
        assert!(
            matches!(chunked.event, Some(Event::Violation(_))) && chunked.last_mid_frame,
            "chunked run forwarded {extra} bytes more without a violation mid-frame"
        );
        assert_eq!(chunked.frames, step.frames + 1);
    } else {
        assert_eq!(chunked.frames, step.frames);
    }
    // Re-masked or not, the same frames went out: same headers, same unmasked payloads.
    let common = &chunked.output[..expected.forward];
    assert_eq!(
        unmasked(common, whole_out.parse),
        unmasked(&whole_out.out, whole_out.parse),
        "re-masking changed what the frames say"
    );
    let remasks = config.role == Role::Server && config.remask != Remask::Never;
    match (remasks, config.remask) {
        (false, _) => assert_eq!(chunked.remasked, 0, "re-masked without being asked"),
        (true, Remask::Always) => assert_eq!(chunked.remasked, chunked.frames),
        (true, _) => assert!(chunked.remasked <= chunked.frames),
    }
}

/// A frame stream with every frame unmasked and its key zeroed: what the frames say, whoever
/// masked them. A frame cut short at the end keeps its prefix.
fn unmasked(stream: &[u8], parse: ParseConfig) -> Vec<u8> {
    let mut out = stream.to_vec();
    let mut at = 0;
    while at < out.len() {
        let Ok(Parse::Complete(h, n)) = FrameHeader::parse(&out[at..], parse) else {
            panic!("forwarded bytes at {at} do not start a valid frame");
        };
        let end = (at + n)
            .saturating_add(h.payload_len as usize)
            .min(out.len());
        if let Some(key) = h.mask {
            apply_mask(&mut out[at + n..end], key, 0);
            out[at + n - 4..at + n].fill(0);
        }
        at = end;
    }
    out
}

/// What feeding a stream in chunks produced.
struct Chunked {
    forwarded: usize,
    /// The bytes forwarded, as they left (re-masked where the forwarder re-masked them).
    output: Vec<u8>,
    frames: u64,
    remasked: u64,
    last_mid_frame: bool,
    event: Option<Event>,
}

/// Feeds `input` in chunks of the sizes given (cycled) the way the relay's pump does, checking
/// every step.
fn feed_in_chunks(input: &[u8], sizes: &[u8], config: ForwarderConfig) -> Chunked {
    let mut forwarder = Forwarder::new(config);
    let mut out = OutputCheck::new(&config);
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut frames = 0;
    let mut remasked = 0;
    let mut last_mid_frame = false;
    // Sizes of 0 feed nothing new; if all are 0, feed one byte at a time.
    let all_zero = sizes.iter().all(|s| *s == 0);
    let mut next_size = sizes.iter().cycle().map(|s| usize::from(*s));
    while fed < input.len() {
        let size = if all_zero {
            1
        } else {
            next_size.next().unwrap_or(1)
        };
        let end = input.len().min(fed + size);
        pending.extend_from_slice(&input[fed..end]);
        fed = end;
        let before = pending.clone();
        let step = forwarder.process_mut(&mut pending);
        assert_eq!(
            pending[step.consumed..],
            before[step.consumed..],
            "re-masking touched bytes left for the next call"
        );
        check_step(&step, &pending, &mut out);
        frames += step.frames;
        remasked += step.remasked;
        last_mid_frame = step.mid_frame;
        pending.drain(..step.consumed);
        if step.event.is_some() {
            out.check_event(&step.event);
            out.finish();
            pending.extend_from_slice(&input[fed..]);
            after_event(&mut forwarder, &step, &pending);
            return Chunked {
                forwarded: out.len(),
                output: out.out,
                frames,
                remasked,
                last_mid_frame,
                event: step.event,
            };
        }
        // Without an event the forwarder took all it could: at most a partial header or control
        // frame is left (none when inside a data frame's payload), and it waits for more bytes.
        assert!(
            pending.len() < MAX_CONTROL_FRAME,
            "{} bytes left unconsumed",
            pending.len()
        );
        if step.mid_frame {
            assert!(
                pending.is_empty(),
                "payload bytes left unconsumed mid-frame"
            );
        }
        // The queries the pump relies on agree with the output.
        assert!(!forwarder.is_done());
        assert_eq!(forwarder.at_frame_boundary(), !step.mid_frame);
        assert_eq!(forwarder.payload_remaining(), out.payload_remaining());
        assert_eq!(forwarder.in_message(), out.message.is_some());
        let again = forwarder.process(&pending);
        assert_eq!(
            (again.forward, again.consumed, again.frames, again.event),
            (0, 0, 0, None),
            "feeding the unconsumed rest again made progress"
        );
        assert_eq!(again.mid_frame, step.mid_frame);
    }
    out.finish();
    Chunked {
        forwarded: out.len(),
        output: out.out,
        frames,
        remasked,
        last_mid_frame,
        event: None,
    }
}

/// Checks one step's fields against its input and the bytes it forwarded.
fn check_step(step: &Step, input: &[u8], out: &mut OutputCheck) {
    assert!(step.forward <= step.consumed, "{step:?}");
    assert!(
        step.consumed <= input.len(),
        "{step:?} for {} bytes",
        input.len()
    );
    if !matches!(step.event, Some(Event::Violation(_))) {
        assert_eq!(
            step.forward, step.consumed,
            "bytes dropped without a violation"
        );
    }
    let (headers, mid_frame) = out.push(&input[..step.forward]);
    assert_eq!(
        step.frames, headers,
        "frame count differs from headers forwarded"
    );
    assert_eq!(
        step.mid_frame, mid_frame,
        "mid_frame does not match the output"
    );
}

/// After an event the forwarder is done: nothing more is taken in or forwarded.
fn after_event(forwarder: &mut Forwarder, step: &Step, more: &[u8]) {
    if step.event.is_none() {
        return;
    }
    assert!(forwarder.is_done(), "an event did not end the stream");
    for input in [more, &[][..]] {
        let again = forwarder.process(input);
        assert_eq!(
            (again.forward, again.consumed, again.frames, again.event),
            (0, 0, 0, None),
            "the forwarder went on after an event"
        );
    }
}

fn assert_same_event(got: &Option<Event>, expected: &Option<Expected>) {
    match (got, expected) {
        (None, None) => {}
        (Some(Event::Close(close)), Some(Expected::Close(payload))) => {
            assert_eq!(close.as_bytes(), &payload[..], "close payload differs");
        }
        (Some(Event::Violation(v)), Some(Expected::Violation(w))) => {
            assert_eq!(v, w, "a different violation than the reference found");
        }
        _ => panic!("event {got:?}, the reference expected {expected:?}"),
    }
}

/// The forwarded bytes, checked as a frame stream as they arrive.
struct OutputCheck {
    parse: ParseConfig,
    max_frame_size: u64,
    max_message_size: u64,
    validate_utf8: bool,
    /// Everything forwarded so far.
    out: Vec<u8>,
    /// Where the next frame header starts.
    next: usize,
    /// The frame whose payload is not all forwarded yet, and where its payload starts.
    open_frame: Option<(FrameHeader, usize)>,
    /// The fragmented message under way.
    message: Option<MessageCheck>,
    /// The unmasked payload of a forwarded close frame: nothing may follow it.
    close: Option<Vec<u8>>,
}

struct MessageCheck {
    size: u64,
    /// Unmasked text so far, when the message is text that must be valid UTF-8.
    text: Option<Utf8Prefix>,
}

/// UTF-8 text checked incrementally with std: everything before `boundary` is valid.
#[derive(Default)]
struct Utf8Prefix {
    bytes: Vec<u8>,
    boundary: usize,
}

impl Utf8Prefix {
    /// Appends bytes; returns false once no continuation can make the text valid.
    fn extend(&mut self, more: &[u8]) -> bool {
        self.bytes.extend_from_slice(more);
        match std::str::from_utf8(&self.bytes[self.boundary..]) {
            Ok(_) => {
                self.boundary = self.bytes.len();
                true
            }
            Err(e) => {
                self.boundary += e.valid_up_to();
                e.error_len().is_none()
            }
        }
    }

    fn is_complete(&self) -> bool {
        self.boundary == self.bytes.len()
    }
}

impl OutputCheck {
    fn new(config: &ForwarderConfig) -> OutputCheck {
        OutputCheck {
            parse: ParseConfig::new(config.role).with_allowed_rsv(config.allowed_rsv),
            max_frame_size: config.max_frame_size.unwrap_or(u64::MAX),
            max_message_size: config.max_message_size.unwrap_or(u64::MAX),
            validate_utf8: config.validate_utf8,
            out: Vec::new(),
            next: 0,
            open_frame: None,
            message: None,
            close: None,
        }
    }

    fn len(&self) -> usize {
        self.out.len()
    }

    /// Payload bytes of the frame under way not forwarded yet (0 between frames).
    fn payload_remaining(&self) -> u64 {
        self.open_frame.map_or(0, |(h, start)| {
            start as u64 + h.payload_len - self.out.len() as u64
        })
    }

    /// Appends a step's forwarded bytes; returns how many frame headers they hold and whether
    /// the output now ends inside a frame.
    fn push(&mut self, bytes: &[u8]) -> (u64, bool) {
        assert!(
            self.close.is_none() || bytes.is_empty(),
            "bytes forwarded after a close frame"
        );
        self.out.extend_from_slice(bytes);
        let mut headers = 0;
        loop {
            if let Some((header, start)) = self.open_frame {
                let end = start as u64 + header.payload_len;
                if end > self.out.len() as u64 {
                    return (headers, true);
                }
                self.open_frame = None;
                self.frame_done(&header, start, end as usize);
                self.next = end as usize;
                continue;
            }
            if self.next == self.out.len() {
                return (headers, false);
            }
            assert!(
                self.close.is_none(),
                "a frame forwarded after a close frame"
            );
            let header = match FrameHeader::parse(&self.out[self.next..], self.parse) {
                Ok(Parse::Complete(h, n)) => {
                    self.open_frame = Some((h, self.next + n));
                    h
                }
                other => panic!(
                    "forwarded bytes at {} do not start a valid frame: {other:?}",
                    self.next
                ),
            };
            headers += 1;
            self.header_seen(&header);
        }
    }

    /// Sequence rules and limits, checked when a header is forwarded.
    fn header_seen(&mut self, h: &FrameHeader) {
        if h.opcode.is_control() {
            assert!(h.payload_len <= 125 && h.fin, "bad control frame forwarded");
            assert_eq!(h.rsv, 0, "RSV bits on a control frame forwarded");
            return;
        }
        assert!(
            h.payload_len <= self.max_frame_size,
            "frame over the size limit forwarded"
        );
        match (h.opcode, &mut self.message) {
            (OpCode::Continuation, Some(message)) => {
                assert_eq!(h.rsv, 0, "RSV bits on a continuation frame forwarded");
                message.size += h.payload_len;
            }
            (OpCode::Continuation, None) => panic!("continuation without a message forwarded"),
            (_, Some(_)) => panic!("new message inside an open one forwarded"),
            (opcode, None) => {
                let text = opcode == OpCode::Text && self.validate_utf8 && h.rsv & RSV1 == 0;
                self.message = Some(MessageCheck {
                    size: h.payload_len,
                    text: text.then(Utf8Prefix::default),
                });
            }
        }
        let size = self.message.as_ref().map_or(0, |m| m.size);
        assert!(
            size <= self.max_message_size,
            "message over the size limit forwarded"
        );
    }

    /// Payload rules, checked when a frame's last byte is forwarded.
    fn frame_done(&mut self, h: &FrameHeader, start: usize, end: usize) {
        let mut payload = self.out[start..end].to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        match h.opcode {
            OpCode::Close => {
                let close = CloseFrame::parse(&payload);
                assert!(close.is_ok(), "invalid close payload forwarded: {close:?}");
                assert!(close.is_ok_and(|c| c.code.is_none_or(is_valid_close_code)));
                self.close = Some(payload);
            }
            OpCode::Ping | OpCode::Pong => {}
            _ => {
                let message = self
                    .message
                    .as_mut()
                    .expect("a data frame opened a message");
                if let Some(text) = &mut message.text {
                    assert!(text.extend(&payload), "invalid UTF-8 forwarded");
                    if h.fin {
                        assert!(text.is_complete(), "text message ends mid-character");
                    }
                }
                if h.fin {
                    self.message = None;
                }
            }
        }
    }

    /// The event agrees with the output: a close event is its last frame.
    fn check_event(&self, event: &Option<Event>) {
        match event {
            Some(Event::Close(close)) => {
                let code = close.code();
                assert!(code.is_none_or(is_valid_close_code), "close code {code:?}");
                assert_ne!(close.as_bytes().len(), 1);
                assert_eq!(
                    CloseFrame::parse(close.as_bytes()).map(|c| c.reason),
                    Ok(close.reason())
                );
                assert_eq!(
                    self.close.as_deref(),
                    Some(close.as_bytes()),
                    "the close event is not the last frame forwarded"
                );
                assert!(self.open_frame.is_none() && self.next == self.out.len());
            }
            Some(Event::OwnPong) => panic!("no pong token was armed"),
            Some(Event::RandomFailed(e)) => panic!("the random source failed: {e}"),
            Some(Event::Violation(v)) => {
                assert!(
                    matches!(v.close_code(), 1002 | 1007 | 1009),
                    "{v:?} closes with {}",
                    v.close_code()
                );
                assert!(self.close.is_none());
            }
            None => assert!(
                self.close.is_none(),
                "a close frame passed without an event"
            ),
        }
    }

    /// The stream ended: a frame cut short still holds only checked text.
    fn finish(&mut self) {
        if let Some((h, start)) = self.open_frame {
            if h.opcode.is_data() {
                let mut payload = self.out[start..].to_vec();
                if let Some(key) = h.mask {
                    apply_mask(&mut payload, key, 0);
                }
                if let Some(text) = self.message.as_mut().and_then(|m| m.text.as_mut()) {
                    assert!(
                        text.extend(&payload),
                        "invalid UTF-8 forwarded in a cut frame"
                    );
                }
            } else {
                panic!("a control frame was cut short");
            }
        }
    }
}

/// What a whole-buffer reading of the stream decides.
#[derive(Debug)]
enum Expected {
    Close(Vec<u8>),
    Violation(Violation),
}

struct Reference {
    /// Bytes at the front that may be forwarded.
    forward: usize,
    event: Option<Expected>,
}

/// A plain reader of a whole buffer, written from RFC 6455 and the relay's documented limits:
/// frame by frame, each header checked (codec rules, then fragment order, then RSV placement,
/// then the frame and message limits), control frames taken whole, data payloads as far as they
/// go, text checked with std. A frame that breaks a rule is not forwarded.
fn reference(input: &[u8], config: &ForwarderConfig) -> Reference {
    // "No limit" in the model: a limit no 63-bit payload length can exceed.
    let max_frame_size = config.max_frame_size.unwrap_or(u64::MAX);
    let max_message_size = config.max_message_size.unwrap_or(u64::MAX);
    let parse = ParseConfig::new(config.role).with_allowed_rsv(config.allowed_rsv);
    let stop = |forward, event| Reference { forward, event };
    let violation = |forward, v: Violation| stop(forward, Some(Expected::Violation(v)));
    let mut pos = 0;
    let mut message: Option<MessageCheck> = None;
    loop {
        let (h, header_len) = match FrameHeader::parse(&input[pos..], parse) {
            Ok(Parse::Complete(h, n)) => (h, n),
            Ok(Parse::Incomplete(_)) => return stop(pos, None),
            Err(e) => return violation(pos, Violation::Protocol(e)),
        };
        match (h.opcode, &message) {
            (OpCode::Continuation, None) => {
                return violation(pos, Violation::UnexpectedContinuation)
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return violation(pos, Violation::MessageInterleaved)
            }
            _ => {}
        }
        if h.rsv != 0 && !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            return violation(pos, Violation::ReservedBitsPlacement);
        }
        let body = pos + header_len;
        if h.opcode.is_control() {
            let end = body + h.payload_len as usize;
            if end > input.len() {
                return stop(pos, None);
            }
            if h.opcode == OpCode::Close {
                let mut payload = input[body..end].to_vec();
                if let Some(key) = h.mask {
                    apply_mask(&mut payload, key, 0);
                }
                return match CloseFrame::parse(&payload) {
                    Ok(_) => stop(end, Some(Expected::Close(payload))),
                    Err(e) => violation(pos, Violation::Protocol(e)),
                };
            }
            pos = end;
            continue;
        }
        if h.payload_len > max_frame_size {
            return violation(
                pos,
                Violation::FrameTooBig {
                    size: h.payload_len,
                    limit: max_frame_size,
                },
            );
        }
        let size = message
            .as_ref()
            .map_or(0, |m| m.size)
            .saturating_add(h.payload_len);
        if size > max_message_size {
            return violation(
                pos,
                Violation::MessageTooBig {
                    size,
                    limit: max_message_size,
                },
            );
        }
        let message_now = message.get_or_insert_with(|| MessageCheck {
            size: 0,
            text: (h.opcode == OpCode::Text && config.validate_utf8 && h.rsv & RSV1 == 0)
                .then(Utf8Prefix::default),
        });
        message_now.size = size;
        let available = (h.payload_len).min((input.len() - body) as u64) as usize;
        if let Some(text) = &mut message_now.text {
            let mut payload = input[body..body + available].to_vec();
            if let Some(key) = h.mask {
                apply_mask(&mut payload, key, 0);
            }
            if !text.extend(&payload) {
                return violation(pos, Violation::Protocol(ProtocolError::InvalidUtf8));
            }
            if h.fin && available as u64 == h.payload_len && !text.is_complete() {
                return violation(pos, Violation::Protocol(ProtocolError::InvalidUtf8));
            }
        }
        if (available as u64) < h.payload_len {
            return stop(input.len(), None);
        }
        pos = body + available;
        if h.fin {
            message = None;
        }
    }
}
