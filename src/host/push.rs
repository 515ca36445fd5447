//! The push pipeline, used by deploy and by bootstrap's install: a system's
//! closure → the paths the host lacks (one round trip) → one serve-protocol
//! stream of just those (`nix::transfer::ServeStream`), zstd-compressed when
//! the host has zstd, with progress reported as it goes. Nothing is held in
//! memory. It does not activate anything, lock the host, or print.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::nix::transfer::{PathInfo, ServeStream};
use crate::nix::{self, StorePath};

use super::remote::{HostError, Remote};

/// zstd level for closure streams: level 1 keeps up with the link on two cores.
const ZSTD_LEVEL: i32 = 1;
/// How often progress is reported while streaming.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Whether to compress the stream (`--compress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    /// When the host has zstd.
    #[default]
    Auto,
    Yes,
    No,
}

/// What the pipeline reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// The missing paths are known; `bytes` of NAR are about to be streamed.
    Sending {
        paths: usize,
        bytes: u64,
        compressed: bool,
    },
    /// NAR bytes produced so far, of `total`.
    Progress { done: u64, total: u64 },
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
    let closure = nix::closure(top).map_err(|source| PushError::Closure {
        top: top.clone(),
        source: Box::new(source),
    })?;
    let paths: Vec<StorePath> = closure.iter().map(|c| c.path.clone()).collect();
    let missing = remote.missing(&paths)?;
    if missing.is_empty() {
        return Ok(Pushed::default());
    }
    let wanted: std::collections::HashSet<&StorePath> = missing.iter().collect();
    // `closure` is dependencies first, so this keeps the import order.
    let send: Vec<PathInfo> = closure
        .into_iter()
        .filter(|c| wanted.contains(&c.path))
        .collect();
    let compressed = match compress {
        Compress::Yes => true,
        Compress::No => false,
        Compress::Auto => remote.has_zstd(),
    };
    stream(remote, send, compressed, report)
}

/// Streams `send` (dependencies first) into the host's store.
fn stream(
    remote: &Remote,
    send: Vec<PathInfo>,
    compressed: bool,
    report: &mut dyn FnMut(PushEvent),
) -> Result<Pushed, PushError> {
    let total: u64 = send.iter().map(|p| p.nar_size).sum();
    let count = send.len();
    report(PushEvent::Sending {
        paths: count,
        bytes: total,
        compressed,
    });
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
