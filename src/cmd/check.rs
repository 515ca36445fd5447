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
