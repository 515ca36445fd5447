//! `potato trust HOST|ADDR [--replace]`: record a host's SSH host key in
//! secrets/known_hosts after showing it.

use serde_json::json;

use super::args::{Connection, Global};
use crate::error::Error;
use crate::ops::{fleet::Fleet, hosts};

/// Record a host's SSH host key in secrets/known_hosts after showing it.
/// HOST is a host file's name, or an address (ADDR[:PORT]) such as a jump host.
#[derive(Debug, clap::Args)]
pub struct Args {
    pub host: String,
    /// Replace the key(s) pinned for this host when it presents a different one.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let t = hosts::trust(&fleet, &a.host, a.replace)?;
    if g.json {
        println!(
            "{}",
            json!({ "host": t.label, "key_type": t.key.key_type, "fingerprint": t.key.fingerprint, "file": t.file, "action": t.action, "previous": t.previous })
        );
        return Ok(());
    }
    println!(
        "{} ({}) presents {} {}",
        t.label, t.known_hosts_name, t.key.key_type, t.key.fingerprint
    );
    match t.action {
        "unchanged" => println!("already pinned in {}", t.file),
        "replaced" => println!(
            "replaced {} with it in {}",
            t.previous.join(" and "),
            t.file
        ),
        _ => println!("recorded in {}", t.file),
    }
    Ok(())
}
