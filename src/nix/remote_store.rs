//! A Nix store reached by its URI (a remote builder from the deployer's
//! `builders`, `ssh-ng://` or `ssh://`), driven by the deployer's own Nix
//! through `--store URI`: which paths it lacks, copying a derivation closure
//! into it, realising a derivation there, listing an output's closure there,
//! and exporting paths from it as a stream. Nix opens the connection itself
//! (its SSH store, with the key and host key `config::Machine::store_uri`
//! puts in the URI), so the build is Nix's own remote build: the store's
//! daemon (`nix-daemon --stdio`, or `nix-store --serve --write` for ssh://)
//! builds, and nothing lands in the deployer's store.
//!
//! Owns only these invocations; it knows no host file and no potato SSH
//! session (`deploy::build_on` relays the exported stream to a target).

use std::process::{Child, Command, Stdio};

use super::derivation::DryRun;
use super::{NixError, StorePath, store_path};
use crate::tools::{self, Program};

/// A realisation that failed: the exit code and Nix's output (the builder's
/// log is forwarded to it by the SSH store).
#[derive(Debug)]
pub struct Failed {
    pub code: i32,
    pub stderr: String,
}

/// A `nix-store --store URI` command. `--builders ''` keeps the store from
/// handing the build to the deployer's builders again (a trusted client's
/// settings are applied by the daemon: src/nix-daemon/nix-daemon.cc,
/// wopSetOptions), and `--max-jobs` (sent with every connection) is the
/// builder line's, so a deployer with `max-jobs = 0` does not forbid the
/// builder to build.
fn nix_store(uri: &str, max_jobs: u32) -> Result<Command, NixError> {
    let mut cmd = Command::new(tools::find(Program::NixStore)?);
    cmd.args(["--store", uri, "--builders", ""])
        .args(["--max-jobs", &max_jobs.max(1).to_string()]);
    Ok(cmd)
}

/// Which of `paths` the store lacks, in the order given.
pub fn missing(uri: &str, paths: &[StorePath]) -> Result<Vec<StorePath>, NixError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = nix_store(uri, 1)?;
    cmd.args(["--check-validity", "--print-invalid"])
        .args(paths.iter().map(StorePath::as_str));
    let out = super::run(&mut cmd)?;
    let invalid = store_path::parse_lines(&out)?;
    let set: std::collections::HashSet<&StorePath> = invalid.iter().collect();
    Ok(paths.iter().filter(|p| set.contains(p)).cloned().collect())
}

/// Copies what the store lacks of `drv`'s derivation closure (`.drv` files and
/// sources, not outputs) from the deployer's store: `nix copy --derivation`.
pub fn copy_derivation(uri: &str, drv: &StorePath) -> Result<(), NixError> {
    let mut cmd = Command::new(tools::find(Program::Nix)?);
    cmd.args(["--extra-experimental-features", "nix-command"])
        .args(["copy", "--derivation", "--to", uri, drv.as_str()]);
    super::run(&mut cmd).map(|_| ())
}

/// What realising `drv` in the store would build and fetch.
pub fn dry_run(uri: &str, drv: &StorePath, max_jobs: u32) -> Result<DryRun, NixError> {
    let mut cmd = nix_store(uri, max_jobs)?;
    cmd.args(["--realise", "--dry-run", drv.as_str()]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NixError::Spawn {
            command: format!("nix-store --store {uri} --realise --dry-run"),
            source,
        })?;
    if !out.status.success() {
        return Err(NixError::Failed {
            command: format!("nix-store --store {uri} --realise --dry-run {drv}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    // printMissing writes to stderr.
    Ok(DryRun::parse(&String::from_utf8_lossy(&out.stderr)))
}

/// Realises `drv` in the store (the store's machine builds); returns the
/// output paths Nix printed. Err(Ok(Failed)) when the build failed.
///
/// No GC root is made for the output on the builder, because Nix 2.8 makes
/// none through a remote store, and this is measured, not assumed
/// (tests/build_on.rs `nix_roots_no_output_realised_through_an_ssh_ng_store`,
/// which fails should a Nix version root it): against the testbed's
/// `ssh-ng://` builder, `nix-store --store URI --realise DRV
/// --add-root PATH` exits 0 and prints the output path, but creates PATH
/// neither here nor on the builder and no link in the builder's
/// gcroots/auto; `nix build --store URI DRV --out-link PATH` does the same;
/// and right after either, `nix-store --delete OUT` on the builder deletes the
/// output. Nix adds a root only through a `LocalFSStore` (`addPermRoot`; an
/// indirect root is a symlink on the builder's own file system, which a
/// store-protocol client cannot make), and an `ssh-ng://` store is a
/// `RemoteStore` only: NixOS/nix#11812 ("Design and enable creation of remote
/// gc roots", open: "The creation of gc roots is explicitly disabled in nix
/// build if we do not have a LocalFSStore") and NixOS/nix#4002 ("Option to add
/// root for copy commands", open). While this command runs, the builder's
/// daemon holds the outputs as temporary roots (DerivationGoal::haveDerivation
/// calls `addTempRoot` for every output), but they end with the connection:
/// from then until `export` has streamed them, a GC on the builder can delete
/// them. The one Nix command that builds and copies in one daemon session is
/// `nix copy --from URI --to DEST DRV` (measured: it builds on the builder),
/// but DEST would then be reached by Nix's own SSH, not potato's connection to
/// the target (its identity, known hosts and jump hosts); so the relay keeps
/// the two steps and a GC in between makes the export fail loudly (Nix
/// refuses an invalid path; nothing partial is imported).
pub fn realise(
    uri: &str,
    drv: &StorePath,
    max_jobs: u32,
) -> Result<Result<Vec<StorePath>, Failed>, NixError> {
    let mut cmd = nix_store(uri, max_jobs)?;
    cmd.args(["--realise", drv.as_str()]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NixError::Spawn {
            command: format!("nix-store --store {uri} --realise"),
            source,
        })?;
    if !out.status.success() {
        return Ok(Err(Failed {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }));
    }
    Ok(Ok(store_path::parse_lines(&String::from_utf8_lossy(
        &out.stdout,
    ))?))
}

/// `out`'s closure in the store, dependencies first (`nix-store -qR`).
pub fn closure(uri: &str, out: &StorePath) -> Result<Vec<StorePath>, NixError> {
    let mut cmd = nix_store(uri, 1)?;
    cmd.args(["--query", "--requisites", out.as_str()]);
    Ok(store_path::parse_lines(&super::run(&mut cmd)?)?)
}

/// Starts `nix-store --export PATHS` against the store: its stdout is the
/// export stream `nix-store --import` reads (piped, never held here).
pub fn export(uri: &str, paths: &[StorePath]) -> Result<Child, NixError> {
    let mut cmd = nix_store(uri, 1)?;
    cmd.arg("--export")
        .args(paths.iter().map(StorePath::as_str))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().map_err(|source| NixError::Spawn {
        command: format!("nix-store --store {uri} --export"),
        source,
    })
}
