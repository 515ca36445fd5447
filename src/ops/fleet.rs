//! The fleet context every command starts from: the repository root, the
//! validated plans, the flake with its input overrides, how hosts are reached
//! (SSH options, a `--target` override) and how output is shown. Loaded once
//! per command; `select`/`host` pick hosts, `connect` opens a host handle.
//! Owns no command-line parsing (the commands hand it plain settings) and
//! prints nothing.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::catalog::Catalog;
use crate::diag::Report;
use crate::error::Error;
use crate::host::Remote;
use crate::plan::{HostPlan, Target};
use crate::secrets::SecretIndex;
use crate::ssh::{self, SshOptions};
pub use crate::ui::Output;
use crate::{inventory, repo, resolve};

/// How to reach hosts, as the command line gave it.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// `--target USER@ADDR[:PORT]`: replaces one host's address.
    pub target: Option<String>,
    pub identity: Option<Utf8PathBuf>,
    pub known_hosts: Option<Utf8PathBuf>,
    pub connect_timeout: Duration,
    pub ssh_config: Option<Utf8PathBuf>,
}

impl Default for ConnectSettings {
    fn default() -> ConnectSettings {
        ConnectSettings {
            target: None,
            identity: None,
            known_hosts: None,
            connect_timeout: Duration::from_secs(10),
            ssh_config: None,
        }
    }
}

/// The repository, its plans, and how to build and reach them.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub root: Utf8PathBuf,
    pub plans: Vec<HostPlan>,
    pub out: Output,
    overrides: Vec<(String, String)>,
    conn: ConnectSettings,
}

/// The hosts a command works on, with the `--target` override checked
/// against how many there are.
#[derive(Debug, Clone)]
pub struct Selection {
    pub plans: Vec<HostPlan>,
    over: Option<Target>,
}

impl Selection {
    pub fn names(&self) -> Vec<String> {
        self.plans.iter().map(|p| p.name.clone()).collect()
    }

    /// Where `plan` is reached: `--target`, else its host file's target.
    pub fn target(&self, plan: &HostPlan) -> Target {
        self.over
            .clone()
            .unwrap_or_else(|| plan.deploy.target.clone())
    }

    pub fn target_override(&self) -> Option<&Target> {
        self.over.as_ref()
    }
}

/// The repository root for this invocation: `--repo`, else the nearest
/// directory upwards holding flake.nix.
pub fn repo_root(explicit: Option<&Utf8Path>) -> Result<Utf8PathBuf, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(Utf8Path::new("."), e))?;
    let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(|p| Error::Environment {
        message: format!("the current directory {} is not UTF-8", p.display()),
        hint: "run potato from a UTF-8 path, or pass --repo DIR".into(),
    })?;
    repo::find_root(explicit, &cwd)
}

/// Loads and validates the whole fleet, the fleet CA's certificates included
/// (`pki::attach`) and the fleet cache's public key (`cache::attach`). Any diagnostic makes it `Error::Invalid`.
pub fn load_plans(repo: &Utf8Path) -> Result<Vec<HostPlan>, Error> {
    let Resolved {
        inv,
        secrets,
        mut plans,
    } = load_resolved(repo)?;
    let mut diagnostics = crate::pki::attach(repo, &inv, &secrets, &mut plans);
    diagnostics.extend(crate::cache::attach(repo, &inv, &mut plans));
    if diagnostics.is_empty() {
        Ok(plans)
    } else {
        Err(Error::Invalid(Report {
            sources: inv.sources,
            diagnostics,
        }))
    }
}

/// The host files resolved, before the fleet CA's checks (`potato ca issue`
/// makes what those checks want).
pub struct Resolved {
    pub inv: inventory::Inventory,
    pub secrets: SecretIndex,
    pub plans: Vec<HostPlan>,
}

/// Loads and validates the host files (everything but the fleet CA).
pub fn load_resolved(repo: &Utf8Path) -> Result<Resolved, Error> {
    let inv = inventory::load(repo)?;
    let secrets = SecretIndex::scan(repo)?
        .with_coverage(repo)
        .map_err(|e| Error::from_secret(e, "fix secrets/recipients.toml"))?;
    let catalog = Catalog::for_repo(repo).map_err(Error::Invalid)?;
    match resolve::resolve(&inv, &catalog, &secrets) {
        Ok(plans) if plans.is_empty() && inv.diagnostics.is_empty() => Err(Error::usage(
            format!("no host files in {}", repo.join("hosts")),
            "create hosts/<name>.toml; README.md shows a complete example",
        )),
        Ok(plans) => Ok(Resolved {
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

impl Fleet {
    /// Finds the repository and loads its plans.
    pub fn load(repo: Option<&Utf8Path>, out: Output) -> Result<Fleet, Error> {
        let root = repo_root(repo)?;
        let plans = load_plans(&root)?;
        Ok(Fleet {
            root,
            plans,
            out,
            overrides: Vec::new(),
            conn: ConnectSettings::default(),
        })
    }

    /// With the command line's `--override-input`s.
    pub fn with_nix(mut self, overrides: Vec<(String, String)>) -> Fleet {
        self.overrides = overrides;
        self
    }

    /// With the command line's SSH settings.
    pub fn with_connection(mut self, conn: ConnectSettings) -> Fleet {
        self.conn = conn;
        self
    }

    /// Loads the plans again (after a command changed a host file).
    pub fn reload(&mut self) -> Result<(), Error> {
        self.plans = load_plans(&self.root)?;
        Ok(())
    }

    /// The hosts `selectors` name (every host when empty), with `--target`
    /// allowed only for exactly one.
    pub fn select(&self, selectors: &[String]) -> Result<Selection, Error> {
        let plans: Vec<HostPlan> = repo::select(&self.plans, selectors)?
            .into_iter()
            .cloned()
            .collect();
        let over = self.target_override(plans.len())?;
        Ok(Selection { plans, over })
    }

    /// One host by name.
    pub fn host(&self, name: &str) -> Result<HostPlan, Error> {
        Ok(repo::select(&self.plans, &[name.to_string()])?[0].clone())
    }

    /// One host by name, and where it is reached.
    pub fn one(&self, name: &str) -> Result<(HostPlan, Target), Error> {
        let plan = self.host(name)?;
        let target = self
            .target_override(1)?
            .unwrap_or_else(|| plan.deploy.target.clone());
        Ok((plan, target))
    }

    /// The repository's flake with the `--override-input`s.
    pub fn flake(&self) -> crate::nix::Flake {
        crate::nix::Flake::for_repo(&self.root, self.overrides.clone())
    }

    pub fn connect_settings(&self) -> &ConnectSettings {
        &self.conn
    }

    /// `--target`, parsed; refused when more than one host is selected.
    pub fn target_override(&self, selected: usize) -> Result<Option<Target>, Error> {
        let Some(t) = &self.conn.target else {
            return Ok(None);
        };
        if selected != 1 {
            return Err(Error::usage(
                "--target replaces one host's address, but several hosts are selected",
                "name exactly one host with --target",
            ));
        }
        resolve::parse_target(t)
            .map(Some)
            .map_err(|e| Error::usage(format!("--target: {e}"), "write USER@ADDR[:PORT]"))
    }

    /// The SSH options: the repository's secrets/known_hosts first (never a
    /// link: it would pin, or record, keys in a file outside the repository),
    /// then ~/.ssh/known_hosts, unless `--known-hosts` names one file.
    pub fn ssh_options(&self) -> Result<SshOptions, Error> {
        crate::fsguard::RepoFs::open(&self.root)?
            .refuse_link(Utf8Path::new("secrets/known_hosts"))?;
        let trust_file = self.root.join("secrets/known_hosts");
        let known_hosts = match &self.conn.known_hosts {
            Some(f) => vec![f.clone()],
            None => {
                let mut v = vec![trust_file.clone()];
                if let Some(home) = std::env::var_os("HOME") {
                    v.push(
                        Utf8PathBuf::from(home.to_string_lossy().as_ref()).join(".ssh/known_hosts"),
                    );
                }
                v
            }
        };
        Ok(SshOptions {
            identity: self.conn.identity.clone(),
            known_hosts,
            trust_file: self.conn.known_hosts.clone().unwrap_or(trust_file),
            connect_timeout: self.conn.connect_timeout,
            ssh_config: self.conn.ssh_config.clone(),
            host_name: None,
        })
    }

    /// The SSH options for reaching `host` (what `potato trust` would need
    /// named in a host-key error).
    pub fn ssh_options_for(&self, host: &str) -> Result<SshOptions, Error> {
        let mut opts = self.ssh_options()?;
        opts.host_name = Some(ssh::trust_hint(host, self.conn.target.clone()));
        Ok(opts)
    }

    /// A host handle for `host` at `target`. Connecting writes nothing on
    /// the host (the agent comes with the first operation that changes it).
    pub fn connect(&self, host: &str, target: &Target) -> Result<Remote, Error> {
        let opts = self.ssh_options_for(host)?;
        Remote::connect(target, &opts).map_err(|e| Error::remote(host, e))
    }
}
