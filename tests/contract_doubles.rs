//! Every container of every example host (n250, lepotato, pve-apps) runs from
//! its committed `containers.json` under real podman, each on the contract
//! double of its catalog image (tests/common/doubles.rs): the image's uid:gid,
//! the paths it needs, the directories it writes, the health-check binaries it
//! carries. The host paths are created by the real `systemd-tmpfiles --create
//! --root=DIR` from the committed `containers-tmpfiles.conf`, never by the test.
//! Then one rule removed, one owner changed, one needed file's rule removed:
//! the matching container fails to start and says which path.
//!
//! TEST DOUBLES, named where made: the images (doubles.rs), the podman command
//! line (doubles::podman_run_args: networks, ports, devices and the engine
//! socket left out), and the secret env files (a stand-in value for each
//! variable the contract requires and the spec leaves to its env file, which
//! secrets.sh assembles and tests/containers.rs tests).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::doubles;
use serde_json::Value;

fn spec(host: &str) -> Value {
    let p = common::source_root().join(format!("modules/generated/{host}/containers.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn rules(host: &str) -> String {
    std::fs::read_to_string(
        common::source_root().join(format!("modules/generated/{host}/containers-tmpfiles.conf")),
    )
    .unwrap()
}

fn available() -> bool {
    common::have_tool("podman")
        && common::have_tool("runc")
        && common::have_tool("systemd-tmpfiles")
}

/// Containers started by one test, removed (by name) on drop with the temp dir.
struct Run {
    /// The host whose generated files the containers run with.
    host: String,
    prefix: String,
    dir: tempfile::TempDir,
    started: Vec<String>,
}

impl Run {
    fn new(tag: &str) -> Run {
        Run {
            host: tag.to_string(),
            prefix: format!("potato-dbl-{}-{tag}", std::process::id()),
            dir: tempfile::tempdir().unwrap(),
            started: Vec::new(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The real systemd-tmpfiles applies `conf` under this run's root.
    fn tmpfiles(&self, conf: &str) {
        let root = common::systemd_tmpfiles_create(conf, self.dir.path());
        assert_eq!(root, self.root());
    }

    /// Starts container `name` of `spec` on its double; returns podman's output.
    fn start(&mut self, catalog: &[Value], spec: &Value, name: &str) -> std::process::Output {
        let c = &spec["containers"][name];
        let entry = doubles::entry_for(catalog, name, c);
        let image = doubles::build(entry);
        let env_file = self.dir.path().join(format!("{name}.env"));
        std::fs::write(&env_file, stand_in_secrets(entry, c)).unwrap();
        let cname = format!("{}-{name}", self.prefix);
        let mut args = doubles::podman_run_args(&cname, c, &self.root(), &image, &env_file);
        // TEST DOUBLE of modules/edge.nix: the host's generated traefik/
        // directory (committed, as the flake reads it) at /etc/traefik, read-only.
        let traefik_dir = common::source_root()
            .join("modules/generated")
            .join(&self.host)
            .join("traefik");
        if name == "traefik" && traefik_dir.is_dir() {
            let at = args
                .iter()
                .position(|a| a == &image)
                .expect("the image argument");
            args.insert(
                at,
                format!("--volume={}:/etc/traefik:ro", traefik_dir.display()),
            );
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.started.push(cname);
        doubles::podman(&args)
    }

    fn cname(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn state(&self, name: &str) -> (String, i64) {
        let out = doubles::podman(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            &self.cname(name),
        ]);
        let s = String::from_utf8_lossy(&out.stdout);
        let (st, code) = s.trim().split_once(' ').unwrap_or(("missing", "-1"));
        (st.to_string(), code.parse().unwrap_or(-1))
    }

    fn logs(&self, name: &str) -> String {
        let out = doubles::podman(&["logs", &self.cname(name)]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits until the container logs "ready" (or stops); true when ready.
    fn ready(&self, name: &str) -> bool {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if self.logs(name).contains("): ready as ") {
                return true;
            }
            if self.state(name).0 == "exited" {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Waits for the container to exit; returns its exit code.
    fn exit_code(&self, name: &str) -> i64 {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            let (st, code) = self.state(name);
            if st == "exited" {
                return code;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{name} did not exit: {}", self.logs(name));
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for c in &self.started {
            let _ = doubles::podman(&["rm", "-f", "-t", "0", c]);
        }
    }
}

/// TEST DOUBLE of the secret env file: a stand-in value for each variable the
/// contract requires (unconditionally, or on a condition the spec's environment
/// meets) and the spec's environment leaves out,
/// only when the spec names an env file (where potato puts secrets).
fn stand_in_secrets(entry: &Value, c: &Value) -> String {
    let has_files = !c["environmentFiles"].as_array().unwrap().is_empty();
    let mut s = String::new();
    for e in entry["contract"]["required_env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let applies = match e["when"].as_array() {
            None => true,
            Some(w) => c["environment"].get(w[0].as_str().unwrap()) == Some(&w[1]),
        };
        if has_files && applies && c["environment"].get(name).is_none() {
            s += &format!("{name}=stand-in-secret\n");
        }
    }
    s
}

fn health_cmd(c: &Value) -> Option<String> {
    c["extraOptions"].as_array().unwrap().iter().find_map(|o| {
        o.as_str()
            .unwrap()
            .strip_prefix("--health-cmd=")
            .map(String::from)
    })
}

fn run_every_container(host: &str) {
    if !available() {
        return;
    }
    let catalog = doubles::catalog();
    let spec = spec(host);
    let mut run = Run::new(host);
    run.tmpfiles(&rules(host));
    let names: Vec<String> = spec["containers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(names.len() >= 5, "{host}: only {names:?}");
    for n in &names {
        let out = run.start(&catalog, &spec, n);
        assert!(
            out.status.success(),
            "{host}/{n}: podman run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut problems = Vec::new();
    for n in &names {
        if !run.ready(n) {
            problems.push(format!("{n}: not running: {}", run.logs(n)));
            continue;
        }
        assert_eq!(run.state(n).0, "running", "{n}");
        if let Some(cmd) = health_cmd(&spec["containers"][n.as_str()]) {
            let out = doubles::podman(&["healthcheck", "run", &run.cname(n)]);
            if !out.status.success() {
                problems.push(format!(
                    "{n}: health check {cmd:?} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{host}:\n{}", problems.join("\n"));
}

#[test]
fn every_n250_container_runs_on_its_contract_double() {
    run_every_container("n250");
}

#[test]
fn every_lepotato_container_runs_on_its_contract_double() {
    run_every_container("lepotato");
}

#[test]
fn every_pve_apps_container_runs_on_its_contract_double() {
    run_every_container("pve-apps");
}

/// The rules with the one line starting with `line` replaced (panics when
/// there is not exactly one, so the test cannot edit nothing).
fn edit_rule(rules: &str, line: &str, to: &str) -> String {
    assert_eq!(
        rules.lines().filter(|l| l.starts_with(line)).count(),
        1,
        "rule {line:?}"
    );
    rules
        .lines()
        .map(|l| if l.starts_with(line) { to } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Starts `name` of n250 on rules edited by `broken`; it must fail, naming `path`.
fn fails_on(tag: &str, broken: &str, name: &str, path: &str) {
    let catalog = doubles::catalog();
    let spec = spec("n250");
    let mut run = Run::new(tag);
    run.tmpfiles(broken);
    let out = run.start(&catalog, &spec, name);
    let said = if out.status.success() {
        let code = run.exit_code(name);
        assert_ne!(code, 0, "{name} exited 0 on broken rules");
        run.logs(name)
    } else {
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(
        said.contains(path),
        "{name} failed without naming {path}: {said}"
    );
}

/// The same containers fail when the rules break: a removed directory rule
/// (podman refuses the missing volume source), a changed owner (the image's
/// uid cannot write its data directory), a removed file rule (traefik's access
/// log, which the image needs before start).
#[test]
fn a_broken_rule_stops_the_matching_container() {
    if !available() {
        return;
    }
    let ok = rules("n250");
    let base = Path::new("/mnt/ssd/appdata");
    let grafana = base.join("grafana/data");
    let g = grafana.to_str().unwrap();
    fails_on(
        "norule",
        &edit_rule(&ok, &format!("d {g} "), ""),
        "grafana",
        g,
    );
    let prom = base.join("prometheus/data");
    let p = prom.to_str().unwrap();
    fails_on(
        "owner",
        &edit_rule(&ok, &format!("d {p} "), &format!("d {p} 0750 0 0 -")),
        "prometheus",
        "/prometheus",
    );
    fails_on(
        "nofile",
        &edit_rule(&ok, "f /var/log/traefik/access.log ", ""),
        "traefik",
        "/var/log/traefik/access.log",
    );
}

/// Each double carries a health-check binary only where its contract lists
/// one: the check fails on an image without it (prometheus has no curl).
#[test]
fn a_double_lacks_binaries_its_image_lacks() {
    if !available() {
        return;
    }
    let catalog = doubles::catalog();
    let prometheus = catalog.iter().find(|e| e["name"] == "prometheus").unwrap();
    let image = doubles::build(prometheus);
    for (bin, present) in [
        ("wget", true),
        ("promtool", true),
        ("curl", false),
        ("bash", false),
    ] {
        let out = doubles::podman(&[
            "run",
            "--rm",
            "--runtime=runc",
            "--ulimit=nofile=1024:1024",
            "--ulimit=nproc=1024:1024",
            "--network=none",
            "--entrypoint=/bin/sh",
            &image,
            "-c",
            &format!("command -v {bin}"),
        ]);
        assert_eq!(out.status.success(), present, "prometheus double: {bin}");
    }
}
