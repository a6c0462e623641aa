//! JWT authentication on the upgrade, end to end through the `wsrelay` binary: a token from
//! each of the four sources reaching a recording upstream (claims forwarded, spoofed headers
//! removed, the query token out of the upstream's target and out of the log), every kind of
//! bad token refused with 401 and the right `WWW-Authenticate` before any upstream is
//! contacted, algorithm confusion, and `wsrelay check` on providers.
//!
//! Keys are made at test time: HMAC secrets as files, EC and Ed25519 keys with rcgen, RSA keys
//! with the `openssl` command (those cases print SKIPPED where it is missing).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::*;
use tokio::sync::mpsc::Receiver;
use wsrelay::codec::OpCode;
use wsrelay::handshake::RequestHead;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "wsrelay-test";
const SECRET: &str = "a-test-secret-of-more-than-thirty-two-bytes";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass every check, with `extra` merged over them (`null` removes a claim).
fn claims(extra: Value) -> Value {
    let mut base = json!({
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 600,
        "role": "reader",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// Claims for a provider without audiences: a token naming one is refused there.
fn plain() -> Value {
    claims(json!({"aud": null}))
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).expect("sign")
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
        None,
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A key pair made by rcgen: the private key (PKCS#8 PEM) to sign with, the public key PEM.
struct Pair {
    private_pem: String,
    public_pem: String,
    public_raw: Vec<u8>,
}

fn rcgen_pair(alg: &'static rcgen::SignatureAlgorithm) -> Pair {
    let pair = rcgen::KeyPair::generate_for(alg).expect("key pair");
    Pair {
        private_pem: pair.serialize_pem(),
        public_pem: pair.public_key_pem(),
        public_raw: pair.public_key_raw().to_vec(),
    }
}

/// An RSA key pair from the `openssl` command: (PKCS#1 private PEM, public PEM), or `None`
/// (SKIPPED printed) where openssl is not installed.
fn openssl_rsa(dir: &Path) -> Option<(String, String)> {
    let private = dir.join("rsa.key");
    let made = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&private)
        .arg("2048")
        .output();
    match made {
        Ok(out) if out.status.success() => {}
        other => {
            println!("SKIPPED: RSA cases need the openssl command ({other:?})");
            return None;
        }
    }
    let public = dir.join("rsa.pub.pem");
    let out = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl rsa -pubout");
    assert!(out.status.success(), "{out:?}");
    Some((
        std::fs::read_to_string(private).unwrap(),
        std::fs::read_to_string(public).unwrap(),
    ))
}

/// A directory of its own for one test's key files.
fn key_dir() -> PathBuf {
    write_temp("keep", "").parent().unwrap().to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The binary with `toml`, logging at debug (so the refusal reasons can be read).
fn binary(toml: &str) -> Binary {
    let path = write_temp("wsrelay.toml", toml);
    let path = path.to_str().unwrap().to_owned();
    Binary::spawn(
        env!("CARGO_BIN_EXE_wsrelay"),
        &["--config", &path, "--log", "debug"],
        1,
    )
}

/// The next request the upstream received, within a few seconds.
async fn received(rx: &mut Receiver<(RequestHead, RawPeer)>) -> RequestHead {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the upstream got a request in time")
        .expect("upstream running")
        .0
}

/// Every header of `name` the upstream got.
fn all_of(head: &RequestHead, name: &str) -> Vec<String> {
    head.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        .collect()
}

/// Waits for the log to hold a line with `needle` (lines are read on another thread).
async fn log_has(bin: &Binary, needle: &str) -> bool {
    let within = Duration::from_millis(2500);
    bin.wait_for_log(needle, within).await.is_some()
}

#[tokio::test]
async fn a_valid_token_from_each_source_reaches_the_upstream_with_its_claims() {
    let dir = key_dir();
    let secret = write(&dir, "hs.secret", &format!("{SECRET}\n"));
    let ed = rcgen_pair(&rcgen::PKCS_ED25519);
    let ed_pub = write(&dir, "ed.pub.pem", &ed.public_pem);
    let p256 = rcgen_pair(&rcgen::PKCS_ECDSA_P256_SHA256);
    // The JWKS holds the P-256 key under kid "k1", and an Ed25519 key under "k2".
    let raw = &p256.public_raw;
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
         "x": b64(&raw[1..33]), "y": b64(&raw[33..65])},
        {"kty": "OKP", "crv": "Ed25519", "kid": "k2", "x": b64(&ed.public_raw)},
    ]});
    let jwks = write(&dir, "jwks.json", &jwks.to_string());
    let p384 = rcgen_pair(&rcgen::PKCS_ECDSA_P384_SHA384);
    let p384_pub = write(&dir, "p384.pub.pem", &p384.public_pem);
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let bin = binary(&format!(
        r#"[[listeners]]
address = "127.0.0.1:0"

[auth.header]
algorithms = ["HS256"]
secret_file = "{secret}"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
forward_claims = {{ sub = "X-User-Id", role = "X-Role" }}

[auth.query]
algorithms = ["EdDSA"]
public_key_files = ["{ed_pub}"]
token_from = "query"

[auth.cookie]
algorithms = ["ES256", "EdDSA"]
jwks_file = "{jwks}"
token_from = "cookie"
token_name = "session"
forward_claims = {{ sub = "X-User-Id" }}

[auth.subprotocol]
algorithms = ["ES384"]
public_key_files = ["{p384_pub}"]
token_from = "subprotocol"

[[routes]]
path_prefix = "/header"
upstream = "ws://{up}"
auth = "header"

[[routes]]
path_prefix = "/query"
upstream = "ws://{up}"
auth = "query"

[[routes]]
path_prefix = "/cookie"
upstream = "ws://{up}"
auth = "cookie"

[[routes]]
path_prefix = "/subprotocol"
upstream = "ws://{up}"
auth = "subprotocol"
"#
    ));
    let addr = bin.addr();

    // Authorization: Bearer, with spoofed claim headers the relay must replace.
    let token = hs256(&claims(json!({})));
    let extra = format!(
        "Authorization: Bearer {token}\r\nX-User-Id: admin\r\nx-role: root\r\nConnection: Upgrade, X-User-Id\r\n"
    );
    let (head, _c1) = http_head(addr, &upgrade_request("/header", "x", &extra)).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let seen = received(&mut rx).await;
    assert_eq!(all_of(&seen, "X-User-Id"), ["alice"]);
    assert_eq!(all_of(&seen, "X-Role"), ["reader"]);
    // A token without the claim: the spoofed header is still removed, nothing replaces it.
    let token = hs256(&claims(json!({"role": null})));
    let extra = format!("Authorization: Bearer {token}\r\nX-Role: root\r\n");
    let (head, _c2) = http_head(addr, &upgrade_request("/header", "x", &extra)).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(all_of(&received(&mut rx).await, "X-Role").is_empty());

    // A query parameter: out of the upstream's target and out of every log line.
    let ed_key = EncodingKey::from_ed_pem(ed.private_pem.as_bytes()).unwrap();
    let token = sign(Algorithm::EdDSA, &ed_key, &plain(), None);
    let target = format!("/query/room?since=5&access_token={token}&x=1");
    let (head, mut client) = http_head(addr, &upgrade_request(&target, "x", "")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (seen, mut upstream) = rx.recv().await.unwrap();
    assert_eq!(seen.target, "/query/room?since=5&x=1");
    // End the tunnel so its access log line is written.
    use tokio::io::AsyncWriteExt;
    client.shutdown().await.unwrap();
    drop(client);
    upstream.expect_close().await;
    drop(upstream);
    assert!(log_has(&bin, "connection finished").await);
    // The token's parameter is gone; the others keep their names (values are left out of the
    // access log by default, `log_query_values`).
    assert!(log_has(&bin, "since=&x=").await, "{:?}", bin.log_lines(""));
    assert!(bin.log_lines(&token).is_empty(), "the token was logged");

    // A cookie; the JWKS key is chosen by kid.
    let ec_key = EncodingKey::from_ec_pem(p256.private_pem.as_bytes()).unwrap();
    let token = sign(Algorithm::ES256, &ec_key, &plain(), Some("k1"));
    let extra = format!("Cookie: theme=dark; session={token}\r\n");
    let (head, _c3) = http_head(addr, &upgrade_request("/cookie", "x", &extra)).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(all_of(&received(&mut rx).await, "X-User-Id"), ["alice"]);
    // The same JWKS, its Ed25519 key (kid k2).
    let token = sign(Algorithm::EdDSA, &ed_key, &plain(), Some("k2"));
    let extra = format!("Cookie: session={token}\r\n");
    let (head, _c4) = http_head(addr, &upgrade_request("/cookie", "x", &extra)).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    received(&mut rx).await;
    // A kid the JWKS does not have.
    let token = sign(Algorithm::ES256, &ec_key, &plain(), Some("k9"));
    let extra = format!("Cookie: session={token}\r\n");
    let refused = http_exchange(addr, &upgrade_request("/cookie", "x", &extra)).await;
    assert!(refused.starts_with("HTTP/1.1 401 "), "{refused}");

    // A subprotocol entry: out of the offer the upstream got; the rest negotiated.
    let p384_key = EncodingKey::from_ec_pem(p384.private_pem.as_bytes()).unwrap();
    let token = sign(Algorithm::ES384, &p384_key, &plain(), None);
    let extra = format!("Sec-WebSocket-Protocol: bearer.{token}, chat.v2\r\n");
    let (head, _c5) = http_head(addr, &upgrade_request("/subprotocol", "x", &extra)).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Protocol: chat.v2\r\n"),
        "{head}"
    );
    let seen = received(&mut rx).await;
    assert_eq!(all_of(&seen, "Sec-WebSocket-Protocol"), ["chat.v2"]);
    assert!(bin.log_lines(&token).is_empty(), "the token was logged");
}

/// The response to an upgrade on `/hs` with `extra` headers; the status line and the
/// `WWW-Authenticate` header checked.
async fn expect_401(addr: std::net::SocketAddr, target: &str, extra: &str, error: &str) {
    let response = http_exchange(addr, &upgrade_request(target, "x", extra)).await;
    assert!(response.starts_with("HTTP/1.1 401 "), "{extra}: {response}");
    let header = format!("WWW-Authenticate: Bearer error=\"{error}\"\r\n");
    assert!(response.contains(&header), "{extra}: {response}");
}

#[tokio::test]
async fn bad_tokens_get_401_and_never_reach_the_upstream() {
    let dir = key_dir();
    let secret = write(&dir, "hs.secret", SECRET);
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let bin = binary(&format!(
        r#"[[listeners]]
address = "127.0.0.1:0"

[auth.hs]
algorithms = ["HS256", "HS512"]
secret_file = "{secret}"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
leeway = "5s"
required_claims = ["sub", "role"]

[[routes]]
path_prefix = "/hs"
upstream = "ws://{up}"
auth = "hs"
"#
    ));
    let addr = bin.addr();
    let bearer = |token: &str| format!("Authorization: Bearer {token}\r\n");
    expect_401(addr, "/hs", "", "invalid_request").await;
    expect_401(
        addr,
        "/hs",
        "Authorization: Basic eDp5\r\n",
        "invalid_request",
    )
    .await;
    let cases = [
        ("expired", claims(json!({"exp": now() - 60}))),
        ("not yet valid", claims(json!({"nbf": now() + 600}))),
        ("wrong issuer", claims(json!({"iss": "https://evil.test"}))),
        ("no issuer", claims(json!({"iss": null}))),
        ("wrong audience", claims(json!({"aud": "another-service"}))),
        ("no exp", claims(json!({"exp": null}))),
        ("required claim", claims(json!({"role": null}))),
    ];
    for (why, claims) in &cases {
        let token = hs256(claims);
        expect_401(addr, "/hs", &bearer(&token), "invalid_token").await;
        assert!(
            bin.log_lines(&token).is_empty(),
            "{why}: the token was logged"
        );
    }
    // A signature by another secret, and one whose bytes were changed.
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-of-more-than-thirty-two-bytes"),
        &claims(json!({})),
        None,
    );
    expect_401(addr, "/hs", &bearer(&forged), "invalid_token").await;
    let good = hs256(&claims(json!({})));
    let (rest, signature) = good.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{rest}.{flipped}{}", &signature[1..]);
    expect_401(addr, "/hs", &bearer(&tampered), "invalid_token").await;
    // Claims changed under a valid signature.
    let (head, _, sig) = {
        let mut parts = good.split('.');
        (parts.next().unwrap(), parts.next(), parts.next().unwrap())
    };
    let admin = b64(claims(json!({"sub": "admin"})).to_string().as_bytes());
    expect_401(
        addr,
        "/hs",
        &bearer(&format!("{head}.{admin}.{sig}")),
        "invalid_token",
    )
    .await;
    // alg "none": unsigned.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(json!({})).to_string().as_bytes())
    );
    expect_401(addr, "/hs", &bearer(&none), "invalid_token").await;
    // An algorithm the provider does not list (HS384), signed with the right secret.
    let hs384 = sign(
        Algorithm::HS384,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &claims(json!({})),
        None,
    );
    expect_401(addr, "/hs", &bearer(&hs384), "invalid_token").await;
    expect_401(addr, "/hs", &bearer("not-a-jwt"), "invalid_token").await;

    // None of these reached the upstream: the first request it sees is this valid one.
    let target = "/hs?marker=valid";
    let (answer, _client) = http_head(addr, &upgrade_request(target, "x", &bearer(&good))).await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    assert_eq!(received(&mut rx).await.target, target);
    // The reasons are in the debug log.
    for reason in [
        "expired (exp)",
        "not yet valid (nbf)",
        "wrong issuer (iss)",
        "required claim \"iss\" missing",
        "wrong audience (aud)",
        "required claim \"exp\" missing",
        "required claim \"role\" missing",
        "bad signature",
        "unsigned token (alg \"none\")",
        "algorithm HS384 is not accepted here",
        "no Authorization header",
    ] {
        assert!(
            log_has(&bin, reason).await,
            "no {reason:?} in the log: {:#?}",
            bin.log_lines("authentication failed")
        );
    }
}

#[tokio::test]
async fn rsa_and_pss_tokens_pass_and_an_hs256_token_signed_with_the_public_key_does_not() {
    let dir = key_dir();
    let Some((rsa_private, rsa_public)) = openssl_rsa(&dir) else {
        return;
    };
    let public = write(&dir, "rsa.pub.pem", &rsa_public);
    let secret = write(&dir, "hs.secret", SECRET);
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let bin = binary(&format!(
        r#"[[listeners]]
address = "127.0.0.1:0"

[auth.rsa]
algorithms = ["RS256", "PS384"]
public_key_files = ["{public}"]

[auth.mixed]
algorithms = ["RS512", "HS256"]
public_key_files = ["{public}"]
secret_file = "{secret}"

[[routes]]
path_prefix = "/rsa"
upstream = "ws://{up}"
auth = "rsa"

[[routes]]
path_prefix = "/mixed"
upstream = "ws://{up}"
auth = "mixed"
"#
    ));
    let addr = bin.addr();
    let key = EncodingKey::from_rsa_pem(rsa_private.as_bytes()).unwrap();
    let bearer = |token: &str| format!("Authorization: Bearer {token}\r\n");
    for (target, alg) in [
        ("/rsa", Algorithm::RS256),
        ("/rsa", Algorithm::PS384),
        ("/mixed", Algorithm::RS512),
    ] {
        let token = sign(alg, &key, &claims(json!({"aud": null})), None);
        let (head, _client) = http_head(addr, &upgrade_request(target, "x", &bearer(&token))).await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{alg:?}: {head}");
        assert_eq!(received(&mut rx).await.target, target);
    }
    // The classic confusion: HS256 with the RSA public key's PEM bytes as the HMAC secret.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(rsa_public.as_bytes()),
        &claims(json!({"aud": null})),
        None,
    );
    expect_401(addr, "/rsa", &bearer(&confused), "invalid_token").await;
    // Where HS256 is accepted too, the public key is still never used as a secret.
    expect_401(addr, "/mixed", &bearer(&confused), "invalid_token").await;
    // RS256 is not on /mixed's list.
    let rs256 = sign(Algorithm::RS256, &key, &claims(json!({"aud": null})), None);
    expect_401(addr, "/mixed", &bearer(&rs256), "invalid_token").await;
    let target = "/mixed?marker=valid";
    let token = hs256(&claims(json!({"aud": null})));
    let (head, _client) = http_head(addr, &upgrade_request(target, "x", &bearer(&token))).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(received(&mut rx).await.target, target);
    assert!(log_has(&bin, "algorithm HS256 is not accepted here").await);
    assert!(log_has(&bin, "bad signature").await);
}

#[tokio::test]
async fn a_tunnel_closes_with_1008_when_its_token_expires_where_the_provider_says_so() {
    let dir = key_dir();
    let secret = write(&dir, "hs.secret", SECRET);
    let (up, mut rx) = recording_upstream(first_protocol).await;
    let bin = binary(&format!(
        r#"[[listeners]]
address = "127.0.0.1:0"

[auth.closing]
algorithms = ["HS256"]
secret_file = "{secret}"
leeway = "0s"
close_on_expiry = true

[auth.lenient]
algorithms = ["HS256"]
secret_file = "{secret}"
leeway = "0s"

[defaults]
close_timeout = "1s"

[[routes]]
path_prefix = "/closing"
upstream = "ws://{up}"
auth = "closing"

[[routes]]
path_prefix = "/lenient"
upstream = "ws://{up}"
auth = "lenient"
"#
    ));
    let addr = bin.addr();
    let started = std::time::Instant::now();
    let token = hs256(&claims(json!({"aud": null, "exp": now() + 2})));
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (head, stream) = http_head(addr, &upgrade_request("/closing", "x", &bearer)).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut client = RawPeer::client(stream);
    let (_, mut upstream) = rx.recv().await.unwrap();
    let (head, stream) = http_head(addr, &upgrade_request("/lenient", "x", &bearer)).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut lenient = RawPeer::client(stream);
    let (_, mut lenient_upstream) = rx.recv().await.unwrap();
    // Frames pass until the token expires.
    client.send(OpCode::Text, true, b"before").await;
    assert_eq!(upstream.recv().await.unwrap().1, b"before");
    assert_eq!(client.expect_close().await, Some(1008));
    assert_eq!(upstream.expect_close().await, Some(1008));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
    assert!(log_has(&bin, "deadline passed (token expired): closed with 1008").await);
    // Without close_on_expiry, the same token's tunnel stays open.
    lenient.send(OpCode::Text, true, b"after").await;
    assert_eq!(lenient_upstream.recv().await.unwrap().1, b"after");
}

fn check(toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let path = write_temp("wsrelay.toml", toml);
    let checked = check_config(&path, env);
    let text = format!("{}{}", checked.stdout, checked.stderr);
    (checked.code, text.replace(path.to_str().unwrap(), "FILE"))
}

const LISTENER_AND_ROUTE: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\nauth = \"main\"\n";

#[test]
fn check_reports_provider_errors_at_their_keys() {
    let dir = key_dir();
    let bad_pem = write(&dir, "bad.pem", "not a key\n");
    let (code, out) = check(
        &format!(
            "{LISTENER_AND_ROUTE}\n[auth.main]\nalgorithms = [\"RS256\", \"none\", \"HS257\"]\npublic_key_files = [\"/nonexistent/key.pem\", \"{bad_pem}\"]\ntoken_from = \"body\"\n\n[auth.other]\nalgorithms = [\"HS256\"]\nsecret_env = \"WSRELAY_TEST_UNSET_SECRET\"\n"
        ),
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    for expected in [
        "FILE:7:8: error: no auth provider \"main\"",
        "FILE:10:24: error: algorithm \"none\" (unsigned tokens) is never accepted",
        "FILE:10:32: error: unknown algorithm \"HS257\"",
        "hint: one of HS256, HS384",
        "FILE:11:21: error: cannot read /nonexistent/key.pem",
        "FILE:11:45: error: ",
        "no PEM block",
        "FILE:12:14: error: unknown token source \"body\"",
        "FILE:16:14: error: environment variable WSRELAY_TEST_UNSET_SECRET is not set",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn check_warns_about_a_short_hmac_secret_and_never_shows_it() {
    let (code, out) = check(
        &format!(
            "{LISTENER_AND_ROUTE}\n[auth.main]\nalgorithms = [\"HS256\"]\nsecret_env = \"WSRELAY_TEST_SHORT_SECRET\"\n"
        ),
        &[("WSRELAY_TEST_SHORT_SECRET", "hunter2-is-short")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("FILE:11:14: warning: the HMAC secret is 16 bytes, shorter than 32"),
        "{out}"
    );
    assert!(
        out.contains("hint: a short secret can be brute-forced"),
        "{out}"
    );
    assert!(out.contains("OK (1 listener(s), 1 route(s))"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    // A long one: no warning.
    let (code, out) = check(
        &format!(
            "{LISTENER_AND_ROUTE}\n[auth.main]\nalgorithms = [\"HS256\"]\nsecret_env = \"WSRELAY_TEST_LONG_SECRET\"\n"
        ),
        &[("WSRELAY_TEST_LONG_SECRET", SECRET)],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");
    // An algorithm family without a key.
    let (code, out) = check(
        &format!("{LISTENER_AND_ROUTE}\n[auth.main]\nalgorithms = [\"HS256\", \"ES256\"]\nsecret_env = \"WSRELAY_TEST_LONG_SECRET\"\n"),
        &[("WSRELAY_TEST_LONG_SECRET", SECRET)],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FILE:10:14: error: no key for the Ec algorithms listed"),
        "{out}"
    );
}

#[test]
fn check_refuses_claims_in_headers_the_gateway_writes() {
    let (code, out) = check(
        &format!(
            "{LISTENER_AND_ROUTE}\n[auth.main]\nalgorithms = [\"HS256\"]\nsecret_env = \"WSRELAY_TEST_LONG_SECRET\"\nforward_claims = {{ sub = \"X-Forwarded-For\", role = \"Sec-WebSocket-Key\", tenant = \"X-Tenant\" }}\n"
        ),
        &[("WSRELAY_TEST_LONG_SECRET", SECRET)],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FILE:12:26: error: X-Forwarded-For cannot carry a claim"),
        "{out}"
    );
    assert!(
        out.contains("error: Sec-WebSocket-Key cannot carry a claim"),
        "{out}"
    );
    assert!(!out.contains("X-Tenant cannot"), "{out}");
}

#[test]
fn the_secret_is_not_in_the_configuration_dump() {
    let config = load_config(&format!(
        "{LISTENER_AND_ROUTE}\n[auth.main]\nalgorithms = [\"HS256\"]\nsecret_file = \"{}\"\n",
        write(&key_dir(), "s", SECRET)
    ));
    let dump = format!("{config:?}");
    assert!(dump.contains("secret_file"), "{dump}");
    assert!(!dump.contains(SECRET), "{dump}");
}
