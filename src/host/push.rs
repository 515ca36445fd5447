//! The push pipeline, used by deploy and by bootstrap's install: a system's
//! closure → the paths the host lacks (one round trip) → one serve-protocol
//! stream of just those (`nix::transfer::ServeStream`), zstd-compressed when
//! the host has zstd, with progress reported as it goes. Nothing is held in
//! memory. Two optional steps fit in it (`PushOptions`): the host first
//! fetches what its own substituters have of the missing paths
//! (`host::substitute`), and several hosts pushed in one run share compressed
//! frames, each path compressed once for all of them (`nix::frames`). It does
//! not activate anything, lock the host, or print.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::nix::frames::{FrameCache, FrameCounts};
use crate::nix::transfer::{PathInfo, ServeStream};
use crate::nix::{self, StorePath};

use super::remote::{HostError, Remote};

/// zstd level for closure streams: level 1 keeps up with the link on two cores.
const ZSTD_LEVEL: i32 = 1;
/// How often progress is reported while streaming.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Whether to compress the stream: deploy's `--compress auto|yes|no`, typed
/// by clap (the one enum, from the flag to the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compress {
    // When the host has zstd (a plain comment: a doc comment here would
    // change `potato deploy --help`).
    #[default]
    Auto,
    Yes,
    No,
}

/// How a push goes beyond compression: `push_closure` uses the defaults
/// (no substitution, no shared frames), as bootstrap's install does.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub compress: Compress,
    /// Let the host fetch what its own substituters have of the missing paths
    /// before anything is streamed (`host::substitute`).
    pub substitute: bool,
    /// Compressed frames shared by every host of the run: used when the stream
    /// is compressed (`nix::frames`).
    pub frames: Option<Arc<FrameCache>>,
}

/// What the pipeline reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// The missing paths are known; `bytes` of NAR are about to be streamed.
    Sending {
        paths: usize,
        bytes: u64,
        compressed: bool,
        /// The compressed bytes come from the run's shared frames.
        shared_frames: bool,
    },
    /// NAR bytes produced so far, of `total`.
    Progress { done: u64, total: u64 },
    /// The host fetched `paths` paths (`bytes` of NAR) from its own
    /// substituters; only the rest is streamed.
    Fetched { paths: usize, bytes: u64 },
    /// Something the user should know of the host's substituters (they did
    /// not answer in time, so everything is pushed): a warning.
    Unfetched { why: String },
}

impl PushEvent {
    /// The event in words, the same for every push (deploy's, bootstrap's
    /// install); None for progress, which a reporter shows as bytes.
    pub fn describe(&self) -> Option<String> {
        match *self {
            PushEvent::Sending {
                paths,
                compressed,
                shared_frames,
                ..
            } => Some(format!(
                "pushing {paths} paths{}",
                match (compressed, shared_frames) {
                    (true, true) => " (zstd, shared frames)",
                    (true, false) => " (zstd)",
                    _ => "",
                }
            )),
            PushEvent::Fetched { paths, bytes } => Some(format!(
                "the host fetched {paths} paths ({bytes} bytes) from its substituters"
            )),
            PushEvent::Unfetched { .. } | PushEvent::Progress { .. } => None,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    pub paths: usize,
    /// NAR bytes of the pushed paths.
    pub nar_bytes: u64,
    /// Bytes that crossed the wire (after compression).
    pub wire_bytes: u64,
    pub compressed: bool,
    /// The stream came from the run's shared frames.
    pub shared_frames: bool,
    /// The shared frames this push sent, and those it compressed itself.
    pub frames: FrameCounts,
    /// Paths (and their NAR bytes) the host fetched from its own substituters.
    pub fetched_paths: usize,
    pub fetched_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("listing the closure of {top}: {source}")]
    Closure {
        top: StorePath,
        source: Box<nix::NixError>,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("letting the host fetch from its substituters: {0}")]
    Substitute(#[source] Box<HostError>),
    #[error("starting zstd: {0}")]
    Zstd(std::io::Error),
}

/// Pushes `top`'s closure to `remote` (into its store, or the store under its
/// store root), sending only what the host lacks.
pub fn push_closure(
    remote: &Remote,
    top: &StorePath,
    compress: Compress,
    report: &mut dyn FnMut(PushEvent),
) -> Result<Pushed, PushError> {
    let opts = PushOptions {
        compress,
        ..PushOptions::default()
    };
    push_closure_with(remote, top, &opts, report)
}

/// `push_closure` with the optional steps of `opts` (substitution on the
/// host, shared frames).
pub fn push_closure_with(
    remote: &Remote,
    top: &StorePath,
    opts: &PushOptions,
    report: &mut dyn FnMut(PushEvent),
) -> Result<Pushed, PushError> {
    let closure = nix::closure(top).map_err(|source| PushError::Closure {
        top: top.clone(),
        source: Box::new(source),
    })?;
    push_paths(remote, closure, opts, report)
}

/// Pushes what the host lacks of `closure` (dependencies first, closed under
/// references, e.g. a system's closure or a derivation closure).
pub fn push_paths(
    remote: &Remote,
    closure: Vec<PathInfo>,
    opts: &PushOptions,
    report: &mut dyn FnMut(PushEvent),
) -> Result<Pushed, PushError> {
    let paths: Vec<StorePath> = closure.iter().map(|c| c.path.clone()).collect();
    let mut missing = remote.missing(&paths)?;
    let mut fetched = (0, 0);
    if opts.substitute && !missing.is_empty() {
        let got = super::substitute::fetch_missing(remote, &missing, &closure)
            .map_err(|e| PushError::Substitute(Box::new(e)))?;
        for why in &got.notes {
            report(PushEvent::Unfetched { why: why.clone() });
        }
        if !got.paths.is_empty() {
            report(PushEvent::Fetched {
                paths: got.paths.len(),
                bytes: got.nar_bytes,
            });
        }
        fetched = (got.paths.len(), got.nar_bytes);
        missing = got.still_missing;
    }
    let mut pushed = if missing.is_empty() {
        Pushed::default()
    } else {
        let wanted: std::collections::HashSet<&StorePath> = missing.iter().collect();
        // `closure` is dependencies first, so this keeps the import order.
        let send: Vec<PathInfo> = closure
            .into_iter()
            .filter(|c| wanted.contains(&c.path))
            .collect();
        let compressed = match opts.compress {
            Compress::Yes => true,
            Compress::No => false,
            Compress::Auto => remote.has_zstd(),
        };
        let frames = opts.frames.as_ref().filter(|_| compressed);
        stream(remote, send, compressed, frames, report)?
    };
    (pushed.fetched_paths, pushed.fetched_bytes) = fetched;
    Ok(pushed)
}

/// Streams `send` (dependencies first) into the host's store.
/// With `frames`, the compressed bytes come from the run's shared frames (the
/// same bytes for every host that lacks a path).
fn stream(
    remote: &Remote,
    send: Vec<PathInfo>,
    compressed: bool,
    frames: Option<&Arc<FrameCache>>,
    report: &mut dyn FnMut(PushEvent),
) -> Result<Pushed, PushError> {
    let total: u64 = send.iter().map(|p| p.nar_size).sum();
    let count = send.len();
    report(PushEvent::Sending {
        paths: count,
        bytes: total,
        compressed,
        shared_frames: frames.is_some(),
    });
    if let Some(frames) = frames {
        return stream_frames(remote, send, frames, total, report);
    }
    // NAR bytes produced so far, shared with the progress callback.
    let nar_bytes = Arc::new(AtomicU64::new(0));
    let counted = CountingReader {
        inner: ServeStream::new(send),
        count: nar_bytes.clone(),
    };
    let mut input: Box<dyn std::io::Read> = if compressed {
        Box::new(zstd::stream::read::Encoder::new(counted, ZSTD_LEVEL).map_err(PushError::Zstd)?)
    } else {
        Box::new(counted)
    };
    let mut last = Instant::now();
    let mut wire = 0u64;
    let mut progress = |sent: u64| {
        wire = sent;
        if last.elapsed() > PROGRESS_EVERY {
            last = Instant::now();
            report(PushEvent::Progress {
                done: nar_bytes.load(Ordering::Relaxed),
                total,
            });
        }
    };
    remote.add_to_store(&mut input, count, compressed, &mut progress)?;
    drop(input);
    let nar = nar_bytes.load(Ordering::Relaxed);
    report(PushEvent::Progress {
        done: nar,
        total: nar.max(total),
    });
    Ok(Pushed {
        paths: count,
        nar_bytes: nar,
        wire_bytes: wire,
        compressed,
        ..Pushed::default()
    })
}

/// Streams `send` from the run's shared frames. Progress counts wire bytes
/// (the frames hold compressed bytes; their NAR size is not seen here).
fn stream_frames(
    remote: &Remote,
    send: Vec<PathInfo>,
    frames: &Arc<FrameCache>,
    total: u64,
    report: &mut dyn FnMut(PushEvent),
) -> Result<Pushed, PushError> {
    let count = send.len();
    let mut input = frames.stream(send);
    let mut last = Instant::now();
    let mut wire = 0u64;
    let mut progress = |sent: u64| {
        wire = sent;
        if last.elapsed() > PROGRESS_EVERY {
            last = Instant::now();
            report(PushEvent::Progress {
                done: sent.min(total),
                total,
            });
        }
    };
    remote.add_to_store(&mut input, count, true, &mut progress)?;
    report(PushEvent::Progress { done: total, total });
    Ok(Pushed {
        paths: count,
        nar_bytes: total,
        wire_bytes: wire,
        compressed: true,
        shared_frames: true,
        frames: input.counts(),
        ..Pushed::default()
    })
}

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
