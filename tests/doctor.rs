//! What potato says about the machine it runs on: a missing `nix` stops
//! `potato build` with the program, the command and both packages named, and
//! `potato doctor` reports programs, the real Nix, and which substituters
//! answer (a file:// cache, a real HTTP server on loopback, a closed port).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Repo, Run, have_tool, source_root};

/// `potato ARGS` in `repo` with PATH and NIX_CONF_DIR as given.
fn potato_with(repo: &Repo, args: &[&str], path: &str, nix_conf_dir: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(args)
        .current_dir(repo.path())
        .env_remove("POTATO_REPO")
        .env_remove("NIX_CONFIG")
        .env("PATH", path)
        .env("NIX_CONF_DIR", nix_conf_dir)
        .output()
        .expect("run potato");
    Run::from(out)
}

/// The repository's own Nix configuration (what tests/run exports).
fn test_nix_conf() -> std::path::PathBuf {
    source_root().join("tests/nix")
}

fn normal_path() -> String {
    std::env::var("PATH").expect("PATH is set")
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", run.stdout, run.stderr))
}

#[test]
fn build_without_nix_names_the_program_the_command_and_the_packages() {
    let repo = Repo::examples();
    let empty = tempfile::tempdir().unwrap();
    let run = potato_with(
        &repo,
        &["build", "n250"],
        empty.path().to_str().unwrap(),
        &test_nix_conf(),
    );
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    for part in [
        "`nix`",
        "`potato build`",
        "apt-get install nix-bin",
        "pkgs.nix",
    ] {
        assert!(
            run.stderr.contains(part),
            "{part} missing in:\n{}",
            run.stderr
        );
    }
    // One error, rendered once.
    assert_eq!(run.stderr.matches("error:").count(), 1, "{}", run.stderr);
}

#[test]
fn build_without_nix_in_json_is_one_error_document() {
    let repo = Repo::examples();
    let empty = tempfile::tempdir().unwrap();
    let run = potato_with(
        &repo,
        &["build", "n250", "--json"],
        empty.path().to_str().unwrap(),
        &test_nix_conf(),
    );
    assert_eq!(run.code, 1);
    let v = json(&run);
    assert_eq!(v["ok"], false);
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("`nix`") && error.contains("`potato build`"),
        "{error}"
    );
    assert!(v["hint"].as_str().unwrap().contains("nix-bin"), "{v}");
}

#[test]
fn doctor_without_nix_reports_it_missing_and_exits_1() {
    let repo = Repo::examples();
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let run = potato_with(&repo, &["doctor"], path, &test_nix_conf());
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let nix_line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("nix "))
        .unwrap_or_else(|| panic!("no nix line in:\n{}", run.stdout));
    assert!(
        nix_line.contains("MISSING") && nix_line.contains("nix-bin"),
        "{nix_line}"
    );
    let build_line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("potato build "))
        .unwrap();
    assert!(build_line.contains("MISSING nix"), "{build_line}");
    assert!(run.stderr.contains("missing: nix"), "{}", run.stderr);

    let run = potato_with(&repo, &["doctor", "--json"], path, &test_nix_conf());
    assert_eq!(run.code, 1);
    let v = json(&run);
    assert_eq!(v["ok"], false);
    let nix = v["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "nix")
        .unwrap();
    assert!(nix["path"].is_null(), "{nix}");
    assert_eq!(nix["debian"], "nix-bin");
    assert_eq!(nix["nixos"], "nix");
    assert!(v["nix"]["version"].is_null());
}

#[test]
fn doctor_reports_the_real_nix_and_exits_0() {
    if !have_tool("nix") {
        return;
    }
    let nix_version = Command::new("nix").arg("--version").output().unwrap();
    let nix_version = String::from_utf8(nix_version.stdout).unwrap();
    let repo = Repo::examples();
    let run = potato_with(
        &repo,
        &["doctor", "--json"],
        &normal_path(),
        &test_nix_conf(),
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let v = json(&run);
    assert_eq!(v["ok"], true);
    assert_eq!(v["nix"]["version"], nix_version.trim());
    // tests/nix/nix.conf enables both.
    assert_eq!(v["nix"]["flakes"], true);
    assert_eq!(v["nix"]["nix_command"], true);
    let arch = std::env::consts::ARCH;
    assert_eq!(v["nix"]["system"], format!("{arch}-linux"));
    // The fleet's x86_64 hosts are built here.
    let n250 = v["fleet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "n250")
        .unwrap();
    assert_eq!(n250["system"], "x86_64-linux");
    if arch == "x86_64" {
        assert_eq!(n250["built_by"], "this machine");
    }

    let human = potato_with(&repo, &["doctor"], &normal_path(), &test_nix_conf());
    human.ok();
    assert!(
        human.stdout.contains(nix_version.trim()),
        "{}",
        human.stdout
    );
    let flakes = human
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("flakes"))
        .unwrap();
    assert!(
        flakes.ends_with("enabled") && !flakes.contains("not"),
        "{flakes}"
    );
}

#[test]
fn doctor_without_flakes_in_nix_conf_says_so() {
    if !have_tool("nix") {
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("nix.conf"),
        "substituters =\nbuild-users-group =\n",
    )
    .unwrap();
    let repo = Repo::examples();
    let run = potato_with(&repo, &["doctor", "--json"], &normal_path(), conf.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run);
    assert_eq!(v["nix"]["flakes"], false);
    assert_eq!(v["nix"]["nix_command"], false);
    // Still read: potato enabled nix-command for that one call.
    assert_eq!(
        v["nix"]["system"],
        format!("{}-linux", std::env::consts::ARCH)
    );
}

#[test]
fn doctor_probes_each_substituter() {
    if !have_tool("nix") || !have_tool("busybox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A binary cache's top-level file, as Nix writes it.
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(
        cache.join("nix-cache-info"),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n",
    )
    .unwrap();
    // A file:// path that is not a cache.
    let not_cache = tmp.path().join("empty");
    std::fs::create_dir(&not_cache).unwrap();
    // The same cache over HTTP, served by busybox httpd on loopback.
    let port = free_port();
    let _httpd = Killed(
        Command::new("busybox")
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(&cache)
            .spawn()
            .expect("busybox httpd"),
    );
    let served = format!("http://127.0.0.1:{port}");
    wait_listening(port);
    let conf = tmp.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("nix.conf"),
        format!(
            "substituters = file://{} file://{} {served} http://127.0.0.1:1\nbuild-users-group =\nexperimental-features = nix-command flakes\n",
            cache.display(),
            not_cache.display()
        ),
    )
    .unwrap();
    let repo = Repo::examples();
    let run = potato_with(&repo, &["doctor", "--json"], &normal_path(), &conf);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run);
    let status: Vec<(String, String)> = v["nix"]["substituters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["uri"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            (format!("file://{}", cache.display()), "answers".into()),
            (
                format!("file://{}", not_cache.display()),
                "no-answer".into()
            ),
            (served.clone(), "answers".into()),
            ("http://127.0.0.1:1".to_string(), "no-answer".into()),
        ]
    );
    // The human report says the same.
    let run = potato_with(&repo, &["doctor"], &normal_path(), &conf);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("http://127.0.0.1:1"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.contains("NO ANSWER"), "{line}");
}

#[test]
fn doctor_reports_builders_from_the_machines_file() {
    if !have_tool("nix") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = free_port();
    std::fs::write(
        tmp.path().join("machines"),
        format!(
            "# remote builders\nssh://nix@127.0.0.1:{open} aarch64-linux - 2\nssh-ng://127.0.0.1:{closed} riscv64-linux\n"
        ),
    )
    .unwrap();
    // builders defaults to @$NIX_CONF_DIR/machines.
    std::fs::write(
        tmp.path().join("nix.conf"),
        "substituters =\nbuild-users-group =\nexperimental-features = nix-command flakes\n",
    )
    .unwrap();
    let repo = Repo::examples();
    let run = potato_with(&repo, &["doctor", "--json"], &normal_path(), tmp.path());
    drop(listener);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run);
    let builders = v["nix"]["builders"].as_array().unwrap();
    assert_eq!(builders.len(), 2, "{v}");
    assert_eq!(builders[0]["uri"], format!("ssh://nix@127.0.0.1:{open}"));
    assert_eq!(builders[0]["systems"][0], "aarch64-linux");
    assert_eq!(builders[0]["status"], "answers");
    assert_eq!(builders[1]["status"], "no-answer");
    // lepotato (aarch64-linux) is built by the builder that has its system.
    let lepotato = v["fleet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "lepotato")
        .unwrap();
    assert_eq!(lepotato["built_by"], format!("ssh://nix@127.0.0.1:{open}"));
}

#[test]
fn doctor_help_says_what_it_checks_and_when_it_fails() {
    let run = Repo::examples().potato(&["doctor", "--help"]);
    run.ok();
    for part in [
        "PATH",
        "Debian package",
        "nixpkgs attribute",
        "flakes",
        "extra-platforms",
        "substituter",
        "builder",
        "--json",
        "Exit code 1",
    ] {
        assert!(
            run.stdout.contains(part),
            "{part} missing in:\n{}",
            run.stdout
        );
    }
}

/// A child process killed (by its pid) and reaped when dropped, also when the
/// test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("busybox httpd did not listen on 127.0.0.1:{port}");
}
