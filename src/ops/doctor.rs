//! `doctor`'s operation: examines this machine (`doctor::examine`) together
//! with the systems of the fleet it is run in, if any. Needs no repository:
//! outside one, or when its host files do not load, the fleet part is empty.

use camino::Utf8Path;

use crate::doctor::{self, Report};

/// The report for this machine. `commands` are every potato command as typed
/// ("potato vm create"); `repo` is `--repo`, if given.
pub fn examine(repo: Option<&Utf8Path>, commands: &[String]) -> Report {
    doctor::examine(commands, &fleet_systems(repo))
}

/// The fleet's (host, system) pairs when run in a repository whose host files
/// load; none otherwise.
fn fleet_systems(repo: Option<&Utf8Path>) -> Vec<(String, String)> {
    let Ok(root) = super::fleet::repo_root(repo) else {
        return Vec::new();
    };
    match super::fleet::load_plans(&root) {
        Ok(plans) => plans
            .iter()
            .map(|p| (p.name.clone(), p.system.as_str().to_string()))
            .collect(),
        Err(_) => Vec::new(),
    }
}
