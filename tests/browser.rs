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

use std::time::Duration;

use chromium::{report_when, serve_page, Cdp, Chromium};
use clients::{
    check_common_scenarios, check_shutdown_close, install, item, log_field, sigterm, skipped,
    wait_exit, Setting,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_through_ws_and_wss_listeners() {
    const TEST: &str = "chromium_through_ws_and_wss_listeners";
    let chromium_bin = match install("install-chromium.sh") {
        Ok(mut lines) => lines.pop().unwrap_or_default(),
        Err(why) => return skipped(TEST, &why),
    };
    let Some(mut setting) = Setting::start(TEST) else {
        return;
    };
    let origins = setting.origins.clone();
    let PageRun {
        browser: _browser,
        mut cdp,
        session,
        report,
    } = run_page(&chromium_bin, &setting, &origins).await;

    for origin in &origins {
        check_common_scenarios(&report, origin);
        // What Chromium negotiated is exactly what the upstream accepted.
        let deflate = item(&report, origin, "deflate");
        assert_eq!(
            deflate["extensions"], deflate["upstream_accepted"],
            "{origin}"
        );
        let close = item(&report, origin, "upstream_close");
        assert_eq!(close["wasClean"], Value::Bool(true), "{origin}");
        assert_eq!(
            report["hold"][origin]["state"], "open",
            "{origin}: {report}"
        );
    }
    setting.check_deflate_passed_compressed(&report);

    // Shut the relay down while the page holds a socket on each listener: the page sees 1001.
    sigterm(&setting.relay);
    let report = report_when(&mut cdp, &session, Duration::from_secs(15), |r| {
        origins.iter().all(|o| !r["hold"][o]["close"].is_null())
    })
    .await;
    for origin in &origins {
        check_shutdown_close(&report, origin);
    }
    let status = wait_exit(&mut setting.relay, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "relay exit: {status:?}"
    );
}

/// Chromium opens WebSockets over HTTP/2 (RFC 8441) when it already has an HTTP/2 connection
/// to the origin and the server advertised `SETTINGS_ENABLE_CONNECT_PROTOCOL`: the page first
/// fetches `https://localhost:P/` from the TLS listener with `http2 = true` (h2 in ALPN; the
/// plain GET gets 405 on its stream), then runs the scenarios against `wss://localhost:P`. The
/// relay's log shows every tunnel on that one HTTP/2 connection (the fetch's peer address), and
/// its `HTTP/2 connection finished` line counts the fetch and each WebSocket as streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_uses_rfc8441_over_an_http2_listener() {
    const TEST: &str = "chromium_uses_rfc8441_over_an_http2_listener";
    let chromium_bin = match install("install-chromium.sh") {
        Ok(mut lines) => lines.pop().unwrap_or_default(),
        Err(why) => return skipped(TEST, &why),
    };
    let Some(mut setting) = Setting::start_with(TEST, "http2 = true\n") else {
        return;
    };
    let origin = setting.origins[1].clone();
    let PageRun {
        browser: _browser,
        mut cdp,
        session,
        report,
    } = run_page(&chromium_bin, &setting, std::slice::from_ref(&origin)).await;
    check_common_scenarios(&report, &origin);
    let deflate = item(&report, &origin, "deflate");
    assert_eq!(
        deflate["extensions"], deflate["upstream_accepted"],
        "{origin}"
    );
    assert_eq!(
        report["hold"][&origin]["state"], "open",
        "{origin}: {report}"
    );

    // The warm-up GET was answered over HTTP/2 (405: the listener takes only extended CONNECT).
    let refused = setting.relay.log_lines("status=405");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let peer = log_word(&refused[0], "peer").expect("peer of the 405");

    // Each scenario's socket ended cleanly over its stream, and its tunnel ended with it:
    // Chromium sends nothing after the close handshake (no END_STREAM, no RST_STREAM), so the
    // relay must not wait for the client's end of the stream (that took the close timeout, 5 s).
    let scenarios = report["runs"][&origin].as_object().map_or(0, |r| r.len());
    assert!(scenarios >= 7, "{report}");
    const FINISHED: &str = "access_log: connection finished";
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while setting.relay.log_lines(FINISHED).len() < scenarios
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = setting.relay.log_lines(FINISHED);
    assert_eq!(ended.len(), scenarios, "tunnels ended: {ended:#?}");

    // Shut the relay down while the page holds a socket: the page sees 1001.
    sigterm(&setting.relay);
    let report = report_when(&mut cdp, &session, Duration::from_secs(15), |r| {
        !r["hold"][&origin]["close"].is_null()
    })
    .await;
    check_shutdown_close(&report, &origin);
    let status = wait_exit(&mut setting.relay, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "relay exit: {status:?}"
    );

    // One HTTP/2 connection carried the warm-up GET and every WebSocket, the held one too.
    let http2 = setting.relay.log_lines("HTTP/2 connection finished");
    eprintln!("relay: {http2:?}");
    assert_eq!(http2.len(), 1, "{http2:?}");
    let websockets = log_field(&http2[0], "websockets").expect("websockets=");
    assert_eq!(websockets as usize, scenarios + 1, "{}", http2[0]);
    assert_eq!(log_field(&http2[0], "streams"), Some(websockets + 1));
    assert_eq!(log_word(&http2[0], "peer"), Some(peer.clone()));
    let tunnels = setting.relay.log_lines(FINISHED);
    assert_eq!(tunnels.len(), scenarios + 1, "{tunnels:#?}");
    for line in &tunnels {
        assert_eq!(log_word(line, "peer"), Some(peer.clone()), "{line}");
    }
}

/// A `key=value` field of a text log line, as text.
fn log_word(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_owned())
}

/// Chromium with the test page running: the browser (killed on drop), its DevTools
/// connection, the page's session, and the page's report once it finished.
struct PageRun {
    browser: Chromium,
    cdp: Cdp,
    session: String,
    report: Value,
}

/// Starts Chromium trusting `setting`'s test certificate and opens the test page on
/// `origins`, with the TLS listener's `https://` origin fetched first (`warm`: a connection
/// Chromium may reuse for WebSockets over HTTP/2; an HTTP/1.1 listener answers it with 426, an
/// HTTP/2 one with 405); waits for the page to finish and checks that it finished without an
/// error and fetched the warm-up.
async fn run_page(chromium_bin: &str, setting: &Setting, origins: &[String]) -> PageRun {
    let page = serve_page().await;
    let browser = Chromium::launch(
        chromium_bin,
        &[format!(
            "--ignore-certificate-errors-spki-list={}",
            setting.cert.spki_sha256
        )],
    )
    .expect("start Chromium");
    let mut cdp = Cdp::connect(&browser.devtools).await.expect("DevTools");
    let version = cdp.version().await.expect("Browser.getVersion");
    eprintln!("browser: {version} ({chromium_bin})");
    let warm = format!("https://localhost:{}/", setting.relay.addrs[1].port());
    let urls: String = origins.iter().map(|o| format!("&url={o}")).collect();
    let url = format!("http://{page}/page.html?warm={warm}{urls}");
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
    assert_eq!(
        report["warm"][&warm]["fetched"],
        Value::Bool(true),
        "{report}"
    );
    PageRun {
        browser,
        cdp,
        session,
        report,
    }
}
