//! potato: provision a small NixOS fleet from one TOML file per machine.
//!
//! Data flows one way: `inventory` → `resolve` → `plan` → `render`/`harden` →
//! `nix` → `deploy` → `host`/`ssh`; on top, `cli` → `cmd` → `ops` drive it.
//!
//! Module map (what each owns; what it must not touch):
//! - `cli`: the command line's root (`Cli`, the `Command` enum of each
//!   command's `Args`, dispatch). Only `main` imports it; it holds no flags
//!   of a command and no logic.
//! - `cmd`: one module per command (50–150 lines): its clap `Args`, typing
//!   the flags, one call into `ops`, printing the result (the text from
//!   `report`; `cmd::args`: shared flag groups and value parsers). Never calls
//!   another command; no logic beyond printing.
//! - `ops`: the operations (plan, doctor, generate, build/deploy, generations/
//!   rollback/status/exec/trust, audit, image, flash, vm, secrets, ca, the
//!   bootstrap step engine) over the fleet context `ops::fleet` (repo, plans,
//!   selection, flake overrides, SSH options, `connect`). Returns data,
//!   reports progress through `ui`; no clap types, no printing of results.
//! - `report`: the text of command results (`plan`, `doctor`, `secrets`,
//!   `ca`, `vm`): strings and `--json` documents built from the operations'
//!   data. Pure: no I/O, no clap types, no progress.
//! - `ui`: progress and reports: one `Reporter` taking typed events from every
//!   operation (deploy's engine events included) into one sink: live on a
//!   terminal, plain lines off one or in CI, with --json plain lines on
//!   stderr and one document on stdout; and the typed confirmation. Knows no
//!   command.
//! - `error`: the error every command ends with and its exit code (2 only for
//!   wrong input); `diag`: diagnostics pointing into source files. Printed once,
//!   in `main`.
//! - `inventory`: host files parsed with spans (schema, identifiers, text).
//!   Does not validate across hosts.
//! - `resolve`: validation into `plan::HostPlan`s, by section, using `catalog`
//!   and `secrets`. Writes nothing.
//! - `plan`: the resolved types; no I/O.
//! - `catalog`: the container catalog (built in + modules/catalog/*.toml).
//! - `render`: NixOS modules and native files under modules/generated/ (every
//!   value through `render::format`/`render::nix`, hardware.nix and disko.nix
//!   included; `render::writer` writes).
//!   Imports nothing from `bootstrap`, `deploy` or `ops`.
//! - `harden`: the hardening compilers (firewall, WireGuard, fail2ban, the
//!   SSH/kernel baseline, the exposure table). Pure.
//! - `monitoring`, `intrusion`, `edge`, `pki`: the monitoring hub; CrowdSec
//!   and its bouncer; the edge's Traefik/TLS/forward-auth; the fleet CA.
//! - `cache`: the fleet binary cache (`[fleet.cache]`): its plan
//!   (`cache::FleetCache`), the wiring of every consumer over WireGuard, the
//!   Nix signing key and `potato cache`. Never pushes (that is `host`/`deploy`).
//! - `nix`: builds, closures, the transfer stream. Knows no host file.
//! - `deploy`: one host's deploy pipeline (lock, push, activate, health,
//!   confirm or roll back), where a system is built (`deploy::build_on`) and
//!   the fleet cache step of a multi-host deploy (`deploy::cache`: one push to
//!   the cache host, published into its signed cache), reaching hosts only
//!   through `host`. Knows no command line.
//! - `host`: how a host is reached and what potato leaves on it: the handle
//!   (`host::Remote`; its SSH session is private), the on-host agent (installed
//!   only by operations that change the host), the on-host paths, the one push
//!   pipeline (substitution on the target, shared zstd frames) and the one
//!   parallel host runner. Decides nothing about what to deploy.
//! - `ssh`: sessions, known_hosts pinning, ssh_config, jump hosts.
//! - `secrets`: the secret index and the age store (`secrets::store`).
//! - `bootstrap`: the pieces of a bootstrap that are not steps (state,
//!   hardware detection, layout, facts, finding the machine); `ops::bootstrap`
//!   runs them.
//! - `flash`: writing and verifying card images; `image_key`: the pre-generated
//!   host key into images; `proxmox`: the Proxmox VE API client.
//! - `fsguard`: the filesystem boundary (every repository read and write, never
//!   following a link); `repo`: finding the repository, selecting hosts.
//! - `wiring`: who sends what to whom across the fleet (identity, monitoring,
//!   logs, tunnels), read out for `plan`. Writes nothing.
//! - `tools`: the external programs potato runs; `doctor`: what this machine
//!   has (probes only; `report::doctor` formats it); `units`: sizes and
//!   durations.

pub mod bootstrap;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod cmd;
pub mod deploy;
pub mod diag;
pub mod doctor;
pub mod edge;
pub mod error;
pub mod flash;
pub mod fsguard;
pub mod harden;
pub mod host;
pub mod image_key;
pub mod intrusion;
pub mod inventory;
pub mod monitoring;
pub mod nix;
pub mod ops;
pub mod pki;
pub mod plan;
pub mod proxmox;
pub mod render;
pub mod repo;
pub mod report;
pub mod resolve;
pub mod secrets;
pub mod ssh;
pub mod tools;
pub mod ui;
pub mod units;
pub mod wiring;
