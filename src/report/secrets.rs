//! The text of `potato secrets` results: files written (with a public key
//! when the value has one), files rekeyed, a recorded host key, and the list
//! of secrets. Only file names and public keys: a value never reaches this
//! module. Pure: builds strings, prints nothing.

use std::fmt::Write as _;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;

use crate::ops::secrets::Listed;
use crate::ui::Output;

/// A file written, and the public half of its new value when it has one.
pub fn wrote(out: Output, file: &Utf8Path, public: Option<&str>) -> String {
    if out.json {
        return format!("{}\n", json!({ "file": file, "public_key": public }));
    }
    let mut o = format!("wrote {file}\n");
    if let Some(p) = public {
        let _ = writeln!(o, "public_key = \"{p}\"");
    }
    o
}

/// An edit that changed nothing (nothing at all with --quiet).
pub fn unchanged(out: Output, file: &Utf8Path) -> String {
    if out.quiet {
        String::new()
    } else {
        format!("{file} unchanged\n")
    }
}

/// The files rekeyed and how many (nothing with --quiet).
pub fn rekeyed(out: Output, rewritten: &[Utf8PathBuf]) -> String {
    if out.json {
        return format!("{}\n", json!({ "rekeyed": rewritten }));
    }
    if out.quiet {
        return String::new();
    }
    let mut o = String::new();
    for f in rewritten {
        let _ = writeln!(o, "rekeyed {f}");
    }
    let _ = writeln!(
        o,
        "{} secret{} rekeyed",
        rewritten.len(),
        if rewritten.len() == 1 { "" } else { "s" }
    );
    o
}

/// A host's pre-generated key: the rekey it caused and where its public key
/// was recorded.
pub fn host_key(out: Output, host: &str, public: &str, rewritten: &[Utf8PathBuf]) -> String {
    if out.json {
        return format!("{}\n", json!({ "host": host, "public_key": public }));
    }
    let mut o = rekeyed(out, rewritten);
    let _ = writeln!(
        o,
        "{host} = \"{public}\" recorded in secrets/recipients.toml"
    );
    o
}

/// Every secret file, who uses it, its recipients and whether it needs a rekey.
pub fn list(out: Output, rows: &[Listed]) -> String {
    if out.json {
        return format!("{}\n", json!({ "secrets": rows }));
    }
    let mut o = format!(
        "{:<36} {:<28} {:>10}  state\n",
        "file", "used by", "recipients"
    );
    for r in rows {
        let _ = writeln!(
            o,
            "{:<36} {:<28} {:>10}  {}",
            r.file,
            if r.used_by.is_empty() {
                "(unused)".into()
            } else {
                r.used_by.join(",")
            },
            r.recipients,
            if r.up_to_date { "ok" } else { "needs rekey" }
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(json: bool, quiet: bool) -> Output {
        Output {
            json,
            quiet,
            verbose: 0,
        }
    }

    #[test]
    fn quiet_shows_no_rekey_but_still_where_a_host_key_was_recorded() {
        let files = vec![Utf8PathBuf::from("secrets/n250/a.age")];
        assert_eq!(rekeyed(out(false, true), &files), "");
        assert_eq!(
            host_key(out(false, true), "n250", "ssh-ed25519 AAAA", &files),
            "n250 = \"ssh-ed25519 AAAA\" recorded in secrets/recipients.toml\n"
        );
        let shown = rekeyed(out(false, false), &files);
        assert!(shown.starts_with("rekeyed secrets/n250/a.age\n"), "{shown}");
        assert!(shown.ends_with("1 secret rekeyed\n"), "{shown}");
        assert!(rekeyed(out(false, false), &[]).ends_with("0 secrets rekeyed\n"));
    }

    #[test]
    fn json_is_one_document_a_line() {
        let v: serde_json::Value = serde_json::from_str(&host_key(
            out(true, false),
            "n250",
            "ssh-ed25519 AAAA",
            &[Utf8PathBuf::from("secrets/n250/a.age")],
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({ "host": "n250", "public_key": "ssh-ed25519 AAAA" })
        );
        let v: serde_json::Value = serde_json::from_str(&wrote(
            out(true, false),
            Utf8Path::new("secrets/x.age"),
            None,
        ))
        .unwrap();
        assert_eq!(v["public_key"], serde_json::Value::Null);
    }

    #[test]
    fn unused_and_stale_secrets_are_marked() {
        let rows = [Listed {
            file: "secrets/shared/old.age".into(),
            name: "old".into(),
            used_by: Vec::new(),
            recipients: 2,
            up_to_date: false,
        }];
        let text = list(out(false, false), &rows);
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("secrets/shared/old.age "), "{row}");
        assert!(row.contains(" (unused) "), "{row}");
        assert!(row.ends_with("2  needs rekey"), "{row}");
    }
}
