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
    let mut out = String::new();
    for line in header.lines() {
        super::single_line(Format::Json, line, &['\t'])?;
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&json(value)?);
    Ok(out)
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
}
