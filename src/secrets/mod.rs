//! Secrets as the rest of potato sees them: references ("secret:NAME") and the
//! index of encrypted files under `secrets/`.
//!
//! Owns the reference syntax and where a secret's file lives. Encryption,
//! recipients and the on-host decryption join this module with the secrets issue;
//! no function here ever reads a secret's value.

pub mod store;

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};

use crate::fsguard::{FsError, Kind, RepoFs};

/// Where decrypted secrets appear on a host (tmpfs).
pub const RUNTIME_DIR: &str = "/run/potato-secrets";

/// Encrypted secret files present in the repository, and (for validation)
/// whom each is encrypted to.
#[derive(Debug, Default)]
pub struct SecretIndex {
    /// (scope, name): scope is a host name or "shared".
    files: BTreeSet<(String, String)>,
    /// When set, each use of a secret is checked to be encrypted to its host.
    pub coverage: Option<Coverage>,
}

/// What `resolve` needs to check that a host can decrypt what it uses.
#[derive(Debug, Default)]
pub struct Coverage {
    pub recipients: store::Recipients,
    /// Recorded recipients per secret file (repository-relative path).
    pub recorded: std::collections::BTreeMap<Utf8PathBuf, BTreeSet<String>>,
}

impl SecretIndex {
    /// Scans `secrets/<scope>/<name>.age`. A missing `secrets/` is an empty
    /// index. A link anywhere in `secrets/` or a scope directory is refused.
    pub fn scan(repo: &Utf8Path) -> Result<SecretIndex, FsError> {
        let mut idx = SecretIndex::default();
        let fs = RepoFs::open(repo)?;
        let root = Utf8Path::new("secrets");
        for (scope, kind) in fs.list(root)?.unwrap_or_default() {
            match kind {
                Kind::Dir => {}
                Kind::Symlink => {
                    fs.refuse_link(&root.join(&scope))?;
                    continue;
                }
                Kind::File | Kind::Other => continue,
            }
            let dir = root.join(&scope);
            for (file, kind) in fs.list(&dir)?.unwrap_or_default() {
                if kind == Kind::Symlink {
                    fs.refuse_link(&dir.join(&file))?;
                }
                if let Some(name) = file.strip_suffix(".age") {
                    idx.files.insert((scope.clone(), name.to_string()));
                }
            }
        }
        Ok(idx)
    }

    /// Adds the coverage check (recipients.toml and each file's sidecar).
    pub fn with_coverage(mut self, repo: &Utf8Path) -> Result<SecretIndex, store::SecretError> {
        let recipients = store::Recipients::load(repo)?;
        let mut recorded = std::collections::BTreeMap::new();
        for (scope, name) in &self.files {
            let rel = Utf8PathBuf::from(format!("secrets/{scope}/{name}.age"));
            let keys = store::recorded_recipients(repo, &rel)?;
            recorded.insert(rel, keys);
        }
        self.coverage = Some(Coverage {
            recipients,
            recorded,
        });
        Ok(self)
    }

    /// Every secret file, as (scope, name).
    pub fn files(&self) -> impl Iterator<Item = &(String, String)> {
        self.files.iter()
    }

    /// The file a host's reference resolves to: its own scope first, then shared.
    pub fn locate(&self, host: &str, name: &str) -> Option<Utf8PathBuf> {
        for scope in [host, "shared"] {
            if self.files.contains(&(scope.to_string(), name.to_string())) {
                return Some(Utf8PathBuf::from(format!("secrets/{scope}/{name}.age")));
            }
        }
        None
    }

    pub fn insert(&mut self, scope: &str, name: &str) {
        self.files.insert((scope.to_string(), name.to_string()));
    }
}

/// Parses "secret:NAME". Err explains the expected form.
pub fn parse_ref(text: &str) -> Result<&str, String> {
    let Some(name) = text.strip_prefix("secret:") else {
        return Err(format!(
            "`{text}` is not a secret reference; secrets are never written in host files"
        ));
    };
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "`{name}` is not a valid secret name: use lowercase letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(name)
}

/// Path of a decrypted secret on the host.
pub fn runtime_path(name: &str) -> String {
    format!("{RUNTIME_DIR}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs() {
        assert_eq!(parse_ref("secret:wg0"), Ok("wg0"));
        assert!(
            parse_ref("hunter2")
                .unwrap_err()
                .contains("not a secret reference")
        );
        assert!(parse_ref("secret:../etc").is_err());
        assert!(parse_ref("secret:").is_err());
    }

    #[test]
    fn host_scope_wins_over_shared() {
        let mut i = SecretIndex::default();
        i.insert("shared", "a");
        i.insert("n250", "a");
        assert_eq!(i.locate("n250", "a").unwrap(), "secrets/n250/a.age");
        assert_eq!(i.locate("lepotato", "a").unwrap(), "secrets/shared/a.age");
        assert!(i.locate("n250", "b").is_none());
    }
}
