//! The deploy engine: for each host, push the built system, activate it as a new
//! generation, confirm over a new SSH connection, or let the host roll back.
//!
//! Owns the per-host pipeline (lock → state → missing paths → push → activate →
//! health → confirm), its outcome, its errors, and the events it emits;
//! `health` holds the health-check loop's timing rules. It reaches hosts only
//! through `host` (the handle, the push pipeline, the parallel runner). It does
//! not build (the caller hands in toplevels from `nix::build_toplevels`) and
//! does not print: `ui` renders the events.

pub mod build_on;
pub mod cache;
pub mod health;

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::push::{self, Compress, PushError, PushEvent, PushOptions, Pushed};
use crate::host::{HostError, HostState, Remote};
use crate::inventory::schema::Mode;
use crate::nix::StorePath;
use crate::nix::frames::FrameCache;
use crate::nix::transfer::PathInfo;
use crate::plan::{HealthCheck, HostPlan, Target};
use crate::ssh::{self, SshOptions};

/// Why a host's deploy failed (before it could roll back), with its context.
/// The engine keeps these typed; `HostResult::error` shows them to the user.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Connect(HostError),
    #[error(transparent)]
    Lock(HostError),
    #[error("reading what the host runs: {0}")]
    State(#[source] HostError),
    #[error("pushing the system: {0}")]
    Push(#[source] PushError),
    /// Building the system where build_on says (target or a builder host).
    #[error(transparent)]
    Build(#[from] build_on::BuildError),
    #[error("starting the activation: {0}")]
    Activate(#[source] HostError),
    #[error("confirming: {0}")]
    Confirm(#[source] HostError),
    #[error("no SSH connection within {secs}s")]
    NoConnection { secs: u64 },
    #[error("the watchdog did not answer the confirmation ({verdict})")]
    NoVerdict { verdict: String },
}

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
    /// Compress the closure stream with zstd (`--compress`).
    pub compress: Compress,
    /// Let each host fetch what it can from its own substituters before
    /// pushing (`--no-substitute` turns it off).
    pub substitute: bool,
    /// Compressed frames shared by every host of the run (several hosts
    /// pushed from here: each path is compressed once, `nix::frames`).
    pub frames: Option<Arc<FrameCache>>,
    /// Hosts whose system is built elsewhere than the deployer (`build_on`).
    pub builds: std::collections::BTreeMap<String, build_on::Job>,
    /// The fleet cache being filled for this run: hosts connect meanwhile and
    /// wait here before their push (`cache::CacheGate`).
    pub cache_gate: Option<Arc<cache::CacheGate>>,
}

/// The phases a host goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Connect,
    /// Waiting for the fleet cache to be filled (`cache::CacheGate`).
    Wait,
    Build,
    Push,
    Activate,
    Confirm,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Wait => "wait",
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

impl Outcome {
    /// The outcome in the summary table's words.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::UpToDate => "up to date",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
        }
    }

    /// The host runs the system it was meant to (exit 0 for it).
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Deployed | Outcome::UpToDate)
    }
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
    /// Shared compressed frames (several hosts pushed from here): how many
    /// this host's stream sent, and how many (and bytes) it compressed
    /// itself; over a run, `made` is each distinct path once.
    pub frames: crate::nix::frames::FrameCounts,
}

impl HostResult {
    /// The result in one line ("deployed generation 3", "failed: ...").
    pub fn describe(&self) -> String {
        let generation = |none: &str| {
            self.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| none.into())
        };
        match self.result {
            Outcome::Deployed => format!("deployed generation {}", generation("")),
            Outcome::UpToDate => "up to date".into(),
            Outcome::RolledBack => format!("rolled back to generation {}", generation("-")),
            Outcome::Failed => format!(
                "failed: {}",
                self.error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            ),
        }
    }
}

/// What the pipeline tells the reporter (through `ops::deploy`).
#[derive(Debug, Clone)]
pub enum Event {
    Phase {
        host: String,
        phase: Phase,
    },
    Progress {
        host: String,
        done: u64,
        total: u64,
    },
    Log {
        host: String,
        line: String,
    },
    /// Something the user should see without -v (a warning).
    Warn {
        host: String,
        line: String,
    },
    Finished(Box<HostResult>),
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
            run.result.error = Some(e.to_string());
        }
    }
    run.end_phase();
    let _ = events.send(Event::Finished(Box::new(run.result.clone())));
    run.result
}

struct Run {
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
                frames: Default::default(),
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
    ) -> Result<Outcome, DeployError> {
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
        let mut remote = Remote::connect(&target, &opts.ssh).map_err(DeployError::Connect)?;
        remote
            .lock(&plan.name, &opts.holder)
            .map_err(DeployError::Lock)?;
        let state = remote.state().map_err(DeployError::State)?;
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
            let opts = &self.wait_for_cache(opts);
            self.enter(Phase::Push);
            self.push(&remote, top, opts)?;
        }

        self.enter(Phase::Activate);
        let token = token_for(top);
        let act_secs = opts.activation_timeout.as_secs().max(1);
        let (prev, new) = remote
            .activate(top, mode, &token, magic, confirm, act_secs)
            .map_err(DeployError::Activate)?;
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
        let output =
            matches!(status, Activation::Succeeded(_)).then(|| remote.activation_log(&token));
        drop(remote); // the lock is released; a pending watchdog keeps others out
        // The host's confirm window runs from when the activation finished.
        let finished = match &status {
            Activation::Succeeded(at) => *at,
            _ => Instant::now(),
        };

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
            Activation::Succeeded(_) => {
                if let Some(log) = output.filter(|l| !l.trim().is_empty()) {
                    self.log(log);
                }
            }
        }
        if !magic {
            return Ok(Outcome::Deployed);
        }

        self.enter(Phase::Confirm);
        self.confirm(plan, &target, opts, &token, (confirm, finished), prev)
    }

    /// Waits, holding this host's lock, until the fleet cache this run fills
    /// is ready; the options for the push: substitution off when the cache
    /// could not be filled (the host would only ask a cache that lacks the
    /// paths, or does not answer).
    fn wait_for_cache(&mut self, opts: &DeployOptions) -> DeployOptions {
        let mut opts = opts.clone();
        if let Some(gate) = opts.cache_gate.take() {
            self.enter(Phase::Wait);
            if !gate.wait() {
                opts.substitute = false;
            }
        }
        opts
    }

    /// The system's closure into the host's store, through the one push
    /// pipeline: substitution on the host first (unless `--no-substitute`),
    /// shared frames when several hosts are pushed from here.
    fn push(
        &mut self,
        remote: &Remote,
        top: &StorePath,
        opts: &DeployOptions,
    ) -> Result<(), DeployError> {
        let pushed = push::push_closure_with(
            remote,
            top,
            &push_options(opts, opts.substitute),
            &mut self.push_reporter(),
        )
        .map_err(DeployError::Push)?;
        self.record(&pushed);
        Ok(())
    }

    /// Paths of `closure` (dependencies first) the host lacks, through the
    /// same pipeline (a derivation closure for a remote build).
    fn push_paths(
        &mut self,
        remote: &Remote,
        closure: Vec<PathInfo>,
        opts: &DeployOptions,
        substitute: bool,
    ) -> Result<Pushed, DeployError> {
        let pushed = push::push_paths(
            remote,
            closure,
            &push_options(opts, substitute),
            &mut self.push_reporter(),
        )
        .map_err(DeployError::Push)?;
        self.record(&pushed);
        Ok(pushed)
    }

    /// The push pipeline's events as this host's events.
    fn push_reporter(&self) -> impl FnMut(PushEvent) + use<> {
        forward_push(&self.host, &self.events, PushEvent::describe)
    }

    fn record(&mut self, pushed: &Pushed) {
        self.result.paths_pushed = pushed.paths;
        self.result.bytes_pushed = pushed.nar_bytes;
        self.result.bytes_sent = pushed.wire_bytes;
        self.result.paths_fetched = pushed.fetched_paths;
        self.result.bytes_fetched = pushed.fetched_bytes;
        self.result.frames = pushed.frames;
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
        (confirm, finished): (u64, Instant),
        prev: Option<u32>,
    ) -> Result<Outcome, DeployError> {
        // A genuinely new connection: if the new system broke SSH, this fails.
        // Attempts never outlive the confirm deadline.
        // Stop half a second before the host's own deadline, so the two never
        // race: the host's clock starts when the activation finished (`finished`,
        // as the host reported it), not when potato noticed.
        let deadline =
            finished + Duration::from_millis((confirm * 1000).saturating_sub(500).max(500));
        let Some(remote) = connect_before(target, &opts.ssh, deadline) else {
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
        // The checks get what is left of the confirm window, less a second for
        // the confirmation itself.
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Duration::from_secs(1));
        if let Err(failure) = self.run_health_checks(&remote, &plan.health, budget) {
            let failure = failure.to_string();
            remote
                .abort(token, &failure)
                .map_err(DeployError::Confirm)?;
            let verdict = remote.result(token, 60).map_err(DeployError::Confirm)?;
            self.result.generation = prev;
            self.result.error = Some(format!(
                "{failure}; the host says: {}",
                verdict_text(&verdict)
            ));
            return Ok(Outcome::RolledBack);
        }
        // Never confirm an activation that has not finished well.
        match remote
            .activation_status(token)
            .map_err(DeployError::Confirm)?
            .map(|f| f.code)
        {
            Some(0) => {}
            status => {
                let why = match status {
                    None => {
                        "the activation had not finished when potato came to confirm".to_string()
                    }
                    Some(code) => format!("activation failed (exit {code})"),
                };
                remote.abort(token, &why).map_err(DeployError::Confirm)?;
                let verdict = remote
                    .result(token, opts.activation_timeout.as_secs() + 30)
                    .map_err(DeployError::Confirm)?;
                self.result.generation = prev;
                self.result.error =
                    Some(format!("{why}; the host says: {}", verdict_text(&verdict)));
                return Ok(Outcome::RolledBack);
            }
        }
        remote.confirm(token).map_err(DeployError::Confirm)?;
        let verdict = remote.result(token, 10).map_err(DeployError::Confirm)?;
        if verdict == "confirmed" {
            Ok(Outcome::Deployed)
        } else if let Some(reason) = verdict.strip_prefix("rolled-back ") {
            self.result.generation = prev;
            self.result.error = Some(format!(
                "the host rolled back before the confirmation arrived: {reason}"
            ));
            Ok(Outcome::RolledBack)
        } else {
            Err(DeployError::NoVerdict { verdict })
        }
    }
}

/// The push pipeline's settings for this run.
/// A push's events as `host`'s deploy events: progress as progress, a
/// substituter that did not answer as a warning, and what `words` puts into
/// words as a log line (the rest is dropped).
fn forward_push<W: Fn(&PushEvent) -> Option<String>>(
    host: &str,
    events: &Sender<Event>,
    words: W,
) -> impl FnMut(PushEvent) + use<W> {
    let (events, host) = (events.clone(), host.to_string());
    move |e| {
        let event = match (words(&e), e) {
            (Some(line), _) => Event::Log {
                host: host.clone(),
                line,
            },
            (None, PushEvent::Progress { done, total }) => Event::Progress {
                host: host.clone(),
                done,
                total,
            },
            (None, PushEvent::Unfetched { why }) => Event::Warn {
                host: host.clone(),
                line: why,
            },
            (None, _) => return,
        };
        let _ = events.send(event);
    }
}

fn push_options(opts: &DeployOptions, substitute: bool) -> PushOptions {
    PushOptions {
        compress: opts.compress,
        substitute,
        frames: opts.frames.clone(),
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
fn connect_before(target: &Target, opts: &SshOptions, deadline: Instant) -> Option<Remote> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut o = opts.clone();
        o.connect_timeout = o.connect_timeout.min(left);
        if let Ok(r) = Remote::connect(target, &o) {
            return Some(r);
        }
        std::thread::sleep(
            Duration::from_millis(300).min(deadline.saturating_duration_since(Instant::now())),
        );
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
    /// Finished well, at this moment (by the host's account).
    Succeeded(Instant),
    Failed(i32, String),
    /// The session broke while waiting (the new system may have cut SSH).
    Lost(Lost),
}

/// Why the wait lost sight of the activation (logged; the watchdog decides).
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("activation still running after {secs}s")]
    StillRunning { secs: u64 },
    #[error(transparent)]
    Host(HostError),
}

/// How long one `activation-status` call waits on the host.
const ACTIVATION_WAIT_SECS: u64 = 5;

fn wait_activation(remote: &Remote, token: &str, timeout: Duration) -> Activation {
    let started = Instant::now();
    loop {
        // The host waits for the activation itself (a few seconds a round
        // trip, so a lost connection still shows soon).
        match remote.activation_status_within(token, ACTIVATION_WAIT_SECS) {
            Ok(Some(f)) if f.code == 0 => {
                let ago = Duration::from_secs(f.secs_ago);
                let now = Instant::now();
                return Activation::Succeeded(now.checked_sub(ago).unwrap_or(now));
            }
            Ok(Some(f)) => return Activation::Failed(f.code, remote.activation_log(token)),
            Ok(None) if started.elapsed() > timeout => {
                return Activation::Lost(Lost::StillRunning {
                    secs: timeout.as_secs(),
                });
            }
            Ok(None) => {}
            Err(e) => return Activation::Lost(Lost::Host(e)),
        }
    }
}

/// Runs `f` on a fresh connection, retrying connects until `within` passes.
fn with_new_connection<T>(
    target: &Target,
    opts: &SshOptions,
    within: Duration,
    f: impl Fn(&Remote) -> Result<T, HostError>,
) -> Result<T, DeployError> {
    let remote = ssh::wait_for(within, Duration::from_millis(500), || {
        Remote::connect(target, opts).ok()
    })
    .ok_or(DeployError::NoConnection {
        secs: within.as_secs(),
    })?;
    f(&remote).map_err(DeployError::Confirm)
}
