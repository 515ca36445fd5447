//! A host as the deploy engine sees it: an SSH session plus the on-host agent
//! (`agent.sh`). Each method is one agent command; every store path that comes
//! back is parsed into `StorePath`, and everything sent is validated or quoted.

use std::io::{BufRead, BufReader, Read};

use crate::inventory::schema::Backend;
use crate::nix::{StorePath, store_path, transfer};
use crate::plan::Probe;
use crate::ssh::output::{self, DEFAULT_LIMIT};
use crate::ssh::{Output, Session, SshError};

pub const AGENT: &str = include_str!("agent.sh");
const AGENT_PATH: &str = "/nix/var/potato/agent.sh";

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{what} failed on the host (exit {code}): {detail}")]
    Command {
        what: String,
        code: i32,
        detail: String,
    },
    #[error("the host answered with something that is not a store path; refusing it: {0}")]
    BadPath(String),
    #[error("the host named a store path potato did not ask about: {0}")]
    Unexpected(String),
    #[error("another deploy holds {host}'s lock: {holder}")]
    Locked { host: String, holder: String },
    #[error(
        "a previous deploy's rollback watchdog is still pending on {host} ({info}); wait for it to finish"
    )]
    WatchdogPending { host: String, info: String },
}

/// Quoting for sh: the one function, owned by `render::format::sh`.
pub use crate::render::format::sh::quote as shell_quote;

/// What a host is running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    pub current: Option<StorePath>,
    pub profile: Option<StorePath>,
    pub generation: Option<u32>,
}

pub struct Remote {
    pub session: Session,
    /// The lock channel, held open for the whole deploy.
    lock: Option<ssh2::Channel>,
    /// A root whose store receives pushed paths (a machine being installed),
    /// instead of the host's own /nix.
    store_root: Option<String>,
}

impl Remote {
    /// Wraps a connected session and installs the agent.
    pub fn new(session: Session) -> Result<Remote, RemoteError> {
        let r = Remote {
            session,
            lock: None,
            store_root: None,
        };
        let cmd = format!(
            "mkdir -p /nix/var/potato && cat > {AGENT_PATH}.tmp && mv {AGENT_PATH}.tmp {AGENT_PATH}"
        );
        let out = r
            .session
            .exec_with(&cmd, Some(&mut AGENT.as_bytes()), &mut |_| {})?;
        r.check("installing the agent", out)?;
        Ok(r)
    }

    fn agent(&self, args: &str) -> Result<Output, RemoteError> {
        Ok(self.session.exec(&format!("sh {AGENT_PATH} {args}"))?)
    }

    fn check(&self, what: &str, out: Output) -> Result<Output, RemoteError> {
        if out.success() {
            Ok(out)
        } else {
            let detail = if out.stderr.trim().is_empty() {
                out.stdout.trim().to_string()
            } else {
                out.stderr.trim().to_string()
            };
            Err(RemoteError::Command {
                what: what.into(),
                code: out.code,
                detail,
            })
        }
    }

    /// Takes the host's deploy lock for as long as this Remote lives.
    pub fn lock(&mut self, host: &str, holder: &str) -> Result<(), RemoteError> {
        let err = |e: ssh2::Error| {
            RemoteError::Ssh(SshError::Channel {
                host: host.into(),
                what: "taking the lock".into(),
                message: e.to_string(),
            })
        };
        let mut ch = self.session.raw().channel_session().map_err(err)?;
        ch.exec(&format!("sh {AGENT_PATH} lock {}", shell_quote(holder)))
            .map_err(err)?;
        // One short line is expected: a host cannot make potato hold more.
        let mut raw = Vec::new();
        BufReader::new((&mut ch).take(DEFAULT_LIMIT as u64))
            .read_until(b'\n', &mut raw)
            .map_err(|e| {
                RemoteError::Ssh(SshError::Channel {
                    host: host.into(),
                    what: "taking the lock".into(),
                    message: e.to_string(),
                })
            })?;
        let line = output::clean(&raw);
        let line = line.trim();
        if line == "OK" {
            self.lock = Some(ch);
            Ok(())
        } else if let Some(holder) = line.strip_prefix("BUSY ") {
            Err(RemoteError::Locked {
                host: host.into(),
                holder: holder.to_string(),
            })
        } else if let Some(info) = line.strip_prefix("WATCHDOG ") {
            Err(RemoteError::WatchdogPending {
                host: host.into(),
                info: info.to_string(),
            })
        } else {
            let mut rest = Vec::new();
            let _ = ch
                .stderr()
                .take(DEFAULT_LIMIT as u64)
                .read_to_end(&mut rest);
            let rest = output::clean(&rest);
            Err(RemoteError::Command {
                what: "taking the lock".into(),
                code: -1,
                detail: format!("{line} {rest}").trim().to_string(),
            })
        }
    }

    /// Releases the lock (also released by the host if we die).
    pub fn unlock(&mut self) {
        if let Some(mut ch) = self.lock.take() {
            let _ = ch.send_eof();
            let _ = ch.wait_close();
        }
    }

    pub fn state(&self) -> Result<HostState, RemoteError> {
        let out = self.check("reading the host's state", self.agent("state")?)?;
        let mut st = HostState::default();
        for line in out.stdout.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = value.trim();
            match key {
                "current" if !value.is_empty() => st.current = StorePath::parse(value).ok(),
                "profile" if !value.is_empty() => {
                    st.profile = Some(
                        StorePath::parse(value).map_err(|e| RemoteError::BadPath(e.to_string()))?,
                    )
                }
                "generation" if !value.is_empty() => st.generation = value.parse().ok(),
                _ => {}
            }
        }
        Ok(st)
    }

    /// Push into the store under `root` (e.g. /mnt) from now on.
    pub fn set_store_root(&mut self, root: &str) {
        self.store_root = Some(root.to_string());
    }

    fn store_env(&self) -> String {
        self.store_root
            .as_ref()
            .map(|r| format!("POTATO_STORE_ROOT={} ", shell_quote(r)))
            .unwrap_or_default()
    }

    /// One round trip: which of `paths` the host lacks. Answers are checked to be
    /// store paths and members of `paths`.
    pub fn missing(&self, paths: &[StorePath]) -> Result<Vec<StorePath>, RemoteError> {
        let mut list = String::new();
        for p in paths {
            list.push_str(p.as_str());
            list.push('\n');
        }
        let out = self.session.exec_with(
            &format!("{}sh {AGENT_PATH} missing", self.store_env()),
            Some(&mut list.as_bytes()),
            &mut |_| {},
        )?;
        let out = self.check("asking which paths are missing", out)?;
        let missing = store_path::parse_lines(&out.stdout)
            .map_err(|e| RemoteError::BadPath(e.to_string()))?;
        let asked: std::collections::HashSet<&StorePath> = paths.iter().collect();
        if let Some(p) = missing.iter().find(|p| !asked.contains(p)) {
            return Err(RemoteError::Unexpected(p.to_string()));
        }
        // Keep the closure's dependency order.
        let set: std::collections::HashSet<&StorePath> = missing.iter().collect();
        Ok(paths.iter().filter(|p| set.contains(p)).cloned().collect())
    }

    /// Adds `count` paths to the host's store from a serve-protocol stream
    /// (`nix::transfer::ServeStream`, zstd-compressed when `compressed`), then
    /// checks the host confirmed every one.
    pub fn add_to_store(
        &self,
        stream: &mut dyn Read,
        count: usize,
        compressed: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), RemoteError> {
        let cmd = format!(
            "{}sh {AGENT_PATH} serve-write{}",
            self.store_env(),
            if compressed { " zstd" } else { "" }
        );
        // The reply is the greeting plus one word per path: keep all of it.
        let reply = 16 + 8 * count;
        let out =
            self.session
                .exec_with_limit(&cmd, Some(stream), progress, reply.max(DEFAULT_LIMIT))?;
        let verdict = transfer::check_serve_replies(&out.stdout_raw, count);
        if out.code != 0 || verdict.is_err() {
            let why = verdict.err().unwrap_or_default();
            return Err(RemoteError::Command {
                what: "adding the closure to the store".into(),
                code: out.code,
                detail: format!("{} {why}", out.stderr.trim()).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Whether the host can decompress a zstd stream.
    pub fn has_zstd(&self) -> bool {
        self.agent("has-zstd")
            .map(|o| o.stdout.trim() == "yes")
            .unwrap_or(false)
    }

    /// Sets the profile (switch/boot), arms the watchdog (magic), starts the
    /// activation detached. Returns (previous generation, new generation).
    pub fn activate(
        &self,
        top: &StorePath,
        mode: &str,
        token: &str,
        magic: bool,
        confirm_secs: u64,
        activation_secs: u64,
    ) -> Result<(Option<u32>, Option<u32>), RemoteError> {
        let args = format!(
            "activate {} {mode} {token} {} {confirm_secs} {activation_secs}",
            top,
            u8::from(magic)
        );
        let out = self.check("starting the activation", self.agent(&args)?)?;
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("ARMED"))
            .unwrap_or("");
        let num = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.parse().ok())
        };
        Ok((num("prev="), num("new=")))
    }

    /// None while running, Some(exit code) when done.
    pub fn activation_status(&self, token: &str) -> Result<Option<i32>, RemoteError> {
        let out = self.agent(&format!("activation-status {token}"))?;
        let s = out.stdout.trim();
        Ok(if s == "running" { None } else { s.parse().ok() })
    }

    pub fn activation_log(&self, token: &str) -> String {
        self.agent(&format!("activation-log {token} 40"))
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    pub fn abort(&self, token: &str, reason: &str) -> Result<(), RemoteError> {
        self.check(
            "asking the watchdog to roll back",
            self.agent(&format!("abort {token} {}", shell_quote(reason)))?,
        )?;
        Ok(())
    }

    pub fn confirm(&self, token: &str) -> Result<(), RemoteError> {
        self.check("confirming", self.agent(&format!("confirm {token}"))?)?;
        Ok(())
    }

    /// The watchdog's verdict: "confirmed", "rolled-back REASON" or "pending".
    pub fn result(&self, token: &str, wait_secs: u64) -> Result<String, RemoteError> {
        Ok(self
            .agent(&format!("result {token} {wait_secs}"))?
            .stdout
            .trim()
            .to_string())
    }

    /// One attempt of a health check, bounded by `limit_secs`: Ok(Ok) when it
    /// passes, Ok(Err(what the host saw)) when not.
    pub fn health(
        &self,
        probe: &Probe,
        limit_secs: u64,
    ) -> Result<Result<(), String>, RemoteError> {
        let extra = match probe {
            Probe::Container { engine, .. } => match engine {
                Backend::Podman => " podman".to_string(),
                Backend::Docker => " docker".to_string(),
            },
            Probe::Http(u) => local_resolve(u)
                .map(|r| format!(" {}", shell_quote(&r)))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let out = self.agent(&format!(
            "health {} {} {}{extra}",
            probe.kind(),
            limit_secs.max(1),
            shell_quote(probe.target())
        ))?;
        if out.success() {
            return Ok(Ok(()));
        }
        let said = out.stdout.trim();
        Ok(Err(if said.is_empty() {
            format!("exit {}: {}", out.code, out.stderr.trim())
        } else {
            said.to_string()
        }))
    }

    pub fn generations(&self) -> Result<String, RemoteError> {
        Ok(self
            .check("listing generations", self.agent("generations")?)?
            .stdout)
    }

    pub fn switch_generation(&self, n: u32) -> Result<Output, RemoteError> {
        self.check(
            &format!("switching to generation {n}"),
            self.agent(&format!("switch-generation {n}"))?,
        )
    }
}

/// curl's `--resolve NAME:PORT:127.0.0.1` for a URL naming this host by name
/// (`resolve` allows only this host's names: its deploy name, or a route of its
/// Traefik), so the check reaches this host's listener whatever DNS says.
fn local_resolve(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let Some(url::Host::Domain(name)) = u.host() else {
        return None;
    };
    if name == "localhost" {
        return None;
    }
    Some(format!("{name}:{}:127.0.0.1", u.port_or_known_default()?))
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.unlock();
    }
}
