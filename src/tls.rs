//! TLS with rustls (ring provider): certificates chosen by SNI on listeners, and client
//! settings for `wss://` upstreams (system roots or a CA file, client certificates, and an
//! explicit switch to skip verification).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::Error;

/// The only application protocol spoken over TLS: the upgrade is an HTTP/1.1 request.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The crypto provider used everywhere (ring: no C toolchain beyond cc needed).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: impl std::fmt::Display) -> Error {
    Error::Tls(what.to_string())
}

/// Reads every certificate of a PEM file (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{}: no CERTIFICATE block in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_error(format!("{}: {e}", path.display())))
}

/// One certificate of a listener, with the server names it answers for.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// SNI names (exact, or `*.example.com`); empty makes it the default certificate.
    pub server_names: Vec<String>,
}

/// Picks a listener's certificate by the SNI name the client sent: an exact name first, then
/// a `*.domain` wildcard, then the default (the first certificate without names, or failing
/// that the first one).
#[derive(Debug)]
struct SniResolver {
    named: Vec<(String, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return self.default.clone();
        };
        let exact = self
            .named
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        let wildcard = || {
            let (_, parent) = name.split_once('.')?;
            self.named.iter().find(|(n, _)| {
                n.strip_prefix("*.")
                    .is_some_and(|d| d.eq_ignore_ascii_case(parent))
            })
        };
        exact
            .or_else(wildcard)
            .map(|(_, key)| Arc::clone(key))
            .or_else(|| self.default.clone())
    }
}

/// The TLS settings of a listener: its certificates chosen by SNI, ALPN `http/1.1`.
pub fn server_config(certificates: &[CertificateFiles]) -> Result<rustls::ServerConfig, Error> {
    let provider = provider();
    let mut named = Vec::new();
    let mut default = None;
    let mut first = None;
    for files in certificates {
        let certs = load_certs(&files.cert_file)?;
        let key = load_key(&files.key_file)?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| tls_error(format!("{}: {e}", files.key_file.display())))?;
        let certified = Arc::new(CertifiedKey::new(certs, key));
        certified.keys_match().map_err(|e| {
            tls_error(format!(
                "{} and {}: {e}",
                files.cert_file.display(),
                files.key_file.display()
            ))
        })?;
        first.get_or_insert_with(|| Arc::clone(&certified));
        if files.server_names.is_empty() {
            default.get_or_insert_with(|| Arc::clone(&certified));
        }
        for name in &files.server_names {
            named.push((name.clone(), Arc::clone(&certified)));
        }
    }
    let resolver = SniResolver {
        named,
        default: default.or(first),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}

/// Offers HTTP/2 (`h2`) in ALPN before `http/1.1`, for a listener with HTTP/2 on.
pub fn offer_h2(config: &mut rustls::ServerConfig) {
    config.alpn_protocols = vec![b"h2".to_vec(), ALPN_HTTP11.to_vec()];
}

/// TLS settings towards a `wss://` upstream.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// PEM file of the CA certificates to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key_file: Option<PathBuf>,
    /// Accept any server certificate. Insecure: for tests and trusted networks only.
    pub insecure_skip_verify: bool,
}

/// The system's trusted roots (the OS store, as `rustls-native-certs` finds it).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "could not load some system root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system root certificates loaded");
    roots
}

/// The client settings for a `wss://` upstream: SNI is the upstream host (rustls sends it
/// for names, not for IP addresses), ALPN `http/1.1`, verification on unless skipped.
pub fn client_config(settings: &UpstreamTls) -> Result<rustls::ClientConfig, Error> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let roots = match &settings.ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in load_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
                }
                roots
            }
            None => system_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| tls_error(format!("{}: {e}", cert.display())))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(tls_error(
                "client_cert_file and client_key_file go together",
            ))
        }
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}

/// The name to verify and send as SNI for an upstream host (IPv6 without brackets).
pub fn server_name(host: &str) -> Result<ServerName<'static>, std::io::Error> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Accepts every certificate but still checks the handshake signatures, so the connection is
/// encrypted to whoever holds the presented key (just not authenticated).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
