//! The operations layer: what the commands do, as functions over the fleet
//! context (`fleet`) that return their results as data and report progress
//! through `ui::Reporter` (deploy's engine events too). No clap types, no
//! printing of results (the commands do that), no command calling another.
//!
//! `fleet` loads the repository, plans and connection settings once; `audit`
//! judges a host's SSH and kernel baseline;
//! `generate` writes or checks modules/generated/; `deploy` builds and runs
//! the deploy engine on many hosts; `hosts` is generations, rollback, status,
//! exec and trust; `image` and `flash` build and write images; `vm` creates
//! Proxmox VMs; `secrets` is the age store as the fleet sees it (list, rekey,
//! edit, host keys); `bootstrap` is the bootstrap step engine.

pub mod audit;
pub mod bootstrap;
pub mod deploy;
pub mod flash;
pub mod fleet;
pub mod generate;
pub mod hosts;
pub mod image;
pub mod secrets;
pub mod vm;
