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
