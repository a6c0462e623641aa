//! The edge rules: what a request passes between its head being read and its route being
//! chosen. Its target and Host take their canonical form, so routing, rewriting, logs and the
//! upstream all see the one request a route was written for; a request with two Hosts or two
//! Origins, or a Host that is not the TLS server the client reached, goes no further.

use wsrelay_handshake::{canonical_host, canonical_target, Authority, HostError, RequestHead};

use crate::config::EdgePolicy;
use crate::refusal::Refusal;
use crate::request::Peer;

/// Puts `head` in canonical form in place (its target, and its Host header, which the upstream
/// receives as rewritten) and returns the canonical authority routes match against.
///
/// Refusals: a target that is not an origin-form path, or climbs above the root, or has an
/// encoded slash the policy refuses (400); a missing, repeated or invalid Host (400); two
/// `Origin` headers (400); on TLS with the SNI check on, a Host other than the SNI name (421).
pub fn canonicalize(
    head: &mut RequestHead,
    policy: &EdgePolicy,
    peer: &Peer,
) -> Result<Authority, Refusal> {
    head.target = canonical_target(&head.target, policy.paths).map_err(Refusal::BadTarget)?;
    for name in ["Host", "Origin"] {
        if head
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
            > 1
        {
            return Err(Refusal::RepeatedHeader(name));
        }
    }
    let host = head
        .headers
        .iter_mut()
        .find(|h| h.name.eq_ignore_ascii_case("Host"))
        .ok_or(Refusal::BadHost(HostError::Empty))?;
    let text =
        std::str::from_utf8(&host.value).map_err(|_| Refusal::BadHost(HostError::InvalidName))?;
    let authority = canonical_host(text.trim()).map_err(Refusal::BadHost)?;
    host.value = authority.to_string().into_bytes();
    if policy.sni_host_check {
        if let Some(sni) = &peer.sni {
            // SNI carries a DNS name without port or trailing dot (RFC 6066 §3).
            if !sni
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&authority.host)
            {
                return Err(Refusal::Misdirected {
                    host: authority.host,
                    sni: sni.clone(),
                });
            }
        }
    }
    Ok(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsrelay_handshake::{Header, PathPolicy, TargetError};

    fn head(target: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: target.into(),
            version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| Header {
                    name: (*n).into(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    fn peer(sni: Option<&str>) -> Peer {
        Peer {
            addr: "127.0.0.1:5000".parse().unwrap(),
            secure: sni.is_some(),
            sni: sni.map(str::to_owned),
            trusted: false,
            local: None,
        }
    }

    #[test]
    fn target_and_host_take_their_canonical_form_in_the_head() {
        let mut h = head("/x/../%61pi?q=1", &[("Host", "API.Example.:8443")]);
        let authority = canonicalize(&mut h, &EdgePolicy::default(), &peer(None)).unwrap();
        assert_eq!(h.target, "/api?q=1");
        assert_eq!(authority.host, "api.example");
        assert_eq!(h.header_str("Host"), Some("api.example:8443"));
    }

    #[test]
    fn bad_targets_and_hosts_are_refused_with_400() {
        let policy = EdgePolicy::default();
        let cases = [
            head("/../etc", &[("Host", "a")]),
            head("/a", &[]),
            head("/a", &[("Host", "a"), ("host", "b")]),
            head("/a", &[("Host", "a b")]),
            head(
                "/a",
                &[
                    ("Host", "a"),
                    ("Origin", "http://a"),
                    ("Origin", "http://b"),
                ],
            ),
        ];
        for mut h in cases {
            let refusal = canonicalize(&mut h, &policy, &peer(None)).unwrap_err();
            assert_eq!(refusal.status(), 400, "{refusal}");
        }
        let mut h = head("/a/../../b", &[("Host", "a")]);
        assert!(matches!(
            canonicalize(&mut h, &policy, &peer(None)),
            Err(Refusal::BadTarget(TargetError::AboveRoot))
        ));
    }

    #[test]
    fn a_host_other_than_the_sni_name_is_misdirected_unless_the_check_is_off() {
        let mut policy = EdgePolicy::default();
        let mut h = head("/", &[("Host", "admin.example")]);
        let refusal = canonicalize(&mut h, &policy, &peer(Some("chat.example"))).unwrap_err();
        assert_eq!(refusal.status(), 421);
        let mut h = head("/", &[("Host", "Chat.Example.:443")]);
        assert!(canonicalize(&mut h, &policy, &peer(Some("chat.example"))).is_ok());
        policy.sni_host_check = false;
        let mut h = head("/", &[("Host", "admin.example")]);
        assert!(canonicalize(&mut h, &policy, &peer(Some("chat.example"))).is_ok());
    }

    #[test]
    fn the_slash_policy_is_the_listeners() {
        let mut policy = EdgePolicy::default();
        let mut h = head("/a%2Fb", &[("Host", "a")]);
        assert!(canonicalize(&mut h, &policy, &peer(None)).is_err());
        policy.paths = PathPolicy {
            escaped_slashes: wsrelay_handshake::EscapedSlashes::Keep,
            ..PathPolicy::default()
        };
        let mut h = head("/a%2fb", &[("Host", "a")]);
        canonicalize(&mut h, &policy, &peer(None)).unwrap();
        assert_eq!(h.target, "/a%2Fb");
    }
}
