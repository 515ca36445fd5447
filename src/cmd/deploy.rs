//! `potato deploy` and `potato build`: evaluate and build once for every selected
//! host, then run each host's pipeline in parallel on tokio's blocking pool.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cli::{Connection, DeployArgs, Global, NixArgs};
use crate::deploy::{self, DeployOptions, HostResult, Outcome};
use crate::error::Error;
use crate::host::push::Compress;
use crate::host::runner;
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
    refuse_build_on_target(&selected)?;
    let opts = deploy_options(g, &root, args, &selected)?;
    refuse_stale_generated(&root, &selected)?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let mut renderer = Renderer::new(g.json, g.verbose > 0, g.quiet, &names);
    renderer.note(&format!(
        "building {} system{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    ));
    let toplevels = build(&root, &args.nix, &names)?;
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

/// `potato build HOSTS`: one Nix invocation, store paths printed.
pub fn build_command(g: &Global, hosts: &[String], nix_args: &NixArgs) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let selected: Vec<HostPlan> = repo::select(&plans, hosts)?.into_iter().cloned().collect();
    refuse_stale_generated(&root, &selected)?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let tops = build(&root, nix_args, &names)?;
    if g.json {
        println!("{}", serde_json::to_string(&tops).expect("paths serialize"));
    } else {
        for (h, p) in &tops {
            println!("{h:<16} {p}");
        }
    }
    Ok(())
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
            "yes" => Compress::Yes,
            "no" => Compress::No,
            _ => Compress::Auto,
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
