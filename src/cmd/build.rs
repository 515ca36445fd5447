//! `potato build [HOSTS]`: the selected hosts' systems, one Nix invocation,
//! store paths printed.

use super::args::{Connection, Global, Hosts, NixArgs};
use crate::error::Error;
use crate::inventory::schema::BuildOn;
use crate::ops::{deploy, fleet::Fleet};
use crate::ui::Reporter;

/// Build system closures with Nix (one invocation for all hosts).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: Hosts,
    #[command(flatten)]
    pub nix: NixArgs,
    /// Where to build, overriding the host files' build_on: local, target, or a
    /// builder (a host file's name or a configured Nix builder).
    #[arg(long, value_name = "local|target|HOST", value_parser = super::deploy::build_on_value)]
    pub build_on: Option<BuildOn>,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?
        .with_nix(a.nix.overrides())
        .with_connection(a.conn.settings());
    let (tops, on) = deploy::build_selected(
        &fleet,
        &a.hosts.hosts,
        a.build_on.as_ref(),
        &Reporter::new(g.output()),
    )?;
    if g.json {
        println!("{}", serde_json::to_string(&tops).expect("paths serialize"));
    } else {
        for (h, p) in &tops {
            match on.get(h).map(String::as_str) {
                None | Some("deployer") => println!("{h:<16} {p}"),
                Some(site) => println!("{h:<16} {p}  (built on {site})"),
            }
        }
    }
    Ok(())
}
