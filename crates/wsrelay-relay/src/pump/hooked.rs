//! The hook path of a pump: each frame (or chunk, or aggregated message) is unmasked, shown to
//! the [`FrameHook`], and what the hook decides is encoded into an output queue. The plain
//! pump forwards from its read buffer instead; this path is compiled only for a real hook.

use wsrelay_codec::{
    apply_mask, is_valid_close_code, random, write_frame, CloseFrame, FrameHeader, OpCode,
    MAX_HEADER_LEN,
};

use super::write::Output;
use super::{Destination, Pump, PumpEvent};
use crate::forwarder::{ClosePayload, Event, Piece};
use crate::hook::{Chunk, Frame, FrameHook, Verdict};
use crate::{Side, Traffic};

/// The data frame under way in the source, when a hook is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    /// Between frames (or inside a whole frame, which is handled in one step).
    None,
    /// A frame larger than the buffer, shown to the hook chunk by chunk. `head` is its header
    /// as read; `passing` once the hook forwarded its first chunk (the destination is mid-frame).
    Chunked {
        header: FrameHeader,
        head: [u8; MAX_HEADER_LEN],
        head_len: u8,
        passing: bool,
    },
    /// Payload collected into the aggregated message.
    Collect { fin: bool },
    /// A dropped frame: its bytes are skipped unseen.
    Skip { fin: bool },
}

/// What a pump with a frame hook keeps besides the plain pump's state.
pub(super) struct HookState {
    /// Frames to write, built from the hook's verdicts.
    pub(super) out: Output,
    /// The unmasked payload shown to the hook (a whole frame or a chunk).
    scratch: Vec<u8>,
    /// The aggregated message so far (with `aggregate`).
    message: Vec<u8>,
    /// Opcode and RSV bits of the aggregated message's first frame.
    message_head: (OpCode, u8),
    aggregate: bool,
    /// A message whose first fragment the hook dropped: its continuations are skipped.
    dropping_message: bool,
    current: Current,
}

impl HookState {
    /// The state of a pump that just got a hook; `aggregate` shows it whole messages.
    pub(super) fn new(aggregate: bool) -> HookState {
        HookState {
            out: Output::default(),
            scratch: Vec::new(),
            message: Vec::new(),
            message_head: (OpCode::Binary, 0),
            aggregate,
            dropping_message: false,
            current: Current::None,
        }
    }
}

impl Pump {
    /// The hooked path: each frame (or chunk, or message) is unmasked, shown to the hook and
    /// what it decides is encoded into the hook state's output buffer.
    pub(super) fn process_hooked<H: FrameHook>(&mut self, hook: &mut H) -> Option<PumpEvent> {
        loop {
            let limit = match self.admitted_input() {
                Ok(limit) => limit,
                Err(violation) => return Some(PumpEvent::Violation(violation)),
            };
            let discarding = self.discarding();
            let (ready, end) = (self.ready, self.end);
            let buf = self.buf.as_deref_mut()?;
            let h = self.hooked.as_deref_mut()?;
            if h.out.len() >= self.capacity {
                // Back-pressure: the rest waits until the destination took the output.
                return None;
            }
            let input = &mut buf[ready..end];
            let take = input.len().min(limit);
            let input = &mut input[..take];
            if input.is_empty() {
                return None;
            }
            let whole_limit = if h.aggregate { 0 } else { self.capacity };
            let (step, piece) = self.forwarder.next_piece(input, whole_limit);
            let input = &*input;
            if step.consumed == 0 && step.event.is_none() {
                return None;
            }
            if let Some((throttle, _)) = self.rate.as_deref_mut() {
                throttle.consumed(step.consumed);
            }
            let bytes = &input[..step.consumed];
            self.ready += step.consumed;
            self.start = self.ready;
            let close = match step.event {
                Some(Event::OwnPong) => continue,
                Some(Event::Violation(v)) => {
                    self.active = true;
                    self.finish_reading();
                    return Some(PumpEvent::Violation(v));
                }
                Some(Event::RandomFailed(error)) => {
                    self.finish_reading();
                    return Some(PumpEvent::RandomFailed(error));
                }
                Some(Event::Close(payload)) => Some(payload),
                None => None,
            };
            self.active = true;
            // A close answering the relay's close to the source while the destination's own
            // close is held back (it broke the protocol) is absorbed unseen, like an answer to a
            // close the relay sent: the destination gets its 1002 / 1007 / 1009 instead.
            let absorb = close.is_some() && matches!(self.destination, Destination::Deferred(_));
            if discarding || absorb {
                if let Some(payload) = close {
                    self.release_deferred_close();
                    self.finish_reading();
                    return Some(PumpEvent::Close(payload));
                }
                continue;
            }
            self.traffic.remasked += step.remasked;
            let result = hooked_piece(
                h,
                hook,
                self.from,
                self.from == Side::Client,
                bytes,
                &piece,
                close,
                &mut self.traffic,
            );
            self.mid_frame = matches!(h.current, Current::Chunked { passing: true, .. });
            match (result, close) {
                (Err(event), _) => {
                    self.finish_reading();
                    return Some(event);
                }
                (Ok(()), Some(payload)) => {
                    // The close is the last frame queued: written out, the destination was told.
                    self.destination = Destination::ForwardingClose;
                    self.finish_reading();
                    return Some(PumpEvent::Close(payload));
                }
                (Ok(()), None) => {}
            }
        }
    }
}

/// `payload` into `scratch`, unmasked (`offset` is its position in its frame's payload).
fn unmask_into(scratch: &mut Vec<u8>, payload: &[u8], mask: Option<[u8; 4]>, offset: u64) {
    scratch.clear();
    scratch.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(scratch, key, offset);
    }
}

/// The hook asked to close both sides; a code not valid on the wire becomes 1011.
fn hook_close(code: u16, reason: String, peer_close: Option<ClosePayload>) -> PumpEvent {
    let code = if is_valid_close_code(code) {
        code
    } else {
        wsrelay_codec::close::code::INTERNAL_ERROR
    };
    PumpEvent::HookClose {
        code,
        reason,
        peer_close,
    }
}

/// The hook returned something the frame under way cannot carry: both sides get 1011.
fn hook_misuse(reason: &str, peer_close: Option<ClosePayload>) -> PumpEvent {
    hook_close(
        wsrelay_codec::close::code::INTERNAL_ERROR,
        reason.to_owned(),
        peer_close,
    )
}

/// A header for a frame the relay encodes: masked with a fresh key towards the upstream. With
/// no key to be had the frame is not sent: the connection ends (see [`wsrelay_codec::random`]).
#[allow(clippy::result_large_err)]
fn out_header(opcode: OpCode, fin: bool, rsv: u8, masked: bool) -> Result<FrameHeader, PumpEvent> {
    let mask = if masked {
        Some(random::masking_key().map_err(PumpEvent::RandomFailed)?)
    } else {
        None
    };
    Ok(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: 0,
    })
}

/// Keeps the fragment sequence valid when the hook drops a data frame (whole, or on its first
/// chunk): a dropped first fragment drops its message, a dropped final fragment is replaced by
/// an empty one that ends the message.
#[allow(clippy::result_large_err)]
fn drop_data_frame(
    h: &mut HookState,
    header: &FrameHeader,
    masked: bool,
    traffic: &mut Traffic,
) -> Result<(), PumpEvent> {
    match header.opcode {
        OpCode::Continuation if header.fin => {
            let empty = out_header(OpCode::Continuation, true, 0, masked)?;
            write_frame(h.out.queue(), empty, &[]);
            traffic.frames += 1;
        }
        OpCode::Continuation => {}
        _ => h.dropping_message = !header.fin,
    }
    Ok(())
}

/// Shows one piece (a control frame, a whole data frame, a chunk, or the end of an aggregated
/// message) to the hook and appends what it decides to the output.
// The error is the connection's last event (at most once per connection), so its size is moot.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
fn hooked_piece<H: FrameHook>(
    h: &mut HookState,
    hook: &mut H,
    from: Side,
    masked: bool,
    bytes: &[u8],
    piece: &Piece,
    close: Option<ClosePayload>,
    traffic: &mut Traffic,
) -> Result<(), PumpEvent> {
    let payload = &bytes[piece.payload.0..piece.payload.1];
    if let Some(header) = piece.header {
        if header.opcode.is_control() {
            unmask_into(&mut h.scratch, payload, piece.mask, 0);
            let mut frame = Frame {
                from,
                opcode: header.opcode,
                fin: true,
                rsv: header.rsv,
                chunk: None,
                payload: &mut h.scratch,
            };
            match hook.on_frame(&mut frame) {
                Verdict::Drop if close.is_none() => {}
                // A close cannot be dropped: the close handshake goes on.
                Verdict::Forward | Verdict::Drop => {
                    h.out.queue().extend_from_slice(bytes);
                    traffic.frames += 1;
                }
                Verdict::Replace => {
                    let valid = h.scratch.len() <= 125
                        && (close.is_none() || CloseFrame::parse(&h.scratch).is_ok());
                    if !valid {
                        return Err(hook_misuse(
                            "frame hook made an invalid control frame",
                            close,
                        ));
                    }
                    let out = out_header(header.opcode, true, header.rsv, masked)?;
                    write_frame(h.out.queue(), out, &h.scratch);
                    traffic.frames += 1;
                }
                Verdict::Close { code, reason } => return Err(hook_close(code, reason, close)),
            }
            return Ok(());
        }
        // A data frame starts.
        h.current = if h.dropping_message && header.opcode == OpCode::Continuation {
            Current::Skip { fin: header.fin }
        } else if h.aggregate {
            if header.opcode != OpCode::Continuation {
                h.message.clear();
                h.message_head = (header.opcode, header.rsv);
            }
            Current::Collect { fin: header.fin }
        } else if piece.complete {
            unmask_into(&mut h.scratch, payload, piece.mask, 0);
            let mut frame = Frame {
                from,
                opcode: header.opcode,
                fin: header.fin,
                rsv: header.rsv,
                chunk: None,
                payload: &mut h.scratch,
            };
            match hook.on_frame(&mut frame) {
                Verdict::Forward => {
                    h.out.queue().extend_from_slice(bytes);
                    traffic.frames += 1;
                }
                Verdict::Replace => {
                    let out = out_header(header.opcode, header.fin, header.rsv, masked)?;
                    write_frame(h.out.queue(), out, &h.scratch);
                    traffic.frames += 1;
                }
                Verdict::Drop => drop_data_frame(h, &header, masked, traffic)?,
                Verdict::Close { code, reason } => return Err(hook_close(code, reason, None)),
            }
            return Ok(());
        } else {
            let mut head = [0u8; MAX_HEADER_LEN];
            head[..piece.header_len].copy_from_slice(&bytes[..piece.header_len]);
            Current::Chunked {
                header,
                head,
                head_len: piece.header_len as u8,
                passing: false,
            }
        };
    }
    match h.current {
        Current::None => {}
        Current::Skip { fin } => {
            if piece.complete {
                h.current = Current::None;
                if fin {
                    h.dropping_message = false;
                }
            }
        }
        Current::Collect { fin } => {
            let at = h.message.len();
            h.message.extend_from_slice(payload);
            if let Some(key) = piece.mask {
                apply_mask(&mut h.message[at..], key, piece.offset);
            }
            if piece.complete {
                h.current = Current::None;
                if fin {
                    return deliver_message(h, hook, from, masked, traffic);
                }
            }
        }
        Current::Chunked {
            header,
            head,
            head_len,
            passing,
        } => {
            if payload.is_empty() && !piece.complete {
                return Ok(()); // only the header so far
            }
            unmask_into(&mut h.scratch, payload, piece.mask, piece.offset);
            let mut frame = Frame {
                from,
                opcode: header.opcode,
                fin: header.fin,
                rsv: header.rsv,
                chunk: Some(Chunk {
                    offset: piece.offset,
                    frame_len: header.payload_len,
                }),
                payload: &mut h.scratch,
            };
            let verdict = hook.on_frame(&mut frame);
            match verdict {
                Verdict::Forward | Verdict::Replace => {
                    let replace = verdict == Verdict::Replace;
                    if replace && h.scratch.len() != payload.len() {
                        return Err(hook_misuse(
                            "frame hook changed the length of a chunk",
                            None,
                        ));
                    }
                    if !passing {
                        h.out
                            .queue()
                            .extend_from_slice(&head[..usize::from(head_len)]);
                        traffic.frames += 1;
                        h.current = Current::Chunked {
                            header,
                            head,
                            head_len,
                            passing: true,
                        };
                    }
                    if replace {
                        // Same length, same header: masked again with the frame's own key.
                        let out = h.out.queue();
                        let at = out.len();
                        out.extend_from_slice(&h.scratch);
                        if let Some(key) = piece.mask {
                            apply_mask(&mut out[at..], key, piece.offset);
                        }
                    } else {
                        h.out.queue().extend_from_slice(payload);
                    }
                }
                Verdict::Drop if !passing => {
                    h.current = Current::Skip { fin: header.fin };
                    drop_data_frame(h, &header, masked, traffic)?;
                }
                Verdict::Drop => {
                    return Err(hook_misuse(
                        "frame hook dropped a frame already under way",
                        None,
                    ))
                }
                Verdict::Close { code, reason } => return Err(hook_close(code, reason, None)),
            }
            if piece.complete {
                if let Current::Skip { fin: true } = h.current {
                    h.dropping_message = false;
                }
                h.current = Current::None;
            }
        }
    }
    Ok(())
}

/// Shows a complete aggregated message to the hook; it leaves as one frame.
#[allow(clippy::result_large_err)]
fn deliver_message<H: FrameHook>(
    h: &mut HookState,
    hook: &mut H,
    from: Side,
    masked: bool,
    traffic: &mut Traffic,
) -> Result<(), PumpEvent> {
    let (opcode, rsv) = h.message_head;
    let mut frame = Frame {
        from,
        opcode,
        fin: true,
        rsv,
        chunk: None,
        payload: &mut h.message,
    };
    let result = match hook.on_frame(&mut frame) {
        Verdict::Forward | Verdict::Replace => {
            let out = out_header(opcode, true, rsv, masked)?;
            write_frame(h.out.queue(), out, &h.message);
            traffic.frames += 1;
            Ok(())
        }
        Verdict::Drop => Ok(()),
        Verdict::Close { code, reason } => Err(hook_close(code, reason, None)),
    };
    h.message.clear();
    // A large message's memory is not kept for the rest of the connection.
    h.message.shrink_to(64 * 1024);
    result
}
