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
    check_common_scenarios, check_shutdown_close, install, item, sigterm, skipped, wait_exit,
    Setting,
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
    let page = serve_page().await;

    let browser = Chromium::launch(
        &chromium_bin,
        &[format!(
            "--ignore-certificate-errors-spki-list={}",
            setting.cert.spki_sha256
        )],
    )
    .expect("start Chromium");
    let mut cdp = Cdp::connect(&browser.devtools).await.expect("DevTools");
    let version = cdp.version().await.expect("Browser.getVersion");
    eprintln!("browser: {version} ({chromium_bin})");
    // `warm` first makes a plain HTTPS request to the TLS listener (a connection Chromium could
    // reuse for WebSockets over HTTP/2; this listener answers it with HTTP/1.1 and 426).
    let warm = format!("https://localhost:{}/", setting.relay.addrs[1].port());
    let url = format!(
        "http://{page}/page.html?warm={warm}&url={}&url={}",
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
    assert_eq!(
        report["warm"][&warm]["fetched"],
        Value::Bool(true),
        "{report}"
    );

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
