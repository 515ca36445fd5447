//! `potato audit HOST [--live]`: the SSH and kernel baseline of a host
//! (`ops::audit`), pass or fail per rule, on the generated files and with
//! --live on the running host.

use serde_json::json;

use super::args::{Connection, Global};
use crate::error::Error;
use crate::ops::audit::{self, Row};
use crate::ops::fleet::Fleet;

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
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let audit::Audit {
        host,
        dir,
        rows,
        stale,
        failed,
    } = audit::audit(&fleet, &a.host, a.live)?;
    if g.json {
        let v = json!({
            "ok": failed == 0,
            "host": host,
            "generated_dir": dir.as_str(),
            "stale_files": stale,
            "checks": rows,
        });
        println!("{v}");
    } else {
        print_table(&host, dir.as_str(), &rows, &stale, a.live);
    }
    if failed > 0 {
        return Err(Error::AuditFailed { host, failed });
    }
    Ok(())
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
