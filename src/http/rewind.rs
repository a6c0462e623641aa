//! A stream with bytes put back in front of it (the head the gateway already read, given to
//! hyper's server so that it parses the message from its first byte), read up to a limit (the
//! message's length, so hyper does not read the head behind it).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, read after the bytes of `pre`, `left` bytes at most.
pub(crate) struct Rewind<S> {
    pre: Vec<u8>,
    at: usize,
    inner: S,
    /// Bytes reads may still give (then they wait); `None`: no limit.
    left: Option<u64>,
}

impl<S> Rewind<S> {
    /// Reads give `pre` first, then what `inner` gives.
    pub(crate) fn new(pre: Vec<u8>, inner: S) -> Rewind<S> {
        Rewind {
            pre,
            at: 0,
            inner,
            left: None,
        }
    }

    /// The same, giving `left` bytes at most (`None`: no limit); a read past them waits.
    pub(crate) fn limit(self, left: Option<u64>) -> Rewind<S> {
        Rewind { left, ..self }
    }
}

impl<S> Rewind<S> {
    /// The bytes of `pre` not read yet, and the stream.
    pub(crate) fn into_parts(self) -> (Vec<u8>, S) {
        let mut pre = self.pre;
        pre.drain(..self.at);
        (pre, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(left) = self.left else {
            return self.read_unlimited(cx, buf);
        };
        if left == 0 {
            // The message is all read; the loop ends hyper's turn once its answer is out.
            return Poll::Pending;
        }
        let want = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        let n = {
            let mut part = ReadBuf::new(buf.initialize_unfilled_to(want));
            match self.as_mut().read_unlimited(cx, &mut part) {
                Poll::Ready(Ok(())) => part.filled().len(),
                other => return other,
            }
        };
        buf.advance(n);
        self.left = Some(left - n as u64);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> Rewind<S> {
    /// A read without the limit: from `pre` while it lasts, then from the stream.
    fn read_unlimited(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.pre.len() {
            let n = (this.pre.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.pre[this.at..this.at + n]);
            this.at += n;
            if this.at == this.pre.len() {
                // Given back whole: its memory goes too.
                this.pre = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_put_back_bytes_come_first_then_the_stream() {
        let (near, mut far) = tokio::io::duplex(64);
        far.write_all(b" world").await.unwrap();
        drop(far);
        let mut rewound = Rewind::new(b"hello".to_vec(), near);
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"hello world");
    }

    #[tokio::test]
    async fn a_limited_read_stops_at_the_limit_and_keeps_the_rest() {
        let (near, mut far) = tokio::io::duplex(64);
        far.write_all(b"tail").await.unwrap();
        let mut rewound = Rewind::new(b"head+body|next".to_vec(), near).limit(Some(9));
        let mut got = vec![0u8; 9];
        rewound.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"head+body");
        let mut more = [0u8; 1];
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            rewound.read(&mut more),
        )
        .await;
        assert!(waited.is_err(), "a read past the limit waits");
        let (rest, _) = rewound.into_parts();
        assert_eq!(rest, b"|next");
    }
}
