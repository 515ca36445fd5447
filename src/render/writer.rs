//! The one writer of `modules/generated/`: comparing the rendered files with the
//! tree on disk (`gen --check`, `deploy`), writing them (`gen`) and removing
//! stale ones. Every access goes through `fsguard`, so no link is followed.
//!
//! Check first, then write: before anything is read, written or deleted, the
//! whole generated tree (including `modules/` and `modules/generated/`
//! themselves) is scanned, and a symbolic link or special file anywhere in it
//! is an error naming it (exit 2, the repository's content is invalid); the run
//! then changes nothing.
//!
//! Deleting: potato removes only regular files it can prove it wrote, by name:
//! in `modules/generated/<host>/`, the names `render` produces (fixed names,
//! `<interface>.conf`, `secrets/<secret>.age`) and leftover `*.potato-tmp`
//! files. Any other file is left alone and reported, directories are removed
//! only when empty (never recursively), and nothing outside
//! `modules/generated/` is ever removed.
//!
//! It does not render anything (that is `render`) and does not decide which
//! hosts are selected (that is the command).

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};

use super::{GENERATED_DIR, GeneratedFile};
use crate::error::Error;
use crate::fsguard::{FsError, Kind, RepoFs, TMP_SUFFIX};

/// How the generated tree on disk differs from what should be there.
#[derive(Debug, Default)]
pub struct Staleness {
    /// Files missing or different, with a unified diff each.
    pub changed: Vec<(Utf8PathBuf, String)>,
    /// Files under a host's generated dir that potato would not write.
    pub extra: Vec<Utf8PathBuf>,
}

impl Staleness {
    pub fn is_clean(&self) -> bool {
        self.changed.is_empty() && self.extra.is_empty()
    }
}

/// What `write` did.
#[derive(Debug, Default)]
pub struct Written {
    /// Files written.
    pub written: Vec<Utf8PathBuf>,
    /// Stale files potato wrote earlier, removed.
    pub removed: Vec<Utf8PathBuf>,
    /// Extra files potato did not write, so did not delete.
    pub left_alone: Vec<Utf8PathBuf>,
}

/// File names (relative to `modules/generated/<host>/`) that `render` writes
/// besides `<interface>.conf` and `secrets/<name>.age`. A unit test checks that
/// every rendered file of the example fleet is covered.
const FIXED_NAMES: &[&str] = &[
    "default.nix",
    "firewall.nft",
    "deploy.json",
    "exposure.json",
    "containers.json",
    "containers-tmpfiles.conf",
    "disko.nix",
    "postgres-init.sh",
    "secrets.sh",
    "sshd_config",
    "sysctl.conf",
    "fail2ban-jails.local",
];

/// The generated tree as found on disk, already checked to hold only regular
/// files and directories.
struct Tree {
    fs: RepoFs,
    entries: BTreeMap<Utf8PathBuf, Kind>,
}

impl Tree {
    /// Opens the repository and scans `modules/generated/`, refusing links and
    /// special files anywhere in it.
    fn scan(repo: &Utf8Path) -> Result<Tree, Error> {
        let fs = RepoFs::open(repo)?;
        let root = Utf8Path::new(GENERATED_DIR);
        let entries: BTreeMap<Utf8PathBuf, Kind> =
            fs.walk(root)?.unwrap_or_default().into_iter().collect();
        for (path, kind) in &entries {
            match kind {
                Kind::File | Kind::Dir => {}
                Kind::Symlink => {
                    return Err(FsError::Symlink {
                        path: path.clone(),
                        target: std::fs::read_link(repo.join(path))
                            .ok()
                            .map(|t| t.display().to_string()),
                    }
                    .into());
                }
                Kind::Other => {
                    return Err(FsError::WrongKind {
                        path: path.clone(),
                        expected: "file or directory",
                    }
                    .into());
                }
            }
        }
        Ok(Tree { fs, entries })
    }

    /// Refuses a wanted file whose path is taken by a directory, or whose
    /// parent is taken by a file.
    fn check_placeable(&self, path: &Utf8Path) -> Result<(), Error> {
        if self.entries.get(path) == Some(&Kind::Dir) {
            return Err(FsError::WrongKind {
                path: path.to_path_buf(),
                expected: "file",
            }
            .into());
        }
        for dir in path.ancestors().skip(1) {
            if self.entries.get(dir) == Some(&Kind::File) {
                return Err(FsError::WrongKind {
                    path: dir.to_path_buf(),
                    expected: "directory",
                }
                .into());
            }
        }
        Ok(())
    }

    fn current(&self, path: &Utf8Path) -> Result<Vec<u8>, Error> {
        if self.entries.get(path) != Some(&Kind::File) {
            return Ok(Vec::new());
        }
        Ok(self.fs.read(path)?.unwrap_or_default())
    }

    /// Host directories to inspect for extras: the selected hosts', or all
    /// present ones when every host is selected (so a deleted host's shows up).
    fn host_dirs(&self, hosts: &[String], all_hosts: bool) -> BTreeSet<Utf8PathBuf> {
        let root = Utf8Path::new(GENERATED_DIR);
        self.entries
            .iter()
            .filter(|(p, k)| **k == Kind::Dir && p.parent() == Some(root))
            .map(|(p, _)| p.clone())
            .filter(|p| all_hosts || hosts.iter().any(|h| p.file_name() == Some(h.as_str())))
            .collect()
    }

    fn files_under<'a>(&'a self, dir: &'a Utf8Path) -> impl Iterator<Item = &'a Utf8PathBuf> {
        self.entries
            .iter()
            .filter(move |(p, k)| **k == Kind::File && p.starts_with(dir))
            .map(|(p, _)| p)
    }
}

/// Compares `files` with the repository. `hosts` limits which host directories
/// are checked for extra files. Refuses a tree holding a link (nothing is read
/// through it, so no outside content reaches the diff).
pub fn check(
    repo: &Utf8Path,
    files: &[GeneratedFile],
    hosts: &[String],
    all_hosts: bool,
) -> Result<Staleness, Error> {
    let tree = Tree::scan(repo)?;
    let mut st = Staleness::default();
    for f in files {
        tree.check_placeable(&f.path)?;
        let current = tree.current(&f.path)?;
        if current != f.content.as_bytes() {
            let current = String::from_utf8_lossy(&current);
            let diff = similar::TextDiff::from_lines(current.as_ref(), &f.content)
                .unified_diff()
                .header(&format!("a/{}", f.path), &format!("b/{}", f.path))
                .to_string();
            st.changed.push((f.path.clone(), diff));
        }
    }
    let wanted: BTreeSet<&Utf8Path> = files.iter().map(|f| f.path.as_path()).collect();
    for dir in tree.host_dirs(hosts, all_hosts) {
        for rel in tree.files_under(&dir) {
            if !wanted.contains(rel.as_path()) {
                st.extra.push(rel.clone());
            }
        }
    }
    st.extra.sort();
    Ok(st)
}

/// Writes the changed files and removes the extras potato wrote. The tree is
/// scanned again first, so a link is refused before anything changes.
pub fn write(
    repo: &Utf8Path,
    files: &[GeneratedFile],
    stale: &Staleness,
) -> Result<Written, Error> {
    let tree = Tree::scan(repo)?;
    let by_path: BTreeMap<&Utf8Path, &GeneratedFile> =
        files.iter().map(|f| (f.path.as_path(), f)).collect();
    for (path, _) in &stale.changed {
        tree.check_placeable(path)?;
    }
    let mut done = Written::default();
    for (path, _) in &stale.changed {
        let f = by_path[path.as_path()];
        tree.fs.write_atomic(&f.path, f.content.as_bytes(), 0o644)?;
        done.written.push(f.path.clone());
    }
    let mut emptied = BTreeSet::new();
    for extra in &stale.extra {
        if !written_by_potato(extra) {
            done.left_alone.push(extra.clone());
            continue;
        }
        if tree.fs.remove_file(extra)? {
            done.removed.push(extra.clone());
        }
        emptied.extend(
            extra
                .ancestors()
                .skip(1)
                .take_while(|d| d.starts_with(GENERATED_DIR) && *d != GENERATED_DIR)
                .map(Utf8Path::to_path_buf),
        );
    }
    // Deepest first, so a host's secrets/ goes before the host's directory.
    for dir in emptied.iter().rev() {
        tree.fs.remove_empty_dir(dir)?;
    }
    Ok(done)
}

/// Reads one generated file without following links; None if it is missing.
pub fn read_generated(repo: &Utf8Path, rel: &Utf8Path) -> Result<Option<String>, Error> {
    if !rel.starts_with(GENERATED_DIR) {
        return Err(FsError::NotInRepo {
            path: rel.to_path_buf(),
        }
        .into());
    }
    let fs = RepoFs::open(repo)?;
    Ok(fs
        .read(rel)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// True for a file potato writes: `modules/generated/<host>/NAME` with a name
/// `render` produces, one of the monitoring files under `<host>/monitoring/`
/// (`monitoring::native`), Traefik's under `<host>/traefik/` (`edge::traefik`),
/// or a leftover temporary file.
pub fn written_by_potato(rel: &Utf8Path) -> bool {
    let Ok(in_host) = rel.strip_prefix(GENERATED_DIR) else {
        return false;
    };
    let parts: Vec<&str> = in_host.iter().collect();
    match parts.as_slice() {
        [_host, name] => {
            FIXED_NAMES.contains(name)
                || name.ends_with(TMP_SUFFIX)
                || name.strip_suffix(".conf").is_some_and(is_interface_name)
        }
        [_host, "monitoring", ..] => {
            let rest = parts[1..].join("/");
            crate::monitoring::native::SPOKE_FILES
                .iter()
                .chain(crate::monitoring::native::HUB_FILES.iter())
                .any(|f| *f == rest)
                || rest.ends_with(TMP_SUFFIX)
        }
        [_host, "authentik", name] => {
            format!("authentik/{name}") == crate::edge::blueprint::FILE
                || name.ends_with(TMP_SUFFIX)
        }
        [_host, "traefik", name] => {
            crate::edge::traefik::FILES
                .iter()
                .any(|f| f.strip_prefix("traefik/") == Some(*name))
                || name.ends_with(TMP_SUFFIX)
        }
        [_host, "pki", name] => {
            let rest = format!("pki/{name}");
            [
                crate::pki::CA_CERT_GENERATED,
                crate::pki::HOST_CERT_GENERATED,
            ]
            .contains(&rest.as_str())
                || name.ends_with(TMP_SUFFIX)
        }
        [_host, "crowdsec", ..] => {
            let rest = parts[2..].join("/");
            crate::intrusion::FILES.contains(&rest.as_str()) || rest.ends_with(TMP_SUFFIX)
        }
        [_host, "secrets", name] => {
            name.ends_with(TMP_SUFFIX)
                || name
                    .strip_suffix(".age")
                    .is_some_and(|n| crate::secrets::parse_ref(&format!("secret:{n}")).is_ok())
        }
        _ => false,
    }
}

/// A Linux interface name as `render` uses it for WireGuard configs.
fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendered_file_of_the_example_fleet_counts_as_written_by_potato() {
        let repo = Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let plans = crate::ops::fleet::load_plans(&repo).unwrap();
        let files = crate::render::render_all(&plans, &repo).unwrap();
        assert!(files.len() > 20);
        for f in &files {
            assert!(written_by_potato(&f.path), "{} is not covered", f.path);
        }
    }

    #[test]
    fn other_files_do_not_count_as_written_by_potato() {
        for p in [
            "modules/generated/h/README.md",
            "modules/generated/h/notes/default.nix",
            "modules/generated/default.nix",
            "modules/base.nix",
            "hosts/n250.toml",
            "modules/generated/h/secrets/Bad Name.age",
            "modules/generated/h/secrets/x.txt",
            "modules/generated/h/../../../etc.conf",
            "modules/generated/h/authentik/other.yaml",
            "modules/generated/h/authentik/sub/potato-fleet.yaml",
        ] {
            assert!(!written_by_potato(Utf8Path::new(p)), "{p}");
        }
        for p in [
            "modules/generated/h/wg0.conf",
            "modules/generated/h/secrets/wg0.age",
            "modules/generated/h/default.nix.potato-tmp",
            "modules/generated/h/authentik/potato-fleet.yaml",
        ] {
            assert!(written_by_potato(Utf8Path::new(p)), "{p}");
        }
    }
}
