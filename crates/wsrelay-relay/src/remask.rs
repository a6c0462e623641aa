//! Re-masking a client's frames towards the upstream with keys of the relay's own (RFC 6455
//! §5.3, §10.3): when it happens ([`Remask`]), what the forwarder remembers for it from frame
//! to frame, and the in-place rewrite of a frame's key. The forwarder's step loop calls these;
//! its payload pass is one XOR with `old_key ^ new_key` as the bytes stream through.

use wsrelay_codec::FrameHeader;

/// When the relay replaces a client's masking key with one of its own (RFC 6455 §5.3, §10.3).
///
/// Towards the upstream the relay is the client, and a client's masking key "MUST be derived
/// from a strong source of entropy": masking keeps bytes a script chose off the wire, where a
/// confused intermediary could take them for HTTP. A browser's keys are random and can pass as
/// they are; a client that sends the key `00 00 00 00`, or one key twice in a row, is
/// predictable, and forwarding its frames unchanged would put its plaintext on the upstream
/// connection. Re-masking costs one XOR pass over the payload with `old_key ^ new_key`, in
/// place, as the payload streams through; the new key comes from
/// [`wsrelay_codec::random::masking_key`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Remask {
    /// Re-mask from the first frame whose key is predictable (zero, or the same as that
    /// client's previous frame) to the end of the connection; random keys pass unchanged.
    #[default]
    Auto,
    /// Re-mask every client frame.
    Always,
    /// Forward every key as the client chose it (for clients the operator trusts).
    Never,
}

/// What re-masking remembers from frame to frame. Copied into the step loop and back, so the
/// loop keeps it in registers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    /// The client's key on its previous frame, for [`Remask::Auto`] (0 before the first: a
    /// zero key is predictable anyway).
    last: u32,
    /// Every frame from now on is re-masked: [`Remask::Always`], or [`Remask::Auto`] once a
    /// predictable key was seen.
    pub(crate) all: bool,
}

/// Re-masking state the loop touches only on a re-masked frame (kept out of its registers).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rekey {
    /// The data frame under way was re-masked: its old key XOR its new one, applied to its
    /// payload as it passes.
    pub(crate) delta: [u8; 4],
    /// The loop stopped before a frame that needs a new key: the frame's own key.
    pub(crate) want: Option<[u8; 4]>,
    /// The key drawn for that frame, taken by the loop when it resumes.
    pub(crate) spare: Option<[u8; 4]>,
}

impl Keys {
    /// The state at the start of a stream under `mode`.
    pub(crate) fn new(mode: Remask) -> Keys {
        Keys {
            last: 0,
            all: mode == Remask::Always,
        }
    }

    /// Decides whether the client's frame with masking key `key` leaves with a new key: one
    /// comparison with the previous key per frame, no branch on the mode.
    #[inline(always)]
    pub(crate) fn remask(&mut self, key: [u8; 4]) -> bool {
        let key = u32::from_ne_bytes(key);
        // `all` is set from the start under `Always`; under `Never` nothing calls this.
        self.all |= key == 0 || key == self.last;
        self.last = key;
        self.all
    }
}

/// Writes `new` over the masking key of the frame whose header ends at `wire[at]` (a masked
/// header's last four bytes) and records it in `header`; returns `old ^ new`, the pass that
/// turns the payload from one key to the other.
#[inline(always)]
pub(crate) fn rekey(wire: &mut [u8], at: usize, header: &mut FrameHeader, new: [u8; 4]) -> [u8; 4] {
    let old = header.mask.unwrap_or_default();
    if let Some(key) = wire.get_mut(at.saturating_sub(4)..at) {
        key.copy_from_slice(&new);
    }
    header.mask = Some(new);
    xor(old, new)
}

/// The pass that turns bytes masked with `a` into bytes masked with `b`.
fn xor(a: [u8; 4], b: [u8; 4]) -> [u8; 4] {
    (u32::from_ne_bytes(a) ^ u32::from_ne_bytes(b)).to_ne_bytes()
}

/// The bytes a step reads: only read by [`Forwarder::process`](crate::Forwarder::process),
/// writable (for re-masking) by
/// [`Forwarder::process_mut`](crate::Forwarder::process_mut). Generic, so the read-only loop has
/// no re-masking code in it.
pub(crate) trait Wire {
    /// True for the writable kind.
    const WRITABLE: bool;
    fn bytes(&self) -> &[u8];
    fn bytes_mut(&mut self) -> Option<&mut [u8]>;
}

impl Wire for &[u8] {
    const WRITABLE: bool = false;

    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        self
    }

    #[inline(always)]
    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        None
    }
}

impl Wire for &mut [u8] {
    const WRITABLE: bool = true;

    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        self
    }

    #[inline(always)]
    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        Some(self)
    }
}
