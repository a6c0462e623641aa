//! The two exposition formats of `/metrics` and the choice between them.
//!
//! `prometheus-client` writes OpenMetrics text, which Prometheus asks for first. Scrapers
//! that do not ask for it (curl, older agents, `promtool check metrics`) get the classic
//! Prometheus text format (version 0.0.4), derived from the same output: for the metric kinds
//! used here (counters, gauges, histograms) the two differ only in that a counter family is
//! named with its `_total` suffix, and in the `# UNIT` and `# EOF` lines.

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The Prometheus text format, version 0.0.4.
    Text,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it lists
    /// `application/openmetrics-text` (with a non-zero quality), else the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants = |range: &str| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        };
        match accept {
            Some(accept) if accept.split(',').any(wants) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The Prometheus text format of an OpenMetrics exposition written by `prometheus-client`.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            let counter = lines
                .peek()
                .is_some_and(|next| *next == format!("# TYPE {name} counter"));
            if counter {
                out.push_str(&format!("# HELP {name}_total{}\n", &rest[name.len()..]));
                out.push_str(&format!("# TYPE {name}_total counter\n"));
                lines.next();
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_curl_gets_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        let refused = "application/openmetrics-text;q=0, text/plain";
        assert_eq!(Format::negotiate(Some(refused)), Format::Text);
    }

    #[test]
    fn counters_are_named_with_their_suffix_and_eof_goes() {
        let om = "# HELP a_frames Frames.\n# TYPE a_frames counter\na_frames_total{x=\"1\"} 3\n\
                  # HELP g Gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP a_frames_total Frames.\n# TYPE a_frames_total counter\n\
             a_frames_total{x=\"1\"} 3\n# HELP g Gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
