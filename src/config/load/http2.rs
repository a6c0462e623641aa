//! Loading a listener's HTTP/2 settings: `http2 = true` and `http2_max_concurrent_streams`.

use super::Loader;
use crate::config::schema::ListenerSection;
use crate::http2::Http2Settings;

impl Loader<'_> {
    /// The listener's HTTP/2 settings; `None` when `http2` is off (the default). The stream
    /// cap must be between 1 and 2^31 - 1 (a 0 would refuse every WebSocket while promising
    /// them in SETTINGS); set without `http2 = true` it is an error, not silently unused.
    pub(super) fn http2(&mut self, l: &ListenerSection) -> Option<Http2Settings> {
        let mut settings = Http2Settings::default();
        if let Some(max) = &l.http2_max_concurrent_streams {
            match u32::try_from(*max.get_ref()) {
                Ok(n) if (1..=i32::MAX as u32).contains(&n) => settings.max_concurrent_streams = n,
                _ => self.report.at(
                    max,
                    &format!("invalid http2_max_concurrent_streams {}", max.get_ref()),
                    "a count of streams (WebSockets) per HTTP/2 connection, from 1: e.g. 100",
                ),
            }
            if l.http2 != Some(true) {
                self.report.at(
                    max,
                    "http2_max_concurrent_streams without http2 = true",
                    "add http2 = true to this listener, or remove the setting",
                );
            }
        }
        (l.http2 == Some(true)).then_some(settings)
    }
}
