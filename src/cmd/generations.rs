//! `potato generations HOST`: the host's generations (number, date, current,
//! store path).

use serde_json::json;

use super::args::{Connection, Global};
use crate::error::Error;
use crate::ops::{fleet::Fleet, hosts};

/// List a host's generations (number, date, current, store path).
#[derive(Debug, clap::Args)]
pub struct Args {
    pub host: String,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let (plan, gens) = hosts::generations(&fleet, &a.host)?;
    if g.json {
        println!("{}", json!({ "host": plan.name, "generations": gens }));
        return Ok(());
    }
    for item in &gens {
        println!(
            "{:>4} {} {:<9} {}",
            item.number,
            item.date,
            if item.current { "(current)" } else { "" },
            item.store_path.as_ref().map(|p| p.as_str()).unwrap_or("?")
        );
    }
    Ok(())
}
