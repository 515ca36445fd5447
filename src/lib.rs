//! potato: provision a small NixOS fleet from one TOML file per machine.
//!
//! Data flows one way: `inventory` (host files, parsed with spans) → `resolve`
//! (validated into `plan::HostPlan`s, using `catalog` and `secrets`) → `render`
//! (NixOS modules and native files under modules/generated/). `harden` holds the
//! policy compilers (firewall). `cli` parses arguments and `cmd` runs commands;
//! `diag` and `error` carry problems to the edge, where `main` prints them.

pub mod catalog;
pub mod cli;
pub mod cmd;
pub mod deploy;
pub mod diag;
pub mod error;
pub mod harden;
pub mod inventory;
pub mod nix;
pub mod plan;
pub mod render;
pub mod repo;
pub mod resolve;
pub mod secrets;
pub mod ssh;
pub mod ui;
pub mod units;
