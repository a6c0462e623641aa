//! What a pump writes besides the bytes it forwards from its buffer: control frames of the
//! relay's own, the hook path's encoded output, and the one helper every write goes through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;
use wsrelay_codec::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};

/// Writes `bytes[*written..]` once, as far as the destination takes it, and moves `written`
/// on. Ready with the number of bytes written, never 0: a destination that takes nothing is
/// `WriteZero`, so a caller looping until done cannot spin.
pub(super) fn poll_write_from<D: AsyncWrite + ?Sized>(
    dst: Pin<&mut D>,
    cx: &mut Context<'_>,
    bytes: &[u8],
    written: &mut usize,
) -> Poll<io::Result<usize>> {
    let n = ready!(dst.poll_write(cx, &bytes[*written..]))?;
    if n == 0 {
        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
    }
    *written += n;
    Poll::Ready(Ok(n))
}

/// A control frame the relay encodes itself (a keep-alive ping, a close), held inline with how
/// much of it was written. `N` is its largest size on the wire, header included (at most 255).
pub(super) struct OwnFrame<const N: usize> {
    bytes: [u8; N],
    len: u8,
    written: u8,
}

impl<const N: usize> OwnFrame<N> {
    /// Encodes a final `opcode` frame carrying `payload`, masked with `mask` if given (frames
    /// towards an upstream, RFC 6455 §5.3). The header and `payload` must fit in `N` bytes.
    pub(super) fn new(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> OwnFrame<N> {
        let header = FrameHeader {
            mask,
            ..FrameHeader::new(opcode, payload.len() as u64)
        };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let head = header.encode(&mut hbuf);
        let len = head.len() + payload.len();
        let mut bytes = [0u8; N];
        bytes[..head.len()].copy_from_slice(head);
        let body = &mut bytes[head.len()..len];
        body.copy_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(body, key, 0);
        }
        OwnFrame {
            bytes,
            len: len as u8,
            written: 0,
        }
    }

    /// True once part of the frame went out: then it must be finished before any other byte.
    pub(super) fn started(&self) -> bool {
        self.written > 0
    }

    /// Writes more of the frame; ready with `true` once all of it is written.
    pub(super) fn poll_write<D: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        dst: Pin<&mut D>,
    ) -> Poll<io::Result<bool>> {
        let mut written = usize::from(self.written);
        let frame = &self.bytes[..usize::from(self.len)];
        ready!(poll_write_from(dst, cx, frame, &mut written))?;
        // At most `len`, which fits in a u8.
        self.written = written as u8;
        Poll::Ready(Ok(self.written == self.len))
    }
}

/// Frames the hook path encoded for the destination: `bytes[written..]` is still to write.
#[derive(Default)]
pub(super) struct Output {
    bytes: Vec<u8>,
    written: usize,
}

impl Output {
    /// Bytes still to write.
    pub(super) fn len(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// True when everything queued was written.
    pub(super) fn is_empty(&self) -> bool {
        self.written == self.bytes.len()
    }

    /// The queue, to append encoded frames to.
    pub(super) fn queue(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Drops whatever is queued (the destination is gone).
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.written = 0;
    }

    /// Writes more of the queue; ready with the number of bytes written. The queue's memory is
    /// reused once it is all written.
    pub(super) fn poll_write<D: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        dst: Pin<&mut D>,
    ) -> Poll<io::Result<usize>> {
        let n = ready!(poll_write_from(dst, cx, &self.bytes, &mut self.written))?;
        if self.is_empty() {
            self.clear();
        }
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_frames_encode_masked_and_unmasked() {
        let plain = OwnFrame::<14>::new(OpCode::Ping, b"12345678", None);
        assert_eq!(&plain.bytes[..usize::from(plain.len)], b"\x89\x0812345678");
        let key = [1, 2, 3, 4];
        let masked = OwnFrame::<14>::new(OpCode::Ping, b"12345678", Some(key));
        let wire = &masked.bytes[..usize::from(masked.len)];
        assert_eq!(&wire[..6], &[0x89, 0x88, 1, 2, 3, 4]);
        let mut payload = wire[6..].to_vec();
        apply_mask(&mut payload, key, 0);
        assert_eq!(payload, b"12345678");
    }

    #[tokio::test]
    async fn writes_resume_at_the_cursor() {
        // A pipe that takes 3 bytes at a time: every write picks up where the last one ended.
        let (mut near, mut far) = tokio::io::duplex(3);
        let mut frame = OwnFrame::<14>::new(OpCode::Ping, b"12345678", None);
        let reader = tokio::spawn(async move {
            let mut got = [0u8; 10];
            tokio::io::AsyncReadExt::read_exact(&mut far, &mut got)
                .await
                .unwrap();
            got
        });
        let mut writes = 0;
        loop {
            writes += 1;
            let done = std::future::poll_fn(|cx| frame.poll_write(cx, Pin::new(&mut near)))
                .await
                .unwrap();
            assert!(frame.started());
            if done {
                break;
            }
        }
        assert!(writes >= 4, "{writes} writes");
        assert_eq!(&reader.await.unwrap(), b"\x89\x0812345678");
    }
}
