//! `potato deploy HOSTS`: types the flags, then `ops::deploy` builds once and
//! runs every host's pipeline, its progress shown by the reporter
//! (`ui::Reporter`); then the summary table (or the JSON document).

use std::time::Duration;

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
/// confirm timeout.
///
/// Before the push each host fetches what it can from its own substituters
/// (--no-substitute: not). With a fleet cache ([fleet.cache] in a host file)
/// and two or more such hosts, each path leaves here once: it is pushed to the
/// cache host and published into its signed cache while the other hosts
/// connect, then they fetch from it and potato pushes only what is still
/// missing. One host is pushed to directly. If the cache cannot be used, one
/// warning, and every host is pushed to directly.
///
/// Exit codes: 0 every host deployed or up to date, 1 a host failed or rolled
/// back, 2 invalid input.
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
    #[arg(long, value_enum)]
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
    let (results, cache) = deploy::deploy(&fleet, selected, &request, &report)?;
    let ok = results.iter().all(|r| r.result.is_ok());
    let mut doc = serde_json::json!({ "ok": ok, "hosts": results });
    if let Some(c) = &cache {
        // The fleet cache step: host, paths published, bytes pushed to it.
        doc["cache"] = serde_json::json!(c);
    }
    report.document(&doc);
    // With --quiet, the table only when a host failed.
    let quiet_ok = g.quiet && ok;
    if !g.json && !quiet_ok {
        summary(&results);
        if let Some(c) = &cache {
            println!("{}", cache_line(c));
        }
    }
    deploy::failed(&results)
}

/// The fleet cache's line under the table: what went to the cache host once.
fn cache_line(c: &crate::deploy::cache::CacheReport) -> String {
    format!(
        "fleet cache on {}: {} pushed to it ({} paths), {} new paths published{}{}",
        c.host,
        mb(c.bytes_pushed),
        c.paths_pushed,
        c.paths_published,
        if c.paths_replaced > 0 {
            format!(
                " ({} replacing unsigned or wrongly signed ones)",
                c.paths_replaced
            )
        } else {
            String::new()
        },
        if c.error.is_some() {
            " (not used: the hosts were pushed to directly)"
        } else {
            ""
        }
    )
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
