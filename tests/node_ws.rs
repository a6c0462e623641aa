//! Node's `ws` as the client through wsrelay: tests/node/ws_client.js (node from Debian's
//! `nodejs` where missing, `ws` from the npm registry into target/node-ws, both by
//! scripts/install-node-ws.sh) runs the browser test's scenarios plus fragmented messages and
//! pings both ways, over `ws://` and `wss://` (the test CA trusted by the script), against the
//! Python scenario upstream; it prints its results as JSON, checked here item by item. The relay
//! is stopped with SIGTERM while the script holds a socket on each listener: `ws` sees 1001.

mod support;

#[path = "support/clients.rs"]
mod clients;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use clients::{
    install, log_field, origins, relay, sigterm, skipped, wait_exit, Group, ScenarioUpstream,
    TestCert,
};
use serde_json::Value;

/// One scenario's result, after checking that the script judged it `ok`.
fn item<'a>(report: &'a Value, origin: &str, name: &str) -> &'a Value {
    let entry = &report["runs"][origin][name];
    assert_eq!(
        entry["ok"],
        Value::Bool(true),
        "{origin} {name}: {entry}\nwhole report: {report}"
    );
    entry
}

#[test]
fn node_ws_client_through_ws_and_wss_listeners() {
    let (node, node_path) = match install("install-node-ws.sh").as_deref() {
        Ok([node, modules]) => (node.clone(), modules.clone()),
        Ok(other) => panic!("install-node-ws.sh printed {other:?}"),
        Err(why) => {
            skipped("node_ws_client_through_ws_and_wss_listeners", &why);
            return;
        }
    };
    let upstream = match ScenarioUpstream::start() {
        Ok(upstream) => upstream,
        Err(why) => {
            skipped(
                "node_ws_client_through_ws_and_wss_listeners",
                &format!("no Python upstream: {why}"),
            );
            return;
        }
    };
    let cert = TestCert::new();
    let mut relay = relay(upstream.port, &cert);
    let origins = origins(&relay);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/ws_client.js");
    let mut client = Group::spawn(
        Command::new(&node)
            .arg(script)
            .arg(&cert.ca_file)
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
    sigterm(&relay);
    let report: Value = serde_json::from_str(&line("result")).expect("result json");
    eprintln!("node report: {report}");
    let status = wait_exit(&mut relay, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "relay exit: {status:?}"
    );
    eprintln!(
        "node {} with ws {}",
        report["node"].as_str().unwrap_or("?"),
        report["ws"].as_str().unwrap_or("?")
    );

    for origin in &origins {
        let text = item(&report, origin, "text");
        assert_eq!(text["got"], text["sent"], "{origin}");

        let binary = item(&report, origin, "binary");
        assert_eq!(binary["length"], 256, "{origin}");
        assert_eq!(binary["binary"], Value::Bool(true), "{origin}");

        let big = item(&report, origin, "big");
        assert_eq!(big["got_length"], 16 * 1024 * 1024, "{origin}");
        assert_eq!(big["got_sha256"], big["sent_sha256"], "{origin}");

        let proto = item(&report, origin, "subprotocol");
        assert_eq!(proto["protocol"], "wsrelay.v2", "{origin}");
        assert_eq!(proto["upstream_chose"], "wsrelay.v2", "{origin}");

        let deflate = item(&report, origin, "deflate");
        let extensions = deflate["extensions"].as_str().unwrap_or_default();
        assert!(
            extensions.starts_with("permessage-deflate"),
            "{origin}: {deflate}"
        );
        let offer = deflate["upstream_offer"].as_str().unwrap_or_default();
        assert!(
            offer.starts_with("permessage-deflate"),
            "{origin}: {deflate}"
        );
        let accepted = deflate["upstream_accepted"].as_str().unwrap_or_default();
        assert!(
            accepted.starts_with("permessage-deflate"),
            "{origin}: {deflate}"
        );
        assert_eq!(deflate["echoed"], Value::Bool(true), "{origin}");

        let close = item(&report, origin, "upstream_close");
        assert_eq!(close["code"], 4000, "{origin}");
        assert_eq!(close["reason"], "bye", "{origin}");

        let ping = item(&report, origin, "upstream_ping");
        assert_eq!(ping["pings"], serde_json::json!(["upstream-ping"]), "{origin}");
        assert_eq!(ping["answer"]["pong"], Value::Bool(true), "{origin}");

        let fragments = item(&report, origin, "fragments");
        assert_eq!(fragments["upstream_fragments"], 3, "{origin}");
        assert_eq!(
            fragments["upstream_text"], "first fragment, second fragment, last fragment",
            "{origin}"
        );

        let pong = item(&report, origin, "client_ping");
        assert_eq!(pong["pong_payload"], "client-ping", "{origin}");

        let close = &report["hold"][origin]["close"];
        eprintln!("{origin}: on shutdown ws saw {close}");
        assert_eq!(close["code"], 1001, "{origin}: {report}");
    }

    // Compressed frames crossed the relay as they were, both ways.
    let payload = report["runs"][&origins[0]]["deflate"]["payload_bytes"]
        .as_u64()
        .expect("payload_bytes");
    let lines = relay.log_lines("target=/deflate");
    let finished: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("connection finished"))
        .collect();
    assert_eq!(
        finished.len(),
        2,
        "one /deflate tunnel per listener: {lines:?}"
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
}
