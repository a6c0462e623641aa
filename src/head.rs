//! Reading one HTTP head (a request or a response) off a stream: the one loop every place that
//! waits for a head uses (the gateway's client and upstream sides, the embedding API, the echo
//! server, the load tool).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};
use wsrelay_handshake::Parsed;

/// Bytes asked of the stream per read. Heads are small; a peer that pipelines frames behind
/// its head may fill more, and those bytes stay in the buffer for the relay.
const READ_CHUNK: usize = 4096;

/// Why no head was read.
#[derive(Debug)]
pub enum HeadError<E> {
    /// The peer closed the connection before its head was complete (for a client that
    /// connected and left, nothing needs answering).
    Closed,
    /// Reading failed.
    Io(io::Error),
    /// The parser refused the bytes (malformed, or over its size limits).
    Parse(E),
}

/// Reads from `stream`, appending to `buf`, until `parse` completes on `buf` or fails.
///
/// Returns the parsed value and the length of the head: `buf[consumed..]` holds whatever the
/// peer sent behind it (frames, or a body), already read. The loop is bounded by the parser:
/// the handshake crate's parsers fail on a head over their [`Limits`](wsrelay_handshake::Limits)
/// even while it is incomplete, so a peer sending an endless head is refused, not buffered.
/// Time limits are the caller's (wrap the call in a timeout).
pub async fn read_head<S, T, E>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    mut parse: impl FnMut(&[u8]) -> Result<Parsed<T>, E>,
) -> Result<(T, usize), HeadError<E>>
where
    S: AsyncRead + Unpin,
{
    loop {
        // A head that arrived whole with an earlier read (or was handed in) needs no read.
        if !buf.is_empty() {
            match parse(buf).map_err(HeadError::Parse)? {
                Parsed::Complete { value, consumed } => return Ok((value, consumed)),
                Parsed::Partial => {}
            }
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(buf).await {
            Ok(0) => return Err(HeadError::Closed),
            Ok(_) => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use wsrelay_handshake::{HandshakeError, Limits, RequestHead};

    fn parse(buf: &[u8]) -> Result<Parsed<RequestHead>, HandshakeError> {
        RequestHead::parse(buf, &Limits::default())
    }

    #[tokio::test]
    async fn a_head_split_over_reads_is_read_whole_and_what_follows_it_is_kept() {
        let (mut near, mut far) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for part in [&b"GET /x HTTP/1.1\r\nHo"[..], b"st: a\r\n\r\n", b"\x81\x00"] {
                far.write_all(part).await.unwrap();
                tokio::task::yield_now().await;
            }
            far
        });
        let mut buf = Vec::new();
        let (head, consumed) = read_head(&mut near, &mut buf, parse).await.unwrap();
        assert_eq!(head.target, "/x");
        assert_eq!(head.host(), Some("a"));
        let _far = writer.await.unwrap();
        // Whatever came behind the head in the same reads is kept, never parsed as head.
        assert!(buf[consumed..].len() <= 2);
        assert_eq!(&buf[..consumed], b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn a_peer_that_leaves_mid_head_is_closed_not_an_error() {
        let (mut near, mut far) = tokio::io::duplex(64);
        far.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        drop(far);
        let mut buf = Vec::new();
        let result = read_head(&mut near, &mut buf, parse).await;
        assert!(matches!(result, Err(HeadError::Closed)), "{result:?}");
    }

    #[tokio::test]
    async fn an_endless_head_is_refused_by_the_parser_limit() {
        let (mut near, mut far) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            far.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            // Headers forever: the reader must give up at the byte limit, not buffer them all.
            for _ in 0..10_000 {
                if far
                    .write_all(b"X-Filler: aaaaaaaaaaaaaaaa\r\n")
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut buf = Vec::new();
        let result = read_head(&mut near, &mut buf, parse).await;
        assert!(
            matches!(
                result,
                Err(HeadError::Parse(HandshakeError::HeaderTooLarge { .. }))
            ),
            "{result:?}"
        );
        assert!(buf.len() < Limits::default().max_header_bytes + 2 * READ_CHUNK);
        drop(near);
        writer.await.unwrap();
    }
}
