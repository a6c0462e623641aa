//! Frame hooks: code that sees every frame in flight and may forward, rewrite, drop it or close.
//!
//! A relay without a hook ([`NoHook`], the default) is the plain cut-through relay: its
//! [`FrameHook::ENABLED`] is `false`, every hook branch is removed at compile time and not one
//! instruction of the pass-through path changes. With a hook, each direction unmasks the frames
//! it reads, shows them to the hook, and re-encodes what the hook returns.
//!
//! # What the hook sees
//!
//! - **Frames that fit in the buffer** (header and payload within
//!   [`RelayOptions::buffer_size`](crate::RelayOptions::buffer_size)): the whole frame, once it
//!   has fully arrived, with its unmasked payload. Control frames (ping, pong, close) always
//!   arrive whole, also between the fragments of a message.
//! - **Larger frames** are shown in chunks, in order ([`Frame::chunk`] says where each one
//!   sits). For a chunk the hook may forward it, replace its bytes *with the same number of
//!   bytes*, or close the connection; it may drop the frame only on its first chunk (nothing of
//!   it was sent yet). Replacing a chunk with a different length, or dropping a later chunk,
//!   breaks the frame already under way: the relay closes both sides with 1011 instead.
//! - **With [`RelayOptions::aggregate_fragments`](crate::RelayOptions::aggregate_fragments)**,
//!   data frames are collected into whole messages (at most the direction's
//!   `max_message_size`, [`DEFAULT_AGGREGATE_LIMIT`] when that is `None`; 1009 beyond it)
//!   and the hook sees each message once, with its first frame's opcode and RSV bits. The
//!   message leaves as one frame.
//!
//! # What the hook may do
//!
//! [`Verdict::Forward`] sends the frame on unchanged (the client's own masking key included).
//! [`Verdict::Replace`] sends the payload left in [`Frame::payload_mut`] instead: the header is
//! re-encoded for the new length and frames towards the upstream get a fresh masking key.
//! [`Verdict::Drop`] sends nothing; the fragment sequence stays valid:
//!
//! - dropping the first fragment of a message drops the whole message (its continuation frames
//!   are dropped unseen);
//! - dropping a middle fragment just leaves it out;
//! - dropping the final fragment of a message whose start was forwarded sends an empty
//!   continuation frame with FIN set in its place, so the message still ends.
//!
//! A close frame cannot be dropped (the close handshake must go on): `Drop` on a close forwards
//! it. Its code and reason can be rewritten with [`Frame::set_close`]. [`Verdict::Close`] ends the
//! connection: both sides get a close frame with the hook's code and reason, and the frame is
//! not forwarded (when the destination is inside a chunked frame already, it cannot take a close
//! frame and is shut down without one).
//!
//! The hook is trusted: its replacements are not checked again for UTF-8, and a replaced
//! payload is held in memory whole before it is sent.
//!
//! ```
//! use wsrelay_relay::{Frame, FrameHook, Side, Verdict};
//! use wsrelay_codec::OpCode;
//!
//! /// Upper-cases text from the client; drops binary messages from the upstream.
//! struct Shout;
//!
//! impl FrameHook for Shout {
//!     fn on_frame(&mut self, frame: &mut Frame<'_>) -> Verdict {
//!         match (frame.from(), frame.opcode()) {
//!             (Side::Client, OpCode::Text) => {
//!                 frame.payload_mut().make_ascii_uppercase();
//!                 Verdict::Replace
//!             }
//!             (Side::Upstream, OpCode::Binary) => Verdict::Drop,
//!             _ => Verdict::Forward,
//!         }
//!     }
//! }
//! ```

use wsrelay_codec::{is_valid_close_code, CloseFrame, OpCode};

use crate::Side;

/// Largest message collected for a hook with `aggregate_fragments` on when the direction's
/// `max_message_size` is `None` ("no limit"): aggregation holds whole messages in memory, so
/// it is always bounded. "No limit" thus means no limit for the plain relay and for hooks
/// that see fragments, and this limit for a hook that sees whole messages; a limit that is
/// set always wins, larger or smaller.
pub const DEFAULT_AGGREGATE_LIMIT: u64 = 1 << 20;

/// Code called for every frame (or message, or chunk) a relay passes; see the [module docs](self).
///
/// One hook value serves one relayed connection, both directions ([`Frame::from`] tells them
/// apart), so it may keep per-connection state such as a rate limiter's counters. It runs on the
/// relay's task: it should be quick and must not block.
///
/// Closures `FnMut(&mut Frame<'_>) -> Verdict` are hooks too.
pub trait FrameHook {
    /// False only for [`NoHook`]: the relay then compiles to the plain pass-through path.
    const ENABLED: bool = true;

    /// Decides what becomes of `frame`.
    fn on_frame(&mut self, frame: &mut Frame<'_>) -> Verdict;
}

/// The absence of a hook: frames pass through untouched, at no cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoHook;

impl FrameHook for NoHook {
    const ENABLED: bool = false;

    fn on_frame(&mut self, _frame: &mut Frame<'_>) -> Verdict {
        Verdict::Forward
    }
}

impl<F> FrameHook for F
where
    F: FnMut(&mut Frame<'_>) -> Verdict,
{
    fn on_frame(&mut self, frame: &mut Frame<'_>) -> Verdict {
        self(frame)
    }
}

/// What a hook decides for a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send the frame on as it came.
    Forward,
    /// Send [`Frame::payload`] as the hook left it (see [`Frame::payload_mut`],
    /// [`Frame::set_payload`], [`Frame::set_close`]); the header is re-encoded to match.
    Replace,
    /// Send nothing; see the [module docs](self) for fragments and close frames.
    Drop,
    /// Close both sides with this code and reason (a code valid on the wire: 1000-1003,
    /// 1007-1014, 3000-4999; others become 1011). The frame is not forwarded.
    Close {
        /// The close code both sides get.
        code: u16,
        /// The reason both sides get (cut to 123 bytes).
        reason: String,
    },
}

/// Where a chunk of a frame larger than the buffer sits in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Payload bytes of the frame before this chunk.
    pub offset: u64,
    /// The frame's whole payload length.
    pub frame_len: u64,
}

/// A frame (or aggregated message, or chunk) shown to a [`FrameHook`], with its unmasked payload.
#[derive(Debug)]
pub struct Frame<'a> {
    pub(crate) from: Side,
    pub(crate) opcode: OpCode,
    pub(crate) fin: bool,
    pub(crate) rsv: u8,
    pub(crate) chunk: Option<Chunk>,
    pub(crate) payload: &'a mut Vec<u8>,
}

impl Frame<'_> {
    /// The side that sent the frame.
    pub fn from(&self) -> Side {
        self.from
    }

    /// The opcode as on the wire ([`OpCode::Continuation`] for later fragments; an aggregated
    /// message has its first frame's opcode).
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// True if the frame ends its message (always true for control frames and aggregated messages).
    pub fn fin(&self) -> bool {
        self.fin
    }

    /// The RSV bits (RSV1 marks a compressed permessage-deflate message, whose payload the hook
    /// sees compressed).
    pub fn rsv(&self) -> u8 {
        self.rsv
    }

    /// `Some` when this is one chunk of a frame larger than the relay's buffer.
    pub fn chunk(&self) -> Option<Chunk> {
        self.chunk
    }

    /// The unmasked payload (of this chunk, for a chunk).
    pub fn payload(&self) -> &[u8] {
        self.payload
    }

    /// The payload, to edit in place before returning [`Verdict::Replace`].
    pub fn payload_mut(&mut self) -> &mut Vec<u8> {
        self.payload
    }

    /// Replaces the payload with `bytes` (return [`Verdict::Replace`] for it to take effect).
    pub fn set_payload(&mut self, bytes: &[u8]) {
        self.payload.clear();
        self.payload.extend_from_slice(bytes);
    }

    /// For a close frame: its code, if it has one.
    pub fn close_code(&self) -> Option<u16> {
        if self.opcode != OpCode::Close {
            return None;
        }
        CloseFrame::parse(self.payload).ok().and_then(|c| c.code)
    }

    /// For a close frame: its reason ("" for other frames).
    pub fn close_reason(&self) -> &str {
        if self.opcode != OpCode::Close {
            return "";
        }
        CloseFrame::parse(self.payload).map_or("", |c| c.reason)
    }

    /// For a close frame: replaces its code and reason (cut to 123 bytes at a character
    /// boundary); return [`Verdict::Replace`] for it to take effect. Returns false, changing
    /// nothing, for other frames or a code not valid on the wire (such as 1005 or 1006).
    pub fn set_close(&mut self, code: u16, reason: &str) -> bool {
        if self.opcode != OpCode::Close || !is_valid_close_code(code) {
            return false;
        }
        let mut buf = [0u8; 125];
        let payload = CloseFrame::encode(code, reason, &mut buf);
        self.set_payload(payload);
        true
    }
}
