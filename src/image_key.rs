//! Puts a host's pre-generated SSH host key into a disk image (or a card just
//! flashed, or a VM disk on a Proxmox node), so the host's secrets decrypt on
//! its first boot. The image is never mounted: the root filesystem is found in
//! the partition table (MBR or GPT) as the ext2/3/4 partition, and written with
//! debugfs at its offset (`IMAGE?offset=N`, e2fsprogs' own syntax). The key
//! never enters the Nix store: only copies outside it get it (`potato image
//! --out`, a flashed card, the VM's disk). Where the image is and where
//! debugfs runs is a `Place`: this machine (`Local`), or a Proxmox node over
//! SSH (`cmd::vm`). qcow2 files go through a raw copy with qemu-img.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where NixOS's sshd finds its ed25519 host key.
pub const KEY_PATH: &str = "/etc/ssh/ssh_host_ed25519_key";

/// A partition: byte offset and length within the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{0}: no ext4 root partition in its partition table")]
    NoRoot(PathBuf),
    #[error("{tool} is not installed ({why})")]
    Missing {
        tool: &'static str,
        why: &'static str,
    },
    #[error(transparent)]
    Program(#[from] crate::tools::MissingProgram),
    #[error("{tool} failed on {path}: {message}")]
    Tool {
        tool: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{0}: the host key did not read back as written")]
    Verify(PathBuf),
}

/// What a tool printed.
pub struct ToolOutput {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// An image and a machine to work on it: reads bytes, stages files, runs debugfs.
pub trait Place {
    /// The image's path where debugfs runs.
    fn path(&self) -> &Path;
    /// `len` bytes at `offset`; fewer at the end of the image.
    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, KeyError>;
    /// Writes `bytes` to a private (0600) scratch file; returns its path.
    fn stage(&mut self, name: &str, bytes: &[u8]) -> Result<String, KeyError>;
    /// Runs `debugfs ARGS IMAGE?offset=OFFSET`.
    fn debugfs(&mut self, args: &[&str], offset: u64) -> Result<ToolOutput, KeyError>;
}

fn io(path: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// An image file or block device on this machine.
pub struct Local {
    path: PathBuf,
    scratch: Option<tempfile::TempDir>,
}

impl Local {
    pub fn new(path: &Path) -> Local {
        Local {
            path: path.to_path_buf(),
            scratch: None,
        }
    }
}

impl Place for Local {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, KeyError> {
        let mut f = std::fs::File::open(&self.path).map_err(|e| io(&self.path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| io(&self.path, e))?;
        let mut buf = Vec::with_capacity(len);
        f.take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io(&self.path, e))?;
        Ok(buf)
    }

    fn stage(&mut self, name: &str, bytes: &[u8]) -> Result<String, KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if self.scratch.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("potato-key")
                .tempdir()
                .map_err(|e| io(&self.path, e))?;
            self.scratch = Some(dir);
        }
        let file = self.scratch.as_ref().expect("made above").path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| io(&file, e))?;
        f.write_all(bytes).map_err(|e| io(&file, e))?;
        Ok(file.display().to_string())
    }

    fn debugfs(&mut self, args: &[&str], offset: u64) -> Result<ToolOutput, KeyError> {
        let out = Command::new(crate::tools::find(crate::tools::Program::Debugfs)?)
            .args(args)
            .arg(format!("{}?offset={offset}", self.path.display()))
            .output()
            .map_err(|e| io(&self.path, e))?;
        Ok(ToolOutput {
            ok: out.status.success(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as u64
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The partitions of an MBR or GPT image, in table order (512-byte sectors).
pub fn partitions(place: &mut dyn Place) -> Result<Vec<Partition>, KeyError> {
    let mbr = place.read(0, 512)?;
    if mbr.len() < 512 || mbr[510..512] != [0x55, 0xAA] {
        return Ok(Vec::new());
    }
    let entries: Vec<(u8, u64, u64)> = (0..4)
        .map(|i| {
            let e = &mbr[446 + i * 16..446 + (i + 1) * 16];
            (e[4], le32(e, 8), le32(e, 12))
        })
        .filter(|(kind, _, sectors)| *kind != 0 && *sectors != 0)
        .collect();
    if !entries.iter().any(|(kind, _, _)| *kind == 0xEE) {
        return Ok(entries
            .into_iter()
            .map(|(_, start, sectors)| Partition {
                offset: start * 512,
                size: sectors * 512,
            })
            .collect());
    }
    // GPT: header at LBA 1, entries where it says.
    let header = place.read(512, 92)?;
    if header.len() < 92 || &header[0..8] != b"EFI PART" {
        return Ok(Vec::new());
    }
    let (table, count, size) = (le64(&header, 72), le32(&header, 80), le32(&header, 84));
    if size < 128 {
        return Ok(Vec::new());
    }
    let raw = place.read(table * 512, (count.min(256) * size) as usize)?;
    Ok(raw
        .chunks_exact(size as usize)
        .filter(|e| e[0..16].iter().any(|b| *b != 0))
        .map(|e| {
            let (first, last) = (le64(e, 32), le64(e, 40));
            Partition {
                offset: first * 512,
                size: (last + 1).saturating_sub(first) * 512,
            }
        })
        .collect())
}

/// The root filesystem: the last partition holding ext2/3/4 (magic 0xEF53).
pub fn root_partition(place: &mut dyn Place) -> Result<Partition, KeyError> {
    for p in partitions(place)?.into_iter().rev() {
        if place.read(p.offset + 1024 + 56, 2)? == [0x53, 0xEF] {
            return Ok(p);
        }
    }
    Err(KeyError::NoRoot(place.path().to_path_buf()))
}

fn exists(place: &mut dyn Place, offset: u64, path: &str) -> Result<bool, KeyError> {
    let out = place.debugfs(&["-R", &format!("stat {path}")], offset)?;
    Ok(out.ok && !out.stderr.contains("not found"))
}

/// Writes the key pair into the root filesystem (root-owned; the private half
/// 0600), replacing any there, and reads it back.
pub fn install_at(place: &mut dyn Place, private: &[u8], public: &str) -> Result<(), KeyError> {
    let root = root_partition(place)?;
    let key = place.stage("key", private)?;
    let pubf = place.stage("key.pub", format!("{}\n", public.trim()).as_bytes())?;
    // Only what is missing is made (debugfs's mkdir of an existing directory
    // leaves an orphan inode behind).
    let mut script = String::new();
    let pub_path = format!("{KEY_PATH}.pub");
    for (path, make) in [
        ("/etc", "mkdir /etc"),
        ("/etc/ssh", "mkdir /etc/ssh"),
        (KEY_PATH, ""),
        (pub_path.as_str(), ""),
    ] {
        match (exists(place, root.offset, path)?, make.is_empty()) {
            (false, false) => script.push_str(&format!("{make}\n")),
            (true, true) => script.push_str(&format!("rm {path}\n")),
            _ => {}
        }
    }
    script += &format!(
        "write {key} {KEY_PATH}\nsif {KEY_PATH} mode 0100600\nsif {KEY_PATH} uid 0\nsif {KEY_PATH} gid 0\n\
         write {pubf} {KEY_PATH}.pub\nsif {KEY_PATH}.pub mode 0100644\nsif {KEY_PATH}.pub uid 0\nsif {KEY_PATH}.pub gid 0\n"
    );
    let cmds = place.stage("cmds", script.as_bytes())?;
    let out = place.debugfs(&["-w", "-f", &cmds], root.offset)?;
    if !out.ok {
        return Err(KeyError::Tool {
            tool: "debugfs",
            path: place.path().to_path_buf(),
            message: out.stderr.trim().to_string(),
        });
    }
    // debugfs reports command errors but exits 0: read back what counts.
    let back = place.debugfs(&["-R", &format!("cat {KEY_PATH}")], root.offset)?;
    let stat = place.debugfs(&["-R", &format!("stat {KEY_PATH}")], root.offset)?;
    let mode_ok = String::from_utf8_lossy(&stat.stdout).contains("Mode:  0600");
    if back.stdout != private || !mode_ok {
        return Err(KeyError::Verify(place.path().to_path_buf()));
    }
    Ok(())
}

/// `install_at` for an image file or device on this machine (qcow2 files
/// through a raw copy).
pub fn install(image: &Path, private: &[u8], public: &str) -> Result<(), KeyError> {
    if image.extension().is_some_and(|e| e == "qcow2") {
        return install_qcow2(image, private, public);
    }
    install_at(&mut Local::new(image), private, public)
}

/// qcow2: to raw beside it, the key in, back to qcow2 in place.
fn install_qcow2(image: &Path, private: &[u8], public: &str) -> Result<(), KeyError> {
    let raw = image.with_extension("raw.potato-tmp");
    let qemu_img = |args: &[&std::ffi::OsStr]| -> Result<(), KeyError> {
        let out = Command::new(crate::tools::find(crate::tools::Program::QemuImg)?)
            .args(args)
            .output()
            .map_err(|e| io(image, e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(KeyError::Tool {
                tool: "qemu-img",
                path: image.to_path_buf(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    };
    let result = (|| {
        qemu_img(&[
            "convert".as_ref(),
            "-O".as_ref(),
            "raw".as_ref(),
            image.as_os_str(),
            raw.as_os_str(),
        ])?;
        install(&raw, private, public)?;
        qemu_img(&[
            "convert".as_ref(),
            "-O".as_ref(),
            "qcow2".as_ref(),
            raw.as_os_str(),
            image.as_os_str(),
        ])
    })();
    let _ = std::fs::remove_file(&raw);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::Program;

    /// The program's path; its bare name when missing (spawning it then fails
    /// and the test skips, saying so).
    fn tool(p: Program) -> PathBuf {
        crate::tools::find(p).unwrap_or_else(|_| PathBuf::from(p.name()))
    }

    /// A 40 MiB MBR image: a FAT-typed first partition (empty) and an ext4 one.
    fn mbr_image(dir: &Path) -> Option<PathBuf> {
        let img = dir.join("card.img");
        let part = dir.join("root.ext4");
        std::fs::File::create(&part).ok()?.set_len(30 << 20).ok()?;
        let ok = Command::new(tool(Program::MkfsExt4))
            .args(["-q", "-F", "-L", "NIXOS_SD"])
            .arg(&part)
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        let mut bytes = vec![0u8; 10 << 20];
        // MBR: partition 1 at sector 2048 (8 MiB - 1 MiB, type 0x0c), 2 at 20480.
        let mut entry = |i: usize, kind: u8, start: u32, sectors: u32| {
            let e = 446 + i * 16;
            bytes[e + 4] = kind;
            bytes[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            bytes[e + 12..e + 16].copy_from_slice(&sectors.to_le_bytes());
        };
        entry(0, 0x0c, 2048, 16384);
        entry(1, 0x83, 20480, (30 << 20) / 512);
        bytes[510] = 0x55;
        bytes[511] = 0xAA;
        bytes.extend(std::fs::read(&part).ok()?);
        std::fs::write(&img, bytes).ok()?;
        Some(img)
    }

    #[test]
    fn the_key_lands_in_the_ext4_root_partition_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let Some(img) = mbr_image(dir.path()) else {
            eprintln!("SKIPPED: mkfs.ext4 is not installed");
            return;
        };
        assert_eq!(
            root_partition(&mut Local::new(&img)).unwrap(),
            Partition {
                offset: 20480 * 512,
                size: 30 << 20
            }
        );
        let private =
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n";
        install(&img, private, "ssh-ed25519 AAAAfake root@box").unwrap();
        // Again (a re-run replaces it).
        install(&img, private, "ssh-ed25519 AAAAfake root@box").unwrap();
        let target = format!("{}?offset={}", img.display(), 20480 * 512);
        let out = Command::new(tool(Program::Debugfs))
            .args(["-R", "cat /etc/ssh/ssh_host_ed25519_key.pub"])
            .arg(&target)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"ssh-ed25519 AAAAfake root@box\n");
        let fsck = Command::new(tool(Program::E2fsck))
            .args(["-fn"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        // The first partition was not touched.
        let bytes = std::fs::read(&img).unwrap();
        assert!(bytes[2048 * 512..20480 * 512].iter().all(|b| *b == 0));
    }

    #[test]
    fn qcow2_images_get_the_key_through_a_raw_copy() {
        let dir = tempfile::tempdir().unwrap();
        let Some(raw) = mbr_image(dir.path()) else {
            eprintln!("SKIPPED: mkfs.ext4 is not installed");
            return;
        };
        let qcow = dir.path().join("vm.qcow2");
        let convert = |from: &Path, fmt: &str, to: &Path| {
            Command::new(tool(Program::QemuImg))
                .args(["convert", "-O", fmt])
                .arg(from)
                .arg(to)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !convert(&raw, "qcow2", &qcow) {
            eprintln!("SKIPPED: qemu-img (qemu-utils) is not installed");
            return;
        }
        install(&qcow, b"private\n", "ssh-ed25519 AAAAq root@vm").unwrap();
        let back = dir.path().join("back.raw");
        assert!(convert(&qcow, "raw", &back));
        let out = Command::new(tool(Program::Debugfs))
            .args(["-R", "cat /etc/ssh/ssh_host_ed25519_key"])
            .arg(format!("{}?offset={}", back.display(), 20480 * 512))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"private\n");
        assert!(
            !dir.path().join("vm.raw.potato-tmp").exists(),
            "scratch removed"
        );
    }

    #[test]
    fn gpt_images_find_the_root_after_the_esp() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let table = "label: gpt\nstart=2048, size=20480, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=22528, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n";
        let sfdisk = Command::new(tool(Program::Sfdisk))
            .arg("-q")
            .arg(&img)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(table.as_bytes())?;
                c.wait()
            });
        if !sfdisk.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: sfdisk (fdisk) is not installed");
            return;
        }
        let parts = partitions(&mut Local::new(&img)).unwrap();
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(
            parts[0],
            Partition {
                offset: 2048 * 512,
                size: 20480 * 512
            }
        );
        // No filesystem yet: no root.
        assert!(matches!(
            root_partition(&mut Local::new(&img)),
            Err(KeyError::NoRoot(_))
        ));
        let mkfs = Command::new(tool(Program::MkfsExt4))
            .args(["-q", "-F", "-E", &format!("offset={}", 22528 * 512)])
            .arg(&img)
            .arg("20M")
            .status()
            .unwrap();
        assert!(mkfs.success());
        assert_eq!(
            root_partition(&mut Local::new(&img)).unwrap().offset,
            22528 * 512
        );
    }

    #[test]
    fn an_image_without_a_partition_table_has_no_root() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("x.img");
        std::fs::write(&img, vec![7u8; 4096]).unwrap();
        assert!(matches!(
            root_partition(&mut Local::new(&img)),
            Err(KeyError::NoRoot(_))
        ));
        std::fs::write(&img, b"short").unwrap();
        assert!(matches!(
            root_partition(&mut Local::new(&img)),
            Err(KeyError::NoRoot(_))
        ));
    }
}
