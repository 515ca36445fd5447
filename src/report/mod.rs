//! The text of command results: what a command prints on stdout once its
//! operation returned (the human view, and the `--json` document where it is
//! more than a serialized value). One module per command that has a view:
//! `plan`, `doctor`, `secrets`, `ca`, `cache`, `vm`. Pure: builds strings from the
//! operations' data; reads nothing, prints nothing, knows no clap type.
//! Progress while an operation runs is `ui`'s.

pub mod ca;
pub mod cache;
pub mod doctor;
pub mod plan;
pub mod secrets;
pub mod vm;
