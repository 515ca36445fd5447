//! Test kit for the section tests: a fleet of host files written as small TOML
//! snippets over one valid base host, parsed by `Inventory::add_host_file` and
//! resolved by `resolve::resolve`, the path `potato check` takes. Owns nothing
//! outside tests; it never touches the filesystem.

use camino::Utf8PathBuf;
use toml_edit::DocumentMut;

use crate::catalog::Catalog;
use crate::diag::Diagnostic;
use crate::inventory::Inventory;
use crate::plan::HostPlan;
use crate::secrets::SecretIndex;
use crate::secrets::store::Recipients;

/// A valid host: SSH admitted from anywhere, one authorized key, nothing else.
/// Documentation addresses (RFC 5737) only: nothing here is ever reached.
pub const BASE: &str = r#"system = "x86_64-linux"
hardware = "n250"
memory = "4GiB"

[deploy]
target = "root@192.0.2.10"

[firewall]
rules = ["allow 22/tcp from any"]

[ssh]
authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp admin@laptop"]
"#;

/// An SSH host key for the coverage checks (a valid ed25519 public key).
pub const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp";

/// WireGuard public keys (44 characters of base64, last character `=`).
pub const WG_KEY_A: &str = "KAvvvZodlOnkhEvElyx3PJdozphdyEKIXCVG2XLO5D8=";
pub const WG_KEY_B: &str = "ckfsZwPiTa5gDjLe2BlAQIIgq53bnli+kGacbTajKwY=";

/// Host files and the secrets present, before resolution.
#[derive(Default)]
pub struct Fleet {
    hosts: Vec<(String, String)>,
    secrets: SecretIndex,
}

/// The result of resolving a fleet, with its sources for span checks.
pub struct Outcome {
    pub inv: Inventory,
    pub result: Result<Vec<HostPlan>, Vec<Diagnostic>>,
}

/// `BASE` with `snippet` laid over it: each top-level key or table of the
/// snippet replaces the base's whole key or table of that name.
pub fn host_text(snippet: &str) -> String {
    let mut doc: DocumentMut = BASE.parse().expect("BASE is TOML");
    let over: DocumentMut = snippet.parse().expect("the snippet is TOML");
    for (key, item) in over.iter() {
        doc.insert(key, item.clone());
    }
    doc.to_string()
}

/// One host named `name`: `BASE` with `snippet` over it, resolved alone.
pub fn one(name: &str, snippet: &str) -> Outcome {
    Fleet::default().host(name, snippet).resolve()
}

impl Fleet {
    /// Adds `hosts/<name>.toml` = `BASE` with `snippet` over it.
    pub fn host(mut self, name: &str, snippet: &str) -> Fleet {
        self.hosts.push((name.to_string(), host_text(snippet)));
        self
    }

    /// `secrets/<scope>/<name>.age` exists.
    pub fn secret(mut self, scope: &str, name: &str) -> Fleet {
        self.secrets.insert(scope, name);
        self
    }

    /// Turns on the coverage check: `host_keys` are recipients.toml's [hosts],
    /// `recorded` the recipients recorded for each secret file path.
    pub fn coverage(mut self, host_keys: &[(&str, &str)], recorded: &[(&str, &[&str])]) -> Fleet {
        let mut recipients = Recipients::default();
        for (h, k) in host_keys {
            recipients.hosts.insert(h.to_string(), k.to_string());
        }
        self.secrets.coverage = Some(crate::secrets::Coverage {
            recipients,
            recorded: recorded
                .iter()
                .map(|(p, keys)| {
                    let keys = keys
                        .iter()
                        .map(|k| crate::secrets::store::normalize(k))
                        .collect();
                    (Utf8PathBuf::from(*p), keys)
                })
                .collect(),
        });
        self
    }

    pub fn resolve(self) -> Outcome {
        let mut inv = Inventory {
            sources: Default::default(),
            hosts: Vec::new(),
            diagnostics: Vec::new(),
        };
        for (name, text) in self.hosts {
            inv.add_host_file(Utf8PathBuf::from(format!("hosts/{name}.toml")), text);
        }
        let result = super::resolve(&inv, &Catalog::builtin(), &self.secrets);
        Outcome { inv, result }
    }
}

impl Outcome {
    fn diags(&self) -> &[Diagnostic] {
        match &self.result {
            Ok(_) => &[],
            Err(d) => d,
        }
    }

    fn listing(&self) -> String {
        self.diags()
            .iter()
            .map(|d| format!("  {} [{}]", d.message, self.span_of(d)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The plans; panics with every diagnostic when resolution failed.
    pub fn plans(&self) -> &[HostPlan] {
        match &self.result {
            Ok(p) => p,
            Err(_) => panic!("expected a valid fleet, got:\n{}", self.listing()),
        }
    }

    /// The one plan of a one-host fleet.
    pub fn plan(&self) -> &HostPlan {
        &self.plans()[0]
    }

    /// The diagnostic whose message contains `part`; panics listing all others.
    pub fn error(&self, part: &str) -> &Diagnostic {
        self.diags()
            .iter()
            .find(|d| d.message.contains(part))
            .unwrap_or_else(|| panic!("no diagnostic with `{part}`; got:\n{}", self.listing()))
    }

    /// The source text a diagnostic points at ("" for a file-level one).
    pub fn span_of(&self, d: &Diagnostic) -> &str {
        match &d.loc {
            Some(loc) => self
                .inv
                .sources
                .text(loc.file)
                .get(loc.span.clone())
                .unwrap_or("<bad span>"),
            None => "",
        }
    }

    /// The file name a diagnostic points at.
    pub fn file_of(&self, d: &Diagnostic) -> &str {
        d.loc
            .as_ref()
            .map(|l| self.inv.sources.name(l.file))
            .unwrap_or("")
    }

    /// The one diagnostic pointing at exactly `span`; panics listing all.
    pub fn diags_at(&self, span: &str) -> &Diagnostic {
        let hits: Vec<&Diagnostic> = self
            .diags()
            .iter()
            .filter(|d| self.span_of(d) == span)
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "diagnostics at `{span}`:\n{}",
            self.listing()
        );
        hits[0]
    }

    /// Asserts a diagnostic containing `message` that points at exactly `span`.
    pub fn assert_error(&self, message: &str, span: &str) -> &Diagnostic {
        let d = self.error(message);
        assert_eq!(self.span_of(d), span, "span of `{}`", d.message);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_host_is_valid() {
        let out = one("base", "");
        assert_eq!(out.plan().name, "base");
    }

    #[test]
    fn a_snippet_replaces_whole_tables() {
        let text = host_text("[firewall]\nrules = []\n");
        assert!(!text.contains("allow 22/tcp"), "{text}");
        assert!(text.contains("authorized_keys"), "{text}");
    }
}
