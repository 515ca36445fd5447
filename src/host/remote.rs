//! The host handle: one SSH session to a host plus the on-host agent
//! (`agent.sh`). Each method is one command on the host; every store path that
//! comes back is parsed into `StorePath`, and every word sent is validated or
//! quoted with `render::format::sh::word`.
//!
//! Connecting writes nothing on the host. Read-only methods (`state`,
//! `generations`, `has_zstd`, `read_file`, `run`) send the agent on stdin; the
//! first method that changes the host (`lock`, `missing`/`add_to_store`,
//! `activate`, ...) installs the agent under `paths::STATE_DIR` first.
//! Commands never touch the SSH session: everything goes through these methods.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use crate::inventory::schema::{Backend, Mode};
use crate::nix::{StorePath, store_path, transfer};
use crate::plan::{Probe, Target};
use crate::render::format::sh;
use crate::ssh::output::{self, DEFAULT_LIMIT};
use crate::ssh::{HostKey, Output, Session, SshError, SshOptions};

use super::paths::{AGENT, STATE_DIR};

/// The agent's source, installed by operations that change the host.
pub const AGENT_SCRIPT: &str = include_str!("agent.sh");

#[derive(Debug, thiserror::Error)]
pub enum HostError {
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
    /// A path that must go into a URL or command unchanged and cannot.
    #[error(
        "{what} must be a plain absolute path (letters, digits, '.', '_', '-', '/'; no '..'): {value:?}"
    )]
    NotPlainPath { what: &'static str, value: String },
    #[error("the fleet cache's public key {value:?} is not a Nix public key: {reason}")]
    BadPublicKey { value: String, reason: String },
    /// A word no shell command can carry (see `render::format::sh::word`).
    #[error("{what}: {refused}")]
    Unsendable {
        what: &'static str,
        refused: Box<crate::render::format::Refused>,
    },
}

/// What `Remote::publish_to_cache` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePublish {
    /// `added` paths were added to the cache (the others were there);
    /// `replaced` of them replaced a narinfo the fleet key did not verify.
    Published { added: usize, replaced: usize },
    /// The signing key file is not on the host.
    NoKey,
}

/// `s` when it is a plain absolute path (it goes into a store URL, where
/// `?`, `&`, `#` and spaces would change its meaning), else the refusal.
fn plain_path(what: &'static str, s: &str) -> Result<String, HostError> {
    let plain = s.starts_with('/')
        && s.len() < 4096
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        && !s.split('/').any(|part| part == "..");
    if plain {
        Ok(s.to_string())
    } else {
        Err(HostError::NotPlainPath {
            what,
            value: s.to_string(),
        })
    }
}

/// A finished activation: its exit code, and how long ago it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub code: i32,
    pub secs_ago: u64,
}

/// The agent's `activation-status` answer: "running", or "RC AGE".
fn parse_finished(s: &str) -> Option<Finished> {
    let mut words = s.split_whitespace();
    let code = words.next()?.parse().ok()?;
    let secs_ago = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    Some(Finished { code, secs_ago })
}

/// What a host is running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    pub current: Option<StorePath>,
    pub profile: Option<StorePath>,
    pub generation: Option<u32>,
}

pub struct Remote {
    session: Session,
    /// Whether this session installed the agent (at most once).
    agent_installed: Cell<bool>,
    /// The lock channel, held open for the whole deploy.
    lock: Option<ssh2::Channel>,
    /// A root whose store receives pushed paths (a machine being installed),
    /// instead of the host's own /nix.
    store_root: Option<String>,
}

/// `s` as one shell word, or the reason it cannot be one.
fn word(what: &'static str, s: &str) -> Result<String, HostError> {
    sh::word(s).map_err(|e| HostError::Unsendable {
        what,
        refused: Box::new(e),
    })
}

/// `words` as one command line, each word quoted by `sh::word`.
fn argv(words: &[&str]) -> Result<String, HostError> {
    sh::words(words.iter().copied()).map_err(|e| HostError::Unsendable {
        what: "a command word",
        refused: Box::new(e),
    })
}

impl Remote {
    /// Connects to `target`. Writes nothing on the host.
    pub fn connect(target: &Target, opts: &SshOptions) -> Result<Remote, HostError> {
        Ok(Remote::from_session(Session::connect(target, opts)?))
    }

    /// Wraps a connected session (one whose host key the caller checked).
    pub fn from_session(session: Session) -> Remote {
        Remote {
            session,
            agent_installed: Cell::new(false),
            lock: None,
            store_root: None,
        }
    }

    /// The key the host presented.
    pub fn host_key(&self) -> Option<HostKey> {
        self.session.host_key()
    }

    /// Runs a shell command on the host and returns its output, whatever its
    /// exit code. The caller owns what the command does.
    pub fn run(&self, command: &str) -> Result<Output, HostError> {
        Ok(self.session.exec(command)?)
    }

    /// `run`, failing when the command has not ended `within` (a probe of a
    /// machine that may vanish mid-command, e.g. while it reboots).
    pub fn run_within(&self, command: &str, within: Duration) -> Result<Output, HostError> {
        Ok(self.session.exec_within(command, within)?)
    }

    /// `run`, with `stdin` fed to the command (never in an argv); `progress`
    /// gets the bytes sent so far.
    pub fn run_with(
        &self,
        command: &str,
        stdin: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Output, HostError> {
        Ok(self.session.exec_with(command, Some(stdin), progress)?)
    }

    /// Runs one program given as words, each quoted by `sh::word` (nothing
    /// the shell would interpret), and returns its output whatever its exit
    /// code.
    pub fn run_argv(&self, words: &[&str]) -> Result<Output, HostError> {
        self.run(&argv(words)?)
    }

    /// Writes `content` to `path` on the host (private: umask 077) through
    /// `PATH.part`, renamed into place once complete; `progress` gets the
    /// bytes sent so far.
    pub fn write_file(
        &self,
        path: &str,
        content: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), HostError> {
        let part = word("a path", &format!("{path}.part"))?;
        let cmd = format!(
            "umask 077 && cat > {part} && mv -- {part} {}",
            word("a path", path)?
        );
        let out = self.run_with(&cmd, content, progress)?;
        self.check(&format!("writing {path}"), out)?;
        Ok(())
    }

    /// A file's text, or None when it is not there (or not readable).
    pub fn read_file(&self, path: &str) -> Result<Option<String>, HostError> {
        let out = self.run(&format!("cat -- {} 2>/dev/null", word("a path", path)?))?;
        Ok(out.success().then_some(out.stdout))
    }

    /// Installs the agent under `paths::STATE_DIR` (once per session). Only
    /// operations that change the host call this (through `agent`).
    pub fn install_agent(&self) -> Result<(), HostError> {
        if self.agent_installed.get() {
            return Ok(());
        }
        let cmd = format!("mkdir -p {STATE_DIR} && cat > {AGENT}.tmp && mv {AGENT}.tmp {AGENT}");
        let out = self
            .session
            .exec_with(&cmd, Some(&mut AGENT_SCRIPT.as_bytes()), &mut |_| {})?;
        self.check("installing the agent", out)?;
        self.agent_installed.set(true);
        Ok(())
    }

    /// An agent command that may change the host (and does not read stdin):
    /// the first one installs the agent in the same round trip.
    fn agent(&self, args: &str) -> Result<Output, HostError> {
        if self.agent_installed.get() {
            return Ok(self.session.exec(&format!("sh {AGENT} {args}"))?);
        }
        let cmd = format!(
            "mkdir -p {STATE_DIR} && cat > {AGENT}.tmp && mv {AGENT}.tmp {AGENT} && exec sh {AGENT} {args} </dev/null"
        );
        let out = self
            .session
            .exec_with(&cmd, Some(&mut AGENT_SCRIPT.as_bytes()), &mut |_| {})?;
        self.agent_installed.set(true);
        Ok(out)
    }

    /// A read-only agent command: the agent travels on stdin (read whole,
    /// then run with stdin closed, so nothing it starts can eat the script),
    /// and nothing is installed.
    fn agent_read_only(&self, args: &str) -> Result<Output, HostError> {
        Ok(self.session.exec_with(
            &format!("s=$(cat) && exec sh -c \"$s\" potato-agent {args} </dev/null"),
            Some(&mut AGENT_SCRIPT.as_bytes()),
            &mut |_| {},
        )?)
    }

    fn check(&self, what: &str, out: Output) -> Result<Output, HostError> {
        if out.success() {
            Ok(out)
        } else {
            let detail = if out.stderr.trim().is_empty() {
                out.stdout.trim().to_string()
            } else {
                out.stderr.trim().to_string()
            };
            Err(HostError::Command {
                what: what.into(),
                code: out.code,
                detail,
            })
        }
    }

    /// Takes the host's deploy lock for as long as this Remote lives.
    pub fn lock(&mut self, host: &str, holder: &str) -> Result<(), HostError> {
        let err = |e: ssh2::Error| {
            HostError::Ssh(SshError::Channel {
                host: host.into(),
                what: "taking the lock".into(),
                message: e.to_string(),
            })
        };
        self.install_agent()?;
        let holder = word("the lock holder", holder)?;
        let mut ch = self.session.raw().channel_session().map_err(err)?;
        ch.exec(&format!("sh {AGENT} lock {holder}")).map_err(err)?;
        // One short line is expected: a host cannot make potato hold more.
        let mut raw = Vec::new();
        BufReader::new((&mut ch).take(DEFAULT_LIMIT as u64))
            .read_until(b'\n', &mut raw)
            .map_err(|e| {
                HostError::Ssh(SshError::Channel {
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
            Err(HostError::Locked {
                host: host.into(),
                holder: holder.to_string(),
            })
        } else if let Some(info) = line.strip_prefix("WATCHDOG ") {
            Err(HostError::WatchdogPending {
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
            Err(HostError::Command {
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

    /// What the host runs. Read-only.
    pub fn state(&self) -> Result<HostState, HostError> {
        let out = self.check("reading the host's state", self.agent_read_only("state")?)?;
        let mut st = HostState::default();
        for line in out.stdout.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = value.trim();
            match key {
                "current" if !value.is_empty() => st.current = StorePath::parse(value).ok(),
                "profile" if !value.is_empty() => {
                    st.profile = Some(
                        StorePath::parse(value).map_err(|e| HostError::BadPath(e.to_string()))?,
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

    fn store_env(&self) -> Result<String, HostError> {
        Ok(match &self.store_root {
            Some(r) => format!("POTATO_STORE_ROOT={} ", word("the store root", r)?),
            None => String::new(),
        })
    }

    /// One round trip: which of `paths` the host lacks. Answers are checked to be
    /// store paths and members of `paths`.
    pub fn missing(&self, paths: &[StorePath]) -> Result<Vec<StorePath>, HostError> {
        Ok(self
            .ask_paths("missing", "asking which paths are missing", paths)?
            .0)
    }

    /// One round trip: the host fetches what it can of `paths` (missing
    /// there) from its own substituters; returns those it still lacks, checked
    /// as `missing`'s answer, and what the host noted about its substituters
    /// (that they did not answer in time).
    pub fn substitute(
        &self,
        paths: &[StorePath],
    ) -> Result<(Vec<StorePath>, Vec<String>), HostError> {
        self.ask_paths("substitute", "fetching from the host's substituters", paths)
    }

    /// Runs the agent's `command` with `paths` on stdin; its answer, a subset
    /// of `paths`, in their order, and the agent's notes (stderr lines
    /// starting "NOTE ").
    fn ask_paths(
        &self,
        command: &str,
        what: &str,
        paths: &[StorePath],
    ) -> Result<(Vec<StorePath>, Vec<String>), HostError> {
        let list = store_path::to_lines(paths);
        self.install_agent()?;
        let out = self.session.exec_with(
            &format!("{}sh {AGENT} {command}", self.store_env()?),
            Some(&mut list.as_bytes()),
            &mut |_| {},
        )?;
        let out = self.check(what, out)?;
        let missing =
            store_path::parse_lines(&out.stdout).map_err(|e| HostError::BadPath(e.to_string()))?;
        let asked: std::collections::HashSet<&StorePath> = paths.iter().collect();
        if let Some(p) = missing.iter().find(|p| !asked.contains(p)) {
            return Err(HostError::Unexpected(p.to_string()));
        }
        // Keep the closure's dependency order.
        let set: std::collections::HashSet<&StorePath> = missing.iter().collect();
        let notes = out
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("NOTE "))
            .map(str::to_string)
            .collect();
        Ok((
            paths.iter().filter(|p| set.contains(p)).cloned().collect(),
            notes,
        ))
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
    ) -> Result<(), HostError> {
        self.install_agent()?;
        let cmd = format!(
            "{}sh {AGENT} serve-write{}",
            self.store_env()?,
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
            return Err(HostError::Command {
                what: "adding the closure to the store".into(),
                code: out.code,
                detail: format!("{} {why}", out.stderr.trim()).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Copies `paths` (valid in this host's store) into the static binary
    /// cache `dir` on this host, each narinfo signed with the secret key at
    /// `key` (the agent's `cache-publish`: Nix's own `nix copy --to file://`).
    /// Paths already in the cache are skipped, unless `public_key` (the
    /// key's public half) does not verify their narinfo: those are replaced.
    pub fn publish_to_cache(
        &self,
        dir: &str,
        key: &str,
        public_key: &str,
        paths: &[StorePath],
    ) -> Result<CachePublish, HostError> {
        let (dir, key) = (
            plain_path("the cache directory", dir)?,
            plain_path("the cache's signing key", key)?,
        );
        crate::cache::key::parse_public(public_key).map_err(|e| HostError::BadPublicKey {
            value: public_key.to_string(),
            reason: e.to_string(),
        })?;
        let list = store_path::to_lines(paths);
        self.install_agent()?;
        let out = self.session.exec_with(
            &format!(
                "sh {AGENT} cache-publish {} {} {}",
                word("the cache directory", &dir)?,
                word("the cache's signing key", &key)?,
                word("the cache's public key", public_key)?
            ),
            Some(&mut list.as_bytes()),
            &mut |_| {},
        )?;
        if out.stdout.trim() == "NOKEY" {
            return Ok(CachePublish::NoKey);
        }
        let out = self.check("publishing into the binary cache", out)?;
        let count = |what: &str| {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(what))
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| HostError::Command {
                    what: "publishing into the binary cache".into(),
                    code: out.code,
                    detail: format!("no {what}line in: {}", out.stdout.trim()),
                })
        };
        Ok(CachePublish::Published {
            added: count("PUBLISHED ")?,
            replaced: count("REPLACED ")?,
        })
    }

    /// Whether the host can decompress a zstd stream. Read-only.
    pub fn has_zstd(&self) -> bool {
        self.agent_read_only("has-zstd")
            .map(|o| o.stdout.trim() == "yes")
            .unwrap_or(false)
    }

    /// Sets the profile (switch/boot), arms the watchdog (magic), starts the
    /// activation detached. Returns (previous generation, new generation).
    pub fn activate(
        &self,
        top: &StorePath,
        mode: Mode,
        token: &str,
        magic: bool,
        confirm_secs: u64,
        activation_secs: u64,
    ) -> Result<(Option<u32>, Option<u32>), HostError> {
        let args = format!(
            "activate {} {} {token} {} {confirm_secs} {activation_secs}",
            top,
            agent_mode(mode),
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

    /// None while running; when done, its exit code and how long ago it
    /// finished (by the host's clock).
    pub fn activation_status(&self, token: &str) -> Result<Option<Finished>, HostError> {
        self.activation_status_within(token, 0)
    }

    /// `activation_status`, the host waiting up to `wait_secs` for the
    /// activation to finish before it answers.
    pub fn activation_status_within(
        &self,
        token: &str,
        wait_secs: u64,
    ) -> Result<Option<Finished>, HostError> {
        let out = self.agent_read_only(&format!("activation-status {token} {wait_secs}"))?;
        Ok(parse_finished(out.stdout.trim()))
    }

    pub fn activation_log(&self, token: &str) -> String {
        self.agent_read_only(&format!("activation-log {token} 40"))
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    pub fn abort(&self, token: &str, reason: &str) -> Result<(), HostError> {
        self.check(
            "asking the watchdog to roll back",
            self.agent(&format!("abort {token} {}", word("the reason", reason)?))?,
        )?;
        Ok(())
    }

    pub fn confirm(&self, token: &str) -> Result<(), HostError> {
        self.check("confirming", self.agent(&format!("confirm {token}"))?)?;
        Ok(())
    }

    /// The watchdog's verdict: "confirmed", "rolled-back REASON" or "pending".
    pub fn result(&self, token: &str, wait_secs: u64) -> Result<String, HostError> {
        Ok(self
            .agent_read_only(&format!("result {token} {wait_secs}"))?
            .stdout
            .trim()
            .to_string())
    }

    /// One attempt of a health check, bounded by `limit_secs`: Ok(Ok) when it
    /// passes, Ok(Err(what the host saw)) when not.
    pub fn health(&self, probe: &Probe, limit_secs: u64) -> Result<Result<(), String>, HostError> {
        let extra = match probe {
            Probe::Container { engine, .. } => match engine {
                Backend::Podman => " podman".to_string(),
                Backend::Docker => " docker".to_string(),
            },
            Probe::Http(u) => match local_resolve(u) {
                Some(r) => format!(" {}", word("the health check's address", &r)?),
                None => String::new(),
            },
            _ => String::new(),
        };
        let out = self.agent_read_only(&format!(
            "health {} {} {}{extra}",
            probe.kind(),
            limit_secs.max(1),
            word("the health check's target", probe.target())?
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

    /// Read-only.
    pub fn generations(&self) -> Result<String, HostError> {
        Ok(self
            .check("listing generations", self.agent_read_only("generations")?)?
            .stdout)
    }

    pub fn switch_generation(&self, n: u32) -> Result<Output, HostError> {
        self.check(
            &format!("switching to generation {n}"),
            self.agent(&format!("switch-generation {n}"))?,
        )
    }

    /// Runs `command` here and streams its stdout into `into_command` on
    /// `into` (host to host through the deployer's two channels: nothing is
    /// stored on the deployer). Returns this side's exit code and the other
    /// side's output; the caller owns what both commands do.
    pub fn pipe_into(
        &self,
        command: &str,
        into: &Remote,
        into_command: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(i32, Output), HostError> {
        let err = |e: ssh2::Error| {
            HostError::Ssh(SshError::Channel {
                host: "the sending host".into(),
                what: "streaming to another host".into(),
                message: e.to_string(),
            })
        };
        let mut ch = self.session.raw().channel_session().map_err(err)?;
        ch.exec(command).map_err(err)?;
        let received = into
            .session
            .exec_with(into_command, Some(&mut ch), progress)?;
        let _ = ch.wait_close();
        Ok((ch.exit_status().unwrap_or(-1), received))
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

/// The agent's word for an activation mode: the one place a `Mode` becomes
/// the string on the agent's command line (its `activate` refuses any other,
/// and `switch-to-configuration` takes the same words).
pub fn agent_mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Switch => "switch",
        Mode::Boot => "boot",
        Mode::Test => "test",
        Mode::DryActivate => "dry-activate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [Mode; 4] = [Mode::Switch, Mode::Boot, Mode::Test, Mode::DryActivate];

    /// The patterns of the agent's mode check in `activate`.
    fn agent_accepts() -> Vec<&'static str> {
        let check = AGENT_SCRIPT
            .split("activate)\n")
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("switch|")))
            .expect("activate checks its mode");
        let patterns = check.trim().strip_suffix(") ;;").expect("a case pattern");
        patterns.split('|').collect()
    }

    #[test]
    fn every_mode_is_a_word_the_agent_accepts_and_no_other() {
        let mut sent: Vec<&str> = MODES.iter().map(|m| agent_mode(*m)).collect();
        let mut accepted = agent_accepts();
        sent.sort();
        accepted.sort();
        assert_eq!(sent, accepted);
        // The host file's spelling (serde) and `--mode`'s (clap) are the agent's.
        for m in MODES {
            assert_eq!(agent_mode(m), m.as_str());
            let flag = clap::ValueEnum::to_possible_value(&m).unwrap();
            assert_eq!(flag.get_name(), agent_mode(m));
            let file: Mode = serde_json::from_value(serde_json::json!(agent_mode(m))).unwrap();
            assert_eq!(file, m);
        }
    }

    #[test]
    fn the_agent_refuses_an_unknown_mode_before_touching_anything() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("agent.sh");
        std::fs::write(&script, AGENT_SCRIPT).unwrap();
        let out = std::process::Command::new("sh")
            .arg(&script)
            .args([
                "activate",
                "/nix/store/x",
                "reboot;true",
                "ab12",
                "1",
                "5",
                "5",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unknown activation mode: reboot;true"),
            "{out:?}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
    }

    #[test]
    fn cache_paths_must_be_plain() {
        assert_eq!(
            plain_path("d", "/var/lib/potato/cache").unwrap(),
            "/var/lib/potato/cache"
        );
        assert!(plain_path("k", "/run/potato-secrets/fleet-cache-key").is_ok());
        for bad in [
            "relative/dir",
            "/a?compression=none",
            "/a&secret-key=/x",
            "/a b",
            "/a/../etc",
            "/a#b",
            "",
        ] {
            let e = plain_path("the cache directory", bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("the cache directory must be a plain absolute path"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn activation_status_answers() {
        assert_eq!(parse_finished("running"), None);
        assert_eq!(
            parse_finished("0 3"),
            Some(Finished {
                code: 0,
                secs_ago: 3
            })
        );
        assert_eq!(
            parse_finished("4"),
            Some(Finished {
                code: 4,
                secs_ago: 0
            })
        );
        assert_eq!(parse_finished(""), None);
    }
}
