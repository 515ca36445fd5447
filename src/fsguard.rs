//! The filesystem boundary: every file potato reads from or writes into the
//! repository goes through a [`RepoFs`].
//!
//! The repository root is resolved once (the operator chose it, so it may be
//! reached through links) and held open as a directory descriptor. Every path
//! below it is walked one component at a time with `openat(O_NOFOLLOW)`, so a
//! symbolic link anywhere under the root is never followed: it is an error that
//! names the link ([`FsError::Symlink`]). Symlinks are refused everywhere in the
//! repository, also those pointing inside it: a host file, catalog entry or
//! secret is committed as a regular file, and refusing all links is simpler to
//! reason about than resolving and comparing prefixes (and free of races).
//!
//! Writes are atomic: a `NAME.potato-tmp` file is created next to the target with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, filled, synced and renamed into place. Removal
//! unlinks one regular file or one empty directory; nothing here deletes a tree.
//!
//! This module knows nothing about what the files mean: which generated files may
//! be deleted is `render::writer`'s rule, which inputs are read is the readers'.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::Error;

/// Suffix of the temporary file an atomic write renames into place.
pub const TMP_SUFFIX: &str = ".potato-tmp";

/// What a directory entry is, seen without following links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device: never read or written.
    Other,
}

/// A filesystem failure at a repository-relative path.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(
        "{path} is a symbolic link{}; potato never follows links inside the repository",
        target.as_deref().map(|t| format!(" (to {t})")).unwrap_or_default()
    )]
    Symlink {
        path: Utf8PathBuf,
        target: Option<String>,
    },
    #[error("{path} is not a regular {expected}")]
    WrongKind {
        path: Utf8PathBuf,
        expected: &'static str,
    },
    #[error("{path} is not a plain relative path inside the repository")]
    NotInRepo { path: Utf8PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
}

impl FsError {
    fn io(path: &Utf8Path, e: impl Into<std::io::Error>) -> FsError {
        FsError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }
    }

    /// True when the input is at fault (exit 2): a link potato refuses to
    /// follow, a name that is not a plain path. An I/O failure or an entry
    /// that cannot be read as what it should be is a failure (exit 1).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, FsError::Symlink { .. } | FsError::NotInRepo { .. })
    }

    pub fn hint(&self) -> String {
        match self {
            FsError::Symlink { path, .. } if path.starts_with(crate::render::GENERATED_DIR) => {
                format!(
                    "generated files and directories are never links: remove it (`rm {path}`) and run `potato gen`; nothing was written or deleted"
                )
            }
            FsError::Symlink { .. } => "replace the link with the file or directory itself: a link could make potato read, publish or overwrite a file outside the repository".into(),
            FsError::WrongKind { path, .. } => format!("remove or replace {path}"),
            FsError::NotInRepo { .. } => "use a name, not a path".into(),
            FsError::Io { .. } => String::new(),
        }
    }
}

impl From<FsError> for Error {
    fn from(e: FsError) -> Error {
        match e {
            FsError::Io { path, source } => Error::Io { path, source },
            e @ FsError::WrongKind { .. } => Error::RepoFile(e),
            e => Error::usage(e.to_string(), e.hint()),
        }
    }
}

/// The repository, opened once; every access is relative to it.
pub struct RepoFs {
    root: OwnedFd,
}

impl RepoFs {
    /// Opens the repository root (which may itself be reached through links).
    pub fn open(root: &Utf8Path) -> Result<RepoFs, FsError> {
        let fd = rustix::fs::open(
            root.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::io(root, e))?;
        Ok(RepoFs { root: fd })
    }

    /// What `rel` is (not following a link at its end), or None if absent.
    pub fn kind(&self, rel: &Utf8Path) -> Result<Option<Kind>, FsError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent)? else {
            return Ok(None);
        };
        kind_at(&dir, name, rel)
    }

    /// Refuses `rel` if it (or a directory on the way) is a link, naming
    /// where it points; Ok when it is anything else or absent.
    pub fn refuse_link(&self, rel: &Utf8Path) -> Result<(), FsError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent)? else {
            return Ok(());
        };
        match kind_at(&dir, name, rel)? {
            Some(Kind::Symlink) => Err(symlink_error(&dir, name, rel)),
            _ => Ok(()),
        }
    }

    /// Reads a regular file; None if it does not exist.
    pub fn read(&self, rel: &Utf8Path) -> Result<Option<Vec<u8>>, FsError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent)? else {
            return Ok(None);
        };
        let fd = match rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(symlink_error(&dir, name, rel)),
            Err(e) => return Err(FsError::io(rel, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io(rel, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(FsError::WrongKind {
                path: rel.to_path_buf(),
                expected: "file",
            });
        }
        let mut out = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut out)
            .map_err(|e| FsError::io(rel, e))?;
        Ok(Some(out))
    }

    /// Reads a regular UTF-8 file; None if it does not exist.
    pub fn read_string(&self, rel: &Utf8Path) -> Result<Option<String>, FsError> {
        match self.read(rel)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
                FsError::io(
                    rel,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
                )
            }),
        }
    }

    /// The entries of a directory with their kinds, sorted by name; None if the
    /// directory does not exist. Names that are not UTF-8 are reported as Other
    /// under a lossy name (they are never opened).
    pub fn list(&self, rel: &Utf8Path) -> Result<Option<Vec<(String, Kind)>>, FsError> {
        let Some(dir) = self.dir(rel)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let entries = rustix::fs::Dir::read_from(&dir).map_err(|e| FsError::io(rel, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| FsError::io(rel, e))?;
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            match std::str::from_utf8(bytes) {
                Ok(name) => {
                    let kind = kind_at(&dir, name, &rel.join(name))?.unwrap_or(Kind::Other);
                    out.push((name.to_string(), kind));
                }
                Err(_) => out.push((String::from_utf8_lossy(bytes).into_owned(), Kind::Other)),
            }
        }
        out.sort();
        Ok(Some(out))
    }

    /// Every entry below `rel` (repository-relative paths), not descending into
    /// links; None if `rel` does not exist.
    pub fn walk(&self, rel: &Utf8Path) -> Result<Option<Vec<(Utf8PathBuf, Kind)>>, FsError> {
        let Some(top) = self.list(rel)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut stack: Vec<(Utf8PathBuf, Kind)> =
            top.into_iter().map(|(n, k)| (rel.join(n), k)).collect();
        while let Some((path, kind)) = stack.pop() {
            if kind == Kind::Dir {
                let below = self.list(&path)?.unwrap_or_default();
                stack.extend(below.into_iter().map(|(n, k)| (path.join(n), k)));
            }
            out.push((path, kind));
        }
        out.sort();
        Ok(Some(out))
    }

    /// Replaces `rel` with `bytes` atomically: `NAME.potato-tmp` is created
    /// exclusively without following links, written, synced and renamed over
    /// `NAME`. Missing parent directories are created (0755).
    pub fn write_atomic(&self, rel: &Utf8Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
        let (parent, name) = split(rel)?;
        let dir = self.create_dirs(parent)?;
        let tmp = format!("{name}{TMP_SUFFIX}");
        let tmp_rel = parent.join(&tmp);
        if let Some(k) = kind_at(&dir, &tmp, &tmp_rel)? {
            // Left by an interrupted run: a regular file of ours is replaced.
            match k {
                Kind::File => rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty())
                    .map_err(|e| FsError::io(&tmp_rel, e))?,
                Kind::Symlink => return Err(symlink_error(&dir, &tmp, &tmp_rel)),
                _ => {
                    return Err(FsError::WrongKind {
                        path: tmp_rel,
                        expected: "file",
                    });
                }
            }
        }
        match kind_at(&dir, name, rel)? {
            None | Some(Kind::File) => {}
            Some(Kind::Symlink) => return Err(symlink_error(&dir, name, rel)),
            Some(_) => {
                return Err(FsError::WrongKind {
                    path: rel.to_path_buf(),
                    expected: "file",
                });
            }
        }
        let fd = rustix::fs::openat(
            &dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| match kind_at(&dir, &tmp, &tmp_rel) {
            Ok(Some(Kind::Symlink)) => symlink_error(&dir, &tmp, &tmp_rel),
            _ => FsError::io(&tmp_rel, e),
        })?;
        let mut f = std::fs::File::from(fd);
        let written = f.write_all(bytes).and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            return Err(FsError::io(&tmp_rel, e));
        }
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, name).map_err(|e| FsError::io(rel, e))
    }

    /// Unlinks one regular file (never a link, never a directory); returns
    /// whether there was one.
    pub fn remove_file(&self, rel: &Utf8Path) -> Result<bool, FsError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent)? else {
            return Ok(false);
        };
        match kind_at(&dir, name, rel)? {
            None => Ok(false),
            Some(Kind::File) => rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                .map(|()| true)
                .map_err(|e| FsError::io(rel, e)),
            Some(Kind::Symlink) => Err(symlink_error(&dir, name, rel)),
            Some(_) => Err(FsError::WrongKind {
                path: rel.to_path_buf(),
                expected: "file",
            }),
        }
    }

    /// Removes `rel` if it is an empty directory; returns whether it did.
    pub fn remove_empty_dir(&self, rel: &Utf8Path) -> Result<bool, FsError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent)? else {
            return Ok(false);
        };
        if kind_at(&dir, name, rel)? != Some(Kind::Dir) {
            return Ok(false);
        }
        match rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOTEMPTY | Errno::EXIST | Errno::NOENT) => Ok(false),
            Err(e) => Err(FsError::io(rel, e)),
        }
    }

    /// Opens directory `rel` component by component; None if a component is
    /// missing. A link or non-directory on the way is an error.
    fn dir(&self, rel: &Utf8Path) -> Result<Option<OwnedFd>, FsError> {
        let mut fd = dup_dir(&self.root)?;
        let mut walked = Utf8PathBuf::new();
        for name in components(rel)? {
            walked.push(name);
            fd = match open_dir_at(&fd, name, &walked)? {
                Some(next) => next,
                None => return Ok(None),
            };
        }
        Ok(Some(fd))
    }

    /// Like `dir`, creating missing directories (0755).
    fn create_dirs(&self, rel: &Utf8Path) -> Result<OwnedFd, FsError> {
        let mut fd = dup_dir(&self.root)?;
        let mut walked = Utf8PathBuf::new();
        for name in components(rel)? {
            walked.push(name);
            fd = match open_dir_at(&fd, name, &walked)? {
                Some(next) => next,
                None => {
                    match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(FsError::io(&walked, e)),
                    }
                    open_dir_at(&fd, name, &walked)?.ok_or_else(|| {
                        FsError::io(&walked, std::io::Error::from(std::io::ErrorKind::NotFound))
                    })?
                }
            };
        }
        Ok(fd)
    }
}

/// The plain components of a repository-relative path (no `..`, no root).
fn components(rel: &Utf8Path) -> Result<Vec<&str>, FsError> {
    rel.components()
        .filter(|c| !matches!(c, Utf8Component::CurDir))
        .map(|c| match c {
            Utf8Component::Normal(n) => Ok(n),
            _ => Err(FsError::NotInRepo {
                path: rel.to_path_buf(),
            }),
        })
        .collect()
}

/// (parent, file name) of a repository-relative path.
fn split(rel: &Utf8Path) -> Result<(&Utf8Path, &str), FsError> {
    components(rel)?;
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(FsError::NotInRepo {
            path: rel.to_path_buf(),
        }),
    }
}

fn dup_dir(fd: &OwnedFd) -> Result<OwnedFd, FsError> {
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| FsError::io(Utf8Path::new("."), e))
}

/// Opens subdirectory `name` of `dir` without following a link.
fn open_dir_at(dir: &OwnedFd, name: &str, rel: &Utf8Path) -> Result<Option<OwnedFd>, FsError> {
    match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::LOOP | Errno::NOTDIR) => match kind_at(dir, name, rel)? {
            Some(Kind::Symlink) => Err(symlink_error(dir, name, rel)),
            _ => Err(FsError::WrongKind {
                path: rel.to_path_buf(),
                expected: "directory",
            }),
        },
        Err(e) => Err(FsError::io(rel, e)),
    }
}

fn kind_at(dir: &OwnedFd, name: &str, rel: &Utf8Path) -> Result<Option<Kind>, FsError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(FsError::io(rel, e)),
    }
}

/// The error for a link at `rel`, naming where it points (the link is the
/// repository's own content, so its target is no secret).
fn symlink_error(dir: &OwnedFd, name: &str, rel: &Utf8Path) -> FsError {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    FsError::Symlink {
        path: rel.to_path_buf(),
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Utf8PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(d.path().to_path_buf()).unwrap();
        (d, p)
    }

    #[test]
    fn reads_regular_files_and_refuses_links_at_any_depth() {
        let (_d, root) = repo();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("key"), "SECRET").unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "ok").unwrap();
        std::os::unix::fs::symlink(outside.path().join("key"), root.join("a/b/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("a/dirlink")).unwrap();
        let fs = RepoFs::open(&root).unwrap();
        assert_eq!(fs.read("a/b/f".into()).unwrap().unwrap(), b"ok");
        assert!(fs.read("a/b/missing".into()).unwrap().is_none());
        let e = fs.read("a/b/link".into()).unwrap_err();
        assert!(matches!(e, FsError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("a/b/link is a symbolic link"), "{e}");
        let e = fs.read("a/dirlink/key".into()).unwrap_err();
        assert!(
            matches!(&e, FsError::Symlink { path, .. } if path == "a/dirlink"),
            "{e}"
        );
        assert!(matches!(
            fs.read("../x".into()),
            Err(FsError::NotInRepo { .. })
        ));
        assert!(matches!(
            fs.read("/etc/passwd".into()),
            Err(FsError::NotInRepo { .. })
        ));
    }

    #[test]
    fn writes_atomically_and_never_through_links() {
        let (_d, root) = repo();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "UNTOUCHED").unwrap();
        let fs = RepoFs::open(&root).unwrap();
        fs.write_atomic("x/y/f".into(), b"one", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("x/y/f")).unwrap(), "one");
        // A leftover regular temporary file is replaced.
        std::fs::write(root.join("x/y/f.potato-tmp"), "partial").unwrap();
        fs.write_atomic("x/y/f".into(), b"two", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("x/y/f")).unwrap(), "two");
        assert!(!root.join("x/y/f.potato-tmp").exists());
        // A linked temporary file, target or directory is refused.
        std::os::unix::fs::symlink(&victim, root.join("x/y/g.potato-tmp")).unwrap();
        assert!(matches!(
            fs.write_atomic("x/y/g".into(), b"evil", 0o644),
            Err(FsError::Symlink { .. })
        ));
        std::os::unix::fs::symlink(&victim, root.join("x/y/h")).unwrap();
        assert!(matches!(
            fs.write_atomic("x/y/h".into(), b"evil", 0o644),
            Err(FsError::Symlink { .. })
        ));
        std::os::unix::fs::symlink(outside.path(), root.join("x/z")).unwrap();
        assert!(matches!(
            fs.write_atomic("x/z/new".into(), b"evil", 0o644),
            Err(FsError::Symlink { .. })
        ));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "UNTOUCHED");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn removes_only_regular_files_and_empty_directories() {
        let (_d, root) = repo();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::fs::create_dir_all(root.join("d/sub")).unwrap();
        std::fs::write(root.join("d/sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("keep"), root.join("d/link")).unwrap();
        let fs = RepoFs::open(&root).unwrap();
        assert!(!fs.remove_empty_dir("d/sub".into()).unwrap(), "not empty");
        assert!(matches!(
            fs.remove_file("d/link".into()),
            Err(FsError::Symlink { .. })
        ));
        assert!(matches!(
            fs.remove_file("d/sub".into()),
            Err(FsError::WrongKind { .. })
        ));
        fs.remove_file("d/sub/f".into()).unwrap();
        assert!(fs.remove_empty_dir("d/sub".into()).unwrap());
        assert!(outside.path().join("keep").exists());
        let walked = fs.walk("d".into()).unwrap().unwrap();
        assert_eq!(walked, vec![("d/link".into(), Kind::Symlink)]);
    }
}
