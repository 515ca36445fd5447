//! The text of `potato doctor` (`doctor::Report`): the programs potato runs,
//! found or missing with where to get them, the commands that need each, Nix
//! and its configuration, substituters, builders, and what builds each of the
//! fleet's systems. Pure: builds the string, prints nothing.

use std::fmt::Write as _;

use crate::doctor::{Probe, Report, Status};

/// The human-readable report.
pub fn human(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Programs (looked up on PATH):");
    for p in r.programs.iter().filter(|p| !p.info.needed_by.is_empty()) {
        program(&mut o, p);
    }
    let _ = writeln!(o, "  used only by the test suite:");
    for p in r.programs.iter().filter(|p| p.info.needed_by.is_empty()) {
        program(&mut o, p);
    }

    let _ = writeln!(o, "\nCommands and the programs they run:");
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
        let _ = writeln!(o, "  {:<24} {:<20} {uses}", c.command, state);
    }

    let n = &r.nix;
    let _ = writeln!(o, "\nNix:");
    if let Some(e) = &n.error {
        let _ = writeln!(o, "  not available: {e}");
    }
    if let Some(v) = &n.version {
        let _ = writeln!(o, "  {:<16} {v}", "version");
        let _ = writeln!(
            o,
            "  {:<16} {}",
            "read with",
            n.config_command.as_deref().unwrap_or("-")
        );
        let _ = writeln!(o, "  {:<16} {}", "nix-command", enabled(n.nix_command));
        let _ = writeln!(o, "  {:<16} {}", "flakes", enabled(n.flakes));
        if !n.nix_command || !n.flakes {
            let _ = writeln!(
                o,
                "  {:<16} potato enables both for its own nix calls; to run `nix build .#...` yourself add `experimental-features = nix-command flakes` to nix.conf",
                ""
            );
        }
        let _ = writeln!(
            o,
            "  {:<16} {}",
            "system",
            n.system.as_deref().unwrap_or("(not set)")
        );
        let _ = writeln!(
            o,
            "  {:<16} {}",
            "extra-platforms",
            list(&n.extra_platforms)
        );
        let _ = writeln!(o, "  substituters:");
        probes(&mut o, &n.substituters);
        let _ = writeln!(
            o,
            "  builders ({}):",
            n.builders_setting.as_deref().unwrap_or("")
        );
        for f in &n.builder_files {
            if !f.exists {
                let _ = writeln!(o, "    {} does not exist (no builders from it)", f.path);
            }
        }
        for e in &n.builder_errors {
            let _ = writeln!(o, "    invalid: {e}");
        }
        probes(&mut o, &n.builders);
    }

    if !r.fleet.is_empty() {
        let _ = writeln!(o, "\nThe fleet's systems:");
        for h in &r.fleet {
            let by = match &h.built_by {
                Some(b) => format!("built by {b}"),
                None => "NO BUILDER: add the system to extra-platforms (binfmt emulation: boot.binfmt.emulatedSystems on NixOS, qemu-user-static on Debian) or a builder that has it".into(),
            };
            let _ = writeln!(o, "  {:<16} {:<14} {by}", h.host, h.system);
        }
    }
    o
}

fn program(o: &mut String, p: &crate::tools::Presence) {
    let _ = match &p.path {
        Some(path) => writeln!(o, "  {:<16} {}", p.info.name, path.display()),
        None => writeln!(
            o,
            "  {:<16} MISSING (Debian: apt-get install {}; NixOS: pkgs.{}): {}",
            p.info.name, p.info.debian, p.info.nixos, p.info.purpose
        ),
    };
}

fn probes(o: &mut String, probes: &[Probe]) {
    if probes.is_empty() {
        let _ = writeln!(o, "    (none)");
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
        let _ = writeln!(o, "    {}{systems}: {state} ({})", p.uri, p.detail);
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
