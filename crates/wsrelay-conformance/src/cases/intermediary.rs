//! Group 11: what only an intermediary can get wrong. Most cases put the raw driver on both sides
//! of the relay.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{binary, c, pong, s, send, text};
use crate::case::{Case, CustomResult, Expect, Group, Msg, Profile, Step};
use crate::harness::{self, Env, RelayHandle};
use crate::peer::{self, Driver, Event, Role};
use crate::wire::{self, close_payload, op};

const MIB: usize = 1 << 20;

/// Group 11.
pub fn cases() -> Vec<Case> {
    let g = Group::Intermediary;
    let mut big = Vec::new();
    for i in 0..64 {
        let code = if i == 0 { op::BINARY } else { op::CONT };
        big.push(Step::Send(c(code, i == 63, vec![i as u8; MIB])));
        if i == 31 {
            big.push(Step::Send(c(op::PING, true, "in the middle")));
            big.push(Step::Await(pong("in the middle")));
        }
    }
    let whole: Vec<u8> = (0..64u8).flat_map(|i| vec![i; MIB]).collect();
    let mut pipelined = Case::client(
        "11.2",
        g,
        "frames pipelined in the same write as the upgrade request",
        vec![send(&[
            c(op::TEXT, true, "first"),
            c(op::PING, true, "p"),
            c(op::BINARY, true, "second"),
        ])],
        Expect::Echo(vec![text("first"), pong("p"), binary("second")]),
    );
    pipelined.pipelined = true;
    vec![
        Case::client(
            "11.1",
            g,
            "a ping half way through a 64 MiB fragmented message is answered before the message ends",
            big,
            Expect::Echo(vec![pong("in the middle"), binary(whole)]),
        )
        .deadline(Duration::from_secs(120)),
        pipelined,
        Case::custom(
            "11.3",
            g,
            "the upstream sends frames in the same write as its 101",
            "client receives text \"early\" and binary \"bird\"",
            |env| Box::pin(upstream_pipelines(env)),
        ),
        Case::custom(
            "11.4",
            g,
            "client and upstream send close at the same moment",
            "each side gets a close with a valid code, both connections end within 3 s",
            |env| Box::pin(close_race(env)),
        ),
        Case::custom(
            "11.5",
            g,
            "half-open client: a message, then the client shuts down its write half",
            "upstream gets the message then close 1001; the client's connection ends",
            |env| Box::pin(half_open_client(env)),
        ),
        Case::custom(
            "11.6",
            g,
            "half-open upstream: a message, then the upstream shuts down its write half",
            "client gets the message then close 1014; the upstream's connection ends (a close frame optional)",
            |env| Box::pin(half_open_upstream(env)),
        ),
        Case::custom(
            "11.7",
            g,
            "the upstream disappears in the middle of a frame",
            "client gets no message and its connection ends within 1 s (no close frame can follow a cut frame)",
            |env| Box::pin(upstream_dies_mid_frame(env)),
        ),
        Case::custom(
            "11.8",
            g,
            "close codes and reasons pass unchanged both ways",
            "upstream gets close 4321 \"bye ü\"; client gets close 4123 \"ok ü\"",
            |env| Box::pin(close_verbatim(env)),
        ),
        Case::custom(
            "11.9",
            g,
            "an upstream ping reaches the client and the client's pong reaches the upstream",
            "client gets ping \"up\"; upstream gets pong \"up\"",
            |env| Box::pin(upstream_ping(env)),
        ),
        Case::custom(
            "11.10",
            g,
            "cut-through: the start of an 8 MiB frame reaches the upstream before the rest is sent",
            "upstream receives >= 960 KiB of the first 1 MiB while the client holds back the rest",
            |env| Box::pin(cut_through(env)),
        ),
        Case::custom(
            "11.11",
            g,
            "a client frame reaches the upstream byte for byte (masking key included)",
            "the upstream reads exactly the bytes the client wrote",
            |env| Box::pin(verbatim_bytes(env)),
        ),
        Case::custom(
            "11.12",
            g,
            "back-pressure: an upstream that stops reading stalls the client; nothing is lost",
            "client writes stall under 48 MiB of a 64 MiB frame; once read, all 64 MiB arrive intact",
            |env| Box::pin(back_pressure(env)),
        ),
        Case::custom(
            "11.13",
            g,
            "the upstream answers the upgrade with a wrong Sec-WebSocket-Accept",
            "HTTP 502 to the client, no switch to WebSocket",
            |env| Box::pin(bad_accept(env)),
        ),
    ]
}

/// Both sides raw: a relay in front of the driver's upstream listener, a client connected
/// through it, and the upstream's end of that connection.
pub(super) struct Pair {
    _relay: RelayHandle,
    client: (TcpStream, Vec<u8>),
    upstream: (TcpStream, Vec<u8>),
}

/// A pair on the default profile.
async fn pair(after_101: &[u8]) -> Result<Pair, String> {
    pair_with(after_101, Profile::Default).await
}

/// Both sides raw, on `profile`.
pub(super) async fn pair_with(after_101: &[u8], profile: Profile) -> Result<Pair, String> {
    let (listener, addr) = harness::raw_upstream().await.map_err(|e| e.to_string())?;
    let relay = harness::start_relay(addr, profile)
        .await
        .map_err(|e| e.to_string())?;
    let relay_addr = relay.addr;
    let client = tokio::spawn(async move { peer::connect(relay_addr, "/pair", &[]).await });
    let (up, _, up_left) =
        harness::accept_upgrade(&listener, after_101, Duration::from_secs(5)).await?;
    let client = client.await.map_err(|e| e.to_string())??;
    Ok(Pair {
        _relay: relay,
        client,
        upstream: (up, up_left),
    })
}

pub(super) fn drivers(pair: Pair) -> (RelayHandle, Driver, Driver) {
    let client = Driver::new(pair.client.0, pair.client.1, Role::Client);
    let upstream = Driver::new(pair.upstream.0, pair.upstream.1, Role::Upstream);
    (pair._relay, client, upstream)
}

/// [`pair`] with a driver on each side, or the failed result to return.
async fn raw_drivers(after_101: &[u8]) -> Result<(RelayHandle, Driver, Driver), CustomResult> {
    match pair(after_101).await {
        Ok(p) => Ok(drivers(p)),
        Err(e) => Err(fail(e.clone(), e)),
    }
}

/// Waits (up to 3 s) for a close and answers it with the same code; returns its code.
async fn answer_close(driver: &mut Driver) -> Option<Option<u16>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while let Some(e) = driver.next(deadline).await {
        if let Event::Close { code } = e {
            driver.send_close(code).await;
            return Some(code);
        }
    }
    None
}

/// Reads from a raw stream into `got` until it holds `want` bytes or `within` passes.
async fn read_until(stream: &mut TcpStream, got: &mut Vec<u8>, want: usize, within: Duration) {
    let deadline = Instant::now() + within;
    let mut chunk = vec![0u8; 256 * 1024];
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
}

fn fail(observed: impl Into<String>, why: impl Into<String>) -> CustomResult {
    CustomResult {
        observed: observed.into(),
        verdict: Err(why.into()),
    }
}

fn judged(observed: String, ok: bool, why: &str) -> CustomResult {
    CustomResult {
        observed,
        verdict: if ok { Ok(()) } else { Err(why.to_owned()) },
    }
}

/// Waits for a message (ignoring nothing): returns it, or `None` on a close, end or timeout.
async fn next_msg(driver: &mut Driver, within: Duration) -> Option<Msg> {
    let deadline = Instant::now() + within;
    loop {
        match driver.next(deadline).await? {
            Event::Msg(m) => return Some(m),
            Event::Invalid(_) => continue,
            _ => return None,
        }
    }
}

/// Reads events until the connection ends or `within` passes; true if it ended.
async fn until_end(driver: &mut Driver, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while let Some(e) = driver.next(deadline).await {
        if matches!(e, Event::Eof | Event::Reset(_)) {
            return true;
        }
    }
    false
}

fn both(client: &Driver, upstream: &Driver) -> String {
    format!(
        "client: {}; upstream: {}",
        client.seen.describe(),
        upstream.seen.describe()
    )
}

async fn upstream_pipelines(_env: Env) -> CustomResult {
    let early = [s(op::TEXT, true, "early"), s(op::BINARY, true, "bird")].concat();
    let pair = match pair(&early).await {
        Ok(p) => p,
        Err(e) => return fail(e.clone(), e),
    };
    let (_relay, mut client, upstream) = drivers(pair);
    let a = next_msg(&mut client, Duration::from_secs(3)).await;
    let b = next_msg(&mut client, Duration::from_secs(3)).await;
    let ok = a == Some(text("early")) && b == Some(binary("bird"));
    judged(
        both(&client, &upstream),
        ok,
        "the pipelined frames did not arrive in order",
    )
}

async fn close_race(_env: Env) -> CustomResult {
    let (_relay, mut client, mut upstream) = match raw_drivers(&[]).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    let c_close = c(op::CLOSE, true, close_payload(1000, b"client"));
    let u_close = s(op::CLOSE, true, close_payload(4000, b"upstream"));
    tokio::join!(client.send(&c_close), upstream.send(&u_close));
    let deadline = Instant::now() + Duration::from_secs(3);
    // The upstream, a server, closes TCP once it has both sent and received a close.
    let up_close = loop {
        match upstream.next(deadline).await {
            Some(Event::Close { code }) => break Some(code),
            Some(Event::Eof) | Some(Event::Reset(_)) | None => break None,
            Some(_) => {}
        }
    };
    upstream.shutdown_write().await;
    let client_ended = until_end(&mut client, Duration::from_secs(3)).await;
    let client_close = client.seen.close().map(|(_, c)| c);
    let valid = |c: Option<Option<u16>>| matches!(c, Some(Some(code)) if code == 1000 || code == 4000 || code == 1001);
    let ok = valid(up_close) && valid(client_close) && client_ended && deadline > Instant::now();
    judged(
        both(&client, &upstream),
        ok,
        "a side missed its close or a connection hung",
    )
}

async fn half_open_client(_env: Env) -> CustomResult {
    let (_relay, mut client, mut upstream) = match raw_drivers(&[]).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    client.send(&c(op::TEXT, true, "last words")).await;
    client.shutdown_write().await;
    let got = next_msg(&mut upstream, Duration::from_secs(3)).await;
    let up_close = answer_close(&mut upstream).await;
    upstream.shutdown_write().await;
    let ended = until_end(&mut client, Duration::from_secs(3)).await;
    let ok = got == Some(text("last words")) && up_close == Some(Some(1001)) && ended;
    judged(
        both(&client, &upstream),
        ok,
        "the message, the 1001 or the client's end is missing",
    )
}

async fn half_open_upstream(_env: Env) -> CustomResult {
    let (_relay, mut client, mut upstream) = match raw_drivers(&[]).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    upstream.send(&s(op::TEXT, true, "last words")).await;
    upstream.shutdown_write().await;
    let got = next_msg(&mut client, Duration::from_secs(3)).await;
    let client_close = answer_close(&mut client).await;
    let ended = until_end(&mut client, Duration::from_secs(3)).await;
    let up_deadline = Instant::now() + Duration::from_secs(3);
    let mut up_close = None;
    while let Some(e) = upstream.next(up_deadline).await {
        match e {
            Event::Close { code } => up_close = Some(code),
            Event::Eof | Event::Reset(_) => break,
            _ => {}
        }
    }
    let up_ok = matches!(up_close, None | Some(Some(1001)));
    let ok = got == Some(text("last words")) && client_close == Some(Some(1014)) && ended && up_ok;
    judged(
        both(&client, &upstream),
        ok,
        "expected the message, then 1014 to the client",
    )
}

async fn upstream_dies_mid_frame(_env: Env) -> CustomResult {
    let (_relay, mut client, mut upstream) = match raw_drivers(&[]).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    let frame = s(op::BINARY, true, vec![9u8; 1000]);
    upstream.send(&frame[..500]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    upstream.shutdown_write().await;
    let ended = until_end(&mut client, Duration::from_secs(1)).await;
    let ok = ended && client.seen.messages().is_empty();
    judged(
        both(&client, &upstream),
        ok,
        "the client's connection did not end within 1 s, or got a message",
    )
}

async fn close_verbatim(_env: Env) -> CustomResult {
    let pair = match pair(&[]).await {
        Ok(p) => p,
        Err(e) => return fail(e.clone(), e),
    };
    let (client_raw, client_left) = pair.client;
    let (up_raw, up_left) = pair.upstream;
    let _relay = pair._relay;
    let mut client_w = client_raw;
    let c_close = c(op::CLOSE, true, close_payload(4321, "bye ü".as_bytes()));
    if client_w.write_all(&c_close).await.is_err() {
        return fail("write failed", "write failed");
    }
    let mut up = up_raw;
    let got_up = read_one_frame(&mut up, up_left).await;
    let reply = s(op::CLOSE, true, close_payload(4123, "ok ü".as_bytes()));
    let _ = up.write_all(&reply).await;
    let got_client = read_one_frame(&mut client_w, client_left).await;
    let up_ok = matches!(&got_up, Some(f) if f.opcode == op::CLOSE && f.payload == close_payload(4321, "bye ü".as_bytes()));
    let client_ok = matches!(&got_client, Some(f) if f.opcode == op::CLOSE && f.payload == close_payload(4123, "ok ü".as_bytes()));
    let observed = format!(
        "upstream got {:?}; client got {:?}",
        got_up.map(|f| String::from_utf8_lossy(&f.payload).into_owned()),
        got_client.map(|f| String::from_utf8_lossy(&f.payload).into_owned())
    );
    judged(
        observed,
        up_ok && client_ok,
        "a close payload changed on the way",
    )
}

async fn read_one_frame(stream: &mut TcpStream, mut buf: Vec<u8>) -> Option<wire::ReadFrame> {
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Ok(Some((frame, _))) = wire::read_frame(&buf, 1 << 20) {
            return Some(frame);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

async fn upstream_ping(_env: Env) -> CustomResult {
    let (_relay, mut client, mut upstream) = match raw_drivers(&[]).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    upstream.send(&s(op::PING, true, "up")).await;
    let ping = next_msg(&mut client, Duration::from_secs(3)).await;
    client.send(&c(op::PONG, true, "up")).await;
    let pong_back = next_msg(&mut upstream, Duration::from_secs(3)).await;
    let ok = ping == Some(Msg::Ping(b"up".to_vec())) && pong_back == Some(pong("up"));
    judged(
        both(&client, &upstream),
        ok,
        "the ping or the pong did not pass unchanged",
    )
}

async fn cut_through(_env: Env) -> CustomResult {
    let pair = match pair(&[]).await {
        Ok(p) => p,
        Err(e) => return fail(e.clone(), e),
    };
    let _relay = pair._relay;
    let (mut client, _) = pair.client;
    let (mut up, mut got) = pair.upstream;
    let frame = c(op::BINARY, true, vec![5u8; 8 * MIB]);
    let first = 14 + MIB;
    if client.write_all(&frame[..first]).await.is_err() {
        return fail("write failed", "write failed");
    }
    read_until(&mut up, &mut got, first - 64 * 1024, Duration::from_secs(3)).await;
    let observed = format!(
        "upstream received {} of the {first} bytes sent so far",
        got.len()
    );
    judged(
        observed,
        got.len() >= first - 64 * 1024,
        "the relay held the frame back",
    )
}

async fn verbatim_bytes(_env: Env) -> CustomResult {
    let pair = match pair(&[]).await {
        Ok(p) => p,
        Err(e) => return fail(e.clone(), e),
    };
    let _relay = pair._relay;
    let (mut client, _) = pair.client;
    let (mut up, mut got) = pair.upstream;
    let frame = wire::Frame::client(op::TEXT, true, "byte for byte")
        .mask(Some([0x11, 0x22, 0x33, 0x44]))
        .encode();
    let _ = client.write_all(&frame).await;
    read_until(&mut up, &mut got, frame.len(), Duration::from_secs(3)).await;
    judged(
        format!("upstream read {got:02x?}"),
        got == frame,
        "the bytes changed on the way",
    )
}

async fn back_pressure(_env: Env) -> CustomResult {
    let pair = match pair(&[]).await {
        Ok(p) => p,
        Err(e) => return fail(e.clone(), e),
    };
    let _relay = pair._relay;
    let (mut client, _) = pair.client;
    let (mut up, mut got) = pair.upstream;
    let total = 64 * MIB;
    let frame = c(
        op::BINARY,
        true,
        (0..total).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
    );
    // Write until a write stalls for 500 ms, with the upstream not reading.
    let mut written = 0;
    while written < frame.len() {
        let end = (written + 256 * 1024).min(frame.len());
        match tokio::time::timeout(
            Duration::from_millis(500),
            client.write(&frame[written..end]),
        )
        .await
        {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => {
                return fail(
                    format!("write failed: {e}"),
                    "the relay dropped the connection",
                )
            }
            Err(_) => break,
        }
    }
    let stalled_at = written;
    // Now read everything while the client finishes writing.
    let rest = frame[written..].to_vec();
    let writer = tokio::spawn(async move {
        let ok = client.write_all(&rest).await.is_ok();
        (client, ok)
    });
    read_until(&mut up, &mut got, frame.len(), Duration::from_secs(30)).await;
    let wrote_all = matches!(writer.await, Ok((_, true)));
    let intact = got == frame;
    let observed = format!(
        "client writes stalled after {} KiB; upstream then read {} KiB, intact: {intact}",
        stalled_at / 1024,
        got.len() / 1024
    );
    judged(
        observed,
        stalled_at < 48 * MIB && wrote_all && intact,
        "no back-pressure, or bytes lost",
    )
}

async fn bad_accept(_env: Env) -> CustomResult {
    let Ok((listener, addr)) = harness::raw_upstream().await else {
        return fail("bind failed", "bind failed");
    };
    let Ok(relay) = harness::start_relay(addr, Profile::Default).await else {
        return fail("relay failed to start", "relay failed to start");
    };
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.ok()?;
        let mut buf = vec![0u8; 8192];
        let mut have = 0;
        loop {
            let n = stream.read(&mut buf[have..]).await.ok()?;
            if n == 0 {
                return None;
            }
            have += n;
            if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let reply =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
        stream.write_all(reply.as_bytes()).await.ok()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some(())
    });
    let answer = peer::connect(relay.addr, "/bad-accept", &[]).await;
    upstream.abort();
    match answer {
        Err(e) if e.contains("502") => judged(e, true, ""),
        Err(e) => judged(e, false, "expected a 502"),
        Ok(_) => judged(
            "switched to WebSocket".into(),
            false,
            "the relay accepted a bad 101",
        ),
    }
}
