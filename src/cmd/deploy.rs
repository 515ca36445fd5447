//! `potato deploy` and `potato build`: evaluate and build once for every selected
//! host, then run each host's pipeline in parallel on tokio's blocking pool.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Connection, DeployArgs, Global, NixArgs};
use crate::deploy::build_on::Site;
use crate::deploy::{self, DeployOptions, HostResult, Outcome};
use crate::error::Error;
use crate::inventory::schema::BuildOn;
use crate::nix::{self, StorePath};
use crate::plan::HostPlan;
use crate::ssh::SshOptions;
use crate::ui::Renderer;
use crate::{render, repo, resolve, units};

pub fn run(g: &Global, args: &DeployArgs) -> Result<(), Error> {
    if args.hosts.hosts.is_empty() && !args.all {
        return Err(Error::usage(
            "name the hosts to deploy",
            "potato deploy n250, potato deploy @media, or potato deploy --all",
        ));
    }
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let selected: Vec<HostPlan> = repo::select(&plans, &args.hosts.hosts)?
        .into_iter()
        .cloned()
        .collect();
    let over = build_on_override(args.build_on.as_deref())?;
    let sites = deploy::build_on::sites(&selected, &plans, over.as_ref())
        .map_err(|e| Error::usage(e, BUILD_ON_HINT))?;
    let mut opts = deploy_options(g, &root, args, &selected)?;
    refuse_stale_generated(&root, &selected)?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let mut renderer = Renderer::new(g.json, g.verbose > 0, g.quiet, &names);
    renderer.note(&format!(
        "building {} system{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    ));
    let (toplevels, jobs) = build_where(&root, &args.nix, &names, &sites)?;
    opts.builds = jobs;
    let results = run_parallel(selected, toplevels, opts, args.parallel, &mut renderer);
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
    Ok(())
}

/// `potato build HOSTS`: one Nix invocation, store paths printed. Hosts built
/// elsewhere (`--build-on`, build_on) are evaluated here and realised there.
pub fn build_command(
    g: &Global,
    hosts: &[String],
    nix_args: &NixArgs,
    build_on: Option<&str>,
    conn: &Connection,
) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let selected: Vec<HostPlan> = repo::select(&plans, hosts)?.into_iter().cloned().collect();
    refuse_stale_generated(&root, &selected)?;
    let over = build_on_override(build_on)?;
    let sites = deploy::build_on::sites(&selected, &plans, over.as_ref())
        .map_err(|e| Error::usage(e, BUILD_ON_HINT))?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let (tops, jobs) = build_where(&root, nix_args, &names, &sites)?;
    let mut reports = BTreeMap::new();
    if !jobs.is_empty() {
        let opts = DeployOptions {
            ssh: ssh_options(g, &root, conn)?,
            mode: None,
            no_magic_rollback: false,
            confirm_timeout: None,
            activation_timeout: Duration::from_secs(300),
            target: target_override(conn, selected.len())?,
            force: false,
            holder: String::new(),
            compress: None,
            builds: jobs.clone(),
            substitute: true,
        };
        let mut failed = 0;
        for plan in selected.iter().filter(|p| jobs.contains_key(&p.name)) {
            match deploy::build_on::build_only(plan, &jobs[&plan.name], &opts) {
                Ok(r) => {
                    reports.insert(plan.name.clone(), r);
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {}: {e}", plan.name);
                }
            }
        }
        if failed > 0 {
            return Err(Error::HostsFailed {
                failed,
                total: selected.len(),
            });
        }
    }
    if g.json {
        let out: BTreeMap<&String, serde_json::Value> = tops
            .iter()
            .map(|(h, p)| {
                let on = reports
                    .get(h)
                    .map(|r| r.on.clone())
                    .unwrap_or_else(|| "deployer".into());
                (
                    h,
                    serde_json::json!({ "store_path": p, "built_on": on, "build": reports.get(h) }),
                )
            })
            .collect();
        println!("{}", serde_json::to_string(&out).expect("paths serialize"));
    } else {
        for (h, p) in &tops {
            match reports.get(h) {
                Some(r) => println!("{h:<16} {p}  (built on {})", r.on),
                None => println!("{h:<16} {p}"),
            }
        }
    }
    Ok(())
}

const BUILD_ON_HINT: &str = "build_on (and --build-on) is local, target, a host file's name, or a builder in the deployer's nix.conf `builders`";

fn build_on_override(v: Option<&str>) -> Result<Option<BuildOn>, Error> {
    let Some(v) = v else { return Ok(None) };
    let b = BuildOn::from(v.to_string());
    if let BuildOn::Host(name) = &b {
        deploy::build_on::check_builder_name(name)
            .map_err(|e| Error::usage(format!("--build-on {v:?}: {e}"), BUILD_ON_HINT))?;
    }
    Ok(Some(b))
}

type Toplevels = BTreeMap<String, StorePath>;
type Jobs = BTreeMap<String, deploy::build_on::Job>;

/// Builds the hosts built here (one `nix build`) and evaluates the others (one
/// `nix eval`): every host's toplevel, plus the remote builds to run.
fn build_where(
    root: &camino::Utf8Path,
    nix_args: &NixArgs,
    names: &[String],
    sites: &BTreeMap<String, Site>,
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
        build(root, nix_args, &here)?
    };
    let flake = super::flake_for(root, nix_args);
    let evaluated = nix::derivation::evaluate_toplevels(&flake, &elsewhere)?;
    for (h, e) in &evaluated {
        tops.insert(h.clone(), e.out.clone());
    }
    Ok((tops, deploy::build_on::jobs(sites, &evaluated)))
}

pub fn build(
    root: &camino::Utf8Path,
    nix_args: &NixArgs,
    names: &[String],
) -> Result<BTreeMap<String, StorePath>, Error> {
    let flake = super::flake_for(root, nix_args);
    let untracked = nix::untracked_inputs(root);
    if !untracked.is_empty() && flake.reference.starts_with("git+") {
        eprintln!(
            "warning: Nix sees only files git tracks; these are untracked and ignored: {}",
            untracked
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        eprintln!("hint: git add them");
    }
    Ok(nix::build_toplevels(&flake, names)?)
}

/// Deploying stale modules would deploy something the host files do not say.
pub(super) fn refuse_stale_generated(
    root: &camino::Utf8Path,
    selected: &[HostPlan],
) -> Result<(), Error> {
    let files = render::render_all(selected, root)?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let stale = render::check(root, &files, &names, false)?;
    if stale.changed.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = stale.changed.iter().map(|(p, _)| p.as_str()).collect();
    Err(Error::usage(
        format!("generated files are stale: {}", list.join(", ")),
        "run `potato gen` (and commit) before deploying",
    ))
}

pub fn ssh_options(
    g: &Global,
    root: &camino::Utf8Path,
    conn: &Connection,
) -> Result<SshOptions, Error> {
    let _ = g;
    let timeout = units::parse_duration(&conn.connect_timeout).map_err(|e| {
        Error::usage(
            format!("--connect-timeout: {e}"),
            "e.g. --connect-timeout 10s",
        )
    })?;
    // The repository's pins: never a link (it would pin, or record, keys in a
    // file outside the repository).
    crate::fsguard::RepoFs::open(root)?
        .refuse_link(camino::Utf8Path::new("secrets/known_hosts"))?;
    let trust_file = root.join("secrets/known_hosts");
    let known_hosts = match &conn.known_hosts {
        Some(f) => vec![f.clone()],
        None => {
            let mut v = vec![trust_file.clone()];
            if let Some(home) = std::env::var_os("HOME") {
                v.push(
                    camino::Utf8PathBuf::from(home.to_string_lossy().as_ref())
                        .join(".ssh/known_hosts"),
                );
            }
            v
        }
    };
    Ok(SshOptions {
        identity: conn.identity.clone(),
        known_hosts,
        trust_file: conn.known_hosts.clone().unwrap_or(trust_file),
        connect_timeout: timeout,
        ssh_config: conn.ssh_config.clone(),
        host_name: None,
    })
}

pub fn target_override(
    conn: &Connection,
    selected: usize,
) -> Result<Option<crate::plan::Target>, Error> {
    let Some(t) = &conn.target else {
        return Ok(None);
    };
    if selected != 1 {
        return Err(Error::usage(
            "--target replaces one host's address, but several hosts are selected",
            "name exactly one host with --target",
        ));
    }
    resolve::parse_target(t)
        .map(Some)
        .map_err(|e| Error::usage(format!("--target: {e}"), "write USER@ADDR[:PORT]"))
}

fn deploy_options(
    g: &Global,
    root: &camino::Utf8Path,
    args: &DeployArgs,
    selected: &[HostPlan],
) -> Result<DeployOptions, Error> {
    let dur = |flag: &str, v: &str| {
        units::parse_duration(v)
            .map_err(|e| Error::usage(format!("{flag}: {e}"), format!("e.g. {flag} 30s")))
    };
    let confirm_timeout = args
        .confirm_timeout
        .as_deref()
        .map(|v| dur("--confirm-timeout", v))
        .transpose()?;
    let activation_timeout: Duration = dur("--activation-timeout", &args.activation_timeout)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let machine = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    Ok(DeployOptions {
        ssh: ssh_options(g, root, &args.conn)?,
        mode: args.mode.clone(),
        no_magic_rollback: args.no_magic_rollback,
        confirm_timeout,
        activation_timeout,
        target: target_override(&args.conn, selected.len())?,
        force: args.force,
        compress: match args.compress.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        builds: BTreeMap::new(),
        substitute: !args.no_substitute,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(parallel.max(1) + 2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let opts = Arc::new(opts);
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let order: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let handle = rt.spawn(async move {
        let mut tasks = Vec::new();
        for plan in selected {
            let top = toplevels[&plan.name].clone();
            let (opts, sem, tx) = (opts.clone(), sem.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                tokio::task::spawn_blocking(move || deploy::deploy_host(&plan, &top, &opts, &tx))
                    .await
                    .expect("deploy task")
            }));
        }
        drop(tx);
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("deploy task"));
        }
        out
    });
    for e in rx {
        renderer.event(&e);
    }
    let mut results = rt.block_on(handle).expect("deploy tasks");
    results.sort_by_key(|r| order.iter().position(|h| h == &r.host));
    results
}
