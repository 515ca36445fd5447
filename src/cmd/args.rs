//! Flag groups several commands share (global output flags, host selection,
//! SSH connection, Nix pass-through) and the value parsers that type a flag
//! once, where clap reads it (a bad value is a usage error, exit 2). Owns the
//! clap side only: the operations get plain settings (`ops::fleet`) from
//! these, never a clap type.

use std::time::Duration;

use camino::Utf8PathBuf;
use clap::Args;

use crate::ops::fleet::{ConnectSettings, Output};

/// The flags every command takes.
#[derive(Debug, Clone, Args)]
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

impl Global {
    /// How results and progress are shown.
    pub fn output(&self) -> Output {
        Output {
            json: self.json,
            verbose: self.verbose,
            quiet: self.quiet,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct Hosts {
    /// Host names or @tags (default: every host).
    pub hosts: Vec<String>,
}

/// How to reach hosts over SSH.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Replace the host file's SSH target: USER@ADDR[:PORT] (one host only).
    #[arg(long, value_name = "USER@ADDR[:PORT]")]
    pub target: Option<String>,
    /// Private key to log in with (default: ssh-agent, then ~/.ssh/id_*).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<Utf8PathBuf>,
    /// known_hosts file (default: the repo's secrets/known_hosts, then ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<Utf8PathBuf>,
    /// Give up connecting after this long.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = duration)]
    pub connect_timeout: Duration,
    /// ssh_config file for Host aliases, HostName, User, Port, IdentityFile and
    /// ProxyJump (default: ~/.ssh/config).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<Utf8PathBuf>,
}

impl Connection {
    pub fn settings(&self) -> ConnectSettings {
        ConnectSettings {
            target: self.target.clone(),
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            connect_timeout: self.connect_timeout,
            ssh_config: self.ssh_config.clone(),
        }
    }
}

/// Passed through to Nix.
#[derive(Debug, Clone, Args)]
pub struct NixArgs {
    /// Override a flake input: NAME PATH (repeatable), e.g. nixpkgs ../nixpkgs.
    #[arg(long, num_args = 2, value_names = ["NAME", "PATH"], action = clap::ArgAction::Append)]
    pub override_input: Vec<String>,
}

impl NixArgs {
    /// The overrides as (input, path) pairs.
    pub fn overrides(&self) -> Vec<(String, String)> {
        self.override_input
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect()
    }
}

/// A positive duration ("30s", "5m", "1h 30m"), parsed by clap.
pub fn duration(text: &str) -> Result<Duration, String> {
    crate::units::parse_duration(text)
}

/// A duration that may be zero ("0s": do not wait).
pub fn duration_or_zero(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" | "0s" => Ok(Duration::ZERO),
        t => crate::units::parse_duration(t),
    }
}
