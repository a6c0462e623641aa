//! TLS end to end with certificates made at test time (rcgen): wss clients on a TLS listener
//! (SNI, ALPN), wss upstreams (CA file, mTLS, wrong CA, skipped verification).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::Message;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA that signs leaf certificates, written as PEM files into one directory.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

/// A leaf certificate and key, as PEM file paths and DER.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = write_temp("ca.txt", name).parent().unwrap().to_owned();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Pki {
            dir,
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Leaf {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
            key_der: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        roots
    }
}

fn toml_path(p: &Path) -> String {
    p.display().to_string()
}

/// A wss:// echo upstream on loopback; with `client_ca`, it requires a client certificate
/// signed by that CA.
async fn tls_echo(leaf: &Leaf, client_ca: Option<&Pki>) -> std::net::SocketAddr {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.roots()),
                provider(),
            )
            .build()
            .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![leaf.der.clone()], leaf.key_der.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The gateway sends the upstream's host name as SNI: without it, no echo.
                if tls.get_ref().1.server_name() != Some("localhost") {
                    return;
                }
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Opens TLS to the gateway with `sni`, trusting `ca`.
async fn tls_connect(
    addr: std::net::SocketAddr,
    sni: &str,
    ca: &Pki,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .expect("TLS to the gateway")
}

/// Sends one text message through a wss connection to the gateway and expects it echoed.
async fn echo_once(
    addr: std::net::SocketAddr,
    sni: &str,
    ca: &Pki,
    path: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let tls = tls_connect(addr, sni, ca).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{sni}{path}"), tls).await?;
    ws.send(Message::text("over TLS both ways")).await?;
    assert_eq!(
        ws.next().await.unwrap()?,
        Message::text("over TLS both ways")
    );
    ws.close(None).await?;
    Ok(())
}

fn listener_tls(front: &Leaf, names: &str) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\nserver_names = [{names}]\n",
        toml_path(&front.cert),
        toml_path(&front.key)
    )
}

#[tokio::test]
async fn wss_client_through_a_tls_listener_to_a_wss_upstream() {
    let pki = Pki::new("main");
    let front = pki.leaf("front", &["gw.test"]);
    let back = pki.leaf("back", &["localhost"]);
    let upstream = tls_echo(&back, None).await;
    let (recording, mut rx) = recording_upstream(first_protocol).await;
    let config = load_config(&format!(
        "{}\n[[routes]]\npath_prefix = \"/rec\"\nupstream = \"ws://{recording}\"\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"wss://localhost:{}\"\n[routes.upstream_tls]\nca_file = \"{}\"\n",
        listener_tls(&front, "\"gw.test\""),
        upstream.port(),
        toml_path(&pki.ca_file())
    ));
    let gw = gateway_from(config).await;
    // ALPN: the listener speaks http/1.1.
    let tls = tls_connect(gw.addr, "gw.test", &pki).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(tls);
    echo_once(gw.addr, "gw.test", &pki, "/")
        .await
        .expect("echo");
    // The upstream learns that the client came over TLS.
    let tls = tls_connect(gw.addr, "gw.test", &pki).await;
    let _ws = tokio_tungstenite::client_async("wss://gw.test/rec", tls)
        .await
        .expect("upgrade");
    let (request, _) = rx.recv().await.unwrap();
    assert_eq!(
        header_of(&request, "X-Forwarded-Proto").as_deref(),
        Some("https")
    );
    assert_eq!(header_of(&request, "Host").as_deref(), Some("gw.test"));
    gw.stop().await;
}

#[tokio::test]
async fn sni_picks_the_listener_certificate() {
    let pki = Pki::new("sni");
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test", "x.b.test"]);
    let fallback = pki.leaf("default", &["default.test"]);
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let config = load_config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[listeners.tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\nserver_names = [\"a.test\"]\n\
         [[listeners.tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\nserver_names = [\"*.b.test\", \"b.test\"]\n\
         [[listeners.tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{echo}\"\n",
        toml_path(&a.cert),
        toml_path(&a.key),
        toml_path(&b.cert),
        toml_path(&b.key),
        toml_path(&fallback.cert),
        toml_path(&fallback.key),
    ));
    let gw = gateway_from(config).await;
    for (sni, leaf) in [
        ("a.test", &a),
        ("b.test", &b),
        ("x.b.test", &b),
        ("default.test", &fallback),
    ] {
        let tls = tls_connect(gw.addr, sni, &pki).await;
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_eq!(presented, leaf.der, "certificate for {sni}");
        drop(tls);
        echo_once(gw.addr, sni, &pki, "/").await.expect("echo");
    }
    gw.stop().await;
}

#[tokio::test]
async fn upstream_mtls_accepted_with_a_client_certificate_and_refused_without() {
    let pki = Pki::new("mtls");
    let clients = Pki::new("clients");
    let back = pki.leaf("back", &["localhost"]);
    let client = clients.leaf("client", &["wsrelay.client"]);
    let upstream = tls_echo(&back, Some(&clients)).await;
    let config = load_config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\npath_prefix = \"/with\"\nupstream = \"wss://localhost:{port}\"\n\
         [routes.upstream_tls]\nca_file = \"{ca}\"\nclient_cert_file = \"{cert}\"\nclient_key_file = \"{key}\"\n\
         [[routes]]\npath_prefix = \"/no-cert\"\nupstream = \"wss://localhost:{port}\"\n\
         [routes.upstream_tls]\nca_file = \"{ca}\"\n",
        port = upstream.port(),
        ca = toml_path(&pki.ca_file()),
        cert = toml_path(&client.cert),
        key = toml_path(&client.key),
    ));
    let gw = gateway_from(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(gw.url("/with"))
        .await
        .expect("mTLS accepted");
    ws.send(Message::text("mutual")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("mutual"));
    let refused = RawPeer::connect(&gw.url("/no-cert"), &[], b"")
        .await
        .err()
        .expect("refused without a client certificate");
    assert_eq!(refused.status, 502);
    gw.stop().await;
}

#[tokio::test]
async fn wrong_ca_gives_502_and_skipping_verification_connects() {
    let pki = Pki::new("real");
    let other = Pki::new("other");
    let back = pki.leaf("back", &["localhost"]);
    let upstream = tls_echo(&back, None).await;
    let config = load_config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\npath_prefix = \"/verified\"\nupstream = \"wss://localhost:{port}\"\n\
         [routes.upstream_tls]\nca_file = \"{ca}\"\n\
         [[routes]]\npath_prefix = \"/wrong-name\"\nupstream = \"wss://127.0.0.1:{port}\"\n\
         [routes.upstream_tls]\nca_file = \"{ca}\"\n\
         [[routes]]\npath_prefix = \"/system-roots\"\nupstream = \"wss://localhost:{port}\"\n\
         [[routes]]\npath_prefix = \"/wrong-ca\"\nupstream = \"wss://localhost:{port}\"\n\
         [routes.upstream_tls]\nca_file = \"{other}\"\n\
         [[routes]]\npath_prefix = \"/insecure\"\nupstream = \"wss://localhost:{port}\"\n\
         [routes.upstream_tls]\ninsecure_skip_verify = true\n",
        port = upstream.port(),
        ca = toml_path(&pki.ca_file()),
        other = toml_path(&other.ca_file()),
    ));
    let gw = gateway_from(config).await;
    for path in ["/verified", "/insecure"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(gw.url(path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        ws.send(Message::text(path)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(path));
    }
    for path in ["/wrong-ca", "/system-roots", "/wrong-name"] {
        let refused = RawPeer::connect(&gw.url(path), &[], b"")
            .await
            .err()
            .unwrap_or_else(|| panic!("{path} must fail verification"));
        assert_eq!(refused.status, 502, "{path}");
    }
    gw.stop().await;
}

#[test]
fn insecure_skip_verify_is_logged_at_start() {
    use std::io::BufRead;
    let config = write_temp(
        "insecure.toml",
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\nname = \"lab\"\npath_prefix = \"/\"\nupstream = \"wss://localhost:1\"\n[routes.upstream_tls]\ninsecure_skip_verify = true\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsrelay"))
        .arg("--config")
        .arg(&config)
        .env("WSRELAY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = std::io::BufReader::new(stderr)
        .lines()
        .next()
        .expect("a log line")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("NOT verified") && line.contains("lab"),
        "{line}"
    );
}

#[tokio::test]
async fn connect_timeout_covers_the_upstream_tls_handshake() {
    // An upstream that accepts TCP but never speaks TLS.
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let config = load_config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[defaults]\nconnect_timeout = \"300ms\"\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"wss://localhost:{port}\"\n"
    ));
    let gw = gateway_from(config).await;
    let started = std::time::Instant::now();
    let refused = RawPeer::connect(&gw.url("/"), &[], b"")
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 504);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;
    hold.abort();
}

#[tokio::test]
async fn plain_and_tls_listeners_side_by_side_on_two_workers() {
    let pki = Pki::new("two");
    let front = pki.leaf("front", &["gw.test"]);
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let config = load_config(&format!(
        "[server]\nworkers = 2\n[[listeners]]\naddress = \"127.0.0.1:0\"\n{}\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{echo}\"\n",
        listener_tls(&front, "\"gw.test\"")
    ));
    assert_eq!(config.workers, 2);
    let gateway = wsrelay::gateway::Gateway::bind(config).await.unwrap();
    let addrs = gateway.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(gateway.run(async move {
        let _ = stopped.await;
    }));
    // Enough connections that both workers' sockets take some (the kernel spreads them).
    for _ in 0..8 {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", addrs[0]))
            .await
            .expect("plain listener");
        ws.send(Message::text("plain")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("plain"));
        echo_once(addrs[1], "gw.test", &pki, "/")
            .await
            .expect("TLS listener");
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// The embedding API reaches a wss:// upstream with the route's TLS settings (a private CA),
/// sending the upstream's host name as SNI, as the gateway does.
#[tokio::test]
async fn the_embedding_api_relays_to_a_wss_upstream() {
    let pki = Pki::new("embed");
    let back = pki.leaf("embed-back", &["localhost"]);
    let upstream = tls_echo(&back, None).await;
    let uri = format!("wss://localhost:{}/", upstream.port())
        .parse()
        .unwrap();
    let tls = wsrelay::tls::client_config(&wsrelay::tls::UpstreamTls {
        ca_file: Some(pki.ca_file()),
        ..Default::default()
    })
    .unwrap();
    let route = wsrelay::route::Route::catch_all(wsrelay::upstream::Upstream {
        uri,
        tls: Some(Arc::new(tls)),
        insecure_skip_verify: false,
    });
    let (addr, _results) = embedded(route).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("upgraded through the embedding API");
    ws.send(Message::text("to a wss upstream")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("to a wss upstream")
    );
    ws.close(None).await.unwrap();
}

/// Sends an upgrade request for `host` over TLS with `sni`; returns the start of the answer.
async fn upgrade_over_tls(addr: std::net::SocketAddr, sni: &str, ca: &Pki, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(addr, sni, ca).await;
    let request = upgrade_request("/", host, "");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 64];
    let n = tls.read(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[..n]).into_owned()
}

/// Issue 12, finding 2: a TLS client that reached `chat.example` (SNI) cannot open a route of
/// `admin.example` by naming it in Host: 421, and the admin upstream is never contacted.
/// With `sni_host_check = false` on the listener, the Host decides as before.
#[tokio::test]
async fn a_host_other_than_the_sni_name_is_misdirected() {
    let pki = Pki::new("sni-host");
    let front = pki.leaf("sni-front", &["chat.example", "admin.example"]);
    let (admin, mut admin_rx) = recording_upstream(first_protocol).await;
    let (chat, mut chat_rx) = recording_upstream(first_protocol).await;
    let routes = format!(
        "[[routes]]\nhost = \"admin.example\"\npath_prefix = \"/\"\nupstream = \"ws://{admin}\"\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{chat}\"\n"
    );
    let names = "\"chat.example\", \"admin.example\"";
    let gw = gateway_from(load_config(&format!(
        "{}{routes}",
        listener_tls(&front, names)
    )))
    .await;
    let answer = upgrade_over_tls(gw.addr, "chat.example", &pki, "admin.example").await;
    assert!(answer.starts_with("HTTP/1.1 421 "), "{answer}");
    let answer = upgrade_over_tls(gw.addr, "chat.example", &pki, "Chat.Example.").await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    assert!(chat_rx.recv().await.is_some());
    assert!(
        admin_rx.try_recv().is_err(),
        "the admin upstream was contacted"
    );
    gw.stop().await;

    // The check switched off: Host routes, whatever the SNI.
    let unchecked = listener_tls(&front, names).replace(
        "address = \"127.0.0.1:0\"\n",
        "address = \"127.0.0.1:0\"\nsni_host_check = false\n",
    );
    let gw = gateway_from(load_config(&format!("{unchecked}{routes}"))).await;
    let answer = upgrade_over_tls(gw.addr, "chat.example", &pki, "admin.example").await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    assert!(admin_rx.recv().await.is_some());
    gw.stop().await;
}
