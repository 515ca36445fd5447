//! Deploy health checks: the `[[health]]` rules `potato check` enforces (each
//! error at file:line:col, locations computed from the edited text), and real
//! deploys to testbed hosts (own sshd, own Nix store, NixOS as the nixpkgs test
//! double) whose checks pass late, never pass, or probe a real podman container.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::Repo;
use common::fleet::Fleet;
use common::lab::in_netns;
use common::testbed::{self, TestHost, Testbed};

/// "FILE:LINE:COL" of the last occurrence of `needle` (the tests append).
fn at(repo: &Repo, file: &str, needle: &str) -> String {
    let text = repo.read(file);
    let from = text.rfind(needle).expect("needle in file");
    let before = &text[..from];
    let line = before.matches('\n').count() + 1;
    let col = from - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{file}:{line}:{col}")
}

/// The examples with `text` appended to a host file.
fn with_health(file: &str, text: &str) -> Repo {
    let r = Repo::examples();
    let body = r.read(file) + text;
    r.write(file, &body);
    r
}

// ---- validation -------------------------------------------------------------

#[test]
fn a_unit_that_would_read_as_a_systemctl_option_is_refused() {
    let r = with_health("hosts/n250.toml", "[[health]]\nunit = \"-H.service\"\n");
    let loc = at(&r, "hosts/n250.toml", "\"-H.service\"");
    r.potato(&["check"])
        .invalid_at(&loc, "`-H.service` starts with '-'");
}

#[test]
fn a_unit_must_look_like_a_systemd_unit_name() {
    for bad in [
        "traefik",
        "a b.service",
        "x;reboot.service",
        "podman-traefik.exe",
    ] {
        let r = with_health(
            "hosts/n250.toml",
            &format!("[[health]]\nunit = \"{bad}\"\n"),
        );
        let loc = at(&r, "hosts/n250.toml", &format!("\"{bad}\""));
        r.potato(&["check"])
            .invalid_at(&loc, &format!("`{bad}` is not a systemd unit name"));
    }
}

#[test]
fn an_http_check_on_a_port_nothing_publishes_is_refused() {
    // The check pve-apps shipped with: uptime-kuma's 3001 is reached through
    // Traefik, nothing publishes it on the host.
    let r = with_health(
        "hosts/pve-apps.toml",
        "[[health]]\nhttp = \"http://127.0.0.1:3001/\"\n",
    );
    let loc = at(&r, "hosts/pve-apps.toml", "\"http://127.0.0.1:3001/\"");
    let run = r.potato(&["check"]);
    run.invalid_at(
        &loc,
        "nothing on pve-apps listens on tcp port 3001, so `http://127.0.0.1:3001/` can never pass",
    );
    assert!(
        run.stderr.contains("22 (sshd)") && run.stderr.contains("443 (traefik)"),
        "the hint lists what listens: {}",
        run.stderr
    );
}

#[test]
fn a_tcp_check_on_a_port_nothing_listens_on_is_refused() {
    let r = with_health(
        "hosts/pve-gateway.toml",
        "[[health]]\ntcp = \"127.0.0.1:443\"\n",
    );
    let loc = at(&r, "hosts/pve-gateway.toml", "\"127.0.0.1:443\"");
    r.potato(&["check"])
        .invalid_at(&loc, "nothing on pve-gateway listens on tcp port 443");
    // WireGuard's 51820 is UDP: no TCP check can pass there either.
    let r = with_health(
        "hosts/pve-gateway.toml",
        "[[health]]\ntcp = \"127.0.0.1:51820\"\n",
    );
    let loc = at(&r, "hosts/pve-gateway.toml", "\"127.0.0.1:51820\"");
    r.potato(&["check"])
        .invalid_at(&loc, "listens on tcp port 51820");
}

#[test]
fn a_check_on_another_machine_is_refused() {
    let r = with_health(
        "hosts/n250.toml",
        "[[health]]\ntcp = \"192.168.178.41:443\"\n",
    );
    let loc = at(&r, "hosts/n250.toml", "\"192.168.178.41:443\"");
    r.potato(&["check"])
        .invalid_at(&loc, "`192.168.178.41` is not an address of this host");
}

#[test]
fn checks_on_what_the_host_listens_on_are_accepted() {
    // sshd's port, Traefik's published 443, a route Traefik answers, the
    // deploy address, and a container the host runs.
    let r = with_health(
        "hosts/n250.toml",
        "[[health]]\ntcp = \"localhost:22\"\n\
         [[health]]\nhttp = \"https://grafana.n250.home.arpa/\"\n\
         [[health]]\ntcp = \"192.168.178.40:80\"\n\
         [[health]]\ncontainer = \"traefik\"\n",
    );
    r.potato(&["check"]).ok();
}

#[test]
fn a_container_check_names_a_container_the_host_runs() {
    let r = with_health("hosts/n250.toml", "[[health]]\ncontainer = \"grafanna\"\n");
    let loc = at(&r, "hosts/n250.toml", "\"grafanna\"");
    r.potato(&["check"])
        .invalid_at(&loc, "container `grafanna` is not a service this host runs")
        .invalid_at(&loc, "did you mean \"grafana\"?");
    let r = with_health(
        "hosts/pve-gateway.toml",
        "[[health]]\ncontainer = \"traefik\"\n",
    );
    let loc = at(&r, "hosts/pve-gateway.toml", "\"traefik\"");
    r.potato(&["check"])
        .invalid_at(&loc, "container `traefik`: this host runs no containers");
}

#[test]
fn one_kind_per_check() {
    let r = with_health(
        "hosts/n250.toml",
        "[[health]]\ncontainer = \"traefik\"\nunit = \"podman-traefik.service\"\n",
    );
    let loc = at(&r, "hosts/n250.toml", "[[health]]");
    r.potato(&["check"]).invalid_at(
        &loc,
        "a health check needs exactly one of unit, tcp, http, container",
    );
}

#[test]
fn a_check_that_cannot_finish_inside_the_confirm_timeout_is_refused() {
    // n250: confirm_timeout 30s, of which 3s are kept for the confirmation.
    let r = with_health(
        "hosts/n250.toml",
        "[[health]]\ncontainer = \"traefik\"\ngrace = \"20s\"\nretries = 5\ninterval = \"2s\"\n",
    );
    let loc = at(&r, "hosts/n250.toml", "\"20s\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "this check can take 20s grace + 5 retries × 2s = 30s, more than the 27s the confirm timeout (30s) leaves",
    );
    // The hint names the confirm timeout that would fit.
    let run = r.potato(&["check"]);
    assert!(
        run.stderr.contains("confirm_timeout = \"33s\""),
        "{}",
        run.stderr
    );

    // Without grace, the error lands on what was set.
    let r = with_health(
        "hosts/n250.toml",
        "[[health]]\ncontainer = \"traefik\"\nretries = 20\ninterval = \"2s\"\n",
    );
    let loc = at(&r, "hosts/n250.toml", "20\ninterval");
    r.potato(&["check"])
        .invalid_at(&loc, "= 40s, more than the 27s");

    // Exactly the room left fits.
    let r = with_health(
        "hosts/n250.toml",
        "[[health]]\ncontainer = \"traefik\"\ngrace = \"17s\"\nretries = 5\ninterval = \"2s\"\n",
    );
    r.potato(&["check"]).ok();
}

#[test]
fn timing_values_out_of_range_are_refused() {
    let cases = [
        ("retries = 0\n", "0\n", "retries = 0 is out of range"),
        ("retries = 21\n", "21\n", "retries = 21 is out of range"),
        (
            "interval = \"2m\"\n",
            "\"2m\"",
            "interval 2m is out of range",
        ),
        (
            "interval = \"soon\"\n",
            "\"soon\"",
            "`soon` is not a duration",
        ),
        ("grace = \"-1s\"\n", "\"-1s\"", "`-1s` is not a duration"),
        ("grace = \"2h\"\n", "\"2h\"", "grace 2h is out of range"),
    ];
    for (line, needle, message) in cases {
        let r = with_health(
            "hosts/lepotato.toml",
            &format!("[[health]]\ncontainer = \"traefik\"\n{line}"),
        );
        let loc = at(&r, "hosts/lepotato.toml", needle);
        r.potato(&["check"]).invalid_at(&loc, message);
    }
}

#[test]
fn defaults_and_settings_reach_the_deploy_metadata() {
    // The default grace is what the confirm timeout leaves after the retries,
    // at most 20s: n250 has 30s → min(20, 30 - 3 - 3 × 2) = 20; with 12s it is 3.
    let r = with_health(
        "hosts/n250.toml",
        "[[health]]\ncontainer = \"traefik\"\ngrace = \"7s\"\nretries = 4\ninterval = \"3s\"\n",
    );
    r.potato(&["gen"]).ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.read("modules/generated/n250/deploy.json")).unwrap();
    let h = v["health"].as_array().unwrap();
    assert_eq!(h[0]["unit"], "podman-traefik.service");
    assert_eq!(
        (
            h[0]["grace_secs"].as_u64(),
            h[0]["retries"].as_u64(),
            h[0]["interval_secs"].as_u64()
        ),
        (Some(20), Some(3), Some(2))
    );
    let last = h.last().unwrap();
    assert_eq!(last["container"], "traefik");
    assert_eq!(
        (
            last["grace_secs"].as_u64(),
            last["retries"].as_u64(),
            last["interval_secs"].as_u64()
        ),
        (Some(7), Some(4), Some(3))
    );

    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "confirm_timeout = \"30s\"",
        "confirm_timeout = \"12s\"",
    );
    r.potato(&["gen"]).ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.read("modules/generated/n250/deploy.json")).unwrap();
    assert_eq!(v["health"][0]["grace_secs"], 3);
}

// ---- testbed deploys ---------------------------------------------------------

/// A testbed host file with Traefik (it publishes 80 and 443, so checks on
/// them are valid) and a 20s confirm timeout, plus `extra`.
fn host_with_traefik(fleet: &Fleet, name: &str, extra: &str) {
    let text = fleet
        .read_host(name)
        .replace("confirm_timeout = \"10s\"", "confirm_timeout = \"20s\"");
    // ACME TLS: a testbed fleet has no fleet CA (tests/pki.rs covers internal TLS).
    let text = format!(
        "{text}\n[proxy]\ntls = \"acme\"\nemail = \"ops@example.net\"\n\n[containers]\nservices = [\"traefik\"]\n{extra}"
    );
    fleet.write_host(name, &text);
    let run = fleet.potato(&["gen"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// Accepts TCP connections on `port` inside `netns`, from `after` on, until
/// dropped; counts the connections.
struct LateListener {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LateListener {
    /// Listens `delay` after the host's next activation (the test double logs
    /// each to /nix/var/potato-test/activations): a service that comes up
    /// late, seen by a deploy's health checks as refused first.
    fn after_next_activation(host: &TestHost, port: u16, delay: Duration) -> LateListener {
        let log = host.dir.join("nix/var/potato-test/activations");
        let count = |p: &PathBuf| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let before = count(&log);
        let mut activated: Option<Instant> = None;
        LateListener::when(&host.netns, port, b"ok\n", move || {
            if activated.is_none() && count(&log) > before {
                activated = Some(Instant::now());
            }
            activated.is_some_and(|t| t.elapsed() >= delay)
        })
    }

    /// Listens at once, writing `reply` to each connection (after reading its
    /// request when it is an HTTP reply).
    fn answering(netns: &str, port: u16, reply: &'static [u8]) -> LateListener {
        LateListener::when(netns, port, reply, || true)
    }

    /// Listens once `ready` (polled) says so.
    fn when(
        netns: &str,
        port: u16,
        reply: &'static [u8],
        mut ready: impl FnMut() -> bool + Send + 'static,
    ) -> LateListener {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU32::new(0));
        let (s, a, ns) = (stop.clone(), accepted.clone(), netns.to_string());
        let thread = std::thread::spawn(move || {
            while !ready() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let l = in_netns(&ns, move || {
                TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).expect("bind")
            });
            l.set_nonblocking(true).unwrap();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        if reply.starts_with(b"HTTP/") {
                            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                            let _ = std::io::Read::read(&mut c, &mut [0u8; 4096]);
                        }
                        let _ = c.write_all(reply);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        LateListener {
            stop,
            accepted,
            thread: Some(thread),
        }
    }
}

impl Drop for LateListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_check_that_passes_only_after_a_delay_ends_in_a_confirmed_deploy() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    // Failures in the first 8s do not count; one failure after that would.
    host_with_traefik(
        &fleet,
        "t0",
        "\n[[health]]\ntcp = \"127.0.0.1:443\"\ngrace = \"8s\"\nretries = 1\ninterval = \"1s\"\n",
    );
    let host = tb.host(0);
    // The same check without the grace period fails on its first refusal.
    let strict = fleet
        .read_host("t0")
        .replace("grace = \"8s\"", "grace = \"0s\"");
    let graceful = fleet.read_host("t0");
    fleet.write_host("t0", &strict);
    assert_eq!(fleet.potato(&["gen"]).code, 0);
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["t0"]["result"], "rolled-back", "{}", r["t0"]);
    fleet.write_host("t0", &graceful);
    assert_eq!(fleet.potato(&["gen"]).code, 0);

    // The "service" starts listening 4s after the activation.
    let listener = LateListener::after_next_activation(host, 443, Duration::from_secs(4));
    let began = Instant::now();
    // Plain (not --json) with -v: the engine's log lines reach stderr.
    let run = fleet.potato(&["deploy", "t0", "-v"]);
    let took = began.elapsed();
    run.ok();
    let stderr = run.stderr;
    assert_eq!(host.current_generation(), Some(2));
    assert!(
        !stderr.contains("(1 attempt)"),
        "the check was refused before it passed: {stderr}"
    );
    assert!(
        listener.accepted.load(Ordering::SeqCst) >= 1,
        "the check connected to the listener"
    );
    assert!(
        took >= Duration::from_secs(4),
        "the deploy waited for it: {took:?}"
    );
    assert!(
        stderr.contains("health check `tcp 127.0.0.1:443` passed after"),
        "{stderr}"
    );
}

#[test]
fn a_check_that_never_passes_rolls_back_and_names_the_check() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let top1 = r["t0"]["store_path"].as_str().unwrap().to_string();
    host_with_traefik(
        &fleet,
        "t0",
        "\n[[health]]\ntcp = \"127.0.0.1:443\"\ngrace = \"2s\"\nretries = 2\ninterval = \"1s\"\n",
    );
    let began = Instant::now();
    let (code, r, _) = fleet.deploy(&["t0"]);
    let took = began.elapsed();
    assert_eq!(code, 1);
    let res = &r["t0"];
    assert_eq!(res["result"], "rolled-back", "{res}");
    let err = res["error"].as_str().unwrap();
    assert!(
        err.contains(
            "health check `tcp 127.0.0.1:443` failed: nothing accepts TCP connections on 127.0.0.1:443 (Connection refused)"
        ),
        "{err}"
    );
    // Two counted failures after a 2s grace: attempts at 0, 1, 2 (grace's end), 3.
    assert!(err.contains("4 attempts"), "{err}");
    assert!(
        err.contains("the host says: rolled back (health check `tcp 127.0.0.1:443` failed"),
        "the watchdog's reason names the check too: {err}"
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert_eq!(tb.host(0).current_generation(), Some(1));
    assert_eq!(tb.host(0).current_system(), top1);
}

#[test]
fn an_http_check_needs_a_success_status() {
    if !testbed::require() || !common::have_tool("curl") {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    host_with_traefik(
        &fleet,
        "t0",
        "\n[[health]]\nhttp = \"http://127.0.0.1/ping\"\ngrace = \"0s\"\nretries = 2\ninterval = \"1s\"\n\
         [[health]]\nhttp = \"http://ping.t0.home.arpa/ping\"\ngrace = \"0s\"\nretries = 2\ninterval = \"1s\"\n",
    );
    let host = tb.host(0);
    {
        let _server = LateListener::answering(
            &host.netns,
            80,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let (code, r, _) = fleet.deploy(&["t0"]);
        assert_eq!(code, 1, "{r}");
        let err = r["t0"]["error"].as_str().unwrap();
        assert!(
            err.contains("health check `http http://127.0.0.1/ping` failed: http://127.0.0.1/ping does not answer with success (curl: (22)")
                && err.contains("503"),
            "{err}"
        );
    }
    let server = LateListener::answering(
        &host.netns,
        80,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(r["t0"]["result"], "deployed", "{}", r["t0"]);
    // Both checks reached the listener: the one naming a Traefik route too,
    // though no DNS in the test host knows ping.t0.home.arpa.
    assert!(server.accepted.load(Ordering::SeqCst) >= 2);
}

/// The test host's own podman: private container storage, its /run, and the
/// cgroup hierarchies a real host has (`ip netns exec` hides the machine's
/// /sys/fs/cgroup). Containers are removed on drop.
struct HostPodman {
    netns: String,
    run: PathBuf,
    storage: PathBuf,
}

impl HostPodman {
    /// Restarts `host`'s sshd so its sessions (the agent) see this podman.
    fn install(host: &mut TestHost) -> HostPodman {
        let storage = host.dir.join("containers");
        std::fs::create_dir_all(&storage).unwrap();
        let cgroups = host.dir.join("cgroups.sh");
        std::fs::write(&cgroups, cgroup_mounts()).unwrap();
        host.spawn_sshd_after(
            &[(&storage, "/var/lib/containers")],
            &format!("sh -e {}", cgroups.display()),
        );
        let p = HostPodman {
            netns: host.netns.clone(),
            run: host.dir.join("run"),
            storage,
        };
        // The image: Debian's static busybox (TEST DOUBLE of an app image; only
        // the container's state and health check matter here).
        let root = host.dir.join("image");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
        p.sh(&format!(
            "tar -C {} -c . | podman import - localhost/busybox:test >/dev/null",
            root.display()
        ));
        p
    }

    /// Runs `script` in the host's network namespace with its /run, container
    /// storage and the machine's /sys (nsenter keeps it).
    fn sh(&self, script: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["unshare", "-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /run && mount --bind {} /var/lib/containers && {script}",
                self.run.display(),
                self.storage.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman run -d --name NAME` of the busybox image with `args`, running `cmd`.
    fn run(&self, name: &str, args: &str, cmd: &str) {
        self.sh(&format!(
            "podman run -d --name {name} --runtime runc --network none \
             --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 {args} \
             localhost/busybox:test /bin/busybox sh -c '{cmd}' >/dev/null 2>&1"
        ));
    }

    fn remove_all(&self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["unshare", "-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /run && mount --bind {} /var/lib/containers && podman rm -af -t 0 >/dev/null 2>&1",
                self.run.display(),
                self.storage.display()
            ))
            .output();
    }
}

impl Drop for HostPodman {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Shell lines that mount the machine's cgroup hierarchies again (same types and
/// options), for a mount namespace where `ip netns exec` replaced /sys.
fn cgroup_mounts() -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let mut out = String::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || !f[1].starts_with("/sys/fs/cgroup") {
            continue;
        }
        match f[2] {
            "tmpfs" => out.push_str(&format!("mount -t tmpfs -o mode=755 tmpfs {}\n", f[1])),
            "cgroup" | "cgroup2" => out.push_str(&format!(
                "mkdir -p {p}\nmount -t {t} -o {o} {t} {p}\n",
                p = f[1],
                t = f[2],
                o = f[3]
            )),
            _ => {}
        }
    }
    out
}

/// podman with the runc runtime, and nsenter (shared/TESTBED.md "Containers").
fn podman_available() -> bool {
    ["podman", "runc", "nsenter"]
        .iter()
        .all(|t| common::have_tool(t))
}

#[test]
fn container_checks_against_real_podman() {
    if !testbed::require() || !podman_available() {
        return;
    }
    let mut tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let podman = HostPodman::install(&mut tb.hosts[0]);
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let top1 = r["t0"]["store_path"].as_str().unwrap().to_string();
    let quick =
        "\n[[health]]\ncontainer = \"traefik\"\ngrace = \"0s\"\nretries = 2\ninterval = \"1s\"\n";
    host_with_traefik(&fleet, "t0", quick);

    // No such container: rolled back, and the message says so.
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["t0"]["result"], "rolled-back", "{}", r["t0"]);
    let err = r["t0"]["error"].as_str().unwrap();
    assert!(
        err.contains(
            "health check `container traefik` failed: container traefik: no such container traefik"
        ),
        "{err}"
    );
    assert_eq!(tb.host(0).current_system(), top1);

    // Running, but its health check fails: unhealthy.
    podman.run(
        "traefik",
        "--health-cmd 'exit 1' --health-retries 1 --health-interval 30s",
        "sleep 600",
    );
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1, "{r}");
    let err = r["t0"]["error"].as_str().unwrap();
    assert!(
        err.contains("health check `container traefik` failed: container traefik is running, health unhealthy"),
        "{err}"
    );
    assert_eq!(tb.host(0).current_system(), top1);

    // Exited: its state is named.
    podman.sh("podman rm -f -t 0 traefik >/dev/null");
    podman.run("traefik", "", "exit 3");
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1, "{r}");
    let err = r["t0"]["error"].as_str().unwrap();
    assert!(err.contains("container traefik is exited"), "{err}");

    // A container whose health check passes only after 4s, with a grace period
    // that covers it: confirmed.
    podman.sh("podman rm -f -t 0 traefik >/dev/null");
    let text = fleet.read_host("t0").replace(
        quick,
        "\n[[health]]\ncontainer = \"traefik\"\ngrace = \"10s\"\nretries = 1\ninterval = \"1s\"\n",
    );
    fleet.write_host("t0", &text);
    assert_eq!(fleet.potato(&["gen"]).code, 0);
    podman.run(
        "traefik",
        "--health-cmd 'test -e /ready' --health-interval 30s --health-start-period 60s",
        "/bin/busybox sleep 4; /bin/busybox mkdir -p /ready; exec /bin/busybox sleep 600",
    );
    let run = fleet.potato(&["deploy", "t0", "-v"]);
    run.ok();
    let stderr = run.stderr;
    assert!(
        stderr.contains("health check `container traefik` passed after"),
        "{stderr}"
    );
    let health = podman.sh("podman inspect --format '{{.State.Health.Status}}' traefik");
    assert_eq!(health.trim(), "healthy");

    // A container without a health check passes while it runs.
    podman.sh("podman rm -f -t 0 traefik >/dev/null");
    podman.run("traefik", "", "exec /bin/busybox sleep 600");
    let text = fleet
        .read_host("t0")
        .replace("grace = \"10s\"", "grace = \"9s\"");
    fleet.write_host("t0", &text);
    assert_eq!(fleet.potato(&["gen"]).code, 0);
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(r["t0"]["result"], "deployed", "{}", r["t0"]);
}
