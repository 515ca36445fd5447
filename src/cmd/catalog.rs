//! `potato catalog`: the services a host file may name.

use crate::catalog::Catalog;
use crate::cli::Global;
use crate::error::Error;
use crate::units::format_mib;

pub fn run(g: &Global) -> Result<(), Error> {
    let cat = Catalog::builtin();
    let services: Vec<_> = cat.names().filter_map(|n| cat.get(n)).collect();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&services).expect("catalog serializes")
        );
        return Ok(());
    }
    println!(
        "{:<18} {:>8}  {:<16} description",
        "service", "memory", "arch"
    );
    for s in services {
        println!(
            "{:<18} {:>8}  {:<16} {}",
            s.name,
            format_mib(s.memory_mib),
            s.arch.join(","),
            s.description
        );
    }
    Ok(())
}
