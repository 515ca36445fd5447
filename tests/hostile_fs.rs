//! A hostile repository cannot make potato touch files outside it: committed
//! symbolic links in modules/generated/, in hosts/, modules/catalog/ and
//! secrets/, host names that are paths, and the plaintext a killed
//! `secrets edit` leaves behind (issue 13, items 1 and 6).
//!
//! Every repository here lives in its own sandbox directory (sandbox/repo), so
//! a link such as `modules/generated/zz -> ../../..` points at the sandbox and a
//! regression could only ever damage the sandbox. Each refused run is checked
//! against a snapshot of the whole sandbox and of a directory outside it:
//! nothing written, nothing deleted.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Run, admin_identity, source_root};

/// A copy of the example fleet at sandbox/repo (a git repository), a sibling
/// directory sandbox/sibling, and a separate directory outside the sandbox.
struct Sandbox {
    dir: tempfile::TempDir,
    outside: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        for item in ["flake.nix", "flake.lock", "hosts", "modules", "secrets"] {
            let ok = Command::new("cp")
                .arg("-a")
                .arg(source_root().join(item))
                .arg(&repo)
                .status()
                .unwrap()
                .success();
            assert!(ok, "copy {item}");
        }
        let ok = Command::new("git")
            .args(["init", "-q"])
            .current_dir(&repo)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git init");
        std::fs::create_dir(dir.path().join("sibling")).unwrap();
        std::fs::write(dir.path().join("sibling/keep.txt"), "sibling\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious.txt"), "PRECIOUS-OUTSIDE\n").unwrap();
        std::fs::create_dir(outside.path().join("sub")).unwrap();
        std::fs::write(outside.path().join("sub/default.nix"), "OUTSIDE-NIX\n").unwrap();
        Sandbox { dir, outside }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn outside(&self) -> &Path {
        self.outside.path()
    }

    fn link(&self, rel: &str, target: impl AsRef<Path>) {
        let at = self.repo().join(rel);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        symlink(target, at).unwrap();
    }

    fn potato(&self, args: &[&str]) -> Run {
        self.potato_env(args, &[])
    }

    fn potato_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_potato"));
        cmd.args(args)
            .current_dir(self.repo())
            .env_remove("POTATO_REPO")
            .env("POTATO_AGE_IDENTITY", admin_identity())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().unwrap())
    }

    /// The whole sandbox and the outside directory, links not followed.
    fn snapshot(&self) -> (Tree, Tree) {
        (snapshot(self.dir.path()), snapshot(self.outside()))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>),
    Dir,
    Link(PathBuf),
}

type Tree = BTreeMap<PathBuf, Node>;

fn snapshot(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        if meta.file_type().is_symlink() {
            out.insert(rel, Node::Link(std::fs::read_link(&p).unwrap()));
        } else if meta.is_dir() {
            out.insert(rel, Node::Dir);
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            out.insert(rel, Node::File(std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Asserts a refused run: exit 2, `path` and "symbolic link" named on stderr,
/// `secret` nowhere in the output, and nothing changed anywhere.
fn assert_refused(run: &Run, path: &str, secret: &str, before: &(Tree, Tree), sb: &Sandbox) {
    assert_eq!(
        run.code, 2,
        "expected exit 2\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    // Humans read stderr; with --json the error is one object on stdout.
    assert!(
        run.stderr.contains(&format!("{path} is a symbolic link"))
            || run.stdout.contains(&format!("{path} is a symbolic link")),
        "the error names {path}:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "{secret} leaked:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    let after = sb.snapshot();
    assert!(
        after.0 == before.0,
        "the sandbox (repository, .git, sibling) changed"
    );
    assert!(after.1 == before.1, "the outside directory changed");
}

/// Makes gen have something to write, so "nothing written" is observable.
fn make_stale(sb: &Sandbox) {
    std::fs::remove_file(sb.repo().join("modules/generated/n250/deploy.json")).unwrap();
}

#[test]
fn gen_refuses_a_committed_link_to_the_repositorys_parent() {
    let sb = Sandbox::new();
    make_stale(&sb);
    sb.link("modules/generated/zz", "../../..");
    let before = sb.snapshot();
    let run = sb.potato(&["gen"]);
    assert_refused(&run, "modules/generated/zz", "PRECIOUS", &before, &sb);
    assert!(
        run.stderr.contains("rm modules/generated/zz"),
        "{}",
        run.stderr
    );
    assert!(sb.repo().join(".git/HEAD").is_file());
    assert!(sb.repo().join("hosts/n250.toml").is_file());
    assert!(sb.dir.path().join("sibling/keep.txt").is_file());
}

#[test]
fn gen_refuses_a_committed_link_to_an_absolute_directory() {
    let sb = Sandbox::new();
    make_stale(&sb);
    sb.link("modules/generated/elsewhere", sb.outside());
    let before = sb.snapshot();
    let run = sb.potato(&["gen"]);
    assert_refused(
        &run,
        "modules/generated/elsewhere",
        "PRECIOUS",
        &before,
        &sb,
    );
    // Also when only another host is selected: the tree is checked as a whole.
    let run = sb.potato(&["gen", "lepotato"]);
    assert_refused(
        &run,
        "modules/generated/elsewhere",
        "PRECIOUS",
        &before,
        &sb,
    );
}

#[test]
fn gen_refuses_a_host_directory_that_is_a_link() {
    let sb = Sandbox::new();
    let generated = sb.repo().join("modules/generated");
    // The host's real generated files now live outside, with an extra file.
    let target = sb.outside().join("n250");
    std::fs::rename(generated.join("n250"), &target).unwrap();
    std::fs::write(target.join("default.nix"), "# stale, would be rewritten\n").unwrap();
    sb.link("modules/generated/n250", &target);
    let before = sb.snapshot();
    let run = sb.potato(&["gen", "n250"]);
    assert_refused(&run, "modules/generated/n250", "PRECIOUS", &before, &sb);
}

#[test]
fn gen_never_writes_through_a_planted_temporary_file() {
    let sb = Sandbox::new();
    let dir = sb.repo().join("modules/generated/n250");
    let stale = std::fs::read_to_string(dir.join("default.nix")).unwrap() + "# stale\n";
    std::fs::write(dir.join("default.nix"), &stale).unwrap();
    // Both spellings of the temporary file (older potato used default.potato-tmp).
    sb.link(
        "modules/generated/n250/default.nix.potato-tmp",
        sb.outside().join("precious.txt"),
    );
    sb.link(
        "modules/generated/n250/default.potato-tmp",
        sb.outside().join("sub/default.nix"),
    );
    let before = sb.snapshot();
    let run = sb.potato(&["gen"]);
    assert_refused(
        &run,
        "modules/generated/n250/default.nix.potato-tmp",
        "PRECIOUS",
        &before,
        &sb,
    );
    assert_eq!(
        std::fs::read_to_string(sb.outside().join("precious.txt")).unwrap(),
        "PRECIOUS-OUTSIDE\n"
    );
}

#[test]
fn gen_check_does_not_print_a_linked_files_target() {
    let sb = Sandbox::new();
    std::fs::remove_file(sb.repo().join("modules/generated/n250/deploy.json")).unwrap();
    sb.link(
        "modules/generated/n250/deploy.json",
        sb.outside().join("precious.txt"),
    );
    let before = sb.snapshot();
    let run = sb.potato(&["gen", "--check"]);
    assert_refused(
        &run,
        "modules/generated/n250/deploy.json",
        "PRECIOUS",
        &before,
        &sb,
    );
    let run = sb.potato(&["--json", "gen", "--check"]);
    assert_refused(
        &run,
        "modules/generated/n250/deploy.json",
        "PRECIOUS",
        &before,
        &sb,
    );
}

#[test]
fn gen_deletes_only_files_it_writes_and_never_a_tree() {
    let sb = Sandbox::new();
    let gone = sb.repo().join("modules/generated/gone");
    std::fs::create_dir_all(gone.join("secrets")).unwrap();
    std::fs::create_dir_all(gone.join("notes")).unwrap();
    std::fs::write(gone.join("default.nix"), "{ }\n").unwrap();
    std::fs::write(gone.join("secrets/old.age"), "x\n").unwrap();
    std::fs::write(gone.join("README.md"), "hand-written\n").unwrap();
    std::fs::write(gone.join("notes/todo.txt"), "hand-written\n").unwrap();
    // A temporary file an interrupted gen left behind is potato's own.
    let n250 = sb.repo().join("modules/generated/n250");
    std::fs::write(n250.join("default.nix.potato-tmp"), "half").unwrap();
    let run = sb.potato(&["gen"]);
    run.ok();
    assert!(
        !gone.join("default.nix").exists(),
        "a generated file of a removed host is deleted"
    );
    assert!(!gone.join("secrets/old.age").exists());
    assert!(!gone.join("secrets").exists(), "its emptied directory too");
    assert!(!n250.join("default.nix.potato-tmp").exists());
    assert_eq!(
        std::fs::read_to_string(gone.join("README.md")).unwrap(),
        "hand-written\n",
        "a file potato does not write is left alone"
    );
    assert!(
        gone.join("notes/todo.txt").is_file(),
        "no recursive deletion"
    );
    assert!(
        run.stderr.contains("modules/generated/gone/README.md"),
        "the file left alone is named:\n{}",
        run.stderr
    );
    // gen --check still reports what is left, so CI notices.
    let run = sb.potato(&["gen", "--check"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("modules/generated/gone/README.md"));
}

#[test]
fn a_linked_secret_is_not_copied_into_the_generated_tree() {
    let sb = Sandbox::new();
    // Stands for the admin's age key: a file outside the repository.
    let key = sb.outside().join("age.key");
    std::fs::write(&key, "AGE-SECRET-KEY-1OUTSIDEOUTSIDEOUTSIDE\n").unwrap();
    sb.link("secrets/n250/leak.age", &key);
    std::fs::copy(
        sb.repo().join("secrets/n250/wg0.recipients"),
        sb.repo().join("secrets/n250/leak.recipients"),
    )
    .unwrap();
    let host = sb.repo().join("hosts/n250.toml");
    let text = std::fs::read_to_string(&host).unwrap() + "\n[secrets.leak]\n";
    std::fs::write(&host, text).unwrap();
    let before = sb.snapshot();
    for args in [&["gen"][..], &["gen", "--check"], &["check"]] {
        let run = sb.potato(args);
        assert_refused(
            &run,
            "secrets/n250/leak.age",
            "OUTSIDEOUTSIDE",
            &before,
            &sb,
        );
    }
    assert!(
        !sb.repo()
            .join("modules/generated/n250/secrets/leak.age")
            .exists()
    );
    // rekey would decrypt and re-encrypt it to the hosts: refused as well.
    let run = sb.potato(&["secrets", "rekey"]);
    assert_refused(
        &run,
        "secrets/n250/leak.age",
        "OUTSIDEOUTSIDE",
        &before,
        &sb,
    );
}

#[test]
fn linked_recipients_and_known_hosts_files_are_refused() {
    for (file, content) in [
        (
            "secrets/recipients.toml",
            "admins = [\"OUTSIDE-RECIPIENT\"\n",
        ),
        (
            "secrets/known_hosts",
            "OUTSIDE-RECIPIENT ssh-ed25519 AAAA\n",
        ),
    ] {
        let sb = Sandbox::new();
        let fake = sb.outside().join("fake");
        std::fs::write(&fake, content).unwrap();
        let _ = std::fs::remove_file(sb.repo().join(file));
        sb.link(file, &fake);
        let before = sb.snapshot();
        for args in [&["check"][..], &["gen"], &["secrets", "list"]] {
            let run = sb.potato(args);
            assert_refused(&run, file, "OUTSIDE-RECIPIENT", &before, &sb);
        }
    }
}

#[test]
fn a_linked_host_file_is_refused_before_parsing() {
    let sb = Sandbox::new();
    let private = sb.outside().join("private.toml");
    std::fs::write(&private, "a = 1\nAWS-SECRET-LINE = = broken\n").unwrap();
    sb.link("hosts/evil.toml", &private);
    let before = sb.snapshot();
    for args in [&["check"][..], &["gen"], &["secrets", "list"]] {
        let run = sb.potato(args);
        assert_refused(&run, "hosts/evil.toml", "AWS-SECRET-LINE", &before, &sb);
    }
    // The hosts directory itself as a link is refused as well.
    let sb = Sandbox::new();
    let hosts = sb.outside().join("hosts");
    std::fs::rename(sb.repo().join("hosts"), &hosts).unwrap();
    std::fs::write(hosts.join("evil.toml"), "AWS-SECRET-LINE = = broken\n").unwrap();
    sb.link("hosts", &hosts);
    let before = sb.snapshot();
    let run = sb.potato(&["check"]);
    assert_refused(&run, "hosts", "AWS-SECRET-LINE", &before, &sb);
}

#[test]
fn a_linked_catalog_file_is_refused_before_parsing() {
    let sb = Sandbox::new();
    let private = sb.outside().join("private.toml");
    std::fs::write(&private, "[svc]\nimage = CATALOG-SECRET-LINE\n").unwrap();
    sb.link("modules/catalog/evil.toml", &private);
    let before = sb.snapshot();
    for args in [&["check"][..], &["gen"], &["catalog"]] {
        let run = sb.potato(args);
        assert_refused(
            &run,
            "modules/catalog/evil.toml",
            "CATALOG-SECRET-LINE",
            &before,
            &sb,
        );
    }
}

#[test]
fn a_host_or_secret_name_never_becomes_a_path_outside_the_repository() {
    let sb = Sandbox::new();
    let before = sb.snapshot();
    let cases: &[&[&str]] = &[
        &["secrets", "set", "foo", "--host", "../../x"],
        &[
            "secrets", "gen", "foo", "--kind", "token", "--host", "../../x",
        ],
        &["secrets", "gen", "foo", "--kind", "token", "--host", "/tmp"],
        &["secrets", "edit", "foo", "--host", "../x"],
        &[
            "secrets", "gen", "../../x", "--kind", "token", "--host", "n250",
        ],
        &["secrets", "hostkey", "../../x"],
    ];
    for args in cases {
        let run = sb.potato_env(args, &[("EDITOR", Path::new("true"))]);
        assert_eq!(run.code, 2, "{args:?}\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("is not a valid host name")
                || run.stderr.contains("is not a valid secret name"),
            "{args:?}: {}",
            run.stderr
        );
        let after = sb.snapshot();
        assert!(after == before, "{args:?} changed files");
    }
}

#[test]
fn secrets_edit_refuses_to_write_into_a_linked_secrets_directory() {
    let sb = Sandbox::new();
    let target = sb.outside().join("n250");
    std::fs::rename(sb.repo().join("secrets/n250"), &target).unwrap();
    sb.link("secrets/n250", &target);
    let before = sb.snapshot();
    let mut input = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["secrets", "set", "fresh", "--host", "n250"])
        .current_dir(sb.repo())
        .env("POTATO_AGE_IDENTITY", admin_identity())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    input.stdin.take().unwrap().write_all(b"value").unwrap();
    let run = Run::from(input.wait_with_output().unwrap());
    assert_refused(&run, "secrets/n250", "PRECIOUS", &before, &sb);
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_iter()
        .filter(|(_, n)| matches!(n, Node::File(_)))
        .map(|(p, _)| dir.join(p))
        .collect()
}

fn wait_for_file(dir: &Path) -> PathBuf {
    for _ in 0..200 {
        if let Some(f) = files_below(dir).into_iter().find(|f| f.ends_with("secret")) {
            return f;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no scratch file appeared under {}", dir.display());
}

/// Every directory from `base` (exclusive) down to `file`'s parent, and the
/// file itself, is accessible to its owner only.
fn assert_private(base: &Path, file: &Path) {
    let mut p = file.to_path_buf();
    while p != base {
        let mode = std::fs::symlink_metadata(&p).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", p.display());
        assert_eq!(
            std::fs::symlink_metadata(&p).unwrap().uid(),
            euid(),
            "{} is ours",
            p.display()
        );
        p = p.parent().unwrap().to_path_buf();
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[test]
fn a_killed_edit_leaves_no_plaintext_behind_after_the_next_run() {
    let sb = Sandbox::new();
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let pidfile = sb.dir.path().join("editor.pid");
    let editor = sb.dir.path().join("slow-editor.sh");
    common::write_script(
        &editor,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
            pidfile.display()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["secrets", "edit", "wg0", "--host", "n250"])
        .current_dir(sb.repo())
        .env("POTATO_AGE_IDENTITY", admin_identity())
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let scratch = wait_for_file(runtime.path());
    let plaintext = std::fs::read_to_string(&scratch).unwrap();
    assert!(!plaintext.is_empty(), "the editor sees the decrypted value");
    assert_private(runtime.path(), &scratch);
    // The scratch copy exists before the editor starts: wait for the editor,
    // so potato is killed while it edits (a kill before it would leave no
    // editor pid to read).
    for _ in 0..400 {
        if pidfile.exists() && std::fs::metadata(&pidfile).unwrap().len() > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SIGKILL: potato gets no chance to wipe the copy.
    child.kill().unwrap();
    child.wait().unwrap();
    let editor_pid = std::fs::read_to_string(&pidfile).unwrap();
    let _ = Command::new("kill")
        .args(["-KILL", editor_pid.trim()])
        .status();
    assert!(
        scratch.exists(),
        "SIGKILL leaves the copy (nothing can wipe it then)"
    );
    assert_private(runtime.path(), &scratch);

    // The next potato secrets run removes it.
    let run = sb.potato_env(&["secrets", "list"], &[("XDG_RUNTIME_DIR", runtime.path())]);
    run.ok();
    assert!(!scratch.exists(), "the stale plaintext copy is removed");
    assert!(
        files_below(runtime.path()).is_empty(),
        "no file is left under the runtime directory: {:?}",
        files_below(runtime.path())
    );
    assert!(
        run.stderr.contains("removed a plaintext copy"),
        "{}",
        run.stderr
    );
}

#[test]
fn edit_without_a_runtime_dir_uses_a_private_directory_and_refuses_a_planted_one() {
    let sb = Sandbox::new();
    let tmp = tempfile::tempdir().unwrap();
    let seen = sb.dir.path().join("seen");
    let editor = sb.dir.path().join("editor.sh");
    common::write_script(
        &editor,
        format!("#!/bin/sh\necho \"$1\" > {}\n", seen.display()),
    );
    let run = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["secrets", "edit", "wg0", "--host", "n250"])
        .current_dir(sb.repo())
        .env("POTATO_AGE_IDENTITY", admin_identity())
        .env("EDITOR", &editor)
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let path = PathBuf::from(std::fs::read_to_string(&seen).unwrap().trim());
    assert!(path.starts_with(tmp.path()), "{}", path.display());
    assert_ne!(path.parent().unwrap(), tmp.path(), "not directly in TMPDIR");
    let private = tmp.path().join(
        path.strip_prefix(tmp.path())
            .unwrap()
            .iter()
            .next()
            .unwrap(),
    );
    let meta = std::fs::symlink_metadata(&private).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700, "{}", private.display());
    assert!(!path.exists(), "the copy is removed after the edit");

    // Someone else's directory (here: a link) at that name is refused.
    std::fs::remove_dir_all(&private).unwrap();
    let trap = tempfile::tempdir().unwrap();
    symlink(trap.path(), &private).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["secrets", "edit", "wg0", "--host", "n250"])
        .current_dir(sb.repo())
        .env("POTATO_AGE_IDENTITY", admin_identity())
        .env("EDITOR", &editor)
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a private directory"), "{stderr}");
    assert_eq!(std::fs::read_dir(trap.path()).unwrap().count(), 0);
}
