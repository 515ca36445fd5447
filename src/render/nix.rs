//! Nix source text: the native format of every generated `.nix` file (the
//! `render::format` module of Nix; it lives here because the template filter
//! uses it). The one place where data becomes Nix.
//!
//! `escape_into` is the only function in potato that escapes a string for Nix;
//! everything else (the `nix` template filter, tera's autoescape, attribute names,
//! disko.nix, hardware.nix) goes through it. Inside "..." Nix interprets `\`, `"`
//! and `${`; we escape every `$` (so `${` and `$${` cannot start interpolation),
//! newline/CR/tab as escapes, and refuse NUL, which Nix strings cannot hold.
//! `comment` writes text for people into a `#` comment, which ends at a line
//! break, so it escapes line breaks and other control characters instead.

use serde_json::Value;

use crate::render::format::{Format, Problem, Refused};

/// A value that cannot be written as Nix (the only case: NUL).
pub type NulInString = Refused;

fn nul(s: &str) -> Refused {
    Refused::new(Format::Nix, s, Problem::Nul)
}

/// Escapes `s` for the inside of a Nix double-quoted string.
pub fn escape_into(s: &str, out: &mut String) -> Result<(), NulInString> {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => return Err(nul(s)),
            c => out.push(c),
        }
    }
    Ok(())
}

/// `s` as a complete Nix string literal, quotes included.
pub fn string(s: &str) -> Result<String, NulInString> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    escape_into(s, &mut out)?;
    out.push('"');
    Ok(out)
}

/// `text` as the rest of a `# ` comment line: always one line. Backslash and
/// control characters (line breaks included) are written as Rust-style
/// escapes (`\\`, `\n`, `\u{2028}`), so the comment reads back unambiguously
/// and nothing after it becomes code.
pub fn comment(text: &str) -> String {
    crate::render::format::comment_text(text)
}

const KEYWORDS: &[&str] = &[
    "if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or",
];

/// An attribute name: bare when Nix allows it, else a quoted string.
pub fn attr_name(name: &str) -> Result<String, NulInString> {
    let mut chars = name.chars();
    let bare = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
        && !KEYWORDS.contains(&name);
    if bare {
        Ok(name.to_string())
    } else {
        string(name)
    }
}

/// Renders a JSON value as a Nix expression, pretty-printed for a line that is
/// already indented by `indent` levels of two spaces.
pub fn literal(v: &Value, indent: usize) -> Result<String, NulInString> {
    let mut out = String::new();
    write_value(v, indent, &mut out)?;
    Ok(out)
}

fn write_value(v: &Value, indent: usize, out: &mut String) -> Result<(), NulInString> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&string(s)?),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[ ]");
                return Ok(());
            }
            let scalars = items.iter().all(|i| !i.is_array() && !i.is_object());
            let inline: Option<String> = if scalars {
                let parts = items
                    .iter()
                    .map(|i| literal(i, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                let line = format!("[ {} ]", parts.join(" "));
                (line.len() <= 72).then_some(line)
            } else {
                None
            };
            match inline {
                Some(line) => out.push_str(&line),
                None => {
                    out.push_str("[\n");
                    for i in items {
                        push_indent(out, indent + 1);
                        write_value(i, indent + 1, out)?;
                        out.push('\n');
                    }
                    push_indent(out, indent);
                    out.push(']');
                }
            }
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{ }");
                return Ok(());
            }
            out.push_str("{\n");
            for (k, val) in map {
                push_indent(out, indent + 1);
                out.push_str(&attr_name(k)?);
                out.push_str(" = ");
                write_value(val, indent + 1, out)?;
                out.push_str(";\n");
            }
            push_indent(out, indent);
            out.push('}');
        }
    }
    Ok(())
}

fn push_indent(out: &mut String, levels: usize) {
    for _ in 0..levels {
        out.push_str("  ");
    }
}

/// Test helper: asserts `text` parses as Nix (`nix-instantiate --parse`), or
/// says it was skipped when Nix is not installed.
#[cfg(test)]
pub fn assert_parses(text: &str) {
    let Ok(nix_instantiate) = crate::tools::find(crate::tools::Program::NixInstantiate) else {
        eprintln!("SKIPPED parse: nix-instantiate is not installed");
        return;
    };
    match std::process::Command::new(nix_instantiate)
        .args(["--parse", "-E", text])
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "does not parse:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("SKIPPED parse: nix-instantiate is not installed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_the_dangerous_characters() {
        assert_eq!(string(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(string("${x}").unwrap(), r#""\${x}""#);
        assert_eq!(string("$${x}").unwrap(), r#""\$\${x}""#);
        assert_eq!(string("l1\nl2\t\r").unwrap(), r#""l1\nl2\t\r""#);
        assert_eq!(string("''").unwrap(), r#""''""#);
        assert!(string("a\0b").is_err());
    }

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(
            comment("/mnt/x on /dev/sda (ext4)"),
            "/mnt/x on /dev/sda (ext4)"
        );
        assert_eq!(comment("/x\n}; y = 1; #"), "/x\\n}; y = 1; #");
        assert_eq!(comment("a\u{2028}b\0\\"), "a\\u{2028}b\\0\\\\");
    }

    #[test]
    fn attribute_names() {
        assert_eq!(attr_name("enp1s0").unwrap(), "enp1s0");
        assert_eq!(attr_name("node-exporter").unwrap(), "node-exporter");
        assert_eq!(attr_name("/mnt/ssd").unwrap(), r#""/mnt/ssd""#);
        assert_eq!(attr_name("in").unwrap(), r#""in""#);
        assert_eq!(attr_name("1st").unwrap(), r#""1st""#);
    }

    #[test]
    fn pretty_prints() {
        let v = json!({"a": [1, 2], "b c": {"d": null, "e": true}, "f": []});
        assert_eq!(
            literal(&v, 0).unwrap(),
            "{\n  a = [ 1 2 ];\n  \"b c\" = {\n    d = null;\n    e = true;\n  };\n  f = [ ];\n}"
        );
    }
}
