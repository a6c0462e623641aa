//! Claims forwarded to the upstream as request headers (`forward_claims = { sub = "X-User-Id" }`).
//!
//! Every header of those names the client sent is removed first, whether or not the token
//! has the claim, so the upstream can trust them: a header it sees came from a verified token.

use serde_json::Value;
use wsrelay_handshake::{validate_header, Header, RequestHead};

use super::provider::Claims;

/// Removes the client's headers named in `forward` (and the same names from its `Connection`
/// list, so a client cannot have the relay drop them as hop-by-hop), then adds one header per
/// claim the token has. A claim whose value cannot be a header value (a control character) is
/// left out and logged at debug.
pub fn forward(head: &mut RequestHead, forward: &[(String, String)], claims: &Claims) {
    let named = |name: &str| forward.iter().any(|(_, h)| h.eq_ignore_ascii_case(name));
    head.headers.retain(|h| !named(&h.name));
    for connection in head
        .headers
        .iter_mut()
        .filter(|h| h.name.eq_ignore_ascii_case("Connection"))
    {
        let text = String::from_utf8_lossy(&connection.value);
        let kept: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|token| !named(token))
            .collect();
        connection.value = kept.join(", ").into_bytes();
    }
    for (claim, name) in forward {
        let Some(value) = claims.get(claim).and_then(header_value) else {
            continue;
        };
        if validate_header(name, value.as_bytes()).is_err() {
            tracing::debug!(
                claim,
                header = name,
                "claim not forwarded: not a valid header value"
            );
            continue;
        }
        head.headers.push(Header {
            name: name.clone(),
            value: value.into_bytes(),
        });
    }
}

/// A claim as header text: strings as they are, numbers and booleans as written, arrays and
/// objects as compact JSON; `null` is no value.
fn header_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    #[test]
    fn spoofed_headers_go_and_claims_come() {
        let mut head = RequestHead {
            method: "GET".into(),
            target: "/".into(),
            version: 1,
            headers: vec![
                h("x-user-id", "admin"),
                h("Connection", "Upgrade, X-User-Id"),
                h("X-Roles", "root"),
                h("Other", "kept"),
            ],
        };
        let claims: Claims =
            serde_json::from_str(r#"{"sub": "alice", "roles": ["a", "b"], "bad": "x\ny"}"#)
                .unwrap();
        let forwarded = [
            ("sub".to_owned(), "X-User-Id".to_owned()),
            ("roles".to_owned(), "X-Roles".to_owned()),
            ("bad".to_owned(), "X-Bad".to_owned()),
            ("email".to_owned(), "X-Email".to_owned()),
        ];
        forward(&mut head, &forwarded, &claims);
        assert_eq!(
            head.headers,
            vec![
                h("Connection", "Upgrade"),
                h("Other", "kept"),
                h("X-User-Id", "alice"),
                h("X-Roles", r#"["a","b"]"#),
            ]
        );
    }
}
