//! A gate in front of the owner's signals (the shutdown future, the deadline): they are polled
//! only after they woke the relay's task, not on every wake-up.
//!
//! The relay's one task is woken for every frame, and the gateway's shutdown signal is a
//! select over watch channels that every connection of every worker shares: polling it takes
//! their locks, on every wake-up of every connection. Polled through the gate, the signals get
//! a waker of the gate's own, which notes that they fired and then wakes the task; the relay
//! polls them again only when that note is set. Per wake-up that costs one waker registration
//! (two atomic operations on this connection's own memory) instead of a poll of each signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use atomic_waker::AtomicWaker;

/// The gate of one relay: shared by the relay and the wakers its signals hold.
pub(crate) struct Gate(Arc<Flag>);

/// Whether a signal woke the task since it was last polled, and the task to wake.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Noted before the task is woken, so the poll it leads to sees the note.
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// A gate that lets the first poll through (the signals have never been polled).
    pub(crate) fn new() -> Gate {
        Gate(Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        }))
    }

    /// Registers the task of `cx` for the signals' wake-ups; returns the waker to poll the
    /// signals with if they woke the task since the last time (or were never polled), `None`
    /// when they need no poll now.
    pub(crate) fn open(&self, cx: &Context<'_>) -> Option<Waker> {
        // Registered before the note is read: a signal firing after the read wakes this task.
        self.0.task.register(cx.waker());
        if !self.0.woken.load(Ordering::Acquire) {
            return None;
        }
        self.0.woken.store(false, Ordering::Relaxed);
        Some(Waker::from(Arc::clone(&self.0)))
    }

    /// Lets the next [`open`](Gate::open) through again: a signal fired and the others were not
    /// polled in the same pass.
    pub(crate) fn reopen(&self) {
        self.0.woken.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    /// A signal polled through the gate is polled once, then only after it woke the task; a
    /// wake-up it did not cause lets nothing through.
    #[tokio::test]
    async fn signals_are_polled_only_after_they_woke_the_task() {
        let gate = Gate::new();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let mut tx = Some(tx);
        let (mut polls, mut wakeups) = (0, 0);
        let done = std::future::poll_fn(|cx| {
            if let Some(waker) = gate.open(cx) {
                polls += 1;
                if Pin::new(&mut rx)
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
                {
                    return Poll::Ready(());
                }
            }
            if wakeups < 3 {
                // Other work (frames) wakes the task a few times before the signal fires.
                wakeups += 1;
                cx.waker().wake_by_ref();
            } else if let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
            Poll::Pending
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), done)
            .await
            .expect("the signal's wake-up reached the task");
        assert_eq!(
            polls, 2,
            "polled at first and once it fired, not on other wake-ups"
        );
    }
}
