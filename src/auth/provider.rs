//! A JWT provider (`[auth.NAME]`): its accepted algorithms, keys and claim checks, and the
//! verification of one token against them.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use serde_json::{Map, Value};

use super::keys::Key;
use super::token::TokenSource;

/// The claims of a verified token (its JSON payload).
pub type Claims = Map<String, Value>;

/// What a provider checks in a token, as the configuration gives it.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Accepted `iss` values; empty: any (and `iss` not required).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (one must be in the token's); empty: the token must carry none.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Claims that must be present (besides `exp`, always required, and `iss` / `aud` when
    /// issuers / audiences are set).
    pub required_claims: Vec<String>,
}

/// A JWT provider: routes name it with `auth = "NAME"`.
///
/// Its `Debug` shows no key material (see [`Key`]), so a configuration dump cannot leak an
/// HMAC secret.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The provider's name (`[auth.NAME]`), for logs.
    pub name: String,
    /// The algorithms a token may be signed with; `none` is never one of them.
    pub algorithms: Vec<Algorithm>,
    /// The keys signatures are verified with.
    pub keys: Vec<Key>,
    /// Where the token comes from.
    pub source: TokenSource,
    /// Claims sent to the upstream as request headers: (claim, header name).
    pub forward_claims: Vec<(String, String)>,
    /// Claims that must be present that `jsonwebtoken` does not check itself.
    pub required_claims: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Close the tunnel with 1008 when the token expires (its `exp` plus the leeway).
    pub close_on_expiry: bool,
    /// The claim checks, one set per accepted algorithm: `jsonwebtoken` wants every
    /// algorithm of one validation to share the key's family.
    validations: Vec<(Algorithm, Validation)>,
}

/// Why a token was refused (answered with `error="invalid_token"`); never contains the token.
pub type BadToken = String;

/// The registered claims `jsonwebtoken` checks for presence itself.
const SPEC_CLAIMS: [&str; 5] = ["exp", "nbf", "iss", "aud", "sub"];

impl Provider {
    /// A provider that accepts `algorithms`, verifies with `keys`, checks `checks`, and takes
    /// its token from `source`.
    pub fn new(
        name: &str,
        algorithms: Vec<Algorithm>,
        keys: Vec<Key>,
        checks: &Checks,
        source: TokenSource,
        forward_claims: Vec<(String, String)>,
    ) -> Provider {
        let mut required: HashSet<String> = HashSet::from(["exp".to_owned()]);
        if !checks.issuers.is_empty() {
            required.insert("iss".to_owned());
        }
        if !checks.audiences.is_empty() {
            required.insert("aud".to_owned());
        }
        let mut custom = Vec::new();
        for claim in &checks.required_claims {
            if SPEC_CLAIMS.contains(&claim.as_str()) {
                required.insert(claim.clone());
            } else {
                custom.push(claim.clone());
            }
        }
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.required_spec_claims = required.clone();
                v.leeway = checks.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                // Without configured audiences, a token naming one is refused: it was meant
                // for someone else.
                v.validate_aud = true;
                if !checks.audiences.is_empty() {
                    v.set_audience(&checks.audiences);
                }
                if !checks.issuers.is_empty() {
                    v.set_issuer(&checks.issuers);
                }
                (alg, v)
            })
            .collect();
        Provider {
            name: name.to_owned(),
            algorithms,
            keys,
            source,
            forward_claims,
            required_claims: custom,
            leeway: checks.leeway,
            close_on_expiry: false,
            validations,
        }
    }

    /// Verifies `token`: an accepted algorithm, a signature by one of the keys of that
    /// algorithm's family (and `kid`, when both name one), then the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, BadToken> {
        let header = decode_header(token).map_err(|e| match raw_alg(token) {
            Some(alg) if alg.eq_ignore_ascii_case("none") => {
                "unsigned token (alg \"none\")".to_owned()
            }
            Some(alg) if alg.parse::<Algorithm>().is_err() => {
                format!("unknown algorithm {alg:?}")
            }
            _ => describe(e.kind()),
        })?;
        let alg = header.alg;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == alg) else {
            return Err(format!("algorithm {alg:?} is not accepted here"));
        };
        let kid = header.kid.as_deref();
        let mut tried = false;
        for key in self.keys.iter().filter(|k| k.fits(alg, kid)) {
            tried = true;
            match decode::<Claims>(token, &key.key, validation) {
                Ok(data) => return self.check_required(data.claims),
                // Another key of the set may have signed it.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(describe(e.kind())),
            }
        }
        if tried {
            Err("bad signature".to_owned())
        } else {
            Err(format!("no key for algorithm {alg:?} and kid {kid:?}"))
        }
    }

    fn check_required(&self, claims: Claims) -> Result<Claims, BadToken> {
        for claim in &self.required_claims {
            if claims.get(claim).is_none_or(Value::is_null) {
                return Err(format!("required claim {claim:?} missing"));
            }
        }
        Ok(claims)
    }
}

/// The `alg` a token's header names, read without trusting it (for the refusal's reason).
fn raw_alg(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: Value = serde_json::from_slice(&json).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// A short reason for a refused token, for the debug log.
fn describe(kind: &ErrorKind) -> BadToken {
    match kind {
        ErrorKind::ExpiredSignature => "expired (exp)".to_owned(),
        ErrorKind::ImmatureSignature => "not yet valid (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("required claim {claim:?} missing"),
        ErrorKind::InvalidClaimFormat(claim) => format!("claim {claim:?} has the wrong type"),
        ErrorKind::InvalidAlgorithm => "algorithm does not fit the key".to_owned(),
        // Their messages may quote parts of the token: named, not shown.
        ErrorKind::Json(_) => "malformed JSON in the token".to_owned(),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "malformed token encoding".to_owned(),
        other => format!("invalid token: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a-unit-test-secret-of-32-bytes-or-more";

    fn provider(algorithms: Vec<Algorithm>, required: &[&str]) -> Provider {
        let checks = Checks {
            required_claims: required.iter().map(|c| c.to_string()).collect(),
            ..Checks::default()
        };
        let keys = vec![Key::secret(SECRET, "test")];
        Provider::new("p", algorithms, keys, &checks, TokenSource::Header, vec![])
    }

    fn token(alg: Algorithm, claims: Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn exp() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[test]
    fn each_listed_algorithm_verifies_and_custom_claims_are_required() {
        let p = provider(vec![Algorithm::HS256, Algorithm::HS512], &["tenant", "sub"]);
        let good = json!({"exp": exp(), "sub": "a", "tenant": "t"});
        assert!(p.verify(&token(Algorithm::HS256, good.clone())).is_ok());
        assert_eq!(
            p.verify(&token(Algorithm::HS512, good)).unwrap()["tenant"],
            "t"
        );
        let no_tenant = json!({"exp": exp(), "sub": "a", "tenant": null});
        let why = p.verify(&token(Algorithm::HS256, no_tenant)).unwrap_err();
        assert_eq!(why, "required claim \"tenant\" missing");
        let no_sub = json!({"exp": exp(), "tenant": "t"});
        let why = p.verify(&token(Algorithm::HS256, no_sub)).unwrap_err();
        assert_eq!(why, "required claim \"sub\" missing");
    }

    #[test]
    fn an_accepted_algorithm_without_a_key_of_its_family_is_refused() {
        let p = provider(vec![Algorithm::HS256, Algorithm::ES256], &[]);
        // An ES256 header over an HMAC signature: no EC key, so no verification is tried.
        let forged = token(Algorithm::HS256, json!({"exp": exp()}));
        let (_, rest) = forged.split_once('.').unwrap();
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"ES256","typ":"JWT"}"#,
        );
        let why = p.verify(&format!("{header}.{rest}")).unwrap_err();
        assert!(why.starts_with("no key for algorithm ES256"), "{why}");
    }
}
