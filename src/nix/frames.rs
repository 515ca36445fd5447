//! Compress once, send to many: each pushed path's serve-protocol command and
//! NAR (`transfer::ServeStream`) as one independent zstd frame, produced once
//! per deploy run and shared by every host that needs the path. zstd frames
//! concatenate (RFC 8878 §3.1: a stream is a sequence of frames, and `zstd -d`
//! decodes them one after another), so a host's stream is the greeting's frame
//! followed by the frames of the paths it lacks, in dependency order.
//!
//! Data that does not compress (its first MiB shrinks by less than 10% at the
//! stream's level) is framed with raw blocks instead (RFC 8878 §3.1.1.2:
//! Block_Type 0, Raw_Block): valid zstd that the host's decoder copies, and
//! that costs the deployer no compression work.
//!
//! Owns the frame files (in a private temporary directory removed with the
//! cache) and the choice raw vs compressed. It does not know hosts or SSH.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::StorePath;
use super::transfer::{PathInfo, ServeStream, greeting};

/// zstd's frame magic number, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Window descriptor for 2^17 = 128 KiB (exponent 7, mantissa 0), the largest
/// block size zstd allows.
const WINDOW_128K: u8 = 7 << 3;
const RAW_BLOCK_MAX: usize = 128 * 1024;
/// Bytes sampled to decide whether a path compresses.
const SAMPLE: usize = 1024 * 1024;
/// Compressed to more than this share of the sample: sent raw.
const INCOMPRESSIBLE: f64 = 0.9;

/// One path's frame: where it is, how big, and whether it was compressed.
#[derive(Debug, Clone)]
pub struct Frame {
    pub file: PathBuf,
    pub bytes: u64,
    pub compressed: bool,
}

/// What one host's framed stream carried: frames sent, and how many of them
/// (and their bytes) this stream produced itself, being the first to need
/// them. Over a run, `made` sums to the distinct paths pushed and `sent` to
/// the paths pushed to all hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameCounts {
    pub sent: usize,
    pub made: usize,
    pub made_bytes: u64,
}

type Slot = Arc<OnceLock<Result<Frame, String>>>;

/// The frames of one deploy run, each produced at most once.
pub struct FrameCache {
    dir: tempfile::TempDir,
    level: i32,
    slots: Mutex<HashMap<StorePath, Slot>>,
    produced: AtomicUsize,
}

impl FrameCache {
    pub fn new(level: i32) -> io::Result<FrameCache> {
        Ok(FrameCache {
            dir: tempfile::Builder::new().prefix("potato-frames").tempdir()?,
            level,
            slots: Mutex::new(HashMap::new()),
            produced: AtomicUsize::new(0),
        })
    }

    /// How many frames were produced (each path once, however many hosts).
    pub fn produced(&self) -> usize {
        self.produced.load(Ordering::Relaxed)
    }

    /// The frame of `info`, produced by the first caller; concurrent callers
    /// for the same path wait for it.
    pub fn frame(&self, info: &PathInfo) -> Result<Frame, String> {
        self.frame_made(info).map(|(f, _)| f)
    }

    /// `frame`, and whether this call produced it.
    fn frame_made(&self, info: &PathInfo) -> Result<(Frame, bool), String> {
        let slot = self
            .slots
            .lock()
            .expect("frame cache lock")
            .entry(info.path.clone())
            .or_default()
            .clone();
        let mut made = false;
        let frame = slot
            .get_or_init(|| {
                made = true;
                self.produced.fetch_add(1, Ordering::Relaxed);
                let file = self.dir.path().join(info.path.hash());
                write_frame(info, &file, self.level)
                    .map_err(|e| format!("compressing {}: {e}", info.path))
            })
            .clone()?;
        Ok((frame, made))
    }

    /// A host's whole stream: the greeting's frame, then each path's frame.
    /// Frames are produced as the stream reaches them.
    pub fn stream(self: &Arc<Self>, infos: Vec<PathInfo>) -> FramedStream {
        let mut head = Vec::new();
        raw_frame(&mut &greeting()[..], &mut head).expect("writing to memory");
        FramedStream {
            cache: self.clone(),
            head: io::Cursor::new(head),
            queue: infos.into(),
            current: None,
            counts: FrameCounts::default(),
        }
    }
}

/// Writes `info`'s serve command and NAR as one frame into `file`.
fn write_frame(info: &PathInfo, file: &std::path::Path, level: i32) -> io::Result<Frame> {
    let compressed = compresses(info, level)?;
    let mut out = BufWriter::new(File::create(file)?);
    let mut input = ServeStream::without_greeting(vec![info.clone()]);
    if compressed {
        let mut enc = zstd::stream::write::Encoder::new(&mut out, level)?;
        io::copy(&mut input, &mut enc)?;
        enc.finish()?;
    } else {
        raw_frame(&mut input, &mut out)?;
    }
    out.flush()?;
    drop(out);
    Ok(Frame {
        file: file.to_path_buf(),
        bytes: std::fs::metadata(file)?.len(),
        compressed,
    })
}

/// Whether the first MiB of `info`'s stream shrinks by at least 10%.
fn compresses(info: &PathInfo, level: i32) -> io::Result<bool> {
    let mut sample = Vec::with_capacity(SAMPLE);
    ServeStream::without_greeting(vec![info.clone()])
        .take(SAMPLE as u64)
        .read_to_end(&mut sample)?;
    if sample.len() < 4096 {
        // Headers and tiny files: compression costs nothing worth saving.
        return Ok(true);
    }
    let packed = zstd::bulk::compress(&sample, level)?;
    Ok((packed.len() as f64) < INCOMPRESSIBLE * sample.len() as f64)
}

/// Copies `input` into one zstd frame made of raw blocks (no compression).
pub fn raw_frame(input: &mut dyn Read, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(&ZSTD_MAGIC)?;
    // Frame header descriptor 0: no content size, not single-segment, no
    // checksum, no dictionary; then the window descriptor.
    out.write_all(&[0x00, WINDOW_128K])?;
    let mut cur = vec![0u8; RAW_BLOCK_MAX];
    let mut next = vec![0u8; RAW_BLOCK_MAX];
    let mut n = fill(input, &mut cur)?;
    loop {
        let m = if n == RAW_BLOCK_MAX {
            fill(input, &mut next)?
        } else {
            0
        };
        let last = m == 0;
        // Block header: Last_Block bit, Block_Type 0 (raw), Block_Size.
        let header = (u32::from(last)) | ((n as u32) << 3);
        out.write_all(&header.to_le_bytes()[..3])?;
        out.write_all(&cur[..n])?;
        if last {
            return Ok(());
        }
        std::mem::swap(&mut cur, &mut next);
        n = m;
    }
}

/// Reads until `buf` is full or the input ends.
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl std::fmt::Debug for FrameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCache")
            .field("dir", &self.dir.path())
            .field("level", &self.level)
            .field("produced", &self.produced())
            .finish()
    }
}

/// A host's stream assembled from shared frames.
pub struct FramedStream {
    cache: Arc<FrameCache>,
    head: io::Cursor<Vec<u8>>,
    queue: std::collections::VecDeque<PathInfo>,
    current: Option<BufReader<File>>,
    counts: FrameCounts,
}

impl FramedStream {
    /// The frames this stream has carried so far.
    pub fn counts(&self) -> FrameCounts {
        self.counts
    }
}

impl Read for FramedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        loop {
            if let Some(r) = self.current.as_mut() {
                let n = r.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some(info) = self.queue.pop_front() else {
                return Ok(0);
            };
            let (frame, made) = self.cache.frame_made(&info).map_err(io::Error::other)?;
            self.counts.sent += 1;
            if made {
                self.counts.made += 1;
                self.counts.made_bytes += frame.bytes;
            }
            self.current = Some(BufReader::new(File::open(frame.file)?));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_frame_is_zstd_that_decodes_to_its_input() {
        for len in [
            0usize,
            1,
            RAW_BLOCK_MAX - 1,
            RAW_BLOCK_MAX,
            3 * RAW_BLOCK_MAX + 17,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 13) as u8).collect();
            let mut framed = Vec::new();
            raw_frame(&mut &data[..], &mut framed).unwrap();
            // Overhead: 6 bytes of frame header, 3 per block.
            assert!(framed.len() <= data.len() + 6 + 3 * (len / RAW_BLOCK_MAX + 1));
            let decoded = zstd::stream::decode_all(&framed[..]).unwrap();
            assert_eq!(decoded, data, "length {len}");
        }
    }

    #[test]
    fn concatenated_frames_decode_as_one_stream() {
        let mut s = Vec::new();
        raw_frame(&mut &b"abc"[..], &mut s).unwrap();
        s.extend(zstd::bulk::compress(b"defdefdefdef", 1).unwrap());
        raw_frame(&mut &b"ghi"[..], &mut s).unwrap();
        assert_eq!(
            zstd::stream::decode_all(&s[..]).unwrap(),
            b"abcdefdefdefdefghi"
        );
    }

    /// A real store path holding `data` (`nix-store --add`), for the NAR
    /// encoder to read; None (a skip, or a failure in CI) without Nix.
    fn store_file(name: &str, data: &[u8]) -> Option<PathInfo> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(name);
        std::fs::write(&f, data).unwrap();
        let out = match std::process::Command::new("nix-store")
            .arg("--add")
            .arg(&f)
            .output()
        {
            Ok(o) if o.status.success() => o,
            other => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "nix-store --add: {other:?}"
                );
                eprintln!("SKIPPED: nix-store --add is not available: {other:?}");
                return None;
            }
        };
        let path = StorePath::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        Some(PathInfo {
            path,
            references: vec![],
            deriver: None,
            nar_size: 0,
            nar_hash: "sha256-x".into(),
            signatures: vec![],
            ca: None,
        })
    }

    #[test]
    fn each_path_is_framed_once_and_random_data_is_sent_raw() {
        let mut random = vec![0u8; 2 * SAMPLE];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let text = "potato compresses text like this well\n".repeat(50_000);
        let (Some(r), Some(t)) = (
            store_file("random", &random),
            store_file("text", text.as_bytes()),
        ) else {
            return;
        };
        let cache = Arc::new(FrameCache::new(1).unwrap());
        // Three "hosts" want both paths at once.
        let counts: Vec<FrameCounts> = std::thread::scope(|s| {
            let streams: Vec<_> = (0..3)
                .map(|_| {
                    let (cache, r, t) = (cache.clone(), r.clone(), t.clone());
                    s.spawn(move || {
                        let mut out = Vec::new();
                        let mut stream = cache.stream(vec![r, t]);
                        stream.read_to_end(&mut out).unwrap();
                        let decoded = zstd::stream::decode_all(&out[..]).unwrap();
                        assert_eq!(&decoded[..16], &greeting()[..]);
                        stream.counts()
                    })
                })
                .collect();
            streams.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(cache.produced(), 2, "each path compressed once");
        assert!(counts.iter().all(|c| c.sent == 2), "{counts:?}");
        assert_eq!(
            counts.iter().map(|c| c.made).sum::<usize>(),
            2,
            "{counts:?}"
        );
        let fr = cache.frame(&r).unwrap();
        let ft = cache.frame(&t).unwrap();
        assert_eq!(
            counts.iter().map(|c| c.made_bytes).sum::<u64>(),
            fr.bytes + ft.bytes
        );
        assert!(!fr.compressed && fr.bytes as usize > random.len());
        assert!(ft.compressed && (ft.bytes as usize) < text.len() / 10);
    }
}
