//! The fleet binary cache, deploy side (issue 17 item 3): a deploy to several
//! hosts sends each path once, to the cache host, which publishes it into its
//! signed static binary cache; the other hosts then substitute from it (their
//! generated nix.conf lists the cache and trusts its key) and potato pushes them
//! only what is still missing.
//!
//! Owns the cache step of a deploy: which hosts take part (`CacheRun::choose`),
//! the union of their closures (`union_closure`), pushing it into the cache
//! host's store through the one push pipeline (`host::push`), publishing it on
//! the cache host (`Remote::publish_to_cache`, Nix's own `nix copy --to
//! file://…?secret-key=…`), and the fleet-level report. It does not activate
//! anything (the cache host is a cache here, not a deploy target; when it is
//! also selected, `ops::deploy` deploys it through `deploy_host`), generate the
//! cache's configuration (that is `crate::cache` and the generated modules), or
//! print (events go to the renderer).

use std::collections::{BTreeSet, HashSet};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex};

use serde::Serialize;

use super::{DeployOptions, Event, Phase};
use crate::host::push::{self, PushError, PushEvent, PushOptions};
use crate::host::{CachePublish, HostError, Remote};
use crate::nix::StorePath;
use crate::nix::transfer::PathInfo;
use crate::plan::Target;

/// Where the fleet's cache lives and how it is written: the engine's view of
/// the resolved `[fleet.cache]` (`crate::cache::FleetCache`) plus how the
/// deployer reaches the cache host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTarget {
    /// The cache host's name.
    pub host: String,
    /// Its SSH target (from its host file's `[deploy]`).
    pub target: Target,
    /// The name of the signing key's secret (for messages).
    pub key_secret: String,
    /// Where the decrypted signing key is on the cache host.
    pub key_path: String,
    /// The static binary cache directory its web server serves.
    pub dir: String,
    /// The signing key's public half ("<name>:<base64>"): what the hosts
    /// trust, and what a published narinfo must verify against.
    pub public_key: String,
}

impl CacheTarget {
    /// The resolved `[fleet.cache]` and the cache host's SSH target.
    pub fn new(cache: &crate::cache::FleetCache, target: Target) -> CacheTarget {
        CacheTarget {
            host: cache.host.clone(),
            target,
            key_secret: cache.key_secret.clone(),
            key_path: cache.key_path.clone(),
            dir: cache.dir.clone(),
            public_key: cache.public_key.clone(),
        }
    }
}

/// Which hosts a deploy runs through the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRun {
    pub cache: CacheTarget,
    /// Selected hosts that substitute from the cache (not the cache host,
    /// not hosts built elsewhere), in selection order.
    pub consumers: Vec<String>,
    /// The cache host is itself selected (deployed from its own store after
    /// the push).
    pub cache_selected: bool,
}

/// Where the hosts of a run through the cache wait for it: they connect, take
/// their lock and read their state while the cache host is filled and
/// publishes, then wait here before their push. Opened once, by the cache
/// step: `true` when the cache holds the run's paths, `false` when it could
/// not be filled (the hosts are then pushed to directly).
#[derive(Debug, Default)]
pub struct CacheGate {
    usable: Mutex<Option<bool>>,
    opened: Condvar,
}

impl CacheGate {
    /// Lets every waiting and later host through; the first call decides.
    pub fn open(&self, usable: bool) {
        let mut state = self.usable.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some(usable);
            self.opened.notify_all();
        }
    }

    /// Blocks until the gate is open; whether the cache is usable.
    pub fn wait(&self) -> bool {
        let mut state = self.usable.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(usable) = *state {
                return usable;
            }
            state = self.opened.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A guard that opens the gate as unusable when dropped unopened, so
    /// no host waits forever on a cache step that ended early (or panicked).
    pub fn guard(&self) -> GateGuard<'_> {
        GateGuard(self)
    }
}

/// See `CacheGate::guard`.
pub struct GateGuard<'a>(&'a CacheGate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.0.open(false);
    }
}

/// The cache step's result: the fleet-level `cache` object of `--json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CacheReport {
    pub host: String,
    /// Hosts that were to substitute from the cache.
    pub consumers: Vec<String>,
    /// Paths added to the cache by this deploy (the rest were there already).
    pub paths_published: usize,
    /// Of those, paths whose narinfo in the cache the fleet key did not
    /// verify (a poisoned or stale cache): replaced by signed ones.
    pub paths_replaced: usize,
    /// Paths pushed from the deployer into the cache host's store.
    pub paths_pushed: usize,
    /// NAR bytes of those paths.
    pub bytes_pushed: u64,
    /// Bytes that crossed the deployer's link to the cache host (after
    /// compression).
    pub bytes_sent: u64,
    /// Paths the cache host fetched from its own substituters instead.
    pub paths_fetched: usize,
    pub bytes_fetched: u64,
    /// Why the cache could not be used, when it could not (the hosts were
    /// then pushed to directly).
    pub error: Option<String>,
}

/// Why the cache step failed; the deploy then pushes to each host directly.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("listing the closure of {top}: {source}")]
    Closure {
        top: StorePath,
        source: Box<crate::nix::NixError>,
    },
    #[error("connecting to the cache host {host}: {source}")]
    Connect {
        host: String,
        source: Box<HostError>,
    },
    #[error("pushing to the cache host {host}: {source}")]
    Push {
        host: String,
        source: Box<PushError>,
    },
    #[error(
        "the cache host {host} has no signing key at {path}: the secret `{secret}` has not reached it (create it with `potato cache init`, then deploy {host})"
    )]
    NoKey {
        host: String,
        secret: String,
        path: String,
    },
    #[error("publishing into the binary cache on {host}: {source}")]
    Publish {
        host: String,
        source: Box<HostError>,
    },
}

impl CacheRun {
    /// The cache step for a deploy of `selected` (in order), or None when it
    /// does not apply: no cache in the fleet, substitution off
    /// (`--no-substitute`), or fewer than two hosts that would substitute
    /// from it (one host is pushed to directly: the same bytes leave the
    /// deployer, without the publish and the fetch in between; it still
    /// fetches what the cache already holds in its own substitution). Hosts
    /// built elsewhere (`build_on` target or a builder, in `built_elsewhere`)
    /// are left out: they receive only derivations, and their builder
    /// substitutes for itself.
    pub fn choose(
        cache: Option<CacheTarget>,
        selected: &[String],
        built_elsewhere: &BTreeSet<String>,
        substitute: bool,
    ) -> Option<CacheRun> {
        let cache = cache.filter(|_| substitute)?;
        let consumers: Vec<String> = selected
            .iter()
            .filter(|h| **h != cache.host && !built_elsewhere.contains(*h))
            .cloned()
            .collect();
        if consumers.len() < 2 {
            return None;
        }
        let cache_selected =
            selected.contains(&cache.host) && !built_elsewhere.contains(&cache.host);
        Some(CacheRun {
            cache,
            consumers,
            cache_selected,
        })
    }
}

/// The union of the closures of `tops`, dependencies first, each path once.
pub fn union_closure(tops: &[&StorePath]) -> Result<Vec<PathInfo>, CacheError> {
    let mut seen = HashSet::new();
    let mut union = Vec::new();
    for top in tops {
        let closure = crate::nix::closure(top).map_err(|source| CacheError::Closure {
            top: (*top).clone(),
            source: Box::new(source),
        })?;
        union.extend(merge_into(&mut seen, closure));
    }
    Ok(union)
}

/// The paths of `closure` (dependencies first) not in `seen`, in order. Each
/// closure is closed under references, so a path's references are either
/// earlier in it or already taken from an earlier one: the union stays
/// dependencies first.
fn merge_into(seen: &mut HashSet<StorePath>, closure: Vec<PathInfo>) -> Vec<PathInfo> {
    closure
        .into_iter()
        .filter(|p| seen.insert(p.path.clone()))
        .collect()
}

/// Pushes `union` into the cache host's store (its own substitution first,
/// as every push), holding its deploy lock. Returns the report so far and
/// the connection, still holding the lock (for `publish`).
pub fn push_to_cache(
    run: &CacheRun,
    union: Vec<PathInfo>,
    opts: &DeployOptions,
    events: &Sender<Event>,
) -> Result<(CacheReport, Remote), CacheError> {
    let host = run.cache.host.clone();
    let _ = events.send(Event::Phase {
        host: host.clone(),
        phase: Phase::Push,
    });
    let remote = connect_locked(&run.cache, opts)?;
    let push_opts = PushOptions {
        compress: opts.compress,
        substitute: opts.substitute,
        // One host: nothing to share.
        frames: None,
    };
    let pushed = push::push_paths(&remote, union, &push_opts, &mut reporter(&host, events))
        .map_err(|e| CacheError::Push {
            host: host.clone(),
            source: Box::new(e),
        })?;
    let report = CacheReport {
        host,
        consumers: run.consumers.clone(),
        paths_pushed: pushed.paths,
        bytes_pushed: pushed.nar_bytes,
        bytes_sent: pushed.wire_bytes,
        paths_fetched: pushed.fetched_paths,
        bytes_fetched: pushed.fetched_bytes,
        ..CacheReport::default()
    };
    Ok((report, remote))
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Paths added to the cache.
    pub added: usize,
    /// Of those, paths whose narinfo the fleet key did not verify (unsigned,
    /// another key's, altered): replaced by a signed one.
    pub replaced: usize,
}

/// Publishes `paths` (in the cache host's store) into its signed binary
/// cache, over `remote` (connected to the cache host, holding its lock:
/// `push_to_cache`, `connect_locked`). A narinfo already there that the
/// fleet's public key does not verify is replaced.
pub fn publish(
    remote: &Remote,
    cache: &CacheTarget,
    paths: &[StorePath],
    events: &Sender<Event>,
) -> Result<Published, CacheError> {
    let host = cache.host.clone();
    let publish_err = |e| CacheError::Publish {
        host: host.clone(),
        source: Box::new(e),
    };
    match remote
        .publish_to_cache(&cache.dir, &cache.key_path, &cache.public_key, paths)
        .map_err(publish_err)?
    {
        CachePublish::Published { added, replaced } => {
            let mut line = format!(
                "published {added} new paths into the fleet cache ({} asked)",
                paths.len()
            );
            if replaced > 0 {
                line.push_str(&format!(
                    "; {replaced} of them replaced a narinfo the fleet key did not sign"
                ));
            }
            let _ = events.send(Event::Log {
                host: host.clone(),
                line,
            });
            Ok(Published { added, replaced })
        }
        CachePublish::NoKey => Err(CacheError::NoKey {
            host,
            secret: cache.key_secret.clone(),
            path: cache.key_path.clone(),
        }),
    }
}

/// A connection to the cache host holding its deploy lock.
pub fn connect_locked(cache: &CacheTarget, opts: &DeployOptions) -> Result<Remote, CacheError> {
    let mut ssh = opts.ssh.clone();
    ssh.host_name = Some(crate::ssh::trust_hint(&cache.host, None));
    let connect_err = |e| CacheError::Connect {
        host: cache.host.clone(),
        source: Box::new(e),
    };
    let mut remote = Remote::connect(&cache.target, &ssh).map_err(connect_err)?;
    remote
        .lock(&cache.host, &opts.holder)
        .map_err(connect_err)?;
    Ok(remote)
}

/// The push pipeline's events as the cache host's events, in the cache's
/// words.
fn reporter(host: &str, events: &Sender<Event>) -> impl FnMut(PushEvent) + use<> {
    super::forward_push(host, events, |e| match *e {
        PushEvent::Sending { paths, .. } => Some(format!(
            "pushing {paths} paths into the fleet cache host's store"
        )),
        PushEvent::Fetched { paths, bytes } => Some(format!(
            "the cache host fetched {paths} paths ({bytes} bytes) from its substituters"
        )),
        PushEvent::Unfetched { .. } | PushEvent::Progress { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str) -> CacheTarget {
        CacheTarget {
            host: host.into(),
            target: Target {
                user: Some("root".into()),
                host: "10.213.9.2".into(),
                port: None,
            },
            key_secret: "fleet-cache-key".into(),
            key_path: "/run/potato-secrets/fleet-cache-key".into(),
            dir: "/var/lib/potato/cache".into(),
            public_key: String::new(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_cache_takes_the_selected_hosts_but_itself_and_remote_builds() {
        let elsewhere: BTreeSet<String> = ["b".to_string()].into();
        let run = CacheRun::choose(
            Some(target("c")),
            &names(&["a", "b", "c", "d"]),
            &elsewhere,
            true,
        )
        .unwrap();
        assert_eq!(run.consumers, names(&["a", "d"]));
        assert!(run.cache_selected);
        let run =
            CacheRun::choose(Some(target("c")), &names(&["d", "e"]), &elsewhere, true).unwrap();
        assert_eq!(run.consumers, names(&["d", "e"]));
        assert!(!run.cache_selected, "used as a cache, not deployed");
    }

    #[test]
    fn one_consumer_is_pushed_to_directly() {
        let none = BTreeSet::new();
        assert_eq!(
            CacheRun::choose(Some(target("c")), &names(&["d"]), &none, true),
            None
        );
        assert_eq!(
            CacheRun::choose(Some(target("c")), &names(&["c", "d"]), &none, true),
            None,
            "the cache host and one consumer"
        );
    }

    #[test]
    fn the_gate_lets_waiting_hosts_through_once_with_the_first_verdict() {
        let gate = std::sync::Arc::new(CacheGate::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let g = gate.clone();
                std::thread::spawn(move || g.wait())
            })
            .collect();
        gate.open(true);
        gate.open(false);
        for w in waiters {
            assert!(w.join().unwrap());
        }
        assert!(gate.wait(), "a host arriving later passes too");
    }

    #[test]
    fn a_cache_step_that_ends_without_a_verdict_opens_the_gate_as_unusable() {
        let gate = CacheGate::default();
        {
            let _guard = gate.guard();
        }
        assert!(!gate.wait());
        let opened = CacheGate::default();
        {
            let _guard = opened.guard();
            opened.open(true);
        }
        assert!(opened.wait(), "the guard does not undo a verdict");
    }

    #[test]
    fn no_cache_step_without_a_cache_consumers_or_substitution() {
        let none = BTreeSet::new();
        assert_eq!(
            CacheRun::choose(None, &names(&["a", "b"]), &none, true),
            None
        );
        assert_eq!(
            CacheRun::choose(Some(target("c")), &names(&["a", "b"]), &none, false),
            None,
            "--no-substitute goes straight"
        );
        assert_eq!(
            CacheRun::choose(Some(target("c")), &names(&["c"]), &none, true),
            None,
            "the cache host alone"
        );
        let elsewhere: BTreeSet<String> = ["a".to_string()].into();
        assert_eq!(
            CacheRun::choose(Some(target("c")), &names(&["a", "c"]), &elsewhere, true),
            None,
            "a host built on its target takes nothing from the cache"
        );
    }

    fn info(name: &str, refs: &[&str]) -> PathInfo {
        let p = |n: &str| -> StorePath {
            StorePath::parse(&format!("/nix/store/{}-{n}", "a".repeat(32))).unwrap()
        };
        PathInfo {
            path: p(name),
            nar_size: 1,
            nar_hash: "sha256:0".into(),
            references: refs.iter().map(|r| p(r)).collect(),
            deriver: None,
            ca: None,
            signatures: Vec::new(),
        }
    }

    #[test]
    fn the_union_keeps_each_path_once_dependencies_first() {
        let mut seen = HashSet::new();
        let one = merge_into(&mut seen, vec![info("libc", &[]), info("a", &["libc"])]);
        let two = merge_into(
            &mut seen,
            vec![info("libc", &[]), info("b", &["libc"]), info("c", &["b"])],
        );
        let order: Vec<String> = one
            .iter()
            .chain(&two)
            .map(|p| p.path.name().to_string())
            .collect();
        assert_eq!(order, ["libc", "a", "b", "c"]);
    }
}
