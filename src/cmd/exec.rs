//! `potato exec HOSTS -- COMMAND`: a command on hosts in parallel, output
//! prefixed by host.

use serde_json::json;

use super::args::{Connection, Global, Hosts};
use crate::error::Error;
use crate::ops::{fleet::Fleet, hosts};

/// Run a command on hosts in parallel, output prefixed by host.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: Hosts,
    #[command(flatten)]
    pub conn: Connection,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// The command, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let results = hosts::exec(&fleet, &a.hosts.hosts, a.parallel, &a.command)?;
    let width = results.iter().map(|(h, _)| h.len()).max().unwrap_or(4);
    let mut failed = 0;
    for (host, r) in &results {
        match r {
            Ok(out) => {
                if !g.json {
                    for l in out.stdout.lines() {
                        println!("{host:>width$} | {l}");
                    }
                    for l in out.stderr.lines() {
                        eprintln!("{host:>width$} ! {l}");
                    }
                }
                if !out.success() {
                    failed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                if !g.json {
                    eprintln!("{host:>width$} ! {e}");
                }
            }
        }
    }
    if g.json {
        let v: Vec<_> = results
            .iter()
            .map(|(h, r)| match r {
                Ok(o) => {
                    json!({ "host": h, "exit": o.code, "stdout": o.stdout, "stderr": o.stderr })
                }
                Err(e) => json!({ "host": h, "error": e }),
            })
            .collect();
        println!("{}", json!({ "hosts": v }));
    }
    if failed > 0 {
        return Err(Error::HostsFailed {
            failed,
            total: results.len(),
        });
    }
    Ok(())
}
