//! A real browser through wsrelay: headless Chromium (Debian's `chromium`, installed by
//! scripts/install-chromium.sh) loads tests/browser/page.html, served by this test over HTTP,
//! which opens WebSockets through the `wsrelay` binary over `ws://` and `wss://` to the Python
//! scenario upstream and writes what it saw into the DOM; the test reads it over the DevTools
//! protocol and checks each item, then stops the relay with SIGTERM while the page holds a
//! socket open on each listener and checks that the page saw 1001.
//!
//! The TLS listener's certificate is made at test time (rcgen); Chromium accepts it through
//! `--ignore-certificate-errors-spki-list` with the leaf's key hash: that one key, nothing else.

mod support;

#[path = "support/clients.rs"]
mod clients;

#[path = "support/chromium.rs"]
mod chromium;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chromium::{Cdp, Chromium};
use clients::{
    install, log_field, origins, relay, sigterm, skipped, wait_exit, ScenarioUpstream, TestCert,
};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::Value;

const PAGE: &str = include_str!("browser/page.html");

/// Serves the test page for any path on a loopback port.
async fn serve_page() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(support::loopback())
        .await
        .expect("bind the page server");
    let addr = listener.local_addr().expect("page server address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let response = hyper::Response::builder()
                        .header("content-type", "text/html; charset=utf-8")
                        .header("cache-control", "no-store")
                        .body(Full::new(Bytes::from_static(PAGE.as_bytes())));
                    response
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Reads the page's report (the `#report` element's JSON) every 100 ms until `ready` holds,
/// for up to `within`; the last report either way.
async fn report_when(
    cdp: &mut Cdp,
    session: &str,
    within: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let text = cdp
            .evaluate(
                session,
                // Before the page has loaded the tab is still about:blank: no report yet.
                "(document.getElementById('report') || { textContent: '{}' }).textContent",
            )
            .await
            .expect("read the page's report");
        let report: Value = serde_json::from_str(text.as_str().unwrap_or("{}")).unwrap_or_default();
        if ready(&report) || Instant::now() >= deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One scenario's entry in the report, after checking that the page judged it `ok`; the caller
/// checks the details the page recorded.
fn item<'a>(report: &'a Value, origin: &str, name: &str) -> &'a Value {
    let entry = &report["runs"][origin][name];
    assert_eq!(
        entry["ok"],
        Value::Bool(true),
        "{origin} {name}: {entry}\nwhole report: {report}"
    );
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_through_ws_and_wss_listeners() {
    let chromium_bin = match install("install-chromium.sh") {
        Ok(mut lines) => lines.pop().unwrap_or_default(),
        Err(why) => {
            skipped("chromium_through_ws_and_wss_listeners", &why);
            return;
        }
    };
    let upstream = match ScenarioUpstream::start() {
        Ok(upstream) => upstream,
        Err(why) => {
            skipped(
                "chromium_through_ws_and_wss_listeners",
                &format!("no Python upstream: {why}"),
            );
            return;
        }
    };
    let cert = TestCert::new();
    let mut relay = relay(upstream.port, &cert);
    let origins = origins(&relay);
    let page = serve_page().await;

    let browser = Chromium::launch(
        &chromium_bin,
        &[format!(
            "--ignore-certificate-errors-spki-list={}",
            cert.spki_sha256
        )],
    )
    .expect("start Chromium");
    let mut cdp = Cdp::connect(&browser.devtools).await.expect("DevTools");
    let version = cdp.version().await.expect("Browser.getVersion");
    eprintln!("browser: {version} ({chromium_bin})");
    let url = format!(
        "http://{page}/page.html?url={}&url={}",
        origins[0], origins[1]
    );
    let session = cdp.open_page(&url).await.expect("open the test page");

    let report = report_when(&mut cdp, &session, Duration::from_secs(60), |r| {
        r["done"] == Value::Bool(true)
    })
    .await;
    eprintln!("page report: {report}");
    assert_eq!(
        report["done"],
        Value::Bool(true),
        "page did not finish: {report}\n{}",
        browser.log()
    );
    assert_eq!(report["error"], Value::Null, "{report}");

    for origin in &origins {
        let text = item(&report, origin, "text");
        assert_eq!(text["got"], text["sent"], "{origin}");

        let binary = item(&report, origin, "binary");
        assert_eq!(binary["length"], 256, "{origin}");
        assert_eq!(binary["type"], "arraybuffer", "{origin}");

        let big = item(&report, origin, "big");
        assert_eq!(big["got_length"], 16 * 1024 * 1024, "{origin}");
        assert_eq!(big["got_fnv1a"], big["sent_fnv1a"], "{origin}");

        let proto = item(&report, origin, "subprotocol");
        assert_eq!(proto["protocol"], "wsrelay.v2", "{origin}");
        assert_eq!(proto["upstream_chose"], "wsrelay.v2", "{origin}");

        let deflate = item(&report, origin, "deflate");
        let extensions = deflate["extensions"].as_str().unwrap_or_default();
        assert!(
            extensions.starts_with("permessage-deflate"),
            "{origin}: {deflate}"
        );
        // What Chromium negotiated is exactly what the upstream accepted, and the upstream got
        // Chromium's offer.
        assert_eq!(
            deflate["upstream_accepted"].as_str(),
            Some(extensions),
            "{origin}"
        );
        let offer = deflate["upstream_offer"].as_str().unwrap_or_default();
        assert!(
            offer.starts_with("permessage-deflate"),
            "{origin}: {deflate}"
        );
        assert_eq!(deflate["echoed"], Value::Bool(true), "{origin}");

        let close = item(&report, origin, "upstream_close");
        assert_eq!(close["code"], 4000, "{origin}");
        assert_eq!(close["reason"], "bye", "{origin}");
        assert_eq!(close["wasClean"], Value::Bool(true), "{origin}");

        let ping = item(&report, origin, "upstream_ping");
        assert_eq!(ping["answer"]["pong"], Value::Bool(true), "{origin}");

        assert_eq!(
            report["hold"][origin]["state"], "open",
            "{origin}: {report}"
        );
    }

    // The compressed frames crossed the relay as they were: the 256 KiB text of each /deflate
    // connection took a small fraction of that on the wire, both ways.
    let payload = report["runs"][&origins[0]]["deflate"]["payload_bytes"]
        .as_u64()
        .expect("payload_bytes");
    assert_eq!(payload, 256 * 1024);
    let deflate_lines = relay.log_lines("target=/deflate");
    let finished: Vec<&String> = deflate_lines
        .iter()
        .filter(|l| l.contains("connection finished"))
        .collect();
    assert_eq!(
        finished.len(),
        2,
        "one /deflate tunnel per listener: {deflate_lines:?}"
    );
    for line in finished {
        let up = log_field(line, "c2u_bytes").expect("c2u_bytes");
        let down = log_field(line, "u2c_bytes").expect("u2c_bytes");
        eprintln!(
            "/deflate: {payload} bytes of text; through the relay {up} bytes up, {down} down"
        );
        assert!(up < payload / 4, "client frames not compressed: {line}");
        assert!(down < payload / 4, "upstream frames not compressed: {line}");
    }

    // Shut the relay down while the page holds a socket on each listener: the page sees 1001.
    sigterm(&relay);
    let report = report_when(&mut cdp, &session, Duration::from_secs(15), |r| {
        origins.iter().all(|o| !r["hold"][o]["close"].is_null())
    })
    .await;
    for origin in &origins {
        let close = &report["hold"][origin]["close"];
        eprintln!("{origin}: on shutdown the page saw {close}");
        assert_eq!(close["code"], 1001, "{origin}: {report}");
    }
    let status = wait_exit(&mut relay, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "relay exit: {status:?}"
    );
}
