//! JSON, and YAML as JSON: the serializer for every structured file potato
//! writes (deploy.json, containers.json, exposure.json, and the coming
//! Traefik, Prometheus, Alertmanager and authentik configs). Owns the text;
//! callers build `serde` values, never templates.
//!
//! JSON is YAML 1.2, so a YAML config is written as JSON with a `#` header.
//! serde_json escapes `"`, `\` and C0 controls; this writer also escapes the
//! characters YAML readers do not take raw inside a quoted scalar: DEL, C1
//! controls, NEL, U+2028/U+2029 (line breaks to libyaml, which go-yaml and
//! PyYAML derive from) and U+FEFF/U+FFFE/U+FFFF. So every string reads back
//! exactly in either language, and no value can end a line. (serde_yaml is
//! deprecated and serde_yml unmaintained; JSON needs no new dependency.)
//!
//! Some readers define their own YAML tags (authentik's blueprints: `!Find`,
//! `!KeyOf`). `tagged_yaml` writes a `Node` tree in the same JSON-shaped flow
//! style with a local tag in front of a node (`"provider": !KeyOf "p1"`), which
//! YAML 1.2 allows before any flow node (spec 6.9.1, "Node Tags"); tag names
//! are checked (`Tag::new`), and every string still goes through `json`.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use super::{Format, Problem, Refused};

/// `value` as pretty JSON (two-space indent), with a final newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, Refused> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, YamlSafe(PrettyFormatter::new()));
    value.serialize(&mut ser).map_err(|e| {
        Refused::new(
            Format::Json,
            &e.to_string(),
            Problem::Shape("representable as JSON (maps need string keys)"),
        )
    })?;
    out.push(b'\n');
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// `value` as a YAML document: `# header` lines, then the JSON text.
pub fn yaml<T: Serialize + ?Sized>(header: &str, value: &T) -> Result<String, Refused> {
    let mut out = comment_lines(header)?;
    out.push_str(&json(value)?);
    Ok(out)
}

/// Each line of `header` as a `# ` comment line.
fn comment_lines(header: &str) -> Result<String, Refused> {
    let mut out = String::new();
    for line in header.lines() {
        super::single_line(Format::Json, line, &['\t'])?;
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// A local YAML tag: `!` and an ASCII letter, then letters and digits
/// (authentik's tags, e.g. `!KeyOf`, are all of this shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    /// Refuses anything but `!` + letter + letters/digits, so a tag can never
    /// end the node, start a comment or hold a URI escape.
    pub fn new(name: &str) -> Result<Tag, Refused> {
        let ok = name.strip_prefix('!').is_some_and(|rest| {
            let mut chars = rest.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric())
        });
        if ok {
            Ok(Tag(name.to_string()))
        } else {
            Err(Refused::new(
                Format::Json,
                name,
                Problem::Shape("a local YAML tag (`!` and ASCII letters and digits)"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A YAML node: plain JSON data, or a sequence, mapping or tagged node whose
/// parts are nodes themselves. Mapping keys keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Plain(serde_json::Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
    Tagged(Tag, Box<Node>),
}

impl Node {
    /// A plain string scalar.
    pub fn str(s: impl Into<String>) -> Node {
        Node::Plain(serde_json::Value::String(s.into()))
    }

    /// `tag value`.
    pub fn tagged(tag: Tag, value: Node) -> Node {
        Node::Tagged(tag, Box::new(value))
    }

    /// A mapping from `(key, node)` pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Node)>) -> Node {
        Node::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// `node` as a YAML document: `# header` lines, then the node in JSON-shaped
/// flow style with tags, two-space indented, ending in a newline. A mapping
/// with a repeated key is refused (YAML requires unique keys).
pub fn tagged_yaml(header: &str, node: &Node) -> Result<String, Refused> {
    let mut out = comment_lines(header)?;
    write_node(&mut out, node, 0)?;
    out.push('\n');
    Ok(out)
}

fn write_node(out: &mut String, node: &Node, depth: usize) -> Result<(), Refused> {
    let pad = |n: usize| "  ".repeat(n);
    match node {
        Node::Plain(v) => {
            let text = json(v)?;
            let text = text.trim_end_matches('\n');
            // Strings never hold a raw line break (escaped by `json`), so
            // every line break here is structure: indent it.
            out.push_str(&text.replace('\n', &format!("\n{}", pad(depth))));
        }
        Node::Tagged(tag, inner) => {
            out.push_str(tag.as_str());
            out.push(' ');
            write_node(out, inner, depth)?;
        }
        Node::Seq(items) if items.is_empty() => out.push_str("[]"),
        Node::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                out.push_str(&pad(depth + 1));
                write_node(out, item, depth + 1)?;
            }
            out.push('\n');
            out.push_str(&pad(depth));
            out.push(']');
        }
        Node::Map(pairs) if pairs.is_empty() => out.push_str("{}"),
        Node::Map(pairs) => {
            let mut seen = std::collections::BTreeSet::new();
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if !seen.insert(key.as_str()) {
                    return Err(Refused::new(
                        Format::Json,
                        key,
                        Problem::Shape("a key used once in its mapping"),
                    ));
                }
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                out.push_str(&pad(depth + 1));
                out.push_str(json(key)?.trim_end_matches('\n'));
                out.push_str(": ");
                write_node(out, value, depth + 1)?;
            }
            out.push('\n');
            out.push_str(&pad(depth));
            out.push('}');
        }
    }
    Ok(())
}

/// Characters that must be `\u` escapes for YAML readers.
fn yaml_escaped(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// serde_json's pretty printer, writing `yaml_escaped` characters as `\uXXXX`.
struct YamlSafe(PrettyFormatter<'static>);

impl Formatter for YamlSafe {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if yaml_escaped(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as j;

    #[test]
    fn pretty_like_serde_json_with_yaml_breaks_escaped() {
        let v = j!({"a": [1, "x\u{2028}y\u{7f}"], "b": {}});
        let text = json(&v).unwrap();
        assert_eq!(
            text,
            "{\n  \"a\": [\n    1,\n    \"x\\u2028y\\u007f\"\n  ],\n  \"b\": {}\n}\n"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(yaml("h", &j!([])).unwrap(), "# h\n[]\n");
        assert_eq!(
            yaml("h\nx: 1", &j!([])).unwrap(),
            "# h\n# x: 1\n[]\n",
            "every header line is a comment"
        );
        assert!(yaml("h\rx: 1", &j!([])).is_err());
    }

    #[test]
    fn tagged_nodes_are_written_in_flow_style_with_checked_tags() {
        let key_of = Tag::new("!KeyOf").unwrap();
        let node = Node::map([
            ("a", Node::tagged(key_of.clone(), Node::str("p\u{2028}1"))),
            (
                "b",
                Node::Seq(vec![Node::Plain(j!({"x": [1]})), Node::Seq(vec![])]),
            ),
        ]);
        assert_eq!(
            tagged_yaml("h", &node).unwrap(),
            "# h\n{\n  \"a\": !KeyOf \"p\\u20281\",\n  \"b\": [\n    {\n      \"x\": [\n        1\n      ]\n    },\n    []\n  ]\n}\n"
        );
        for bad in ["KeyOf", "!", "!1a", "!Key Of", "!Key,Of", "!Key#", "!é"] {
            assert!(Tag::new(bad).is_err(), "{bad:?}");
        }
        let twice = Node::map([("k", Node::str("1")), ("k", Node::str("2"))]);
        assert!(tagged_yaml("h", &twice).is_err());
    }
}
