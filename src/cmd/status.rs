//! `potato status [HOSTS]`: each host's running generation against what the
//! repository would deploy, and whether potato bootstrapped it.

use serde_json::json;

use super::args::{Connection, Global, Hosts, NixArgs};
use crate::error::Error;
use crate::ops::{fleet::Fleet, hosts};
use crate::ssh;
use crate::ui::Reporter;

/// Running generation vs. what the repository would deploy.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub hosts: Hosts,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub nix: NixArgs,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?
        .with_nix(a.nix.overrides())
        .with_connection(a.conn.settings());
    let rows = hosts::status(&fleet, &a.hosts.hosts, &Reporter::new(g.output()))?;
    if g.json {
        println!("{}", json!({ "hosts": rows }));
        return Ok(());
    }
    for r in &rows {
        let boot = match &r.bootstrapped {
            serde_json::Value::Null => "not bootstrapped by potato".to_string(),
            b => format!(
                "bootstrapped {} from {}",
                ssh::output::clean(b["date"].as_str().unwrap_or("?").as_bytes()),
                ssh::output::clean(b["commit"].as_str().unwrap_or("?").as_bytes())
            ),
        };
        println!(
            "{:<16} {:<12} {}; {boot}",
            r.host,
            r.state,
            r.detail.lines().next().unwrap_or("")
        );
    }
    Ok(())
}
