//! Loading the routes API's keys of `[admin]`: `write_back`, `token`, `token_file`, `token_env` (see
//! [`crate::routes_api`]).

use std::net::SocketAddr;
use std::sync::Arc;

use super::Loader;
use crate::config::schema::AdminSection;
use crate::routes_api::ApiSettings;

impl Loader<'_> {
    /// The routes API's settings; a warning when it is off on a non-loopback admin address without
    /// a token.
    pub(super) fn routes_api(
        &mut self,
        section: &AdminSection,
        admin: Option<SocketAddr>,
    ) -> ApiSettings {
        let given = [&section.token, &section.token_file, &section.token_env];
        let token = match given.iter().filter_map(|g| g.as_ref()).nth(1) {
            Some(second) => {
                self.report.at(
                    second,
                    "more than one of token, token_file and token_env",
                    "give the token one way: the token itself, a file, or an environment variable",
                );
                None
            }
            None => self.token_from(section),
        };
        if !crate::routes_api::open_to(admin, token.is_some()) {
            if let Some(address) = &section.address {
                self.report.warn_at(
                    address,
                    "the routes API is off: the admin address is not on loopback and no token is set",
                    "set [admin] token (or token_file) to manage routes from other hosts; \
                     /metrics, /livez and /readyz stay open",
                );
            }
        }
        ApiSettings {
            write_back: section.write_back.unwrap_or(false),
            token: token.map(Arc::from),
        }
    }

    /// The token of the one key among `token`, `token_file`, `token_env` that is set.
    fn token_from(&mut self, section: &AdminSection) -> Option<String> {
        if let Some(token) = &section.token {
            self.token(token, token.get_ref().trim())
        } else if let Some(file) = &section.token_file {
            let path = self.path(file);
            // An unreadable file: `path` has reported it.
            let text = std::fs::read_to_string(&path).ok()?;
            self.token(file, text.trim())
        } else if let Some(env) = &section.token_env {
            match std::env::var(env.get_ref()) {
                Ok(value) => self.token(env, value.trim()),
                Err(e) => {
                    self.report.at(
                        env,
                        &format!("environment variable {}: {e}", env.get_ref()),
                        "set it in the gateway's environment, or use token_file",
                    );
                    None
                }
            }
        } else {
            None
        }
    }

    /// A token read from `at`: refused when empty.
    fn token<T>(&mut self, at: &toml::Spanned<T>, token: &str) -> Option<String> {
        if token.is_empty() {
            self.report.at(
                at,
                "the admin token is empty",
                "a long random string, e.g. from `openssl rand -hex 32`",
            );
            return None;
        }
        Some(token.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    /// A listener and a route, after the `[admin]` table of each test.
    const REST: &str =
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:1/\"\n";

    fn load(admin: &str) -> Result<crate::config::GatewayConfig, crate::Error> {
        parse(&format!("{admin}{REST}"), "t.toml", Path::new("."))
    }

    #[test]
    fn the_api_is_off_on_a_public_admin_address_without_a_token() {
        let config = load("[admin]\naddress = \"0.0.0.0:9090\"\n").unwrap();
        assert!(config.warnings[0].to_string().contains("routes API is off"));
        let config = load("[admin]\naddress = \"0.0.0.0:9090\"\ntoken = \"s3cret\"\n").unwrap();
        assert!(config.routes_api.token.is_some() && config.warnings.is_empty());
        let config = load("[admin]\naddress = \"127.0.0.1:9090\"\n").unwrap();
        assert!(config.routes_api.token.is_none() && config.warnings.is_empty());
        assert!(!config.routes_api.write_back);
    }

    #[test]
    fn a_token_file_is_read_trimmed_relative_to_the_document() {
        let dir = std::env::temp_dir().join(format!("wsrelay-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("admin.token"), "s3cret\n").unwrap();
        let admin = "[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n";
        let config = parse(&format!("{admin}{REST}"), "t.toml", &dir).unwrap();
        assert_eq!(config.routes_api.token.as_deref(), Some("s3cret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_sources_are_exclusive_and_not_empty() {
        let both = "[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"a\"\ntoken_file = \"x\"\n";
        let e = load(both).unwrap_err().to_string();
        assert!(
            e.contains("t.toml:4:14: error: more than one of token, token_file and token_env"),
            "{e}"
        );
        let empty = "[admin]\naddress = \"127.0.0.1:0\"\ntoken = \" \"\n";
        let e = load(empty).unwrap_err().to_string();
        assert!(e.contains("the admin token is empty"), "{e}");
    }
}
