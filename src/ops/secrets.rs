//! The age-encrypted store as the fleet sees it: which hosts use which secret
//! file (`Context`), where a name goes (`file_for`), storing a value to the
//! recipients it needs, listing, rekeying, editing through a private scratch
//! copy (`scratch`), generating values, and the hosts' pre-generated SSH host
//! keys (`host_key`, `pregenerated_host_key`).
//!
//! Who a secret is encrypted to is derived, never maintained by hand: the admins
//! of secrets/recipients.toml plus every host whose host file references it.
//! Values never reach stdout, stderr, argv or a log; generating prints nothing
//! (the commands show only public keys). Host names are checked before they
//! become paths.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::error::Error;
use crate::fsguard::RepoFs;
use crate::secrets::store::{self, Recipients};
use crate::secrets::{SecretIndex, parse_ref};
use crate::{inventory, repo, resolve};

pub mod scratch;

/// Which file a secret name means: the host's own, a shared one, or (neither
/// given) the one that exists or the one host that uses it.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub host: Option<String>,
    pub shared: bool,
}

/// The kinds of value `generate` makes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A WireGuard private key (its public key is returned for the host file).
    Wireguard,
    /// 32 characters from an unambiguous alphabet.
    Password,
    /// 32 random bytes, hex.
    Token,
}

/// One row of `list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub file: Utf8PathBuf,
    pub name: String,
    pub used_by: Vec<String>,
    pub recipients: usize,
    pub up_to_date: bool,
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    Unchanged,
    Stored,
}

/// A pre-generated host key: the public key, and the secrets rekeyed to it.
#[derive(Debug, Clone)]
pub struct HostKeyMade {
    pub public: String,
    pub rekeyed: Vec<Utf8PathBuf>,
}

/// Pre-generates `host`'s SSH host key (refusing to replace one unless
/// `force`) and re-encrypts every secret the host uses to it.
pub fn host_key(root: &Utf8Path, host: &str, force: bool) -> Result<HostKeyMade, Error> {
    let public = Context::load(root)?.pregenerate_host_key(host, force)?;
    // The new recipient: every secret the host uses is re-encrypted to it.
    let rekeyed = Context::load(root)?.rekey()?;
    Ok(HostKeyMade { public, rekeyed })
}

/// The host's pre-generated SSH host key, decrypted: (private, "ssh-ed25519
/// AAAA... root@HOST"), or None when it has none (`potato secrets hostkey`).
pub fn pregenerated_host_key(
    root: &Utf8Path,
    host: &str,
    identity: Option<&Utf8Path>,
) -> Result<Option<(Vec<u8>, String)>, Error> {
    let file = Utf8PathBuf::from(format!(
        "secrets/{}/ssh_host_ed25519_key.age",
        repo::check_host_name(host)?
    ));
    if RepoFs::open(root)?.kind(&file)?.is_none() {
        return Ok(None);
    }
    let ids = store::load_identities(identity)?;
    let private = store::decrypt(root, &file, &ids)?;
    let public = Recipients::load(root)
        .ok()
        .and_then(|r| r.hosts.get(host).cloned())
        .unwrap_or_default();
    Ok(Some((private, format!("{public} root@{host}"))))
}

/// The inventory's view of the store: which hosts use which file.
pub struct Context {
    root: Utf8PathBuf,
    recipients: Recipients,
    /// Secret file (repo-relative) → hosts whose host files reference it.
    users: BTreeMap<Utf8PathBuf, BTreeSet<String>>,
    /// Secret name → hosts referencing it (for choosing a scope).
    by_name: BTreeMap<String, BTreeSet<String>>,
    index: SecretIndex,
}

impl Context {
    pub fn load(root: &Utf8Path) -> Result<Context, Error> {
        let recipients = Recipients::load(root)?;
        let index = SecretIndex::scan(root)?;
        // Who references what, from the host files alone: this works on a fleet
        // that is invalid (a missing secret is what `gen`/`set` are for) and
        // skips the coverage check (fixing coverage is what rekey is for).
        let inv = inventory::load(root)?;
        let catalog = Catalog::for_repo(root).map_err(Error::Invalid)?;
        let mut users: BTreeMap<Utf8PathBuf, BTreeSet<String>> = BTreeMap::new();
        let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (host, name, on_host) in resolve::secret_references(&inv, &catalog, &index) {
            // Operator-side secrets (the Proxmox token) are listed as used by "operator".
            let user = if on_host {
                host.clone()
            } else {
                "operator".into()
            };
            if let Some(file) = index.locate(&host, &name) {
                users.entry(file).or_default().insert(user);
            }
            if on_host {
                by_name.entry(name).or_default().insert(host);
            }
        }
        // The fleet CA's secrets: its key the operator's, each TLS key its host's.
        for (file, user) in crate::pki::secret_users(&index) {
            users.entry(file).or_default().insert(user);
        }
        Ok(Context {
            root: root.to_path_buf(),
            recipients,
            users,
            by_name,
            index,
        })
    }

    /// The file a name refers to: --host/--shared, else the one existing file,
    /// else the scope of the one host that uses it.
    pub fn file_for(&self, name: &str, scope: &Scope) -> Result<Utf8PathBuf, Error> {
        parse_ref(&format!("secret:{name}")).map_err(|e| {
            Error::usage(
                e,
                "secret names are lowercase letters, digits, '-', '_', '.'",
            )
        })?;
        if let Some(h) = &scope.host {
            let h = repo::check_host_name(h)?;
            return Ok(format!("secrets/{h}/{name}.age").into());
        }
        if scope.shared {
            return Ok(format!("secrets/shared/{name}.age").into());
        }
        let existing: Vec<Utf8PathBuf> = self
            .index
            .files()
            .filter(|(_, n)| n == name)
            .map(|(s, n)| format!("secrets/{s}/{n}.age").into())
            .collect();
        if existing.len() == 1 {
            return Ok(existing[0].clone());
        }
        let hosts = self.by_name.get(name).cloned().unwrap_or_default();
        if existing.is_empty() && hosts.len() == 1 {
            let h = hosts.iter().next().expect("one host");
            return Ok(format!("secrets/{h}/{name}.age").into());
        }
        Err(Error::usage(
            format!(
                "which `{name}`? {} file(s) and {} host(s) match",
                existing.len(),
                hosts.len()
            ),
            "pass --host HOST or --shared",
        ))
    }

    /// Recipients a file must have: admins + the hosts that use it, or, for a
    /// file no host uses yet, the host whose scope it is in.
    fn wanted(&self, file: &Utf8Path) -> BTreeSet<String> {
        // "operator" is not a host: admins only.
        let mut hosts: BTreeSet<String> = self.users.get(file).cloned().unwrap_or_default();
        if let Some(scope) = file.parent().and_then(|p| p.file_name())
            && scope != "shared"
            && self.recipients.hosts.contains_key(scope)
        {
            hosts.insert(scope.to_string());
        }
        self.recipients.for_hosts(hosts.iter().map(String::as_str))
    }

    pub fn store(&self, file: &Utf8Path, value: &[u8]) -> Result<(), Error> {
        let keys = self.wanted(file);
        let ct = store::encrypt(value, &keys)?;
        store::write_secret(&self.root, file, &ct, &keys)?;
        Ok(())
    }

    /// Generates a value of `kind` into `file`, refusing to replace one that
    /// exists unless `force`; returns the value's public half, if it has one.
    pub fn generate_into(
        &self,
        file: &Utf8Path,
        kind: Kind,
        force: bool,
    ) -> Result<Option<String>, Error> {
        if RepoFs::open(&self.root)?.kind(file)?.is_some() && !force {
            return Err(Error::usage(
                format!("{file} exists"),
                "pass --force to replace it (the old value is lost)",
            ));
        }
        let (value, public) = generate(kind);
        self.store(file, &value)?;
        Ok(public)
    }

    /// Every secret file: who uses it, how many recipients it needs, and
    /// whether it is encrypted to exactly them.
    pub fn list(&self) -> Result<Vec<Listed>, Error> {
        let mut rows = Vec::new();
        for (scope, name) in self.index.files() {
            let file: Utf8PathBuf = format!("secrets/{scope}/{name}.age").into();
            let wanted = self.wanted(&file);
            let recorded = store::recorded_recipients(&self.root, &file)?;
            let used_by: Vec<String> = self
                .users
                .get(&file)
                .map(|u| u.iter().cloned().collect())
                .unwrap_or_default();
            rows.push(Listed {
                up_to_date: recorded == wanted,
                recipients: wanted.len(),
                file,
                name: name.clone(),
                used_by,
            });
        }
        Ok(rows)
    }

    /// Generates the host's SSH host key with ssh-keygen, stores the private
    /// key encrypted, records the public key; returns the public key.
    pub fn pregenerate_host_key(&self, host: &str, force: bool) -> Result<String, Error> {
        let known = inventory::load(&self.root)?
            .hosts
            .iter()
            .any(|h| h.name == host);
        if !known {
            return Err(Error::usage(
                format!("no host file hosts/{host}.toml"),
                "write the host file first",
            ));
        }
        if self.recipients.hosts.contains_key(host) && !force {
            return Err(Error::usage(
                format!("{host} already has a host key in secrets/recipients.toml"),
                "pass --force to replace it (the host must then be given the new key)",
            ));
        }
        let tmp = tempfile::tempdir().map_err(|e| Error::io(Utf8Path::new("/tmp"), e))?;
        let key = tmp.path().join("key");
        let out = std::process::Command::new(crate::tools::find(crate::tools::Program::SshKeygen)?)
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("root@{host}"))
            .arg("-f")
            .arg(&key)
            .output()
            .map_err(|e| Error::Io {
                path: "ssh-keygen".into(),
                source: e,
            })?;
        if !out.status.success() {
            return Err(Error::ProgramFailed {
                program: "ssh-keygen",
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let private = std::fs::read(&key).map_err(|e| Error::io(Utf8Path::new("key"), e))?;
        let public = std::fs::read_to_string(key.with_extension("pub"))
            .map_err(|e| Error::io(Utf8Path::new("key.pub"), e))?;
        let public = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let file = Utf8PathBuf::from(format!("secrets/{host}/ssh_host_ed25519_key.age"));
        self.store(&file, &private)?;
        store::set_host_key(&self.root, host, &public)?;
        Ok(public)
    }

    /// Re-encrypts every secret whose recipients changed; returns those files.
    pub fn rekey(&self) -> Result<Vec<Utf8PathBuf>, Error> {
        let mut identities = None;
        let mut rewritten = Vec::new();
        for (scope, name) in self.index.files() {
            let file: Utf8PathBuf = format!("secrets/{scope}/{name}.age").into();
            let wanted = self.wanted(&file);
            if store::recorded_recipients(&self.root, &file)? == wanted {
                continue;
            }
            if identities.is_none() {
                identities = Some(store::load_identities(None)?);
            }
            let value = store::decrypt(&self.root, &file, identities.as_ref().expect("loaded"))?;
            let ct = store::encrypt(&value, &wanted)?;
            store::write_secret(&self.root, &file, &ct, &wanted)?;
            rewritten.push(file);
        }
        Ok(rewritten)
    }

    /// Decrypts `file` into a private scratch copy, runs $EDITOR on it and
    /// stores the result; `Edited::Unchanged` when the editor saved nothing new.
    pub fn edit(&self, file: &Utf8Path) -> Result<Edited, Error> {
        let old = if RepoFs::open(&self.root)?.kind(file)?.is_some() {
            store::decrypt(&self.root, file, &store::load_identities(None)?)?
        } else {
            Vec::new()
        };
        let scratch = scratch::Scratch::new(&old)?;
        // Ctrl-C or a TERM while the editor runs must not kill potato before the
        // scratch file is wiped: the signals only set a flag until we are done.
        let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut hooks = Vec::new();
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            if let Ok(id) = signal_hook::flag::register(sig, interrupted.clone()) {
                hooks.push(id);
            }
        }
        let result = self.run_editor(file, &scratch, &old, &interrupted);
        for id in hooks {
            signal_hook::low_level::unregister(id);
        }
        result
    }

    fn run_editor(
        &self,
        file: &Utf8Path,
        scratch: &scratch::Scratch,
        old: &[u8],
        interrupted: &std::sync::atomic::AtomicBool,
    ) -> Result<Edited, Error> {
        let editor = std::env::var("EDITOR")
            .or_else(|_| std::env::var("VISUAL"))
            .unwrap_or_else(|_| "vi".into());
        // The editor gets the terminal; the file name is the only argument.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("potato-editor")
            .arg(scratch.path.as_str())
            .status()
            .map_err(|e| Error::ProgramFailed {
                program: crate::error::EDITOR,
                message: format!("cannot start {editor} (through sh): {e}; {file} is unchanged"),
            })?;
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::usage(
                format!("interrupted; {file} is unchanged and the plaintext copy is wiped"),
                "run the edit again",
            ));
        }
        if !status.success() {
            return Err(Error::ProgramFailed {
                program: crate::error::EDITOR,
                message: format!("{editor} exited with {status}; {file} is unchanged"),
            });
        }
        let new = scratch.read()?;
        if new == old {
            return Ok(Edited::Unchanged);
        }
        self.store(file, &new)?;
        Ok(Edited::Stored)
    }
}

/// A new value of `kind`, and its public half when it has one.
pub fn generate(kind: Kind) -> (Vec<u8>, Option<String>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    match kind {
        Kind::Wireguard => {
            let secret = x25519_dalek::StaticSecret::random();
            let public = x25519_dalek::PublicKey::from(&secret);
            (
                format!("{}\n", b64.encode(secret.to_bytes())).into_bytes(),
                Some(b64.encode(public.as_bytes())),
            )
        }
        Kind::Password => {
            const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).expect("the OS random source works");
            let pw: String = raw
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect();
            (format!("{pw}\n").into_bytes(), None)
        }
        Kind::Token => {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).expect("the OS random source works");
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            (format!("{hex}\n").into_bytes(), None)
        }
    }
}
