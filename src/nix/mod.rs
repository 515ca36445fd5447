//! The Nix layer: every call potato makes to the `nix` tools on the deployer.
//!
//! Owns flake references (git vs path), the version probe, evaluating and building
//! the selected hosts' toplevels in one invocation, closures with sizes, and the
//! export stream. It knows nothing of SSH or hosts' state; `deploy` combines them.

pub mod config;
pub mod derivation;
pub mod frames;
pub mod remote_store;
pub mod store_path;
pub mod transfer;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use camino::{Utf8Path, Utf8PathBuf};
pub use store_path::{BadStorePath, StorePath};

/// Failures of a Nix invocation, with what was run and what it said.
#[derive(Debug, thiserror::Error)]
pub enum NixError {
    #[error(
        "`{command}` could not start: {source} (is Nix installed? `apt-get install nix-bin` or see nixos.org)"
    )]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed:\n{stderr}")]
    Failed { command: String, stderr: String },
    #[error("`{command}` printed something unexpected: {detail}")]
    Output { command: String, detail: String },
    #[error(transparent)]
    StorePath(#[from] BadStorePath),
    #[error(transparent)]
    Missing(#[from] crate::tools::MissingProgram),
}

/// How the flake is addressed and which inputs are overridden.
#[derive(Debug, Clone)]
pub struct Flake {
    /// "path:/abs/repo" or "git+file:/abs/repo".
    pub reference: String,
    pub overrides: Vec<(String, String)>,
}

impl Flake {
    /// A git checkout is evaluated through git (only tracked files: fast, and what
    /// will be committed); anything else through `path:`.
    pub fn for_repo(repo: &Utf8Path, overrides: Vec<(String, String)>) -> Flake {
        let abs = repo
            .canonicalize_utf8()
            .unwrap_or_else(|_| repo.to_path_buf());
        let reference = if abs.join(".git").exists() {
            format!("git+file:{abs}")
        } else {
            format!("path:{abs}")
        };
        Flake {
            reference,
            overrides,
        }
    }

    /// Flags that follow the `nix` subcommand (Nix 2.8 accepts --override-input
    /// only there).
    fn flake_flags(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (name, path) in &self.overrides {
            a.push("--override-input".into());
            a.push(name.clone());
            a.push(if path.contains(':') {
                path.clone()
            } else {
                format!("path:{}", absolute(path))
            });
        }
        a
    }
}

fn absolute(p: &str) -> String {
    std::fs::canonicalize(p)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| p.to_string())
}

fn run(cmd: &mut Command) -> Result<String, NixError> {
    let shown = format!("{:?}", cmd).replace('"', "");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NixError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NixError::Failed {
            command: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the toplevel of every named host in ONE `nix build` (evaluation and
/// build together), returning host → toplevel store path.
pub fn build_toplevels(
    flake: &Flake,
    hosts: &[String],
) -> Result<BTreeMap<String, StorePath>, NixError> {
    let attrs: Vec<String> = hosts
        .iter()
        .map(|h| format!("nixosConfigurations.\"{h}\".config.system.build.toplevel"))
        .collect();
    let paths = build_attrs(flake, &attrs)?;
    Ok(hosts.iter().cloned().zip(paths).collect())
}

/// Builds flake attributes in ONE `nix build --json`, returning their out paths
/// in order.
pub fn build_attrs(flake: &Flake, attrs: &[String]) -> Result<Vec<StorePath>, NixError> {
    if flake.reference.starts_with("git+") {
        // Nix fetches a git checkout's flake by running git.
        crate::tools::find(crate::tools::Program::Git)?;
    }
    let mut cmd = Command::new(crate::tools::find(crate::tools::Program::Nix)?);
    cmd.args(["--extra-experimental-features", "nix-command flakes"])
        .args(["build", "--no-link", "--json"])
        .args(flake.flake_flags());
    for a in attrs {
        cmd.arg(format!("{}#{a}", flake.reference));
    }
    let out = run(&mut cmd)?;
    let shown = "nix build --json".to_string();
    let parsed: Vec<serde_json::Value> =
        serde_json::from_str(&out).map_err(|e| NixError::Output {
            command: shown.clone(),
            detail: e.to_string(),
        })?;
    if parsed.len() != attrs.len() {
        return Err(NixError::Output {
            command: shown,
            detail: format!("{} results for {} attributes", parsed.len(), attrs.len()),
        });
    }
    let mut paths = Vec::new();
    for v in parsed {
        let out = v["outputs"]["out"]
            .as_str()
            .ok_or_else(|| NixError::Output {
                command: shown.clone(),
                detail: "no outputs.out".into(),
            })?;
        paths.push(StorePath::parse(out)?);
    }
    Ok(paths)
}

/// The closure of `root`, dependencies first, with what the export frame needs,
/// from ONE `nix path-info --json --recursive`.
pub fn closure(root: &StorePath) -> Result<Vec<transfer::PathInfo>, NixError> {
    let mut cmd = Command::new(crate::tools::find(crate::tools::Program::Nix)?);
    cmd.args([
        "--extra-experimental-features",
        "nix-command",
        "path-info",
        "--json",
        "--recursive",
        root.as_str(),
    ]);
    let infos = transfer::parse_path_infos(&run(&mut cmd)?)?;
    Ok(transfer::dependencies_first(infos))
}

/// Files under `repo` that a git flake would not see (untracked, not ignored).
pub fn untracked_inputs(repo: &Utf8Path) -> Vec<Utf8PathBuf> {
    // Without git there is nothing to warn about (Nix then says what it lacks).
    let Ok(git) = crate::tools::find(crate::tools::Program::Git) else {
        return Vec::new();
    };
    let out = Command::new(git)
        .args([
            "-C",
            repo.as_str(),
            "ls-files",
            "--others",
            "--exclude-standard",
            "--",
            "hosts",
            "modules",
            "secrets",
            "flake.nix",
            "flake.lock",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(Utf8PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}
