//! Loading the `[server]` keys that say how tunnels are wound down: `drain_delay` and
//! `drain_window` (after SIGTERM), `orphaned_tunnel_grace` and `orphaned_tunnel_window` (after a
//! reload removed a tunnel's route or backend).

use super::Loader;
use crate::config::defaults;
use crate::config::schema::ServerSection;
use crate::drain::WindingDown;

impl Loader<'_> {
    /// The winding-down settings of `[server]`; every one may be 0.
    pub(super) fn winding_down(&mut self, server: &ServerSection) -> WindingDown {
        WindingDown {
            drain_delay: self.duration(server.drain_delay.as_ref(), defaults::DRAIN_DELAY, true),
            drain_window: self.duration(server.drain_window.as_ref(), defaults::DRAIN_WINDOW, true),
            orphaned_grace: server
                .orphaned_tunnel_grace
                .as_ref()
                .map(|grace| self.duration(Some(grace), std::time::Duration::ZERO, true)),
            orphaned_window: self.duration(
                server.orphaned_tunnel_window.as_ref(),
                defaults::ORPHANED_TUNNEL_WINDOW,
                true,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::parse;
    use crate::drain::WindingDown;

    const ROUTE: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\n";

    #[test]
    fn nothing_is_delayed_or_spread_unless_set() {
        let config = parse(ROUTE, "t", Path::new(".")).unwrap();
        assert_eq!(config.winding_down, WindingDown::default());
        assert_eq!(config.winding_down.orphaned_grace, None);
        let source = format!(
            "[server]\ndrain_delay = \"5s\"\ndrain_window = \"20s\"\n\
             orphaned_tunnel_grace = \"1m\"\norphaned_tunnel_window = \"10s\"\n{ROUTE}"
        );
        let w = parse(&source, "t", Path::new(".")).unwrap().winding_down;
        assert_eq!(w.drain_delay, Duration::from_secs(5));
        assert_eq!(w.drain_window, Duration::from_secs(20));
        assert_eq!(w.orphaned_grace, Some(Duration::from_secs(60)));
        assert_eq!(w.orphaned_window, Duration::from_secs(10));
    }

    #[test]
    fn a_bad_duration_is_reported_at_its_place() {
        let source = format!("[server]\ndrain_window = \"soon\"\n{ROUTE}");
        let e = parse(&source, "t", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("t:2:"), "{e}");
        assert!(e.contains("invalid duration"), "{e}");
    }
}
