//! Writing an image to a card: which targets are safe, the write itself, and
//! the read-back verification.
//!
//! Owns the refusal rules (a mounted device, a partition, a fixed disk, the
//! disk holding /, an image larger than the device) and the facts shown before
//! asking (model, size). Device facts come from sysfs and /proc/self/mountinfo
//! under a root that tests can replace. A regular file is a valid target too
//! (a stand-in for a card, or an image to `dd` later).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// What the target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A regular file (created or overwritten).
    File(PathBuf),
    /// A whole block device, with what sysfs says about it.
    Disk {
        path: PathBuf,
        name: String,
        model: String,
        size_bytes: u64,
    },
}

impl Target {
    pub fn path(&self) -> &Path {
        match self {
            Target::File(p) | Target::Disk { path: p, .. } => p,
        }
    }

    /// "/dev/sdb (Generic SD Reader, 31.9 GB)" or "file /tmp/card.img".
    pub fn describe(&self) -> String {
        match self {
            Target::File(p) => format!("file {}", p.display()),
            Target::Disk {
                path,
                model,
                size_bytes,
                ..
            } => format!(
                "{} ({}, {:.1} GB)",
                path.display(),
                if model.is_empty() {
                    "unknown model"
                } else {
                    model
                },
                *size_bytes as f64 / 1e9
            ),
        }
    }
}

/// Why a target is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("{0} is a partition; give the whole card (e.g. /dev/sdb, /dev/mmcblk0)")]
    Partition(String),
    #[error("{0} holds the running system's root filesystem")]
    RootDisk(String),
    #[error("{device} is mounted ({mount}); unmount it first")]
    Mounted { device: String, mount: String },
    #[error("{0} is not removable media; potato flashes SD cards and USB sticks only")]
    Fixed(String),
    #[error("the image ({image} bytes) is larger than {device} ({size} bytes)")]
    TooSmall {
        device: String,
        image: u64,
        size: u64,
    },
    #[error("{0} is neither a block device nor a regular file")]
    Unsupported(String),
}

/// Where sysfs and mountinfo are read (the real root, or a test's fake one).
pub struct System {
    pub sys: PathBuf,
    pub mountinfo: PathBuf,
}

impl Default for System {
    fn default() -> System {
        System {
            sys: "/sys".into(),
            mountinfo: "/proc/self/mountinfo".into(),
        }
    }
}

impl System {
    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.sys.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// (source device basename, mount point) of every mount of a /dev node.
    fn mounts(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.mountinfo).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let mount_point = left.split_whitespace().nth(4)?.to_string();
                let source = right.split_whitespace().nth(1)?;
                let dev = source.strip_prefix("/dev/")?;
                let base = dev.rsplit('/').next()?.to_string();
                Some((base, mount_point))
            })
            .collect()
    }

    /// The whole disk a block device name belongs to ("sda1" → "sda").
    fn disk_of(&self, name: &str) -> String {
        if self
            .read(&format!("class/block/{name}/partition"))
            .is_some()
        {
            // /sys/class/block/sda1 links into .../sda/sda1: the parent dir is the disk.
            if let Ok(real) = std::fs::canonicalize(self.sys.join(format!("class/block/{name}")))
                && let Some(parent) = real.parent().and_then(|p| p.file_name())
            {
                return parent.to_string_lossy().into_owned();
            }
        }
        name.to_string()
    }

    /// Names of the disk itself and all its partitions.
    fn family(&self, disk: &str) -> Vec<String> {
        let mut names = vec![disk.to_string()];
        if let Ok(entries) = std::fs::read_dir(self.sys.join(format!("block/{disk}"))) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(disk) && e.path().join("partition").exists() {
                    names.push(n);
                }
            }
        }
        names
    }

    /// Checks a block device `name` (basename under /dev) and describes it.
    pub fn check_disk(&self, path: &Path, name: &str, image_len: u64) -> Result<Target, Refusal> {
        let shown = path.display().to_string();
        if self
            .read(&format!("class/block/{name}/partition"))
            .is_some()
        {
            return Err(Refusal::Partition(shown));
        }
        let family = self.family(name);
        let mounts = self.mounts();
        if let Some((_, _)) = mounts
            .iter()
            .find(|(dev, mp)| mp == "/" && family.contains(&self.disk_of(dev)))
        {
            return Err(Refusal::RootDisk(shown));
        }
        if let Some((dev, mp)) = mounts.iter().find(|(dev, _)| family.contains(dev)) {
            return Err(Refusal::Mounted {
                device: format!("/dev/{dev}"),
                mount: mp.clone(),
            });
        }
        // SD readers on USB say removable; built-in MMC slots often do not, and a
        // loop device is a file by definition.
        let removable = self.read(&format!("block/{name}/removable")).as_deref() == Some("1")
            || name.starts_with("mmcblk")
            || name.starts_with("loop");
        if !removable {
            return Err(Refusal::Fixed(shown));
        }
        let sectors: u64 = self
            .read(&format!("block/{name}/size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let size_bytes = sectors * 512;
        if image_len > size_bytes {
            return Err(Refusal::TooSmall {
                device: shown,
                image: image_len,
                size: size_bytes,
            });
        }
        let model = self
            .read(&format!("block/{name}/device/model"))
            .or_else(|| self.read(&format!("block/{name}/device/name")))
            .unwrap_or_else(|| {
                if name.starts_with("loop") {
                    "loop device".into()
                } else {
                    String::new()
                }
            });
        Ok(Target::Disk {
            path: path.to_path_buf(),
            name: name.to_string(),
            model,
            size_bytes,
        })
    }
}

/// Classifies `path` and checks it for an image of `image_len` bytes.
pub fn check_target(sys: &System, path: &Path, image_len: u64) -> Result<Target, Refusal> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // A new file is fine: it is created.
        Err(_) => return Ok(Target::File(path.to_path_buf())),
    };
    if meta.is_file() {
        return Ok(Target::File(path.to_path_buf()));
    }
    if meta.file_type().is_block_device() {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return sys.check_disk(path, &name, image_len);
    }
    Err(Refusal::Unsupported(path.display().to_string()))
}

const CHUNK: usize = 4 << 20;

/// Writes `image` to `target` (progress: bytes done), syncs, drops the cache and
/// reads it back; Err names the first differing offset.
pub fn write_and_verify(
    image: &Path,
    target: &Target,
    progress: &mut dyn FnMut(&str, u64),
) -> std::io::Result<u64> {
    let mut src = File::open(image)?;
    let len = src.metadata()?.len();
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create(matches!(target, Target::File(_)))
        .truncate(matches!(target, Target::File(_)))
        .open(target.path())?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = read_full(&mut src, &mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
        done += n as u64;
        progress("write", done);
    }
    dst.sync_all()?;
    // Read back from the device, not the page cache.
    // SAFETY: a valid open fd; advisory call.
    unsafe {
        libc::posix_fadvise(dst.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    src.seek(SeekFrom::Start(0))?;
    dst.seek(SeekFrom::Start(0))?;
    let mut back = vec![0u8; CHUNK];
    let mut checked = 0u64;
    loop {
        let n = read_full(&mut src, &mut buf)?;
        if n == 0 {
            break;
        }
        let m = read_full(&mut dst, &mut back[..n])?;
        if m != n || buf[..n] != back[..n] {
            let at = buf[..n]
                .iter()
                .zip(&back[..m])
                .position(|(a, b)| a != b)
                .unwrap_or(m);
            return Err(std::io::Error::other(format!(
                "verification failed: the device differs from the image at byte {}",
                checked + at as u64
            )));
        }
        checked += n as u64;
        progress("verify", checked);
    }
    Ok(len)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs + mountinfo: disks with partitions, removable flags, mounts.
    fn fake(
        disks: &[(&str, bool, &[&str])],
        mounts: &[(&str, &str)],
    ) -> (tempfile::TempDir, System) {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        for (disk, removable, parts) in disks {
            let d = sys.join("block").join(disk);
            std::fs::create_dir_all(d.join("device")).unwrap();
            std::fs::write(d.join("removable"), if *removable { "1\n" } else { "0\n" }).unwrap();
            std::fs::write(d.join("size"), "62333952\n").unwrap();
            std::fs::write(d.join("device/model"), "SD Reader\n").unwrap();
            std::fs::create_dir_all(sys.join("class/block")).unwrap();
            std::os::unix::fs::symlink(&d, sys.join("class/block").join(disk)).unwrap();
            for p in *parts {
                let pd = d.join(p);
                std::fs::create_dir_all(&pd).unwrap();
                std::fs::write(pd.join("partition"), "1\n").unwrap();
                std::os::unix::fs::symlink(&pd, sys.join("class/block").join(p)).unwrap();
            }
        }
        let info: String = mounts
            .iter()
            .enumerate()
            .map(|(i, (dev, mp))| format!("{i} 1 8:1 / {mp} rw,relatime - ext4 /dev/{dev} rw\n"))
            .collect();
        let mountinfo = dir.path().join("mountinfo");
        std::fs::write(&mountinfo, info).unwrap();
        (dir, System { sys, mountinfo })
    }

    #[test]
    fn refusals() {
        let (_d, s) = fake(
            &[
                ("vda", false, &["vda1"]),
                ("sdb", true, &["sdb1"]),
                ("sdc", true, &[]),
                ("sdd", false, &[]),
            ],
            &[("vda1", "/"), ("sdb1", "/media/card")],
        );
        let p = |n: &str| PathBuf::from(format!("/dev/{n}"));
        assert_eq!(
            s.check_disk(&p("vda"), "vda", 1),
            Err(Refusal::RootDisk("/dev/vda".into()))
        );
        assert_eq!(
            s.check_disk(&p("sdb"), "sdb", 1),
            Err(Refusal::Mounted {
                device: "/dev/sdb1".into(),
                mount: "/media/card".into()
            })
        );
        assert_eq!(
            s.check_disk(&p("sdb1"), "sdb1", 1),
            Err(Refusal::Partition("/dev/sdb1".into()))
        );
        assert_eq!(
            s.check_disk(&p("sdd"), "sdd", 1),
            Err(Refusal::Fixed("/dev/sdd".into()))
        );
        assert!(matches!(
            s.check_disk(&p("sdc"), "sdc", u64::MAX),
            Err(Refusal::TooSmall { .. })
        ));
        let ok = s.check_disk(&p("sdc"), "sdc", 1024).unwrap();
        assert_eq!(ok.describe(), "/dev/sdc (SD Reader, 31.9 GB)");
    }
}
