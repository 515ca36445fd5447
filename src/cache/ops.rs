//! What `potato cache` does to the repository: create the signing key
//! (`init`) and report the cache (`show`).
//!
//! The secret key exists in plaintext only in memory between `key::generate`
//! and the age encryption (`secrets::store`); it never reaches a file, argv or
//! a message. It is encrypted to the admins and the cache host (the one
//! function every host secret goes through: `Recipients::for_hosts` +
//! `store::write_secret`), the public key written to `secrets/fleet-cache.pub`.
//! `init` reads the host files only as written (`inventory`), not the resolved
//! fleet: the fleet does not resolve until the key it creates exists.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::{DEFAULT_KEY_REF, PUBLIC_KEY_FILE, key};
use crate::error::Error;
use crate::fsguard::RepoFs;
use crate::secrets::store::{self, Recipients};

/// What `cache init` wrote.
#[derive(Debug, Serialize)]
pub struct Made {
    pub host: String,
    /// The secret key's file (`secrets/<host>/<key secret>.age`).
    pub secret: Utf8PathBuf,
    pub public_key_file: Utf8PathBuf,
    pub public_key: String,
    /// Set when the cache host has no SSH host key in recipients.toml, so
    /// the key is encrypted to the admins only for now.
    pub warning: Option<String>,
}

/// The cache as `cache show` reports it.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub host: String,
    pub port: u16,
    pub dir: String,
    pub key_secret: String,
    pub public_key: String,
    pub priority: u32,
    /// Each consumer and the URL it substitutes from.
    pub consumers: Vec<(String, String)>,
}

/// The cache host (the one host file with `[fleet.cache]`) and the secret
/// name its `key` names, from the host files as written.
fn cache_host(repo: &Utf8Path) -> Result<(String, String), Error> {
    let inv = crate::inventory::load(repo)?;
    let mut found: Vec<(String, String)> = Vec::new();
    for h in &inv.hosts {
        let Some(t) = h.raw.fleet.as_ref().and_then(|f| f.cache.as_ref()) else {
            continue;
        };
        let text = t
            .key
            .as_ref()
            .map(|k| k.value.clone())
            .unwrap_or_else(|| DEFAULT_KEY_REF.to_string());
        let name = crate::secrets::parse_ref(&text).map_err(|e| {
            Error::usage(
                format!("{}: [fleet.cache] key: {e}", h.path),
                "write key = \"secret:NAME\", or leave it out for \"secret:fleet-cache-key\"",
            )
        })?;
        found.push((h.name.clone(), name.to_string()));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::usage(
            "no host file has [fleet.cache]: the fleet has no binary cache to make a key for",
            "add [fleet.cache] to the host file of the host that serves the cache (e.g. hosts/n250.toml), then run `potato cache init` again",
        )),
        _ => Err(Error::usage(
            format!(
                "{} host files have [fleet.cache] ({}); one host serves the fleet's cache",
                found.len(),
                found
                    .iter()
                    .map(|(h, _)| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "keep [fleet.cache] in one host file",
        )),
    }
}

/// Creates the signing key named `name`: the secret for the admins and the
/// cache host, the public key in `secrets/fleet-cache.pub`. Refuses (changing
/// nothing) when either exists, unless `force`.
pub fn init(repo: &Utf8Path, name: &str, force: bool) -> Result<Made, Error> {
    key::check_name(name).map_err(|e| {
        Error::usage(
            e.to_string(),
            "pass --name NAME, e.g. --name potato-fleet-cache-2",
        )
    })?;
    let (host, secret) = cache_host(repo)?;
    let secret_file = Utf8PathBuf::from(format!("secrets/{host}/{secret}.age"));
    let public_file = Utf8Path::new(PUBLIC_KEY_FILE);
    let fs = RepoFs::open(repo)?;
    if !force {
        for path in [secret_file.as_path(), public_file] {
            if fs.kind(path)?.is_some() {
                return Err(Error::usage(
                    format!("the fleet cache's key exists already ({path}); nothing was changed"),
                    "keep it; to replace it run `potato cache init --force`, then `potato gen` and deploy every host (hosts then trust only paths signed by the new key)",
                ));
            }
        }
    }
    let recipients = Recipients::load(repo)?;
    let keys = recipients.for_hosts([host.as_str()]);
    let warning = (!recipients.hosts.contains_key(&host)).then(|| {
        format!("{host} has no SSH host key in secrets/recipients.toml: the signing key is encrypted to the admins only; add the host key and run `potato secrets rekey`")
    });
    let pair = key::generate(name).map_err(|e| Error::usage(e.to_string(), "pass --name NAME"))?;
    let ciphertext = store::encrypt(pair.secret.as_bytes(), &keys)?;
    store::write_secret(repo, &secret_file, &ciphertext, &keys)?;
    fs.write_atomic(public_file, format!("{}\n", pair.public).as_bytes(), 0o644)?;
    Ok(Made {
        host,
        secret: secret_file,
        public_key_file: public_file.to_path_buf(),
        public_key: pair.public,
        warning,
    })
}

/// The cache of the loaded, valid fleet.
pub fn show(plans: &[crate::plan::HostPlan]) -> Result<Shown, Error> {
    let c = super::of_fleet(plans).ok_or_else(|| {
        Error::usage(
            "the fleet has no binary cache (no host file has [fleet.cache])",
            "add [fleet.cache] to the host that serves it, then `potato cache init`",
        )
    })?;
    Ok(Shown {
        host: c.host.clone(),
        port: c.port,
        dir: c.dir.clone(),
        key_secret: c.key_secret.clone(),
        public_key: c.public_key.clone(),
        priority: c.priority,
        consumers: c
            .consumers
            .iter()
            .map(|(h, x)| (h.clone(), x.url.clone()))
            .collect(),
    })
}
