//! One rule for every string of a host file or a catalog file: one line of
//! printable text. A control character (NUL, newline, carriage return, tab,
//! escape, DEL, ...) in any key or value is reported at its own file:line:col,
//! before anything else reads the value, so no renderer, command line or
//! terminal ever sees one.
//!
//! Owns only that scan (over toml_edit's spanned document). It does not parse
//! the file's shape (serde does) nor judge values (`ident`, `resolve`).

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use crate::diag::{Diagnostic, FileId, Loc};

/// Every key and string value holding a control character. A file that is not
/// TOML yields nothing here; its syntax error is reported by the reader.
pub fn control_characters(file: FileId, text: &str) -> Vec<Diagnostic> {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    walk_table(doc.as_table(), &mut found);
    found
        .into_iter()
        .map(|(span, c)| {
            Diagnostic::at(
                Loc::new(file, span),
                format!("this string holds the control character {}", name(c)),
            )
            .hint("host and catalog files hold one line of printable text per string: remove the escape (\\u0000, \\n, \\r, \\t, ...)")
        })
        .collect()
}

fn first_control(s: &str) -> Option<char> {
    s.chars().find(|c| c.is_control())
}

fn name(c: char) -> String {
    let short = match c {
        '\0' => " (NUL)",
        '\n' => " (newline)",
        '\r' => " (carriage return)",
        '\t' => " (tab)",
        '\u{1b}' => " (escape)",
        '\u{7f}' => " (DEL)",
        _ => "",
    };
    format!("U+{:04X}{short}", c as u32)
}

fn walk_table(t: &dyn TableLike, found: &mut Vec<(Range<usize>, char)>) {
    for (k, item) in t.iter() {
        if let Some(c) = first_control(k) {
            let span = t
                .get_key_value(k)
                .and_then(|(key, _)| key.span())
                .or_else(|| item.span())
                .unwrap_or(0..0);
            found.push((span, c));
        }
        walk_item(item, found);
    }
}

fn walk_item(item: &Item, found: &mut Vec<(Range<usize>, char)>) {
    match item {
        Item::Value(v) => walk_value(v, found),
        Item::Table(t) => walk_table(t, found),
        Item::ArrayOfTables(a) => {
            for t in a.iter() {
                walk_table(t, found);
            }
        }
        Item::None => {}
    }
}

fn walk_value(v: &Value, found: &mut Vec<(Range<usize>, char)>) {
    match v {
        Value::String(s) => {
            if let Some(c) = first_control(s.value()) {
                found.push((v.span().unwrap_or(0..0), c));
            }
        }
        Value::Array(a) => {
            for x in a.iter() {
                walk_value(x, found);
            }
        }
        Value::InlineTable(t) => walk_table(t, found),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<&str> {
        control_characters(0, text)
            .into_iter()
            .map(|d| &text[d.loc.unwrap().span])
            .collect()
    }

    #[test]
    fn finds_control_characters_in_values_keys_arrays_and_inline_tables() {
        let text = r#"
ok = "plain"
boot = "/dev/disk/by-id/x\u0000"
list = ["fine", "two\nlines"]
[storage]
mounts."/mnt/a\tb" = { device = "LABEL=x", fs = "ext4" }
[[health]]
unit = "x\r.service"
multi = '''
a
b'''
"#;
        assert_eq!(
            spans(text),
            vec![
                "\"/dev/disk/by-id/x\\u0000\"",
                "\"two\\nlines\"",
                "\"/mnt/a\\tb\"",
                "\"x\\r.service\"",
                "'''\na\nb'''",
            ]
        );
    }

    #[test]
    fn clean_files_and_broken_toml_yield_nothing() {
        assert!(spans("a = \"b\"\n[t]\nc = [1, 'd']\n").is_empty());
        assert!(spans("a = \"unclosed\n").is_empty());
    }
}
