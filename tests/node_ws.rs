//! Node's `ws` as the client through wsrelay: tests/node/ws_client.js (node from Debian's
//! `nodejs` where missing, `ws` from the npm registry into target/node-ws, both by
//! scripts/install-node-ws.sh) runs the browser test's scenarios (tests/clients/scenarios.js)
//! plus fragmented messages and pings both ways, over `ws://` and `wss://` (the test CA trusted
//! by the script), against the Python scenario upstream; it prints its results as JSON, checked
//! here item by item. The relay is stopped with SIGTERM while the script holds a socket on each
//! listener: `ws` sees 1001.

mod support;

#[path = "support/clients.rs"]
mod clients;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use clients::{
    check_common_scenarios, check_shutdown_close, install, item, sigterm, skipped, wait_exit,
    Group, Setting,
};
use serde_json::{json, Value};

#[test]
fn node_ws_client_through_ws_and_wss_listeners() {
    const TEST: &str = "node_ws_client_through_ws_and_wss_listeners";
    let (node, node_path) = match install("install-node-ws.sh").as_deref() {
        Ok([node, modules]) => (node.clone(), modules.clone()),
        Ok(other) => panic!("install-node-ws.sh printed {other:?}"),
        Err(why) => return skipped(TEST, why),
    };
    let Some(mut setting) = Setting::start(TEST) else {
        return;
    };
    let origins = setting.origins.clone();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/ws_client.js");
    let mut client = Group::spawn(
        Command::new(&node)
            .arg(script)
            .arg(&setting.cert.ca_file)
            .args(&origins)
            .env("NODE_PATH", &node_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .expect("start node");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = client.0.stdout.take().expect("node's stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("node printed no {what} line"))
    };

    // The scenarios have run and a socket per listener is open: stop the relay under them.
    let holding = line("HOLDING");
    let held: Value = serde_json::from_str(
        holding
            .strip_prefix("HOLDING ")
            .unwrap_or_else(|| panic!("not the HOLDING line: {holding}")),
    )
    .expect("HOLDING json");
    for origin in &origins {
        assert_eq!(held[origin]["state"], "open", "{origin}: {holding}");
    }
    sigterm(&setting.relay);
    let report: Value = serde_json::from_str(&line("result")).expect("result json");
    eprintln!("node report: {report}");
    let status = wait_exit(&mut setting.relay, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "relay exit: {status:?}"
    );
    eprintln!("node {} with ws {}", report["node"], report["ws"]);

    for origin in &origins {
        check_common_scenarios(&report, origin);

        let ping = item(&report, origin, "upstream_ping");
        assert_eq!(ping["pings"], json!(["upstream-ping"]), "{origin}");

        let fragments = item(&report, origin, "fragments");
        assert_eq!(fragments["upstream_fragments"], 3, "{origin}");
        assert_eq!(
            fragments["upstream_text"], "first fragment, second fragment, last fragment",
            "{origin}"
        );

        let pong = item(&report, origin, "client_ping");
        assert_eq!(pong["pong_payload"], "client-ping", "{origin}");

        check_shutdown_close(&report, origin);
    }
    setting.check_deflate_passed_compressed(&report);
}
