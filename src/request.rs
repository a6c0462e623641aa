//! The client's upgrade request as the pipeline carries it: the parsed head, its validated
//! WebSocket fields, and who sent it (for the forwarding headers).

use std::net::SocketAddr;

use wsrelay_handshake::{HandshakeError, RequestHead, WebSocketRequest};

/// Who is at the other end of a client connection, as its listener saw it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address (`X-Forwarded-For`).
    pub addr: SocketAddr,
    /// The client came over TLS (`X-Forwarded-Proto: https`).
    pub secure: bool,
    /// The server name the client asked for in its TLS handshake (SNI), if any.
    pub sni: Option<String>,
    /// The client is one of the listener's trusted proxies: its forwarding headers are kept.
    pub trusted: bool,
    /// The address the client connected to (the balancer's, when a PROXY header said so),
    /// if known: the destination of the PROXY header sent to upstreams that want one.
    pub local: Option<SocketAddr>,
}

impl Peer {
    /// A client connected over plain TCP from `addr`, not a trusted proxy.
    pub fn plain(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            secure: false,
            sni: None,
            trusted: false,
            local: None,
        }
    }
}

/// A client's WebSocket upgrade request, validated (RFC 6455 §4.2.1).
///
/// The gateway builds it from the bytes it read; a framework that parsed the request itself
/// (hyper, axum) fills a [`RequestHead`] from its own request and calls [`ClientRequest::new`],
/// so both go through the same upstream upgrade.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The request line and headers as the client sent them.
    pub head: RequestHead,
    /// The WebSocket fields: key, subprotocols and extensions offered, Origin.
    pub websocket: WebSocketRequest,
    /// Who sent it.
    pub peer: Peer,
}

impl ClientRequest {
    /// Validates `head` as a WebSocket upgrade; the error carries the HTTP status to answer.
    pub fn new(head: RequestHead, peer: Peer) -> Result<ClientRequest, HandshakeError> {
        let websocket = head.validate_websocket()?;
        Ok(ClientRequest {
            head,
            websocket,
            peer,
        })
    }
}
