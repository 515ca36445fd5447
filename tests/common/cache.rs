//! A real binary cache for the testbed: a static cache directory written by
//! `nix copy --to file://DIR?compression=none[&secret-key=KEY]` (Nix's own
//! binary-cache format, signed by Nix's own key format from
//! `nix-store --generate-binary-cache-key`), served by a real nginx inside a
//! test host's network namespace, whose access log says what each host fetched.
//! And a host-specific nix.conf for a testbed host (substituters, keys,
//! extra-platforms). Everything started here is stopped on drop, by pid.
//!
//! The fleet cache double (`write_cache_fleet`, `generated`, `nixos_double`):
//! a testbed fleet with `[fleet.cache]` on one host, and what NixOS would make
//! of potato's generated configuration on every host, set up from `potato plan
//! --json` (tests/fleet_cache.rs, tests/bench_fleet.rs).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fleet::{Fleet, host_file};
use super::testbed::{TestHost, Testbed};

/// A signing key pair in Nix's format ("name:base64").
pub struct CacheKey {
    pub secret: PathBuf,
    pub public: String,
}

impl CacheKey {
    pub fn generate(dir: &Path, name: &str) -> CacheKey {
        let secret = dir.join(format!("{name}.sk"));
        let public = dir.join(format!("{name}.pk"));
        let out = Command::new("nix-store")
            .arg("--generate-binary-cache-key")
            .arg(name)
            .arg(&secret)
            .arg(&public)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        CacheKey {
            secret,
            public: std::fs::read_to_string(public).unwrap().trim().to_string(),
        }
    }
}

/// A static binary cache directory.
pub struct CacheDir {
    pub dir: PathBuf,
}

impl CacheDir {
    pub fn new(dir: PathBuf) -> CacheDir {
        std::fs::create_dir_all(&dir).unwrap();
        CacheDir { dir }
    }

    /// Copies `paths` (from the deployer's store) into the cache, signed with
    /// `key` when given, uncompressed so NAR sizes equal the bytes served.
    pub fn add(&self, paths: &[&str], key: Option<&CacheKey>) {
        let mut url = format!("file://{}?compression=none", self.dir.display());
        if let Some(k) = key {
            url.push_str(&format!("&secret-key={}", k.secret.display()));
        }
        let out = Command::new("nix")
            .args([
                "--extra-experimental-features",
                "nix-command",
                "copy",
                "--to",
                &url,
            ])
            .args(paths)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nix copy to the cache: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// nginx serving a directory inside a test host's network namespace.
pub struct Nginx {
    child: Child,
    pub log: PathBuf,
    pub port: u16,
}

impl Nginx {
    /// Serves `root` at 127.0.0.1:`port` (and the host's address) in `host`'s
    /// namespace; `work` holds its config, pid and logs.
    pub fn serve(host: &TestHost, root: &Path, work: &Path, port: u16) -> Nginx {
        Nginx::serve_on(host, root, work, std::slice::from_ref(&host.addr), port)
    }

    /// Serves `root` at 127.0.0.1:`port` and each of `addrs` in `host`'s
    /// namespace (e.g. the addresses a generated configuration says the cache
    /// listens on).
    pub fn serve_on(
        host: &TestHost,
        root: &Path,
        work: &Path,
        addrs: &[String],
        port: u16,
    ) -> Nginx {
        std::fs::create_dir_all(work).unwrap();
        let listen: String = addrs
            .iter()
            .map(|a| format!(" listen {a}:{port};"))
            .collect();
        let w = work.display();
        let log = work.join("access.log");
        let conf = work.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "user root;\nmaster_process off;\nworker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  log_format cache '$request_uri $status $body_bytes_sent $remote_addr';\n  access_log {w}/access.log cache;\n\
                 client_body_temp_path {w}/body; proxy_temp_path {w}/proxy; fastcgi_temp_path {w}/fcgi; uwsgi_temp_path {w}/uwsgi; scgi_temp_path {w}/scgi;\n\
                 server {{ listen 127.0.0.1:{port};{listen} root {root}; }}\n}}\n",
                root = root.display()
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &host.netns, "nginx", "-c"])
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let started = Instant::now();
        while !host
            .sh(&format!(
                "curl -s -o /dev/null http://127.0.0.1:{port}/nix-cache-info"
            ))
            .status
            .success()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not answer: {}",
                std::fs::read_to_string(work.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Nginx { child, log, port }
    }

    /// Freezes the server (SIGSTOP): its sockets still accept connections
    /// (the kernel completes them) but nothing is ever answered, as a hung
    /// web server. Drop still stops it (SIGKILL ends a stopped process).
    pub fn freeze(&self) {
        let ok = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "SIGSTOP to nginx");
    }

    /// (uri, bytes) of every NAR the server delivered (status 200) to a
    /// client at `addr`.
    pub fn nars_served_to(&self, addr: &str) -> Vec<(String, u64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let [uri, status, bytes, client] = w[..] else {
                    return None;
                };
                (uri.starts_with("/nar/") && status == "200" && client == addr)
                    .then(|| (uri.to_string(), bytes.parse().unwrap_or(0)))
            })
            .collect()
    }

    /// The request URIs the server answered with `status`.
    pub fn requests_with(&self, status: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (uri, st) = (w.next()?, w.next()?);
                (st == status).then(|| uri.to_string())
            })
            .collect()
    }

    /// (uri, bytes) of every NAR the server delivered (status 200).
    pub fn nars_served(&self) -> Vec<(String, u64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (uri, status, bytes) = (w.next()?, w.next()?, w.next()?);
                (uri.starts_with("/nar/") && status == "200")
                    .then(|| (uri.to_string(), bytes.parse().unwrap_or(0)))
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gives a testbed host its own nix.conf: the suite's (tests/nix) plus
/// `extra` lines, mounted over the suite's directory inside the host only.
pub fn host_nix_conf(host: &mut TestHost, dir: &Path, extra: &str) {
    let suite = std::env::var("NIX_CONF_DIR").expect("NIX_CONF_DIR (tests/run exports it)");
    std::fs::create_dir_all(dir).unwrap();
    let base = std::fs::read_to_string(format!("{suite}/nix.conf")).unwrap();
    std::fs::write(dir.join("nix.conf"), format!("{base}\n{extra}\n")).unwrap();
    host.spawn_sshd(&[(dir, suite.as_str())]);
}

/// The tunnel subnet the cache fleet's host files give (10.213.251.0/24:
/// inside the testbed range, never a slot's /24, which are 1..=250).
pub const CACHE_TUNNEL: &str = "10.213.251";

/// A WireGuard key's shape (44 characters of base64 for 32 bytes).
pub fn wg_key(i: usize) -> String {
    format!("cachetest{i:033}A=")
}

/// Writes the cache fleet: every testbed host in one tunnel
/// (`CACHE_TUNNEL`.0/24), host `cache` its hub at .1 with `[fleet.cache]`,
/// host i at .(i+2) with the hub as its peer; the signing key made by `potato
/// cache init`; then `potato gen`.
pub fn write_cache_fleet(tb: &Testbed, fleet: &Fleet, cache: usize) {
    let hub = &tb.hosts[cache];
    for (i, h) in tb.hosts.iter().enumerate() {
        fleet.set_secret(&h.name, "wg0", &wg_key(100 + i));
        let wg = if i == cache {
            format!(
                "\n[wireguard.wg0]\nprivate_key = \"secret:wg0\"\naddress = \"{CACHE_TUNNEL}.1/24\"\nlisten_port = 51820\nendpoint = \"{}.testbed.invalid:51820\"\npublic_key = \"{}\"\n\n[fleet.cache]\n",
                h.name,
                wg_key(i)
            )
        } else {
            format!(
                "\n[wireguard.wg0]\nprivate_key = \"secret:wg0\"\naddress = \"{CACHE_TUNNEL}.{}/24\"\npublic_key = \"{}\"\npeers = [\"{}\"]\n",
                i + 2,
                wg_key(i),
                hub.name
            )
        };
        // Several hosts at once on a shared two-core machine: a confirm
        // window the load cannot outlast (the cache is not about confirmation).
        let text = host_file(&h.addr, &tb.client_pub, &wg)
            .replace("confirm_timeout = \"10s\"", "confirm_timeout = \"90s\"");
        fleet.write_host(&h.name, &text);
    }
    fleet.potato(&["cache", "init"]).ok();
    fleet.potato(&["gen"]).ok();
}

/// What potato generated for the fleet cache (`potato plan <cache host>
/// --json`'s `cache`).
pub struct Generated {
    pub host: String,
    pub port: u16,
    pub dir: String,
    pub key_path: String,
    pub public_key: String,
    /// Nix's `connect-timeout` and `stalled-download-timeout` (seconds) the
    /// consumers' generated nix.settings carry.
    pub connect_timeout: u64,
    pub stalled_download_timeout: u64,
    /// Each consumer, by name.
    pub consumers: BTreeMap<String, CacheConsumer>,
}

/// How one consumer reaches the cache, as generated.
#[derive(Clone)]
pub struct CacheConsumer {
    /// The substituter entry of its nix.conf ("<url>?priority=<p>").
    pub substituter: String,
    /// Its own tunnel address.
    pub from: String,
    /// The cache host's tunnel address it reaches.
    pub via: String,
}

/// Reads `potato plan <cache_host> --json`'s `cache`.
pub fn generated(fleet: &Fleet, cache_host: &str) -> Generated {
    let run = fleet.potato(&["plan", cache_host, "--json"]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let c = &v["cache"];
    assert_eq!(c["host"], cache_host, "{c}");
    let priority = c["priority"].as_u64().unwrap();
    let consumers = c["consumers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, k)| {
            let s = |f: &str| k[f].as_str().unwrap().to_string();
            let consumer = CacheConsumer {
                substituter: format!("{}?priority={priority}", s("url")),
                from: s("from"),
                via: s("via"),
            };
            (name.clone(), consumer)
        })
        .collect();
    let s = |f: &str| c[f].as_str().unwrap().to_string();
    Generated {
        host: cache_host.to_string(),
        port: c["port"].as_u64().unwrap() as u16,
        dir: s("dir"),
        key_path: s("key_path"),
        public_key: s("public_key"),
        connect_timeout: c["connect_timeout"].as_u64().unwrap(),
        stalled_download_timeout: c["stalled_download_timeout"].as_u64().unwrap(),
        consumers,
    }
}

/// TEST DOUBLE of what NixOS makes of the generated configuration (`g`),
/// host `cache` serving the cache:
/// - the tunnel: a veth pair from the cache host to each consumer carrying
///   the two tunnel addresses (`from`, `via`), created inside the two
///   namespaces (removed with them): the cache's traffic never crosses the
///   deployer's links, as a real tunnel between two hosts of a LAN would not;
/// - each consumer's nix.conf: the generated substituter, trusted key and
///   timeouts (they override the suite's `connect-timeout`: later lines win);
/// - the cache host: the generated cache dir (a directory of the test bound
///   over it in the host's mount namespace), served by a real nginx on the
///   generated port and tunnel addresses.
///
/// Returns the web server and the served directory.
pub fn nixos_double(tb: &mut Testbed, g: &Generated, cache: usize) -> (Nginx, PathBuf) {
    let work = tb.dir.path().to_path_buf();
    let (cache_ns, cache_slot) = (tb.hosts[cache].netns.clone(), tb.hosts[cache].slot);
    let mut vias = Vec::new();
    for (i, host) in tb.hosts.iter_mut().enumerate() {
        if i == cache {
            continue;
        }
        let c = g.consumers[&host.name].clone();
        let (a, b) = (
            format!("pkc{cache_slot}x{}", host.slot),
            format!("pkc{}y", host.slot),
        );
        let (from, via) = (&c.from, &c.via);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip -n {cache_ns} link add {a} type veth peer name {b} netns {ns} \
                 && ip -n {cache_ns} addr add {via}/32 dev {a} && ip -n {cache_ns} link set {a} up \
                 && ip -n {cache_ns} route add {from}/32 dev {a} src {via} \
                 && ip -n {ns} addr add {from}/32 dev {b} && ip -n {ns} link set {b} up \
                 && ip -n {ns} route add {via}/32 dev {b} src {from}",
                ns = host.netns
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the tunnel double: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        vias.push(c.via.clone());
        let conf = format!(
            "substituters = {}\ntrusted-public-keys = {}\nconnect-timeout = {}\nstalled-download-timeout = {}",
            c.substituter, g.public_key, g.connect_timeout, g.stalled_download_timeout
        );
        let conf_dir = work.join(format!("{}-nix-conf", host.name));
        host_nix_conf(host, &conf_dir, &conf);
        // What Nix makes of that nix.conf (the suite's lines, then these):
        // the generated timeouts must be the ones in force.
        let shown = Command::new("nix")
            .args([
                "--extra-experimental-features",
                "nix-command",
                "show-config",
            ])
            .env("NIX_CONF_DIR", &conf_dir)
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        for want in [
            format!("connect-timeout = {}", g.connect_timeout),
            format!("stalled-download-timeout = {}", g.stalled_download_timeout),
        ] {
            assert!(
                shown.lines().any(|l| l == want),
                "{}'s Nix does not apply {want}",
                host.name
            );
        }
    }
    vias.sort();
    vias.dedup();
    // The generated cache dir, per test: the mount point exists on the
    // machine (an empty directory), the contents in the test's own dir.
    let served = work.join("cache-dir");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::create_dir_all(&g.dir).unwrap();
    tb.hosts[cache].spawn_sshd(&[(served.as_path(), g.dir.as_str())]);
    let nginx = Nginx::serve_on(
        &tb.hosts[cache],
        &served,
        &work.join("nginx"),
        &vias,
        g.port,
    );
    (nginx, served)
}
