//! `potato catalog`: the services a host file may name (built in, plus the
//! repository's modules/catalog/*.toml).

use super::args::Global;
use crate::catalog::Catalog;
use crate::error::Error;
use crate::units::format_mib;

/// List the container catalog: every service a host file may name.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(g: &Global, _: &Args) -> Result<(), Error> {
    let root = crate::ops::fleet::repo_root(g.repo.as_deref()).ok();
    let cat = match &root {
        Some(r) => Catalog::for_repo(r).map_err(Error::Invalid)?,
        None => Catalog::builtin(),
    };
    let services: Vec<_> = cat.names().filter_map(|n| cat.get(n)).collect();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&services).expect("catalog serializes")
        );
        return Ok(());
    }
    println!(
        "{:<18} {:>8} {:>5}  {:<11} {:<14} description",
        "service", "memory", "cpus", "zone", "arch"
    );
    for s in services {
        if s.host_agent.is_some() {
            println!(
                "{:<18} {:>8} {:>5}  {:<11} {:<14} {}",
                s.name,
                "-",
                "-",
                "(host)",
                s.arch.join(","),
                s.description
            );
            continue;
        }
        let zone = match (&s.zone, &s.network) {
            (_, Some(owner)) => format!("({owner})"),
            (Some(z), None) => z.clone(),
            (None, None) => "-".into(),
        };
        let access = match (s.web, s.public) {
            (Some(_), true) => " [web, public]",
            (Some(_), false) => " [web, SSO]",
            _ => "",
        };
        println!(
            "{:<18} {:>8} {:>5}  {:<11} {:<14} {}{access}",
            s.name,
            format_mib(s.memory_mib),
            s.cpus,
            zone,
            s.arch.join(","),
            s.description
        );
    }
    for line in cat.replaced_lines(cat.names()) {
        println!("{line}");
    }
    Ok(())
}
