//! What a case is: what the driver does, what the RFC says must come back, and how the two are
//! compared.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::harness::Env;

/// Case groups, numbered as in the Autobahn TestSuite where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// 1: text and binary framing, length encodings, chunked writes.
    Framing = 1,
    /// 2: pings and pongs.
    PingPong = 2,
    /// 3: reserved bits.
    ReservedBits = 3,
    /// 4: reserved opcodes.
    Opcodes = 4,
    /// 5: fragmentation.
    Fragmentation = 5,
    /// 6: UTF-8 handling.
    Utf8 = 6,
    /// 7: the closing handshake.
    Close = 7,
    /// 9: limits and throughput.
    Limits = 9,
    /// 10: miscellaneous.
    Misc = 10,
    /// 11: what only an intermediary can get wrong (no Autobahn group).
    Intermediary = 11,
    /// 12: crafted frames from the upstream towards a real client (the other direction).
    FromUpstream = 12,
}

impl Group {
    /// Every group, in report order.
    pub const ALL: [Group; 11] = [
        Group::Framing,
        Group::PingPong,
        Group::ReservedBits,
        Group::Opcodes,
        Group::Fragmentation,
        Group::Utf8,
        Group::Close,
        Group::Limits,
        Group::Misc,
        Group::Intermediary,
        Group::FromUpstream,
    ];

    /// The group's number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// A title for the report.
    pub fn title(self) -> &'static str {
        match self {
            Group::Framing => "Framing",
            Group::PingPong => "Pings and pongs",
            Group::ReservedBits => "Reserved bits",
            Group::Opcodes => "Reserved opcodes",
            Group::Fragmentation => "Fragmentation",
            Group::Utf8 => "UTF-8 handling",
            Group::Close => "Closing handshake",
            Group::Limits => "Limits and throughput",
            Group::Misc => "Miscellaneous",
            Group::Intermediary => "Intermediary",
            Group::FromUpstream => "Crafted frames from the upstream to a real client",
        }
    }
}

/// Which relay configuration a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// No size limits, UTF-8 validation on, 2 s close timeout.
    Default,
    /// Client frames up to [`crate::harness::LIMITED_FRAME`], upstream frames up to
    /// [`crate::harness::LIMITED_UPSTREAM_FRAME`], messages up to
    /// [`crate::harness::LIMITED_MESSAGE`], a 1 s close timeout.
    Limited,
}

/// One thing the driver does, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes in one go.
    Send(Vec<u8>),
    /// Write these bytes `chunk` bytes at a time, flushing and pausing `pause` after each.
    SendChunked {
        /// The bytes.
        bytes: Vec<u8>,
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        pause: Duration,
    },
    /// Do nothing for a while.
    Pause(Duration),
    /// Wait (up to the case deadline) until this message or pong has come back.
    Await(Msg),
    /// Shut down the write half of the TCP connection (half-open).
    ShutdownWrite,
}

/// What a message or control reply that came back looks like.
#[derive(Clone, PartialEq, Eq)]
pub enum Msg {
    /// A complete text message.
    Text(Vec<u8>),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A ping (sent by the far peer of the upstream direction).
    Ping(Vec<u8>),
}

impl Msg {
    /// A text message from a string.
    pub fn text(s: impl AsRef<[u8]>) -> Msg {
        Msg::Text(s.as_ref().to_vec())
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, payload) = match self {
            Msg::Text(p) => ("text", p),
            Msg::Binary(p) => ("binary", p),
            Msg::Pong(p) => ("pong", p),
            Msg::Ping(p) => ("ping", p),
        };
        write!(f, "{name} {}B", payload.len())
    }
}

/// The outcome the RFC requires.
#[derive(Debug, Clone)]
pub enum Expect {
    /// These messages come back in this order; the driver then closes with 1000 and gets 1000
    /// back, and the connection ends.
    Echo(Vec<Msg>),
    /// These messages come back (if any), then a close frame with one of `codes`
    /// (`None` = a close without a status code), then the connection ends.
    Close {
        /// Messages that must arrive before the close.
        before: Vec<Msg>,
        /// Acceptable close codes.
        codes: Vec<Option<u16>>,
    },
}

impl Expect {
    /// A close with `code` and nothing before it.
    pub fn fail(code: u16) -> Expect {
        Expect::Close {
            before: Vec::new(),
            codes: vec![Some(code)],
        }
    }

    /// A close with `code` after `before`.
    pub fn fail_after(before: Vec<Msg>, code: u16) -> Expect {
        Expect::Close {
            before,
            codes: vec![Some(code)],
        }
    }

    /// Messages that must come back.
    pub fn messages(&self) -> &[Msg] {
        match self {
            Expect::Echo(m) => m,
            Expect::Close { before, .. } => before,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msgs = self.messages();
        for m in msgs {
            write!(f, "{m:?}, ")?;
        }
        match self {
            Expect::Echo(m) if m.is_empty() => write!(f, "no reply; close 1000"),
            Expect::Echo(_) => write!(f, "close 1000"),
            Expect::Close { codes, .. } => {
                let codes: Vec<String> = codes
                    .iter()
                    .map(|c| c.map_or("(no code)".to_owned(), |c| c.to_string()))
                    .collect();
                write!(f, "close {}", codes.join("|"))
            }
        }
    }
}

/// The result of a case run by code rather than by a step list.
pub struct CustomResult {
    /// What was seen, for the report.
    pub observed: String,
    /// `Err` holds why the case failed.
    pub verdict: Result<(), String>,
}

/// A case whose driver is a function (both sides raw, races, timing).
pub type CustomFn = fn(Env) -> Pin<Box<dyn Future<Output = CustomResult> + Send>>;

/// How a case is driven.
#[derive(Clone)]
pub enum Script {
    /// The driver plays the client (direction 1): relay in front of an echo upstream.
    Client(Vec<Step>),
    /// The driver plays the upstream (direction 2): a real client that echoes sits in front.
    /// `client_close` is the close code the real client must report.
    Upstream {
        /// What the driver sends, as the upstream.
        steps: Vec<Step>,
        /// The close code the real client must see.
        client_close: u16,
    },
    /// Hand-written driver.
    Custom(CustomFn),
}

/// One conformance case.
#[derive(Clone)]
pub struct Case {
    /// Dotted id, e.g. `5.12`.
    pub id: String,
    /// Group.
    pub group: Group,
    /// One line saying what is tested.
    pub description: String,
    /// What the driver does.
    pub script: Script,
    /// The RFC-mandated outcome (ignored by custom cases, which judge themselves).
    pub expect: Expect,
    /// What the custom case expects, in words (custom cases only).
    pub expect_text: Option<&'static str>,
    /// Relay configuration.
    pub profile: Profile,
    /// When set, the case may pass with fewer of the `before` messages: the RFC sentence
    /// allowing an endpoint to fail at once.
    pub non_strict: Option<&'static str>,
    /// Longest the whole case may take.
    pub deadline: Duration,
    /// The driver does not answer a close (to test the relay's close timeout).
    pub no_close_reply: bool,
    /// When set, the close must arrive within this time of the last step.
    pub fail_within: Option<Duration>,
    /// The driver's steps start in the same write as the upgrade request (pipelining).
    pub pipelined: bool,
    /// Not run against the Python echo, with the reason: its answer there is its own choice
    /// (or its own deviation), which says nothing about the relay.
    pub python_echo_differs: Option<&'static str>,
    /// Against the Python echo only, the case may pass with fewer of the `before` messages,
    /// quoting why: that echo's own choice loses them, while against wsrelay's echo and the
    /// blind echo the case stays strict (so a relay that dropped them still fails there).
    pub python_echo_non_strict: Option<&'static str>,
}

impl Case {
    /// A direction-1 case with the default profile and a 10 s deadline.
    pub fn client(
        id: impl Into<String>,
        group: Group,
        description: impl Into<String>,
        steps: Vec<Step>,
        expect: Expect,
    ) -> Case {
        Case {
            id: id.into(),
            group,
            description: description.into(),
            script: Script::Client(steps),
            expect,
            expect_text: None,
            profile: Profile::Default,
            non_strict: None,
            deadline: Duration::from_secs(10),
            no_close_reply: false,
            fail_within: None,
            pipelined: false,
            python_echo_differs: None,
            python_echo_non_strict: None,
        }
    }

    /// A direction-2 case: the driver is the upstream, a real client echoes.
    pub fn upstream(
        id: impl Into<String>,
        description: impl Into<String>,
        steps: Vec<Step>,
        expect: Expect,
        client_close: u16,
    ) -> Case {
        Case {
            script: Script::Upstream {
                steps,
                client_close,
            },
            ..Case::client(id, Group::FromUpstream, description, Vec::new(), expect)
        }
    }

    /// A hand-driven case.
    pub fn custom(
        id: impl Into<String>,
        group: Group,
        description: impl Into<String>,
        expect_text: &'static str,
        run: CustomFn,
    ) -> Case {
        Case {
            script: Script::Custom(run),
            expect_text: Some(expect_text),
            ..Case::client(id, group, description, Vec::new(), Expect::Echo(Vec::new()))
        }
    }

    /// Runs against the limited profile.
    pub fn limited(mut self) -> Case {
        self.profile = Profile::Limited;
        self
    }

    /// Allows fewer echoed messages before the close, quoting the RFC.
    pub fn non_strict(mut self, rfc: &'static str) -> Case {
        self.non_strict = Some(rfc);
        self
    }

    /// Sets the deadline.
    pub fn deadline(mut self, deadline: Duration) -> Case {
        self.deadline = deadline;
        self
    }

    /// Skips the case against the Python echo, saying why.
    pub fn python_echo_differs(mut self, why: &'static str) -> Case {
        self.python_echo_differs = Some(why);
        self
    }

    /// Allows fewer echoed messages before the close against the Python echo only, saying why.
    pub fn python_echo_non_strict(mut self, why: &'static str) -> Case {
        self.python_echo_non_strict = Some(why);
        self
    }

    /// Requires the close within `within` of the last step.
    pub fn fail_within(mut self, within: Duration) -> Case {
        self.fail_within = Some(within);
        self
    }

    /// The expected outcome in words.
    pub fn expected_text(&self) -> String {
        if let Some(text) = self.expect_text {
            return text.to_owned();
        }
        let mut text = self.expect.to_string();
        if let Script::Upstream { client_close, .. } = &self.script {
            text.push_str(&format!("; client sees close {client_close}"));
        }
        if let Some(within) = self.fail_within {
            text.push_str(&format!(" within {} ms", within.as_millis()));
        }
        text
    }
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly the RFC-mandated outcome.
    Pass,
    /// An outcome the RFC also allows (quoted in the report).
    NonStrict,
    /// Anything else.
    Fail,
    /// Not run in this configuration (the note says why).
    Skipped,
}

impl Verdict {
    /// The report's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "OK",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Fail => "FAILED",
            Verdict::Skipped => "SKIPPED",
        }
    }
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// Group.
    pub group: Group,
    /// Description.
    pub description: String,
    /// Expected outcome in words.
    pub expected: String,
    /// Observed outcome in words.
    pub observed: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Why it failed, or the RFC sentence behind a non-strict pass.
    pub note: String,
    /// How long the case took.
    pub duration: Duration,
}
