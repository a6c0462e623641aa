//! What both sides of the handshake share: header lines, the limits on a header block, the
//! outcome of an incremental parse, and the token-list syntax of RFC 9110 §5.6.1.

use crate::grammar::{is_value_byte, shown_name, validate_header};
use crate::HandshakeError;

/// Outcome of an incremental parse: wait for more bytes, or a value and the bytes it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The header block is not complete yet; call again with more bytes.
    Partial,
    /// The parsed value, and the length of the header block (through the blank line).
    /// Bytes after it (frames pipelined behind the head) stay in the caller's buffer:
    /// `buf[consumed..]` is where the next protocol begins.
    Complete {
        /// What was parsed.
        value: T,
        /// Bytes of the header block.
        consumed: usize,
    },
}

/// Bounds on a header block, so a slow or hostile peer cannot make it grow without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest header block in bytes, request or status line included (431 beyond).
    pub max_header_bytes: usize,
    /// Most header lines (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    /// 16 KiB and 100 headers: far above what browsers send, far below what hurts a server.
    fn default() -> Limits {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// One header line. The value is kept as raw bytes: HTTP allows obs-text (bytes >= 0x80) in
/// values, and a proxy must pass them on unchanged (RFC 9110 §5.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header name as sent (compare it case-insensitively).
    pub name: String,
    /// Raw header value, without surrounding whitespace.
    pub value: Vec<u8>,
}

impl Header {
    /// The value as text, if it is UTF-8 (what most code wants to compare against).
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// The header slots to hand httparse. Every header line takes at least three bytes (`a:\n`) and
/// a start line at least thirteen, so `len / 3 + 1` slots always suffice for `len` bytes; the
/// allocation thus follows the input rather than a (possibly huge) configured count.
pub(crate) fn header_slots(buf_len: usize, limits: &Limits) -> Vec<httparse::Header<'static>> {
    let bounded = buf_len.min(limits.max_header_bytes) / 3 + 1;
    vec![httparse::EMPTY_HEADER; limits.max_headers.min(bounded)]
}

/// The 431 error for a header block of `len` bytes, if that is over the limit.
pub(crate) fn check_size(len: usize, limits: &Limits) -> Result<(), HandshakeError> {
    if len > limits.max_header_bytes {
        return Err(HandshakeError::HeaderTooLarge {
            limit: limits.max_header_bytes,
            unit: "bytes",
        });
    }
    Ok(())
}

/// The 431 error for httparse running out of `slots` header slots: the count limit if the
/// slots were the configured count, otherwise the byte limit (see [`header_slots`]).
pub(crate) fn too_many_headers(slots: usize, limits: &Limits) -> HandshakeError {
    if slots >= limits.max_headers {
        HandshakeError::HeaderTooLarge {
            limit: limits.max_headers,
            unit: "headers",
        }
    } else {
        HandshakeError::HeaderTooLarge {
            limit: limits.max_header_bytes,
            unit: "bytes",
        }
    }
}

/// The name of the first header line whose value holds a control character, for the error
/// httparse reports without naming the header.
pub(crate) fn offending_header(buf: &[u8]) -> String {
    buf.split(|&b| b == b'\n')
        .skip(1) // the start line
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(colon);
            let bad = !value.iter().all(|&b| is_value_byte(b));
            bad.then(|| shown_name(name))
        })
        .unwrap_or_default()
}

/// Copies httparse headers into owned ones, checking names and values once more.
pub(crate) fn own_headers(headers: &[httparse::Header<'_>]) -> Result<Vec<Header>, HandshakeError> {
    headers
        .iter()
        .map(|h| {
            validate_header(h.name, h.value)?;
            Ok(Header {
                name: h.name.to_owned(),
                value: h.value.to_vec(),
            })
        })
        .collect()
}

/// The first header called `name` (case-insensitive, RFC 9110 §5.1).
pub(crate) fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

/// The raw values of every header called `name`, in order.
pub(crate) fn values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// The value of the header called `name` if it appears exactly once (`None` if absent or repeated).
pub(crate) fn single_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (Some(only), None) => Some(&only.value),
        _ => None,
    }
}

/// The list items of every header called `name`, in order: header lines may be repeated or
/// comma-joined interchangeably (RFC 9110 §5.3). Non-UTF-8 bytes become U+FFFD.
pub(crate) fn list_items(headers: &[Header], name: &str) -> Vec<String> {
    let mut items = Vec::new();
    for value in values(headers, name) {
        items.extend(split_list(&String::from_utf8_lossy(value)).map(str::to_owned));
    }
    items
}

/// True if any header called `name` lists `token` (case-insensitive, as for `Connection` and
/// `Upgrade`).
pub(crate) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    values(headers, name).any(|value| {
        split_list(&String::from_utf8_lossy(value)).any(|item| item.eq_ignore_ascii_case(token))
    })
}

/// Splits a header's comma-separated list (RFC 9110 §5.6.1) into its items, ignoring commas
/// inside quoted strings; items are trimmed of spaces and tabs and empty items are dropped.
/// This is how `Connection`, `Upgrade` and the `Sec-WebSocket-*` offers are read, and what a
/// caller needs to take apart [`UpstreamResponse::Accepted`](crate::UpstreamResponse)'s
/// `extensions` (whose parameters may hold quoted commas).
///
/// ```
/// let items: Vec<&str> = wsrelay_handshake::split_list("a, x; p=\"1,2\" ,, b").collect();
/// assert_eq!(items, ["a", "x; p=\"1,2\"", "b"]);
/// ```
pub fn split_list(value: &str) -> ListItems<'_> {
    ListItems { rest: Some(value) }
}

/// Iterator over the items of a header list, returned by [`split_list`].
#[derive(Debug, Clone)]
pub struct ListItems<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let rest = self.rest?;
            let (item, tail) = match unquoted_comma(rest).and_then(|i| rest.split_at_checked(i)) {
                Some((item, tail)) => (item, tail.get(1..)),
                None => (rest, None),
            };
            self.rest = tail;
            let item = item.trim_matches([' ', '\t']);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// True if every quoted string in a list item is closed (no dangling `"` or `\`), so that
/// items joined with `, ` split again into the same items.
pub(crate) fn quotes_closed(item: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for b in item.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted && !escaped
}

/// Byte index of the first comma outside a quoted string (with its backslash escapes).
fn unquoted_comma(value: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, b) in value.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &[u8]) -> Header {
        Header {
            name: name.into(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn lists_split_on_commas_outside_quotes() {
        let items: Vec<&str> = split_list(" a, b ,,\tc; x=\"1,2\\\",3\" , ").collect();
        assert_eq!(items, ["a", "b", "c; x=\"1,2\\\",3\""]);
        assert_eq!(split_list("").count(), 0);
        assert_eq!(split_list(" , ,").count(), 0);
        // An unterminated quote swallows the rest rather than failing.
        assert_eq!(split_list("a, \"b, c").collect::<Vec<_>>(), ["a", "\"b, c"]);
    }

    #[test]
    fn tokens_match_case_insensitively_across_repeated_headers() {
        let headers = [
            header("CONNECTION", b"keep-alive"),
            header("connection", b"UPGRADE"),
        ];
        assert!(has_token(&headers, "Connection", "upgrade"));
        assert!(has_token(&headers, "Connection", "Keep-Alive"));
        assert!(!has_token(&headers, "Connection", "close"));
        assert!(!has_token(&headers, "Upgrade", "websocket"));
        let list = [header("Connection", b"keep-alive, Upgrade")];
        assert!(has_token(&list, "connection", "upgrade"));
        // A token is the whole item, not a substring of one.
        let near = [header("Connection", b"upgrade-insecure, noupgrade")];
        assert!(!has_token(&near, "Connection", "upgrade"));
    }

    #[test]
    fn list_items_collect_every_header_line() {
        let headers = [
            header("Sec-WebSocket-Protocol", b"a, b"),
            header("X", b"ignored"),
            header("sec-websocket-protocol", b"c"),
        ];
        assert_eq!(
            list_items(&headers, "Sec-WebSocket-Protocol"),
            ["a", "b", "c"]
        );
        assert_eq!(
            find(&headers, "x").map(|h| h.value.as_slice()),
            Some(&b"ignored"[..])
        );
    }

    #[test]
    fn slots_follow_the_input_not_the_configured_count() {
        let huge = Limits {
            max_header_bytes: usize::MAX,
            max_headers: usize::MAX,
        };
        assert_eq!(header_slots(30, &huge).len(), 11);
        assert_eq!(header_slots(1 << 20, &Limits::default()).len(), 100);
        assert_eq!(
            too_many_headers(100, &Limits::default()),
            HandshakeError::HeaderTooLarge {
                limit: 100,
                unit: "headers"
            }
        );
    }

    #[test]
    fn offending_header_names_the_bad_line() {
        assert_eq!(
            offending_header(b"GET / HTTP/1.1\r\nA: ok\r\nX-Bad: a\0b\r\n\r\n"),
            "X-Bad"
        );
        assert_eq!(offending_header(b"GET / HTTP/1.1\r\nA: x\ry\r\n"), "A");
        assert_eq!(offending_header(b"garbage"), "");
    }

    #[test]
    fn value_str_is_utf8_only() {
        assert_eq!(header("A", b"text").value_str(), Some("text"));
        assert_eq!(header("A", b"\xff").value_str(), None);
    }
}
