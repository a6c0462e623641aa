//! Loading `[[listeners]]`: the address, TLS (certificates chosen by SNI) and the edge policy
//! (canonical paths, the SNI check, trusted proxies) and the PROXY protocol.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use toml::Spanned;
use wsrelay_handshake::EscapedSlashes;

use super::Loader;
use crate::config::schema::ListenerSection;
use crate::config::{EdgePolicy, ListenerConfig};
use crate::tls::{self, CertificateFiles};

impl Loader<'_> {
    /// One `[[listeners]]` table; `None` when it has errors (each reported).
    pub(super) fn listener(
        &mut self,
        section: &Spanned<ListenerSection>,
    ) -> Option<ListenerConfig> {
        let l = section.get_ref();
        let address = match l.address.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                self.report.at(
                    &l.address,
                    &format!("invalid listen address {:?}: {e}", l.address.get_ref()),
                    "an IP address and a port: \"0.0.0.0:8080\", \"127.0.0.1:8443\", \"[::]:8080\"",
                );
                None
            }
        };
        let http2 = self.http2(l);
        let tls = match &l.tls {
            None => None,
            Some(tls) => {
                if tls.get_ref().certificates.is_empty() {
                    self.report.at(
                        tls,
                        "TLS listener without certificates",
                        "add [[listeners.tls.certificates]] with cert_file and key_file",
                    );
                    return None;
                }
                let before = self.report.count();
                let files: Vec<CertificateFiles> = tls
                    .get_ref()
                    .certificates
                    .iter()
                    .map(|c| {
                        let c = c.get_ref();
                        CertificateFiles {
                            cert_file: self.path(&c.cert_file),
                            key_file: self.path(&c.key_file),
                            server_names: c.server_names.clone(),
                        }
                    })
                    .collect();
                if self.report.count() > before {
                    return None;
                }
                match tls::server_config(&files) {
                    Ok(mut config) => {
                        if http2.is_some() {
                            tls::offer_h2(&mut config);
                        }
                        Some(Arc::new(config))
                    }
                    Err(e) => {
                        self.report.at(
                            tls,
                            &e.to_string(),
                            "cert_file is a PEM certificate chain (leaf first), key_file the \
                             PEM private key of that leaf",
                        );
                        return None;
                    }
                }
            }
        };
        let edge = self.edge(l);
        let proxy_protocol = self.proxy_protocol(l, &edge);
        Some(ListenerConfig {
            address: address?,
            tls,
            edge,
            proxy_protocol,
            http2,
        })
    }

    /// A listener's request policy: path canonicalisation, the SNI check, trusted proxies.
    fn edge(&mut self, l: &ListenerSection) -> EdgePolicy {
        let mut edge = EdgePolicy::default();
        if let Some(merge) = l.merge_slashes {
            edge.paths.merge_slashes = merge;
        }
        if let Some(action) = &l.escaped_slashes {
            match action.get_ref().as_str() {
                "reject" => edge.paths.escaped_slashes = EscapedSlashes::Reject,
                "keep" => edge.paths.escaped_slashes = EscapedSlashes::Keep,
                other => self.report.at(
                    action,
                    &format!("unknown escaped_slashes action {other:?}"),
                    "\"reject\" (400 for %2F and %5C in a path, the default) or \"keep\" (left encoded)",
                ),
            }
        }
        if let Some(check) = l.sni_host_check {
            edge.sni_host_check = check;
        }
        edge.trusted_proxies = self.networks(&l.trusted_proxies, "trusted proxy");
        edge
    }

    /// Addresses and CIDR networks (a bare address is a network of one); each bad one is
    /// reported as an invalid `what`.
    pub(super) fn networks(&mut self, list: &[Spanned<String>], what: &str) -> Vec<IpNet> {
        let mut networks = Vec::new();
        for cidr in list {
            let text = cidr.get_ref().trim();
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => networks.push(net.trunc()),
                Err(_) => self.report.at(
                    cidr,
                    &format!("invalid {what} {text:?}"),
                    "an address or a CIDR network: \"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"",
                ),
            }
        }
        networks
    }
}
