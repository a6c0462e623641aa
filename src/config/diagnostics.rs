//! Turning problems in a configuration document into [`ConfigError`]s: the recovery parse that
//! reports every unknown key, the hints ("did you mean"), and positions (line, column, the
//! source line for the caret), or the flag that wrote the line when the document came from
//! the command line.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::error::{ConfigError, ConfigWarning};

/// Where a document came from, which decides how an error says where it is.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// A file, named as the user gave it: errors carry a line, a column and a caret.
    File(String),
    /// The command line written as a document: for each line (0-based), the flag and value
    /// that wrote it; errors name the flag.
    Flags(Vec<Option<String>>),
}

/// What errors are called when they come from flags rather than from a file.
pub(super) const COMMAND_LINE: &str = "command line";

/// Collects the errors found in one document, each placed by its byte span.
pub(super) struct Reporter<'a> {
    source: &'a str,
    origin: &'a Origin,
    /// Each error with the byte offset it is sorted by (0 for the whole document).
    errors: Vec<(usize, ConfigError)>,
    /// Problems that do not stop the document from loading, in the order found.
    warnings: Vec<ConfigWarning>,
}

impl<'a> Reporter<'a> {
    /// A reporter for `source`, whose positions `origin` explains.
    pub(super) fn new(source: &'a str, origin: &'a Origin) -> Reporter<'a> {
        Reporter {
            source,
            origin,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records an error at `span` (`None`: about the whole document).
    pub(super) fn error(&mut self, span: Option<Range<usize>>, message: &str, hint: &str) {
        // Line, column and source line; the whole document has none (0, 0, "").
        let place = span.as_ref().map(|s| position(self.source, s.start));
        let offset = span.map_or(0, |s| s.start);
        let (file, flag, (line, column, source_line)) = match self.origin {
            Origin::File(name) => (name.clone(), None, place.unwrap_or_default()),
            // The document's lines are not the user's: the flag that wrote the line is named.
            Origin::Flags(flags) => {
                let flag = place.and_then(|(line, ..)| flags.get(line - 1).cloned().flatten());
                (COMMAND_LINE.to_owned(), flag, Default::default())
            }
        };
        let error = ConfigError {
            file,
            line,
            column,
            message: message.to_owned(),
            hint: hint.to_owned(),
            source_line,
            flag,
        };
        self.errors.push((offset, error));
    }

    /// Records an error at a value of the document.
    pub(super) fn at<T>(&mut self, value: &Spanned<T>, message: &str, hint: &str) {
        self.error(Some(value.span()), message, hint);
    }

    /// Records a warning at a value: placed like an error, but the document still loads.
    pub(super) fn warn_at<T>(&mut self, value: &Spanned<T>, message: &str, hint: &str) {
        self.at(value, message, hint);
        if let Some((_, warning)) = self.errors.pop() {
            self.warnings.push(ConfigWarning(warning));
        }
    }

    /// The warnings so far, taken out.
    pub(super) fn take_warnings(&mut self) -> Vec<ConfigWarning> {
        std::mem::take(&mut self.warnings)
    }

    /// How many errors so far; a step that adds none has succeeded.
    pub(super) fn count(&self) -> usize {
        self.errors.len()
    }

    /// The errors in the order of the document.
    pub(super) fn finish(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|(offset, _)| *offset);
        self.errors.into_iter().map(|(_, e)| e).collect()
    }
}

/// Parses `source` as a `T`, reporting every unknown key, not only the first.
///
/// serde stops at the first error. An unknown key is recovered from: its line is blanked
/// (offsets kept, so later positions stay right) and the text parsed again. Any other error
/// (TOML syntax, a value of the wrong type) ends the parse; then `None`.
pub(super) fn parse_document<T: DeserializeOwned>(report: &mut Reporter<'_>) -> Option<T> {
    let mut text = report.source.to_owned();
    for attempt in 0..MAX_PARSE_ERRORS {
        match toml::from_str::<T>(&text) {
            Ok(parsed) => return Some(parsed),
            Err(e) => {
                // After a blanking, only errors in text that is still valid TOML are genuine.
                let genuine = attempt == 0 || text.parse::<toml::Table>().is_ok();
                if genuine {
                    report.error(e.span(), e.message().trim_end(), &toml_hint(e.message()));
                }
                let recovered = match e.span() {
                    Some(span) if genuine && e.message().contains("unknown field") => {
                        blank_line(&mut text, span.start)
                    }
                    _ => false,
                };
                if !recovered {
                    return None;
                }
            }
        }
    }
    None
}

/// Most errors reported from one document's TOML parsing (the loop that recovers from unknown
/// keys).
const MAX_PARSE_ERRORS: usize = 32;

/// Replaces the line holding byte `at` with spaces, keeping every byte offset in place;
/// false if there was nothing to blank (so the same error would come back).
fn blank_line(text: &mut String, at: usize) -> bool {
    let Some(before) = text.get(..at) else {
        return false;
    };
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    if text[start..end].trim().is_empty() {
        return false;
    }
    let spaces = " ".repeat(text[start..end].len());
    text.replace_range(start..end, &spaces);
    true
}

/// A hint for an error from the TOML parser or from serde (types, unknown or missing keys).
fn toml_hint(message: &str) -> String {
    if message.contains("unknown field") {
        return unknown_key_hint(message);
    }
    if message.contains("missing field") {
        return "add the key; every key is listed in the README's configuration reference"
            .to_owned();
    }
    if message.contains("invalid type") {
        return "check the value's type: durations, addresses, paths and URIs are quoted \
                strings (\"10s\"), sizes are integers (65536), switches are true or false"
            .to_owned();
    }
    "this is not valid TOML here; see https://toml.io for the syntax".to_owned()
}

/// "did you mean ...?" for a misspelt key, from serde's "unknown field `x`, expected one of
/// `a`, `b`" message.
fn unknown_key_hint(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let Some((unknown, expected)) = quoted.split_first() else {
        return "remove the key or check its spelling".to_owned();
    };
    let closest = expected
        .iter()
        .map(|k| {
            // A shortened key ("ca" for "ca_file") is as good as a near miss.
            let shortened = k.starts_with(unknown) || unknown.starts_with(k);
            let distance = if shortened {
                0
            } else {
                edit_distance(unknown, k)
            };
            (distance, *k)
        })
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3));
    match closest {
        Some((_, key)) => format!("did you mean `{key}`?"),
        None => format!(
            "remove `{unknown}`; keys allowed here: {}",
            expected.join(", ")
        ),
    }
}

/// Levenshtein distance, for key suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// 1-based line and column (in characters) of a byte offset, and that line's text.
fn position(source: &str, offset: usize) -> (usize, usize, String) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let text = source[line_start..].lines().next().unwrap_or("").to_owned();
    (line, column, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_keeps_offsets_and_refuses_empty_or_split_lines() {
        let mut text = "a = 1\nb = 2".to_owned();
        assert!(blank_line(&mut text, 7));
        assert_eq!(text, "a = 1\n     ");
        assert!(!blank_line(&mut text, 7));
        assert!(!blank_line(&mut "é".to_owned(), 1));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncé x", 7), (2, 4, "cé x".to_owned()));
        assert_eq!(edit_distance("idle_timout", "idle_timeout"), 1);
    }

    #[test]
    fn unknown_keys_get_the_closest_key_or_the_list() {
        let hint = |m| unknown_key_hint(m);
        assert_eq!(
            hint("unknown field `ca`, expected one of `ca_file`, `client_key_file`"),
            "did you mean `ca_file`?"
        );
        assert_eq!(
            hint("unknown field `zzz`, expected `workers` or `log`"),
            "remove `zzz`; keys allowed here: workers, log"
        );
    }
}
