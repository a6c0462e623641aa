//! Loading the splice keys of relayed connections (`splice`, `splice_threshold`, in
//! `[defaults]` or on a route): whether large payloads go socket to socket with `splice(2)`
//! (Linux, plain TCP on both sides; see `wsrelay_relay::splice`), and from which size.

use super::Loader;
use crate::config::defaults;
use crate::config::schema::Tuning;

impl Loader<'_> {
    /// The splice threshold a route's relay gets: `None` with `splice = false`.
    pub(super) fn splice_threshold(&mut self, tuning: &Tuning) -> Option<u32> {
        // A threshold from `[defaults]` stays valid on a route that turns splicing off; a
        // threshold alone turns splicing on (whatever the default).
        let threshold = tuning.splice_threshold.as_ref();
        let on = tuning
            .splice
            .as_ref()
            .map_or(defaults::SPLICE || threshold.is_some(), |s| *s.get_ref());
        on.then(|| threshold.map_or(defaults::SPLICE_THRESHOLD, |t| *t.get_ref()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{defaults, parse};
    use crate::error::Error;

    const ROUTE: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\n";

    #[test]
    fn the_default_a_threshold_alone_and_a_route_that_turns_it_off() {
        // `splice_threshold` from `[defaults]`, `splice = false` on the second route.
        let config = parse(ROUTE, "t", Path::new(".")).unwrap();
        let default = defaults::SPLICE.then_some(defaults::SPLICE_THRESHOLD);
        assert_eq!(config.routes[0].relay.splice_threshold, default);
        let source = format!("{ROUTE}splice = true\n");
        let config = parse(&source, "t", Path::new(".")).unwrap();
        let on = Some(defaults::SPLICE_THRESHOLD);
        assert_eq!(config.routes[0].relay.splice_threshold, on);
        let source = format!(
            "[defaults]\nsplice_threshold = 0\n{ROUTE}\n[[routes]]\npath_prefix = \"/b\"\nupstream = \"ws://127.0.0.1:9\"\nsplice = false\n"
        );
        let config = parse(&source, "t", Path::new(".")).unwrap();
        assert_eq!(config.routes[0].relay.splice_threshold, Some(0));
        assert_eq!(config.routes[1].relay.splice_threshold, None);
    }

    #[test]
    fn a_bad_value_is_reported_at_its_place() {
        let source = format!("{ROUTE}splice = \"yes\"\nsplice_threshold = -1\n");
        let Err(Error::Config(errors)) = parse(&source, "t.toml", Path::new(".")) else {
            panic!("accepted");
        };
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(shown.iter().any(|e| e.contains("t.toml:6")), "{shown:?}");
    }
}
