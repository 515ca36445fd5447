//! `potato check`: validate everything and render in memory.

use serde_json::json;

use super::args::{Global, Hosts};
use crate::error::Error;
use crate::ops::fleet::Fleet;
use crate::render;

/// Validate every host file and render in memory (no Nix needed).
///
/// All problems of all hosts are reported together, each with file:line:col,
/// the offending text underlined and a hint. Exit code 2 when any is found.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: Hosts,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?;
    let selected = fleet.select(&a.hosts.hosts)?.plans;
    let files = render::render_all(&selected, &fleet.root)?;
    refuse_unbuildable(g, &selected, &fleet.plans)?;
    if g.json {
        let hosts: Vec<_> = selected
            .iter()
            .map(|p| json!({ "host": p.name, "file": p.file, "ok": true }))
            .collect();
        println!(
            "{}",
            json!({ "ok": true, "hosts": hosts, "files": files.len() })
        );
    } else if !g.quiet {
        for p in &selected {
            println!("ok  {:<14} {}", p.name, p.file);
        }
        println!(
            "{} host{} valid, {} files rendered",
            selected.len(),
            if selected.len() == 1 { "" } else { "s" },
            files.len()
        );
    }
    Ok(())
}

/// Every host's system must be buildable where its build_on says. Without a
/// readable Nix configuration this cannot be known: a warning, not an error
/// (check needs no Nix otherwise).
fn refuse_unbuildable(
    g: &Global,
    selected: &[crate::plan::HostPlan],
    fleet: &[crate::plan::HostPlan],
) -> Result<(), Error> {
    match crate::deploy::build_on::unbuildable(selected, fleet) {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => Err(Error::usage(
            problems.join("\n"),
            "build_on is local, target, or a builder that has the host's system; `potato doctor` shows what this machine can build",
        )),
        Err(why) => {
            if !g.quiet && !g.json {
                eprintln!(
                    "warning: not checked whether each host's system can be built where build_on says: {why}"
                );
            }
            Ok(())
        }
    }
}
