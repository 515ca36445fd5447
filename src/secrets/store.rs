//! The encrypted store under `secrets/`: who may decrypt what, encrypting with
//! the age crate, and knowing whether a file's recipients are current.
//!
//! `secrets/recipients.toml` names the admins (age or SSH public keys; they can
//! decrypt everything) and each host's SSH host key. A secret is encrypted to the
//! admins plus exactly the hosts whose host files reference it; beside each
//! `NAME.age` a `NAME.recipients` file records the public keys it was encrypted
//! to, so `list` and `rekey` know what is stale without decrypting anything.
//! Plaintext exists only in memory here, never in a log or an error.
//!
//! Every file under `secrets/` is read and written through `fsguard`: a linked
//! `.age`, `.recipients` or recipients.toml is refused, so a file outside the
//! repository (an admin's key) can never be decrypted, re-encrypted or copied.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::str::FromStr;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

use crate::fsguard::{FsError, RepoFs};

/// `secrets/recipients.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    /// age ("age1...") or SSH ("ssh-ed25519 AAAA...") public keys of the people
    /// who can decrypt every secret.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Each host's SSH host public key ("ssh-ed25519 AAAA..."), by host name.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {message}")]
    File { path: Utf8PathBuf, message: String },
    #[error("`{key}` is not an age or SSH public key ({why})")]
    BadRecipient { key: String, why: String },
    #[error("no recipients: add admins to secrets/recipients.toml")]
    NoRecipients,
    #[error("cannot decrypt {path}: {why}")]
    Decrypt { path: Utf8PathBuf, why: String },
    #[error("no identity to decrypt with: {tried}")]
    NoIdentity { tried: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

pub const RECIPIENTS_FILE: &str = "secrets/recipients.toml";

impl Recipients {
    pub fn load(repo: &Utf8Path) -> Result<Recipients, SecretError> {
        let rel = Utf8Path::new(RECIPIENTS_FILE);
        match RepoFs::open(repo)?.read_string(rel)? {
            Some(text) => toml::from_str(&text).map_err(|e| SecretError::File {
                path: rel.to_path_buf(),
                message: e.to_string(),
            }),
            None => Ok(Recipients::default()),
        }
    }

    /// The public keys a secret used by `hosts` must be encrypted to, sorted.
    pub fn for_hosts<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = self.admins.iter().map(|k| normalize(k)).collect();
        for h in hosts {
            if let Some(k) = self.hosts.get(h) {
                keys.insert(normalize(k));
            }
        }
        keys
    }
}

/// A public key without its comment ("ssh-ed25519 AAAA..." keeps two fields).
pub fn normalize(key: &str) -> String {
    let key = key.trim();
    if key.starts_with("ssh-") {
        key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    } else {
        key.to_string()
    }
}

fn parse_recipient(key: &str) -> Result<Box<dyn age::Recipient + Send>, SecretError> {
    let bad = |why: String| SecretError::BadRecipient {
        key: key.chars().take(60).collect(),
        why,
    };
    if key.starts_with("age1") {
        age::x25519::Recipient::from_str(key)
            .map(|r| Box::new(r) as _)
            .map_err(|e| bad(e.to_string()))
    } else {
        age::ssh::Recipient::from_str(key)
            .map(|r| Box::new(r) as _)
            .map_err(|e| bad(format!("{e:?}")))
    }
}

/// Encrypts `plaintext` (ASCII-armored) to `keys`.
pub fn encrypt(plaintext: &[u8], keys: &BTreeSet<String>) -> Result<Vec<u8>, SecretError> {
    if keys.is_empty() {
        return Err(SecretError::NoRecipients);
    }
    let recipients = keys
        .iter()
        .map(|k| parse_recipient(k))
        .collect::<Result<Vec<_>, _>>()?;
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| SecretError::BadRecipient {
        key: "(set)".into(),
        why: e.to_string(),
    })?;
    let mut out = Vec::new();
    let io = |e: std::io::Error| SecretError::BadRecipient {
        key: "(write)".into(),
        why: e.to_string(),
    };
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(io)?;
    let mut w = encryptor.wrap_output(armor).map_err(io)?;
    w.write_all(plaintext).map_err(io)?;
    w.finish().and_then(|a| a.finish()).map_err(io)?;
    Ok(out)
}

/// Loads the identities an admin decrypts with: `explicit`, else
/// $POTATO_AGE_IDENTITY, ~/.config/potato/age.key, ~/.ssh/id_ed25519.
pub fn load_identities(
    explicit: Option<&Utf8Path>,
) -> Result<Vec<Box<dyn age::Identity>>, SecretError> {
    let mut candidates: Vec<Utf8PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else {
        if let Ok(p) = std::env::var("POTATO_AGE_IDENTITY") {
            candidates.push(p.into());
        }
        if let Some(home) = std::env::var_os("HOME") {
            let home = Utf8PathBuf::from(home.to_string_lossy().as_ref());
            candidates.push(home.join(".config/potato/age.key"));
            candidates.push(home.join(".ssh/id_ed25519"));
        }
    }
    let mut ids: Vec<Box<dyn age::Identity>> = Vec::new();
    for path in &candidates {
        let Ok(text) = std::fs::read(path) else {
            continue;
        };
        if text.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY") {
            let id = age::ssh::Identity::from_buffer(&text[..], Some(path.to_string())).map_err(
                |e| SecretError::File {
                    path: path.clone(),
                    message: e.to_string(),
                },
            )?;
            ids.push(Box::new(id));
        } else {
            let file =
                age::IdentityFile::from_buffer(&text[..]).map_err(|e| SecretError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            for id in file.into_identities().map_err(|e| SecretError::File {
                path: path.clone(),
                message: e.to_string(),
            })? {
                ids.push(id);
            }
        }
    }
    if ids.is_empty() {
        let tried = candidates
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(SecretError::NoIdentity {
            tried: if tried.is_empty() {
                "nothing".into()
            } else {
                tried
            },
        });
    }
    Ok(ids)
}

/// Decrypts the armored age file `rel` of the repository with the admin's
/// identities.
pub fn decrypt(
    repo: &Utf8Path,
    rel: &Utf8Path,
    identities: &[Box<dyn age::Identity>],
) -> Result<Vec<u8>, SecretError> {
    let fail = |why: String| SecretError::Decrypt {
        path: rel.to_path_buf(),
        why,
    };
    let data = RepoFs::open(repo)?
        .read(rel)?
        .ok_or_else(|| fail("no such file".into()))?;
    let dec = age::Decryptor::new(age::armor::ArmoredReader::new(&data[..]))
        .map_err(|e| fail(e.to_string()))?;
    let mut r = dec
        .decrypt(identities.iter().map(|i| i.as_ref()))
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// The `.recipients` sidecar of an `.age` file.
pub fn sidecar(age_file: &Utf8Path) -> Utf8PathBuf {
    age_file.with_extension("recipients")
}

/// The recipients the repository's `.age` file `rel` was encrypted to (empty if
/// unknown).
pub fn recorded_recipients(
    repo: &Utf8Path,
    rel: &Utf8Path,
) -> Result<BTreeSet<String>, SecretError> {
    let text = RepoFs::open(repo)?
        .read_string(&sidecar(rel))?
        .unwrap_or_default();
    Ok(text
        .lines()
        .map(normalize)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect())
}

/// Sets `host = "KEY"` under [hosts] in secrets/recipients.toml, replacing the
/// host's line if there is one and keeping everything else (comments too).
pub fn set_host_key(repo: &Utf8Path, host: &str, key: &str) -> Result<(), SecretError> {
    let fs = RepoFs::open(repo)?;
    let path = Utf8Path::new(RECIPIENTS_FILE);
    let text = fs.read_string(path)?.ok_or_else(|| SecretError::File {
        path: path.to_path_buf(),
        message: "missing".into(),
    })?;
    let line = format!("{host} = \"{key}\"");
    let mut out: Vec<String> = Vec::new();
    let mut in_hosts = false;
    let mut done = false;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            if in_hosts && !done {
                out.push(line.clone());
                done = true;
            }
            in_hosts = t == "[hosts]";
        }
        let is_host_line = in_hosts
            && t.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == host);
        if is_host_line {
            if !done {
                out.push(line.clone());
                done = true;
            }
            continue;
        }
        out.push(l.to_string());
    }
    if !done {
        if !in_hosts {
            out.push("[hosts]".into());
        }
        out.push(line);
    }
    fs.write_atomic(path, (out.join("\n") + "\n").as_bytes(), 0o644)?;
    Ok(())
}

/// Writes the repository's `.age` file `rel` and its sidecar, each atomically
/// (temporary file + rename, never through a link).
pub fn write_secret(
    repo: &Utf8Path,
    rel: &Utf8Path,
    ciphertext: &[u8],
    keys: &BTreeSet<String>,
) -> Result<(), SecretError> {
    let fs = RepoFs::open(repo)?;
    let mut listing = String::from(
        "# Public keys this secret is encrypted to (written by potato; do not edit).\n",
    );
    for k in keys {
        listing.push_str(k);
        listing.push('\n');
    }
    fs.write_atomic(rel, ciphertext, 0o644)?;
    fs.write_atomic(&sidecar(rel), listing.as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_an_age_identity() {
        let id = age::x25519::Identity::generate();
        let keys: BTreeSet<String> = [id.to_public().to_string()].into();
        let ct = encrypt(b"hunter2", &keys).unwrap();
        assert!(ct.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        let dir = tempfile::tempdir().unwrap();
        let repo = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        let f = Utf8Path::new("secrets/h/x.age");
        write_secret(&repo, f, &ct, &keys).unwrap();
        assert_eq!(recorded_recipients(&repo, f).unwrap(), keys);
        let ids: Vec<Box<dyn age::Identity>> = vec![Box::new(id)];
        assert_eq!(decrypt(&repo, f, &ids).unwrap(), b"hunter2");
        let other: Vec<Box<dyn age::Identity>> = vec![Box::new(age::x25519::Identity::generate())];
        assert!(
            decrypt(&repo, f, &other).is_err(),
            "a non-recipient cannot decrypt"
        );
    }

    #[test]
    fn tampered_ciphertext_is_an_error() {
        let id = age::x25519::Identity::generate();
        let keys: BTreeSet<String> = [id.to_public().to_string()].into();
        let mut ct = encrypt(b"hunter2", &keys).unwrap();
        let n = ct.len();
        ct[n - 60] = if ct[n - 60] == b'A' { b'B' } else { b'A' };
        let dir = tempfile::tempdir().unwrap();
        let repo = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        std::fs::write(repo.join("x.age"), &ct).unwrap();
        let ids: Vec<Box<dyn age::Identity>> = vec![Box::new(id)];
        let err = decrypt(&repo, Utf8Path::new("x.age"), &ids)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot decrypt"), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn recipients_normalize_and_reject_garbage() {
        assert_eq!(normalize("ssh-ed25519 AAAAC3 root@x"), "ssh-ed25519 AAAAC3");
        assert!(encrypt(b"x", &["not-a-key".to_string()].into()).is_err());
        assert!(matches!(
            encrypt(b"x", &BTreeSet::new()),
            Err(SecretError::NoRecipients)
        ));
    }
}
