//! The text of `potato cache` results: the key `init` made and what to do
//! next, and `show`'s cache host, public key and each host's URL; the
//! `--json` documents. Only public facts (never the secret key). Pure:
//! builds strings.

use serde_json::json;

use crate::cache::ops::{Made, Shown};
use crate::ui::Output;

/// The key `cache init` made (nothing with --quiet; its warning is stderr's).
pub fn init(out: Output, made: &Made) -> String {
    if out.json {
        return format!("{}\n", json!({ "cache": made }));
    }
    if out.quiet {
        return String::new();
    }
    format!(
        "wrote {} and {}\npublic key {}\nnext: `potato gen`, then deploy {} first\n",
        made.secret, made.public_key_file, made.public_key, made.host
    )
}

/// `cache show`: the cache host, the public key, one line per consumer.
pub fn show(out: Output, shown: &Shown) -> String {
    if out.json {
        return format!("{}\n", json!({ "cache": shown }));
    }
    let mut o = format!(
        "cache host  {} (port {}, {}, priority {})\npublic key  {}\n",
        shown.host, shown.port, shown.dir, shown.priority, shown.public_key
    );
    for (host, url) in &shown.consumers {
        o.push_str(&format!("{host:<14} {url}\n"));
    }
    o
}
