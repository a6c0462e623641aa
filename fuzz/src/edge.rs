//! Edge targets: the canonical request target and the canonical `Host` (issue 12).
//!
//! `request_target` asserts, under both slash policies and with merging on and off (chosen by
//! the input's first byte):
//! - a canonical target is its own canonical form (idempotent), starts with `/`, has an ASCII
//!   path, is never longer than its input, and its path has no `.` or `..` segment (never climbs above
//!   the root: that is an error, not a clamp); with merging on, no empty segment but the last;
//! - for inputs made only of `a-z`, `/` and `.`, the path agrees with a stack-of-segments
//!   reference written the obvious way (`..` above the root is an error there too);
//! - the query (from the first `?`) comes through unchanged.
//!
//! `host` asserts: a canonical authority is its own canonical form, is lower case, has no
//! trailing dot, and for plain names (`a-z`, digits, `-`, `.`) agrees with the reference
//! "lower-case it, drop one trailing dot".

use wsrelay_handshake::{canonical_host, canonical_target, EscapedSlashes, PathPolicy};

/// The stack-of-segments reference for `.`/`..` over a path of `a-z`, `/` and `.`.
fn reference(path: &str, merge: bool) -> Option<String> {
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let mut stack: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *part {
            "." => {}
            ".." => {
                stack.pop()?;
            }
            "" if merge || last => {}
            other => stack.push(other),
        }
    }
    let dir = matches!(parts.last(), Some(&"") | Some(&".") | Some(&".."));
    let mut out = String::new();
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if dir || stack.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// The request-target target's body.
pub fn request_target(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let policy = PathPolicy {
        merge_slashes: flags & 1 == 0,
        escaped_slashes: if flags & 2 == 0 {
            EscapedSlashes::Reject
        } else {
            EscapedSlashes::Keep
        },
    };
    let result = canonical_target(target, policy);
    let (path, query) = match target.find('?') {
        Some(at) => (&target[..at], Some(&target[at..])),
        None => (target, None),
    };
    if path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'/' || b == b'.')
    {
        let expected = reference(path, policy.merge_slashes);
        let ours = result
            .as_ref()
            .ok()
            .map(|c| c[..c.find('?').unwrap_or(c.len())].to_owned());
        assert_eq!(ours, expected, "{target:?}");
    }
    let Ok(canonical) = result else {
        return;
    };
    assert_eq!(
        canonical_target(&canonical, policy).as_ref(),
        Ok(&canonical),
        "{target:?}"
    );
    assert!(canonical.starts_with('/'), "{canonical:?}");
    assert!(
        canonical.len() <= target.len().max(1),
        "{target:?} -> {canonical:?}"
    );
    let (c_path, c_query) = match canonical.find('?') {
        Some(at) => (&canonical[..at], Some(&canonical[at..])),
        None => (canonical.as_str(), None),
    };
    assert_eq!(c_query, query);
    // The path is ASCII (the query is the client's, as sent).
    assert!(c_path.is_ascii(), "{canonical:?}");
    let segments: Vec<&str> = c_path.split('/').skip(1).collect();
    assert!(
        !segments.iter().any(|s| *s == "." || *s == ".."),
        "{canonical:?}"
    );
    if policy.merge_slashes {
        let inner = &segments[..segments.len().saturating_sub(1)];
        assert!(!inner.iter().any(|s| s.is_empty()), "{canonical:?}");
    }
}

/// The host target's body.
pub fn host(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(authority) = canonical_host(value) else {
        return;
    };
    let again = canonical_host(&authority.to_string());
    assert_eq!(again.as_ref(), Ok(&authority), "{value:?}");
    assert_eq!(authority.host.to_ascii_lowercase(), authority.host);
    assert!(!authority.host.ends_with('.'), "{value:?}");
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let numeric = value.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if plain && !numeric {
        let expected = value
            .strip_suffix('.')
            .unwrap_or(value)
            .to_ascii_lowercase();
        assert_eq!(authority.host, expected);
        assert_eq!(authority.port, None);
    }
}
