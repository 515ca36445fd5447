//! `potato plan HOST`: what a host runs, exposes and costs. Gathers the view
//! with `ops::plan::show` and prints `report::plan`'s text or JSON.

use super::args::{Connection, Global};
use crate::error::Error;
use crate::ops::fleet::Fleet;
use crate::{ops, report};

/// Show what a host runs: deploy settings, firewall, open ports, WireGuard
/// peers, containers with their memory budget, secrets used.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Host name.
    pub host: String,
    /// Also compare the exposure with the generation the host runs (over SSH).
    #[arg(long)]
    pub live: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let view = ops::plan::show(&fleet, &a.host, a.live)?;
    if g.json {
        print!("{}", report::plan::json(&view));
    } else {
        print!("{}", report::plan::human(&view));
    }
    Ok(())
}
