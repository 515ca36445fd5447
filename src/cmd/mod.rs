//! One module per command. Each owns its clap `Args` (flags, help text),
//! types them, starts from the fleet context (`ops::fleet`), calls one
//! operation in `ops` and prints its result (stdout; one JSON document with
//! --json). Commands never call each other; shared flag groups are in `args`.

pub mod args;
pub mod audit;
pub mod bootstrap;
pub mod build;
pub mod ca;
pub mod cache;
pub mod catalog;
pub mod check;
pub mod deploy;
pub mod doctor;
pub mod exec;
pub mod flash;
pub mod generate;
pub mod generations;
pub mod image;
pub mod plan;
pub mod rollback;
pub mod schema;
pub mod secrets;
pub mod status;
pub mod trust;
pub mod vm;
