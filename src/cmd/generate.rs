//! `potato gen [--check]`: write or verify modules/generated/ (through
//! `render::writer`, which refuses links and deletes only what potato wrote).

use serde_json::json;

use crate::cli::Global;
use crate::error::Error;
use crate::{render, repo};

pub fn run(g: &Global, selectors: &[String], check_only: bool) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let selected = repo::select(&plans, selectors)?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let owned: Vec<_> = selected.iter().map(|p| (*p).clone()).collect();
    let files = render::render_all(&owned, &root)?;
    let stale = render::check(&root, &files, &names, selectors.is_empty())?;
    if check_only {
        return report_check(g, &stale);
    }
    let done = render::write(&root, &files, &stale)?;
    for f in &done.left_alone {
        eprintln!(
            "warning: left {f} alone: potato did not write it, so it does not delete it (remove it by hand if it is not needed)"
        );
    }
    if g.json {
        println!(
            "{}",
            json!({ "ok": true, "written": done.written, "removed": done.removed, "left_alone": done.left_alone, "unchanged": files.len() - stale.changed.len() })
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
            files.len() - stale.changed.len()
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
        })
    }
}
