//! The sticky cookie: the 101 sets a cookie naming the backend the client reached, and the
//! client's next connection goes there again while that backend is up.
//!
//! The cookie is `INDEX.TAG`, where TAG is an HMAC-SHA256 (truncated to 128 bits) over the
//! pool's and the backend's names under a key the operator configures or the process draws at
//! start. A client cannot name a backend of its choosing: without the key it cannot make a
//! tag, and an index whose tag does not match is ignored. The tags are computed once per pool,
//! so checking a cookie is one constant-time comparison, no hashing per connection.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Pool;
use crate::request::ClientRequest;

/// Bytes of the signing key.
pub const KEY_LEN: usize = 32;

/// A pool's sticky cookie: its name and signing key.
#[derive(Clone)]
pub struct Sticky {
    /// The cookie's name.
    pub cookie: String,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Sticky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Sticky")
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

/// The key of pools that configure none: drawn once per process from the OS.
static PROCESS_KEY: OnceLock<Result<[u8; KEY_LEN], String>> = OnceLock::new();

impl Sticky {
    /// A cookie named `cookie` signed with `key` (any length; at least 16 bytes is wise), or,
    /// without one, with this process's own random key (cookies then last as long as it).
    pub fn new(cookie: &str, key: Option<&[u8]>) -> Result<Sticky, String> {
        let key = match key {
            Some(given) => {
                // HMAC takes a key of any length; hash it to the fixed size kept here.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"wsrelay sticky key")
                    .map_err(|e| e.to_string())?;
                mac.update(given);
                mac.finalize().into_bytes().into()
            }
            None => PROCESS_KEY
                .get_or_init(|| {
                    let mut key = [0u8; KEY_LEN];
                    wsrelay_codec::random::fill(&mut key)
                        .map(|()| key)
                        .map_err(|e| e.to_string())
                })
                .clone()?,
        };
        Ok(Sticky {
            cookie: cookie.to_owned(),
            key,
        })
    }

    /// The cookie value of backend `index` named `backend` in pool `pool`.
    pub fn token(&self, pool: &str, index: usize, backend: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(pool.as_bytes());
        mac.update(&[0]);
        mac.update(backend.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = format!("{index}.");
        for byte in &tag[..16] {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

/// Compares two strings in time that depends on their lengths only.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Pool {
    /// The backend a valid sticky cookie of `value` names, if any.
    pub fn sticky_index(&self, value: &str) -> Option<usize> {
        let (index, _) = value.split_once('.')?;
        let index: usize = index.parse().ok()?;
        let token = self.tokens.get(index)?;
        same(token, value).then_some(index)
    }

    /// The backend the request's sticky cookie names, if the pool has one, the cookie is
    /// valid, and the backend is healthy (a cookie naming a down backend goes elsewhere).
    pub fn sticky_choice(&self, request: &ClientRequest) -> Option<usize> {
        let sticky = self.settings.sticky.as_ref()?;
        let value = super::balance::cookie(request, &sticky.cookie)?;
        let index = self.sticky_index(value)?;
        // Up, not ejected, under its cap: the clock is read only when something is ejected.
        self.view().admits(&self.hot[index]).then_some(index)
    }

    /// The `Set-Cookie` value naming backend `index`, when the pool is sticky.
    pub fn set_cookie(&self, index: usize, secure: bool) -> Option<String> {
        let sticky = self.settings.sticky.as_ref()?;
        let token = self.tokens.get(index)?;
        Some(format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Lax{}",
            sticky.cookie,
            if secure { "; Secure" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_the_key_and_the_backend() {
        let a = Sticky::new("sid", Some(b"a key of sixteen+")).unwrap();
        let b = Sticky::new("sid", Some(b"another key here!")).unwrap();
        assert_eq!(a.token("p", 0, "x:1"), a.token("p", 0, "x:1"));
        assert_ne!(a.token("p", 0, "x:1"), b.token("p", 0, "x:1"));
        assert_ne!(a.token("p", 0, "x:1"), a.token("p", 0, "x:2"));
        assert!(a.token("p", 3, "x:1").starts_with("3."));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("ab", "abc"));
    }
}
