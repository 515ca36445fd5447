//! `potato doctor`: prints what this machine has for potato (`doctor::examine`
//! collects it): programs and the commands that need them, Nix and its
//! configuration, substituters, builders, and which of the fleet's systems can
//! be built here. Exit 1 when a program some command needs is missing.

use super::args::Global;
use crate::doctor::{self, Probe, Report, Status};
use crate::error::Error;

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
    let report = doctor::examine(&command_names(cli), &fleet_systems(g));
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print_human(&report);
    }
    let missing: Vec<String> = report
        .programs
        .iter()
        .filter(|p| p.path.is_none() && !p.info.needed_by.is_empty())
        .map(|p| p.info.name.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingPrograms { programs: missing })
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

/// The fleet's (host, system) pairs when run in a repository whose host files
/// load; none otherwise (doctor needs no repository).
fn fleet_systems(g: &Global) -> Vec<(String, String)> {
    let Ok(root) = crate::ops::fleet::repo_root(g.repo.as_deref()) else {
        return Vec::new();
    };
    match crate::ops::fleet::load_plans(&root) {
        Ok(plans) => plans
            .iter()
            .map(|p| (p.name.clone(), p.system.as_str().to_string()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn print_human(r: &Report) {
    println!("Programs (looked up on PATH):");
    for p in r.programs.iter().filter(|p| !p.info.needed_by.is_empty()) {
        print_program(p);
    }
    println!("  used only by the test suite:");
    for p in r.programs.iter().filter(|p| p.info.needed_by.is_empty()) {
        print_program(p);
    }

    println!("\nCommands and the programs they run:");
    for c in &r.commands {
        let state = if c.missing.is_empty() {
            "ok".to_string()
        } else {
            format!("MISSING {}", c.missing.join(", "))
        };
        let uses = if c.programs.is_empty() {
            "(none)".to_string()
        } else {
            c.programs.join(", ")
        };
        println!("  {:<24} {:<20} {uses}", c.command, state);
    }

    let n = &r.nix;
    println!("\nNix:");
    if let Some(e) = &n.error {
        println!("  not available: {e}");
    }
    if let Some(v) = &n.version {
        println!("  {:<16} {v}", "version");
        println!(
            "  {:<16} {}",
            "read with",
            n.config_command.as_deref().unwrap_or("-")
        );
        println!("  {:<16} {}", "nix-command", enabled(n.nix_command));
        println!("  {:<16} {}", "flakes", enabled(n.flakes));
        if !n.nix_command || !n.flakes {
            println!(
                "  {:<16} potato enables both for its own nix calls; to run `nix build .#...` yourself add `experimental-features = nix-command flakes` to nix.conf",
                ""
            );
        }
        println!(
            "  {:<16} {}",
            "system",
            n.system.as_deref().unwrap_or("(not set)")
        );
        println!("  {:<16} {}", "extra-platforms", list(&n.extra_platforms));
        println!("  substituters:");
        print_probes(&n.substituters);
        println!(
            "  builders ({}):",
            n.builders_setting.as_deref().unwrap_or("")
        );
        for f in &n.builder_files {
            if !f.exists {
                println!("    {} does not exist (no builders from it)", f.path);
            }
        }
        for e in &n.builder_errors {
            println!("    invalid: {e}");
        }
        print_probes(&n.builders);
    }

    if !r.fleet.is_empty() {
        println!("\nThe fleet's systems:");
        for h in &r.fleet {
            let by = match &h.built_by {
                Some(b) => format!("built by {b}"),
                None => "NO BUILDER: add the system to extra-platforms (binfmt emulation: boot.binfmt.emulatedSystems on NixOS, qemu-user-static on Debian) or a builder that has it".into(),
            };
            println!("  {:<16} {:<14} {by}", h.host, h.system);
        }
    }
}

fn print_program(p: &crate::tools::Presence) {
    match &p.path {
        Some(path) => println!("  {:<16} {}", p.info.name, path.display()),
        None => println!(
            "  {:<16} MISSING (Debian: apt-get install {}; NixOS: pkgs.{}): {}",
            p.info.name, p.info.debian, p.info.nixos, p.info.purpose
        ),
    }
}

fn print_probes(probes: &[Probe]) {
    if probes.is_empty() {
        println!("    (none)");
    }
    for p in probes {
        let state = match p.status {
            Status::Answers => "answers",
            Status::NoAnswer => "NO ANSWER",
            Status::NotChecked => "not checked",
        };
        let systems = if p.systems.is_empty() {
            String::new()
        } else {
            format!(" [{}]", p.systems.join(","))
        };
        println!("    {}{systems}: {state} ({})", p.uri, p.detail);
    }
}

fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "not enabled in nix.conf"
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(" ")
    }
}
