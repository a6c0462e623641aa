//! The per-direction state machine: which bytes of a peer's stream may be forwarded as they are.

use wsrelay_codec::{
    apply_mask, random, CloseFrame, FrameHeader, OpCode, Parse, ParseConfig, RandomError, Role,
    Utf8Validator, MAX_CONTROL_PAYLOAD, RSV1,
};

pub use crate::remask::Remask;
use crate::remask::{rekey, Keys, Rekey, Wire};
use crate::Violation;

/// Longest control frame on the wire: a 6-byte masked header and 125 payload bytes.
pub const MAX_CONTROL_FRAME: usize = 6 + MAX_CONTROL_PAYLOAD as usize;

/// Limits and checks applied to one direction of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwarderConfig {
    /// Whose frames are read: [`Role::Server`] for a client's frames, [`Role::Client`] for an upstream's.
    pub role: Role,
    /// RSV bits the negotiated extension allows on the first frame of a message ([`RSV1`] for permessage-deflate).
    pub allowed_rsv: u8,
    /// Largest frame payload accepted; `None` for no limit (1009 beyond it).
    pub max_frame_size: Option<u64>,
    /// Largest message (sum of its fragments) accepted; `None` for no limit (1009 beyond it).
    pub max_message_size: Option<u64>,
    /// Validate UTF-8 of uncompressed text messages as they stream through.
    pub validate_utf8: bool,
    /// When a client's frame leaves with a masking key of the relay's own instead of the
    /// client's (see [`Remask`]). Only [`Forwarder::process_mut`] re-masks: it alone may change
    /// the bytes it checks.
    pub remask: Remask,
}

impl ForwarderConfig {
    /// Strict RFC 6455 checks for frames read by `role`, no size limits, UTF-8 validated.
    pub fn new(role: Role) -> ForwarderConfig {
        ForwarderConfig {
            role,
            allowed_rsv: 0,
            max_frame_size: None,
            max_message_size: None,
            validate_utf8: true,
            remask: Remask::Auto,
        }
    }
}

/// An unmasked close payload taken from the stream (at most 125 bytes, held inline).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClosePayload {
    bytes: [u8; MAX_CONTROL_PAYLOAD as usize],
    len: u8,
    /// The whole close frame's length on the wire (at most [`MAX_CONTROL_FRAME`]).
    frame_len: u8,
}

impl ClosePayload {
    /// The status code, if the frame carried one (already validated).
    pub fn code(&self) -> Option<u16> {
        match self.as_bytes() {
            [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// The reason text (already validated as UTF-8).
    pub fn reason(&self) -> &str {
        CloseFrame::parse(self.as_bytes()).map_or("", |c| c.reason)
    }

    /// The raw unmasked payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The close frame's length on the wire, header included: the last bytes a step forwarded,
    /// for a pump that must absorb the close instead.
    pub(crate) fn frame_len(&self) -> usize {
        usize::from(self.frame_len)
    }
}

impl std::fmt::Debug for ClosePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosePayload")
            .field("code", &self.code())
            .field("reason", &self.reason())
            .finish()
    }
}

/// What stopped [`Forwarder::process`] before the end of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A valid close frame, included in the forwarded bytes. Nothing after it is processed.
    Close(ClosePayload),
    /// The peer broke a rule. The offending frame is not included in the forwarded bytes
    /// when it began in this input; see [`Step::mid_frame`].
    Violation(Violation),
    /// A pong answering the relay's own keep-alive ping (see [`Forwarder::absorb_pongs`]): it
    /// is `input[forward..consumed]`, taken in but not forwarded. Processing stops after it.
    OwnPong,
    /// A frame had to be re-masked and the random source failed: the frame is not forwarded
    /// and the stream is over (never a predictable key instead; see [`wsrelay_codec::random`]).
    RandomFailed(RandomError),
}

/// The result of feeding bytes to a [`Forwarder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// Bytes at the front of the input that are checked and may be forwarded unchanged.
    pub forward: usize,
    /// Bytes at the front of the input the forwarder has taken in: `forward`, plus a frame it
    /// dropped because it broke a rule or absorbed as an [`Event::OwnPong`]. The caller keeps `input[consumed..]` (a partial header or
    /// control frame) and passes it again, followed by more bytes, in the next call.
    pub consumed: usize,
    /// True if the forwarded bytes end inside a frame's payload, so nothing else may be written
    /// to the destination until the frame is complete.
    pub mid_frame: bool,
    /// Frames whose header was forwarded in this step.
    pub frames: u64,
    /// Of those, frames re-masked with a key of the relay's own (see [`Remask`]).
    pub remasked: u64,
    /// Data messages whose final frame was forwarded in this step.
    pub messages: u64,
    /// Header bytes of the frames counted in `frames`.
    pub header_bytes: u64,
    /// Why processing stopped early, if it did.
    pub event: Option<Event>,
}

/// Where the reader stands in the peer's frame stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Expecting the next frame header.
    Header,
    /// Inside a data frame's payload.
    Payload {
        /// Payload bytes still to come.
        remaining: u64,
        /// Payload bytes already seen (the masking offset).
        offset: u64,
        /// Masking key, for unmasking text to validate.
        mask: Option<[u8; 4]>,
        /// Whether this frame ends its message.
        fin: bool,
    },
    /// A close frame passed (or a violation happened): the stream is over.
    Done,
}

/// What one step of [`Forwarder::next_piece`] covered: at most one frame, or one chunk of a
/// frame's payload. Offsets are into that step's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Piece {
    /// The frame's header, if it was parsed in this step (it is then `input[..header_len]`).
    pub(crate) header: Option<FrameHeader>,
    /// Length of that header on the wire.
    pub(crate) header_len: usize,
    /// The payload bytes of this step: `input[payload.0..payload.1]`, masked as on the wire.
    pub(crate) payload: (usize, usize),
    /// Offset of `payload.0` within its frame's payload (the masking offset).
    pub(crate) offset: u64,
    /// The frame's masking key.
    pub(crate) mask: Option<[u8; 4]>,
    /// True if the frame ends in this step.
    pub(crate) complete: bool,
}

/// The message a fragment sequence is building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// No message open: the next data frame must be text or binary.
    None,
    /// A message is open; continuation frames extend it.
    Open {
        /// Bytes of payload so far.
        size: u64,
        /// UTF-8 validation applies (uncompressed text with validation on).
        validate: bool,
    },
}

/// Tracks one direction of a relayed connection and decides, without copying, which bytes may
/// be forwarded.
///
/// Frames are checked header by header; data payloads pass through as they arrive (a frame of any
/// size streams in pieces), control frames are taken whole so close payloads can be checked, and
/// text is validated as UTF-8 on an unmasked copy, never in place. Forwarded bytes are the input
/// bytes unchanged, masking key included, except where [`process_mut`](Forwarder::process_mut)
/// re-masks a client's frame whose key is predictable (see [`Remask`]).
///
/// ```
/// use wsrelay_codec::Role;
/// use wsrelay_relay::{Forwarder, ForwarderConfig};
///
/// let mut f = Forwarder::new(ForwarderConfig::new(Role::Client));
/// // An unmasked "hi" text frame from an upstream, then half of the next header.
/// let step = f.process(&[0x81, 2, b'h', b'i', 0x82]);
/// assert_eq!((step.forward, step.consumed, step.frames, step.mid_frame), (4, 4, 1, false));
/// ```
#[derive(Debug, Clone)]
pub struct Forwarder {
    config: ForwarderConfig,
    phase: Phase,
    message: Message,
    utf8: Utf8Validator,
    /// Payload of the relay's own keep-alive pings: pongs carrying it are absorbed.
    pong_token: Option<[u8; 8]>,
    /// Re-masking state, between steps.
    keys: Keys,
    /// The rest of it.
    rekey: Rekey,
}

impl Forwarder {
    /// A forwarder at the start of a stream.
    pub fn new(config: ForwarderConfig) -> Forwarder {
        Forwarder {
            config,
            phase: Phase::Header,
            message: Message::None,
            utf8: Utf8Validator::new(),
            pong_token: None,
            keys: Keys::new(config.remask),
            rekey: Rekey::default(),
        }
    }

    /// The configuration this forwarder enforces.
    pub fn config(&self) -> &ForwarderConfig {
        &self.config
    }

    /// Changes the largest message accepted (1009 beyond it), e.g. for aggregation.
    pub(crate) fn set_max_message_size(&mut self, limit: u64) {
        self.config.max_message_size = Some(limit);
    }

    /// True between frames (the destination may take an injected control frame).
    pub fn at_frame_boundary(&self) -> bool {
        !matches!(self.phase, Phase::Payload { .. })
    }

    /// Payload bytes still to come in the data frame under way (0 between frames).
    pub fn payload_remaining(&self) -> u64 {
        match self.phase {
            Phase::Payload { remaining, .. } => remaining,
            _ => 0,
        }
    }

    /// True once a close frame or a violation ended the stream.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// True while a fragmented message is open.
    pub fn in_message(&self) -> bool {
        matches!(self.message, Message::Open { .. })
    }

    /// From now on, pongs whose payload is `token` answer the relay's own pings: they are
    /// taken in and reported as [`Event::OwnPong`] instead of being forwarded. Other pongs pass.
    pub fn absorb_pongs(&mut self, token: [u8; 8]) {
        self.pong_token = Some(token);
    }

    /// Feeds the next bytes of the stream (beginning with what the previous step left
    /// unconsumed). The bytes are only read: nothing is re-masked (see
    /// [`process_mut`](Forwarder::process_mut)).
    pub fn process(&mut self, input: &[u8]) -> Step {
        let mut piece = Piece::default();
        // Without keep-alive the pong check is compiled out of the loop (it costs ~8% on small
        // frames even when never taken).
        if self.pong_token.is_some() {
            self.run::<false, true, _>(input, 0, &mut piece)
        } else {
            self.run::<false, false, _>(input, 0, &mut piece)
        }
    }

    /// Like [`process`](Forwarder::process), and re-masks client frames in place as
    /// [`ForwarderConfig::remask`] says: the frame's header gets the new key and its payload,
    /// as it streams through, one XOR pass with `old_key ^ new_key`. Bytes a step did not
    /// consume are left as they were, so they can be passed again.
    pub fn process_mut(&mut self, input: &mut [u8]) -> Step {
        let mut piece = Piece::default();
        if !self.remasks() {
            return self.process(input);
        }
        if self.pong_token.is_some() {
            self.run::<false, true, _>(input, 0, &mut piece)
        } else {
            self.run::<false, false, _>(input, 0, &mut piece)
        }
    }

    /// Like [`process_mut`](Forwarder::process_mut), but stops after one frame or one chunk of
    /// a frame's payload and says what it covered, for a pump that shows frames to a hook. A
    /// data frame of at most `whole_limit` bytes (header included) is taken only once all of it
    /// is in `input`.
    pub(crate) fn next_piece(&mut self, input: &mut [u8], whole_limit: usize) -> (Step, Piece) {
        let mut piece = Piece::default();
        let step = if self.remasks() {
            self.run::<true, true, _>(input, whole_limit, &mut piece)
        } else {
            self.run::<true, true, _>(&*input, whole_limit, &mut piece)
        };
        (step, piece)
    }

    /// True if frames read here may be re-masked: a client's, with re-masking on.
    fn remasks(&self) -> bool {
        self.config.remask != Remask::Never && self.config.role == Role::Server
    }

    /// The stream reader. `ONE` is false for [`process`](Forwarder::process), which compiles to
    /// the plain pass-through loop: every `if ONE` below vanishes from it. `PONGS` is true when
    /// pongs answering the relay's own pings are to be absorbed.
    ///
    /// The loop itself never calls out for a masking key (a call in it would keep the
    /// forwarder's state in memory on every frame): it stops before a frame that needs one,
    /// the key is drawn here, and the loop resumes at that frame.
    #[inline(always)]
    fn run<const ONE: bool, const PONGS: bool, W: Wire>(
        &mut self,
        mut wire: W,
        whole_limit: usize,
        piece: &mut Piece,
    ) -> Step {
        let mut step = Step::default();
        let mut keys = self.keys;
        if !W::WRITABLE {
            return self.steps::<ONE, PONGS, W>(&mut wire, 0, step, whole_limit, piece, &mut keys);
        }
        // Each round takes at least one more frame: bounded by the frames in the input.
        loop {
            step = self.steps::<ONE, PONGS, W>(
                &mut wire,
                step.consumed,
                step,
                whole_limit,
                piece,
                &mut keys,
            );
            let Some(old) = self.rekey.want.take() else {
                break;
            };
            match random::masking_key_except(old) {
                Ok(new) => self.rekey.spare = Some(new),
                Err(e) => {
                    let at = step.consumed;
                    step = self.fail_random(step, at, e);
                    break;
                }
            }
        }
        self.keys = keys;
        step
    }

    /// The loop of [`run`](Self::run) from `start`, adding to `step`, with the re-masking
    /// state in `keys`.
    #[inline(always)]
    fn steps<const ONE: bool, const PONGS: bool, W: Wire>(
        &mut self,
        wire: &mut W,
        start: usize,
        mut step: Step,
        whole_limit: usize,
        piece: &mut Piece,
        keys: &mut Keys,
    ) -> Step {
        // Start of the data frame under way, if its header is in this input.
        let mut frame_start: Option<usize> = None;
        // That frame's header length, taken back with it if it is dropped.
        let mut frame_header_len = 0u64;
        let mut pos = start;
        loop {
            match self.phase {
                Phase::Done => break,
                Phase::Header => {
                    let rest = &wire.bytes()[pos..];
                    let parse_config = ParseConfig {
                        role: self.config.role,
                        allowed_rsv: self.config.allowed_rsv,
                    };
                    let (mut header, header_len) = match FrameHeader::parse(rest, parse_config) {
                        Ok(Parse::Complete(h, n)) => (h, n),
                        Ok(Parse::Incomplete(_)) => break,
                        Err(e) => return self.fail(step, Some(pos), pos, pos, e.into()),
                    };
                    if let Err(v) = self.check_sequence(&header) {
                        return self.fail(step, Some(pos), pos, pos, v);
                    }
                    if header.opcode.is_control() {
                        // Bounded by the 125-byte rule the header parse enforced.
                        let frame_len = header_len + header.payload_len as usize;
                        if rest.len() < frame_len {
                            break;
                        }
                        let mut remasked = false;
                        if let (Some(key), Some(bytes)) = (header.mask, wire.bytes_mut()) {
                            if keys.remask(key) {
                                let Some(new) = self.rekey.spare.take() else {
                                    self.rekey.want = Some(key);
                                    break;
                                };
                                let delta = rekey(bytes, pos + header_len, &mut header, new);
                                apply_mask(&mut bytes[pos + header_len..pos + frame_len], delta, 0);
                                remasked = true;
                            }
                        }
                        let frame = &wire.bytes()[pos..pos + frame_len];
                        if PONGS
                            && header.opcode == OpCode::Pong
                            && self.is_own_pong(&header, frame)
                        {
                            step.forward = pos;
                            step.consumed = pos + frame_len;
                            step.event = Some(Event::OwnPong);
                            return step;
                        }
                        if ONE {
                            *piece = Piece {
                                header: Some(header),
                                header_len,
                                payload: (pos + header_len, pos + frame_len),
                                offset: 0,
                                mask: header.mask,
                                complete: true,
                            };
                        }
                        if header.opcode == OpCode::Close {
                            match close_payload(&header, frame, header_len) {
                                Ok(payload) => {
                                    step.frames += 1;
                                    step.header_bytes += header_len as u64;
                                    step.remasked += u64::from(remasked);
                                    pos += frame_len;
                                    self.phase = Phase::Done;
                                    step.event = Some(Event::Close(payload));
                                }
                                Err(v) => {
                                    return self.fail(step, Some(pos), pos, pos + frame_len, v)
                                }
                            }
                            break;
                        }
                        step.frames += 1;
                        step.header_bytes += header_len as u64;
                        step.remasked += u64::from(remasked);
                        pos += frame_len;
                        if ONE {
                            break;
                        }
                        continue;
                    }
                    if ONE {
                        let frame_len = header_len as u64 + header.payload_len;
                        if frame_len <= whole_limit as u64 && (rest.len() as u64) < frame_len {
                            break;
                        }
                    }
                    // Re-masked only once the frame is taken in: bytes left for the next call
                    // keep the client's key, so they are not re-masked twice.
                    // Once one frame is re-masked every later one is (`all` stays set), so
                    // `rekey.delta` is set here only, and the payload reads it while `all` is set.
                    let mut remasked = 0;
                    if let (Some(key), Some(bytes)) = (header.mask, wire.bytes_mut()) {
                        if keys.remask(key) {
                            let Some(new) = self.rekey.spare.take() else {
                                self.rekey.want = Some(key);
                                break;
                            };
                            self.rekey.delta = rekey(bytes, pos + header_len, &mut header, new);
                            remasked = 1;
                        }
                    }
                    if ONE {
                        *piece = Piece {
                            header: Some(header),
                            header_len,
                            payload: (pos + header_len, pos + header_len),
                            offset: 0,
                            mask: header.mask,
                            complete: header.payload_len == 0,
                        };
                    }
                    self.start_data_frame(&header);
                    step.frames += 1;
                    step.header_bytes += header_len as u64;
                    step.remasked += remasked;
                    frame_start = Some(pos);
                    frame_header_len = header_len as u64;
                    pos += header_len;
                    if header.payload_len == 0 {
                        if let Err(v) = self.end_data_frame(header.fin) {
                            step.frames -= 1;
                            step.header_bytes -= frame_header_len;
                            step.remasked -= remasked;
                            return self.fail(step, Some(pos - header_len), pos, pos, v);
                        }
                        step.messages += u64::from(header.fin);
                        if ONE {
                            break;
                        }
                    }
                }
                Phase::Payload {
                    remaining,
                    offset,
                    mask,
                    fin,
                } => {
                    let available = (wire.bytes().len() - pos) as u64;
                    if available == 0 {
                        break;
                    }
                    let take = remaining.min(available);
                    let span = pos..pos + take as usize;
                    // Never for the read-only loop.
                    let remasking = W::WRITABLE && keys.all;
                    if let (true, Some(bytes)) = (remasking, wire.bytes_mut()) {
                        apply_mask(&mut bytes[span.clone()], self.rekey.delta, offset);
                    }
                    let chunk = &wire.bytes()[span];
                    // A frame that began in this input and is dropped is not counted.
                    let uncount = u64::from(frame_start.is_some());
                    if let Message::Open { validate: true, .. } = self.message {
                        if let Err(e) = validate_text(&mut self.utf8, chunk, mask, offset) {
                            let end = pos + chunk.len();
                            step.frames -= uncount;
                            step.header_bytes -= uncount * frame_header_len;
                            step.remasked -= uncount * u64::from(remasking);
                            return self.fail(step, frame_start, pos, end, e.into());
                        }
                    }
                    if ONE {
                        piece.payload = (pos, pos + chunk.len());
                        piece.offset = offset;
                        piece.mask = mask;
                        piece.complete = take == remaining;
                    }
                    pos += chunk.len();
                    if take == remaining {
                        if let Err(v) = self.end_data_frame(fin) {
                            // The frame's last byte completed an invalid text message.
                            let checked = pos - chunk.len();
                            step.frames -= uncount;
                            step.header_bytes -= uncount * frame_header_len;
                            step.remasked -= uncount * u64::from(remasking);
                            return self.fail(step, frame_start, checked, pos, v);
                        }
                        step.messages += u64::from(fin);
                        frame_start = None;
                    } else {
                        self.phase = Phase::Payload {
                            remaining: remaining - take,
                            offset: offset + take,
                            mask,
                            fin,
                        };
                    }
                    if ONE {
                        break;
                    }
                }
            }
        }
        step.forward = pos;
        step.consumed = pos;
        step.mid_frame = !self.at_frame_boundary();
        step
    }

    /// True if `frame` (a whole pong) carries the relay's own ping token.
    #[cold]
    #[inline(never)]
    fn is_own_pong(&self, header: &FrameHeader, frame: &[u8]) -> bool {
        let Some(token) = self.pong_token else {
            return false;
        };
        let Some(payload) = frame.get(frame.len().saturating_sub(8)..) else {
            return false;
        };
        if header.payload_len != 8 {
            return false;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut bytes, key, 0);
        }
        bytes == token
    }

    /// Checks a header against the fragmentation rules, size limits and RSV placement.
    fn check_sequence(&self, header: &FrameHeader) -> Result<(), Violation> {
        let size_so_far = match (header.opcode, self.message) {
            (OpCode::Continuation, Message::None) => return Err(Violation::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Message::Open { .. }) => {
                return Err(Violation::MessageInterleaved)
            }
            (OpCode::Continuation, Message::Open { size, .. }) => size,
            _ => 0,
        };
        if header.rsv != 0 && !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            return Err(Violation::ReservedBitsPlacement);
        }
        if header.opcode.is_control() {
            return Ok(());
        }
        if let Some(limit) = self
            .config
            .max_frame_size
            .filter(|&l| header.payload_len > l)
        {
            return Err(Violation::FrameTooBig {
                size: header.payload_len,
                limit,
            });
        }
        let size = size_so_far.saturating_add(header.payload_len);
        if let Some(limit) = self.config.max_message_size.filter(|&l| size > l) {
            return Err(Violation::MessageTooBig { size, limit });
        }
        Ok(())
    }

    fn start_data_frame(&mut self, header: &FrameHeader) {
        match (header.opcode, &mut self.message) {
            (OpCode::Continuation, Message::Open { size, .. }) => *size += header.payload_len,
            (opcode, message) => {
                // Compressed payloads (RSV1 under permessage-deflate) are not text on the wire.
                let validate =
                    self.config.validate_utf8 && opcode == OpCode::Text && header.rsv & RSV1 == 0;
                *message = Message::Open {
                    size: header.payload_len,
                    validate,
                };
            }
        }
        self.phase = Phase::Payload {
            remaining: header.payload_len,
            offset: 0,
            mask: header.mask,
            fin: header.fin,
        };
    }

    fn end_data_frame(&mut self, fin: bool) -> Result<(), Violation> {
        self.phase = Phase::Header;
        if fin {
            let validate = matches!(self.message, Message::Open { validate: true, .. });
            self.message = Message::None;
            if validate {
                self.utf8.finish()?;
            }
        }
        Ok(())
    }

    /// Ends the stream before the frame at `at`, which needed a new masking key and got none.
    #[cold]
    fn fail_random(&mut self, mut step: Step, at: usize, error: RandomError) -> Step {
        self.phase = Phase::Done;
        step.forward = at;
        step.consumed = at;
        step.mid_frame = false;
        step.event = Some(Event::RandomFailed(error));
        step
    }

    /// Ends the stream on a violation found in the frame that starts at `frame_start` in this
    /// input, or (`None`) in an earlier input, in which case `checked` bytes of this input were
    /// already forwardable. A frame that began in this input is dropped whole; one that began
    /// earlier was partly forwarded, so the output stays mid-frame and only the unchecked rest
    /// is withheld. `consumed` is where reading stopped.
    fn fail(
        &mut self,
        mut step: Step,
        frame_start: Option<usize>,
        checked: usize,
        consumed: usize,
        v: Violation,
    ) -> Step {
        self.phase = Phase::Done;
        step.forward = frame_start.unwrap_or(checked);
        step.mid_frame = frame_start.is_none();
        step.consumed = consumed.max(step.forward);
        step.event = Some(Event::Violation(v));
        step
    }
}

/// Unmasks (on the stack) and checks the payload of a whole close `frame` whose header is
/// `header_len` bytes (the header parse bounded the frame to [`MAX_CONTROL_FRAME`] bytes).
fn close_payload(
    header: &FrameHeader,
    frame: &[u8],
    header_len: usize,
) -> Result<ClosePayload, Violation> {
    let payload = &frame[header_len..];
    let mut close = ClosePayload {
        bytes: [0; MAX_CONTROL_PAYLOAD as usize],
        len: payload.len() as u8,
        frame_len: frame.len() as u8,
    };
    let bytes = &mut close.bytes[..payload.len()];
    bytes.copy_from_slice(payload);
    if let Some(key) = header.mask {
        apply_mask(bytes, key, 0);
    }
    CloseFrame::parse(bytes)?;
    Ok(close)
}

/// Validates a chunk of text payload, unmasking a copy in stack-sized pieces.
fn validate_text(
    utf8: &mut Utf8Validator,
    chunk: &[u8],
    mask: Option<[u8; 4]>,
    offset: u64,
) -> Result<(), wsrelay_codec::ProtocolError> {
    let Some(key) = mask else {
        return utf8.feed(chunk);
    };
    let mut scratch = [0u8; 4096];
    let mut at = offset;
    for piece in chunk.chunks(scratch.len()) {
        let copy = &mut scratch[..piece.len()];
        copy.copy_from_slice(piece);
        apply_mask(copy, key, at);
        utf8.feed(copy)?;
        at += piece.len() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsrelay_codec::write_frame;

    /// A pump that absorbs a close cuts exactly `frame_len` bytes off what the step forwarded.
    #[test]
    fn a_close_event_knows_its_length_on_the_wire() {
        for (role, mask) in [(Role::Server, Some([1, 2, 3, 4])), (Role::Client, None)] {
            let mut wire = Vec::new();
            let text = FrameHeader {
                mask,
                ..FrameHeader::new(OpCode::Text, 0)
            };
            write_frame(&mut wire, text, b"hi");
            let before = wire.len();
            let close = FrameHeader {
                mask,
                ..FrameHeader::new(OpCode::Close, 0)
            };
            write_frame(&mut wire, close, b"\x03\xe8bye");
            let step = Forwarder::new(ForwarderConfig::new(role)).process(&wire);
            let Some(Event::Close(payload)) = step.event else {
                panic!("no close: {step:?}");
            };
            assert_eq!(step.forward, wire.len());
            assert_eq!(payload.frame_len(), wire.len() - before, "{role:?}");
            assert_eq!((payload.code(), payload.reason()), (Some(1000), "bye"));
        }
    }
}
