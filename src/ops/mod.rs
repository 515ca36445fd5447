//! The operations layer: what the commands do, as functions over the fleet
//! context (`fleet`) that return their results as data and report progress
//! through `ui::Reporter` (deploy's engine events too). No clap types, no
//! printing of results (the commands do that), no command calling another.
//!
//! `fleet` loads the repository, plans and connection settings once; `plan`
//! gathers what `potato plan` shows; `doctor` examines this machine and the
//! fleet's systems; `audit`
//! judges a host's SSH and kernel baseline;
//! `generate` writes or checks modules/generated/; `deploy` builds and runs
//! the deploy engine on many hosts; `hosts` is generations, rollback, status,
//! exec and trust; `image` and `flash` build and write images; `vm` creates
//! Proxmox VMs; `ca` hands the fleet's internal-TLS hosts to `pki::ops`;
//! `cache` is the fleet binary cache's key (`cache::ops`) and its read-out;
//! `secrets` is the age store as the fleet sees it (list, rekey,
//! edit, host keys); `bootstrap` is the bootstrap step engine.

pub mod audit;
pub mod bootstrap;
pub mod ca;
pub mod cache;
pub mod deploy;
pub mod doctor;
pub mod flash;
pub mod fleet;
pub mod generate;
pub mod hosts;
pub mod image;
pub mod plan;
pub mod secrets;
pub mod vm;
