//! `potato doctor`: what this machine has for potato (`ops::doctor`), printed
//! by `report::doctor` or as one JSON document. Exit 1 when a program some
//! command needs is missing.

use super::args::Global;
use crate::error::Error;
use crate::{ops, report};

/// Check this machine: the programs potato runs, Nix and its configuration.
///
/// Lists every external program potato runs (found on PATH, or missing
/// with the Debian package and the nixpkgs attribute that provide it) and
/// which commands need each; the Nix version; whether nix.conf enables
/// nix-command and flakes; the deployer's system and extra-platforms (which
/// architectures it builds itself); whether each substituter answers
/// (file:// has a nix-cache-info, http(s):// serves one) and each remote
/// builder's SSH port accepts a connection (nothing logs in); and, inside a
/// fleet repository, what builds each host's system. --json prints one
/// document. Exit code 1 when a program some command needs is missing.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  potato doctor                    what this machine has and lacks
  potato doctor --json             one document: .ok, .programs, .commands, .nix, .fleet
  NIX_CONF_DIR=DIR potato doctor   as Nix sees DIR/nix.conf")]
pub struct Args {}

/// `cli` is the whole command line (for the commands each program serves).
pub fn run(g: &Global, _: &Args, cli: &clap::Command) -> Result<(), Error> {
    let report = ops::doctor::examine(g.repo.as_deref(), &command_names(cli));
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print!("{}", report::doctor::human(&report));
    }
    match report.missing_programs() {
        programs if programs.is_empty() => Ok(()),
        programs => Err(Error::MissingPrograms { programs }),
    }
}

/// Every potato command, as typed ("potato vm create"), from the command
/// line's definition.
pub fn command_names(cli: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{prefix} {}", sub.get_name());
            if sub.has_subcommands() {
                walk(sub, &name, out);
            } else {
                out.push(name);
            }
        }
    }
    let mut out = Vec::new();
    walk(cli, "potato", &mut out);
    out
}
