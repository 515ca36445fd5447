//! `potato build [HOSTS]`: the selected hosts' systems, one Nix invocation,
//! store paths printed.

use super::args::{Global, Hosts, NixArgs};
use crate::error::Error;
use crate::ops::{deploy, fleet::Fleet};
use crate::ui::Reporter;

/// Build system closures with Nix (one invocation for all hosts).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: Hosts,
    #[command(flatten)]
    pub nix: NixArgs,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_nix(a.nix.overrides());
    let tops = deploy::build_selected(&fleet, &a.hosts.hosts, &Reporter::new(g.output()))?;
    if g.json {
        println!("{}", serde_json::to_string(&tops).expect("paths serialize"));
    } else {
        for (h, p) in &tops {
            println!("{h:<16} {p}");
        }
    }
    Ok(())
}
