//! The testbed: hosts as network namespaces, each with its own sshd, host key,
//! Nix store (/nix) and /run, reachable from the test at 10.213.<slot>.2.
//! Built from shared/TESTBED.md. Everything a testbed creates is removed on drop
//! (processes by pid and by namespace, namespaces, veths, directories), also when
//! the test fails.

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A host's own cache directory (root's ~/.cache on a real host): under its
/// /run, which is the host's own (a bind mount of its directory), so Nix's
/// narinfo disk cache is per host, as on real machines.
const HOST_CACHE_HOME: &str = "/run/potato-testbed-cache-home";

const SLOT_DIR: &str = "/tmp/potato-testbed-slots";

/// A set of test hosts plus the client key and known_hosts that reach them.
pub struct Testbed {
    pub dir: tempfile::TempDir,
    pub hosts: Vec<TestHost>,
    pub client_key: PathBuf,
    pub client_pub: String,
    pub known_hosts: PathBuf,
}

pub struct TestHost {
    pub name: String,
    pub slot: u32,
    pub netns: String,
    pub veth: String,
    pub dir: PathBuf,
    pub addr: String,
    sshd: Option<Child>,
    slot_file: PathBuf,
}

/// Why a testbed cannot be built here, or None when it can.
pub fn unavailable() -> Option<String> {
    if unsafe_geteuid() != 0 {
        return Some("not root (network namespaces need root)".into());
    }
    for tool in [
        "ip",
        "unshare",
        "ssh-keygen",
        "nix-store",
        "nft",
        "flock",
        "setsid",
    ] {
        if !Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("/usr/sbin/sshd is not installed (openssh-server)".into());
    }
    None
}

fn unsafe_geteuid() -> u32 {
    // `id -u` avoids a libc dependency in tests.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(1)
}

/// Skips (locally, with a message) or fails (in CI) when the testbed is impossible.
pub fn require() -> bool {
    match unavailable() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("the testbed is required in CI: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED: testbed unavailable: {why}");
            false
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh(script: &str) {
    run(Command::new("sh").arg("-c").arg(script));
}

/// Claims a free slot number (1..=250) across every test process on the machine;
/// the caller removes the returned file when done. A namespace of its own on a
/// slot is named `potato-t<slot>` (so a crashed run's slot is skipped).
pub fn claim_slot() -> (u32, PathBuf) {
    std::fs::create_dir_all(SLOT_DIR).unwrap();
    for n in 1..=250u32 {
        let f = Path::new(SLOT_DIR).join(n.to_string());
        if OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&f)
            .is_ok()
        {
            // A slot whose namespace still exists belongs to a crashed run: skip it.
            if Path::new(&format!("/run/netns/potato-t{n}")).exists() {
                continue;
            }
            return (n, f);
        }
    }
    panic!("no free testbed slot in {SLOT_DIR}");
}

impl Testbed {
    pub fn new(count: usize) -> Testbed {
        let dir = tempfile::tempdir().unwrap();
        let client_key = dir.path().join("client_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "potato-test", "-f"])
            .arg(&client_key));
        let client_pub = std::fs::read_to_string(client_key.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        let known_hosts = dir.path().join("known_hosts");
        let mut tb = Testbed {
            dir,
            hosts: Vec::new(),
            client_key,
            client_pub,
            known_hosts,
        };
        let mut kh = String::new();
        for i in 0..count {
            let host = TestHost::start(&format!("t{i}"), tb.dir.path(), &tb.client_pub);
            kh.push_str(&format!("{} {}\n", host.addr, host.public_key()));
            tb.hosts.push(host);
        }
        std::fs::write(&tb.known_hosts, kh).unwrap();
        tb
    }

    pub fn host(&self, i: usize) -> &TestHost {
        &self.hosts[i]
    }
}

impl TestHost {
    fn start(name: &str, base: &Path, client_pub: &str) -> TestHost {
        let (slot, slot_file) = claim_slot();
        let netns = format!("potato-t{slot}");
        let veth = format!("ptb{slot}");
        let dir = base.join(name);
        for d in ["nix", "run/sshd", "etc/ssh"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let mut host = TestHost {
            name: name.into(),
            slot,
            netns: netns.clone(),
            veth: veth.clone(),
            dir: dir.clone(),
            addr: format!("10.213.{slot}.2"),
            sshd: None,
            slot_file,
        };
        sh(&format!(
            "ip netns add {netns} && ip link add {veth} type veth peer name {veth}h && ip link set {veth}h netns {netns} \
             && ip addr add 10.213.{slot}.1/24 dev {veth} && ip link set {veth} up \
             && ip -n {netns} addr add 10.213.{slot}.2/24 dev {veth}h && ip -n {netns} link set {veth}h up && ip -n {netns} link set lo up"
        ));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join("etc/ssh/ssh_host_ed25519_key")));
        std::fs::write(dir.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
        host.write_sshd_config("");
        host.spawn_sshd(&[]);
        host
    }

    /// Writes the host's /etc/ssh/sshd_config: `first` (lines that must win),
    /// then the example fleet's generated SSH baseline (sshd takes the first
    /// value of each keyword), then what the testbed itself needs. So every test
    /// that reaches a testbed host does so through the hardened sshd.
    pub fn write_sshd_config(&self, first: &str) {
        let d = self.dir.display();
        let baseline = super::source_root().join("modules/generated/n250/sshd_config");
        // A real host reads its own /etc/nix; a testbed host shares the machine's,
        // so its sessions get the suite's Nix configuration (tests/run) instead.
        // Each host also keeps its own ~/.cache (Nix's narinfo answers: a real
        // host remembers which paths its caches lack), not the machine's shared
        // one. One SetEnv line: sshd takes the first.
        let nix_conf = std::env::var("NIX_CONF_DIR")
            .map(|d| format!(" NIX_CONF_DIR={d}"))
            .unwrap_or_default();
        let nix_conf = format!("SetEnv XDG_CACHE_HOME={HOST_CACHE_HOME}{nix_conf}\n");
        std::fs::write(
            self.dir.join("etc/ssh/sshd_config"),
            format!(
                "{first}Include {}\n\
                 Port 22\nListenAddress {}\nListenAddress 127.0.0.1\nHostKey /etc/ssh/ssh_host_ed25519_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
                 UsePAM no\nStrictModes no\nMaxStartups 100\n{nix_conf}",
                baseline.display(),
                self.addr
            ),
        )
        .unwrap();
    }

    /// Lets this host forward TCP (a ProxyJump hop), overriding the baseline.
    pub fn allow_tcp_forwarding(&mut self) {
        self.write_sshd_config("AllowTcpForwarding yes\n");
        self.spawn_sshd(&[]);
    }

    /// Starts this host's sshd in its namespaces, with extra bind mounts
    /// (source on the test machine, target inside the host), and waits for it.
    pub fn spawn_sshd(&mut self, binds: &[(&Path, &str)]) {
        self.spawn_sshd_after(binds, "true");
    }

    /// Like `spawn_sshd`, running `setup` (shell, as root, in the host's mount
    /// namespace) before sshd starts: mounts that every session sees.
    pub fn spawn_sshd_after(&mut self, binds: &[(&Path, &str)], setup: &str) {
        self.stop_sshd();
        let d = self.dir.display();
        let mut mounts = format!(
            "mount --bind {d}/nix /nix && mount --bind {d}/run /run && mount --bind {d}/etc/ssh /etc/ssh"
        );
        for (src, dst) in binds {
            mounts.push_str(&format!(" && mount --bind {} {dst}", src.display()));
        }
        let child = self
            .enter(&format!(
                "{mounts} && {setup} && exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        self.sshd = Some(child);
        let addr: SocketAddr = format!("{}:22", self.addr).parse().unwrap();
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd on {} did not come up",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Slows the link from the deployer to this host (a LAN instead of loopback).
    pub fn limit_rate(&self, rate: &str) {
        sh(&format!(
            "tc qdisc replace dev {} root tbf rate {rate} burst 32kbit latency 400ms",
            self.veth
        ));
    }

    /// Whether `path` is valid in the host's own store.
    pub fn has_path(&self, path: &str) -> bool {
        self.sh(&format!("nix-store --check-validity {path}"))
            .status
            .success()
    }

    /// Bytes the deployer has sent into the host's link so far (its veth's
    /// transmit counter on the deployer's side).
    pub fn tx_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/sys/class/net/{}/statistics/tx_bytes", self.veth))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// "ssh-ed25519 AAAA..." of this host's sshd.
    pub fn public_key(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs a shell command inside the host (its netns and its /nix, /run).
    pub fn sh(&self, script: &str) -> std::process::Output {
        let d = self.dir.display();
        self.enter(&format!(
            "mount --bind {d}/nix /nix && mount --bind {d}/run /run && {script}"
        ))
        .output()
        .unwrap()
    }

    /// A command running `script` in this host's network namespace and a private
    /// mount namespace (where the script mounts what it needs).
    fn enter(&self, script: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.env("XDG_CACHE_HOME", HOST_CACHE_HOME);
        cmd.args([
            "netns",
            "exec",
            &self.netns,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ]);
        cmd
    }

    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "on {}: {script}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nix-env --list-generations` of the system profile, as (number, current).
    pub fn generations(&self) -> Vec<(u32, bool)> {
        self.sh_ok("nix-env -p /nix/var/nix/profiles/system --list-generations")
            .lines()
            .filter_map(|l| {
                let n = l.split_whitespace().next()?.parse().ok()?;
                Some((n, l.contains("(current)")))
            })
            .collect()
    }

    pub fn current_generation(&self) -> Option<u32> {
        self.generations()
            .into_iter()
            .find(|(_, c)| *c)
            .map(|(n, _)| n)
    }

    /// Where /run/current-system points.
    pub fn current_system(&self) -> String {
        self.sh_ok("readlink -e /run/current-system || true")
            .trim()
            .to_string()
    }

    /// Lines of the test double's activation log: "MODE TOPLEVEL".
    pub fn activations(&self) -> Vec<String> {
        self.sh_ok("cat /nix/var/potato-test/activations 2>/dev/null || true")
            .lines()
            .map(String::from)
            .collect()
    }

    /// Replaces the host key (a reinstalled or impersonated host).
    pub fn change_host_key(&mut self) {
        let key = self.dir.join("etc/ssh/ssh_host_ed25519_key");
        std::fs::remove_file(&key).unwrap();
        std::fs::remove_file(key.with_extension("pub")).unwrap();
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key));
        self.spawn_sshd(&[]);
    }

    /// Stops this host's sshd (a host whose SSH server is down: connections
    /// are refused); `spawn_sshd` starts it again.
    pub fn stop_sshd(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.stop_sshd();
        release_slot(&self.netns, &self.veth, &self.slot_file);
    }
}

/// Undoes a claimed slot: every process left in its namespace (all started by
/// the test: watchdogs, activations, sessions) stopped by pid, its veth and
/// namespace deleted, the claim removed. Errors are ignored: this runs on drop,
/// also after a failure.
pub fn release_slot(netns: &str, veth: &str, slot_file: &Path) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["link", "del", veth]).status();
    let _ = Command::new("ip").args(["netns", "del", netns]).status();
    let _ = std::fs::remove_file(slot_file);
}
