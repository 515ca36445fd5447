//! Building and deploying the selected hosts: one Nix build for all of them,
//! then each host's pipeline (`deploy::deploy_host`) in parallel on the one
//! host runner (`host::runner`), its events handed to the reporter as they come. Owns the
//! policy around the engine (stale files, build_on, the lock holder); the
//! per-host work stays in `deploy`. Prints nothing but through the reporter.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fleet::{Fleet, Selection};
use crate::deploy::{self, DeployOptions, HostResult, Outcome};
use crate::error::Error;
use crate::host::push::Compress;
use crate::host::runner;
use crate::inventory::schema::Mode;
use crate::nix::{self, StorePath};
use crate::plan::HostPlan;
use crate::ui::{Renderer, Reporter};

/// What the command line asks of a deploy, typed.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: Option<Mode>,
    pub no_magic_rollback: bool,
    pub confirm_timeout: Option<Duration>,
    pub activation_timeout: Duration,
    pub force: bool,
    pub parallel: usize,
    /// zstd on the wire: None = when the host has zstd.
    pub compress: Option<bool>,
}

/// One Nix build of the hosts' systems: host → toplevel. Warns (through
/// `warn`) about files Nix will not see because git does not track them.
pub fn build(
    fleet: &Fleet,
    names: &[String],
    warn: &mut dyn FnMut(&str),
) -> Result<BTreeMap<String, StorePath>, Error> {
    let flake = fleet.flake();
    let untracked = nix::untracked_inputs(&fleet.root);
    if !untracked.is_empty() && flake.reference.starts_with("git+") {
        warn(&format!(
            "warning: Nix sees only files git tracks; these are untracked and ignored: {}",
            untracked
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        warn("hint: git add them");
    }
    Ok(nix::build_toplevels(&flake, names)?)
}

/// `potato build`: the selected hosts' systems, after the stale-files check.
pub fn build_selected(
    fleet: &Fleet,
    selectors: &[String],
    report: &Reporter,
) -> Result<BTreeMap<String, StorePath>, Error> {
    let selected = fleet.select(selectors)?;
    super::generate::refuse_stale(&fleet.root, &selected.plans)?;
    build(fleet, &selected.names(), &mut |l| report.warn(l))
}

/// Deploys every selected host; results in host order. `Error::HostsFailed`
/// when a host did not end deployed or up to date (after the reporter has
/// shown every result).
pub fn deploy(
    fleet: &Fleet,
    selected: Selection,
    req: &Request,
    renderer: &mut Renderer,
) -> Result<Vec<HostResult>, Error> {
    refuse_build_on_target(&selected.plans)?;
    let opts = options(fleet, &selected, req)?;
    super::generate::refuse_stale(&fleet.root, &selected.plans)?;
    let names = selected.names();
    renderer.note(&format!(
        "building {} system{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    ));
    let toplevels = build(fleet, &names, &mut |l| renderer.warn(l))?;
    let results = run_parallel(selected.plans, toplevels, opts, req.parallel, renderer);
    renderer.finish(&results);
    let failed = results
        .iter()
        .filter(|r| !matches!(r.result, Outcome::Deployed | Outcome::UpToDate))
        .count();
    if failed > 0 {
        return Err(Error::HostsFailed {
            failed,
            total: results.len(),
        });
    }
    Ok(results)
}

/// Building on the target is in the schema but not in the engine yet: refuse it
/// rather than quietly building here.
fn refuse_build_on_target(selected: &[HostPlan]) -> Result<(), Error> {
    let on_target: Vec<&str> = selected
        .iter()
        .filter(|p| p.deploy.build_on == crate::inventory::schema::BuildOn::Target)
        .map(|p| p.name.as_str())
        .collect();
    if on_target.is_empty() {
        return Ok(());
    }
    Err(Error::usage(
        format!(
            "build_on = \"target\" is not supported yet ({})",
            on_target.join(", ")
        ),
        "set build_on = \"local\" (the default) in [deploy]; potato builds here and pushes the closure",
    ))
}

fn options(fleet: &Fleet, selected: &Selection, req: &Request) -> Result<DeployOptions, Error> {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let machine = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    Ok(DeployOptions {
        ssh: fleet.ssh_options()?,
        mode: req.mode,
        no_magic_rollback: req.no_magic_rollback,
        confirm_timeout: req.confirm_timeout,
        activation_timeout: req.activation_timeout,
        target: selected.target_override().cloned(),
        force: req.force,
        compress: match req.compress {
            None => Compress::Auto,
            Some(true) => Compress::Yes,
            Some(false) => Compress::No,
        },
        holder: format!(
            "potato deploy by {user}@{machine} (pid {})",
            std::process::id()
        ),
    })
}

/// Runs every host's pipeline, at most `parallel` at once, rendering events as
/// they come. Results are returned in host order.
fn run_parallel(
    selected: Vec<HostPlan>,
    toplevels: BTreeMap<String, StorePath>,
    opts: DeployOptions,
    parallel: usize,
    renderer: &mut Renderer,
) -> Vec<HostResult> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (toplevels, opts) = (&toplevels, &opts);
    let job = move |plan: HostPlan| deploy::deploy_host(&plan, &toplevels[&plan.name], opts, &tx);
    runner::run_parallel(selected, parallel, job, || {
        for e in rx {
            renderer.event(&e);
        }
    })
    .0
}
