//! The frames the relay writes itself into a direction's output: its closes (at once, or held
//! until the other side has closed), its keep-alive pings, and the masking keys they need
//! towards the upstream.

use wsrelay_codec::random::{self, RandomError};
use wsrelay_codec::{CloseFrame, OpCode};

use super::{Destination, OwnClose, Ping, Pump, Source};
use crate::{CloseInfo, Side};

impl Pump {
    /// Frames the relay sends towards the upstream are masked (RFC 6455 §5.3: a client masks
    /// every frame, and to the upstream the relay is the client).
    fn masks(&self) -> bool {
        self.from == Side::Client
    }

    /// A fresh masking key if frames to the destination are masked.
    fn mask_key(&self) -> Result<Option<[u8; 4]>, RandomError> {
        if self.masks() {
            random::masking_key().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Queues a close frame for the destination, sent at the next frame boundary; after it,
    /// nothing more is forwarded. Does nothing if a close is already on its way or the
    /// destination is gone. When no masking key can be drawn for it, the close cannot be sent
    /// at all: the destination is abandoned (shut down without a close) and the error returned.
    /// A close already held back with [`defer_close`](Pump::defer_close) goes out instead
    /// (the code of the failure, decided first, is the one RFC 6455 §7.1.7 asks for).
    pub(crate) fn inject_close(&mut self, code: u16, reason: &str) -> Result<(), RandomError> {
        if self.release_deferred_close() {
            return Ok(());
        }
        if let Some(close) = self.own_close(code, reason)? {
            self.destination = Destination::Injecting(close);
        }
        Ok(())
    }

    /// Holds a close of the relay's own for the destination, which broke the protocol, until
    /// the source's own close arrives (absorbed, not forwarded) or
    /// [`release_deferred_close`](Pump::release_deferred_close) is called; meanwhile the
    /// source's frames are forwarded as usual. Does nothing unless the destination is open;
    /// without a masking key for the close, the destination is abandoned and the error returned.
    pub(crate) fn defer_close(&mut self, code: u16, reason: &str) -> Result<(), RandomError> {
        if let Some(close) = self.own_close(code, reason)? {
            self.destination = Destination::Deferred(close);
        }
        Ok(())
    }

    /// Sends a close held back by [`defer_close`](Pump::defer_close) at the next frame
    /// boundary, as [`inject_close`](Pump::inject_close) would. False if none was held.
    pub(crate) fn release_deferred_close(&mut self) -> bool {
        if !matches!(self.destination, Destination::Deferred(_)) {
            return false;
        }
        if let Destination::Deferred(close) =
            std::mem::replace(&mut self.destination, Destination::Open)
        {
            self.destination = Destination::Injecting(close);
        }
        true
    }

    /// Encodes a close of the relay's own for an open destination and notes it for the outcome;
    /// `None` if the destination is not open. No masking key: abandoned, and the error returned.
    fn own_close(&mut self, code: u16, reason: &str) -> Result<Option<OwnClose>, RandomError> {
        if !matches!(self.destination, Destination::Open) {
            return Ok(None);
        }
        // A ping half written is finished first (cutting it would corrupt the stream); one not
        // yet started is no longer needed.
        if !self.ping.as_ref().is_some_and(Ping::started) {
            self.ping = None;
        }
        let mask = match self.mask_key() {
            Ok(mask) => mask,
            Err(error) => {
                self.abandon_destination();
                return Err(error);
            }
        };
        let mut payload_buf = [0u8; 125];
        let payload = CloseFrame::encode(code, reason, &mut payload_buf);
        self.injected = Some(CloseInfo {
            code: Some(code),
            reason: CloseFrame::parse(payload)
                .map_or_else(|_| String::new(), |c| c.reason.to_owned()),
        });
        Ok(Some(OwnClose::new(OpCode::Close, payload, mask)))
    }

    /// True when the forwarded bytes end inside a frame the source will never finish (it was
    /// stopped mid-frame, e.g. by invalid UTF-8 deep in a large text frame): the destination
    /// can be sent no close frame, only shut down.
    pub(crate) fn stranded_mid_frame(&self) -> bool {
        self.mid_frame && self.source == Source::Stopped
    }

    /// Queues a keep-alive ping carrying `token` for the destination, sent at the next frame
    /// boundary. Does nothing once closing began or while a ping is still queued; an error
    /// when no masking key can be drawn for it (nothing is queued then).
    pub(crate) fn inject_ping(&mut self, token: [u8; 8]) -> Result<(), RandomError> {
        if !matches!(self.destination, Destination::Open) || self.ping.is_some() {
            return Ok(());
        }
        self.ping = Some(Ping::new(OpCode::Ping, &token, self.mask_key()?));
        Ok(())
    }
}
