//! The raw driver on one connection: it writes the case's bytes while a reader task records every
//! frame that comes back, checks that what the relay sends is itself a valid frame sequence, and
//! answers closes the way a well-behaved peer does.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::case::{Case, Expect, Msg, Step};
use crate::wire::{self, close_payload, op, Frame};

/// Largest frame the driver accepts back (the biggest cases send 64 MiB).
const MAX_READ_FRAME: u64 = 256 << 20;

/// How long "nothing comes back" is watched for.
pub const QUIET: Duration = Duration::from_millis(300);

/// Which side of the relay the driver plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The driver is the client: it masks, and expects unmasked frames back.
    Client,
    /// The driver is the upstream: it does not mask, and expects masked frames.
    Upstream,
}

/// Something the reader saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete message, a pong or a ping.
    Msg(Msg),
    /// A close frame.
    Close {
        /// Its status code, if any.
        code: Option<u16>,
    },
    /// The peer closed the TCP connection.
    Eof,
    /// The read failed (e.g. reset).
    Reset(String),
    /// The relay sent something that is not a valid frame sequence.
    Invalid(String),
}

/// Everything seen on one connection, with arrival times.
#[derive(Debug, Default)]
pub struct Observation {
    /// Events in arrival order.
    pub events: Vec<(Instant, Event)>,
    /// A message that had started but not finished when the connection ended: (opcode, bytes).
    pub partial: Option<(u8, usize)>,
    /// When the driver last finished writing.
    pub last_write: Option<Instant>,
    /// Problems on the driver's side (a write failed, a step's await timed out).
    pub notes: Vec<String>,
}

impl Observation {
    /// The messages, pongs and pings, in order.
    pub fn messages(&self) -> Vec<&Msg> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Msg(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// The first close frame's code (outer `None`: no close frame).
    pub fn close(&self) -> Option<(Instant, Option<u16>)> {
        self.events.iter().find_map(|(t, e)| match e {
            Event::Close { code } => Some((*t, *code)),
            _ => None,
        })
    }

    /// Whether the connection ended (EOF or reset).
    pub fn ended(&self) -> bool {
        self.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Eof | Event::Reset(_)))
    }

    /// Protocol errors in what the relay sent.
    pub fn invalid(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Invalid(why) => Some(why.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A one-line account for the report.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut run: Option<(String, usize)> = None;
        for (_, e) in &self.events {
            let s = match e {
                Event::Msg(m) => format!("{m:?}"),
                Event::Close { code: Some(c) } => format!("close {c}"),
                Event::Close { code: None } => "close (no code)".to_owned(),
                Event::Eof => "tcp close".to_owned(),
                Event::Reset(why) => format!("reset ({why})"),
                Event::Invalid(why) => format!("INVALID: {why}"),
            };
            // Collapse runs of identical entries (many echoes of small messages).
            match &mut run {
                Some((last, n)) if *last == s => *n += 1,
                _ => {
                    if let Some((last, n)) = run.take() {
                        parts.push(if n > 1 { format!("{n} x {last}") } else { last });
                    }
                    run = Some((s, 1));
                }
            }
        }
        if let Some((last, n)) = run {
            parts.push(if n > 1 { format!("{n} x {last}") } else { last });
        }
        if let Some((opcode, len)) = self.partial {
            parts.push(format!("(unfinished opcode {opcode} message, {len}B)"));
        }
        if let (Some(done), Some((at, _))) = (self.last_write, self.close()) {
            parts.push(format!(
                "close {} ms after the last write",
                at.saturating_duration_since(done).as_millis()
            ));
        }
        for n in &self.notes {
            parts.push(format!("[{n}]"));
        }
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Reads frames until the connection ends, sending events; returns a message left unfinished.
async fn reader(
    mut read: OwnedReadHalf,
    mut buf: Vec<u8>,
    role: Role,
    events: mpsc::UnboundedSender<(Instant, Event)>,
) -> Option<(u8, usize)> {
    let send = |e: Event| {
        let _ = events.send((Instant::now(), e));
    };
    let mut message: Option<(u8, Vec<u8>)> = None;
    let mut closed = false;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        // Parse every complete frame in the buffer.
        let mut at = 0;
        loop {
            match wire::read_frame(&buf[at..], MAX_READ_FRAME) {
                Ok(Some((frame, used))) => {
                    at += used;
                    if let Some(problem) = check_frame(&frame, role, closed, message.is_some()) {
                        send(Event::Invalid(problem));
                    }
                    match frame.opcode {
                        op::TEXT | op::BINARY if message.is_none() => {
                            if frame.fin {
                                send(Event::Msg(data_msg(frame.opcode, frame.payload)));
                            } else {
                                message = Some((frame.opcode, frame.payload));
                            }
                        }
                        op::CONT if message.is_some() => {
                            if let Some((_, body)) = message.as_mut() {
                                body.extend_from_slice(&frame.payload);
                            }
                            if frame.fin {
                                if let Some((opcode, body)) = message.take() {
                                    send(Event::Msg(data_msg(opcode, body)));
                                }
                            }
                        }
                        op::PING => send(Event::Msg(Msg::Ping(frame.payload))),
                        op::PONG => send(Event::Msg(Msg::Pong(frame.payload))),
                        op::CLOSE => {
                            closed = true;
                            let code = (frame.payload.len() >= 2)
                                .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                            send(Event::Close { code });
                        }
                        _ => {} // Already reported as invalid.
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    send(Event::Invalid(e));
                    return message.map(|(o, b)| (o, b.len()));
                }
            }
        }
        buf.drain(..at);
        match read.read(&mut chunk).await {
            Ok(0) => {
                if !buf.is_empty() {
                    send(Event::Invalid(format!(
                        "{} bytes of an unfinished frame before EOF",
                        buf.len()
                    )));
                }
                send(Event::Eof);
                return message.map(|(o, b)| (o, b.len()));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                send(Event::Reset(e.kind().to_string()));
                return message.map(|(o, b)| (o, b.len()));
            }
        }
    }
}

fn data_msg(opcode: u8, payload: Vec<u8>) -> Msg {
    if opcode == op::TEXT {
        Msg::Text(payload)
    } else {
        Msg::Binary(payload)
    }
}

/// What is wrong with a frame the relay sent, if anything.
fn check_frame(
    frame: &wire::ReadFrame,
    role: Role,
    closed: bool,
    in_message: bool,
) -> Option<String> {
    if closed {
        return Some(format!("opcode {} frame after a close", frame.opcode));
    }
    if frame.rsv != 0 {
        return Some(format!("RSV bits {:#b} without an extension", frame.rsv));
    }
    match role {
        Role::Client if frame.masked => return Some("masked frame towards the client".into()),
        Role::Upstream if !frame.masked => {
            return Some("unmasked frame towards the upstream".into())
        }
        _ => {}
    }
    match frame.opcode {
        op::TEXT | op::BINARY if in_message => Some("new message inside a fragmented one".into()),
        op::CONT if !in_message => Some("continuation without a message".into()),
        op::PING | op::PONG | op::CLOSE if !frame.fin || frame.payload.len() > 125 => {
            Some("control frame fragmented or over 125 bytes".into())
        }
        op::TEXT | op::BINARY | op::CONT | op::PING | op::PONG | op::CLOSE => None,
        other => Some(format!("reserved opcode {other:#x}")),
    }
}

/// Opens a client connection through the relay: the upgrade request (with `pipelined` bytes in
/// the same write), a verified 101, and whatever followed it.
pub async fn connect(
    addr: std::net::SocketAddr,
    path: &str,
    pipelined: &[u8],
) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut request = wire::upgrade_request(&addr.to_string(), path);
    request.extend_from_slice(pipelined);
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head) = wire::parse_response(&buf)? {
            if head.status != 101 {
                return Err(format!("upgrade refused with {}", head.status));
            }
            if head.accept.as_deref() != Some(wire::accept_key(wire::CLIENT_KEY).as_str()) {
                return Err("wrong Sec-WebSocket-Accept".into());
            }
            buf.drain(..head.len);
            return Ok((stream, buf));
        }
        if buf.len() > 16 * 1024 {
            return Err("response head too large".into());
        }
        match stream.read(&mut chunk).await {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// A connection the driver runs a script on.
pub struct Driver {
    role: Role,
    write: OwnedWriteHalf,
    events: mpsc::UnboundedReceiver<(Instant, Event)>,
    reader: tokio::task::JoinHandle<Option<(u8, usize)>>,
    /// What has been seen so far.
    pub seen: Observation,
    close_sent: bool,
}

impl Driver {
    /// Starts reading `stream` (with `leftover` bytes already read past the handshake).
    pub fn new(stream: TcpStream, leftover: Vec<u8>, role: Role) -> Driver {
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(reader(read, leftover, role, tx));
        Driver {
            role,
            write,
            events: rx,
            reader,
            seen: Observation::default(),
            close_sent: false,
        }
    }

    /// A frame of this driver's side (masked when it is the client).
    pub fn frame(&self, opcode: u8, fin: bool, payload: impl Into<Vec<u8>>) -> Frame {
        match self.role {
            Role::Client => Frame::client(opcode, fin, payload),
            Role::Upstream => Frame::server(opcode, fin, payload),
        }
    }

    /// Whether a close frame has been sent.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Writes bytes; a failure is noted, not fatal (the relay may have hung up on purpose).
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        match self.write.write_all(bytes).await {
            Ok(()) => true,
            Err(e) => {
                self.seen.notes.push(format!("write failed: {}", e.kind()));
                false
            }
        }
    }

    /// Shuts down the write half (the peer reads EOF; this side can still read).
    pub async fn shutdown_write(&mut self) {
        let _ = self.write.shutdown().await;
    }

    /// Sends a close frame with `code` (or an empty close).
    pub async fn send_close(&mut self, code: Option<u16>) {
        let payload = code.map(|c| close_payload(c, b"")).unwrap_or_default();
        let bytes = self.frame(op::CLOSE, true, payload).encode();
        self.close_sent = true;
        self.send(&bytes).await;
    }

    /// Waits for the next event until `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Option<Event> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.events.recv()).await {
            Ok(Some((at, event))) => {
                self.seen.events.push((at, event.clone()));
                Some(event)
            }
            _ => None,
        }
    }

    /// Runs the steps.
    pub async fn run_steps(&mut self, steps: &[Step], deadline: Instant) {
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    self.close_sent |= wire::holds_close(bytes);
                    let ok = self.send(bytes).await;
                    self.seen.last_write = Some(Instant::now());
                    if !ok {
                        break;
                    }
                }
                Step::SendChunked {
                    bytes,
                    chunk,
                    pause,
                } => {
                    self.close_sent |= wire::holds_close(bytes);
                    let mut ok = true;
                    for piece in bytes.chunks((*chunk).max(1)) {
                        if !self.send(piece).await {
                            ok = false;
                            break;
                        }
                        if !pause.is_zero() {
                            tokio::time::sleep(*pause).await;
                        }
                    }
                    self.seen.last_write = Some(Instant::now());
                    if !ok {
                        break;
                    }
                }
                Step::Pause(d) => tokio::time::sleep(*d).await,
                Step::ShutdownWrite => {
                    let _ = self.write.shutdown().await;
                }
                Step::Await(want) => {
                    let found = loop {
                        match self.next(deadline).await {
                            Some(Event::Msg(m)) if &m == want => break true,
                            Some(Event::Msg(_)) | Some(Event::Invalid(_)) => continue,
                            _ => break false,
                        }
                    };
                    if !found {
                        self.seen.notes.push(format!("awaited {want:?} never came"));
                        break;
                    }
                }
            }
        }
    }

    /// After the steps: waits for the expected messages, closes or answers the close like a
    /// polite peer, and waits for the end, all before `deadline`.
    pub async fn finish(mut self, expect: &Expect, case: &Case, deadline: Instant) -> Observation {
        let wanted = expect.messages().len();
        let mut quiet_waited = false;
        loop {
            let have = self.seen.messages().len();
            let close_seen = self.seen.close().is_some();
            if matches!(expect, Expect::Echo(_))
                && !self.close_sent
                && !close_seen
                && have >= wanted
            {
                if wanted == 0 && !quiet_waited {
                    // Watch for anything unexpected before closing.
                    quiet_waited = true;
                    let quiet_end = (Instant::now() + QUIET).min(deadline);
                    if self.next(quiet_end).await.is_some() {
                        continue;
                    }
                }
                self.send_close(Some(1000)).await;
            }
            if self.close_sent && close_seen && self.role == Role::Upstream {
                // A server closes the TCP connection once the close handshake is done.
                break;
            }
            match self.next(deadline).await {
                Some(Event::Close { code }) => {
                    if !self.close_sent && !case.no_close_reply {
                        self.send_close(code).await;
                    }
                }
                Some(Event::Eof) | Some(Event::Reset(_)) => break,
                Some(_) => {}
                None => {
                    self.seen.notes.push("deadline passed".into());
                    break;
                }
            }
        }
        drop(self.write);
        self.reader.abort();
        if let Ok(partial) = self.reader.await {
            self.seen.partial = partial;
        }
        // Events the reader sent before it stopped.
        while let Ok((at, e)) = self.events.try_recv() {
            self.seen.events.push((at, e));
        }
        self.seen
    }
}

/// Judges an observation against the case: `Ok(None)` strict pass, `Ok(Some(quote))` a pass
/// the RFC allows, `Err(why)` a failure.
pub fn judge(case: &Case, seen: &Observation) -> Result<Option<&'static str>, String> {
    if let Some(why) = seen.invalid().first() {
        return Err(format!("relay sent an invalid frame sequence: {why}"));
    }
    let got = seen.messages();
    let close = seen.close().map(|(_, c)| c);
    let (want, codes): (&[Msg], Vec<Option<u16>>) = match &case.expect {
        Expect::Echo(m) => (m, vec![Some(1000)]),
        Expect::Close { before, codes } => (before, codes.clone()),
    };
    let Some(code) = close else {
        return Err("no close frame".into());
    };
    if !codes.contains(&code) {
        return Err(format!("close code {code:?}, expected one of {codes:?}"));
    }
    if let (Some(within), Some(done), Some((at, _))) =
        (case.fail_within, seen.last_write, seen.close())
    {
        let took = at.saturating_duration_since(done);
        if took > within {
            return Err(format!("close came after {} ms", took.as_millis()));
        }
    }
    let ended = seen.ended() || matches!(case.script, crate::case::Script::Upstream { .. });
    if !ended {
        return Err("the connection was not closed".into());
    }
    // Pongs are compared apart from data messages: an endpoint answers a ping "as soon as is
    // practical" (RFC 6455 §5.5.2), so a pong may overtake the echo of an earlier message.
    let split = |msgs: Vec<&Msg>| -> (Vec<Msg>, Vec<Msg>) {
        msgs.into_iter()
            .cloned()
            .partition(|m| matches!(m, Msg::Text(_) | Msg::Binary(_)))
    };
    let (got_data, got_control) = split(got);
    let (want_data, want_control) = split(want.iter().collect());
    if got_data == want_data && got_control == want_control {
        return Ok(None);
    }
    let prefix = |got: &[Msg], want: &[Msg]| {
        got.len() <= want.len() && got.iter().zip(want).all(|(a, b)| a == b)
    };
    match case.non_strict {
        Some(quote) if prefix(&got_data, &want_data) && prefix(&got_control, &want_control) => {
            Ok(Some(quote))
        }
        _ => Err(format!(
            "messages differ: got {:?} and {:?}, expected {:?} and {:?}",
            got_data.iter().take(8).collect::<Vec<_>>(),
            got_control.iter().take(8).collect::<Vec<_>>(),
            want_data.iter().take(8).collect::<Vec<_>>(),
            want_control.iter().take(8).collect::<Vec<_>>()
        )),
    }
}
