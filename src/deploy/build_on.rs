//! Where a host's system is built, and building it there.
//!
//! Owns the build site of each host (`build_on` in the host file, `--build-on`
//! on the command line): the deployer, the target itself, another inventory host,
//! or a Nix remote builder the deployer has configured; and the remote build:
//! the toplevel is evaluated on the deployer (`nix::derivation`), only its
//! derivation closure (`.drv` files and sources) is sent, and the host realises
//! it with its own `nix-store --realise`, substituting from its own substituters.
//! Nothing is copied back to the deployer. This is what colmena's
//! `buildOnTarget` does (`nix copy --derivation`, then `nix-store --realise` over
//! SSH: zhaofengli/colmena src/nix/deployment/mod.rs `build_on_node`) with
//! potato's own push of the derivation closure. It does not activate, and it does
//! not decide whether a system can be built where it is set to be (that is
//! `check_site`, used by `potato check`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{DeployError, Run};
use crate::host::{HostError, Remote};
use crate::inventory::schema::BuildOn;
use crate::nix::StorePath;
use crate::nix::config::Machine;
use crate::nix::derivation::{DryRun, Evaluated, derivation_closure as nix_derivation_closure};
use crate::nix::remote_store;
use crate::plan::{HostPlan, Target};
use crate::render::format::sh;

/// Where one host's system is built, resolved against the fleet and the
/// deployer's Nix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// `nix build` here; the closure is pushed.
    Deployer,
    /// The host builds its own system.
    Target,
    /// Another inventory host builds it (reached at its deploy target).
    Host { name: String, target: Target },
    /// A Nix remote builder from the deployer's `builders`: Nix's own SSH
    /// store builds there (`nix::remote_store`), and the output is relayed
    /// from it to the target, never into the deployer's store.
    NixBuilder(Machine),
}

/// A remote build handed to a host's pipeline.
#[derive(Debug, Clone)]
pub struct Job {
    pub site: Site,
    pub evaluated: Evaluated,
}

/// What a remote build did, for the summary and `--json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BuildReport {
    /// "deployer", "target", or the builder's name.
    pub on: String,
    /// Names of the derivations the builder built.
    pub built: Vec<String>,
    /// Paths the builder fetched from its own substituters while building.
    pub fetched: usize,
    /// Paths of the derivation closure sent to the builder.
    pub derivation_paths_sent: usize,
    /// Paths (and bytes) relayed from a builder host to the target.
    pub relayed_paths: usize,
    pub relayed_bytes: u64,
}

/// Why a remote build failed: what was run, where, and the builder's log tail.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("building {drv} on {on} failed (exit {code}); the builder's log ends with:\n{tail}")]
    Failed {
        on: String,
        drv: StorePath,
        code: i32,
        tail: String,
    },
    #[error("{on} built {drv} but did not print its output {out}")]
    NoOutput {
        on: String,
        drv: StorePath,
        out: StorePath,
    },
    #[error("listing the derivation closure of {drv}: {source}")]
    DerivationClosure {
        drv: StorePath,
        source: Box<crate::nix::NixError>,
    },
    #[error("connecting to the builder {builder}: {source}")]
    Connect {
        builder: String,
        source: Box<HostError>,
    },
    #[error("running the build on {on}: {source}")]
    Host { on: String, source: Box<HostError> },
    #[error("listing {out}'s closure on the builder failed: {detail}")]
    BuilderClosure { out: StorePath, detail: String },
    #[error(
        "relaying the system from the builder failed (export exit {export}, import exit {import}): {detail}"
    )]
    Relay {
        export: i32,
        import: i32,
        detail: String,
    },
    #[error("on the builder {on}: {source}")]
    Nix {
        on: String,
        source: Box<crate::nix::NixError>,
    },
    /// A word no shell command can carry (see `render::format::sh::word`).
    #[error("a word for the builder: {0}")]
    Unsendable(#[source] crate::render::format::Refused),
    /// The builder listed something that is not a store path.
    #[error("the builder's closure of {out} lists something that is not a store path: {source}")]
    BadPath {
        out: StorePath,
        #[source]
        source: crate::nix::store_path::BadStorePath,
    },
}

/// Why the build sites could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A build_on (or --build-on) name that is neither a host file nor a
    /// configured builder: input to fix.
    #[error("{0}")]
    Unknown(String),
    /// The deployer's Nix configuration (its `builders`) could not be read.
    #[error("reading the deployer's Nix `builders`: {0}")]
    NixConfig(#[source] crate::nix::NixError),
}

/// Lines of the builder's output kept in an error.
const LOG_TAIL_LINES: usize = 30;

/// A builder name must be a plain host name: it is looked up in the fleet and
/// in the deployer's builders, and reaches messages and nothing else.
pub fn check_builder_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a builder name is 1 to 253 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        || name.starts_with(['-', '.'])
    {
        return Err(
            "not a host name (letters, digits, '-', '.', '_'; not starting with '-' or '.')".into(),
        );
    }
    Ok(())
}

impl Site {
    /// "deployer", "target", or the builder's name, as progress and JSON say it.
    pub fn label(&self) -> String {
        match self {
            Site::Deployer => "deployer".into(),
            Site::Target => "target".into(),
            Site::Host { name, .. } => name.clone(),
            Site::NixBuilder(m) => m.uri.clone(),
        }
    }
}

/// The host name part of a builder URI ("ssh://root@b1:2222" → "b1").
fn uri_host(uri: &str) -> &str {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let rest = rest.split(['/', '?']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    rest.split(':').next().unwrap_or(rest)
}

/// Resolves where `plan` is built: `over` (`--build-on`) wins over the host
/// file. A name is an inventory host first, then a configured Nix builder
/// (matched by its URI or its host name).
pub fn site_for(
    plan: &HostPlan,
    over: Option<&BuildOn>,
    fleet: &[HostPlan],
    builders: &[Machine],
) -> Result<Site, String> {
    let b = over.unwrap_or(&plan.deploy.build_on);
    Ok(match b {
        BuildOn::Local => Site::Deployer,
        BuildOn::Target => Site::Target,
        BuildOn::Host(name) if name == &plan.name => Site::Target,
        BuildOn::Host(name) => {
            if let Some(h) = fleet.iter().find(|h| &h.name == name) {
                Site::Host {
                    name: name.clone(),
                    target: h.deploy.target.clone(),
                }
            } else if let Some(m) = builders
                .iter()
                .find(|m| m.uri == *name || uri_host(&m.uri) == name)
            {
                Site::NixBuilder(m.clone())
            } else {
                return Err(format!(
                    "{}: build_on = {name:?} is neither a host file nor a builder in the deployer's Nix `builders`",
                    plan.name
                ));
            }
        }
    })
}

/// Whether `system` can be built at `site`, given the deployer's `system`,
/// `extra-platforms` and builders. Err says why not and names both fixes.
pub fn check_site(
    host: &str,
    system: &str,
    site: &Site,
    deployer_system: &str,
    extra_platforms: &[String],
    builders: &[Machine],
    fleet: &[HostPlan],
) -> Result<(), String> {
    let fixes = format!(
        "either set build_on = \"target\" in {host}'s [deploy] (the host builds its own system), \
         or give the deployer a builder for {system}: a `builders` entry in nix.conf that lists {system} \
         (e.g. `ssh://root@arm-builder {system}`), or `extra-platforms = {system}` with binfmt emulation"
    );
    match site {
        Site::Target => Ok(()),
        Site::Deployer => {
            let here = deployer_system == system || extra_platforms.iter().any(|p| p == system);
            let builder = builders
                .iter()
                .any(|m| m.systems.iter().any(|s| s == system));
            if here || builder {
                Ok(())
            } else {
                Err(format!(
                    "{host}'s system is {system} and is built on the deployer, but this machine is {deployer_system} \
                     (extra-platforms: {}) and no configured builder lists {system}; {fixes}",
                    if extra_platforms.is_empty() {
                        "none".to_string()
                    } else {
                        extra_platforms.join(" ")
                    }
                ))
            }
        }
        Site::NixBuilder(m) => {
            if m.systems.iter().any(|s| s == system) {
                Ok(())
            } else {
                Err(format!(
                    "{host}'s system is {system}, but its builder {} builds only {}; {fixes}",
                    m.uri,
                    m.systems.join(" ")
                ))
            }
        }
        Site::Host { name, .. } => {
            let theirs = fleet
                .iter()
                .find(|h| &h.name == name)
                .map(|h| h.system.as_str().to_string())
                .unwrap_or_default();
            if theirs == system {
                Ok(())
            } else {
                Err(format!(
                    "{host}'s system is {system}, but its builder {name} is {theirs}; {fixes}"
                ))
            }
        }
    }
}

/// Where a builder's output is read from when it is relayed to the target.
enum Source {
    /// Another inventory host, through potato's SSH to it.
    Host(Remote),
    /// A Nix remote builder's store, through Nix's own SSH store (its URI).
    Store(String),
}

/// Builds `job` at its site and, for a builder, relays the output's closure
/// from the builder to the target (`remote`). The run's push counters
/// describe the derivation closure.
pub(super) fn build_remotely(
    run: &mut Run,
    remote: &Remote,
    job: &Job,
    opts: &super::DeployOptions,
) -> Result<BuildReport, DeployError> {
    let Some((mut report, from)) = build_on_builder(run, job, opts)? else {
        return build_on_target(run, remote, job, opts);
    };
    let (paths, bytes) = relay(&from, &report.on, remote, &job.evaluated.out)?;
    report.relayed_paths = paths;
    report.relayed_bytes = bytes;
    run.log(format!(
        "{paths} paths ({bytes} bytes) relayed from {} to the target",
        report.on
    ));
    Ok(report)
}

/// Builds `job` on its builder (another inventory host, or a Nix remote
/// builder), leaving the output there; None when the site is the target.
fn build_on_builder(
    run: &mut Run,
    job: &Job,
    opts: &super::DeployOptions,
) -> Result<Option<(BuildReport, Source)>, DeployError> {
    let built = match &job.site {
        Site::Host { name, target } => {
            let (report, builder) = build_on_host(run, job, opts, name, target)?;
            (report, Source::Host(builder))
        }
        Site::NixBuilder(machine) => {
            let uri = build_store_uri(machine);
            let report = build_on_nix_builder(run, job, machine, &uri)?;
            (report, Source::Store(uri))
        }
        Site::Deployer | Site::Target => return Ok(None),
    };
    log_built(run, &built.0);
    Ok(Some(built))
}

/// The target builds its own system: the derivation closure is pushed to it
/// (what it lacks), and it realises it, substituting what it can.
fn build_on_target(
    run: &mut Run,
    remote: &Remote,
    job: &Job,
    opts: &super::DeployOptions,
) -> Result<BuildReport, DeployError> {
    let on = job.site.label();
    let sent = send_derivations(run, remote, job, opts)?;
    run.log(format!(
        "building on {on}: sent {sent} derivation-closure paths"
    ));
    let mut report = realise(remote, &job.evaluated, &on)?;
    report.derivation_paths_sent = sent;
    run.result.paths_fetched = report.fetched;
    log_built(run, &report);
    Ok(report)
}

/// "built on X: N derivations built, M paths fetched by the builder".
fn log_built(run: &Run, report: &BuildReport) {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    run.log(format!(
        "built on {}: {} derivation{} built, {} path{} fetched by the builder",
        report.on,
        report.built.len(),
        plural(report.built.len()),
        report.fetched,
        plural(report.fetched),
    ));
}

/// Builds on another inventory host (potato's SSH to it, its deploy target):
/// the derivation closure is pushed to it and it realises it, with a GC root
/// (`realise`). Returns the build and the connection to the builder.
fn build_on_host(
    run: &mut Run,
    job: &Job,
    opts: &super::DeployOptions,
    name: &str,
    target: &Target,
) -> Result<(BuildReport, Remote), DeployError> {
    let mut ssh = opts.ssh.clone();
    ssh.host_name = Some(name.to_string());
    let builder = Remote::connect(target, &ssh).map_err(|source| BuildError::Connect {
        builder: name.to_string(),
        source: Box::new(source),
    })?;
    let sent = send_derivations(run, &builder, job, opts)?;
    run.log(format!(
        "building on {name}: sent {sent} derivation-closure paths"
    ));
    let mut report = realise(&builder, &job.evaluated, name)?;
    report.derivation_paths_sent = sent;
    Ok((report, builder))
}

/// Builds on a Nix remote builder of the deployer's `builders` through Nix's
/// own SSH store at `uri` (`nix::remote_store`, the builders line's SSH key
/// and host key in the store URI): what the builder lacks of the derivation
/// closure is copied to it (`nix copy --derivation`) and it realises the
/// derivation. A deploy then relays the output's closure builder → target
/// (`relay`): `nix-store --store BUILDER --export` here, piped into
/// `nix-store --import` on the target over potato's SSH. The bytes pass
/// through this process, never into the deployer's store.
///
/// A direct builder → target copy is not possible in general: the builder has
/// no credentials for the target (potato's SSH identity, known_hosts and jump
/// hosts are the deployer's; the builders line lets the deployer reach the
/// builder, not the builder the target). And potato's own SSH handle is not
/// used for the builder, as it is for an inventory host: a dedicated builder
/// often admits only Nix's protocols (NixOS `nix.sshServe` forces
/// `nix-store --serve` / `nix-daemon --stdio`), not a shell, and its key and
/// host key are in the builders line, where Nix already reads them.
///
/// No GC root guards the output on the builder between the realisation and
/// the export: see `remote_store::realise` for why Nix 2.8 cannot make one
/// there. A garbage collection on the builder in that window makes the
/// export fail (Nix refuses an invalid path; nothing wrong is imported), and
/// the deploy fails with Nix's error; running it again builds again.
fn build_on_nix_builder(
    run: &mut Run,
    job: &Job,
    machine: &Machine,
    uri: &str,
) -> Result<BuildReport, BuildError> {
    let on = machine.uri.clone();
    let nix = |source| BuildError::Nix {
        on: on.clone(),
        source: Box::new(source),
    };
    let ev = &job.evaluated;
    let closure =
        nix_derivation_closure(&ev.drv).map_err(|source| BuildError::DerivationClosure {
            drv: ev.drv.clone(),
            source: Box::new(source),
        })?;
    let paths: Vec<StorePath> = closure.into_iter().map(|c| c.path).collect();
    let lacking = remote_store::missing(uri, &paths).map_err(nix)?;
    if !lacking.is_empty() {
        remote_store::copy_derivation(uri, &ev.drv).map_err(nix)?;
    }
    run.log(format!(
        "building on {on}: sent {} derivation-closure paths",
        lacking.len()
    ));
    let plan = remote_store::dry_run(uri, &ev.drv, machine.max_jobs).map_err(nix)?;
    let outputs = match remote_store::realise(uri, &ev.drv, machine.max_jobs).map_err(nix)? {
        Ok(outputs) => outputs,
        Err(failed) => {
            return Err(BuildError::Failed {
                on,
                drv: ev.drv.clone(),
                code: failed.code,
                tail: log_tail(&failed.stderr),
            });
        }
    };
    if !outputs.contains(&ev.out) {
        return Err(BuildError::NoOutput {
            on,
            drv: ev.drv.clone(),
            out: ev.out.clone(),
        });
    }
    Ok(BuildReport {
        on,
        built: built_names(&plan),
        fetched: plan.fetch.len(),
        derivation_paths_sent: lacking.len(),
        ..Default::default()
    })
}

/// The names of the derivations a dry run says will be built, without ".drv".
fn built_names(plan: &DryRun) -> Vec<String> {
    plan.build
        .iter()
        .map(|p| p.name().trim_end_matches(".drv").to_string())
        .collect()
}

/// The store URI a build on `machine` goes through. An `ssh://` builder is
/// reached as `ssh-ng://` (same user, host, key and host key): Nix 2.8's
/// legacy SSH store cannot realise a derivation from the command line (its
/// `queryMissing` needs `getFSAccessor`, which that store lacks: "operation
/// 'getFSAccessor' is not supported by store 'ssh://...'"), while the daemon
/// protocol (`nix-daemon --stdio` on the builder, shipped with every Nix) can.
/// A builder whose SSH forces `nix-store --serve` (NixOS `nix.sshServe` with
/// protocol "ssh") then fails with Nix's own error, named in the report.
fn build_store_uri(machine: &Machine) -> String {
    let uri = machine.store_uri();
    match uri.strip_prefix("ssh://") {
        Some(rest) => format!("ssh-ng://{rest}"),
        None => uri,
    }
}

/// One shell word for a command on a builder.
fn q(s: &str) -> Result<String, BuildError> {
    sh::word(s).map_err(BuildError::Unsendable)
}

/// An error of potato's SSH to the target during a relay.
fn on_target(source: HostError) -> BuildError {
    BuildError::Host {
        on: "the target".into(),
        source: Box::new(source),
    }
}

/// Copies what `to` lacks of `out`'s closure from the builder `on` (read
/// from `from`), streamed: `nix-store --export` there piped into `nix-store
/// --import` on `to`, through this process and never into its store.
fn relay(
    from: &Source,
    on: &str,
    to: &Remote,
    out: &StorePath,
) -> Result<(usize, u64), BuildError> {
    // nix-store -qR lists dependencies first, the order --import needs.
    let closure = from.closure(on, out)?;
    let missing = to.missing(&closure).map_err(on_target)?;
    if missing.is_empty() {
        return Ok((0, 0));
    }
    let mut bytes = 0u64;
    let (export, imported, export_err) = from.stream(on, &missing, to, &mut |n| bytes = n)?;
    if export != 0 || !imported.success() {
        return Err(BuildError::Relay {
            export,
            import: imported.code,
            detail: format!("{} {}", export_err.trim(), imported.stderr.trim())
                .trim()
                .to_string(),
        });
    }
    Ok((missing.len(), bytes))
}

impl Source {
    /// `out`'s closure in the builder's store, dependencies first.
    fn closure(&self, on: &str, out: &StorePath) -> Result<Vec<StorePath>, BuildError> {
        match self {
            Source::Store(uri) => {
                remote_store::closure(uri, out).map_err(|source| BuildError::Nix {
                    on: on.to_string(),
                    source: Box::new(source),
                })
            }
            Source::Host(builder) => {
                let listed = builder
                    .run(&format!("nix-store -qR {}", q(out.as_str())?))
                    .map_err(|source| BuildError::Host {
                        on: on.to_string(),
                        source: Box::new(source),
                    })?;
                if !listed.success() {
                    return Err(BuildError::BuilderClosure {
                        out: out.clone(),
                        detail: listed.stderr.trim().to_string(),
                    });
                }
                crate::nix::store_path::parse_lines(&listed.stdout).map_err(|source| {
                    BuildError::BadPath {
                        out: out.clone(),
                        source,
                    }
                })
            }
        }
    }

    /// Streams `nix-store --export PATHS` from the builder into `nix-store
    /// --import` on `to`: the export's exit code, the import's output, and
    /// what the export said on stderr.
    fn stream(
        &self,
        on: &str,
        paths: &[StorePath],
        to: &Remote,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(i32, crate::ssh::Output, String), BuildError> {
        match self {
            Source::Store(uri) => stream_from_store(uri, on, paths, to, progress),
            Source::Host(builder) => {
                let args = paths
                    .iter()
                    .map(|p| q(p.as_str()))
                    .collect::<Result<Vec<_>, _>>()?;
                let (export, imported) = builder
                    .pipe_into(
                        &format!(
                            "nix-store --export {} 2>{}/export.err",
                            args.join(" "),
                            crate::host::paths::STATE_DIR
                        ),
                        to,
                        "nix-store --import",
                        progress,
                    )
                    .map_err(|source| BuildError::Host {
                        on: on.to_string(),
                        source: Box::new(source),
                    })?;
                Ok((export, imported, String::new()))
            }
        }
    }
}

/// `nix-store --store URI --export PATHS` here, its stdout streamed into
/// `nix-store --import` on `to` (stderr drained alongside, so neither pipe
/// can stall).
fn stream_from_store(
    uri: &str,
    on: &str,
    paths: &[StorePath],
    to: &Remote,
    progress: &mut dyn FnMut(u64),
) -> Result<(i32, crate::ssh::Output, String), BuildError> {
    let mut child = remote_store::export(uri, paths).map_err(|source| BuildError::Nix {
        on: on.to_string(),
        source: Box::new(source),
    })?;
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut e, &mut text);
            text
        })
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let imported = to.run_with("nix-store --import", &mut stdout, progress);
    drop(stdout);
    let status = child.wait();
    let export_err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let imported = imported.map_err(on_target)?;
    let export = status.ok().and_then(|s| s.code()).unwrap_or(-1);
    Ok((export, imported, export_err))
}

/// Pushes what `remote` lacks of the job's derivation closure through the one
/// push pipeline (no substitution: derivations are not in binary caches);
/// returns how many paths were sent.
fn send_derivations(
    run: &mut Run,
    remote: &Remote,
    job: &Job,
    opts: &super::DeployOptions,
) -> Result<usize, DeployError> {
    let drv = &job.evaluated.drv;
    let closure = nix_derivation_closure(drv).map_err(|source| BuildError::DerivationClosure {
        drv: drv.clone(),
        source: Box::new(source),
    })?;
    let pushed = run.push_paths(remote, closure, opts, false)?;
    Ok(pushed.paths)
}

/// `nix-store --realise` of the job's derivation on `remote`: a dry run first
/// (what will be built, what fetched), then the build, with a GC root so the
/// result survives until activation makes it the system profile.
fn realise(remote: &Remote, ev: &Evaluated, on: &str) -> Result<BuildReport, BuildError> {
    let host = |source| BuildError::Host {
        on: on.to_string(),
        source: Box::new(source),
    };
    let drv = q(ev.drv.as_str())?;
    let state = crate::host::paths::STATE_DIR;
    let root = format!(
        "{state}/built-{}",
        &ev.out.hash()[..ev.out.hash().len().min(12)]
    );
    let dry = remote
        .run(&format!("nix-store --realise --dry-run {drv} 2>&1"))
        .map_err(host)?;
    let plan = DryRun::parse(&dry.stdout);
    let out = remote
        .run(&format!(
            "mkdir -p {state} && nix-store --realise {drv} --add-root {}",
            q(&root)?
        ))
        .map_err(host)?;
    if !out.success() {
        return Err(BuildError::Failed {
            on: on.into(),
            drv: ev.drv.clone(),
            code: out.code,
            tail: log_tail(&out.stderr),
        });
    }
    // With --add-root Nix prints the root, not the output; the root must point
    // at the output potato evaluated.
    let points = remote
        .run(&format!("readlink -e {}", q(&root)?))
        .map_err(host)?;
    if points.stdout.trim() != ev.out.as_str() {
        return Err(BuildError::NoOutput {
            on: on.into(),
            drv: ev.drv.clone(),
            out: ev.out.clone(),
        });
    }
    Ok(BuildReport {
        on: on.into(),
        built: built_names(&plan),
        fetched: plan.fetch.len(),
        ..Default::default()
    })
}

/// The last lines of a builder's output, without Nix's own noise.
pub fn log_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("you did not specify '--add-root'"))
        .collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

/// Where each selected host is built. The deployer's Nix `builders` are read
/// only when a name is not a host file.
pub fn sites(
    selected: &[HostPlan],
    fleet: &[HostPlan],
    over: Option<&BuildOn>,
) -> Result<BTreeMap<String, Site>, SiteError> {
    let needs_builders = selected.iter().any(|p| {
        matches!(over.unwrap_or(&p.deploy.build_on), BuildOn::Host(n)
            if n != &p.name && !fleet.iter().any(|h| &h.name == n))
    });
    let builders = if needs_builders {
        deployer_builders().map_err(SiteError::NixConfig)?
    } else {
        Vec::new()
    };
    selected
        .iter()
        .map(|p| {
            let site = site_for(p, over, fleet, &builders).map_err(SiteError::Unknown)?;
            Ok((p.name.clone(), site))
        })
        .collect()
}

/// `potato check`'s question for every selected host: can its system be built
/// where it is set to be built? Returns one problem per host that cannot; Err
/// when the deployer's Nix configuration cannot be read (nothing is known).
pub fn unbuildable(selected: &[HostPlan], fleet: &[HostPlan]) -> Result<Vec<String>, String> {
    let eff = crate::nix::config::effective().map_err(|e| e.to_string())?;
    let s = &eff.settings;
    let system = s.get("system").unwrap_or("").to_string();
    let extra = s.list("extra-platforms");
    let builders =
        crate::nix::config::Builders::parse_with_files(s.get("builders").unwrap_or(""), &system)
            .machines;
    let mut problems = Vec::new();
    for p in selected {
        let site = match site_for(p, None, fleet, &builders) {
            Ok(site) => site,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if let Err(e) = check_site(
            &p.name,
            p.system.as_str(),
            &site,
            &system,
            &extra,
            &builders,
            fleet,
        ) {
            problems.push(format!("{}: {e}", p.file));
        }
    }
    Ok(problems)
}

/// The deployer's configured remote builders (nix.conf `builders`).
pub fn deployer_builders() -> Result<Vec<Machine>, crate::nix::NixError> {
    let eff = crate::nix::config::effective()?;
    let s = &eff.settings;
    Ok(crate::nix::config::Builders::parse_with_files(
        s.get("builders").unwrap_or(""),
        s.get("system").unwrap_or(""),
    )
    .machines)
}

/// Builds one host's system at its site without deploying (`potato build
/// --build-on`): on a builder (another host, a Nix remote builder) the output
/// stays there and the target is not reached; on the target, it is connected
/// to, sent the derivation closure, and realises it.
/// Its phases and log lines go to `events`.
pub fn build_only(
    plan: &HostPlan,
    job: &Job,
    opts: &super::DeployOptions,
    events: &std::sync::mpsc::Sender<super::Event>,
) -> Result<BuildReport, DeployError> {
    let mut run = Run::new(plan, &job.evaluated.out, opts, events);
    run.enter(super::Phase::Build);
    if let Some((report, _)) = build_on_builder(&mut run, job, opts)? {
        return Ok(report);
    }
    let mut ssh = opts.ssh.clone();
    ssh.host_name = Some(plan.name.clone());
    let target = opts
        .target
        .clone()
        .unwrap_or_else(|| plan.deploy.target.clone());
    let remote = Remote::connect(&target, &ssh).map_err(DeployError::Connect)?;
    build_on_target(&mut run, &remote, job, opts)
}

/// Jobs of the hosts not built on the deployer, by host name.
pub fn jobs(
    sites: &BTreeMap<String, Site>,
    evaluated: &BTreeMap<String, Evaluated>,
) -> BTreeMap<String, Job> {
    sites
        .iter()
        .filter(|(_, s)| matches!(s, Site::Target | Site::Host { .. } | Site::NixBuilder(_)))
        .filter_map(|(h, s)| {
            evaluated.get(h).map(|e| {
                (
                    h.clone(),
                    Job {
                        site: s.clone(),
                        evaluated: e.clone(),
                    },
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_names_are_host_names() {
        assert!(check_builder_name("arm-builder.lan").is_ok());
        assert!(check_builder_name("b_1").is_ok());
        for bad in ["", "-x", ".x", "a b", "a;rm", "ssh://x", "x\n"] {
            assert!(check_builder_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_ssh_builder_is_built_on_through_the_daemon_protocol() {
        let m = Machine::parse("ssh://nix@b1:2222 x86_64-linux /k", "x86_64-linux").unwrap();
        assert_eq!(build_store_uri(&m), "ssh-ng://nix@b1:2222?ssh-key=/k");
        let m = Machine::parse("ssh-ng://b2", "x86_64-linux").unwrap();
        assert_eq!(build_store_uri(&m), "ssh-ng://b2");
        let m = Machine::parse("b3", "x86_64-linux").unwrap();
        assert_eq!(build_store_uri(&m), "ssh-ng://b3");
    }

    #[test]
    fn uri_hosts() {
        assert_eq!(uri_host("ssh://root@b1:2222"), "b1");
        assert_eq!(uri_host("ssh-ng://b2"), "b2");
        assert_eq!(uri_host("b3"), "b3");
    }

    #[test]
    fn the_log_tail_keeps_the_last_lines_only() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = log_tail(&text);
        assert!(t.starts_with("line 70") && t.ends_with("line 99"), "{t}");
        assert_eq!(
            log_tail("warning: you did not specify '--add-root'; x\nboom"),
            "boom"
        );
    }

    fn machine(uri: &str, systems: &[&str]) -> Machine {
        Machine {
            uri: uri.into(),
            systems: systems.iter().map(|s| s.to_string()).collect(),
            ssh_key: None,
            max_jobs: 1,
            host_key: None,
        }
    }

    #[test]
    fn a_foreign_system_needs_a_builder_or_the_target() {
        let none: &[Machine] = &[];
        let err = check_site(
            "lepotato",
            "aarch64-linux",
            &Site::Deployer,
            "x86_64-linux",
            &[],
            none,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("build_on = \"target\""), "{err}");
        assert!(err.contains("builders"), "{err}");
        let plat = ["aarch64-linux".to_string()];
        assert!(
            check_site(
                "l",
                "aarch64-linux",
                &Site::Deployer,
                "x86_64-linux",
                &plat,
                none,
                &[]
            )
            .is_ok()
        );
        let arm = [machine("ssh://arm", &["aarch64-linux"])];
        assert!(
            check_site(
                "l",
                "aarch64-linux",
                &Site::Deployer,
                "x86_64-linux",
                &[],
                &arm,
                &[]
            )
            .is_ok()
        );
        assert!(
            check_site(
                "l",
                "aarch64-linux",
                &Site::Target,
                "x86_64-linux",
                &[],
                none,
                &[]
            )
            .is_ok()
        );
        let x86 = machine("ssh://x", &["x86_64-linux"]);
        assert!(
            check_site(
                "l",
                "aarch64-linux",
                &Site::NixBuilder(x86),
                "x86_64-linux",
                &[],
                none,
                &[]
            )
            .unwrap_err()
            .contains("builds only x86_64-linux")
        );
    }
}
