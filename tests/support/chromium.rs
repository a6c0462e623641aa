//! Headless Chromium driven over the DevTools protocol (CDP): a launcher with a throwaway profile
//! and a small CDP client on tokio-tungstenite that opens a page and evaluates expressions in it;
//! the server of the test page (tests/browser/page.html) and the reader of its DOM report.
//!
//! Included with `#[path = "support/chromium.rs"] mod chromium;` after the clients module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::clients::Group;
use crate::support::{loopback, write_temp};

/// A headless Chromium process (and its helpers, one process group), killed on drop.
pub struct Chromium {
    /// The browser-wide DevTools WebSocket URL it announced.
    pub devtools: String,
    /// Everything it wrote on stderr so far, for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
    _process: Group,
}

impl Chromium {
    /// Starts `binary` headless (`--headless=new`) with a fresh `--user-data-dir`, no sandbox
    /// (the tests run as root), no proxy, DevTools on a free port, and `extra` flags; waits
    /// until it announces its DevTools endpoint.
    pub fn launch(binary: &str, extra: &[String]) -> Result<Chromium, String> {
        let profile = write_temp("profile.txt", "chromium profile")
            .parent()
            .ok_or("no temporary directory")?
            .join("profile");
        let mut command = Command::new(binary);
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-proxy-server",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut process = Group::spawn(&mut command).map_err(|e| format!("{binary}: {e}"))?;
        let stderr = process.0.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let devtools = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| {
            format!(
                "Chromium announced no DevTools endpoint: {:?}",
                log.lock().unwrap()
            )
        })?;
        Ok(Chromium {
            devtools,
            log,
            _process: process,
        })
    }

    /// The stderr lines so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// A DevTools protocol connection to the browser; pages are reached through flat sessions.
pub struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Cdp {
    /// Connects to the browser-wide endpoint `Chromium::devtools`.
    pub async fn connect(url: &str) -> Result<Cdp, String> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| format!("DevTools connect {url}: {e}"))?;
        Ok(Cdp { ws, next_id: 1 })
    }

    /// Calls `method` (in `session`, or on the browser) and returns its result; events that
    /// arrive meanwhile are skipped.
    pub async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        let answer = async {
            while let Some(message) = self.ws.next().await {
                let message = message.map_err(|e| format!("{method}: {e}"))?;
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if value["id"].as_u64() != Some(id) {
                    continue;
                }
                if let Some(error) = value.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(value["result"].clone());
            }
            Err(format!("{method}: DevTools connection closed"))
        };
        tokio::time::timeout(Duration::from_secs(30), answer)
            .await
            .map_err(|_| format!("{method}: no answer in 30 s"))?
    }

    /// The browser's product and version, e.g. "Chrome/148.0.7778.167".
    pub async fn version(&mut self) -> Result<String, String> {
        let v = self.call(None, "Browser.getVersion", json!({})).await?;
        Ok(v["product"].as_str().unwrap_or_default().to_owned())
    }

    /// Opens `url` in a new tab; returns the session to evaluate in.
    pub async fn open_page(&mut self, url: &str) -> Result<String, String> {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": url }))
            .await?;
        let target = target["targetId"].as_str().ok_or("no targetId")?.to_owned();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        Ok(attached["sessionId"]
            .as_str()
            .ok_or("no sessionId")?
            .to_owned())
    }

    /// Evaluates `expression` in the page and returns its value (JSON-serialisable).
    pub async fn evaluate(&mut self, session: &str, expression: &str) -> Result<Value, String> {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("{expression}: {exception}"));
        }
        Ok(result["result"]["value"].clone())
    }
}

const PAGE: &str = include_str!("../browser/page.html");
const SCENARIOS: &str = include_str!("../clients/scenarios.js");

/// Serves the test page (tests/browser/page.html) over HTTP/1.1 on a loopback port: `/scenarios.js`, and the page for any other path.
pub async fn serve_page() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(loopback())
        .await
        .expect("bind the page server");
    let addr = listener.local_addr().expect("page server address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request| async move {
                    let (body, kind) = if request.uri().path() == "/scenarios.js" {
                        (SCENARIOS, "text/javascript")
                    } else {
                        (PAGE, "text/html")
                    };
                    hyper::Response::builder()
                        .header("content-type", format!("{kind}; charset=utf-8"))
                        .header("cache-control", "no-store")
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
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
pub async fn report_when(
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
