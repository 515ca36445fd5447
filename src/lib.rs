//! potato: provision a small NixOS fleet from one TOML file per machine.
//!
//! Data flows one way: `inventory` (host files, parsed with spans) → `resolve`
//! (validated into `plan::HostPlan`s, using `catalog` and `secrets`) → `render`
//! (NixOS modules and native files under modules/generated/; every Nix text,
//! hardware.nix and disko.nix included, through `render::nix`) → `nix` (one build
//! for all hosts; closures; the transfer stream) → `deploy` (per host: lock,
//! push, activate, confirm or roll back) → `host` (how a host is reached over
//! `ssh` and what potato leaves on it: the host handle, the on-host agent and
//! paths, the push pipeline, the parallel host runner).
//! `harden` holds the hardening compilers (firewall, WireGuard configs, fail2ban,
//! the SSH/kernel baseline, the exposure table); `secrets::store` the age store.
//! `flash` writes and verifies card images, `image_key` puts the pre-generated
//! host key into images; `bootstrap` installs fresh machines; `proxmox` is the
//! Proxmox VE API client.
//! `fsguard` is the filesystem boundary: every read and write in the repository
//! goes through it, and it never follows a symbolic link.
//! `cli` is the command line's root; each `cmd` module owns one command's
//! flags, calls one operation in `ops` (the logic, over the fleet context
//! `ops::fleet`) and prints its result; `diag`, `error` and `ui` carry
//! problems and progress to the edge, where `main` prints them. `tools` finds
//! the external programs potato runs; `doctor` checks what this machine has.
//! `monitoring` wires the fleet's monitoring hub, scrapes and logs from the
//! inventory and writes their native files. `intrusion` writes CrowdSec's
//! acquisition and the host's firewall bouncer (configuration and tables).
//! `wiring` reads out who sends what to whom across the fleet (identity,
//! monitoring, logs, tunnels) for `plan`.

pub mod bootstrap;
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
pub mod resolve;
pub mod secrets;
pub mod ssh;
pub mod tools;
pub mod ui;
pub mod units;
pub mod wiring;
