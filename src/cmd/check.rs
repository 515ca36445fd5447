//! `potato check`: validate everything and render in memory.

use serde_json::json;

use crate::cli::Global;
use crate::error::Error;
use crate::{render, repo};

pub fn run(g: &Global, selectors: &[String]) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let selected = repo::select(&plans, selectors)?;
    let owned: Vec<_> = selected.iter().map(|p| (*p).clone()).collect();
    let files = render::render_all(&owned, &root)?;
    refuse_unbuildable(g, &owned, &plans)?;
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
