//! Splicing: large payloads forwarded from socket to socket through a kernel pipe
//! (Linux `splice(2)`), never copied through the relay's buffer.
//!
//! In pass-through mode the relay does not change a payload byte, so once a frame's header is
//! checked, its payload can go from the source socket into a pipe and from the pipe into the
//! destination socket without entering user space. The relay does this when all of these hold:
//!
//! - the relay was built with [`Relay::with_splice`](crate::Relay::with_splice), both streams
//!   are plain TCP ([`SpliceSocket`] gives their sockets), the OS is Linux, and
//!   [`RelayOptions::splice_threshold`](crate::RelayOptions::splice_threshold) is set;
//! - the direction has no [frame hook](crate::hook) and no [rate limit](crate::rate) (both
//!   see every byte);
//! - the frame's payload needs no look: binary, or text without UTF-8 validation (validation
//!   off, or a compressed message), and not a client frame being re-masked (see
//!   [`Remask`](crate::Remask): re-masking rewrites the payload);
//! - nothing of the source waits in the buffer, and at least the threshold's worth of the
//!   frame's payload is still to come (once a frame's splicing started, its rest is spliced
//!   whatever is left).
//!
//! Then at most the frame's rest is spliced, in steps of up to the pipe's size: the next
//! header, control frames and everything else go through the buffer and its checks as always.
//! Bytes in the pipe count as output waiting to be written, so nothing of the relay's own (a
//! ping, a close) gets between them; a destination that fails abandons them with the pipe.
//! Back-pressure is the same as through the buffer: while the pipe holds bytes the destination
//! has not taken, the source is not read. Once a frame was spliced, the next header is read
//! alone (a few bytes), so that a following large frame's payload is spliced too rather than
//! read into the buffer with its header; the first small frame ends that.
//!
//! Pipes come from a small per-thread pool: a connection holds one only while a spliced
//! payload is in flight, and an idle connection holds none.

use tokio::net::TcpStream;

/// [`RelayOptions::splice_threshold`](crate::RelayOptions::splice_threshold) by default:
/// payloads with less left than this go through the buffer.
pub const DEFAULT_THRESHOLD: u32 = 64 * 1024;

/// [`RelayOptions::splice_pipe_size`](crate::RelayOptions::splice_pipe_size) by default: 1 MiB
/// (`fs.pipe-max-size`'s default; with the kernel's 64 KiB pipes splicing loses to copying).
pub const DEFAULT_PIPE_SIZE: u32 = 1 << 20;

/// A stream that may offer its TCP socket for splicing: one whose bytes are the socket's bytes
/// unchanged (plain TCP, not TLS). [`Relay::with_splice`](crate::Relay::with_splice) takes
/// streams of such types; a stream type that is sometimes TLS answers per stream.
pub trait SpliceSocket {
    /// The TCP socket under this stream, if what is written to the stream goes to the socket
    /// as it is; `None` otherwise (TLS, HTTP/2 streams, anything buffered in between).
    fn tcp_socket(&self) -> Option<&TcpStream>;
}

impl SpliceSocket for TcpStream {
    fn tcp_socket(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

/// How a relay finds the sockets of its client and upstream streams, when it splices.
pub(crate) type Sockets<C, U> = for<'a> fn(&'a C, &'a U) -> Option<(&'a TcpStream, &'a TcpStream)>;

/// The client's and the upstream's sockets, if both streams offer one.
pub(crate) fn sockets<'a, C: SpliceSocket, U: SpliceSocket>(
    client: &'a C,
    upstream: &'a U,
) -> Option<(&'a TcpStream, &'a TcpStream)> {
    Some((client.tcp_socket()?, upstream.tcp_socket()?))
}
