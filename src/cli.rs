//! The command line's root: the `Cli` parser (global flags and the
//! subcommand), the `Command` enum of each command's own `Args`, and
//! `run`, which hands the parsed `Args` to its command. Each command's flags,
//! help text and work live in its module under `cmd/`; nothing else here.

use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd::{self, args::Global};
use crate::error::Error;

/// potato: provision a small NixOS fleet from one TOML file per machine.
///
/// Host files live in hosts/<name>.toml. potato validates them, renders NixOS
/// modules into modules/generated/<name>/, builds them with Nix and deploys them
/// over SSH as NixOS generations that roll back by themselves when a deploy breaks
/// the host.
///
/// Exit codes: 0 success, 1 failure, 2 invalid input.
#[derive(Debug, Parser)]
#[command(name = "potato", version, max_term_width = 100, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  potato check                 validate every host file
  potato gen                   write modules/generated/ (commit it)
  potato gen --check           fail with a diff when generated files are stale
  potato plan n250             what n250 runs, exposes and costs
  potato deploy n250           build, push, activate, confirm
  potato deploy @media         every host tagged media";

/// Every command; its help text is the doc comment of its `Args`.
#[derive(Debug, Subcommand)]
// Parsed once per run; boxing the flattened argument groups buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Check(cmd::check::Args),
    Gen(cmd::generate::Args),
    Plan(cmd::plan::Args),
    Audit(cmd::audit::Args),
    Build(cmd::build::Args),
    Deploy(cmd::deploy::Args),
    Rollback(cmd::rollback::Args),
    Generations(cmd::generations::Args),
    Status(cmd::status::Args),
    Exec(cmd::exec::Args),
    Trust(cmd::trust::Args),
    Image(cmd::image::Args),
    Flash(cmd::flash::Args),
    Bootstrap(cmd::bootstrap::Args),
    Vm(cmd::vm::Args),
    Secrets(cmd::secrets::Args),
    Ca(cmd::ca::Args),
    Cache(cmd::cache::Args),
    Catalog(cmd::catalog::Args),
    Schema(cmd::schema::Args),
    Doctor(cmd::doctor::Args),
    Completions(cmd::schema::CompletionsArgs),
}

/// The command as typed, without arguments: "potato vm create".
pub fn command_name(matches: &clap::ArgMatches) -> String {
    let mut name = String::from("potato");
    let mut m = matches;
    while let Some((sub, next)) = m.subcommand() {
        name.push(' ');
        name.push_str(sub);
        m = next;
    }
    name
}

/// Runs the parsed command: its `Ok` is exit code 0, its error carries the
/// exit code (`Error::exit_code`).
pub fn run(cli: Cli) -> Result<(), Error> {
    let g = &cli.global;
    match &cli.command {
        Command::Check(a) => cmd::check::run(g, a),
        Command::Gen(a) => cmd::generate::run(g, a),
        Command::Plan(a) => cmd::plan::run(g, a),
        Command::Audit(a) => cmd::audit::run(g, a),
        Command::Build(a) => cmd::build::run(g, a),
        Command::Deploy(a) => cmd::deploy::run(g, a),
        Command::Rollback(a) => cmd::rollback::run(g, a),
        Command::Generations(a) => cmd::generations::run(g, a),
        Command::Status(a) => cmd::status::run(g, a),
        Command::Exec(a) => cmd::exec::run(g, a),
        Command::Trust(a) => cmd::trust::run(g, a),
        Command::Image(a) => cmd::image::run(g, a),
        Command::Flash(a) => cmd::flash::run(g, a),
        Command::Bootstrap(a) => cmd::bootstrap::run(g, a),
        Command::Vm(a) => cmd::vm::run(g, a),
        Command::Secrets(a) => cmd::secrets::run(g, a),
        Command::Ca(a) => cmd::ca::run(g, a),
        Command::Cache(a) => cmd::cache::run(g, a),
        Command::Catalog(a) => cmd::catalog::run(g, a),
        Command::Schema(a) => cmd::schema::run(a),
        Command::Doctor(a) => cmd::doctor::run(g, a, &Cli::command()),
        Command::Completions(a) => cmd::schema::completions(a, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tools table names commands by hand; each must be a real one.
    #[test]
    fn the_tools_table_names_only_real_commands() {
        let real = cmd::doctor::command_names(&Cli::command());
        assert!(real.contains(&"potato vm create".to_string()), "{real:?}");
        for p in crate::tools::Program::ALL {
            for c in p.info().needed_by {
                assert!(
                    real.iter().any(|r| r == c),
                    "{} names {c}, which is not a command",
                    p.name()
                );
            }
        }
    }
}
