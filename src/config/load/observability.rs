//! Loading the observability keys: `[admin] address`, and the access log's `[server]` keys
//! (`log_format`, `log_open`, `log_query_values`).

use std::net::SocketAddr;

use super::Loader;
use crate::access_log::{AccessLogConfig, LogFormat};
use crate::config::defaults;
use crate::config::schema::{AdminSection, ServerSection};

impl Loader<'_> {
    /// The admin listener's address; `None` when not set (no admin listener).
    pub(super) fn admin(&mut self, section: &AdminSection) -> Option<SocketAddr> {
        let address = section.address.as_ref()?;
        match address.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                self.report.at(
                    address,
                    &format!("invalid admin address {:?}: {e}", address.get_ref()),
                    "an IP address and a port, best on loopback: \"127.0.0.1:9090\"",
                );
                None
            }
        }
    }

    /// The access log settings of `[server]`.
    pub(super) fn access_log(&mut self, server: &ServerSection) -> AccessLogConfig {
        let format = match &server.log_format {
            None => LogFormat::parse(defaults::LOG_FORMAT).unwrap_or_default(),
            Some(value) => match LogFormat::parse(value.get_ref()) {
                Some(format) => format,
                None => {
                    self.report.at(
                        value,
                        &format!("unknown log format {:?}", value.get_ref()),
                        "\"text\" (the default) or \"json\"",
                    );
                    LogFormat::default()
                }
            },
        };
        AccessLogConfig {
            format,
            open_line: server.log_open.unwrap_or(defaults::LOG_OPEN),
            query_values: server
                .log_query_values
                .unwrap_or(defaults::LOG_QUERY_VALUES),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::access_log::{AccessLogConfig, LogFormat};
    use crate::config::parse;
    use crate::Error;

    const ROUTE: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\n";

    #[test]
    fn no_admin_and_text_logs_unless_set() {
        let config = parse(ROUTE, "t", Path::new(".")).unwrap();
        assert_eq!(config.admin, None);
        assert_eq!(config.access_log, AccessLogConfig::default());
        let source = format!(
            "[server]\nlog_format = \"json\"\nlog_open = true\nlog_query_values = true\n{ROUTE}\
             [admin]\naddress = \"127.0.0.1:9090\"\n"
        );
        let config = parse(&source, "t", Path::new(".")).unwrap();
        assert_eq!(config.admin, Some("127.0.0.1:9090".parse().unwrap()));
        let expected = AccessLogConfig {
            format: LogFormat::Json,
            open_line: true,
            query_values: true,
        };
        assert_eq!(config.access_log, expected);
    }

    #[test]
    fn a_bad_admin_address_and_log_format_are_placed_and_explained() {
        let source =
            format!("[server]\nlog_format = \"xml\"\n{ROUTE}[admin]\naddress = \"localhost\"\n");
        let Err(Error::Config(errors)) = parse(&source, "t", Path::new(".")) else {
            panic!("accepted");
        };
        let at: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.hint.as_str())).collect();
        assert_eq!(
            at,
            [
                (2, "\"text\" (the default) or \"json\""),
                (
                    9,
                    "an IP address and a port, best on loopback: \"127.0.0.1:9090\""
                )
            ],
            "{errors:#?}"
        );
    }
}
