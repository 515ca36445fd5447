//! The deploy engine: for each host, push the built system, activate it as a new
//! generation, confirm over a new SSH connection, or let the host roll back.
//!
//! Owns the per-host pipeline (lock → state → missing paths → push → activate →
//! health → confirm), its outcome, and the events it emits; `health` holds the
//! health-check loop's timing rules. It does not build
//! (the caller hands in toplevels from `nix::build_toplevels`) and does not print:
//! `ui` renders the events.

pub mod build_on;
pub mod health;
pub mod remote;
pub mod substitute;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::inventory::schema::Mode;
use crate::nix::transfer::{PathInfo, ServeStream};
use crate::nix::{self, StorePath};
use crate::plan::{HealthCheck, HostPlan, Target};
use crate::ssh::{self, Session, SshOptions};
use remote::{HostState, Remote, RemoteError};

/// Settings of one deploy run (from flags and the host file).
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub ssh: SshOptions,
    /// `--mode`, overriding each host file's default.
    pub mode: Option<Mode>,
    /// `--no-magic-rollback`.
    pub no_magic_rollback: bool,
    /// `--confirm-timeout`, overriding the host file.
    pub confirm_timeout: Option<Duration>,
    /// How long an activation may run before the watchdog gives up on it.
    pub activation_timeout: Duration,
    /// `--target`, replacing the host file's SSH target (single host runs).
    pub target: Option<Target>,
    /// `--force`: push and activate even when the host runs this system.
    pub force: bool,
    /// Who holds the lock, shown to a concurrent deploy.
    pub holder: String,
    /// Compress the closure stream with zstd: None = when the host has zstd.
    pub compress: Option<bool>,
    /// Let each host fetch what it can from its own substituters before
    /// pushing (`--no-substitute` turns it off).
    pub substitute: bool,
    /// Compressed frames shared by every host of the run (several hosts
    /// pushed from here: each path is compressed once, `nix::frames`).
    pub frames: Option<Arc<crate::nix::frames::FrameCache>>,
    /// Hosts whose system is built elsewhere than the deployer (`build_on`).
    pub builds: std::collections::BTreeMap<String, build_on::Job>,
}

/// The phases a host goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Connect,
    Build,
    Push,
    Activate,
    Confirm,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Build => "build",
            Phase::Push => "push",
            Phase::Activate => "activate",
            Phase::Confirm => "confirm",
        }
    }
}

/// What happened to a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Deployed,
    UpToDate,
    RolledBack,
    Failed,
}

/// One host's result, as the summary and `--json` report it.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    pub result: Outcome,
    pub generation: Option<u32>,
    pub previous_generation: Option<u32>,
    pub store_path: Option<StorePath>,
    pub paths_pushed: usize,
    /// NAR bytes of the pushed paths.
    pub bytes_pushed: u64,
    /// Bytes that crossed the wire (after compression).
    pub bytes_sent: u64,
    /// Paths the host fetched from its own substituters instead.
    pub paths_fetched: usize,
    /// NAR bytes of those paths.
    pub bytes_fetched: u64,
    /// Seconds spent per phase.
    pub phases: Vec<(Phase, f64)>,
    pub error: Option<String>,
    /// Where the system was built and what that build did ("deployer" when
    /// built here: then only `on` is set).
    pub build: build_on::BuildReport,
}

/// What the pipeline tells the renderer.
#[derive(Debug, Clone)]
pub enum Event {
    Phase { host: String, phase: Phase },
    Progress { host: String, done: u64, total: u64 },
    Log { host: String, line: String },
    Finished(HostResult),
}

/// Deploys one host. Never panics on host trouble: every failure is an outcome.
pub fn deploy_host(
    plan: &HostPlan,
    toplevel: &StorePath,
    opts: &DeployOptions,
    events: &Sender<Event>,
) -> HostResult {
    let mut run = Run::new(plan, toplevel, opts, events);
    match run.pipeline(plan, toplevel, opts) {
        Ok(outcome) => run.result.result = outcome,
        Err(e) => {
            run.result.result = Outcome::Failed;
            run.result.error = Some(e);
        }
    }
    run.end_phase();
    let _ = events.send(Event::Finished(run.result.clone()));
    run.result
}

struct Run {
    frames: Option<Arc<crate::nix::frames::FrameCache>>,
    host: String,
    events: Sender<Event>,
    started: Instant,
    result: HostResult,
    phase: Option<Phase>,
}

impl Run {
    fn new(
        plan: &HostPlan,
        toplevel: &StorePath,
        opts: &DeployOptions,
        events: &Sender<Event>,
    ) -> Run {
        Run {
            frames: opts.frames.clone(),
            host: plan.name.clone(),
            events: events.clone(),
            started: Instant::now(),
            result: HostResult {
                host: plan.name.clone(),
                result: Outcome::Failed,
                generation: None,
                previous_generation: None,
                store_path: Some(toplevel.clone()),
                paths_pushed: 0,
                bytes_pushed: 0,
                bytes_sent: 0,
                paths_fetched: 0,
                bytes_fetched: 0,
                phases: Vec::new(),
                error: None,
                build: build_on::BuildReport {
                    on: opts
                        .builds
                        .get(&plan.name)
                        .map(|j| j.site.label())
                        .unwrap_or_else(|| "deployer".into()),
                    ..Default::default()
                },
            },
            phase: None,
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.end_phase();
        self.phase = Some(phase);
        self.started = Instant::now();
        let _ = self.events.send(Event::Phase {
            host: self.host.clone(),
            phase,
        });
    }

    fn end_phase(&mut self) {
        if let Some(p) = self.phase.take() {
            self.result.phases.push((
                p,
                (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            ));
        }
    }

    fn log(&self, line: impl Into<String>) {
        let _ = self.events.send(Event::Log {
            host: self.host.clone(),
            line: line.into(),
        });
    }

    fn pipeline(
        &mut self,
        plan: &HostPlan,
        top: &StorePath,
        opts: &DeployOptions,
    ) -> Result<Outcome, String> {
        let mut opts = opts.clone();
        opts.ssh.host_name = Some(crate::ssh::trust_hint(
            &plan.name,
            opts.target.as_ref().map(|t| t.to_string()),
        ));
        let opts = &opts;
        let target = opts
            .target
            .clone()
            .unwrap_or_else(|| plan.deploy.target.clone());
        let mode = opts.mode.unwrap_or(plan.deploy.mode);
        let magic = !opts.no_magic_rollback
            && plan.deploy.magic_rollback
            && matches!(mode, Mode::Switch | Mode::Test);
        let confirm = opts
            .confirm_timeout
            .map(|d| d.as_secs().max(1))
            .unwrap_or(plan.deploy.confirm_timeout_secs);

        self.enter(Phase::Connect);
        let session = Session::connect(&target, &opts.ssh).map_err(|e| e.to_string())?;
        let mut remote = Remote::new(session).map_err(|e| e.to_string())?;
        remote
            .lock(&plan.name, &opts.holder)
            .map_err(|e| e.to_string())?;
        let state = remote.state().map_err(|e| e.to_string())?;
        self.result.previous_generation = state.generation;
        if is_up_to_date(&state, top, mode) && !opts.force {
            self.result.generation = state.generation;
            return Ok(Outcome::UpToDate);
        }

        if let Some(job) = opts.builds.get(&plan.name) {
            // Built on the target: the output and its closure are there now.
            self.enter(Phase::Build);
            self.result.build = build_on::build_remotely(self, &remote, job, opts)?;
        } else {
            self.enter(Phase::Push);
            self.push_closure(&remote, top, opts)?;
        }

        self.enter(Phase::Activate);
        let token = token_for(top);
        let act_secs = opts.activation_timeout.as_secs().max(1);
        let (prev, new) = remote
            .activate(top, mode.as_str(), &token, magic, confirm, act_secs)
            .map_err(|e| e.to_string())?;
        self.result.previous_generation = prev;
        self.result.generation = new;
        self.log(format!(
            "activating generation {} ({}){}",
            new.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            mode.as_str(),
            if magic { ", watchdog armed" } else { "" }
        ));
        let status = wait_activation(&remote, &token, opts.activation_timeout);
        // The activation's own output, shown with -v.
        let output = matches!(status, Activation::Succeeded).then(|| remote.activation_log(&token));
        drop(remote); // the lock is released; a pending watchdog keeps others out

        match status {
            Activation::Failed(code, log) => {
                self.log(log.clone());
                // The watchdog (magic) or the agent itself (auto rollback) restores
                // the previous generation; read its verdict over a new connection.
                self.enter(Phase::Confirm);
                let verdict = with_new_connection(
                    &target,
                    &opts.ssh,
                    Duration::from_secs(confirm + 30),
                    |r| {
                        if magic {
                            r.abort(&token, &format!("activation failed (exit {code})"))?;
                        }
                        r.result(&token, 30)
                    },
                )
                .unwrap_or_else(|e| format!("unknown ({e})"));
                self.result.generation = prev;
                self.result.error = Some(format!(
                    "activation failed (exit {code}):\n{}\nthe host says: {}",
                    log.trim_end(),
                    verdict_text(&verdict)
                ));
                return Ok(Outcome::RolledBack);
            }
            Activation::Lost(why) => self.log(format!(
                "lost the connection during activation ({why}); confirming over a new one"
            )),
            Activation::Succeeded => {
                if let Some(log) = output.filter(|l| !l.trim().is_empty()) {
                    self.log(log);
                }
            }
        }
        if !magic {
            return Ok(Outcome::Deployed);
        }

        self.enter(Phase::Confirm);
        self.confirm(plan, &target, opts, &token, confirm, prev)
    }

    /// Pushes what the host lacks of `top`'s closure (built on the deployer).
    fn push_closure(
        &mut self,
        remote: &Remote,
        top: &StorePath,
        opts: &DeployOptions,
    ) -> Result<(), String> {
        let closure = nix::closure(top).map_err(|e| e.to_string())?;
        let paths: Vec<StorePath> = closure.iter().map(|c| c.path.clone()).collect();
        let mut missing = remote.missing(&paths).map_err(|e| e.to_string())?;
        if opts.substitute && !missing.is_empty() {
            let fetched = substitute::fetch_missing(remote, &missing, &closure)?;
            if !fetched.paths.is_empty() {
                self.log(format!(
                    "the host fetched {} paths ({} bytes) from its substituters",
                    fetched.paths.len(),
                    fetched.nar_bytes
                ));
            }
            self.result.paths_fetched = fetched.paths.len();
            self.result.bytes_fetched = fetched.nar_bytes;
            missing = fetched.still_missing;
        }
        if !missing.is_empty() {
            let wanted: std::collections::HashSet<&StorePath> = missing.iter().collect();
            // `closure` is dependencies first, so this keeps the import order.
            let send: Vec<PathInfo> = closure
                .iter()
                .filter(|c| wanted.contains(&c.path))
                .cloned()
                .collect();
            let compress = opts.compress.unwrap_or_else(|| remote.has_zstd());
            self.push(remote, send, compress)?;
        }
        Ok(())
    }

    fn push(&mut self, remote: &Remote, send: Vec<PathInfo>, compress: bool) -> Result<(), String> {
        if compress && let Some(frames) = self.frames.clone() {
            return self.push_frames(remote, send, &frames);
        }
        let total: u64 = send.iter().map(|p| p.nar_size).sum();
        let count = send.len();
        self.log(format!(
            "pushing {} paths{}",
            send.len(),
            if compress { " (zstd)" } else { "" }
        ));
        // NAR bytes produced so far, shared with the progress callback.
        let nar_bytes = Arc::new(AtomicU64::new(0));
        let counted = CountingReader {
            inner: ServeStream::new(send),
            count: nar_bytes.clone(),
        };
        let mut stream: Box<dyn std::io::Read> = if compress {
            Box::new(
                zstd::stream::read::Encoder::new(counted, ZSTD_LEVEL)
                    .map_err(|e| format!("starting zstd: {e}"))?,
            )
        } else {
            Box::new(counted)
        };
        let events = self.events.clone();
        let host = self.host.clone();
        let mut last = Instant::now();
        let mut wire = 0u64;
        let mut progress = |sent: u64| {
            wire = sent;
            if last.elapsed() > Duration::from_millis(100) {
                last = Instant::now();
                let _ = events.send(Event::Progress {
                    host: host.clone(),
                    done: nar_bytes.load(Ordering::Relaxed),
                    total,
                });
            }
        };
        remote
            .add_to_store(&mut stream, count, compress, &mut progress)
            .map_err(|e| e.to_string())?;
        drop(stream);
        let nar = nar_bytes.load(Ordering::Relaxed);
        let _ = self.events.send(Event::Progress {
            host: self.host.clone(),
            done: nar,
            total: nar.max(total),
        });
        self.result.paths_pushed = count;
        self.result.bytes_pushed = nar;
        self.result.bytes_sent = wire;
        Ok(())
    }

    /// Pushes from the run's shared frames: the same compressed bytes for
    /// every host that lacks a path, compressed by whichever host needs it first.
    fn push_frames(
        &mut self,
        remote: &Remote,
        send: Vec<PathInfo>,
        frames: &Arc<crate::nix::frames::FrameCache>,
    ) -> Result<(), String> {
        let total: u64 = send.iter().map(|p| p.nar_size).sum();
        let count = send.len();
        self.log(format!("pushing {count} paths (zstd, shared frames)"));
        let mut stream = frames.stream(send);
        let events = self.events.clone();
        let host = self.host.clone();
        let mut last = Instant::now();
        let mut wire = 0u64;
        let mut progress = |sent: u64| {
            wire = sent;
            if last.elapsed() > Duration::from_millis(100) {
                last = Instant::now();
                let _ = events.send(Event::Progress {
                    host: host.clone(),
                    done: sent.min(total),
                    total,
                });
            }
        };
        remote
            .add_to_store(&mut stream, count, true, &mut progress)
            .map_err(|e| e.to_string())?;
        let _ = self.events.send(Event::Progress {
            host: self.host.clone(),
            done: total,
            total,
        });
        self.result.paths_pushed = count;
        self.result.bytes_pushed = total;
        self.result.bytes_sent = wire;
        Ok(())
    }

    /// Tries every health check until all pass, one fails, or `budget` is spent.
    fn run_health_checks(
        &self,
        remote: &Remote,
        checks: &[HealthCheck],
        budget: Duration,
    ) -> Result<(), health::HealthFailure> {
        if checks.is_empty() {
            return Ok(());
        }
        let mut clock = health::WallClock(Instant::now());
        let passed = health::wait_until_healthy(checks, budget, &mut clock, &mut |c| match remote
            .health(&c.probe, c.interval_secs)
        {
            Ok(Ok(())) => health::Attempt::Pass,
            Ok(Err(why)) => health::Attempt::Fail(why),
            Err(e) => health::Attempt::Error(e.to_string()),
        })?;
        for p in passed {
            self.log(format!(
                "health check `{}` passed after {:.1}s ({} attempt{})",
                p.probe,
                p.after.as_secs_f64(),
                p.attempts,
                if p.attempts == 1 { "" } else { "s" }
            ));
        }
        Ok(())
    }

    fn confirm(
        &mut self,
        plan: &HostPlan,
        target: &Target,
        opts: &DeployOptions,
        token: &str,
        confirm: u64,
        prev: Option<u32>,
    ) -> Result<Outcome, String> {
        // A genuinely new connection: if the new system broke SSH, this fails.
        // Attempts never outlive the confirm deadline.
        // Stop half a second before the host's own deadline, so the two never race
        // (the host's clock starts when the activation finished, slightly earlier).
        let deadline =
            Instant::now() + Duration::from_millis((confirm * 1000).saturating_sub(500).max(500));
        let Some(session) = connect_before(target, &opts.ssh, deadline) else {
            self.log("no new SSH connection; the host rolls back by itself");
            // Wait for the watchdog to restore the old generation, then read its verdict.
            let verdict = with_new_connection(target, &opts.ssh, Duration::from_secs(60), |r| {
                r.result(token, 30)
            })
            .unwrap_or_else(|e| format!("unknown ({e})"));
            self.result.generation = prev;
            self.result.error = Some(format!(
                "could not confirm: no new SSH connection within {confirm}s; the host says: {}",
                verdict_text(&verdict)
            ));
            return Ok(Outcome::RolledBack);
        };
        let remote = Remote::new(session).map_err(|e| e.to_string())?;
        // The checks get what is left of the confirm window, less a second for
        // the confirmation itself.
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Duration::from_secs(1));
        if let Err(failure) = self.run_health_checks(&remote, &plan.health, budget) {
            let failure = failure.to_string();
            remote.abort(token, &failure).map_err(|e| e.to_string())?;
            let verdict = remote.result(token, 60).map_err(|e| e.to_string())?;
            self.result.generation = prev;
            self.result.error = Some(format!(
                "{failure}; the host says: {}",
                verdict_text(&verdict)
            ));
            return Ok(Outcome::RolledBack);
        }
        // Never confirm an activation that has not finished well.
        match remote.activation_status(token).map_err(|e| e.to_string())? {
            Some(0) => {}
            status => {
                let why = match status {
                    None => {
                        "the activation had not finished when potato came to confirm".to_string()
                    }
                    Some(code) => format!("activation failed (exit {code})"),
                };
                remote.abort(token, &why).map_err(|e| e.to_string())?;
                let verdict = remote
                    .result(token, opts.activation_timeout.as_secs() + 30)
                    .map_err(|e| e.to_string())?;
                self.result.generation = prev;
                self.result.error =
                    Some(format!("{why}; the host says: {}", verdict_text(&verdict)));
                return Ok(Outcome::RolledBack);
            }
        }
        remote.confirm(token).map_err(|e| e.to_string())?;
        let verdict = remote.result(token, 10).map_err(|e| e.to_string())?;
        if verdict == "confirmed" {
            Ok(Outcome::Deployed)
        } else if let Some(reason) = verdict.strip_prefix("rolled-back ") {
            self.result.generation = prev;
            self.result.error = Some(format!(
                "the host rolled back before the confirmation arrived: {reason}"
            ));
            Ok(Outcome::RolledBack)
        } else {
            Err(format!(
                "the watchdog did not answer the confirmation ({verdict})"
            ))
        }
    }
}

/// The watchdog's verdict in words.
fn verdict_text(v: &str) -> String {
    match v.strip_prefix("rolled-back ") {
        Some(reason) => format!("rolled back ({reason})"),
        None => v.to_string(),
    }
}

/// Connects with attempts bounded by `deadline`; None if none succeeded in time.
fn connect_before(target: &Target, opts: &SshOptions, deadline: Instant) -> Option<Session> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut o = opts.clone();
        o.connect_timeout = o.connect_timeout.min(left);
        if let Ok(s) = Session::connect(target, &o) {
            return Some(s);
        }
        std::thread::sleep(
            Duration::from_millis(300).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// zstd level for closure streams: level 1 keeps up with the link on two cores.
const ZSTD_LEVEL: i32 = 1;

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A host runs exactly this system already.
fn is_up_to_date(state: &HostState, top: &StorePath, mode: Mode) -> bool {
    let current = state.current.as_ref() == Some(top);
    let profile = state.profile.as_ref() == Some(top);
    match mode {
        Mode::Switch => current && profile,
        Mode::Boot => profile,
        Mode::Test => current,
        Mode::DryActivate => false,
    }
}

/// A per-deploy token: the toplevel's hash plus the time, hex only.
fn token_for(top: &StorePath) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}{:x}", &top.hash()[..12], t)
}

enum Activation {
    Succeeded,
    Failed(i32, String),
    /// The session broke while waiting (the new system may have cut SSH).
    Lost(String),
}

fn wait_activation(remote: &Remote, token: &str, timeout: Duration) -> Activation {
    let started = Instant::now();
    loop {
        match remote.activation_status(token) {
            Ok(Some(0)) => return Activation::Succeeded,
            Ok(Some(code)) => return Activation::Failed(code, remote.activation_log(token)),
            Ok(None) if started.elapsed() > timeout => {
                return Activation::Lost(format!(
                    "activation still running after {}s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Activation::Lost(e.to_string()),
        }
    }
}

/// Runs `f` on a fresh connection, retrying connects until `within` passes.
fn with_new_connection<T>(
    target: &Target,
    opts: &SshOptions,
    within: Duration,
    f: impl Fn(&Remote) -> Result<T, RemoteError>,
) -> Result<T, String> {
    let session = ssh::wait_for(within, Duration::from_millis(500), || {
        Session::connect(target, opts).ok()
    })
    .ok_or_else(|| format!("no SSH connection within {}s", within.as_secs()))?;
    let remote = Remote::new(session).map_err(|e| e.to_string())?;
    f(&remote).map_err(|e| e.to_string())
}
