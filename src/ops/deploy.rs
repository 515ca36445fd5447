//! Building and deploying the selected hosts: one Nix build for all of them,
//! then each host's pipeline (`deploy::deploy_host`) in parallel on the one
//! host runner (`host::runner`), its events handed to the reporter as they
//! come (`deploy::Event` → `ui::Event`: phases, push bytes, log lines, host
//! results). Owns the policy around the engine (stale files, build_on, the
//! lock holder); the per-host work stays in `deploy`. Prints nothing but
//! through the reporter; the command prints the results.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::fleet::{Fleet, Selection};
use crate::deploy::build_on::{self, Job, Site};
use crate::deploy::cache::{self, CacheError, CacheGate, CacheReport, CacheRun, CacheTarget};
use crate::deploy::{self, DeployOptions, Event, HostResult};
use crate::error::Error;
use crate::host::push::Compress;
use crate::host::runner;
use crate::inventory::schema::BuildOn;
use crate::inventory::schema::Mode;
use crate::nix::{self, StorePath};
use crate::plan::HostPlan;
use crate::ui::{self, Reporter};

/// What the command line asks of a deploy, typed.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: Option<Mode>,
    pub no_magic_rollback: bool,
    pub confirm_timeout: Option<Duration>,
    pub activation_timeout: Duration,
    pub force: bool,
    pub parallel: usize,
    /// zstd on the wire (`--compress`).
    pub compress: Compress,
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
/// realised there (`deploy::build_on`); their build reports say where.
/// `Error::BuildsFailed` carries each failed host's error (the builder's log
/// tail in it).
pub fn build_selected(
    fleet: &Fleet,
    selectors: &[String],
    over: Option<&BuildOn>,
    report: &Reporter,
) -> Result<(Toplevels, BTreeMap<String, build_on::BuildReport>), Error> {
    let selected = fleet.select(selectors)?;
    super::generate::refuse_stale(&fleet.root, &selected.plans)?;
    let sites = sites(fleet, &selected, over)?;
    let (tops, jobs) = build_where(fleet, &selected.names(), &sites, &mut |l| report.warn(l))?;
    let mut elsewhere = BTreeMap::new();
    if jobs.is_empty() {
        return Ok((tops, elsewhere));
    }
    let mut opts = options(fleet, &selected, &Request::build_only())?;
    opts.builds = jobs.clone();
    let plans: Vec<HostPlan> = selected
        .plans
        .iter()
        .filter(|p| jobs.contains_key(&p.name))
        .cloned()
        .collect();
    report.hosts(&plans.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
    // Each site builds at once, its phases and log lines shown as they come.
    let (tx, rx) = std::sync::mpsc::channel();
    let (opts, jobs) = (&opts, &jobs);
    let job = move |plan: HostPlan| {
        let built = build_on::build_only(&plan, &jobs[&plan.name], opts, &tx);
        report.emit(ui::Event::HostDone {
            host: plan.name.clone(),
            ok: built.is_ok(),
            text: match &built {
                Ok(r) => format!("built on {}", r.on),
                Err(e) => format!("failed: {e}"),
            },
        });
        (plan.name, built)
    };
    let (built, ()) = runner::run_parallel(plans, BUILD_PARALLEL, job, || {
        for e in rx {
            report.emit(reported(e));
        }
    });
    report.end();
    let mut errors = Vec::new();
    for (host, r) in built {
        match r {
            Ok(r) => {
                elsewhere.insert(host, r);
            }
            Err(e) => errors.push(format!("{host}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(Error::BuildsFailed {
            total: selected.plans.len(),
            errors,
        });
    }
    Ok((tops, elsewhere))
}

/// Remote builds `potato build` runs at once (each on its own site).
const BUILD_PARALLEL: usize = 8;

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
            compress: Compress::Auto,
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
    let (here, elsewhere): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|n| matches!(sites.get(n), None | Some(Site::Deployer)));
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

/// Deploys every selected host; results in host order, each host's outcome
/// in its result (`failed` turns them into the run's exit), and what the fleet
/// cache step did when the deploy went through the cache. Errors only for
/// what stops the whole run (input, the build).
pub fn deploy(
    fleet: &Fleet,
    selected: Selection,
    req: &Request,
    report: &Reporter,
) -> Result<(Vec<HostResult>, Option<CacheReport>), Error> {
    let sites = sites(fleet, &selected, req.build_on.as_ref())?;
    let mut opts = options(fleet, &selected, req)?;
    super::generate::refuse_stale(&fleet.root, &selected.plans)?;
    let names = selected.names();
    report.note(&format!(
        "building {} system{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    ));
    let (toplevels, jobs) = build_where(fleet, &names, &sites, &mut |l| report.warn(l))?;
    opts.builds = jobs;
    // Several hosts pushed from here: compress each path once for all of them.
    if names.len() - opts.builds.len() > 1 && opts.compress != Compress::No {
        opts.frames = crate::nix::frames::FrameCache::new(FRAME_LEVEL)
            .ok()
            .map(Arc::new);
    }
    report.hosts(&names);
    let elsewhere: BTreeSet<String> = opts.builds.keys().cloned().collect();
    let through_cache = CacheRun::choose(fleet_cache(fleet), &names, &elsewhere, opts.substitute);
    let (results, cache) = match through_cache {
        None => (
            run_parallel(selected.plans, &toplevels, opts, req.parallel, report),
            None,
        ),
        Some(run) => {
            let (results, cache) =
                deploy_through_cache(run, selected.plans, &toplevels, opts, req.parallel, report);
            (results, Some(cache))
        }
    };
    report.end();
    Ok((results, cache))
}

/// `Error::HostsFailed` when a host did not end deployed or up to date.
pub fn failed(results: &[HostResult]) -> Result<(), Error> {
    let failed = results.iter().filter(|r| !r.result.is_ok()).count();
    if failed > 0 {
        return Err(Error::HostsFailed {
            failed,
            total: results.len(),
        });
    }
    Ok(())
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
        compress: req.compress,
        substitute: req.substitute,
        builds: BTreeMap::new(),
        frames: None,
        cache_gate: None,
        holder: format!(
            "potato deploy by {user}@{machine} (pid {})",
            std::process::id()
        ),
    })
}

/// The fleet's binary cache as the deploy engine needs it, or None when no
/// host file has `[fleet.cache]`.
fn fleet_cache(fleet: &Fleet) -> Option<CacheTarget> {
    let cache = crate::cache::of_fleet(&fleet.plans)?;
    let host = fleet.plans.iter().find(|p| p.name == cache.host)?;
    Some(CacheTarget::new(cache, host.deploy.target.clone()))
}

/// A deploy through the fleet cache (`deploy::cache`). Two things run at once:
/// - the cache step (`fill_cache`): the union of the consumers' closures is
///   pushed once, to the cache host, and published into its signed cache;
/// - the consumers' pipelines: they connect, take their lock and read their
///   state meanwhile, then wait at the gate (`CacheGate`) and substitute from
///   the cache, potato pushing only what is still missing.
///
/// When the cache cannot be used, one warning, and the consumers are pushed
/// to directly (shared frames, substitution off). The cache host, when
/// selected, is deployed by the cache step after it published (or before,
/// on its first deploy: its signing key arrives with its system). Results
/// in selection order.
fn deploy_through_cache(
    run: CacheRun,
    plans: Vec<HostPlan>,
    toplevels: &Toplevels,
    opts: DeployOptions,
    parallel: usize,
    ui: &Reporter,
) -> (Vec<HostResult>, CacheReport) {
    let order: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    ui.note(&format!(
        "pushing {} hosts' closures once, to the fleet cache on {}",
        run.consumers.len(),
        run.cache.host
    ));
    let (mine, rest): (Vec<HostPlan>, Vec<HostPlan>) =
        plans.into_iter().partition(|p| p.name == run.cache.host);
    let gate = Arc::new(CacheGate::default());
    let mut waiting = opts.clone();
    waiting.cache_gate = Some(gate.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let step_tx = tx.clone();
    let (mut results, (mut mine_results, report)) = std::thread::scope(|s| {
        let step = s.spawn(|| {
            let step_tx = step_tx;
            fill_cache(&run, mine, toplevels, &opts, &gate, &step_tx, ui)
        });
        let waiting = &waiting;
        let job =
            move |plan: HostPlan| deploy::deploy_host(&plan, &toplevels[&plan.name], waiting, &tx);
        let (results, ()) = runner::run_parallel(rest, parallel, job, || {
            for e in rx {
                ui.emit(reported(e));
            }
        });
        (results, step.join().expect("the cache step does not panic"))
    });
    results.append(&mut mine_results);
    results.sort_by_key(|r| order.iter().position(|n| *n == r.host));
    (results, report)
}

/// The cache step of `deploy_through_cache`, on its own thread: fills and
/// publishes the cache, opens the gate (usable or not: the guard opens it as
/// unusable whatever happens), and deploys the cache host when it is
/// selected (`mine`). Its events go to `events`; a failed cache is one
/// warning.
fn fill_cache(
    run: &CacheRun,
    mut mine: Vec<HostPlan>,
    toplevels: &Toplevels,
    opts: &DeployOptions,
    gate: &CacheGate,
    events: &std::sync::mpsc::Sender<Event>,
    ui: &Reporter,
) -> (Vec<HostResult>, CacheReport) {
    let _unusable_unless_opened = gate.guard();
    let deploy_mine = |mine: Vec<HostPlan>| -> Vec<HostResult> {
        mine.iter()
            .map(|p| deploy::deploy_host(p, &toplevels[&p.name], opts, events))
            .collect()
    };
    let mut results = Vec::new();
    let tops: Vec<&StorePath> = run.consumers.iter().map(|h| &toplevels[h]).collect();
    let filled = cache::union_closure(&tops).and_then(|union| {
        let paths: Vec<StorePath> = union.iter().map(|p| p.path.clone()).collect();
        cache::push_to_cache(run, union, opts, events).map(|(r, remote)| (r, remote, paths))
    });
    let outcome = match filled {
        Ok((mut report, remote, paths)) => {
            let mut published = cache::publish(&remote, &run.cache, &paths, events);
            drop(remote); // the cache host's lock, for its own deploy
            if matches!(published, Err(CacheError::NoKey { .. })) && !mine.is_empty() {
                // A cache host deployed for the first time: its signing key
                // (and its web server) arrive with its system. It deploys
                // first, from its own store (the push above put the paths
                // there; its own push sends the rest), then the paths are
                // published.
                results = deploy_mine(std::mem::take(&mut mine));
                published = cache::connect_locked(&run.cache, opts)
                    .and_then(|remote| cache::publish(&remote, &run.cache, &paths, events));
            }
            match published {
                Ok(p) => {
                    report.paths_published = p.added;
                    report.paths_replaced = p.replaced;
                    Ok(report)
                }
                Err(e) => Err((report, e)),
            }
        }
        Err(e) => Err((
            CacheReport {
                host: run.cache.host.clone(),
                consumers: run.consumers.clone(),
                ..CacheReport::default()
            },
            e,
        )),
    };
    let report = match outcome {
        Ok(report) => {
            gate.open(true);
            report
        }
        Err((mut report, e)) => {
            ui.warn(&format!(
                "warning: the fleet cache on {} cannot be used: {e}; pushing to each host directly",
                run.cache.host
            ));
            report.error = Some(e.to_string());
            // Direct pushes: the hosts are not sent to a cache that may not
            // answer (Nix would wait out its connect timeout on each).
            gate.open(false);
            report
        }
    };
    results.extend(deploy_mine(mine));
    (results, report)
}

/// Runs every host's pipeline, at most `parallel` at once, reporting events
/// as they come. Results are returned in host order.
fn run_parallel(
    selected: Vec<HostPlan>,
    toplevels: &BTreeMap<String, StorePath>,
    opts: DeployOptions,
    parallel: usize,
    report: &Reporter,
) -> Vec<HostResult> {
    if selected.is_empty() {
        return Vec::new();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = &opts;
    let job = move |plan: HostPlan| deploy::deploy_host(&plan, &toplevels[&plan.name], opts, &tx);
    runner::run_parallel(selected, parallel, job, || {
        for e in rx {
            report.emit(reported(e));
        }
    })
    .0
}

/// The engine's event as the reporter's: one vocabulary with bootstrap's,
/// flash's and vm's (a push's bytes are `Bytes` "push" everywhere).
fn reported(e: Event) -> ui::Event {
    match e {
        Event::Phase { host, phase } => ui::Event::Phase {
            host,
            phase: phase.as_str().to_string(),
        },
        Event::Progress { host, done, total } => ui::Event::Bytes {
            host,
            what: "push".into(),
            done,
            total,
        },
        Event::Log { host, line } => ui::Event::Log { host, line },
        Event::Warn { host, line } => ui::Event::Warn(format!("warning: {host}: {line}")),
        Event::Finished(r) => ui::Event::HostDone {
            host: r.host.clone(),
            ok: r.result.is_ok(),
            text: r.describe(),
        },
    }
}
