//! Loading the PROXY protocol keys: a listener's `proxy_protocol` and `proxy_protocol_from`
//! (who must send the header), a route's `send_proxy_protocol` (its upstreams get one).

use toml::Spanned;

use super::Loader;
use crate::config::schema::ListenerSection;
use crate::config::EdgePolicy;
use crate::proxy_protocol::AcceptProxy;

impl Loader<'_> {
    /// `proxy_protocol` and `proxy_protocol_from`: the peers that must send a PROXY header.
    /// Its own list, falling back to `trusted_proxies`: the balancer that speaks PROXY (L4) and
    /// the proxies whose forwarding headers are believed (L7) are often not the same machines,
    /// and a client's carried address must not become trusted for `X-Forwarded-For` just
    /// because the balancer is.
    pub(super) fn proxy_protocol(
        &mut self,
        l: &ListenerSection,
        edge: &EdgePolicy,
    ) -> Option<AcceptProxy> {
        let on = l.proxy_protocol.as_ref().is_some_and(|on| *on.get_ref());
        let from = match &l.proxy_protocol_from {
            Some(list) if !on => {
                self.report.at(
                    list,
                    "proxy_protocol_from without proxy_protocol = true",
                    "set proxy_protocol = true on this listener, or remove proxy_protocol_from",
                );
                return None;
            }
            Some(list) => self.networks(list.get_ref(), "PROXY protocol sender"),
            None => edge.trusted_proxies.clone(),
        };
        if !on {
            return None;
        }
        if from.is_empty() {
            if let Some(flag) = &l.proxy_protocol {
                self.report.at(
                    flag,
                    "proxy_protocol = true without the balancers allowed to send the header",
                    "add proxy_protocol_from = [\"10.0.0.0/8\"] (their addresses or networks); \
                     every other peer is refused",
                );
            }
            return None;
        }
        Some(AcceptProxy { from })
    }

    /// A route's `send_proxy_protocol`: `"v2"` (the binary header) is the one version sent.
    pub(super) fn send_proxy_protocol(&mut self, value: Option<&Spanned<String>>) -> bool {
        match value.map(|v| (v, v.get_ref().trim())) {
            None => false,
            Some((_, "v2")) => true,
            Some((v, other)) => {
                self.report.at(
                    v,
                    &format!("unknown PROXY protocol version {other:?} to send"),
                    "\"v2\" (the binary header, which HAProxy, nginx and Envoy read); leave the key \
                     out to send none",
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;
    use crate::Error;

    const ROUTE: &str = "[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\n";

    fn load(listener: &str, route: &str) -> Result<crate::config::GatewayConfig, Vec<String>> {
        let source =
            format!("[[listeners]]\naddress = \"127.0.0.1:0\"\n{listener}\n{ROUTE}{route}");
        parse(&source, "t.toml", Path::new(".")).map_err(|e| match e {
            Error::Config(errors) => errors.iter().map(|e| e.message.clone()).collect(),
            other => vec![other.to_string()],
        })
    }

    #[test]
    fn senders_come_from_their_own_key_or_else_the_trusted_proxies() {
        let config = load(
            "proxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/8\", \"192.0.2.7\"]\n\
             trusted_proxies = [\"172.16.0.0/12\"]",
            "send_proxy_protocol = \"v2\"\n",
        )
        .unwrap();
        let policy = config.listeners[0].proxy_protocol.as_ref().unwrap();
        assert_eq!(policy.from.len(), 2);
        assert!(policy.allows("192.0.2.7".parse().unwrap()));
        assert!(!policy.allows("172.16.0.1".parse().unwrap()));
        assert_eq!(config.admission.proxied_listeners, [true]);
        assert!(config.routes[0].send_proxy_protocol);
        let config = load(
            "proxy_protocol = true\ntrusted_proxies = [\"172.16.0.0/12\"]",
            "",
        )
        .unwrap();
        let policy = config.listeners[0].proxy_protocol.as_ref().unwrap();
        assert!(policy.allows("172.16.0.1".parse().unwrap()));
        let config = load("", "").unwrap();
        assert!(config.listeners[0].proxy_protocol.is_none());
        assert!(!config.routes[0].send_proxy_protocol);
    }

    #[test]
    fn incomplete_or_wrong_settings_are_errors() {
        let cases = [
            ("proxy_protocol = true", "", "without the balancers"),
            (
                "proxy_protocol_from = [\"10.0.0.0/8\"]",
                "",
                "without proxy_protocol = true",
            ),
            (
                "proxy_protocol = true\nproxy_protocol_from = [\"10.0.0/33\"]",
                "",
                "invalid PROXY protocol sender",
            ),
            (
                "",
                "send_proxy_protocol = \"v1\"\n",
                "unknown PROXY protocol version",
            ),
        ];
        for (listener, route, expected) in cases {
            let errors = load(listener, route).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{listener:?} {route:?}: {errors:?}"
            );
        }
    }
}
