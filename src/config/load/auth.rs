//! Loading `[auth.NAME]` (JWT providers) and a route's `auth = "NAME"`: algorithms, keys (an
//! HMAC secret from a file or the environment, PEM public keys, a JWKS file), claim checks,
//! the token's source and the claims forwarded upstream.
//!
//! A secret's bytes go into the provider's key and nowhere else: not into errors, warnings,
//! logs or the configuration's `Debug`.

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::Spanned;
use wsrelay_handshake::validate_header;

use super::{reserved_header, Loader};
use crate::auth::{family_of, Algorithm, AlgorithmFamily, Checks, Key, Provider, TokenSource};
use crate::config::defaults;
use crate::config::schema::AuthSection;

const ALGORITHMS: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

impl Loader<'_> {
    /// Every `[auth.NAME]` table; a provider with errors is left out (each error reported).
    pub(super) fn auth_providers(
        &mut self,
        sections: &BTreeMap<String, Spanned<AuthSection>>,
    ) -> BTreeMap<String, Arc<Provider>> {
        sections
            .iter()
            .filter_map(|(name, section)| {
                let provider = self.provider(name, section)?;
                Some((name.clone(), Arc::new(provider)))
            })
            .collect()
    }

    /// A route's `auth = "NAME"`: the provider, which must be defined.
    pub(super) fn route_auth(&mut self, name: Option<&Spanned<String>>) -> Option<Arc<Provider>> {
        let name = name?;
        if let Some(provider) = self.providers.get(name.get_ref()) {
            return Some(provider.clone());
        }
        let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        let hint = if known.is_empty() {
            "define it: [auth.NAME] with algorithms and a key (see the README's auth section); \
             a provider with errors counts as not defined"
                .to_owned()
        } else {
            format!("providers defined (without errors): {}", known.join(", "))
        };
        self.report.at(
            name,
            &format!("no auth provider {:?}", name.get_ref()),
            &hint,
        );
        None
    }

    fn provider(&mut self, name: &str, section: &Spanned<AuthSection>) -> Option<Provider> {
        let s = section.get_ref();
        let before = self.report.count();
        let algorithms = self.algorithms(&s.algorithms);
        let keys = self.keys(section);
        // Each accepted family needs a key, and each key an accepted algorithm: otherwise a
        // provider refuses every token, or holds a key it never uses.
        for family in [
            AlgorithmFamily::Hmac,
            AlgorithmFamily::Rsa,
            AlgorithmFamily::Ec,
            AlgorithmFamily::Ed,
        ] {
            let accepted = algorithms.iter().any(|&a| family_of(a) == family);
            let keyed = keys.iter().any(|k| k.family == family);
            if accepted && !keyed && self.report.count() == before {
                let hint = match family {
                    AlgorithmFamily::Hmac => "HS* algorithms verify with secret_file or secret_env",
                    _ => "give the public key: public_key_files = [\"key.pem\"] or jwks_file",
                };
                self.report.at(
                    &s.algorithms,
                    &format!("no key for the {family:?} algorithms listed"),
                    hint,
                );
            }
        }
        let leeway = self.duration(s.leeway.as_ref(), defaults::AUTH_LEEWAY, true);
        let checks = Checks {
            issuers: s.issuer.iter().map(|i| i.get_ref().clone()).collect(),
            audiences: s.audiences.iter().map(|a| a.get_ref().clone()).collect(),
            leeway,
            required_claims: s
                .required_claims
                .iter()
                .map(|c| c.get_ref().clone())
                .collect(),
        };
        let source = self.token_source(s);
        let mut forward = Vec::new();
        for (claim, header) in &s.forward_claims {
            let header_name = header.get_ref();
            let forwarding = ["X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"]
                .into_iter()
                .chain(["Forwarded", "X-Real-IP", "Authorization", "Cookie"])
                .any(|name| name.eq_ignore_ascii_case(header_name));
            if forwarding {
                self.report.at(
                    header,
                    &format!("{header_name} cannot carry a claim"),
                    "the forwarding headers are the gateway's, and the credentials the \
                     client's: choose a header of your own, e.g. \"X-User-Id\"",
                );
            } else if let Some(hint) = reserved_header(header_name) {
                self.report
                    .at(header, &format!("{header_name} cannot carry a claim"), hint);
            } else if validate_header(header_name, b"x").is_err() {
                self.report.at(
                    header,
                    &format!("invalid header name {header_name:?}"),
                    "a header name is an HTTP token, e.g. \"X-User-Id\"",
                );
            } else {
                forward.push((claim.clone(), header_name.clone()));
            }
        }
        if self.report.count() > before {
            return None;
        }
        let mut provider = Provider::new(name, algorithms, keys, &checks, source?, forward);
        provider.close_on_expiry = s.close_on_expiry;
        Some(provider)
    }

    /// `algorithms = [...]`: at least one, each known, never `none`.
    fn algorithms(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Vec<Algorithm> {
        if list.get_ref().is_empty() {
            self.report.at(
                list,
                "an auth provider accepts at least one algorithm",
                &format!("list those your issuer signs with, from: {ALGORITHMS}"),
            );
        }
        let mut out = Vec::new();
        for name in list.get_ref() {
            match name.get_ref().parse::<Algorithm>() {
                Ok(alg) if !out.contains(&alg) => out.push(alg),
                Ok(_) => {}
                Err(_) if name.get_ref().eq_ignore_ascii_case("none") => self.report.at(
                    name,
                    "algorithm \"none\" (unsigned tokens) is never accepted",
                    "anyone could forge an unsigned token; list a signing algorithm",
                ),
                Err(_) => self.report.at(
                    name,
                    &format!("unknown algorithm {:?}", name.get_ref()),
                    &format!("one of {ALGORITHMS} (case matters)"),
                ),
            }
        }
        out
    }

    /// The provider's keys: a secret (file or environment), PEM files, a JWKS file.
    fn keys(&mut self, section: &Spanned<AuthSection>) -> Vec<Key> {
        let s = section.get_ref();
        let mut keys = Vec::new();
        if let (Some(_), Some(env)) = (&s.secret_file, &s.secret_env) {
            self.report.at(
                env,
                "secret_file and secret_env together",
                "give the HMAC secret one way: keep one of them",
            );
        }
        let secret = if let Some(file) = &s.secret_file {
            let path = self.path(file);
            std::fs::read(&path)
                .ok()
                .map(|bytes| (file, bytes, format!("secret_file {}", path.display())))
        } else if let Some(env) = &s.secret_env {
            match std::env::var_os(env.get_ref()) {
                Some(value) => Some((
                    env,
                    value.into_encoded_bytes(),
                    format!("secret_env {}", env.get_ref()),
                )),
                None => {
                    self.report.at(
                        env,
                        &format!("environment variable {} is not set", env.get_ref()),
                        "set it in the gateway's environment, or use secret_file",
                    );
                    None
                }
            }
        } else {
            None
        };
        if let Some((at, mut bytes, origin)) = secret {
            // A file written by an editor or `echo` ends in a newline that is not the secret's.
            while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                bytes.pop();
            }
            if bytes.is_empty() {
                self.report
                    .at(at, "the HMAC secret is empty", "put the secret there");
            } else if bytes.len() < defaults::MIN_HMAC_SECRET {
                self.report.warn_at(
                    at,
                    &format!(
                        "the HMAC secret is {} bytes, shorter than {}",
                        bytes.len(),
                        defaults::MIN_HMAC_SECRET
                    ),
                    "a short secret can be brute-forced from one token (RFC 7518 §3.2): use \
                     32 random bytes or more, e.g. `openssl rand -base64 48`",
                );
            }
            keys.push(Key::secret(&bytes, &origin));
        }
        for file in &s.public_key_files {
            let path = self.path(file);
            let Ok(pem) = std::fs::read(&path) else {
                continue;
            };
            match Key::from_pem(&pem, &path.display().to_string()) {
                Ok(key) => keys.push(key),
                Err(e) => self.report.at(
                    file,
                    &format!("{}: {e}", path.display()),
                    "a PEM public key: -----BEGIN PUBLIC KEY----- (RSA, EC P-256/P-384, \
                     Ed25519) or -----BEGIN RSA PUBLIC KEY-----",
                ),
            }
        }
        if let Some(file) = &s.jwks_file {
            let path = self.path(file);
            if let Ok(json) = std::fs::read(&path) {
                match Key::from_jwks(&json, &path.display().to_string()) {
                    Ok(found) => keys.extend(found),
                    Err(e) => self.report.at(
                        file,
                        &format!("{}: {e}", path.display()),
                        "a JWK Set (RFC 7517 §5): {\"keys\": [{\"kty\": \"RSA\", \"kid\": ..., \
                         \"n\": ..., \"e\": ...}]}",
                    ),
                }
            }
        }
        if keys.is_empty() && s.secret_file.is_none() && s.secret_env.is_none() {
            let no_files = s.public_key_files.is_empty() && s.jwks_file.is_none();
            if no_files {
                self.report.at(
                    section,
                    "auth provider without a key",
                    "add secret_file or secret_env (HS*), public_key_files or jwks_file",
                );
            }
        }
        keys
    }

    /// `token_from` and `token_name`.
    fn token_source(&mut self, s: &AuthSection) -> Option<TokenSource> {
        let from = s
            .token_from
            .as_ref()
            .map_or("header", |f| f.get_ref().as_str());
        let name = s.token_name.as_ref().map(|n| n.get_ref().as_str());
        let Some(source) = TokenSource::named(from, name) else {
            if let Some(from) = &s.token_from {
                self.report.at(
                    from,
                    &format!("unknown token source {:?}", from.get_ref()),
                    "\"header\" (Authorization: Bearer, the default), \"query\", \"cookie\" or \
                     \"subprotocol\"",
                );
            }
            return None;
        };
        if let Some(name) = &s.token_name {
            let bad = match &source {
                TokenSource::Header => Some("token_name has no meaning with token_from = \"header\""),
                _ if name.get_ref().is_empty() => Some("token_name cannot be empty"),
                _ if !name.get_ref().bytes().all(is_token_char) => {
                    Some("token_name is a query parameter, cookie or subprotocol prefix: token characters only")
                }
                _ => None,
            };
            if let Some(message) = bad {
                self.report.at(
                    name,
                    message,
                    "e.g. \"access_token\" (query, cookie) or \"bearer.\" (subprotocol)",
                );
                return None;
            }
        }
        Some(source)
    }
}

/// An RFC 9110 token character (what a subprotocol name, a cookie name and a plain query
/// parameter name are made of).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
