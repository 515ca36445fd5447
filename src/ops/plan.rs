//! `plan`'s operation: everything shown about one host, gathered as data: its
//! plan, the exposure table, the fleet's wiring, the catalog entries an
//! operator file replaced and (`--live`) how the exposure differs from the
//! generation the host runs. Reads the host over SSH only with `live`, and
//! writes nothing there. Formatting is `report::plan`'s.

use camino::Utf8Path;

use crate::error::Error;
use crate::harden::exposure;
use crate::host::paths::DEPLOYED_EXPOSURE;
use crate::ops::fleet::Fleet;
use crate::plan::HostPlan;
use crate::wiring::FleetWiring;

/// What `potato plan HOST` shows.
#[derive(Debug)]
pub struct PlanView {
    pub plan: HostPlan,
    /// Who reaches each port from each zone (`harden::exposure`).
    pub exposure: Vec<exposure::Row>,
    /// The fleet's roles and links, this host among them.
    pub wiring: FleetWiring,
    /// The host's services whose built-in catalog entry an operator file replaced.
    pub replaced: Vec<String>,
    /// With `--live`: the running generation compared with the plan.
    pub live: Option<LiveExposure>,
}

/// The running generation's exposure compared with the planned one.
#[derive(Debug, PartialEq, Eq)]
pub enum LiveExposure {
    /// The running generation predates exposure.json (or potato did not deploy it).
    NoTable,
    /// What a deploy would change, one line each (empty: no change), cleaned
    /// of control characters since the host wrote them.
    Changes(Vec<String>),
}

/// Gathers the view of `host`; with `live`, connects to it (at `--target`
/// when given) and reads its deployed exposure table.
pub fn show(fleet: &Fleet, host: &str, live: bool) -> Result<PlanView, Error> {
    let (plan, target) = fleet.one(host)?;
    let wiring = crate::wiring::fleet(&fleet.plans);
    let table = exposure::table(&plan);
    let replaced = replaced_entries(&fleet.root, &plan)?;
    let live = if live {
        let remote = fleet.connect(host, &target)?;
        Some(deployed_changes(&remote, host, &table)?)
    } else {
        None
    };
    Ok(PlanView {
        plan,
        exposure: table,
        wiring,
        replaced,
        live,
    })
}

/// The host's services whose built-in catalog entry an operator file replaced.
fn replaced_entries(root: &Utf8Path, plan: &HostPlan) -> Result<Vec<String>, Error> {
    let Some(c) = &plan.containers else {
        return Ok(Vec::new());
    };
    let cat = crate::catalog::Catalog::for_repo(root).map_err(Error::Invalid)?;
    Ok(cat.replaced_lines(c.services.iter().map(|s| s.name.as_str())))
}

/// The exposure changes a deploy would make, or `NoTable` when the running
/// generation predates exposure.json (or was not deployed by potato).
fn deployed_changes(
    remote: &crate::host::Remote,
    host: &str,
    planned: &[exposure::Row],
) -> Result<LiveExposure, Error> {
    let Some(text) = remote
        .read_file(DEPLOYED_EXPOSURE)
        .map_err(|e| Error::remote(host, e))?
    else {
        return Ok(LiveExposure::NoTable);
    };
    let running: Vec<exposure::Row> = serde_json::from_str(&text).map_err(|e| Error::Host {
        host: host.into(),
        message: format!("{DEPLOYED_EXPOSURE} is not potato's exposure table: {e}"),
    })?;
    // The running table came from the host: what it says is cleaned before it is shown.
    let shown = exposure::diff(&running, planned)
        .into_iter()
        .map(|l| crate::ssh::output::clean(l.as_bytes()))
        .collect();
    Ok(LiveExposure::Changes(shown))
}
