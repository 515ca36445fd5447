//! `secrets edit`'s scratch space: where the decrypted value lives while the
//! editor runs, and cleaning up after an edit that was killed.
//!
//! The base directory is `$XDG_RUNTIME_DIR/potato` (the user's private tmpfs)
//! or, without one, `$TMPDIR/potato-<uid>` (TMPDIR defaults to /tmp). potato
//! creates it 0700 and uses it only if it is a real directory (not a link),
//! owned by the user and closed to everyone else; a planted one is refused.
//! Each edit works in its own `edit-XXXXXX` directory inside (0700), holding an
//! `flock` on it while potato runs. The kernel drops the lock when the process
//! dies, also on SIGKILL, so the next `potato secrets` finds the unlocked
//! directory of a killed edit, overwrites its files with zeros and removes it.
//! (An editor that outlives a killed potato loses its copy then; its save could
//! not have reached the repository anyway.)
//!
//! It does not decrypt, encrypt or run the editor (that is `secrets`).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Error;

/// Prefix of one edit's directory inside the base.
const EDIT_PREFIX: &str = "edit-";

/// One edit's plaintext copy: `path` (0600) in a locked 0700 directory, wiped
/// and removed on drop (also on error).
pub struct Scratch {
    dir: tempfile::TempDir,
    /// Held while this process lives: marks the directory as in use.
    _lock: File,
    pub path: Utf8PathBuf,
}

impl Scratch {
    pub fn new(content: &[u8]) -> Result<Scratch, Error> {
        let base = private_base()?;
        let dir = tempfile::Builder::new()
            .prefix(EDIT_PREFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| Error::io(&base, e))?;
        let lock = File::open(dir.path()).map_err(|e| Error::io(&base, e))?;
        lock.lock().map_err(|e| Error::io(&base, e))?;
        let path = Utf8PathBuf::from_path_buf(dir.path().join("secret")).map_err(|_| {
            Error::Environment {
                message: "the temporary directory is not UTF-8".into(),
                hint: "set TMPDIR to a UTF-8 path".into(),
            }
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.write_all(content).map_err(|e| Error::io(&path, e))?;
        Ok(Scratch {
            dir,
            _lock: lock,
            path,
        })
    }

    pub fn read(&self) -> Result<Vec<u8>, Error> {
        std::fs::read(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The editor may have left other copies (swap or backup files) too.
        wipe_files(self.dir.path());
    }
}

/// Removes what killed edits left in the base directory; returns each
/// directory removed. Best effort: a directory still locked by a running
/// edit is kept.
pub fn remove_stale() -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    let Some(base) = base_path() else {
        return removed;
    };
    if check_private(&base).is_err() {
        return removed;
    }
    let Ok(entries) = std::fs::read_dir(&base) else {
        return removed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_edit = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(EDIT_PREFIX));
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !is_edit || !is_dir {
            continue;
        }
        let Ok(lock) = File::open(&path) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // an edit in progress
        }
        wipe_files(&path);
        if std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Overwrites the regular files directly in `dir` with zeros (links are not
/// followed) and removes them.
fn wipe_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file()
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
        {
            let _ = f.write_all(&vec![0u8; meta.len() as usize]);
            let _ = f.sync_all();
        }
        if !meta.is_dir() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Where the base directory is: `$XDG_RUNTIME_DIR/potato` when that is a
/// directory, else `$TMPDIR/potato-<uid>`.
fn base_path() -> Option<Utf8PathBuf> {
    if let Ok(run) = std::env::var("XDG_RUNTIME_DIR")
        && Utf8Path::new(&run).is_absolute()
        && Utf8Path::new(&run).is_dir()
    {
        return Some(Utf8Path::new(&run).join("potato"));
    }
    let tmp = Utf8PathBuf::from_path_buf(std::env::temp_dir()).ok()?;
    Some(tmp.join(format!("potato-{}", euid())))
}

/// The base directory, created if missing and checked to be private.
fn private_base() -> Result<Utf8PathBuf, Error> {
    let base = base_path().ok_or_else(|| Error::Environment {
        message: "no usable directory for the plaintext copy".into(),
        hint: "set XDG_RUNTIME_DIR (or TMPDIR) to a UTF-8 path".into(),
    })?;
    match std::fs::DirBuilder::new().mode(0o700).create(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(&base, e)),
    }
    check_private(&base)?;
    Ok(base)
}

/// A real directory (not a link), owned by us, closed to group and others.
fn check_private(dir: &Utf8Path) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io(dir, e))?;
    let why = if meta.file_type().is_symlink() {
        Some("it is a symbolic link".to_string())
    } else if !meta.is_dir() {
        Some("it is not a directory".to_string())
    } else if meta.uid() != euid() {
        Some(format!("it belongs to uid {}", meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!("its mode is {:o}", meta.mode() & 0o777))
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::usage(
            format!(
                "{dir} is not a private directory ({why}); the decrypted value will not be written there"
            ),
            format!(
                "remove {dir} (potato creates it with mode 0700), or set XDG_RUNTIME_DIR to your private runtime directory"
            ),
        )),
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
