//! The routes API of the admin listener: `/routes` and `/pools` listed, read, created, replaced
//! and deleted as JSON, each change validated and applied like a reload.
//!
//! A body is a JSON object with the keys of a `[[routes]]` (or `[[pools]]`) table. A change is
//! made to the configuration document the gateway runs (its file's text, or the flags'
//! document): the JSON becomes a TOML table, the array of tables is edited, and the candidate
//! document goes through the loader of `wsrelay check`. An invalid candidate changes nothing
//! and is answered 400 with that loader's positioned diagnostics, followed by the candidate
//! itself (the positions are in it). A valid one is applied by `Reloader::change`, the code
//! path of `POST /reload`, one change at a time with reloads: open tunnels untouched, state
//! carried over by name.
//!
//! With `[admin] write_back = true` the candidate is written to the configuration file
//! ([`write_atomically`]); otherwise it lives until the file is read again (SIGHUP,
//! `POST /reload`, a restart), which replaces it.
//!
//! The API is open on a loopback admin address; anywhere else it needs `[admin] token` (or
//! `token_file`), and is off without one ([`open_to`]). A configured token is required on any
//! address, compared in constant time.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::reload::Reloader;
use crate::Error;

/// Largest request body the API reads (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;

/// The name diagnostics of a candidate document carry (its positions are in the candidate).
pub const CANDIDATE: &str = "candidate";

/// The routes API's settings (`[admin]` keys).
#[derive(Clone, Default)]
pub struct ApiSettings {
    /// Changes are written back to the configuration file (`write_back`, default off).
    pub write_back: bool,
    /// The bearer token required (`token`, `token_file`); `None`: none.
    pub token: Option<Arc<str>>,
}

impl fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stays out of logs.
        f.debug_struct("ApiSettings")
            .field("write_back", &self.write_back)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// True if the routes API may be served on the admin address `admin`: on loopback always, on
/// any other address only with a token.
pub fn open_to(admin: Option<SocketAddr>, has_token: bool) -> bool {
    has_token || admin.is_none_or(|a| a.ip().is_loopback())
}

/// True if `path` (without its query) is one of the API's.
pub fn handles(path: &str) -> bool {
    ["/routes", "/pools"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// A request to the API, as the admin listener read it.
#[derive(Debug)]
pub struct ApiRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// The path, without its query.
    pub path: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The body (at most [`MAX_BODY`]).
    pub body: &'a [u8],
}

/// The API's answer.
#[derive(Debug)]
pub struct ApiResponse {
    /// Status line's code and reason.
    pub status: &'static str,
    /// The body is JSON (else plain text).
    pub json: bool,
    /// The body.
    pub body: String,
    /// A 401: the response carries `WWW-Authenticate: Bearer`.
    pub challenge: bool,
}

impl ApiResponse {
    fn text(status: &'static str, body: impl Into<String>) -> ApiResponse {
        ApiResponse {
            status,
            json: false,
            body: body.into(),
            challenge: false,
        }
    }

    fn json(status: &'static str, value: &impl serde::Serialize) -> ApiResponse {
        match serde_json::to_string_pretty(value) {
            Ok(mut body) => {
                body.push('\n');
                ApiResponse {
                    status,
                    json: true,
                    body,
                    challenge: false,
                }
            }
            Err(e) => ApiResponse::text("500 Internal Server Error", format!("{e}\n")),
        }
    }
}

/// Which array of tables a path names.
#[derive(Debug, Clone, Copy)]
enum Collection {
    Routes,
    Pools,
}

impl Collection {
    /// The document's key.
    fn key(self) -> &'static str {
        match self {
            Collection::Routes => "routes",
            Collection::Pools => "pools",
        }
    }

    /// One of them, in messages.
    fn one(self) -> &'static str {
        match self {
            Collection::Routes => "route",
            Collection::Pools => "pool",
        }
    }
}

/// Why a change was not applied.
enum Refusal {
    /// 404.
    NotFound(String),
    /// 409.
    Conflict(String),
    /// 400, the loader's diagnostics, the candidate document and the line its pools and
    /// routes start on.
    Invalid(Error, String, usize),
    /// Reloading failed (500, nothing changed).
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        Refusal::Failed(e)
    }
}

/// Answers one API request (blocking: it may load a document and bind nothing else; run it
/// off the runtime's threads).
pub fn answer(request: &ApiRequest<'_>, reloader: &Reloader) -> ApiResponse {
    let current = reloader.current();
    let settings = &current.config.routes_api;
    if !open_to(current.config.admin, settings.token.is_some()) {
        return ApiResponse::text(
            "403 Forbidden",
            "the routes API is off: the admin address is not on loopback and no [admin] token is set\n",
        );
    }
    if let Some(token) = &settings.token {
        if !authorized(request.authorization, token) {
            let mut response =
                ApiResponse::text("401 Unauthorized", "a bearer token is required\n");
            response.challenge = true;
            return response;
        }
    }
    let (collection, rest) = match request.path.strip_prefix("/routes") {
        Some(rest) => (Collection::Routes, rest),
        None => (
            Collection::Pools,
            request.path.strip_prefix("/pools").unwrap_or_default(),
        ),
    };
    let name = match rest.strip_prefix('/') {
        None => None,
        Some(name) if !name.is_empty() && !name.contains('/') => Some(name),
        Some(_) => return ApiResponse::text("404 Not Found", "not found\n"),
    };
    let write_back = settings.write_back;
    match (request.method, name) {
        ("GET", None) => read(reloader, |doc| {
            let list = entries(doc, collection).cloned().unwrap_or_default();
            ApiResponse::json("200 OK", &list)
        }),
        ("GET", Some(name)) => read(reloader, |doc| {
            let list = entries(doc, collection);
            match list.and_then(|list| list.get(find(list, name)?)) {
                Some(table) => ApiResponse::json("200 OK", table),
                None => not_found(collection, name),
            }
        }),
        ("POST", None) => match body_table(request.body, None) {
            Ok((name, table)) => edit(
                reloader,
                collection,
                "201 Created",
                write_back,
                move |list| {
                    let what = format!("created {} {name:?}", collection.one());
                    if find(list, &name).is_some() {
                        return Err(Refusal::Conflict(format!(
                            "a {} named {name:?} exists: PUT /{}/{name} replaces it\n",
                            collection.one(),
                            collection.key()
                        )));
                    }
                    list.push(toml::Value::Table(table.clone()));
                    Ok((what, table))
                },
            ),
            Err(response) => response,
        },
        ("PUT", Some(name)) => match body_table(request.body, Some(name)) {
            Ok((_, table)) => edit(reloader, collection, "200 OK", write_back, |list| {
                let Some(i) = find(list, name) else {
                    return Err(Refusal::NotFound(format!(
                        "no {} named {name:?}: POST /{} creates one\n",
                        collection.one(),
                        collection.key()
                    )));
                };
                list[i] = toml::Value::Table(table.clone());
                Ok((format!("replaced {} {name:?}", collection.one()), table))
            }),
            Err(response) => response,
        },
        ("DELETE", Some(name)) => edit(reloader, collection, "200 OK", write_back, |list| {
            let Some(i) = find(list, name) else {
                return Err(Refusal::NotFound(format!(
                    "no {} named {name:?}\n",
                    collection.one()
                )));
            };
            let removed = match list.remove(i) {
                toml::Value::Table(table) => table,
                _ => toml::Table::new(),
            };
            Ok((format!("deleted {} {name:?}", collection.one()), removed))
        }),
        (_, None) => ApiResponse::text("405 Method Not Allowed", "GET or POST\n"),
        (_, Some(_)) => ApiResponse::text("405 Method Not Allowed", "GET, PUT or DELETE\n"),
    }
}

/// True if `authorization` is `Bearer <token>` (compared in constant time).
fn authorized(authorization: Option<&str>, token: &str) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
}

fn not_found(collection: Collection, name: &str) -> ApiResponse {
    ApiResponse::text(
        "404 Not Found",
        format!("no {} named {name:?}\n", collection.one()),
    )
}

/// The running document, parsed, for a read.
fn read(reloader: &Reloader, answer: impl FnOnce(&toml::Table) -> ApiResponse) -> ApiResponse {
    let Some(text) = reloader.document() else {
        return ApiResponse::text(
            "404 Not Found",
            "the gateway runs without a configuration document: no routes API\n",
        );
    };
    match text.parse::<toml::Table>() {
        Ok(doc) => answer(&doc),
        Err(e) => ApiResponse::text("500 Internal Server Error", format!("{e}\n")),
    }
}

/// The tables of a collection in a document.
fn entries(doc: &toml::Table, collection: Collection) -> Option<&Vec<toml::Value>> {
    doc.get(collection.key()).and_then(toml::Value::as_array)
}

/// The position of the table named `name`.
fn find(list: &[toml::Value], name: &str) -> Option<usize> {
    list.iter()
        .position(|t| t.get("name").and_then(toml::Value::as_str) == Some(name))
}

/// The body as a TOML table with its name (`path_name` fills it in, and must agree with it).
fn body_table(body: &[u8], path_name: Option<&str>) -> Result<(String, toml::Table), ApiResponse> {
    let bad = |message: String| ApiResponse::text("400 Bad Request", message);
    let value: toml::Value = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is not a JSON object of TOML values: {e}\n(null has no TOML form: leave the key out)\n"
        ))
    })?;
    let toml::Value::Table(mut table) = value else {
        return Err(bad(
            "the body is a JSON object: the keys of the table\n".to_owned()
        ));
    };
    let name = match (table.get("name"), path_name) {
        (Some(toml::Value::String(name)), Some(path)) if name != path => {
            return Err(bad(format!(
                "the body names {name:?}, the path {path:?}: delete and create to rename\n"
            )))
        }
        (Some(toml::Value::String(name)), _) => name.clone(),
        (None, Some(path)) => {
            table.insert("name".to_owned(), toml::Value::String(path.to_owned()));
            path.to_owned()
        }
        _ => return Err(bad("the body needs a \"name\" (a string)\n".to_owned())),
    };
    Ok((name, table))
}

/// Applies `change` to the running document through [`Reloader::change`]: the answer is
/// `status` and the table `change` returned, or why nothing changed.
fn edit(
    reloader: &Reloader,
    collection: Collection,
    status: &'static str,
    write_back: bool,
    change: impl FnOnce(&mut Vec<toml::Value>) -> Result<(String, toml::Table), Refusal>,
) -> ApiResponse {
    let failed =
        |e: &dyn fmt::Display| Refusal::Failed(Error::Io(std::io::Error::other(e.to_string())));
    let mut result = None;
    let applied = reloader.change(write_back, |running, file| {
        let mut doc: toml::Table = running.parse().map_err(|e| failed(&e))?;
        let mut list = match doc.remove(collection.key()) {
            Some(toml::Value::Array(list)) => list,
            _ => Vec::new(),
        };
        let (did, table) = change(&mut list)?;
        if !list.is_empty() {
            doc.insert(collection.key().to_owned(), toml::Value::Array(list));
        }
        let (candidate, first) = render(doc).map_err(|e| failed(&e))?;
        let base = file.and_then(Path::parent).unwrap_or(Path::new("."));
        match crate::config::parse(&candidate, CANDIDATE, base) {
            Ok(config) => {
                result = Some(table);
                Ok((did, candidate, config))
            }
            Err(e) => Err(Refusal::Invalid(e, candidate, first)),
        }
    });
    match applied {
        Ok((_, None)) => ApiResponse::json(status, &result.unwrap_or_default()),
        Ok((_, Some(e))) => ApiResponse::text(
            "500 Internal Server Error",
            format!("applied to the running gateway, but not written back to the configuration file: {e}\n"),
        ),
        Err(Refusal::NotFound(m)) => ApiResponse::text("404 Not Found", m),
        Err(Refusal::Conflict(m)) => ApiResponse::text("409 Conflict", m),
        Err(Refusal::Invalid(e, candidate, first)) => {
            tracing::warn!("routes API: change refused, the running configuration stays:\n{e}");
            let mut body = format!(
                "{e}\nnothing changed. The positions above are in the candidate document \
                 (\"{CANDIDATE}\"): the running document with this change, its other tables \
                 first (lines 1 to {}, not shown), then its pools and routes:\n\n",
                first - 1
            );
            for (n, line) in candidate.lines().enumerate().skip(first - 1) {
                body.push_str(&format!("{} | {line}\n", n + 1));
            }
            ApiResponse::text("400 Bad Request", body)
        }
        Err(Refusal::Failed(e)) => ApiResponse::text(
            "500 Internal Server Error",
            format!("{e}\nnothing changed\n"),
        ),
    }
}

/// The candidate's text: the document's other tables first, then its `[[pools]]` and
/// `[[routes]]` (arrays of tables, never empty: they follow any table), and the line those
/// start on.
fn render(mut doc: toml::Table) -> Result<(String, usize), toml::ser::Error> {
    let mut ours = toml::Table::new();
    for key in ["pools", "routes"] {
        if let Some(value) = doc.remove(key) {
            ours.insert(key.to_owned(), value);
        }
    }
    let mut text = toml::to_string(&doc)?;
    if !text.is_empty() {
        text.push('\n');
    }
    let first = text.lines().count() + 1;
    text.push_str(&toml::to_string(&ours)?);
    Ok((text, first))
}

/// Writes `text` to `path` atomically: a temporary file beside it (same permissions), synced,
/// then renamed over it, so a reader sees the old file or the new one, never a part.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.wsrelay-{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_open_elsewhere_a_token_is_needed() {
        let at = |a: &str| Some(a.parse::<SocketAddr>().unwrap());
        assert!(open_to(at("127.0.0.1:9090"), false));
        assert!(open_to(at("[::1]:9090"), false));
        assert!(open_to(None, false));
        assert!(!open_to(at("0.0.0.0:9090"), false));
        assert!(!open_to(at("10.1.2.3:9090"), false));
        assert!(!open_to(at("[::]:9090"), false));
        assert!(open_to(at("0.0.0.0:9090"), true));
    }

    #[test]
    fn bearer_tokens_are_checked() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(authorized(Some("bearer  s3cret "), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Basic s3cret"), "s3cret"));
        assert!(!authorized(Some("s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }

    #[test]
    fn paths_and_bodies() {
        assert!(handles("/routes") && handles("/routes/a") && handles("/pools/x"));
        assert!(!handles("/routesx") && !handles("/metrics"));
        let (name, table) = body_table(br#"{"upstream":"ws://a/"}"#, Some("chat")).unwrap();
        assert_eq!(name, "chat");
        assert_eq!(table["name"].as_str(), Some("chat"));
        assert!(body_table(br#"{"name":"b"}"#, Some("chat")).is_err());
        assert!(body_table(br#"{"upstream":"ws://a/"}"#, None).is_err());
        assert!(body_table(br#"[1]"#, None).is_err());
        assert!(body_table(br#"{"name":"a","x":null}"#, None).is_err());
    }
}
