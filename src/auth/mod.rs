//! JWT authentication on the upgrade: the pipeline stage between routing and the upstream.
//!
//! A route that names a provider (`auth = "NAME"`, the provider in `[auth.NAME]`) only reaches
//! its upstream with a valid token: taken from the provider's [`TokenSource`], verified by
//! [`Provider::verify`] (an accepted algorithm, a key of that algorithm's family, `exp`, `nbf`,
//! `iss`, `aud` and the required claims), then the chosen claims are forwarded as request
//! headers ([`claims`]). Otherwise the client gets 401 with `WWW-Authenticate: Bearer
//! error="invalid_request"` (no token) or `error="invalid_token"`, and the upstream is never
//! contacted. The signatures are `jsonwebtoken`'s work (its RustCrypto backend).
//!
//! ```
//! use wsrelay::auth::TokenSource;
//! assert_eq!(
//!     TokenSource::named("query", None),
//!     Some(TokenSource::Query("access_token".to_owned()))
//! );
//! ```

pub mod claims;
mod keys;
mod provider;
mod token;

pub use jsonwebtoken::{Algorithm, AlgorithmFamily};
pub use keys::{family_of, Key};
pub use provider::{BadToken, Checks, Claims, Provider};
pub use token::{
    without_parameter, NoToken, TokenSource, DEFAULT_SUBPROTOCOL_PREFIX, DEFAULT_TOKEN_NAME,
};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::refusal::Refusal;
use crate::request::ClientRequest;
use crate::route::Route;

/// The authentication stage: checks a routed request against its route's provider, if the
/// route names one (else passes it untouched).
///
/// The token is taken out of `request` where the upstream would see it in a place not meant
/// for credentials (query parameter, subprotocol offer), and out of `target`, the request
/// target the logs show, even when the token is then refused. On success the client's
/// headers named in `forward_claims` are replaced by the token's claims. On failure the
/// refusal is 401 [`Refusal::TokenMissing`] or [`Refusal::TokenInvalid`]; its reason goes to
/// the debug log.
///
/// Returns when the tunnel must be closed with 1008: the token's `exp` plus the leeway, where
/// the provider has `close_on_expiry` (else `None`).
pub fn admit(
    route: &Route,
    request: &mut ClientRequest,
    target: &mut String,
) -> Result<Option<Instant>, Refusal> {
    let Some(provider) = route.auth.as_deref() else {
        return Ok(None);
    };
    let token = match provider.source.take(request, target) {
        Ok(token) => token,
        Err(why) => {
            return Err(refused(
                provider,
                Refusal::TokenMissing {
                    provider: provider.name.clone(),
                    why,
                },
            ))
        }
    };
    let claims = match provider.verify(&token) {
        Ok(claims) => claims,
        Err(why) => {
            return Err(refused(
                provider,
                Refusal::TokenInvalid {
                    provider: provider.name.clone(),
                    why,
                },
            ))
        }
    };
    claims::forward(&mut request.head, &provider.forward_claims, &claims);
    tracing::debug!(
        provider = %provider.name,
        route = %route.name,
        sub = claims.get("sub").and_then(|s| s.as_str()).unwrap_or("-"),
        "token accepted"
    );
    Ok(provider
        .close_on_expiry
        .then(|| expiry(&claims, provider.leeway))
        .flatten())
}

/// The close reason of a tunnel whose token expired; its code is a policy violation (1008,
/// RFC 6455 §7.4.1).
pub const EXPIRED: &str = "token expired";

/// When a token with these claims stops being valid: its `exp` plus `leeway`, as an instant of
/// the runtime's clock. `None` without a numeric `exp`.
fn expiry(claims: &Claims, leeway: Duration) -> Option<Instant> {
    let exp = claims.get("exp")?.as_f64()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let exp = Duration::try_from_secs_f64(exp.max(0.0)).ok()?;
    Some(Instant::now() + exp.saturating_sub(now) + leeway)
}

/// Every authentication refusal passes here: the reason goes to the debug log (never the
/// token). This is the one place to count refusals by provider and reason when metrics exist.
fn refused(provider: &Provider, refusal: Refusal) -> Refusal {
    tracing::debug!(provider = %provider.name, reason = %refusal, "authentication failed");
    refusal
}
