//! Substitution on the target: before potato pushes a closure, the host fetches
//! what it can of the missing paths from its own substituters (its nix.conf
//! `substituters`, signatures checked against its `trusted-public-keys`), so its
//! own link carries them instead of the deployer's. potato then pushes only
//! what is still missing.
//!
//! Nix's own mechanism, as colmena and deploy-rs use it (`nix copy
//! --substitute-on-destination`): here `nix-store --realise --dry-run` on the
//! host says which missing paths its substituters have ("will be fetched"),
//! `nix-store --realise --keep-going` fetches them, and the host is asked again
//! which paths it lacks. A host without substituters fetches nothing (the dry
//! run says so in one round trip). Owns only this step: `host::push` calls it
//! (when asked) before it streams what is still missing.

use std::collections::HashSet;

use super::remote::{HostError, Remote};
use crate::nix::StorePath;
use crate::nix::derivation::DryRun;
use crate::nix::transfer::PathInfo;

/// What the host fetched by itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    pub paths: Vec<StorePath>,
    /// NAR bytes of those paths (from the deployer's path info).
    pub nar_bytes: u64,
    /// Paths left for potato to push, dependencies first.
    pub still_missing: Vec<StorePath>,
}

/// Lets the host substitute what it can of `missing` (dependencies first, all
/// in `closure`); returns what it fetched and what is still missing.
pub fn fetch_missing(
    remote: &Remote,
    missing: &[StorePath],
    closure: &[PathInfo],
) -> Result<Fetched, HostError> {
    let list = lines(missing);
    let dry = remote.run_with(
        "xargs -r nix-store --realise --dry-run 2>&1",
        &mut list.as_bytes(),
        &mut |_| {},
    )?;
    let asked: HashSet<&StorePath> = missing.iter().collect();
    let fetchable: Vec<StorePath> = DryRun::parse(&dry.stdout)
        .fetch
        .into_iter()
        .filter(|p| asked.contains(p))
        .collect();
    if fetchable.is_empty() {
        return Ok(Fetched {
            still_missing: missing.to_vec(),
            ..Default::default()
        });
    }
    // --keep-going: a path whose references only potato has fails alone; it is
    // pushed with the rest.
    remote.run_with(
        "xargs -r nix-store --realise --keep-going >/dev/null 2>&1; true",
        &mut lines(&fetchable).as_bytes(),
        &mut |_| {},
    )?;
    let still_missing = remote.missing(missing)?;
    let left: HashSet<&StorePath> = still_missing.iter().collect();
    let paths: Vec<StorePath> = missing
        .iter()
        .filter(|p| !left.contains(p))
        .cloned()
        .collect();
    let got: HashSet<&StorePath> = paths.iter().collect();
    let nar_bytes = closure
        .iter()
        .filter(|c| got.contains(&c.path))
        .map(|c| c.nar_size)
        .sum();
    Ok(Fetched {
        paths,
        nar_bytes,
        still_missing,
    })
}

fn lines(paths: &[StorePath]) -> String {
    let mut s = String::new();
    for p in paths {
        s.push_str(p.as_str());
        s.push('\n');
    }
    s
}
