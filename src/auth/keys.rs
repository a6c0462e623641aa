//! Verification keys of a provider: an HMAC secret, public keys from PEM files, or the keys of
//! a JWKS file, each tagged with the family of algorithms it may verify.
//!
//! The family is what stops algorithm confusion: a token is only ever checked against keys of
//! its own algorithm's family, so an `HS256` token "signed" with the bytes of an RSA public key
//! never meets that key as an HMAC secret (and `jsonwebtoken` refuses such a use of a key
//! itself: an RSA [`DecodingKey`] has no HMAC secret to give).

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// One key a provider verifies signatures with. Its bytes are never shown: `Debug` names where
/// it came from, its family and `kid`, nothing else (a secret must not reach logs or dumps).
#[derive(Clone)]
pub struct Key {
    /// The JWKS `kid`, matched against the token header's `kid`; `None` for PEM files and
    /// secrets, which are tried for any `kid`.
    pub kid: Option<String>,
    /// The algorithms this key may verify.
    pub family: AlgorithmFamily,
    /// Where a JWKS key names its algorithm (`alg`), only that one.
    pub only: Option<Algorithm>,
    /// Where it came from, for logs: a file name, `secret_env NAME`, `JWKS kid=...`.
    pub origin: String,
    pub(super) key: DecodingKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("only", &self.only)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// An HMAC secret (HS256/384/512), from a file or an environment variable.
    pub fn secret(bytes: &[u8], origin: &str) -> Key {
        Key {
            kid: None,
            family: AlgorithmFamily::Hmac,
            only: None,
            origin: origin.to_owned(),
            key: DecodingKey::from_secret(bytes),
        }
    }

    /// A public key in PEM (`PUBLIC KEY` for RSA, EC P-256/P-384 and Ed25519, or
    /// `RSA PUBLIC KEY`). A private key is refused: the gateway only verifies.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Key, String> {
        let text = String::from_utf8_lossy(pem);
        let tag = text
            .split("-----BEGIN ")
            .nth(1)
            .and_then(|rest| rest.split("-----").next())
            .ok_or("no PEM block (-----BEGIN ...-----) in the file")?;
        if tag.contains("PRIVATE") {
            return Err(format!(
                "a {tag}: give the public key (openssl pkey -in KEY -pubout)"
            ));
        }
        let tries: [(PemParser, _); 3] = [
            (DecodingKey::from_rsa_pem, AlgorithmFamily::Rsa),
            (DecodingKey::from_ec_pem, AlgorithmFamily::Ec),
            (DecodingKey::from_ed_pem, AlgorithmFamily::Ed),
        ];
        for (parse, family) in tries {
            if let Ok(key) = parse(pem) {
                return Ok(Key {
                    kid: None,
                    family,
                    only: None,
                    origin: origin.to_owned(),
                    key,
                });
            }
        }
        Err(format!(
            "{tag} is not an RSA, EC (P-256, P-384) or Ed25519 public key"
        ))
    }

    /// Every signature key of a JWKS document (`{"keys": [...]}`); keys marked for encryption
    /// (`"use": "enc"`) are left out. An empty result is an error.
    pub fn from_jwks(json: &[u8], origin: &str) -> Result<Vec<Key>, String> {
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let kid = jwk.common.key_id.clone();
            let name = kid
                .as_deref()
                .map_or_else(|| format!("#{i}"), str::to_owned);
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 | EllipticCurve::P384 => AlgorithmFamily::Ec,
                    _ => return Err(format!("key {name}: an EC curve other than P-256, P-384")),
                },
                AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                    EllipticCurve::Ed25519 => AlgorithmFamily::Ed,
                    _ => return Err(format!("key {name}: an OKP curve other than Ed25519")),
                },
                AlgorithmParameters::OctetKey(_) => AlgorithmFamily::Hmac,
            };
            let only = match jwk.common.key_algorithm {
                None => None,
                Some(alg) => match alg.to_string().parse::<Algorithm>() {
                    Ok(alg) if family_of(alg) == family => Some(alg),
                    _ => return Err(format!("key {name}: \"alg\": {alg} does not fit the key")),
                },
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {name}: {e}"))?;
            keys.push(Key {
                kid,
                family,
                only,
                origin: format!("{origin} kid={name}"),
                key,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS has no signature key".to_owned());
        }
        Ok(keys)
    }

    /// True if this key may verify a token signed with `alg` and naming `kid` in its header.
    pub fn fits(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        let kid_ok = match (kid, &self.kid) {
            (Some(wanted), Some(mine)) => wanted == mine,
            _ => true,
        };
        family_of(alg) == self.family && self.only.is_none_or(|only| only == alg) && kid_ok
    }
}

/// One of `jsonwebtoken`'s PEM public key parsers.
type PemParser = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;

/// The family of keys an algorithm uses.
pub fn family_of(alg: Algorithm) -> AlgorithmFamily {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => AlgorithmFamily::Rsa,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_shown_by_debug() {
        let key = Key::secret(b"an-hmac-secret-of-at-least-32-bytes!", "secret_env S");
        let shown = format!("{key:?}");
        assert!(!shown.contains("hmac-secret"), "{shown}");
        assert!(shown.contains("secret_env S"), "{shown}");
    }

    #[test]
    fn keys_fit_their_family_and_kid_only() {
        let mut key = Key::secret(b"s", "x");
        assert!(key.fits(Algorithm::HS384, None));
        assert!(!key.fits(Algorithm::RS256, None));
        key.kid = Some("a".into());
        assert!(key.fits(Algorithm::HS256, Some("a")));
        assert!(!key.fits(Algorithm::HS256, Some("b")));
        key.only = Some(Algorithm::HS512);
        assert!(!key.fits(Algorithm::HS256, Some("a")));
    }

    #[test]
    fn private_keys_and_junk_are_refused() {
        let private = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(Key::from_pem(private, "k").unwrap_err().contains("-pubout"));
        assert!(Key::from_pem(b"hello", "k").is_err());
        assert!(Key::from_jwks(b"{\"keys\": []}", "j").is_err());
    }
}
