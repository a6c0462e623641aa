//! Canonical request targets: the one form of a path that routing, rewriting, logs and the
//! upstream request all see, so that `/a/../admin`, `//admin`, `/%61dmin` and `/admin` cannot
//! be routed one way and served another (RFC 3986 §6.2.2 normalisation, §5.2.4 dot segments).

use std::fmt;

/// What to do with `%2F` (`/`) and `%5C` (`\`) in a path: decoded, they would change the
/// path's segments after routing; kept encoded, servers disagree on what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Refuse the request (400): the safe default, as most paths never need them.
    #[default]
    Reject,
    /// Keep them encoded (as `%2F`, `%5C`): they stay part of one segment when routing, and
    /// reach the upstream encoded.
    Keep,
}

/// How request paths are made canonical (per listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPolicy {
    /// Replace each run of `/` by one (`//admin` is `/admin`). On by default: upstreams that
    /// merge them would otherwise serve a path the routes never saw.
    pub merge_slashes: bool,
    /// What an encoded `/` or `\` does.
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathPolicy {
    fn default() -> PathPolicy {
        PathPolicy {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

/// Why a request target has no canonical form; each is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// Not origin-form (`/path?query`): absolute-form, authority-form and `*` are not routed.
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// An encoded `/` or `\` where the policy refuses them.
    EscapedSlash,
    /// A byte that has no place in a path: controls, space, non-ASCII, `\`, `#`.
    InvalidCharacter(u8),
    /// `..` segments climb above the root (`/../etc/passwd`).
    AboveRoot,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::NotOriginForm => f.write_str("request target is not a path (origin-form)"),
            TargetError::BadPercentEncoding => f.write_str("bad percent-encoding in the path"),
            TargetError::EscapedSlash => f.write_str("encoded slash (%2F or %5C) in the path"),
            TargetError::InvalidCharacter(b) => write!(f, "byte 0x{b:02x} not allowed in a path"),
            TargetError::AboveRoot => f.write_str("path climbs above the root with '..'"),
        }
    }
}

impl std::error::Error for TargetError {}

/// RFC 3986 §2.3 unreserved characters: decoding their escapes changes no meaning.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The canonical form of an origin-form request target: the path percent-decoded where that
/// changes nothing (unreserved characters; other escapes get upper-case hex), with `.` and
/// `..` segments resolved (a `..` above the root is an error, not clamped), runs of `/`
/// merged if the policy says so; the query (after `?`) is kept as sent.
///
/// The result is its own canonical form (the function is idempotent), never climbs above the
/// root, and is never longer than the input.
///
/// ```
/// use wsrelay_handshake::{canonical_target, PathPolicy, TargetError};
/// let policy = PathPolicy::default();
/// assert_eq!(canonical_target("/ws/./chat/../%61pi?x=/..", policy).unwrap(), "/ws/api?x=/..");
/// assert_eq!(canonical_target("//internal//x", policy).unwrap(), "/internal/x");
/// assert_eq!(canonical_target("/../etc/passwd", policy), Err(TargetError::AboveRoot));
/// assert_eq!(canonical_target("/a%2Fb", policy), Err(TargetError::EscapedSlash));
/// ```
pub fn canonical_target(target: &str, policy: PathPolicy) -> Result<String, TargetError> {
    if !target.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    let (path, query) = match target.find('?') {
        Some(at) => (&target[..at], Some(&target[at..])),
        None => (target, None),
    };
    let decoded = decode_path(path.as_bytes(), policy.escaped_slashes)?;
    let mut out = resolve_segments(&decoded, policy.merge_slashes)?;
    if let Some(query) = query {
        out.push_str(query);
    }
    Ok(out)
}

/// Percent-decodes unreserved characters, upper-cases the hex of the other escapes, checks
/// every byte. The result is ASCII.
fn decode_path(path: &[u8], escaped_slashes: EscapedSlashes) -> Result<Vec<u8>, TargetError> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let (hi, lo) = match (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => (hi, lo),
                _ => return Err(TargetError::BadPercentEncoding),
            };
            let decoded = hi << 4 | lo;
            if unreserved(decoded) {
                out.push(decoded);
            } else {
                if matches!(decoded, b'/' | b'\\') && escaped_slashes == EscapedSlashes::Reject {
                    return Err(TargetError::EscapedSlash);
                }
                out.extend_from_slice(&[
                    b'%',
                    HEX_UPPER[usize::from(hi)],
                    HEX_UPPER[usize::from(lo)],
                ]);
            }
            i += 3;
            continue;
        }
        // RFC 3986 pchar and '/', plus the characters browsers send unescaped in paths
        // ('"', '<', '>', '^', '`', '{', '|', '}'); not controls, space, non-ASCII, '\'
        // (which some servers read as '/') or '#' (a fragment is never sent).
        if b <= b' ' || b >= 0x7f || b == b'\\' || b == b'#' {
            return Err(TargetError::InvalidCharacter(b));
        }
        out.push(b);
        i += 1;
    }
    Ok(out)
}

/// Resolves `.` and `..` segments (RFC 3986 §5.2.4), refusing a `..` above the root, and
/// merges empty segments when asked. `path` starts with `/` and is ASCII.
fn resolve_segments(path: &[u8], merge_slashes: bool) -> Result<String, TargetError> {
    // Each segment follows a '/'; the first split item is the empty text before the leading '/'.
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut segments = path.split(|&b| b == b'/').skip(1).peekable();
    // Whether the path ends in a directory ('/', '/.' or '/..'): keep its trailing slash.
    let mut trailing_slash = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            b"." => trailing_slash = last,
            b".." => {
                if kept.pop().is_none() {
                    return Err(TargetError::AboveRoot);
                }
                trailing_slash = last;
            }
            b"" if merge_slashes || last => trailing_slash = last,
            _ => {
                kept.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        // ASCII checked by decode_path.
        out.extend(segment.iter().map(|&b| char::from(b)));
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(target: &str) -> Result<String, TargetError> {
        canonical_target(target, PathPolicy::default())
    }

    #[test]
    fn the_findings_of_the_attack_run_have_one_form() {
        assert_eq!(canon("/x/../internal/x").unwrap(), "/internal/x");
        assert_eq!(canon("//internal/x").unwrap(), "/internal/x");
        assert_eq!(canon("/./internal/x").unwrap(), "/internal/x");
        assert_eq!(canon("/%69nternal/x").unwrap(), "/internal/x");
        assert_eq!(canon("/ws/chat/../../admin").unwrap(), "/admin");
        assert_eq!(canon("/../../../etc/passwd"), Err(TargetError::AboveRoot));
        assert_eq!(canon("/%2e%2e/etc"), Err(TargetError::AboveRoot));
    }

    #[test]
    fn directories_keep_their_trailing_slash() {
        assert_eq!(canon("/").unwrap(), "/");
        assert_eq!(canon("/a/").unwrap(), "/a/");
        assert_eq!(canon("/a/.").unwrap(), "/a/");
        assert_eq!(canon("/a/b/..").unwrap(), "/a/");
        assert_eq!(canon("/a/..").unwrap(), "/");
        assert_eq!(canon("/a//").unwrap(), "/a/");
    }

    #[test]
    fn without_merging_empty_segments_stay() {
        let keep = PathPolicy {
            merge_slashes: false,
            ..PathPolicy::default()
        };
        assert_eq!(canonical_target("//a//b", keep).unwrap(), "//a//b");
        assert_eq!(canonical_target("/a//../b", keep).unwrap(), "/a/b");
    }

    #[test]
    fn escapes_are_decoded_only_where_that_changes_nothing() {
        assert_eq!(canon("/%7euser/%41%2d").unwrap(), "/~user/A-");
        assert_eq!(canon("/a%20b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(canon("/a%2fb"), Err(TargetError::EscapedSlash));
        assert_eq!(canon("/a%5Cb"), Err(TargetError::EscapedSlash));
        let keep = PathPolicy {
            escaped_slashes: EscapedSlashes::Keep,
            ..PathPolicy::default()
        };
        assert_eq!(canonical_target("/a%2fb/../c", keep).unwrap(), "/c");
        assert_eq!(canonical_target("/a%2fb", keep).unwrap(), "/a%2Fb");
        assert_eq!(canon("/a%2"), Err(TargetError::BadPercentEncoding));
        assert_eq!(canon("/a%zz"), Err(TargetError::BadPercentEncoding));
    }

    #[test]
    fn only_origin_form_and_path_bytes_pass() {
        assert_eq!(canon("http://h/x"), Err(TargetError::NotOriginForm));
        assert_eq!(canon("*"), Err(TargetError::NotOriginForm));
        assert_eq!(canon(""), Err(TargetError::NotOriginForm));
        assert_eq!(canon("/a\\b"), Err(TargetError::InvalidCharacter(b'\\')));
        assert_eq!(canon("/a b"), Err(TargetError::InvalidCharacter(b' ')));
        assert_eq!(canon("/a#b"), Err(TargetError::InvalidCharacter(b'#')));
        assert_eq!(canon("/é"), Err(TargetError::InvalidCharacter(0xc3)));
    }

    #[test]
    fn the_query_is_kept_as_sent() {
        assert_eq!(canon("/a/../b?x=/../%41&y").unwrap(), "/b?x=/../%41&y");
        assert_eq!(canon("/?").unwrap(), "/?");
    }

    /// A reference written the slow, obvious way: a stack of segments over a fully split path.
    fn reference(path: &str) -> Option<String> {
        let mut stack: Vec<&str> = Vec::new();
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        for part in &parts {
            match *part {
                "" | "." => {}
                ".." => {
                    stack.pop()?;
                }
                other => stack.push(other),
            }
        }
        let dir = matches!(parts.last(), Some(&"") | Some(&".") | Some(&".."));
        let mut out = format!("/{}", stack.join("/"));
        if dir && !stack.is_empty() {
            out.push('/');
        }
        Some(out)
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("/".to_owned()),
                Just(".".to_owned()),
                Just("..".to_owned()),
                Just("%2e".to_owned()),
                Just("%41".to_owned()),
                Just("%2F".to_owned()),
                Just("%20".to_owned()),
                "[a-z]{1,3}",
            ],
            0..16,
        )
        .prop_map(|parts| format!("/{}", parts.concat()))
    }

    proptest! {
        #[test]
        fn canonical_is_idempotent_and_never_above_the_root(path in path_strategy(), merge in any::<bool>(), keep in any::<bool>()) {
            let policy = PathPolicy {
                merge_slashes: merge,
                escaped_slashes: if keep { EscapedSlashes::Keep } else { EscapedSlashes::Reject },
            };
            if let Ok(once) = canonical_target(&path, policy) {
                prop_assert_eq!(canonical_target(&once, policy), Ok(once.clone()));
                prop_assert!(once.len() <= path.len() || path.len() < 2, "{} -> {}", path, once);
                prop_assert!(once.starts_with('/'));
                prop_assert!(!once.split('/').any(|s| s == ".." || s == "."));
            }
        }

        #[test]
        fn canonical_agrees_with_the_reference(path in "(/([a-z]{1,2}|\\.|\\.\\.)?){0,10}") {
            let path = if path.is_empty() { "/".to_owned() } else { path };
            let ours = canonical_target(&path, PathPolicy::default()).ok();
            prop_assert_eq!(ours, reference(&path), "{}", path);
        }
    }
}
