//! `potato deploy HOSTS`: types the flags, then `ops::deploy` builds once and
//! runs every host's pipeline, its progress shown by the reporter
//! (`ui::Reporter`); then the summary table (or the JSON document).

use std::time::Duration;

use clap::builder::TypedValueParser;

use super::args::{Connection, Global, Hosts, NixArgs, duration};
use crate::deploy::HostResult;
use crate::error::Error;
use crate::host::push::Compress;
use crate::inventory::schema::{BuildOn, Mode};
use crate::ops::{deploy, fleet::Fleet};
use crate::ui::{Reporter, mb};

/// Build, push, activate and confirm (HOSTS: names or @tags, or --all).
///
/// Each host gets a new NixOS generation. With magic rollback (the default for
/// switch and test), the host arms a watchdog before activating and returns to
/// the generation it ran before unless potato confirms over a NEW SSH
/// connection, after the host file's [[health]] checks pass, within the
/// confirm timeout. Exit codes: 0 every host deployed or up to date, 1 a host
/// failed or rolled back, 2 invalid input.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: Hosts,
    /// Every host.
    #[arg(long, conflicts_with = "hosts")]
    pub all: bool,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub nix: NixArgs,
    /// Activation mode, overriding the host files: switch, boot, test, dry-activate.
    #[arg(long, value_parser = mode())]
    pub mode: Option<Mode>,
    /// Do not arm the rollback watchdog.
    #[arg(long)]
    pub no_magic_rollback: bool,
    /// How long the host waits for confirmation, overriding the host files.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub confirm_timeout: Option<Duration>,
    /// How long an activation may run before the host gives up on it.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = duration)]
    pub activation_timeout: Duration,
    /// Push and activate even when the host already runs this system.
    #[arg(long)]
    pub force: bool,
    /// Hosts deployed at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Compress closures on the wire with zstd: auto (when the host has zstd), yes, no.
    #[arg(long, value_enum, default_value_t = Compress::Auto)]
    pub compress: Compress,
    /// Where to build, overriding the host files' build_on: local, target, or a
    /// builder (a host file's name or a configured Nix builder). Built
    /// elsewhere, only the derivations travel and nothing comes back here.
    #[arg(long, value_name = "local|target|HOST", value_parser = build_on_value)]
    pub build_on: Option<BuildOn>,
    /// Do not let hosts fetch missing paths from their own substituters before
    /// the push (by default they do, when they have any).
    #[arg(long)]
    pub no_substitute: bool,
}

/// `--build-on`: typed by clap, checked like the host file's build_on.
pub fn build_on_value(v: &str) -> Result<BuildOn, String> {
    deploy::parse_build_on(v)
}

/// `--mode`: one of the activation modes the host file's `mode` takes.
fn mode() -> impl clap::builder::TypedValueParser<Value = Mode> {
    clap::builder::PossibleValuesParser::new(["switch", "boot", "test", "dry-activate"]).map(|s| {
        match s.as_str() {
            "boot" => Mode::Boot,
            "test" => Mode::Test,
            "dry-activate" => Mode::DryActivate,
            _ => Mode::Switch,
        }
    })
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    if a.hosts.hosts.is_empty() && !a.all {
        return Err(Error::usage(
            "name the hosts to deploy",
            "potato deploy n250, potato deploy @media, or potato deploy --all",
        ));
    }
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?
        .with_nix(a.nix.overrides())
        .with_connection(a.conn.settings());
    let selected = fleet.select(&a.hosts.hosts)?;
    let request = deploy::Request {
        mode: a.mode,
        no_magic_rollback: a.no_magic_rollback,
        confirm_timeout: a.confirm_timeout,
        activation_timeout: a.activation_timeout,
        force: a.force,
        parallel: a.parallel,
        compress: a.compress,
        build_on: a.build_on.clone(),
        substitute: !a.no_substitute,
    };
    let report = Reporter::new(g.output());
    let results = deploy::deploy(&fleet, selected, &request, &report)?;
    let ok = results.iter().all(|r| r.result.is_ok());
    report.document(&serde_json::json!({ "ok": ok, "hosts": results }));
    // With --quiet, the table only when a host failed.
    let quiet_ok = g.quiet && ok;
    if !g.json && !quiet_ok {
        summary(&results);
    }
    deploy::failed(&results)
}

/// The table of results on stdout, then each failure's full error on stderr.
fn summary(results: &[HostResult]) {
    println!(
        "{:<16} {:<12} {:>10} {:>10} {:>10} {:<10}  store path",
        "host", "result", "generation", "pushed", "fetched", "built on"
    );
    for r in results {
        println!(
            "{:<16} {:<12} {:>10} {:>10} {:>10} {:<10}  {}",
            r.host,
            r.result.as_str(),
            r.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            mb(r.bytes_pushed),
            format!("{} ({})", mb(r.bytes_fetched), r.paths_fetched),
            r.build.on,
            r.store_path.as_ref().map(|p| p.as_str()).unwrap_or("-")
        );
    }
    for r in results.iter().filter(|r| r.error.is_some()) {
        eprintln!(
            "\n{} {}:\n  {}",
            r.host,
            r.result.as_str(),
            r.error.as_deref().unwrap_or("").replace('\n', "\n  ")
        );
    }
}
