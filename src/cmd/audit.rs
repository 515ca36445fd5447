//! `potato audit HOST [--live]`: the SSH and kernel baseline (harden::baseline),
//! judged on the generated files a deploy would install and, with --live, on the
//! running host's effective values (`sshd -T`, `sysctl -n`), read over SSH.

use serde::Serialize;
use serde_json::json;

use super::args::{Connection, Global};
use crate::error::Error;
use crate::harden::baseline::{self, Daemon, Facts, Outcome};
use crate::ops::fleet::Fleet;
use crate::render::{GENERATED_DIR, Renderer};

/// Marks where `sshd -T` output ends and the sysctl values begin.
const SPLIT: &str = "@@potato-sysctl@@";

#[derive(Debug, Serialize)]
struct Row {
    #[serde(flatten)]
    generated: Outcome,
    file: &'static str,
    live: Option<LiveOutcome>,
}

#[derive(Debug, Serialize)]
struct LiveOutcome {
    pass: bool,
    found: Option<String>,
}

/// Check the SSH and kernel baseline: each rule, pass or fail, on the
/// generated files (what a deploy installs) and with --live on the running host.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Host name.
    pub host: String,
    /// Also read the running host's effective values over SSH (`sshd -T`, sysctl).
    #[arg(long)]
    pub live: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let (host, live) = (a.host.as_str(), a.live);
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let (plan, target) = fleet.one(host)?;
    let root = &fleet.root;
    let items = baseline::items(&plan);
    let dir = camino::Utf8PathBuf::from(GENERATED_DIR).join(&plan.name);
    let read = |daemon: Daemon| -> Result<String, Error> {
        Ok(
            crate::render::writer::read_generated(root, &dir.join(daemon.file()))?
                .unwrap_or_default(),
        )
    };
    let generated = baseline::judge(
        &items,
        &baseline::parse_sshd(&read(Daemon::Sshd)?),
        &baseline::parse_sysctl(&read(Daemon::Sysctl)?),
    );
    let stale = stale_files(root, &plan)?;

    let live_outcomes = if live {
        let remote = fleet.connect(host, &target)?;
        let (sshd, sysctl) = live_facts(&remote, host, &items)?;
        Some(baseline::judge(&items, &sshd, &sysctl))
    } else {
        None
    };
    let rows: Vec<Row> = generated
        .into_iter()
        .enumerate()
        .map(|(i, o)| Row {
            file: o.daemon.file(),
            live: live_outcomes.as_ref().map(|l| LiveOutcome {
                pass: l[i].pass,
                found: l[i].found.clone(),
            }),
            generated: o,
        })
        .collect();
    let failed = rows
        .iter()
        .filter(|r| !r.generated.pass || r.live.as_ref().is_some_and(|l| !l.pass))
        .count()
        + usize::from(!stale.is_empty());

    if g.json {
        let v = json!({
            "ok": failed == 0,
            "host": plan.name,
            "generated_dir": dir.as_str(),
            "stale_files": stale,
            "checks": rows,
        });
        println!("{v}");
    } else {
        print_table(&plan.name, dir.as_str(), &rows, &stale, live);
    }
    if failed > 0 {
        return Err(Error::AuditFailed {
            host: plan.name.clone(),
            failed,
        });
    }
    Ok(())
}

/// Generated files that differ from what the host file renders to today.
fn stale_files(
    root: &camino::Utf8Path,
    plan: &crate::plan::HostPlan,
) -> Result<Vec<String>, Error> {
    let mut stale = Vec::new();
    for f in Renderer::new().render_host(plan)? {
        let on_disk = crate::render::writer::read_generated(root, &f.path)?;
        if on_disk.as_deref() != Some(f.content.as_str()) {
            stale.push(f.path.to_string());
        }
    }
    Ok(stale)
}

/// The running host's effective sshd settings and sysctl values.
fn live_facts(
    remote: &crate::deploy::remote::Remote,
    host: &str,
    items: &[baseline::Item],
) -> Result<(Facts, Facts), Error> {
    let keys: Vec<&str> = items
        .iter()
        .filter(|i| i.daemon == Daemon::Sysctl)
        .map(|i| i.key)
        .collect();
    let script = format!(
        "sshd=$(command -v sshd || echo /run/current-system/sw/bin/sshd); [ -x \"$sshd\" ] || sshd=/usr/sbin/sshd; \
         \"$sshd\" -T 2>/dev/null; echo {SPLIT}; \
         for k in {}; do v=$(sysctl -n \"$k\" 2>/dev/null) && printf '%s = %s\\n' \"$k\" \"$v\"; done",
        keys.join(" ")
    );
    let out = remote.session.exec(&script).map_err(|e| Error::Host {
        host: host.into(),
        message: e.to_string(),
    })?;
    let (sshd, sysctl) = out.stdout.split_once(SPLIT).unwrap_or((&out.stdout, ""));
    if sshd.trim().is_empty() {
        return Err(Error::Host {
            host: host.into(),
            message: "`sshd -T` printed nothing: is sshd installed, and are we root?".into(),
        });
    }
    Ok((baseline::parse_sshd(sshd), baseline::parse_sysctl(sysctl)))
}

fn mark(pass: bool) -> &'static str {
    if pass { "pass" } else { "FAIL" }
}

fn shown(key: &str, found: &Option<String>, want: &str, pass: bool) -> String {
    let value = found.as_deref().unwrap_or("(not set)");
    if pass {
        format!("{key} = {value}")
    } else {
        format!("{key} = {value} (want {want})")
    }
}

fn print_table(host: &str, dir: &str, rows: &[Row], stale: &[String], live: bool) {
    println!(
        "{host}: SSH and kernel baseline in {dir}{}",
        if live {
            ", and on the running host"
        } else {
            ""
        }
    );
    let width = rows.iter().map(|r| r.generated.id.len()).max().unwrap_or(0);
    if live {
        println!(
            "  {:<9} {:<5} {:<width$}  setting",
            "generated", "live", "check"
        );
    } else {
        println!("  {:<9} {:<width$}  setting", "generated", "check");
    }
    for r in rows {
        let o = &r.generated;
        let mut line = format!("  {:<9} ", mark(o.pass));
        if let Some(l) = &r.live {
            line.push_str(&format!("{:<5} ", mark(l.pass)));
        }
        line.push_str(&format!(
            "{:<width$}  {}",
            o.id,
            shown(o.key, &o.found, &o.want, o.pass)
        ));
        if let Some(l) = &r.live
            && l.found != o.found
        {
            line.push_str(&format!(
                "; live: {}",
                l.found.as_deref().unwrap_or("(not set)")
            ));
        }
        println!("{line}");
    }
    println!(
        "  {:<9} generated files match the host file{}",
        mark(stale.is_empty()),
        if stale.is_empty() {
            String::new()
        } else {
            format!(" (stale: {})", stale.join(", "))
        }
    );
    let failed_gen = rows.iter().filter(|r| !r.generated.pass).count();
    let failed_live = rows
        .iter()
        .filter(|r| r.live.as_ref().is_some_and(|l| !l.pass))
        .count();
    print!(
        "{} checks: {failed_gen} failed in the generated files",
        rows.len()
    );
    if live {
        print!(", {failed_live} on the running host");
    }
    println!();
}
