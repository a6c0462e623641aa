//! The loader's unit tests: defaults, every error reported, tuning keys reaching routes.

use super::*;
use crate::config::{Kind, Table};
use crate::error::ConfigError;

fn errors(source: &str) -> Vec<ConfigError> {
    match parse(source, "test.toml", Path::new(".")) {
        Err(Error::Config(errors)) => errors,
        Ok(_) => panic!("accepted:\n{source}"),
        Err(e) => panic!("{e}"),
    }
}

const MINIMAL: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npath_prefix = \"/\"\nupstream = \"ws://127.0.0.1:9\"\n";

#[test]
fn minimal_config_loads_with_defaults() {
    let config = parse(MINIMAL, "t", Path::new(".")).unwrap();
    assert_eq!(config.listeners.len(), 1);
    let route = &config.routes[0];
    assert_eq!(route.connect_timeout, Duration::from_secs(5));
    assert_eq!(route.relay, crate::config::defaults::relay_options());
    assert_eq!(route.extensions, ["permessage-deflate"]);
    assert!(route.websocket && !route.change_origin);
}

#[test]
fn unknown_keys_are_errors_with_position_and_suggestion() {
    let source = format!("{MINIMAL}idle_timout = \"5s\"\n");
    let e = &errors(&source)[0];
    assert_eq!((e.line, e.column), (7, 1), "{e}");
    assert!(e.message.contains("idle_timout"), "{e}");
    assert_eq!(e.hint, "did you mean `idle_timeout`?");
}

#[test]
fn every_unknown_key_is_reported_with_the_semantic_errors() {
    let source = format!(
        "[server]\nworker = 2\n{MINIMAL}idle_timout = \"5s\"\nupstream_tls = {{ ca = \"x\" }}\nconnect_timeout = \"soon\"\n"
    );
    let errs = errors(&source);
    let at: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|e| (e.line, e.column, e.hint.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            (2, 1, "did you mean `workers`?"),
            (9, 1, "did you mean `idle_timeout`?"),
            (10, 18, "did you mean `ca_file`?"),
            (
                11,
                19,
                "write a number and a unit: \"500ms\", \"10s\", \"2m\", \"1h\""
            )
        ],
        "{errs:#?}"
    );
    // A key whose value spans lines cannot be blanked cleanly: no made-up errors follow.
    let source = format!("{MINIMAL}allowed_origin = [\n  \"https://a\",\n]\n");
    assert_eq!(errors(&source).len(), 1);
}

#[test]
fn semantic_errors_are_all_reported() {
    let source = "[[listeners]]\naddress = \"nowhere\"\n\n[[routes]]\npath_regex = \"^/ws/(.*$\"\nupstream = \"ws://x\"\n\n[[routes]]\npath_prefix = \"/\"\nupstream = \"http://x\"\nidle_timeout = \"5 parsecs\"\n";
    let errs = errors(source);
    let at: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, [(2, 11), (5, 14), (10, 12), (11, 16)], "{errs:#?}");
    assert!(errs.iter().all(|e| !e.hint.is_empty()));
}

#[test]
fn an_unknown_remask_mode_is_reported_at_its_value() {
    let source = format!("{MINIMAL}remask = \"sometimes\"\n");
    let e = &errors(&source)[0];
    assert_eq!((e.line, e.column), (7, 10), "{e}");
    assert!(e.message.contains("sometimes"), "{e}");
    assert!(e.hint.contains("\"always\""), "{e}");
}

#[test]
fn rewrite_references_are_checked() {
    let source = MINIMAL.replace(
        "path_prefix = \"/\"",
        "path_regex = \"^/ws/(?P<room>.*)$\"\nrewrite = \"/r/$2/${room}/$1x\"",
    );
    let errs = errors(&source);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].message.contains("$2"));
    assert!(errs[1].message.contains("$1x") && errs[1].hint.contains("${1}"));
    assert_eq!(template_references("a$$b${x}$1/$n_2-"), ["x", "1", "n_2"]);
}

#[test]
fn reserved_and_invalid_headers_are_refused() {
    let source = format!(
        "{MINIMAL}add_headers = {{ Host = \"x\", \"Sec-WebSocket-Protocol\" = \"y\", \"X-Ok\" = \"a\\nb\" }}\n"
    );
    assert_eq!(errors(&source).len(), 3);
}

#[test]
fn missing_files_are_reported_at_their_key() {
    let source = format!(
        "{MINIMAL}[routes.upstream_tls]\nca_file = \"no/such/ca.pem\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\ncert_file = \"missing.pem\"\nkey_file = \"missing.key\"\n"
    );
    let source = source.replace("ws://127.0.0.1:9", "wss://127.0.0.1:9");
    let errs = errors(&source);
    let at: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, [(8, 11), (13, 13), (14, 12)], "{errs:#?}");
    assert!(errs[1].message.contains("missing.pem"), "{errs:#?}");
    assert!(errs[1].hint.contains("relative to the configuration file"));
}

#[test]
fn server_keys_are_read() {
    let source = format!("[server]\nworkers = 3\nshutdown_timeout = \"0s\"\n{MINIMAL}");
    let config = parse(&source, "t", Path::new(".")).unwrap();
    assert_eq!(
        (config.workers, config.shutdown_timeout),
        (3, Duration::ZERO)
    );
    let e = &errors(&MINIMAL.replace("path_prefix", "connect_timeout = \"0s\"\npath_prefix"))[0];
    assert!(e.message.contains("cannot be 0"), "{e}");
}

#[test]
fn tuning_keys_reach_the_relay_options_and_routes_override_defaults() {
    let source = format!(
        "[defaults]\nidle_timeout = \"1m\"\nclose_timeout = \"2s\"\nmax_frame_size = 10\nmax_message_size = 20\nbuffer_size = 4096\nvalidate_utf8 = false\nconnect_timeout = \"1s\"\nupgrade_timeout = \"3s\"\nkeepalive_interval = \"20s\"\nremask = \"never\"\n{MINIMAL}\n[[routes]]\npath_prefix = \"/b\"\nupstream = \"ws://127.0.0.1:9\"\nbuffer_size = 512\nremask = \"always\"\nmax_frame_size = 0\nidle_timeout = \"0s\"\nkeepalive_interval = \"0s\"\n"
    );
    let config = parse(&source, "t", Path::new(".")).unwrap();
    let (a, b) = (&config.routes[0], &config.routes[1]);
    assert_eq!(
        a.relay,
        RelayOptions {
            buffer_size: 4096,
            client_max_frame_size: Some(10),
            upstream_max_frame_size: Some(10),
            client_max_message_size: Some(20),
            upstream_max_message_size: Some(20),
            validate_utf8: false,
            allowed_rsv: 0,
            close_timeout: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(60)),
            keep_alive: Some(Duration::from_secs(20)),
            aggregate_fragments: false,
            remask: Remask::Never,
            client_rate_limit: None,
            upstream_rate_limit: None,
        }
    );
    assert_eq!(b.relay.remask, Remask::Always);
    assert_eq!(
        (a.connect_timeout, a.upgrade_timeout),
        (Duration::from_secs(1), Duration::from_secs(3))
    );
    assert_eq!(b.relay.buffer_size, 512);
    assert_eq!(b.relay.client_max_frame_size, None);
    assert_eq!(b.relay.idle_timeout, None);
    assert_eq!(b.relay.keep_alive, None);
    assert_eq!(b.relay.client_max_message_size, Some(20));
    let e = &errors(&format!("{MINIMAL}buffer_size = 100\n"))[0];
    assert!(e.message.contains("below 256"), "{e}");
}

#[test]
fn non_ascii_keys_and_values_do_not_panic() {
    let source = format!("{MINIMAL}add_headers = {{ \"Sec-WebSocket-é\" = \"x\", \"ÄÖÜ\" = \"y\" }}\n\"näme\" = \"ü\"\n");
    let errs = errors(&source);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs.iter().any(|e| e.message.contains("näme")), "{errs:#?}");
}

/// The one-upstream document with `key = value` in `table`, loaded as the command line is.
fn flag_errors(table: Table, key: &str, value: &str, kind: Kind) -> Vec<ConfigError> {
    let mut flags = FlagDocument::new();
    flags.set(
        Table::Route,
        "upstream",
        "ws://127.0.0.1:9",
        Kind::Text,
        None,
    );
    let flag = format!("--{} {value}", key.replace('_', "-"));
    flags.set(table, key, value, kind, Some(flag));
    match from_flags(&flags) {
        Err(Error::Config(errors)) => errors,
        Ok(_) => panic!("accepted {key} = {value}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_bad_flag_gets_the_message_and_hint_of_the_same_bad_key_in_a_file() {
    let cases = [
        (
            Table::Defaults,
            "connect_timeout",
            "abc",
            Kind::Text,
            "\"abc\"",
        ),
        (
            Table::Defaults,
            "connect_timeout",
            "0s",
            Kind::Text,
            "\"0s\"",
        ),
        (Table::Defaults, "buffer_size", "100", Kind::Integer, "100"),
        (
            Table::Defaults,
            "buffer_size",
            "lots",
            Kind::Integer,
            "\"lots\"",
        ),
        (Table::Server, "workers", "-1", Kind::Integer, "-1"),
        (Table::Server, "handshake_timeout", "5", Kind::Text, "\"5\""),
    ];
    for (table, key, value, kind, literal) in cases {
        let from_flag = flag_errors(table, key, value, kind);
        let section = if table == Table::Server {
            "[server]"
        } else {
            "[defaults]"
        };
        let from_file = errors(&format!("{section}\n{key} = {literal}\n{MINIMAL}"));
        assert_eq!(from_flag.len(), 1, "{from_flag:#?}");
        let (flag, file) = (&from_flag[0], &from_file[0]);
        assert_eq!(
            (&flag.message, &flag.hint),
            (&file.message, &file.hint),
            "{key} = {value}"
        );
        assert_eq!((file.line, file.column), (2, key.len() + 4));
        let named = format!("--{} {value}", key.replace('_', "-"));
        assert_eq!(flag.flag.as_deref(), Some(named.as_str()));
        assert_eq!((flag.file.as_str(), flag.line), ("command line", 0));
        assert!(
            flag.to_string().starts_with(&format!("{named}: error: ")),
            "{flag}"
        );
    }
}

#[test]
fn flags_reach_the_route_and_server_with_the_files_defaults() {
    let mut flags = FlagDocument::new();
    flags.set(
        Table::Route,
        "upstream",
        "ws://127.0.0.1:9/base",
        Kind::Text,
        None,
    );
    flags.set(
        Table::Defaults,
        "max_frame_size",
        "100",
        Kind::Integer,
        None,
    );
    flags.set(
        Table::Defaults,
        "validate_utf8",
        "false",
        Kind::Switch,
        None,
    );
    flags.set(Table::Server, "workers", "3", Kind::Integer, None);
    let config = from_flags(&flags).unwrap();
    let from_file = parse(MINIMAL, "t", Path::new(".")).unwrap();
    assert_eq!(config.listeners[0].address.to_string(), defaults::LISTEN);
    assert_eq!(config.workers, 3);
    let (route, plain) = (&config.routes[0], &from_file.routes[0]);
    assert_eq!(route.name, "default");
    assert!(route.matches(None, "/any/path"));
    assert_eq!(route.relay.client_max_frame_size, Some(100));
    assert!(!route.relay.validate_utf8);
    assert_eq!(route.relay.buffer_size, plain.relay.buffer_size);
    assert_eq!(route.connect_timeout, plain.connect_timeout);
    assert_eq!(route.extensions, plain.extensions);
}
