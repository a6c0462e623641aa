//! The one-upstream command line written as a configuration document, so its flags are
//! loaded by the file's loader and a bad value fails with the same message as in a file.

use super::defaults;

/// The table of the document a flag sets a key in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `[server]`: process-wide settings.
    Server,
    /// `[defaults]`: the tuning keys of relayed connections.
    Defaults,
    /// The one `[[listeners]]` entry.
    Listener,
    /// The one `[[routes]]` entry, which takes every path.
    Route,
    /// `[admin]`: the admin listener.
    Admin,
}

/// How a flag's value is written into the document, as a user would write it in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A quoted string: durations, addresses, URIs.
    Text,
    /// An integer when the value is one, else a quoted string, so a flag that is not a number
    /// gets the type error a file gets for a string where a number belongs.
    Integer,
    /// `true` or `false` (anything else quoted, for the same reason).
    Switch,
}

/// One key the command line sets.
#[derive(Debug, Clone)]
struct Entry {
    table: Table,
    key: String,
    /// The value, already written as TOML.
    value: String,
    /// The flag and value errors name (`--buffer-size 100`); `None` if no flag gave it.
    flag: Option<String>,
}

/// The one-upstream configuration as flags describe it: one listener (at
/// [`defaults::LISTEN`] unless set), one route for every path, and the `[server]` and
/// `[defaults]` keys the flags set. [`from_flags`](super::from_flags) loads it.
#[derive(Debug, Clone, Default)]
pub struct FlagDocument {
    entries: Vec<Entry>,
}

impl FlagDocument {
    /// A document with no key set yet.
    pub fn new() -> FlagDocument {
        FlagDocument::default()
    }

    /// Sets `key` of `table` to `value`, written as `kind`. `flag` is what errors about this
    /// value name (`--connect-timeout abc`); `None` for a value no flag gave (the demo echo's
    /// URI).
    pub fn set(&mut self, table: Table, key: &str, value: &str, kind: Kind, flag: Option<String>) {
        let literal = match kind {
            Kind::Integer if value.parse::<i64>().is_ok() => value.to_owned(),
            Kind::Switch if value == "true" || value == "false" => value.to_owned(),
            _ => quote(value),
        };
        self.entries.push(Entry {
            table,
            key: key.to_owned(),
            value: literal,
            flag,
        });
    }

    /// The document's text, as the loader reads it (what the routes API edits when the
    /// gateway has no file).
    pub fn text(&self) -> String {
        self.render().0
    }

    /// The document's text and, for each of its lines, the flag that wrote it.
    pub(super) fn render(&self) -> (String, Vec<Option<String>>) {
        let mut text = String::new();
        let mut flags = Vec::new();
        let mut line = |text: &mut String, content: &str, flag: Option<String>| {
            text.push_str(content);
            text.push('\n');
            flags.push(flag);
        };
        let has_address = self
            .entries
            .iter()
            .any(|e| e.table == Table::Listener && e.key == "address");
        let tables = [
            (Table::Server, "[server]"),
            (Table::Defaults, "[defaults]"),
            (Table::Listener, "[[listeners]]"),
            (Table::Route, "[[routes]]"),
            (Table::Admin, "[admin]"),
        ];
        for (table, header) in tables {
            // `[admin]` only when a flag sets it: no admin listener otherwise.
            if table == Table::Admin && !self.entries.iter().any(|e| e.table == table) {
                continue;
            }
            line(&mut text, header, None);
            match table {
                Table::Listener if !has_address => {
                    let address = format!("address = {}", quote(defaults::LISTEN));
                    line(&mut text, &address, None);
                }
                Table::Route => {
                    line(&mut text, "name = \"default\"", None);
                    line(&mut text, "path_prefix = \"/\"", None);
                }
                _ => {}
            }
            for e in self.entries.iter().filter(|e| e.table == table) {
                line(
                    &mut text,
                    &format!("{} = {}", e.key, e.value),
                    e.flag.clone(),
                );
            }
        }
        (text, flags)
    }
}

/// A TOML basic string on one line (so each line of the document has one flag).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_a_file_would_have_them_one_line_each() {
        let mut doc = FlagDocument::new();
        let flag = |s: &str| Some(s.to_owned());
        doc.set(
            Table::Server,
            "workers",
            "2",
            Kind::Integer,
            flag("--workers 2"),
        );
        doc.set(
            Table::Defaults,
            "buffer_size",
            "x",
            Kind::Integer,
            flag("--buffer-size x"),
        );
        doc.set(
            Table::Defaults,
            "validate_utf8",
            "false",
            Kind::Switch,
            None,
        );
        doc.set(Table::Route, "upstream", "ws://a\n\"b\\", Kind::Text, None);
        let (text, flags) = doc.render();
        assert_eq!(
            text,
            "[server]\nworkers = 2\n[defaults]\nbuffer_size = \"x\"\nvalidate_utf8 = false\n\
             [[listeners]]\naddress = \"127.0.0.1:8080\"\n[[routes]]\nname = \"default\"\n\
             path_prefix = \"/\"\nupstream = \"ws://a\\u000A\\\"b\\\\\"\n"
        );
        assert_eq!(flags.len(), text.lines().count());
        assert_eq!(flags[1].as_deref(), Some("--workers 2"));
        assert_eq!(flags[3].as_deref(), Some("--buffer-size x"));
        assert!(text.parse::<toml::Table>().is_ok());
    }
}
