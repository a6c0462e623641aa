//! The crate's one error type: what can stop the gateway from starting, or a connection from
//! reaching the relay.

use std::fmt;
use std::path::PathBuf;

/// Why the gateway could not be configured or started, or why a connection did not reach the
/// relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration has errors; each points at a line and column of the file, or names
    /// the flag it came from.
    #[error("{}", ConfigErrors(.0))]
    Config(Vec<ConfigError>),
    /// A file named in the configuration could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A TLS setting (certificate, key, CA) was refused by rustls.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding a listener or another socket operation failed; for a connection, the client
    /// left or its connection failed before the relay started.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The connection was refused before the relay: the client got the refusal's HTTP
    /// response (its status, or the upstream's own response when the upstream refused).
    #[error("refused with {status}: {0}", status = .0.status())]
    Refused(crate::refusal::Refusal),
    /// The connection carried plain HTTP requests (a route with `http = true`), each answered
    /// and logged; it has ended with nothing to relay.
    #[error("the connection carried plain HTTP requests and has ended")]
    HttpServed,
}

/// One error in a configuration, with where it is and a hint for fixing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given; `command line` when the configuration came from flags.
    pub file: String,
    /// 1-based line (0 when the error concerns the whole file, or comes from a flag).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// The offending source line, for display.
    pub source_line: String,
    /// The flag and its value (`--connect-timeout abc`) when the configuration came from
    /// flags: the same error as the same key in a file, placed on the command line instead.
    pub flag: Option<String>,
}

impl fmt::Display for ConfigError {
    /// `file:line:column: error: message`, the source line with a caret, then `hint: ...`;
    /// from flags, `--flag value: error: message`, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(flag) = &self.flag {
            writeln!(f, "{flag}: error: {}", self.message)?;
        } else if self.line == 0 {
            writeln!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            writeln!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.column, self.message
            )?;
            let gutter = self.line.to_string();
            writeln!(f, "{gutter} | {}", self.source_line)?;
            writeln!(
                f,
                "{} | {}^",
                " ".repeat(gutter.len()),
                " ".repeat(self.column.saturating_sub(1))
            )?;
        }
        write!(f, "  hint: {}", self.hint)
    }
}

/// Displays a list of errors, one block each.
struct ConfigErrors<'a>(&'a [ConfigError]);

impl fmt::Display for ConfigErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{e}")?;
        }
        write!(f, "{} error(s) in the configuration", self.0.len())
    }
}

/// A problem in a configuration that does not stop it from loading (an HMAC secret shorter
/// than 32 bytes): `wsrelay check` prints it, and the gateway logs it at start. Placed and
/// hinted like a [`ConfigError`], shown with `warning:` instead of `error:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning(pub ConfigError);

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        f.write_str(&text.replacen(": error: ", ": warning: ", 1))
    }
}
