//! `potato gen [--check]`: write or verify modules/generated/ (through
//! `render::writer`, which refuses links and deletes only what potato wrote).

use serde_json::json;

use super::args::{Global, Hosts};
use crate::error::Error;
use crate::ops::{fleet::Fleet, generate};
use crate::render;

/// Write modules/generated/<host>/ from the host files, or verify it (--check).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: Hosts,
    /// Change nothing; exit 1 with a unified diff when files are stale.
    #[arg(long)]
    pub check: bool,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?;
    if a.check {
        let stale = generate::staleness(&fleet, &a.hosts.hosts)?;
        return report_check(g, &stale);
    }
    let generate::Generated {
        written: done,
        unchanged,
    } = generate::write(&fleet, &a.hosts.hosts)?;
    for f in &done.left_alone {
        eprintln!(
            "warning: left {f} alone: potato did not write it, so it does not delete it (remove it by hand if it is not needed)"
        );
    }
    if g.json {
        println!(
            "{}",
            json!({ "ok": true, "written": done.written, "removed": done.removed, "left_alone": done.left_alone, "unchanged": unchanged })
        );
    } else if !g.quiet {
        for t in &done.written {
            println!("wrote {t}");
        }
        for t in &done.removed {
            println!("removed {t}");
        }
        let n = done.written.len();
        println!(
            "{n} file{} written, {} removed, {} unchanged",
            if n == 1 { "" } else { "s" },
            done.removed.len(),
            unchanged
        );
    }
    Ok(())
}

fn report_check(g: &Global, stale: &render::Staleness) -> Result<(), Error> {
    if g.json {
        let changed: Vec<_> = stale
            .changed
            .iter()
            .map(|(p, d)| json!({ "file": p, "diff": d }))
            .collect();
        println!(
            "{}",
            json!({ "ok": stale.is_clean(), "changed": changed, "extra": stale.extra })
        );
    } else {
        for (_, diff) in &stale.changed {
            print!("{diff}");
        }
        for e in &stale.extra {
            println!("extra file (no host file produces it): {e}");
        }
        if stale.is_clean() && !g.quiet {
            println!("generated files are up to date");
        }
    }
    if stale.is_clean() {
        Ok(())
    } else {
        Err(Error::Stale {
            count: stale.changed.len() + stale.extra.len(),
            files: Vec::new(),
        })
    }
}
