//! The fleet repository: finding its root, choosing hosts by name or tag, and
//! checking host names from the command line before they become paths.

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

/// True for a valid host name: the rule `resolve` applies to host file names
/// (lowercase letters, digits and '-', at most 63, no '-' at either end). A
/// name that passes can be used as one path component.
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A host name from the command line, checked before it becomes a path.
pub fn check_host_name(name: &str) -> Result<&str, Error> {
    if is_host_name(name) {
        Ok(name)
    } else {
        Err(Error::usage(
            format!("`{name}` is not a valid host name"),
            "host names are the file names in hosts/: lowercase letters, digits and '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_single_path_components() {
        for ok in ["n250", "pve-apps", "a"] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in [
            "", "..", "../x", "a/b", "/tmp", "-x", "x-", "A", "a.b", "a b",
        ] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }
}
