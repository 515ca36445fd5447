//! `potato build [HOSTS]`: the selected hosts' systems, one Nix invocation,
//! store paths printed (and where each was built, when not here).

use std::collections::BTreeMap;

use serde_json::json;

use super::args::{Connection, Global, Hosts, NixArgs};
use crate::deploy::build_on::BuildReport;
use crate::error::Error;
use crate::inventory::schema::BuildOn;
use crate::nix::StorePath;
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
    /// builder (a host file's name or a configured Nix builder). A builder
    /// keeps the output; the target is not contacted.
    #[arg(long, value_name = "local|target|HOST", value_parser = super::deploy::build_on_value)]
    pub build_on: Option<BuildOn>,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?
        .with_nix(a.nix.overrides())
        .with_connection(a.conn.settings());
    let (tops, elsewhere) = deploy::build_selected(
        &fleet,
        &a.hosts.hosts,
        a.build_on.as_ref(),
        &Reporter::new(g.output()),
    )?;
    if g.json {
        println!("{}", json(&tops, &elsewhere));
    } else {
        for (h, p) in &tops {
            match elsewhere.get(h) {
                None => println!("{h:<16} {p}"),
                Some(r) => println!("{h:<16} {p}  (built on {})", r.on),
            }
        }
    }
    Ok(())
}

/// The `--json` document: host → its system's store path (a string) when it
/// was built here, in this machine's store; host → `{store_path, build}` when
/// it was built elsewhere (`build` says where and what: `deploy::build_on::
/// BuildReport`), so a path that is not in this store is never a bare string.
fn json(
    tops: &BTreeMap<String, StorePath>,
    elsewhere: &BTreeMap<String, BuildReport>,
) -> serde_json::Value {
    let hosts = tops.iter().map(|(h, p)| {
        let v = match elsewhere.get(h) {
            None => json!(p.as_str()),
            Some(r) => json!({ "store_path": p.as_str(), "build": r }),
        };
        (h.clone(), v)
    });
    serde_json::Value::Object(hosts.collect())
}
