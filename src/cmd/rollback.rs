//! `potato rollback HOST [--to N]`: restore a previous generation.

use serde_json::json;

use super::args::{Connection, Global};
use crate::error::Error;
use crate::ops::{fleet::Fleet, hosts};

/// Restore a previous generation.
#[derive(Debug, clap::Args)]
pub struct Args {
    pub host: String,
    /// Generation number (default: the one before the current).
    #[arg(long)]
    pub to: Option<u32>,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let done = hosts::rollback(&fleet, &a.host, a.to)?;
    if g.verbose > 0 {
        eprint!("{}", done.output);
    }
    if g.json {
        println!(
            "{}",
            json!({ "host": a.host, "from": done.from, "to": done.to })
        );
    } else if !g.quiet {
        println!(
            "{}: generation {} is current (was {})",
            a.host,
            done.to,
            done.from
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}
