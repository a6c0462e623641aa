//! The client's upgrade request as the pipeline carries it: the parsed head, its validated
//! WebSocket fields, and who sent it (for the forwarding headers).

use std::net::SocketAddr;

use wsrelay_handshake::{HandshakeError, RequestHead, WebSocketRequest};

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
    /// The client's address (`X-Forwarded-For`).
    pub peer: SocketAddr,
    /// The client came over TLS (`X-Forwarded-Proto: https`).
    pub secure: bool,
}

impl ClientRequest {
    /// Validates `head` as a WebSocket upgrade; the error carries the HTTP status to answer.
    pub fn new(
        head: RequestHead,
        peer: SocketAddr,
        secure: bool,
    ) -> Result<ClientRequest, HandshakeError> {
        let websocket = head.validate_websocket()?;
        Ok(ClientRequest {
            head,
            websocket,
            peer,
            secure,
        })
    }
}
