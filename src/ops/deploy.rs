//! Building and deploying the selected hosts: one Nix build for all of them,
//! then each host's pipeline (`deploy::deploy_host`) in parallel on the one
//! host runner (`host::runner`), its events handed to the reporter as they come. Owns the
//! policy around the engine (stale files, build_on, the lock holder); the
//! per-host work stays in `deploy`. Prints nothing but through the reporter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::fleet::{Fleet, Selection};
use crate::deploy::build_on::{self, Job, Site};
use crate::deploy::{self, DeployOptions, HostResult, Outcome};
use crate::error::Error;
use crate::host::push::Compress;
use crate::host::runner;
use crate::inventory::schema::BuildOn;
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
    /// `--build-on`, overriding the host files' build_on.
    pub build_on: Option<BuildOn>,
    /// Hosts fetch from their own substituters before the push
    /// (`--no-substitute` = false).
    pub substitute: bool,
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
/// Hosts built elsewhere (build_on, `--build-on`) are evaluated here and
/// realised there (`deploy::build_on`); the map says where each was built.
pub fn build_selected(
    fleet: &Fleet,
    selectors: &[String],
    over: Option<&BuildOn>,
    report: &Reporter,
) -> Result<(Toplevels, BTreeMap<String, String>), Error> {
    let selected = fleet.select(selectors)?;
    super::generate::refuse_stale(&fleet.root, &selected.plans)?;
    let sites = sites(fleet, &selected, over)?;
    let (tops, jobs) = build_where(fleet, &selected.names(), &sites, &mut |l| report.warn(l))?;
    let mut on: BTreeMap<String, String> =
        sites.iter().map(|(h, s)| (h.clone(), s.label())).collect();
    if jobs.is_empty() {
        return Ok((tops, on));
    }
    let mut opts = options(fleet, &selected, &Request::build_only())?;
    opts.builds = jobs.clone();
    let mut failed = 0;
    for plan in selected.plans.iter().filter(|p| jobs.contains_key(&p.name)) {
        match build_on::build_only(plan, &jobs[&plan.name], &opts) {
            Ok(r) => {
                on.insert(plan.name.clone(), r.on);
            }
            Err(e) => {
                failed += 1;
                report.warn(&format!("error: {}: {e}", plan.name));
            }
        }
    }
    if failed > 0 {
        return Err(Error::HostsFailed {
            failed,
            total: selected.plans.len(),
        });
    }
    Ok((tops, on))
}

impl Request {
    /// What `potato build` needs of a deploy's settings to reach a builder.
    fn build_only() -> Request {
        Request {
            mode: None,
            no_magic_rollback: false,
            confirm_timeout: None,
            activation_timeout: Duration::from_secs(300),
            force: false,
            parallel: 1,
            compress: None,
            build_on: None,
            substitute: true,
        }
    }
}

const BUILD_ON_HINT: &str = "build_on (and --build-on) is local, target, a host file's name, or a builder in the deployer's nix.conf `builders`";

/// `--build-on VALUE`, typed and checked like the host file's build_on.
pub fn parse_build_on(v: &str) -> Result<BuildOn, String> {
    let b = BuildOn::from(v.to_string());
    if let BuildOn::Host(name) = &b {
        build_on::check_builder_name(name)?;
    }
    Ok(b)
}

/// Where each selected host is built.
fn sites(
    fleet: &Fleet,
    selected: &Selection,
    over: Option<&BuildOn>,
) -> Result<BTreeMap<String, Site>, Error> {
    build_on::sites(&selected.plans, &fleet.plans, over).map_err(|e| match e {
        build_on::SiteError::Unknown(why) => Error::usage(why, BUILD_ON_HINT),
        build_on::SiteError::NixConfig(e) => e.into(),
    })
}

/// zstd level of shared frames: as the single-host stream's (level 1 keeps
/// up with the link on two cores).
const FRAME_LEVEL: i32 = 1;

type Toplevels = BTreeMap<String, StorePath>;
type Jobs = BTreeMap<String, Job>;

/// Builds the hosts built here (one `nix build`) and evaluates the others (one
/// `nix eval`): every host's toplevel, plus the remote builds to run.
fn build_where(
    fleet: &Fleet,
    names: &[String],
    sites: &BTreeMap<String, Site>,
    warn: &mut dyn FnMut(&str),
) -> Result<(Toplevels, Jobs), Error> {
    let (here, elsewhere): (Vec<String>, Vec<String>) = names.iter().cloned().partition(|n| {
        matches!(
            sites.get(n),
            None | Some(Site::Deployer | Site::NixBuilder(_))
        )
    });
    let mut tops = if here.is_empty() {
        BTreeMap::new()
    } else {
        build(fleet, &here, warn)?
    };
    let evaluated = nix::derivation::evaluate_toplevels(&fleet.flake(), &elsewhere)?;
    for (h, e) in &evaluated {
        tops.insert(h.clone(), e.out.clone());
    }
    Ok((tops, build_on::jobs(sites, &evaluated)))
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
    let sites = sites(fleet, &selected, req.build_on.as_ref())?;
    let mut opts = options(fleet, &selected, req)?;
    super::generate::refuse_stale(&fleet.root, &selected.plans)?;
    let names = selected.names();
    renderer.note(&format!(
        "building {} system{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    ));
    let (toplevels, jobs) = build_where(fleet, &names, &sites, &mut |l| renderer.warn(l))?;
    opts.builds = jobs;
    // Several hosts pushed from here: compress each path once for all of them.
    if names.len() - opts.builds.len() > 1 && opts.compress != Compress::No {
        opts.frames = crate::nix::frames::FrameCache::new(FRAME_LEVEL)
            .ok()
            .map(Arc::new);
    }
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
        substitute: req.substitute,
        builds: BTreeMap::new(),
        frames: None,
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
