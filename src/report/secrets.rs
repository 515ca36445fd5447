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
