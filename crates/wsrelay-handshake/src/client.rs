//! Client side: the upgrade request to an upstream and the validation of its answer (RFC 6455 §4.1).

use crate::accept::{accept_key, new_key};
use crate::request::{all_values, check_size, find, has_token, own_headers, split_list};
use crate::{policy, HandshakeError, Header, Limits, Parsed, WsUri};

/// An upgrade request for an upstream, with a fresh random key.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    target: String,
    host: String,
    key: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
    headers: Vec<Header>,
}

/// What the upstream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamResponse {
    /// A valid 101: the connection now speaks WebSocket.
    Accepted {
        /// The subprotocol the upstream chose (one that was offered).
        protocol: Option<String>,
        /// The accepted extensions with their parameters, joined with ", ".
        extensions: Option<String>,
        /// All response headers.
        headers: Vec<Header>,
    },
    /// Any other status: not an error, the gateway relays it to the client.
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase as sent.
        reason: String,
        /// All response headers.
        headers: Vec<Header>,
    },
}

impl UpstreamResponse {
    /// The refusal's `Content-Length`, if present and valid, to read a bounded body.
    pub fn content_length(&self) -> Option<u64> {
        match self {
            UpstreamResponse::Refused { headers, .. } => find(headers, "Content-Length")
                .and_then(Header::value_str)
                .and_then(|v| v.trim().parse().ok()),
            UpstreamResponse::Accepted { .. } => None,
        }
    }
}

impl UpgradeRequest {
    /// A request for `uri` with a fresh random key.
    pub fn new(uri: &WsUri) -> UpgradeRequest {
        UpgradeRequest {
            target: uri.path_and_query.clone(),
            host: uri.authority(),
            key: new_key(),
            protocols: Vec::new(),
            extensions: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Requests `path_and_query` instead of the URI's (after a route rewrote it).
    pub fn with_target(mut self, path_and_query: &str) -> Self {
        self.target = path_and_query.to_owned();
        self
    }

    /// Sends `host` as the `Host` header instead of the URI's authority.
    pub fn with_host(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self
    }

    /// Offers these subprotocols, in order of preference.
    pub fn with_protocols(mut self, protocols: &[String]) -> Self {
        self.protocols = protocols.to_vec();
        self
    }

    /// Offers these extensions (each with its parameters).
    pub fn with_extensions(mut self, extensions: &[String]) -> Self {
        self.extensions = extensions.to_vec();
        self
    }

    /// Adds a header; refuses names that are not tokens and values with CR, LF or NUL.
    pub fn with_header(mut self, name: &str, value: &[u8]) -> Result<Self, HandshakeError> {
        policy::validate_header(name, value)?;
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.to_vec(),
        });
        Ok(self)
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Writes the request head.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("GET {} HTTP/1.1\r\n", self.target).as_bytes());
        let mut push = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        push("Host", self.host.as_bytes());
        push("Upgrade", b"websocket");
        push("Connection", b"Upgrade");
        push("Sec-WebSocket-Key", self.key.as_bytes());
        push("Sec-WebSocket-Version", b"13");
        if !self.protocols.is_empty() {
            push(
                "Sec-WebSocket-Protocol",
                self.protocols.join(", ").as_bytes(),
            );
        }
        if !self.extensions.is_empty() {
            push(
                "Sec-WebSocket-Extensions",
                self.extensions.join(", ").as_bytes(),
            );
        }
        for h in &self.headers {
            push(&h.name, &h.value);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Parses the upstream's answer incrementally and validates a 101 against this request.
    pub fn parse_response(
        &self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Parsed<UpstreamResponse>, HandshakeError> {
        let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut response = httparse::Response::new(&mut slots);
        let consumed = match response.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                check_size(buf.len(), limits)
                    .map_err(|e| HandshakeError::MalformedResponse(e.to_string()))?;
                return Ok(Parsed::Partial);
            }
            Err(e) => return Err(HandshakeError::MalformedResponse(e.to_string())),
        };
        check_size(consumed, limits)
            .map_err(|e| HandshakeError::MalformedResponse(e.to_string()))?;
        let status = response
            .code
            .ok_or_else(|| HandshakeError::MalformedResponse("no status".into()))?;
        // Only 101 or a final status can be relayed: below 100 is not HTTP, and an interim 1xx
        // would leave the client waiting for a response that never follows.
        if status != 101 && !(200..=999).contains(&status) {
            return Err(HandshakeError::MalformedResponse(format!(
                "status {status}"
            )));
        }
        let reason = response.reason.unwrap_or("").to_owned();
        let headers = own_headers(response.headers)
            .map_err(|e| HandshakeError::MalformedResponse(e.to_string()))?;
        let value = if status == 101 {
            self.validate_accepted(headers)?
        } else {
            UpstreamResponse::Refused {
                status,
                reason,
                headers,
            }
        };
        Ok(Parsed::Complete { value, consumed })
    }

    fn validate_accepted(&self, headers: Vec<Header>) -> Result<UpstreamResponse, HandshakeError> {
        if !has_token(&headers, "Upgrade", "websocket") {
            return Err(HandshakeError::BadUpgradeResponse(
                "missing Upgrade: websocket",
            ));
        }
        if !has_token(&headers, "Connection", "upgrade") {
            return Err(HandshakeError::BadUpgradeResponse(
                "missing Connection: upgrade",
            ));
        }
        let expected = accept_key(self.key.as_bytes());
        let mut accepts = all_values(&headers, "Sec-WebSocket-Accept");
        match (accepts.next(), accepts.next()) {
            (Some(accept), None) if accept.trim() == expected => {}
            _ => return Err(HandshakeError::AcceptMismatch),
        }
        let chosen: Vec<&str> = all_values(&headers, "Sec-WebSocket-Protocol")
            .flat_map(split_list)
            .collect();
        let protocol = match chosen.as_slice() {
            [] => None,
            [one] if self.protocols.iter().any(|p| p == one) => Some((*one).to_owned()),
            other => return Err(HandshakeError::UnofferedProtocol(other.join(", "))),
        };
        let accepted: Vec<&str> = all_values(&headers, "Sec-WebSocket-Extensions")
            .flat_map(split_list)
            .collect();
        let offered = |name: &str| {
            self.extensions
                .iter()
                .any(|e| extension_name(e).eq_ignore_ascii_case(name))
        };
        if let Some(unoffered) = accepted.iter().find(|e| !offered(extension_name(e))) {
            return Err(HandshakeError::UnofferedExtension((*unoffered).to_owned()));
        }
        let extensions = (!accepted.is_empty()).then(|| accepted.join(", "));
        drop(accepts);
        Ok(UpstreamResponse::Accepted {
            protocol,
            extensions,
            headers,
        })
    }
}

/// The extension's name: the token before its first `;`.
pub fn extension_name(extension: &str) -> &str {
    extension.split(';').next().unwrap_or("").trim()
}
