//! Shared helpers for the integration tests: a throwaway copy of the example
//! repository, running the potato binary in it, and tool checks.

#![allow(dead_code)]

pub mod cache;
pub mod doubles;
pub mod fleet;
pub mod lab;
pub mod testbed;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository under test (where Cargo.toml is).
pub fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary copy of the example fleet: flake, hosts, modules, secrets, docs.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn examples() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        for item in [
            "flake.nix",
            "flake.lock",
            "Cargo.toml",
            "hosts",
            "modules",
            "secrets",
            "docs",
        ] {
            copy(&source_root().join(item), &dir.path().join(item));
        }
        Repo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces exactly one occurrence of `from` in a file (panics otherwise,
    /// so a test cannot silently edit nothing).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(
            text.matches(from).count(),
            1,
            "{rel} must contain {from:?} exactly once"
        );
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn potato(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_potato"))
            .args(args)
            .current_dir(self.path())
            .env_remove("POTATO_REPO")
            .output()
            .expect("run potato");
        Run::from(out)
    }

    /// "FILE:LINE:COL" of the first occurrence of `needle` in the repository's
    /// `file`: where potato must point a diagnostic about it.
    pub fn at(&self, file: &str, needle: &str) -> String {
        let (l, c) = line_col(&self.read(file), needle);
        format!("{file}:{l}:{c}")
    }

    /// "FILE:LINE:COL" of `needle` inside the first occurrence of `context`
    /// (which holds it): a value that also stands elsewhere in the file.
    pub fn at_in(&self, file: &str, context: &str, needle: &str) -> String {
        let text = self.read(file);
        let start = text
            .find(context)
            .unwrap_or_else(|| panic!("{context:?} not in {file}"));
        let offset = start + context.find(needle).expect("needle inside context");
        let (l, c) = line_col_at(&text, offset);
        format!("{file}:{l}:{c}")
    }

    /// `potato ARGS` as the example fleet's admin (whose age identity decrypts
    /// every secret, the pre-generated host keys among them).
    pub fn potato_as_admin(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_potato"))
            .args(args)
            .current_dir(self.path())
            .env_remove("POTATO_REPO")
            .env("POTATO_AGE_IDENTITY", admin_identity())
            .output()
            .expect("run potato");
        Run::from(out)
    }
}

/// The example fleet admin's age identity (tests/fixtures/demo-keys).
pub fn admin_identity() -> PathBuf {
    source_root().join("tests/fixtures/demo-keys/admin.agekey")
}

/// A finished potato run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// stdout is exactly one JSON document (a `serde_json` stream of one
    /// value, nothing else but whitespace); returns it.
    pub fn one_json_document(&self) -> serde_json::Value {
        let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&self.stdout)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| {
                panic!(
                    "stdout is not JSON ({e}):\nstdout: {}\nstderr: {}",
                    self.stdout, self.stderr
                )
            });
        assert_eq!(
            docs.len(),
            1,
            "expected one JSON document on stdout:\n{}",
            self.stdout
        );
        docs.into_iter().next().unwrap()
    }

    /// stderr as plain lines (not a terminal): no carriage return, no escape
    /// sequence; returns it.
    pub fn plain_stderr(&self) -> &str {
        assert!(
            !self.stderr.contains('\r') && !self.stderr.contains('\x1b'),
            "control characters on stderr: {:?}",
            self.stderr
        );
        &self.stderr
    }

    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit code 2 and that stderr has `file:line:col` and `message`.
    pub fn invalid_at(&self, location: &str, message: &str) -> &Run {
        assert_eq!(
            self.code, 2,
            "expected exit 2\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(location),
            "missing location {location:?} in:\n{}",
            self.stderr
        );
        assert!(
            self.stderr.contains(message),
            "missing message {message:?} in:\n{}",
            self.stderr
        );
        self
    }
}

pub fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else if from.exists() {
        std::fs::copy(from, to).unwrap();
    }
}

/// True when every tool is on PATH (each checked as `have_tool` does).
pub fn have_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| have_tool(t))
}

/// True when `tool` is on PATH. In CI a missing tool fails the test; locally the
/// test is skipped with a message naming what is missing.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required in CI (the test command installs it)");
        }
        eprintln!("SKIPPED: {tool} is not installed (run tests/run to install it)");
    }
    found
}

/// Runs `program args` with `input` on its stdin; asserts that it succeeded
/// (showing its stderr when not) and returns its stdout.
pub fn pipe_through(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Decrypts an age file's contents (armored or binary) with an identity
/// file: an age key file or an OpenSSH private key (a host's key). Err says
/// why it would not decrypt.
pub fn age_decrypt(data: &[u8], identity: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let key = std::fs::read(identity).unwrap();
    let ids: Vec<Box<dyn age::Identity>> = if key.starts_with(b"-----BEGIN OPENSSH") {
        vec![Box::new(
            age::ssh::Identity::from_buffer(&key[..], None).unwrap(),
        )]
    } else {
        age::IdentityFile::from_buffer(&key[..])
            .unwrap()
            .into_identities()
            .unwrap()
            .into_iter()
            .map(|i| i as Box<dyn age::Identity>)
            .collect()
    };
    let dec =
        age::Decryptor::new(age::armor::ArmoredReader::new(data)).map_err(|e| e.to_string())?;
    let mut r = dec
        .decrypt(ids.iter().map(|i| i.as_ref()))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The strings of a JSON list (panics, showing it, when `v` is not a list of
/// strings).
pub fn strs(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

/// A word no other test (and no earlier run) has used: the process id and
/// the time in nanoseconds. Salts payloads and store paths so that no store
/// has them yet.
pub fn unique_salt() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Applies tmpfiles.d `rules` with the real `systemd-tmpfiles --create`
/// under the directory `dir`/root (the rules' "/" there, made if need be);
/// returns it.
pub fn systemd_tmpfiles_create(rules: &str, dir: &Path) -> PathBuf {
    let conf = dir.join("tmpfiles.conf");
    std::fs::write(&conf, rules).unwrap();
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let out = Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(format!("--root={}", root.display()))
        .arg(&conf)
        .output()
        .expect("systemd-tmpfiles");
    assert!(
        out.status.success(),
        "systemd-tmpfiles: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}

/// Writes an executable script (mode 0755).
pub fn write_script(path: &Path, body: impl AsRef<str>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body.as_ref()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
pub fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found"));
    line_col_at(text, at)
}

/// 1-based line and column of the byte `offset` in `text`.
pub fn line_col_at(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// An upstream JSON Schema from the reference notes
/// (../shared/reference/schemas/NAME), or None, said why, when that directory
/// is absent locally; in CI it must be there.
pub fn reference_schema(name: &str) -> Option<serde_json::Value> {
    let path = source_root().join("../shared/reference/schemas").join(name);
    if !path.is_file() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{} is required in CI (see SOURCES.md there)",
                path.display()
            );
        }
        eprintln!(
            "SKIPPED: {} is absent (the reference schemas live in ../shared/reference/schemas)",
            path.display()
        );
        return None;
    }
    Some(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
}

/// What `schema` finds wrong in `doc`, one line each (empty: valid).
pub fn schema_violations(schema: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    schema
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Attaches `file` to a free loop device (with partition scanning when
/// `partitions`); returns /dev/loopN. The caller detaches it (`losetup -d`).
pub fn attach_loop(file: &std::path::Path, partitions: bool) -> String {
    let mut cmd = Command::new("losetup");
    cmd.args(["-f", "--show"]);
    if partitions {
        cmd.arg("-P");
    }
    let out = cmd.arg(file).output().expect("run losetup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `cmd` run by `outer` (a wrapper such as `ip netns exec NS` or `strace …`,
/// given with its own arguments): `outer` then `cmd`'s program and arguments,
/// with `cmd`'s working directory and environment changes carried over.
pub fn run_under(
    mut outer: std::process::Command,
    cmd: &std::process::Command,
) -> std::process::Command {
    outer.arg(cmd.get_program()).args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        outer.current_dir(d);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => outer.env(k, v),
            None => outer.env_remove(k),
        };
    }
    outer
}
