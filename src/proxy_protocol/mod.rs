//! The PROXY protocol (HAProxy's, v1 and v2): an L4 balancer in front of wsrelay (HAProxy in
//! TCP mode, a cloud network load balancer) writes one header before the client's bytes,
//! saying who the client is; without it every client would look like the balancer.
//!
//! ```text
//! accept -> peer allowed to send it? (else closed) -> first byte -> [read the header, no byte
//!   past it] -> the carried address is the client's: per-address admission, TLS, logs,
//!   X-Forwarded-For / Forwarded, hash balancing -> ... -> upstream (optionally its own v2 header)
//! ```
//! A listener with `proxy_protocol = true` requires the header from the peers it lists and
//! closes every other connection; a missing, malformed or late header closes the connection
//! too (logged). The header is read within the handshake timeout, before TLS, in a future
//! boxed after the first byte, so silent connections cost what they did.

pub mod header;
#[cfg(test)]
mod header_tests;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant as Deadline;

use crate::admission::Permit;
use crate::config::GatewayConfig;
use crate::pipeline::Listening;

pub use header::{Carried, HeaderError, ProxyHeader};

/// A listener's PROXY protocol policy: the peers that must send the header (and the only
/// ones it takes connections from).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptProxy {
    /// The balancers' networks (`proxy_protocol_from`, else the listener's `trusted_proxies`).
    pub from: Vec<IpNet>,
}

impl AcceptProxy {
    /// True if `peer` may connect (and so must send a header).
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.from.iter().any(|net| net.contains(&peer))
    }
}

/// Why a connection on a PROXY protocol listener was closed before its header was read.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The bytes are not an acceptable header.
    #[error("{0}")]
    Header(#[from] HeaderError),
    /// The peer closed, or its socket failed, in the middle of the header.
    #[error("connection failed while reading the PROXY header: {0}")]
    Io(#[from] io::Error),
    /// The whole header did not arrive within the handshake timeout.
    #[error("no complete PROXY header within {0:?}")]
    TimedOut(Duration),
}

/// Reads one PROXY header from `tcp` and takes exactly its bytes, no more: what follows (the
/// TLS ClientHello, the HTTP request) stays in the socket for the rest of the pipeline. Every
/// read is bounded by [`header::MAX_LEN`] and the loop ends when the header does.
pub async fn read_header(tcp: &mut TcpStream) -> Result<ProxyHeader, ReceiveError> {
    let mut read = Vec::new();
    loop {
        match header::next(&read)? {
            header::Next::Complete => return Ok(header::parse(&read)?),
            header::Next::Exact(n) => {
                let start = read.len();
                read.resize(start + n, 0);
                tcp.read_exact(&mut read[start..]).await?;
            }
            header::Next::Line(max) => {
                // Peek, then take the line's bytes up to its `\n` (all of them if it has not
                // arrived yet: they are header bytes either way). Each peek after a take waits
                // for new bytes, so this does not spin.
                let mut window = [0u8; header::V1_MAX_LEN];
                let n = tcp.peek(&mut window[..max.min(header::V1_MAX_LEN)]).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
                let take = window[..n]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(n, |i| i + 1);
                let start = read.len();
                read.resize(start + take, 0);
                tcp.read_exact(&mut read[start..]).await?;
            }
        }
    }
}

/// [`read_header`] by `deadline`; then the connection's addresses from here on: the client's
/// (carried, or the peer's own for LOCAL and UNKNOWN headers) and the one it connected to.
/// Failures are logged with the balancer's address and return `None`: the caller closes.
pub(crate) async fn receive(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    deadline: Deadline,
    timeout: Duration,
) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let received = match tokio::time::timeout_at(deadline, read_header(tcp)).await {
        Ok(received) => received,
        Err(_) => Err(ReceiveError::TimedOut(timeout)),
    };
    match received {
        Ok(ProxyHeader {
            addresses: Some(carried),
            ..
        }) => Some((carried.source, Some(carried.destination))),
        Ok(ProxyHeader {
            addresses: None, ..
        }) => Some((peer, local)),
        Err(e) => {
            tracing::info!(%peer, error = %e, "PROXY header refused; connection closed");
            None
        }
    }
}

/// The PROXY protocol policy of listener `index` of `config`, if it has one.
pub(crate) fn policy(config: &GatewayConfig, index: usize) -> Option<&AcceptProxy> {
    config.listeners.get(index)?.proxy_protocol.as_ref()
}

/// True (and logged) when listener `index` takes the PROXY protocol and `tcp`'s peer is not
/// one of the balancers allowed to send it: the connection is closed at once, unanswered.
pub(crate) fn refuses(config: &GatewayConfig, index: usize, tcp: &TcpStream) -> bool {
    let Some(policy) = policy(config, index) else {
        return false;
    };
    match tcp.peer_addr() {
        Ok(peer) if policy.allows(peer.ip()) => false,
        Ok(peer) => {
            tracing::info!(%peer, "not a PROXY protocol sender of this listener; connection closed");
            true
        }
        Err(_) => true,
    }
}

/// On a PROXY protocol listener, a connection silent until the handshake timeout is closed
/// (and logged) without the HTTP 408 a client would get: true when that is the case here.
pub(crate) fn closes_silent(config: &GatewayConfig, index: usize, tcp: &TcpStream) -> bool {
    if policy(config, index).is_none() {
        return false;
    }
    let peer = tcp.peer_addr().ok();
    let timeout = config.handshake_timeout;
    tracing::info!(
        ?peer,
        ?timeout,
        "no PROXY header within the handshake timeout; connection closed"
    );
    true
}

/// The PROXY protocol stage of a connection that sent its first byte: the header read (by the
/// handshake deadline from `started`), then the carried client address counted under the
/// per-address admission limits (on a plain listener a refused client is answered 429, as at
/// accept; on TLS it is closed). Returns the socket, the client's address and the address it
/// connected to; `None` when the connection is closed.
pub(crate) async fn accept(
    mut tcp: TcpStream,
    peer: SocketAddr,
    permit: &mut Permit,
    listening: &Listening,
    started: Deadline,
) -> Option<(TcpStream, SocketAddr, Option<SocketAddr>)> {
    let config = &listening.config;
    let local = tcp.local_addr().ok();
    let deadline = started + config.handshake_timeout;
    let timeout = config.handshake_timeout;
    let (client, destination) = receive(&mut tcp, peer, local, deadline, timeout).await?;
    if let Err(rejection) = permit.admit_address(client.ip()) {
        tracing::info!(
            peer = %client,
            balancer = %peer,
            status = rejection.status(),
            reason = %rejection.reason,
            "connection refused at admission"
        );
        if listening.tls.is_none() {
            crate::admission::turn_away(tcp, &rejection).await;
        }
        return None;
    }
    Some((tcp, client, destination))
}

/// Writes the v2 header saying `client` connected to `destination` (the upstream's own
/// address when the client's destination is not known) on a fresh upstream connection,
/// before its TLS handshake or upgrade request.
pub(crate) async fn send_v2(
    tcp: &mut TcpStream,
    client: SocketAddr,
    destination: Option<SocketAddr>,
) -> io::Result<()> {
    let destination = match destination {
        Some(d) => d,
        None => tcp.peer_addr()?,
    };
    tcp.write_all(&header::v2_header(client, destination)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn the_reader_takes_the_header_and_leaves_what_follows() {
        let (mut client, mut server) = pair().await;
        // A v1 line written in pieces, the request right behind it.
        client.write_all(b"PROXY TCP4 192.0.2.7 ").await.unwrap();
        let writing = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client
                .write_all(b"198.51.100.1 5 443\r\nGET / HTTP/1.1\r\n")
                .await
                .unwrap();
        };
        let (header, ()) = tokio::join!(read_header(&mut server), writing);
        let header = header.unwrap();
        assert_eq!(
            header.addresses.unwrap().source,
            "192.0.2.7:5".parse().unwrap()
        );
        let mut rest = [0u8; 16];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"GET / HTTP/1.1\r\n");
        // v2, written by the sending side, then a TLS record.
        let (mut client, mut server) = pair().await;
        let source = "[2001:db8::7]:9".parse().unwrap();
        send_v2(&mut client, source, None).await.unwrap();
        client.write_all(b"\x16\x03\x01").await.unwrap();
        let header = read_header(&mut server).await.unwrap();
        let carried = header.addresses.unwrap();
        assert_eq!(carried.source, source);
        let mut rest = [0u8; 3];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn missing_and_late_headers_close_the_connection() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let peer = server.peer_addr().unwrap();
        let soon = Deadline::now() + Duration::from_secs(5);
        let timeout = Duration::from_secs(5);
        assert!(receive(&mut server, peer, None, soon, timeout)
            .await
            .is_none());
        let (mut client, mut server) = pair().await;
        client.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
        let now = Deadline::now() + Duration::from_millis(50);
        let late = read_header(&mut server);
        assert!(tokio::time::timeout_at(now, late).await.is_err());
    }

    #[test]
    fn senders_are_matched_by_network_ipv4_mapped_too() {
        let policy = AcceptProxy {
            from: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert!(policy.allows("10.1.2.3".parse().unwrap()));
        assert!(policy.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!policy.allows("192.0.2.1".parse().unwrap()));
    }
}
