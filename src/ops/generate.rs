//! Generating modules/generated/: render the selected hosts, compare with what
//! is on disk, write (through `render::writer`, which refuses links and deletes
//! only what potato wrote), or refuse to go on with stale files. Prints nothing.

use camino::Utf8Path;

use super::fleet::Fleet;
use crate::error::Error;
use crate::plan::HostPlan;
use crate::render::{self, Staleness, Written};

/// What `write` did.
pub struct Generated {
    pub written: Written,
    /// Files that were already up to date.
    pub unchanged: usize,
}

/// How the generated files of the hosts `selectors` name differ from what
/// the host files produce (every host, and extra files, when empty).
pub fn staleness(fleet: &Fleet, selectors: &[String]) -> Result<Staleness, Error> {
    let selected = fleet.select(selectors)?;
    let files = render::render_all(&selected.plans, &fleet.root)?;
    render::check(&fleet.root, &files, &selected.names(), selectors.is_empty())
}

/// Writes the generated files of the hosts `selectors` name.
pub fn write(fleet: &Fleet, selectors: &[String]) -> Result<Generated, Error> {
    let selected = fleet.select(selectors)?;
    let files = render::render_all(&selected.plans, &fleet.root)?;
    let stale = render::check(&fleet.root, &files, &selected.names(), selectors.is_empty())?;
    let written = render::write(&fleet.root, &files, &stale)?;
    Ok(Generated {
        written,
        unchanged: files.len() - stale.changed.len(),
    })
}

/// Deploying (or imaging) stale modules would deploy something the host
/// files do not say.
pub fn refuse_stale(root: &Utf8Path, selected: &[HostPlan]) -> Result<(), Error> {
    let files = render::render_all(selected, root)?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let stale = render::check(root, &files, &names, false)?;
    if stale.changed.is_empty() {
        return Ok(());
    }
    // Exit 1, as `gen --check` for the same files: the host files are fine,
    // what was generated from them is not current.
    Err(Error::Stale {
        count: stale.changed.len(),
        files: stale.changed.iter().map(|(p, _)| p.to_string()).collect(),
    })
}
