//! Handshake benches: a realistic browser upgrade request, and the client-side round trip.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use wsrelay::handshake::{
    parse_upgrade_request, write_switching_protocols, Limits, UpgradeRequest, WsUri,
};

/// What Chrome sends for `new WebSocket("wss://example.com/socket")`.
const CHROME: &[u8] = b"GET /socket HTTP/1.1\r\n\
Host: example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=3f2a9c1e7b; theme=dark\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

fn handshake(c: &mut Criterion) {
    let limits = Limits::default();
    c.bench_function("handshake/parse_chrome_upgrade", |b| {
        b.iter(|| parse_upgrade_request(black_box(CHROME), &limits).unwrap())
    });
    let uri = WsUri::parse("ws://127.0.0.1:9000/socket").unwrap();
    c.bench_function("handshake/client_round_trip", |b| {
        b.iter(|| {
            let request = UpgradeRequest::new(black_box(&uri)).unwrap();
            let mut wire = Vec::with_capacity(256);
            request.encode(&mut wire);
            let accept = wsrelay::handshake::accept_key(request.key().as_bytes());
            let mut answer = Vec::with_capacity(160);
            write_switching_protocols(&mut answer, &accept, None, None, &[]);
            request.parse_response(&answer, &limits).unwrap()
        })
    });
}

criterion_group!(benches, handshake);
criterion_main!(benches);
