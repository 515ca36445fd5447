//! What `potato check` says about the cache's public key, and where every
//! plan's `FleetCache::public_key` comes from: `secrets/fleet-cache.pub`,
//! read (never through a link) after `resolve`, checked to be a key in
//! Nix's format. Never decrypts.

use camino::Utf8Path;

use super::{PUBLIC_KEY_FILE, key};
use crate::diag::{Diagnostic, Loc};
use crate::fsguard::RepoFs;
use crate::inventory::Inventory;
use crate::plan::HostPlan;

/// Gives every plan's cache its public key, or says what is missing at the
/// cache host's `[fleet.cache]`.
pub fn attach(repo: &Utf8Path, inv: &Inventory, plans: &mut [HostPlan]) -> Vec<Diagnostic> {
    let Some(host) = plans
        .iter()
        .find_map(|p| p.cache.as_ref().map(|c| c.host.clone()))
    else {
        return Vec::new();
    };
    let at = inv.hosts.iter().find(|h| h.name == host).and_then(|h| {
        let t = h.raw.fleet.as_ref()?.cache.as_ref()?;
        Some(Loc::new(h.file, t.span.clone()))
    });
    let fail = |message: String, hint: &str| {
        let d = match &at {
            Some(at) => Diagnostic::at(at.clone(), message),
            None => Diagnostic::global(message),
        };
        vec![d.hint(hint.to_string())]
    };
    let text = match RepoFs::open(repo)
        .and_then(|fs| fs.read_string(Utf8Path::new(PUBLIC_KEY_FILE)))
    {
        Ok(Some(text)) => text.trim().to_string(),
        Ok(None) => {
            return fail(
                format!(
                    "{host} serves the fleet cache, but its public key {PUBLIC_KEY_FILE} is missing"
                ),
                "create the signing key with `potato cache init` (or restore the file from git), then `potato gen`",
            );
        }
        Err(e) => return vec![Diagnostic::global(e.to_string())],
    };
    if let Err(e) = key::parse_public(&text) {
        return fail(
            format!("{PUBLIC_KEY_FILE} is not a Nix public key: {e}"),
            "restore it from git, or make a new key with `potato cache init --force` (hosts then trust only paths signed by the new key)",
        );
    }
    for p in plans.iter_mut() {
        if let Some(c) = p.cache.as_mut() {
            c.public_key = text.clone();
        }
    }
    Vec::new()
}
