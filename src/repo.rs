//! The fleet repository: finding its root and choosing hosts by name or tag.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Error;
use crate::plan::HostPlan;

/// `--repo DIR`, or the nearest directory upwards from `start` holding flake.nix.
pub fn find_root(explicit: Option<&Utf8Path>, start: &Utf8Path) -> Result<Utf8PathBuf, Error> {
    if let Some(dir) = explicit {
        if dir.join("flake.nix").is_file() || dir.join("hosts").is_dir() {
            return Ok(dir.to_path_buf());
        }
        return Err(Error::RepoNotFound {
            start: dir.to_path_buf(),
        });
    }
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join("flake.nix").is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(Error::RepoNotFound {
        start: start.to_path_buf(),
    })
}

/// Picks hosts by name or `@tag`; no selectors means every host.
/// Unknown names and tags are usage errors that list what exists.
pub fn select<'a>(plans: &'a [HostPlan], selectors: &[String]) -> Result<Vec<&'a HostPlan>, Error> {
    if selectors.is_empty() {
        return Ok(plans.iter().collect());
    }
    let mut out: Vec<&HostPlan> = Vec::new();
    for sel in selectors {
        let matched: Vec<&HostPlan> = match sel.strip_prefix('@') {
            Some(tag) => plans
                .iter()
                .filter(|p| p.tags.iter().any(|t| t == tag))
                .collect(),
            None => plans.iter().filter(|p| &p.name == sel).collect(),
        };
        if matched.is_empty() {
            let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
            let mut tags: Vec<&str> = plans
                .iter()
                .flat_map(|p| p.tags.iter().map(String::as_str))
                .collect();
            tags.sort();
            tags.dedup();
            let what = if sel.starts_with('@') {
                "no host has tag"
            } else {
                "no host named"
            };
            return Err(Error::usage(
                format!("{what} `{}`", sel.trim_start_matches('@')),
                format!(
                    "hosts: {}; tags: {}",
                    names.join(", "),
                    tags.iter()
                        .map(|t| format!("@{t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for m in matched {
            if !out.iter().any(|p| p.name == m.name) {
                out.push(m);
            }
        }
    }
    Ok(out)
}
