//! The access log: one line per finished tunnel (and, if asked, one when it opens), as the
//! text line of the gateway's log or as one JSON object a line (`log_format = "json"`).
//!
//! Query strings are written without their values unless `log_query_values` is set: tokens
//! travel there (`?access_token=...`), and a log is read by more people than a token should be.

use std::borrow::Cow;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use wsrelay_relay::{CloseInfo, EndReason, RelayOutcome, Side, Traffic};

/// The access log's form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// The gateway's log line (key=value fields), on standard error with the rest of its log.
    #[default]
    Text,
    /// One JSON object a line on standard error, for log collectors.
    Json,
}

impl LogFormat {
    /// `"text"` or `"json"`.
    pub fn parse(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// How tunnels are logged (`[server]` keys `log_format`, `log_open`, `log_query_values`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// A line when a tunnel opens (after its 101), besides the one when it ends.
    pub open_line: bool,
    /// Query values written as sent; by default only the parameter names are.
    pub query_values: bool,
}

/// A request target as the log shows it: with `values` false, each query parameter keeps its
/// name and loses its value (`/chat?token=&room=`).
pub fn loggable_target(target: &str, values: bool) -> Cow<'_, str> {
    let Some((path, query)) = target.split_once('?') else {
        return Cow::Borrowed(target);
    };
    if values {
        return Cow::Borrowed(target);
    }
    let mut out = String::with_capacity(target.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) => {
                out.push_str(name);
                out.push('=');
            }
            None => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

/// What the log says about one tunnel besides its relay outcome.
#[derive(Debug, Clone, Copy)]
pub struct Tunnel<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// The address the client connected to (the listener's).
    pub listener: Option<SocketAddr>,
    /// The route's name.
    pub route: &'a str,
    /// The backend the tunnel went to (one of [`crate::metrics::backends_of`]).
    pub backend: &'a str,
    /// The request target, as the client sent it (the log redacts it as configured).
    pub target: &'a str,
    /// The upstream's answer to the upgrade (101 for a tunnel).
    pub upstream_status: u16,
    /// The subprotocol the upstream chose.
    pub subprotocol: Option<&'a str>,
    /// The extensions the upstream accepted, as it wrote them.
    pub extensions: Option<&'a str>,
}

/// Who ended the tunnel: the side whose close came first, the side that went away, or the
/// relay (a violation, the idle timeout, shutdown, a hook, no randomness).
pub fn closed_by(end: &EndReason) -> &'static str {
    match end {
        EndReason::Closed { initiator }
        | EndReason::Vanished {
            side: initiator, ..
        } => side_name(*initiator),
        _ => "relay",
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Upstream => "upstream",
    }
}

/// Why the tunnel ended, in words (the text log's `end`).
pub fn end_reason(end: &EndReason) -> String {
    match end {
        EndReason::Closed { initiator } => format!("closed by {initiator}"),
        EndReason::Violation { side, violation } => format!("{side} violation: {violation}"),
        EndReason::Vanished { side, error } => match error {
            Some(kind) => format!("{side} vanished ({kind})"),
            None => format!("{side} vanished"),
        },
        EndReason::IdleTimeout => "idle timeout".to_owned(),
        EndReason::Shutdown => "shutdown".to_owned(),
        EndReason::Deadline { code } => {
            format!("deadline passed (token expired): closed with {code}")
        }
        EndReason::Hook { side, code } => format!("frame hook closed ({code}) on a {side} frame"),
        EndReason::RandomSource { error } => format!("closed with 1011: {error}"),
    }
}

/// The common fields of both JSON lines.
fn head(event: &str, t: &Tunnel<'_>, config: &AccessLogConfig) -> serde_json::Map<String, Value> {
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let fields = json!({
        "time": time,
        "event": event,
        "client": t.client.to_string(),
        "listener": t.listener.map(|a| a.to_string()),
        "route": t.route,
        "backend": t.backend,
        "target": loggable_target(t.target, config.query_values),
        "upstream_status": t.upstream_status,
        "subprotocol": t.subprotocol,
        "extensions": t.extensions,
    });
    match fields {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Writes one JSON line to standard error in one write (lines of concurrent workers do not mix).
fn write_line(fields: serde_json::Map<String, Value>) {
    let mut line = Value::Object(fields).to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Writes one JSON access-log line of another kind of event (a plain-HTTP exchange), with the
/// time first as every line has it. `fields` other than an object are not written.
pub(crate) fn write_json(fields: Value) {
    let Value::Object(fields) = fields else {
        return;
    };
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut line = serde_json::Map::new();
    line.insert("time".into(), Value::String(time));
    line.extend(fields);
    write_line(line);
}

/// The tunnel opened (its 101 was sent): a line if `open_line` is set.
pub fn opened(config: &AccessLogConfig, t: &Tunnel<'_>) {
    if !config.open_line {
        return;
    }
    match config.format {
        LogFormat::Json => write_line(head("open", t, config)),
        LogFormat::Text => tracing::info!(
            peer = %t.client,
            route = t.route,
            backend = t.backend,
            target = %loggable_target(t.target, config.query_values),
            subprotocol = t.subprotocol,
            extensions = t.extensions,
            "tunnel opened"
        ),
    }
}

/// The tunnel ended: its line, in the configured form.
pub fn finished(config: &AccessLogConfig, t: &Tunnel<'_>, duration: Duration, o: &RelayOutcome) {
    match config.format {
        LogFormat::Json => finished_json(config, t, duration, o),
        LogFormat::Text => finished_text(config, t, duration, o),
    }
}

/// The text line of a finished tunnel: who, which route and backend, how it ended, what passed
/// each way.
fn finished_text(config: &AccessLogConfig, t: &Tunnel<'_>, duration: Duration, o: &RelayOutcome) {
    let code = |c: &Option<CloseInfo>| c.as_ref().and_then(|c| c.code);
    tracing::info!(
        peer = %t.client,
        route = t.route,
        target = %loggable_target(t.target, config.query_values),
        backend = t.backend,
        end = end_reason(&o.end),
        duration_ms = duration.as_millis() as u64,
        c2u_frames = o.client_to_upstream.frames,
        c2u_bytes = o.client_to_upstream.bytes,
        c2u_remasked = o.client_to_upstream.remasked,
        u2c_frames = o.upstream_to_client.frames,
        u2c_bytes = o.upstream_to_client.bytes,
        client_close = ?code(&o.client_close),
        upstream_close = ?code(&o.upstream_close),
        sent_to_client = ?code(&o.sent_to_client),
        sent_to_upstream = ?code(&o.sent_to_upstream),
        close_timed_out = o.close_timed_out,
        "connection finished"
    );
}

/// The JSON line of a finished tunnel.
fn finished_json(config: &AccessLogConfig, t: &Tunnel<'_>, duration: Duration, o: &RelayOutcome) {
    let traffic = |t: &Traffic| {
        json!({
            "frames": t.frames,
            "messages": t.messages,
            "bytes": t.bytes,
            "payload_bytes": t.payload_bytes(),
            "remasked_frames": t.remasked,
        })
    };
    let code = |c: &Option<CloseInfo>| c.as_ref().map(|c| c.code.unwrap_or(1005));
    let mut fields = head("finished", t, config);
    let more = json!({
        "duration_ms": duration.as_millis() as u64,
        "client_to_upstream": traffic(&o.client_to_upstream),
        "upstream_to_client": traffic(&o.upstream_to_client),
        "client_close": code(&o.client_close),
        "upstream_close": code(&o.upstream_close),
        "sent_to_client": code(&o.sent_to_client),
        "sent_to_upstream": code(&o.sent_to_upstream),
        "closed_by": closed_by(&o.end),
        "end": end_reason(&o.end),
        "close_timed_out": o.close_timed_out,
    });
    if let Value::Object(more) = more {
        fields.extend(more);
    }
    write_line(fields);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_left_out_unless_asked_for() {
        let t = "/chat?token=s3cret&room=1&flag";
        assert_eq!(loggable_target(t, false), "/chat?token=&room=&flag");
        assert_eq!(loggable_target(t, true), t);
        assert_eq!(loggable_target("/plain", false), "/plain");
    }
}
