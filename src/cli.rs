//! The command line: clap definitions and dispatch to `cmd::*`.
//! Parsing only; each command's work lives in its own module under `cmd/`.

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd;
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

#[derive(Debug, Args)]
pub struct Global {
    /// Repository root (default: the nearest directory upwards holding flake.nix).
    #[arg(long, global = true, value_name = "DIR", env = "POTATO_REPO")]
    pub repo: Option<Utf8PathBuf>,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate every host file and render in memory (no Nix needed).
    ///
    /// All problems of all hosts are reported together, each with file:line:col,
    /// the offending text underlined and a hint. Exit code 2 when any is found.
    Check(Hosts),
    /// Write modules/generated/<host>/ from the host files, or verify it (--check).
    Gen {
        #[command(flatten)]
        hosts: Hosts,
        /// Change nothing; exit 1 with a unified diff when files are stale.
        #[arg(long)]
        check: bool,
    },
    /// Show what a host runs: deploy settings, firewall, open ports, WireGuard
    /// peers, containers with their memory budget, secrets used.
    Plan {
        /// Host name.
        host: String,
    },
    /// Build system closures with Nix.
    Build(Hosts),
    /// Build, push, activate and confirm (HOSTS: names, @tag; none = all).
    Deploy(Hosts),
    /// Restore a previous generation.
    Rollback {
        host: String,
        /// Generation number (default: the one before the current).
        #[arg(long)]
        to: Option<u32>,
    },
    /// List a host's generations (number, date, current, store path).
    Generations { host: String },
    /// Running generation vs. what the repository would deploy.
    Status(Hosts),
    /// Run a command on hosts in parallel.
    Exec {
        #[command(flatten)]
        hosts: Hosts,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Build the host's image (SD card, raw/ISO, Proxmox).
    Image { host: String },
    /// Install NixOS on fresh hardware over SSH.
    Bootstrap {
        host: String,
        /// root@ADDR of the machine to install.
        #[arg(long)]
        target: String,
    },
    /// Proxmox VMs for VM hosts.
    Vm {
        #[command(subcommand)]
        action: VmAction,
    },
    /// Age-encrypted secrets under secrets/.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// List the container catalog: every service a host file may name.
    Catalog,
    /// Print the JSON Schema of host files (docs/host.schema.json).
    Schema,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct Hosts {
    /// Host names or @tags (default: every host).
    pub hosts: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum VmAction {
    /// Create the VM of a VM host through the Proxmox API.
    Create { host: String },
    /// Show the VM's state.
    Status { host: String },
}

#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Decrypt, open $EDITOR, re-encrypt.
    Edit { name: String },
    /// Re-encrypt secrets whose recipients changed.
    Rekey,
    /// List secrets, their users and recipients.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Runs the parsed command. Returns the process exit code on success paths that
/// still want a non-zero code.
pub fn run(cli: Cli) -> Result<(), Error> {
    let g = &cli.global;
    match cli.command {
        Command::Check(h) => cmd::check::run(g, &h.hosts),
        Command::Gen { hosts, check } => cmd::generate::run(g, &hosts.hosts, check),
        Command::Plan { host } => cmd::plan::run(g, &host),
        Command::Catalog => cmd::catalog::run(g),
        Command::Schema => cmd::schema::run(),
        Command::Completions { shell } => {
            cmd::schema::completions(shell);
            Ok(())
        }
        Command::Build(_) => Err(Error::NotImplemented("build")),
        Command::Deploy(_) => Err(Error::NotImplemented("deploy")),
        Command::Rollback { .. } => Err(Error::NotImplemented("rollback")),
        Command::Generations { .. } => Err(Error::NotImplemented("generations")),
        Command::Status(_) => Err(Error::NotImplemented("status")),
        Command::Exec { .. } => Err(Error::NotImplemented("exec")),
        Command::Image { .. } => Err(Error::NotImplemented("image")),
        Command::Bootstrap { .. } => Err(Error::NotImplemented("bootstrap")),
        Command::Vm { .. } => Err(Error::NotImplemented("vm")),
        Command::Secrets { .. } => Err(Error::NotImplemented("secrets")),
    }
}
