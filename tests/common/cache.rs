//! A real binary cache for the testbed: a static cache directory written by
//! `nix copy --to file://DIR?compression=none[&secret-key=KEY]` (Nix's own
//! binary-cache format, signed by Nix's own key format from
//! `nix-store --generate-binary-cache-key`), served by a real nginx inside a
//! test host's network namespace, whose access log says what each host fetched.
//! And a host-specific nix.conf for a testbed host (substituters, keys,
//! extra-platforms). Everything started here is stopped on drop, by pid.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::testbed::TestHost;

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
