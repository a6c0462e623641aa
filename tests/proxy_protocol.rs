//! The PROXY protocol end to end on real sockets: v1 and v2 headers in front of the upgrade,
//! the carried address in the upstream's forwarding headers, per-address limits and hash
//! balancing; peers that may not send the header, and missing, malformed or silent ones,
//! closed; and the v2 header a route sends to its upstream, checked byte by byte.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A v2 LOCAL header (a balancer's health check): no addresses.
fn v2_local() -> Vec<u8> {
    [SIGNATURE.as_slice(), &[0x20, 0x00, 0x00, 0x00]].concat()
}

/// A gateway whose listener takes PROXY headers from `from`, in front of `upstream`, with
/// `extra` TOML after the route.
async fn proxied_gateway(from: &str, upstream: SocketAddr, extra: &str) -> RunningGateway {
    let toml = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n\
         proxy_protocol_from = [\"{from}\"]\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{upstream}\"\n{extra}"
    );
    gateway_from(load_config(&toml)).await
}

/// Connects, writes `preamble` then an upgrade request, and returns the response head.
async fn upgrade_after(addr: SocketAddr, preamble: &[u8]) -> (String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The gateway may close as soon as it has seen a bad header: later writes may fail.
    let request = upgrade_request("/", "app.example", "");
    let _ = s.write_all(&[preamble, request.as_bytes()].concat()).await;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

/// True when the gateway closes `s` without answering anything.
async fn closed_unanswered(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn the_carried_address_reaches_the_upstreams_forwarding_headers() {
    let (upstream, mut requests) = recording_upstream(first_protocol).await;
    let gateway = proxied_gateway("127.0.0.0/8", upstream, "forwarded_header = true\n").await;
    let client: SocketAddr = "192.0.2.7:51234".parse().unwrap();
    // v1, then v2, then v1 over IPv6.
    let cases: [(Vec<u8>, &str); 3] = [
        (
            format!(
                "PROXY TCP4 192.0.2.7 198.51.100.1 51234 {}\r\n",
                gateway.addr.port()
            )
            .into_bytes(),
            "192.0.2.7",
        ),
        (v2_ipv4(client, gateway.addr), "192.0.2.7"),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n".to_vec(),
            "2001:db8::7",
        ),
    ];
    for (header, expected) in cases {
        let (head, _client) = upgrade_after(gateway.addr, &header).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let (request, _peer) = requests.recv().await.unwrap();
        assert_eq!(
            header_of(&request, "X-Forwarded-For").as_deref(),
            Some(expected)
        );
        let forwarded = header_of(&request, "Forwarded").unwrap_or_default();
        assert!(forwarded.contains(expected), "{forwarded}");
    }
    // LOCAL (a health check through the balancer): the connection's own address stands.
    let (head, _client) = upgrade_after(gateway.addr, &v2_local()).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (request, _peer) = requests.recv().await.unwrap();
    assert_eq!(
        header_of(&request, "X-Forwarded-For").as_deref(),
        Some("127.0.0.1")
    );
    // Tunnels are still open: dropping stops the gateway without waiting for their 1001s.
    drop(gateway);
}

#[tokio::test]
async fn other_peers_and_missing_malformed_or_silent_headers_are_closed() {
    let (upstream, _requests) = recording_upstream(first_protocol).await;
    // Only 192.0.2.0/24 may send headers: a loopback peer is closed at once, header or not.
    let gateway = proxied_gateway("192.0.2.0/24", upstream, "").await;
    let (head, s) = upgrade_after(gateway.addr, b"PROXY UNKNOWN\r\n").await;
    assert_eq!(head, "");
    assert!(closed_unanswered(s).await);
    gateway.stop().await;
    let gateway = proxied_gateway("127.0.0.1", upstream, "").await;
    // No header: the request itself is not one.
    let (head, _) = upgrade_after(gateway.addr, b"").await;
    assert_eq!(head, "", "answered without a PROXY header");
    // Malformed v1 (a port out of range), v2 with an unknown command, an endless v1 line.
    let mut bad_command = v2_local();
    bad_command[12] = 0x2F;
    let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
    for bad in [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n".to_vec(),
        bad_command,
        endless,
    ] {
        let (head, _) = upgrade_after(gateway.addr, &bad).await;
        assert_eq!(
            head,
            "",
            "answered after {:?}",
            String::from_utf8_lossy(&bad)
        );
    }
    gateway.stop().await;
    // Half a header, then silence: closed at the handshake timeout, without a 408.
    let toml = format!(
        "[server]\nhandshake_timeout = \"300ms\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         proxy_protocol = true\nproxy_protocol_from = [\"127.0.0.1\"]\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{upstream}\"\n"
    );
    let gateway = gateway_from(load_config(&toml)).await;
    let mut s = TcpStream::connect(gateway.addr).await.unwrap();
    s.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    let started = std::time::Instant::now();
    assert!(closed_unanswered(s).await);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing at all: closed too, not answered 408.
    let s = TcpStream::connect(gateway.addr).await.unwrap();
    assert!(closed_unanswered(s).await);
    gateway.stop().await;
}

#[tokio::test]
async fn per_address_limits_count_the_carried_address() {
    let (upstream, mut requests) = recording_upstream(first_protocol).await;
    let gateway = proxied_gateway(
        "127.0.0.0/8",
        upstream,
        "\n[limits]\nper_address_connections = 1\n",
    )
    .await;
    let a: SocketAddr = "192.0.2.7:1000".parse().unwrap();
    let b: SocketAddr = "192.0.2.8:1000".parse().unwrap();
    // All three come from 127.0.0.1 (the "balancer"); only the carried addresses count.
    let (head, _first) = upgrade_after(gateway.addr, &v2_ipv4(a, gateway.addr)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let _ = requests.recv().await.unwrap();
    let (head, _) = upgrade_after(gateway.addr, &v2_ipv4(a, gateway.addr)).await;
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    let (head, _other) = upgrade_after(gateway.addr, &v2_ipv4(b, gateway.addr)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Tunnels are still open: dropping stops the gateway without waiting for their 1001s.
    drop(gateway);
}

#[tokio::test]
async fn hash_balancing_by_client_address_uses_the_carried_address() {
    let (one, mut at_one) = recording_upstream(first_protocol).await;
    let (two, mut at_two) = recording_upstream(first_protocol).await;
    let toml = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n\
         proxy_protocol_from = [\"127.0.0.0/8\"]\n\n\
         [[pools]]\nname = \"p\"\npolicy = \"hash\"\nhash_key = \"client_address\"\n\
         hash_balance_factor = 0\n\
         backends = [{{ uri = \"ws://{one}\" }}, {{ uri = \"ws://{two}\" }}]\n\n\
         [[routes]]\npath_prefix = \"/\"\npool = \"p\"\n"
    );
    let gateway = gateway_from(load_config(&toml)).await;
    // Twenty clients, each connecting three times: each lands on one backend every time,
    // and the twenty spread over both (they all share the balancer's own address).
    let mut per_backend = [0usize; 2];
    let mut open = Vec::new();
    for i in 0..20u8 {
        let client = SocketAddr::from(([198, 51, 100, i], 4000));
        let mut landed = None;
        for _ in 0..3 {
            let (head, s) = upgrade_after(gateway.addr, &v2_ipv4(client, gateway.addr)).await;
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            open.push(s);
            let here = tokio::select! {
                Some(_) = at_one.recv() => 0,
                Some(_) = at_two.recv() => 1,
            };
            assert!(
                landed.is_none() || landed == Some(here),
                "client {client} moved"
            );
            landed = Some(here);
        }
        per_backend[landed.unwrap()] += 1;
    }
    println!("clients per backend by carried address: {per_backend:?}");
    assert!(per_backend[0] > 0 && per_backend[1] > 0, "{per_backend:?}");
    // Tunnels are still open: dropping stops the gateway without waiting for their 1001s.
    drop(gateway);
}

/// A TCP front for `upstream` that reads the PROXY v2 header a gateway sends (16 bytes, then
/// the length they announce), hands its bytes to the test, and splices the rest through.
async fn header_checking_front(
    upstream: SocketAddr,
) -> (SocketAddr, tokio::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut header = vec![0u8; 16];
            if inbound.read_exact(&mut header).await.is_err() {
                continue;
            }
            let len = usize::from(u16::from_be_bytes([header[14], header[15]]));
            let start = header.len();
            header.resize(start + len.min(1024), 0);
            if inbound.read_exact(&mut header[start..]).await.is_err() {
                continue;
            }
            let _ = tx.send(header).await;
            tokio::spawn(async move {
                let mut outbound = TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_route_sends_a_v2_header_with_the_clients_address_to_its_upstream() {
    let echo = wsrelay::echo::spawn(loopback()).await.unwrap();
    let (front, mut headers) = header_checking_front(echo).await;
    let gateway = proxied_gateway("127.0.0.0/8", front, "send_proxy_protocol = \"v2\"\n").await;
    let client: SocketAddr = "192.0.2.7:51234".parse().unwrap();
    let balancer_front: SocketAddr = "198.51.100.1:443".parse().unwrap();
    let (head, s) = upgrade_after(gateway.addr, &v2_ipv4(client, balancer_front)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The very bytes: the client's address and port, and the address it connected to.
    let header = headers.recv().await.unwrap();
    assert_eq!(header, v2_ipv4(client, balancer_front));
    // And the tunnel works through the header: an echo round trip.
    let mut peer = RawPeer::client(s);
    peer.send(wsrelay::codec::OpCode::Text, true, b"hello")
        .await;
    let (_, payload) = peer.recv().await.unwrap();
    assert_eq!(payload, b"hello");
    // Without a PROXY header in front (a direct client on a plain listener), the
    // destination is the gateway's own listener address.
    let toml = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{front}\"\nsend_proxy_protocol = \"v2\"\n"
    );
    let direct = gateway_from(load_config(&toml)).await;
    let (head, s) = upgrade_after(direct.addr, b"").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let header = headers.recv().await.unwrap();
    let local = s.local_addr().unwrap();
    assert_eq!(header, v2_ipv4(local, direct.addr));
    drop(direct);
    // Tunnels are still open: dropping stops the gateway without waiting for their 1001s.
    drop(gateway);
}

#[tokio::test]
async fn on_a_tls_listener_the_header_comes_before_the_client_hello() {
    use rustls::pki_types::{CertificateDer, ServerName};
    let (upstream, mut requests) = recording_upstream(first_protocol).await;
    let certified = rcgen::generate_simple_self_signed(vec!["proxied.test".to_owned()]).unwrap();
    let cert = write_temp("cert.pem", &certified.cert.pem());
    let key = write_temp("key.pem", &certified.signing_key.serialize_pem());
    let toml = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n\
         proxy_protocol_from = [\"127.0.0.1\"]\n\
         [[listeners.tls.certificates]]\ncert_file = {:?}\nkey_file = {:?}\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"ws://{upstream}\"\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let gateway = gateway_from(load_config(&toml)).await;
    let config = tls_client_config(&CertificateDer::from(certified.cert.der().to_vec()));
    let mut tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let client: SocketAddr = "203.0.113.9:4242".parse().unwrap();
    tcp.write_all(&v2_ipv4(client, gateway.addr)).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("proxied.test").unwrap(), tcp)
        .await
        .expect("TLS after the PROXY header");
    let request = upgrade_request("/", "proxied.test", "");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 12];
    tls.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let (request, _peer) = requests.recv().await.unwrap();
    assert_eq!(
        header_of(&request, "X-Forwarded-For").as_deref(),
        Some("203.0.113.9")
    );
    assert_eq!(
        header_of(&request, "X-Forwarded-Proto").as_deref(),
        Some("https")
    );
    drop(gateway);
}
