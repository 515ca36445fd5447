//! The fleet's monitoring wiring: the generated Prometheus, rule and
//! Alertmanager files checked by the real `promtool` and `amtool`; every
//! validation error of `[roles] monitoring` with its location; what `potato
//! plan` says about the wiring; and, on namespaces, a real Prometheus on the
//! hub scraping real node-exporters through WireGuard tunnels built from the
//! generated wg0.conf files, a HostDown alert reaching a real Alertmanager
//! whose ntfy route posts to a test receiver, and the spokes' firewalls
//! refusing the exporter port to everyone but the hub.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::lab::{self, Probe, tcp_connect};
use common::{Repo, line_col};

/// "hosts/<file>:<line>:<col>" of the first occurrence of `needle` in that file.
fn at(repo: &Repo, file: &str, needle: &str) -> String {
    let (l, c) = line_col(&repo.read(file), needle);
    format!("{file}:{l}:{c}")
}

fn run_tool(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn hub_file(rel: &str) -> PathBuf {
    common::source_root()
        .join("modules/generated/n250/monitoring")
        .join(rel)
}

#[test]
fn generated_prometheus_and_alertmanager_files_pass_promtool_and_amtool() {
    if !common::have_tool("promtool") || !common::have_tool("amtool") {
        return;
    }
    let (ok, out) = run_tool(
        Command::new("promtool")
            .arg("check")
            .arg("config")
            .arg(hub_file("prometheus/prometheus.yml")),
    );
    assert!(ok, "{out}");
    let (ok, out) = run_tool(
        Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(hub_file("prometheus/alerts.yml")),
    );
    assert!(ok, "{out}");
    // One rule per required alert.
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
    let (ok, out) = run_tool(
        Command::new("amtool")
            .arg("check-config")
            .arg(hub_file("alertmanager/alertmanager.yml")),
    );
    assert!(ok, "{out}");
}

#[test]
fn prometheus_scrapes_every_host_over_its_tunnel_address() {
    let text = std::fs::read_to_string(hub_file("prometheus/prometheus.yml")).unwrap();
    let v: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let node = v["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "node")
        .expect("a node job");
    let mut targets: Vec<(String, String)> = node["static_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["labels"]["host"].as_str().unwrap().to_string(),
                c["targets"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    targets.sort();
    // The [wireguard.wg0] addresses of hosts/*.toml, port 9100.
    assert_eq!(
        targets,
        [
            ("lepotato".to_string(), "10.99.0.11:9100".to_string()),
            ("n250".into(), "10.99.0.10:9100".into()),
            ("pve-apps".into(), "10.99.0.12:9100".into()),
            ("pve-gateway".into(), "10.99.0.1:9100".into()),
        ]
    );
    // Alerts to pve-apps's ntfy (the only host running it), through ntfy's templates.
    let am = std::fs::read_to_string(hub_file("alertmanager/alertmanager.yml")).unwrap();
    let am: serde_json::Value = serde_norway::from_str(&am).unwrap();
    let url = am["receivers"][0]["webhook_configs"][0]["url"]
        .as_str()
        .unwrap();
    assert!(
        url.starts_with("https://ntfy.pve-apps.home.arpa/alerts?tpl=1&"),
        "{url}"
    );
    // Every host ships logs to the hub: its tunnel address, Loki's port.
    let alloy = std::fs::read_to_string(
        common::source_root().join("modules/generated/lepotato/monitoring/alloy.alloy"),
    )
    .unwrap();
    assert!(
        alloy.contains("url = \"http://10.99.0.10:3100/loki/api/v1/push\""),
        "{alloy}"
    );
}

#[test]
fn lepotato_runs_no_second_stack() {
    let text = std::fs::read_to_string(
        common::source_root().join("modules/generated/lepotato/containers.json"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for s in ["prometheus", "grafana", "alertmanager", "loki"] {
        assert!(v["containers"].get(s).is_none(), "{s} on lepotato");
    }
    assert!(
        !common::source_root()
            .join("modules/generated/lepotato/monitoring/prometheus")
            .exists()
    );
}

// ---------------------------------------------------------------------------
// Validation: each error at file:line:col.

#[test]
fn two_monitoring_hubs_name_both_places() {
    let r = Repo::examples();
    // pve-apps already has [roles] (identity = true): the claim goes first in it.
    r.edit(
        "hosts/pve-apps.toml",
        "[roles]\n",
        "[roles]\nmonitoring = true\n",
    );
    let run = r.potato(&["check"]);
    // pve-apps's file sorts after n250's: n250 is first, pve-apps the second.
    let second = at(&r, "hosts/pve-apps.toml", "true");
    run.invalid_at(
        &second,
        "a second monitoring hub: n250 already is the fleet's monitoring hub",
    );
    assert!(
        run.stderr.contains(&at(&r, "hosts/n250.toml", "true")),
        "{}",
        run.stderr
    );
}

#[test]
fn prometheus_without_a_hub_is_an_error() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "[roles]\nmonitoring = true",
        "[roles]\nmonitoring = false",
    );
    let loc = at(&r, "hosts/n250.toml", "\"prometheus\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`prometheus` runs on n250, but no host is the fleet's monitoring hub",
    );
}

/// node-exporter is configured only by modules/monitoring.nix (every host of
/// a fleet with a hub): listing the host agent without a hub is an error.
#[test]
fn node_exporter_without_a_hub_is_an_error() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "[roles]\nmonitoring = true",
        "[roles]\nmonitoring = false",
    );
    r.edit(
        "hosts/pve-apps.toml",
        "\"uptime-kuma\"]",
        "\"uptime-kuma\", \"node-exporter\"]",
    );
    let loc = at(&r, "hosts/pve-apps.toml", "\"node-exporter\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`node-exporter` runs on pve-apps as part of the fleet's monitoring, but no host is the monitoring hub",
    );
}

/// With a hub, listing it is allowed and adds nothing: no second exporter.
#[test]
fn node_exporter_listed_with_a_hub_changes_nothing() {
    let r = Repo::examples();
    let before = r.read("modules/generated/pve-apps/default.nix");
    r.edit(
        "hosts/pve-apps.toml",
        "\"uptime-kuma\"]",
        "\"uptime-kuma\", \"node-exporter\"]",
    );
    r.potato(&["gen", "pve-apps"]).ok();
    let after = r.read("modules/generated/pve-apps/default.nix");
    assert!(!after.contains("exporters.node"), "{after}");
    assert_eq!(before, after);
}

#[test]
fn a_second_stack_on_a_spoke_is_an_error() {
    let r = Repo::examples();
    r.edit(
        "hosts/lepotato.toml",
        "\"gitea\"]",
        "\"gitea\", \"prometheus\"]",
    );
    let loc = at(&r, "hosts/lepotato.toml", "\"prometheus\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`prometheus` runs on lepotato, but n250 is the fleet's monitoring hub",
    );
}

#[test]
fn the_hub_must_run_the_whole_stack() {
    let r = Repo::examples();
    r.edit("hosts/n250.toml", "\"alertmanager\", ", "");
    let loc = at(&r, "hosts/n250.toml", "true");
    r.potato(&["check"])
        .invalid_at(&loc, "the monitoring hub n250 does not run alertmanager");
}

#[test]
fn monitoring_settings_on_a_spoke_are_an_error() {
    let r = Repo::examples();
    let text = r.read("hosts/lepotato.toml") + "\n[monitoring]\nscrape_interval = \"15s\"\n";
    r.write("hosts/lepotato.toml", &text);
    let loc = at(&r, "hosts/lepotato.toml", "[monitoring]");
    r.potato(&["check"]).invalid_at(
        &loc,
        "[monitoring] settings on lepotato, which is not the monitoring hub",
    );
}

#[test]
fn a_host_without_a_tunnel_to_the_hub_is_an_error() {
    let r = Repo::examples();
    // pve-apps moves to a tunnel of its own, which the hub n250 is not on.
    let text = r.read("hosts/pve-apps.toml");
    let wg = text.find("[wireguard.wg0]").unwrap();
    let end = text[wg..].find("\n\n").unwrap() + wg;
    let mut edited = text[..wg].to_string();
    edited.push_str(
        "[wireguard.wg1]\naddress = \"10.98.0.12/24\"\nlisten_port = 51821\nprivate_key = \"secret:wg0\"\n",
    );
    edited.push_str(&text[end..]);
    r.write("hosts/pve-apps.toml", &edited);
    let loc = at(&r, "hosts/pve-apps.toml", "[wireguard.wg1]");
    r.potato(&["check"]).invalid_at(
        &loc,
        "pve-apps shares no WireGuard tunnel with the monitoring hub n250 (its tunnels: 10.99.0.0/24), so it cannot be scraped",
    );
}

#[test]
fn an_ntfy_url_with_credentials_is_an_error() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "[roles]\nmonitoring = true",
        "[roles]\nmonitoring = true\n\n[monitoring]\nntfy_url = \"https://me:pw@ntfy.example.net/alerts\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"https://me:pw");
    r.potato(&["check"]).invalid_at(&loc, "carries credentials");
}

#[test]
fn alerts_with_nowhere_to_go_are_an_error() {
    let r = Repo::examples();
    r.edit("hosts/pve-apps.toml", "\"ntfy\", ", "");
    let loc = at(&r, "hosts/n250.toml", "true");
    r.potato(&["check"]).invalid_at(
        &loc,
        "alerts have nowhere to go: no host runs ntfy and [monitoring] ntfy_url is not set",
    );
}

#[test]
fn a_host_rule_opening_the_exporter_beyond_the_hub_is_an_error() {
    let r = Repo::examples();
    r.edit(
        "hosts/lepotato.toml",
        "  \"allow 2222/tcp from lan\",\n",
        "  \"allow 2222/tcp from lan\",\n  \"allow 9100/tcp from wg\",\n",
    );
    let loc = at(&r, "hosts/lepotato.toml", "\"allow 9100/tcp from wg\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "rule `allow 9100/tcp from wg` opens node-exporter's port 9100 to wg, beyond the monitoring hub n250 (10.99.0.10/32)",
    );
}

#[test]
fn a_bad_scrape_interval_is_an_error() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "[roles]\nmonitoring = true",
        "[roles]\nmonitoring = true\n\n[monitoring]\nscrape_interval = \"1.5s\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"1.5s\"");
    r.potato(&["check"])
        .invalid_at(&loc, "is not a whole number of seconds");
}

// ---------------------------------------------------------------------------
// `potato plan`: the wiring.

fn folded(s: &str) -> String {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plan_shows_the_monitoring_wiring() {
    let r = Repo::examples();
    let spoke = r.potato(&["plan", "lepotato"]);
    spoke.ok();
    let out = folded(&spoke.stdout);
    for line in [
        "monitoring hub n250 (metrics and logs sink)",
        "sends metrics: node 10.99.0.11:9100, traefik 10.99.0.11:8082, scraped by n250 (only 10.99.0.10/32 may connect)",
        "logs: journal and containers, to n250 via http://10.99.0.10:3100/loki/api/v1/push",
        "receives nothing (monitoring is served by n250)",
    ] {
        assert!(out.contains(line), "{line:?} missing in:\n{out}");
    }
    let hub = r.potato(&["plan", "n250"]);
    hub.ok();
    let out = folded(&hub.stdout);
    for line in [
        "monitoring hub n250 (this host): Prometheus, Alertmanager, Grafana; logs sink: Loki",
        "alerts: to ntfy at https://ntfy.pve-apps.home.arpa/alerts",
        "node pve-gateway 10.99.0.1:9100",
        "node lepotato 10.99.0.11:9100",
        "logs from: lepotato (10.99.0.11), pve-apps (10.99.0.12), pve-gateway (10.99.0.1) and this host",
    ] {
        assert!(out.contains(line), "{line:?} missing in:\n{out}");
    }
}

// ---------------------------------------------------------------------------
// The live wiring on namespaces.

/// Processes and namespaces of the live test, stopped and removed on drop
/// (also when the test fails): children by pid, then whatever is left in each
/// namespace (wireguard-go daemons the test started), then the namespaces.
struct World {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let prefix = format!("pmon{}", std::process::id() % 100000);
        let dir = tempfile::tempdir().unwrap();
        let mut w = World {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        };
        let sw = w.ns("sw");
        sh_ok(&format!(
            "ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up"
        ));
        w
    }

    /// A namespace named PREFIX-name, with lo up.
    fn ns(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.prefix);
        sh_ok(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        self.namespaces.push(ns.clone());
        ns
    }

    /// A host namespace on the switch's bridge with `addr` (CIDR).
    fn host(&mut self, name: &str, addr: &str) -> String {
        let ns = self.ns(name);
        let sw = format!("{}-sw", self.prefix);
        sh_ok(&format!(
            "ip link add eth0 netns {ns} type veth peer name v{name} netns {sw} \
             && ip -n {sw} link set v{name} master br0 && ip -n {sw} link set v{name} up \
             && ip -n {ns} addr add {addr} dev eth0 && ip -n {ns} link set eth0 up"
        ));
        ns
    }

    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn stop(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh_ok(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "`{script}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory the image's user (65534, nobody) can write, as the real
/// prometheus, alertmanager and node-exporter images run.
fn nobody_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    sh_ok(&format!("chown 65534:65534 {}", path.display()));
}

/// Lets every user traverse the test's temporary directory.
fn open_dir(path: &Path) {
    sh_ok(&format!("chmod 0755 {}", path.display()));
}

fn decrypt_key(repo: &Path, host: &str) -> Vec<u8> {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(common::admin_identity())
        .arg(repo.join(format!("secrets/{host}/wg0.age")))
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `wg-quick up` of a generated wg0.conf in `ns`, with the key at
/// /run/potato-secrets/wg0 of a private /run under `run`.
fn wg_up(ns: &str, run: &Path, conf: &Path, key: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let secrets = run.join("potato-secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("wg0"), key).unwrap();
    std::fs::set_permissions(secrets.join("wg0"), std::fs::Permissions::from_mode(0o400)).unwrap();
    let copy = run.join("wg0.conf");
    std::fs::copy(conf, &copy).unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "unshare",
            "-m",
            "--propagation",
            "private",
        ])
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "mount --bind {} /run && exec wg-quick up {}",
            run.display(),
            copy.display()
        ))
        .env("WG_QUICK_USERSPACE_IMPLEMENTATION", "wireguard-go")
        .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
        // The daemon wireguard-go outlives wg-quick: give it no pipe that
        // closes under it.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success(), "wg-quick up in {ns} failed");
}

/// The example hosts' `public_key = "..."` line.
fn public_key(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("public_key = \""))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// What the test's ntfy stand-in received: (request line, body).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A test double of ntfy's publish endpoint: accepts HTTP POSTs on a listener
/// bound inside `ns`, records request line and body, answers 200 with a JSON
/// message as ntfy does (docs.ntfy.sh/publish: "the response is the JSON
/// message"). Returns the port.
fn ntfy_receiver(ns: &str, received: Received) -> u16 {
    let listener: TcpListener = lab::in_netns(ns, || TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break (String::new(), String::new());
                };
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = text[..end].to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let body =
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                        break (head, body);
                    }
                }
            };
            let line = head.lines().next().unwrap_or("").to_string();
            received.lock().unwrap().push((line, body));
            let reply = "{\"id\":\"test\",\"event\":\"message\",\"topic\":\"alerts\"}";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    port
}

/// GET on 127.0.0.1:port inside `ns`; the body parsed as JSON.
fn get_json(ns: &str, port: u16, path: &str) -> Option<serde_json::Value> {
    let path = path.to_string();
    lab::in_netns(ns, move || {
        let url = format!("http://127.0.0.1:{port}{path}");
        let resp = ureq::get(&url)
            .timeout(Duration::from_secs(3))
            .call()
            .ok()?;
        resp.into_json::<serde_json::Value>().ok()
    })
}

/// Prometheus's `up{job="node"}` by host.
fn up_by_host(ns: &str) -> Vec<(String, String)> {
    let Some(v) = get_json(ns, 9090, "/api/v1/query?query=up%7Bjob%3D%22node%22%7D") else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["metric"]["host"].as_str().unwrap_or("").to_string(),
                r["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The test fleet: the example hosts' names and WireGuard keys (their
/// secrets exist and are encrypted to them), with testbed addresses only:
/// underlay 10.213.252.0/24, tunnel 10.213.251.0/24.
fn test_fleet(ntfy_port: u16) -> Repo {
    let r = Repo::examples();
    let key = |h: &str| public_key(&r.read(&format!("hosts/{h}.toml")));
    let ssh = "authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp admin@laptop\"]";
    let common = |target: &str| {
        format!(
            "[deploy]\ntarget = \"root@{target}\"\n\n[zones]\nlan = [\"10.213.252.0/24\"]\nwg = [\"10.213.251.0/24\"]\n\n\
             [firewall]\nrules = [\"allow 22/tcp from lan\"]\n\n[ssh]\n{ssh}\n\n"
        )
    };
    let gateway = format!(
        "system = \"x86_64-linux\"\nhardware = \"n250\"\nmemory = \"1GiB\"\n\n{}\
         [wireguard.wg0]\naddress = \"10.213.251.1/24\"\nlisten_port = 51820\nendpoint = \"10.213.252.1:51820\"\n\
         private_key = \"secret:wg0\"\npublic_key = \"{}\"\n",
        common("10.213.252.1"),
        key("pve-gateway")
    );
    let hub = format!(
        "system = \"x86_64-linux\"\nhardware = \"n250\"\nmemory = \"16GiB\"\n\n\
         [roles]\nmonitoring = true\n\n\
         [monitoring]\nscrape_interval = \"1s\"\nhost_down_after = \"3s\"\nntfy_url = \"http://127.0.0.1:{ntfy_port}/alerts\"\n\n{}\
         [wireguard.wg0]\naddress = \"10.213.251.10/24\"\nprivate_key = \"secret:wg0\"\npublic_key = \"{}\"\npeers = [\"pve-gateway\"]\n\n\
         [containers]\nservices = [\"prometheus\", \"alertmanager\", \"grafana\", \"loki\"]\n",
        common("10.213.252.2"),
        key("n250")
    );
    let spoke = format!(
        "system = \"aarch64-linux\"\nhardware = \"lepotato\"\nmemory = \"2GiB\"\n\n{}\
         [wireguard.wg0]\naddress = \"10.213.251.11/24\"\nprivate_key = \"secret:wg0\"\npublic_key = \"{}\"\npeers = [\"pve-gateway\"]\n",
        common("10.213.252.3"),
        key("lepotato")
    );
    std::fs::remove_file(r.path().join("hosts/pve-apps.toml")).unwrap();
    r.write("hosts/pve-gateway.toml", &gateway);
    r.write("hosts/n250.toml", &hub);
    r.write("hosts/lepotato.toml", &spoke);
    r.potato(&["gen"]).ok();
    r
}

#[test]
fn a_real_prometheus_scrapes_three_hosts_through_the_tunnels_and_alerts_reach_ntfy() {
    if !lab::require() {
        return;
    }
    for tool in [
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-node-exporter",
        "wireguard-go",
        "wg-quick",
        "age",
        "setpriv",
    ] {
        if !common::have_tool(tool) {
            return;
        }
    }
    let mut w = World::new();
    let gw = w.host("gw", "10.213.252.1/24");
    let hub = w.host("hub", "10.213.252.2/24");
    let spoke = w.host("spoke", "10.213.252.3/24");
    let stranger = w.host("stranger", "10.213.252.4/24");
    let received: Received = Arc::default();
    let ntfy_port = ntfy_receiver(&hub, received.clone());
    let repo = test_fleet(ntfy_port);
    let generated = |h: &str, f: &str| repo.path().join(format!("modules/generated/{h}/{f}"));

    // Each host's generated firewall, as NixOS loads it; the WireGuard hub forwards.
    for (ns, h) in [(&gw, "pve-gateway"), (&hub, "n250"), (&spoke, "lepotato")] {
        let body = std::fs::read_to_string(generated(h, "firewall.nft")).unwrap();
        let file = w.path().join(format!("{h}.nft"));
        std::fs::write(&file, format!("table inet potato {{\n{body}}}\n")).unwrap();
        sh_ok(&format!("ip netns exec {ns} nft -f {}", file.display()));
    }
    sh_ok(&format!(
        "ip netns exec {gw} sysctl -qw net.ipv4.ip_forward=1"
    ));

    // The tunnels, from the generated wg0.conf files.
    open_dir(w.path());
    let mut runs = Vec::new();
    for (ns, h) in [(&gw, "pve-gateway"), (&hub, "n250"), (&spoke, "lepotato")] {
        let run = w.path().join(format!("run-{h}"));
        wg_up(
            ns,
            &run,
            &generated(h, "wg0.conf"),
            &decrypt_key(repo.path(), h),
        );
        runs.push(run);
    }

    // The spoke's textfile metrics (its generated script, real wg), then a
    // node-exporter as nobody on every host.
    let textfile = w.path().join("textfile-lepotato");
    std::fs::create_dir_all(&textfile).unwrap();
    open_dir(&textfile);
    let mut exporters = Vec::new();
    for (ns, h) in [(&gw, "pve-gateway"), (&hub, "n250"), (&spoke, "lepotato")] {
        let dir = w.path().join(format!("textfile-{h}"));
        std::fs::create_dir_all(&dir).unwrap();
        open_dir(&dir);
        let pid = w.spawn(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                ])
                .arg("prometheus-node-exporter")
                .arg("--web.listen-address=:9100")
                .arg(format!("--collector.textfile.directory={}", dir.display())),
        );
        exporters.push((h, pid));
    }
    // The tunnel needs a handshake before the script has one to report.
    wait_until(
        "hub reaches the spoke's exporter through the tunnel",
        Duration::from_secs(20),
        || tcp_connect(&hub, "10.213.251.11", 9100) == Probe::Open,
    );
    let script = generated("lepotato", "monitoring/textfile.sh");
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &spoke,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg(format!(
            "mount --bind {} /run && sh {} {}",
            runs[2].display(),
            script.display(),
            textfile.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus and Alertmanager on the hub, as nobody, with the generated
    // files as they are; "alertmanager" (its container name on the hub)
    // resolves to the hub's loopback through a private /etc/hosts.
    let conf = w.path().join("conf");
    for sub in ["prometheus", "alertmanager"] {
        common::copy(
            &generated("n250", &format!("monitoring/{sub}")),
            &conf.join(sub),
        );
        open_dir(&conf.join(sub));
    }
    open_dir(&conf);
    let hosts = w.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost alertmanager\n").unwrap();
    let (pdata, adata) = (
        w.path().join("prometheus-data"),
        w.path().join("alertmanager-data"),
    );
    nobody_dir(&pdata);
    nobody_dir(&adata);
    let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
    w.spawn(
        Command::new("ip")
            .args(["netns", "exec", &hub, "unshare", "-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {hosts} /etc/hosts && exec {nobody} prometheus --config.file={c}/prometheus/prometheus.yml \
                 --storage.tsdb.path={pdata} --web.listen-address=127.0.0.1:9090",
                hosts = hosts.display(),
                c = conf.display(),
                pdata = pdata.display()
            )),
    );
    w.spawn(
        Command::new("ip")
            .args(["netns", "exec", &hub])
            .args(nobody.split(' '))
            .arg("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}/alertmanager/alertmanager.yml",
                conf.display()
            ))
            .arg(format!("--storage.path={}", adata.display()))
            .arg("--web.listen-address=127.0.0.1:9093")
            .arg("--cluster.listen-address="),
    );

    // up == 1 for each of the three hosts, scraped through the tunnels.
    let all_up = vec![
        ("lepotato".to_string(), "1".to_string()),
        ("n250".into(), "1".into()),
        ("pve-gateway".into(), "1".into()),
    ];
    wait_until("up == 1 for every host", Duration::from_secs(60), || {
        up_by_host(&hub) == all_up
    });
    // The handshake metric from the textfile made it through: recent, not 0.
    let v = get_json(
        &hub,
        9090,
        "/api/v1/query?query=time()-potato_wireguard_latest_handshake_seconds%7Bhost%3D%22lepotato%22%7D",
    )
    .unwrap();
    let age: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("1e9")
        .parse()
        .unwrap();
    assert!(age < 300.0, "handshake age {age}: {v}");

    // The spoke's firewall: the exporter port to the hub's tunnel address only.
    assert_eq!(tcp_connect(&hub, "10.213.251.11", 9100), Probe::Open);
    assert_eq!(
        tcp_connect(&gw, "10.213.251.11", 9100),
        Probe::Dropped,
        "another tunnel peer"
    );
    assert_eq!(
        tcp_connect(&hub, "10.213.252.3", 9100),
        Probe::Dropped,
        "the hub over the LAN"
    );
    assert_eq!(
        tcp_connect(&stranger, "10.213.252.3", 9100),
        Probe::Dropped,
        "a LAN stranger"
    );
    assert_eq!(
        tcp_connect(&stranger, "10.213.252.1", 9100),
        Probe::Dropped,
        "the gateway, from the LAN"
    );

    // Stop the spoke's exporter: HostDown fires and reaches ntfy.
    assert!(
        received.lock().unwrap().is_empty(),
        "no alert before the outage"
    );
    let (_, pid) = exporters
        .iter()
        .find(|(h, _)| *h == "lepotato")
        .copied()
        .unwrap();
    w.stop(pid);
    wait_until(
        "HostDown for lepotato posted to ntfy",
        Duration::from_secs(90),
        || {
            received
                .lock()
                .unwrap()
                .iter()
                .any(|(_, body)| body.contains("HostDown") && body.contains("lepotato"))
        },
    );
    let got = received.lock().unwrap().clone();
    let (line, body) = got.iter().find(|(_, b)| b.contains("HostDown")).unwrap();
    assert!(line.starts_with("POST /alerts?tpl=1&t="), "{line}");
    let payload: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["commonLabels"]["alertname"], "HostDown");
    assert_eq!(payload["commonLabels"]["host"], "lepotato");
    // Only the stopped host is down.
    for (_, b) in &got {
        let p: serde_json::Value = serde_json::from_str(b).unwrap();
        for a in p["alerts"].as_array().unwrap() {
            if a["labels"]["alertname"] == "HostDown" {
                assert_eq!(a["labels"]["host"], "lepotato", "{b}");
            }
        }
    }
}
