//! The pump's side of a direction's rate limit (see [`crate::rate`]): how much of the input
//! the budget admits, the wait of a throttled sender, the violation under the close action.

use std::task::{Context, Poll};

use wsrelay_codec::ParseConfig;

use super::Pump;
use crate::rate::{self, RateAction, RateLimit, Throttle};
use crate::Violation;

impl Pump {
    /// Puts this direction under `limit`; its frames are read as `parse` says.
    pub(crate) fn limit_rate(&mut self, limit: &RateLimit, parse: ParseConfig) {
        self.rate = Throttle::new(limit, parse).map(|t| Box::new((t, *limit)));
    }

    /// How many unconsumed bytes may be checked now: [`input_limit`](Pump::input_limit), within
    /// the rate limit if there is one. A sender over its budget under the close action gets
    /// its violation (1008; reading stops) once the bytes it was allowed have gone through.
    pub(super) fn admitted_input(&mut self) -> Result<usize, Violation> {
        let limit = self.input_limit();
        let Some(rate) = self.rate.as_deref_mut() else {
            return Ok(limit);
        };
        let (throttle, budget) = rate;
        let Some(buf) = self.buf.as_deref() else {
            return Ok(limit);
        };
        let input = &buf[self.ready..self.end];
        let admitted = throttle.admit(input, self.forwarder.payload_remaining());
        if admitted.len == 0 && admitted.over && throttle.action() == RateAction::Close {
            let (what, per_second) = rate::describe(budget);
            self.finish_reading();
            return Err(Violation::RateLimited { what, per_second });
        }
        Ok(limit.min(admitted.len))
    }

    /// The forwarder took in `n` bytes of the admitted input.
    pub(super) fn rate_consumed(&mut self, n: usize) {
        if let Some((throttle, _)) = self.rate.as_deref_mut() {
            throttle.consumed(n);
        }
    }

    /// Ready when the source may be read; pending while a throttled sender waits for its budget
    /// (the task is woken when it has one again). When a held-back sender may go on, the bytes
    /// left in the buffer are checked before more is read.
    pub(super) fn poll_rate(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some((throttle, _)) = self.rate.as_deref_mut() else {
            return Poll::Ready(());
        };
        match throttle.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(resumed) => {
                if resumed && self.ready < self.end {
                    self.hold(true);
                }
                Poll::Ready(())
            }
        }
    }
}
