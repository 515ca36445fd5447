//! Substitution on the target: before potato pushes a closure, the host fetches
//! what it can of the missing paths from its own substituters (its nix.conf
//! `substituters`, signatures checked against its `trusted-public-keys`), so its
//! own link carries them instead of the deployer's. potato then pushes only
//! what is still missing.
//!
//! Nix's own mechanism, as colmena and deploy-rs use it (`nix copy
//! --substitute-on-destination`): the agent's `substitute` runs `nix-store
//! --realise --keep-going` on the missing paths on the host (each fetched from
//! the host's substituters if one has it, signature checked; the others fail
//! alone) and answers, in the same round trip, which are still missing. What
//! was missing before and is not now was fetched. A host without substituters
//! fetches nothing. The realise does not trust a "not in this cache" answer
//! Nix cached from an earlier query (Nix keeps those an hour by default): the
//! fleet cache may have been filled since. Owns only this step: `host::push`
//! calls it (when asked) before it streams what is still missing.

use std::collections::HashSet;

use super::remote::{HostError, Remote};
use crate::nix::StorePath;
use crate::nix::transfer::PathInfo;

/// What the host fetched by itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    pub paths: Vec<StorePath>,
    /// NAR bytes of those paths (from the deployer's path info).
    pub nar_bytes: u64,
    /// Paths left for potato to push, dependencies first.
    pub still_missing: Vec<StorePath>,
    /// What the host said of its substituters (they did not answer in time).
    pub notes: Vec<String>,
}

/// Lets the host substitute what it can of `missing` (dependencies first, all
/// in `closure`); returns what it fetched and what is still missing.
pub fn fetch_missing(
    remote: &Remote,
    missing: &[StorePath],
    closure: &[PathInfo],
) -> Result<Fetched, HostError> {
    let (still_missing, notes) = remote.substitute(missing)?;
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
        notes,
    })
}
