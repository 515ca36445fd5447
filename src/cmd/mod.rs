//! One module per command. Each takes the global flags and its arguments, does
//! its work through the library modules, and prints its own result.

pub mod audit;
pub mod bootstrap;
pub mod ca;
pub mod catalog;
pub mod check;
pub mod deploy;
pub mod doctor;
pub mod flash;
pub mod generate;
pub mod hosts;
pub mod image;
pub mod plan;
pub mod schema;
pub mod secrets;
pub mod vm;

use camino::{Utf8Path, Utf8PathBuf};

use crate::catalog::Catalog;
use crate::cli::Global;
use crate::diag::Report;
use crate::error::Error;
use crate::plan::HostPlan;
use crate::secrets::SecretIndex;
use crate::{inventory, repo, resolve};

/// The repository root for this invocation.
pub fn repo_root(g: &Global) -> Result<Utf8PathBuf, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(Utf8Path::new("."), e))?;
    let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(|p| {
        Error::usage(
            format!("the current directory {} is not UTF-8", p.display()),
            "run potato from a UTF-8 path",
        )
    })?;
    repo::find_root(g.repo.as_deref(), &cwd)
}

/// The repository's flake with the command line's `--override-input`s.
pub fn flake_for(repo: &Utf8Path, nix_args: &crate::cli::NixArgs) -> crate::nix::Flake {
    let overrides = nix_args
        .override_input
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    crate::nix::Flake::for_repo(repo, overrides)
}

/// Loads and validates the whole fleet, the fleet CA's certificates included
/// (`pki::attach`). Any diagnostic makes it `Error::Invalid`.
pub fn load_plans(repo: &Utf8Path) -> Result<Vec<HostPlan>, Error> {
    let Fleet {
        inv,
        secrets,
        mut plans,
    } = load_fleet(repo)?;
    let diagnostics = crate::pki::attach(repo, &inv, &secrets, &mut plans);
    if diagnostics.is_empty() {
        Ok(plans)
    } else {
        Err(Error::Invalid(Report {
            sources: inv.sources,
            diagnostics,
        }))
    }
}

/// A resolved fleet before the fleet CA's checks (`potato ca issue` makes
/// what those checks want).
pub struct Fleet {
    pub inv: inventory::Inventory,
    pub secrets: SecretIndex,
    pub plans: Vec<HostPlan>,
}

/// Loads and validates the host files (everything but the fleet CA).
pub fn load_fleet(repo: &Utf8Path) -> Result<Fleet, Error> {
    let inv = inventory::load(repo)?;
    let secrets = SecretIndex::scan(repo)?
        .with_coverage(repo)
        .map_err(|e| Error::usage(e.to_string(), "fix secrets/recipients.toml"))?;
    let catalog = Catalog::for_repo(repo).map_err(Error::Invalid)?;
    match resolve::resolve(&inv, &catalog, &secrets) {
        Ok(plans) if plans.is_empty() && inv.diagnostics.is_empty() => Err(Error::usage(
            format!("no host files in {}", repo.join("hosts")),
            "create hosts/<name>.toml; README.md shows a complete example",
        )),
        Ok(plans) => Ok(Fleet {
            inv,
            secrets,
            plans,
        }),
        Err(diagnostics) => Err(Error::Invalid(Report {
            sources: inv.sources,
            diagnostics,
        })),
    }
}

/// Goes on when `yes`, or when `expected` is typed back on a terminal after
/// `question`; refuses (`refusal`, nothing done) otherwise.
pub fn confirm_by_typing(
    yes: bool,
    refusal: &str,
    question: &str,
    expected: &str,
) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::usage(
            refusal,
            format!("pass --yes, or run it on a terminal to confirm by typing {expected}"),
        ));
    }
    eprint!("{question}\nType {expected} to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io(Utf8Path::new("stdin"), e))?;
    if line.trim() != expected {
        return Err(Error::usage(
            "not confirmed; nothing was done",
            format!("type {expected} exactly"),
        ));
    }
    Ok(())
}
