//! The real programs where Debian ships them, run as their catalog image's
//! uid:gid (from `potato catalog --json`) on the host directories the real
//! `systemd-tmpfiles --create --root=DIR` makes from n250's (pve-apps's for
//! postgres and redis) committed
//! `containers-tmpfiles.conf`, each directory found through the volume of
//! n250's committed `containers.json` that maps the image's data path.
//! Prometheus (`promtool check config`, answers `/-/ready`, writes its TSDB),
//! postgres (initdb and start, answers pg_isready), redis (PONG, SAVE writes
//! its dump) and syncthing (in its own network namespace; serves its GUI). Then the prometheus rule's owner changed: prometheus fails.
//! Last, the monitoring hub's generated prometheus.yml, alerts.yml and
//! alertmanager.yml, unmodified, with Debian's prometheus, alertmanager and
//! node-exporter in a private network namespace: n250's node target is up.
//!
//! Not containers: the process runs on the host with the image's uid via
//! util-linux `setpriv`, listening on a free 127.0.0.1 port. For postgres, a
//! private mount namespace binds a passwd file naming uid 70 (initdb needs a
//! user name; the alpine image has `postgres` as 70). Prometheus's config is
//! the one Debian ships (potato generates none: the image ships its own,
//! `ships_config`). Each started process is killed by its pid.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::doubles;
use serde_json::Value;

/// Host paths of n250 made by the real systemd-tmpfiles under a temp root.
struct Host {
    dir: tempfile::TempDir,
    spec: Value,
}

impl Host {
    fn n250(rules: &str) -> Host {
        Host::of("n250", rules)
    }

    /// pve-apps: the identity host, which runs postgres and redis for authentik.
    fn pve_apps() -> Host {
        Host::of(
            "pve-apps",
            &committed_of("pve-apps", "containers-tmpfiles.conf"),
        )
    }

    fn of(host: &str, rules: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        // The image's uid must reach the data dir: the root is world-traversable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        crate::common::systemd_tmpfiles_create(rules, dir.path());
        let spec = serde_json::from_str(&committed_of(host, "containers.json")).unwrap();
        Host { dir, spec }
    }

    /// Where container `name`'s volume onto `target` lives under the root.
    fn volume(&self, name: &str, target: &str) -> PathBuf {
        let v = self.spec["containers"][name]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .find(|v| v.split(':').nth(1) == Some(target))
            .unwrap_or_else(|| panic!("{name} has no volume onto {target}"));
        let host = v.split(':').next().unwrap();
        self.dir
            .path()
            .join("root")
            .join(host.trim_start_matches('/'))
    }

    fn tmp(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

fn committed(file: &str) -> String {
    committed_of("n250", file)
}

fn committed_of(host: &str, file: &str) -> String {
    std::fs::read_to_string(
        common::source_root()
            .join("modules/generated")
            .join(host)
            .join(file),
    )
    .unwrap()
}

/// The catalog contract's (uid, gid) and its first written path.
fn contract(service: &str) -> (u32, u32, String) {
    let cat = doubles::catalog();
    let e = cat.iter().find(|e| e["name"] == service).unwrap();
    let c = &e["contract"];
    (
        c["user"]["uid"].as_u64().unwrap() as u32,
        c["user"]["gid"].as_u64().unwrap() as u32,
        c["writes"][0].as_str().unwrap().to_string(),
    )
}

/// A started program, killed by its pid on drop.
struct Proc(Child);

impl Drop for Proc {
    /// SIGTERM (postgres shuts its backends down), SIGKILL after 10 s.
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `setpriv` to uid:gid, then `program ARGS`, stdout/stderr into `log`.
fn start_as(uid: u32, gid: u32, program: &str, args: &[String], log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    let child = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(program)
        .args(args)
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv");
    Proc(child)
}

/// Status line of GET http://127.0.0.1:port/path, if it answers.
fn http_status(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().next().map(String::from)
}

fn wait_for(what: &str, p: &mut Proc, log: &Path, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if ok() {
            return;
        }
        if let Some(st) = p.0.try_wait().unwrap() {
            panic!(
                "{what} exited ({st}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "{what} not ready: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Files directly in `dir` owned by uid.
fn owned_by(dir: &Path, uid: u32) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().metadata().unwrap().uid() == uid)
        .count()
}

fn prometheus_args(host: &Host, data: &Path, port: u16) -> Vec<String> {
    let cfg = host.tmp("etc").join("prometheus.yml");
    std::fs::copy("/etc/prometheus/prometheus.yml", &cfg).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", data.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ]
}

#[test]
fn prometheus_runs_as_its_images_uid_on_the_tmpfiles_data_dir() {
    if !common::have_tools(&["prometheus", "promtool", "setpriv", "systemd-tmpfiles"]) {
        return;
    }
    let (uid, gid, writes) = contract("prometheus");
    let host = Host::n250(&committed("containers-tmpfiles.conf"));
    let data = host.volume("prometheus", &writes);
    let port = free_port();
    let log = host.tmp("log").join("prometheus.log");
    let args = prometheus_args(&host, &data, port);
    let mut p = start_as(uid, gid, "prometheus", &args, &log);
    wait_for("prometheus", &mut p, &log, || {
        http_status(port, "/-/ready").is_some_and(|s| s.contains(" 200"))
    });
    assert!(
        owned_by(&data, uid) > 0,
        "prometheus wrote nothing as {uid} into {}",
        data.display()
    );
}

#[test]
fn prometheus_fails_when_the_rule_gives_its_data_dir_another_owner() {
    if !common::have_tools(&["prometheus", "promtool", "setpriv", "systemd-tmpfiles"]) {
        return;
    }
    let (uid, gid, writes) = contract("prometheus");
    let rules = committed("containers-tmpfiles.conf");
    let line = "d /mnt/ssd/appdata/prometheus/data 0750 65534 65534 -";
    assert_eq!(rules.matches(line).count(), 1, "rule {line}");
    let host = Host::n250(&rules.replace(line, "d /mnt/ssd/appdata/prometheus/data 0750 0 0 -"));
    let data = host.volume("prometheus", &writes);
    let log = host.tmp("log").join("prometheus.log");
    let args = prometheus_args(&host, &data, free_port());
    let mut p = start_as(uid, gid, "prometheus", &args, &log);
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < until, "prometheus kept running");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("permission denied") && said.contains(data.to_str().unwrap()),
        "{said}"
    );
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    let b = found.pop();
    if b.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("postgresql is required in CI");
        }
        eprintln!("SKIPPED: /usr/lib/postgresql/*/bin/initdb is missing (postgresql)");
    }
    b
}

#[test]
fn postgres_initialises_and_serves_as_its_images_uid_on_the_tmpfiles_data_dir() {
    if !common::have_tools(&["setpriv", "unshare", "systemd-tmpfiles"]) {
        return;
    }
    let Some(bin) = pg_bin() else { return };
    let (uid, gid, writes) = contract("postgres");
    let host = Host::pve_apps();
    let data = host.volume("postgres", &writes);
    let sock = host.tmp("sock");
    std::os::unix::fs::chown(&sock, Some(uid), Some(gid)).unwrap();
    let passwd = host.tmp("etc").join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "{}postgres:x:{uid}:{gid}::/nonexistent:/bin/sh\n",
            std::fs::read_to_string("/etc/passwd").unwrap()
        ),
    )
    .unwrap();
    let script = format!(
        "mount --bind '{passwd}' /etc/passwd && \
         setpriv --reuid={uid} --regid={gid} --clear-groups '{bin}/initdb' -U postgres -A trust -D '{data}' \
         && exec setpriv --reuid={uid} --regid={gid} --clear-groups '{bin}/postgres' -D '{data}' \
         -c listen_addresses= -k '{sock}'",
        passwd = passwd.display(),
        bin = bin.display(),
        data = data.display(),
        sock = sock.display(),
    );
    let log = host.tmp("log").join("postgres.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut p = Proc(
        Command::new("unshare")
            .args(["--mount", "sh", "-c", &script])
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap(),
    );
    let isready = bin.join("pg_isready");
    wait_for("postgres", &mut p, &log, || {
        Command::new(&isready)
            .args(["-U", "postgres", "-h"])
            .arg(&sock)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(data.join("PG_VERSION").exists());
    assert_eq!(
        std::fs::metadata(data.join("PG_VERSION")).unwrap().uid(),
        uid
    );
}

#[test]
fn redis_answers_and_saves_as_its_images_uid_on_the_tmpfiles_data_dir() {
    if !common::have_tools(&["redis-server", "redis-cli", "setpriv", "systemd-tmpfiles"]) {
        return;
    }
    let (uid, gid, writes) = contract("redis");
    let host = Host::pve_apps();
    let data = host.volume("redis", &writes);
    let port = free_port();
    let log = host.tmp("log").join("redis.log");
    let args: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--dir",
        data.to_str().unwrap(),
        "--save",
        "",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = start_as(uid, gid, "redis-server", &args, &log);
    let cli = |cmd: &str| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    wait_for("redis", &mut p, &log, || cli("PING") == "PONG");
    assert_eq!(
        cli("SAVE"),
        "OK",
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let dump = data.join("dump.rdb");
    assert_eq!(std::fs::metadata(&dump).unwrap().uid(), uid);
}

#[test]
fn syncthing_serves_as_its_images_uid_on_the_tmpfiles_config_dir() {
    if !common::have_tools(&[
        "syncthing",
        "setpriv",
        "unshare",
        "nsenter",
        "busybox",
        "systemd-tmpfiles",
    ]) {
        return;
    }
    let (uid, gid, writes) = contract("syncthing");
    let host = Host::n250(&committed("containers-tmpfiles.conf"));
    // The image's home is the written path; n250 mounts its config below it.
    let config = host.volume("syncthing", &format!("{writes}/config"));
    let log = host.tmp("log").join("syncthing.log");
    let f = std::fs::File::create(&log).unwrap();
    // A network namespace of its own: syncthing also listens on :22000.
    let script = format!(
        "ip link set lo up && exec setpriv --reuid={uid} --regid={gid} --clear-groups \
         syncthing serve --no-browser --no-restart --home='{}' --gui-address=127.0.0.1:8384",
        config.display()
    );
    let mut p = Proc(
        Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .env("HOME", &config)
            .env("STNOUPGRADE", "1")
            .env("STNODEFAULTFOLDER", "1")
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap(),
    );
    // Debian's syncthing 1.19 answers 403 on the image's health URL
    // (/rest/noauth/health, used by the 1.30 image): its GUI page stands in.
    let netns = format!("--net=/proc/{}/ns/net", p.0.id());
    wait_for("syncthing", &mut p, &log, || {
        Command::new("nsenter")
            .args([&netns, "busybox", "wget", "-q", "-O", "/dev/null"])
            .arg("http://127.0.0.1:8384/")
            .status()
            .is_ok_and(|s| s.success())
    });
    let cfg = config.join("config.xml");
    assert_eq!(std::fs::metadata(&cfg).unwrap().uid(), uid, "config.xml");
}

/// A network namespace of the test's own, with loopback up: nothing a program
/// in it sends can leave it. Deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("potato-{tag}-{}", std::process::id());
        let ok = |c: &mut Command| {
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns(name);
        ok(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]));
        ns
    }

    /// Gives loopback an extra address (one the generated config targets).
    fn add_address(&self, cidr: &str) {
        let out = Command::new("ip")
            .args(["-n", &self.0, "addr", "add", cidr, "dev", "lo"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `program ARGS` as uid:gid inside the namespace (ip and setpriv exec it,
    /// so the child's pid is the program's).
    fn start_as(&self, uid: u32, gid: u32, program: &str, args: &[String], log: &Path) -> Proc {
        let f = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.0, "setpriv"])
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(program)
            .args(args)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .expect("ip netns exec");
        Proc(child)
    }

    /// The body of GET url from inside the namespace (curl), if it answers 2xx.
    fn get(&self, url: &str) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.0,
                "curl",
                "-sf",
                "--max-time",
                "5",
                url,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A copy of the hub's generated monitoring directory `sub`, readable by all.
fn generated_config(host: &Host, sub: &str) -> PathBuf {
    let from = common::source_root()
        .join("modules/generated/n250/monitoring")
        .join(sub);
    let to = host.tmp(&format!("etc-{sub}"));
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        std::fs::copy(e.path(), &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    to
}

/// The monitoring hub's generated files, unmodified, run by Debian's programs
/// as their images' uids on tmpfiles-made data dirs, inside a private network
/// namespace (the config targets the fleet's tunnel addresses; n250's own,
/// 10.99.0.10, is put on the namespace's loopback, so nothing leaves it):
/// node-exporter answers there, Prometheus (`promtool check config` and
/// `check rules` first) scrapes it with `up == 1`, and Alertmanager
/// (`amtool check-config` first) starts with the generated route and answers.
#[test]
fn the_hubs_generated_monitoring_config_runs_with_the_real_programs() {
    if !common::have_tools(&[
        "prometheus",
        "promtool",
        "prometheus-alertmanager",
        "amtool",
        "prometheus-node-exporter",
        "setpriv",
        "systemd-tmpfiles",
        "curl",
        "ip",
    ]) {
        return;
    }
    let host = Host::n250(&committed("containers-tmpfiles.conf"));
    let prom_cfg = generated_config(&host, "prometheus");
    let am_cfg = generated_config(&host, "alertmanager");
    for (tool, args, file) in [
        (
            "promtool",
            ["check", "config"].as_slice(),
            prom_cfg.join("prometheus.yml"),
        ),
        (
            "promtool",
            ["check", "rules"].as_slice(),
            prom_cfg.join("alerts.yml"),
        ),
        (
            "amtool",
            ["check-config"].as_slice(),
            am_cfg.join("alertmanager.yml"),
        ),
    ] {
        let out = Command::new(tool).args(args).arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let ns = Netns::new("mon");
    ns.add_address("10.99.0.10/32");
    let logs = host.tmp("log");

    let exporter_log = logs.join("node-exporter.log");
    let mut exporter = ns.start_as(
        65534,
        65534,
        "prometheus-node-exporter",
        &["--web.listen-address=10.99.0.10:9100".to_string()],
        &exporter_log,
    );
    wait_for("node-exporter", &mut exporter, &exporter_log, || {
        ns.get("http://10.99.0.10:9100/metrics")
            .is_some_and(|m| m.contains("node_boot_time_seconds"))
    });

    let (am_uid, am_gid, am_writes) = contract("alertmanager");
    let am_data = host.volume("alertmanager", &am_writes);
    let am_log = logs.join("alertmanager.log");
    let mut am = ns.start_as(
        am_uid,
        am_gid,
        "prometheus-alertmanager",
        &[
            format!(
                "--config.file={}",
                am_cfg.join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", am_data.display()),
            "--web.listen-address=127.0.0.1:9093".to_string(),
            "--cluster.listen-address=".to_string(),
        ],
        &am_log,
    );
    wait_for("alertmanager", &mut am, &am_log, || {
        ns.get("http://127.0.0.1:9093/-/ready").is_some()
    });
    let status = ns.get("http://127.0.0.1:9093/api/v2/status").unwrap();
    assert!(
        status.contains("ntfy"),
        "the generated route is loaded: {status}"
    );

    let (uid, gid, writes) = contract("prometheus");
    let data = host.volume("prometheus", &writes);
    let log = logs.join("prometheus.log");
    let mut prom = ns.start_as(
        uid,
        gid,
        "prometheus",
        &[
            format!(
                "--config.file={}",
                prom_cfg.join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", data.display()),
            "--web.listen-address=127.0.0.1:9090".to_string(),
        ],
        &log,
    );
    let query =
        "http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22node%22%2Chost%3D%22n250%22%7D";
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let body = ns.get(query).unwrap_or_default();
        if body.contains("\"value\":[") && body.contains("\"1\"]") {
            break;
        }
        if let Some(st) = prom.0.try_wait().unwrap() {
            panic!(
                "prometheus exited ({st}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < until,
            "n250's node target never came up: {body}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The rules file was loaded from beside the generated config.
    let rules = ns.get("http://127.0.0.1:9090/api/v1/rules").unwrap();
    assert!(rules.contains("HostDown"), "{rules}");
    assert!(
        owned_by(&data, uid) > 0,
        "prometheus wrote nothing as {uid}"
    );
    drop(prom);
    drop(am);
    drop(exporter);
}
