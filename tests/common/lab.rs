//! The packet lab: one "host" network namespace and client namespaces on a shared
//! bridge, for probing a firewall with real packets.
//!
//! The host namespace owns a bridge `br0` carrying one address in each subnet a
//! client may come from (LAN, WireGuard, a documentation "WAN"), IPv4 and IPv6.
//! A client is a namespace with a veth into that bridge and whatever addresses the
//! test gives it, so "a LAN client" and "a WAN client" are one line each. Probes
//! run in threads that `setns` into a namespace: TCP connect and UDP echo, with
//! short timeouts. Nothing leaves the namespaces; everything is removed on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The host's addresses on the bridge, one per subnet clients come from.
pub const HOST_ADDRS: &[&str] = &[
    "192.168.178.1/24",
    "192.168.100.1/24",
    "10.99.0.1/24",
    "203.0.113.1/24",
    "fd00:178::1/64",
    "2001:db8:113::1/64",
];

/// How long a probe waits before calling a port dropped.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// What a connection attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Connected (TCP) or answered (UDP).
    Open,
    /// Actively refused: a TCP reset or an ICMP unreachable.
    Refused,
    /// No answer within the timeout: dropped.
    Dropped,
}

pub struct Lab {
    pub host: String,
    /// The host's addresses on the bridge (a client's gateway is among them).
    addrs: Vec<String>,
    clients: Vec<String>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Skips (locally, with a message) or fails (in CI) when the lab cannot run here.
pub fn require() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let why = if !root {
        Some("not root (network namespaces need root)".to_string())
    } else {
        ["ip", "nft"]
            .into_iter()
            .find(|t| {
                !Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {t}"))
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            })
            .map(|t| format!("{t} is not installed"))
    };
    match why {
        None => true,
        Some(w) if std::env::var_os("CI").is_some() => {
            panic!("the packet lab is required in CI: {w}")
        }
        Some(w) => {
            eprintln!("SKIPPED: packet lab unavailable: {w}");
            false
        }
    }
}

fn sh(script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh")
}

fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    /// A lab whose host has all of HOST_ADDRS.
    pub fn new() -> Lab {
        Lab::with_addrs(HOST_ADDRS)
    }

    /// A lab whose host has only these addresses on its bridge.
    pub fn with_addrs(addrs: &[&str]) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let host = format!("plab{}-{n}", std::process::id());
        let mut script = format!(
            "ip netns add {host} && ip -n {host} link set lo up \
             && ip -n {host} link add br0 type bridge && ip -n {host} link set br0 up"
        );
        for a in addrs {
            script.push_str(&format!(" && ip -n {host} addr add {a} dev br0 nodad"));
        }
        let lab = Lab {
            host,
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            clients: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        sh_ok(&script);
        lab
    }

    /// A client namespace on the bridge with these addresses (CIDR notation);
    /// its default routes point at the host's address in the same subnet.
    pub fn client(&mut self, addrs: &[&str]) -> String {
        let i = self.clients.len();
        let ns = format!("{}c{i}", self.host);
        self.clients.push(ns.clone());
        let mut script = format!(
            "ip netns add {ns} && ip -n {ns} link set lo up \
             && ip link add eth0 netns {ns} type veth peer name c{i} netns {host} \
             && ip -n {host} link set c{i} master br0 && ip -n {host} link set c{i} up \
             && ip -n {ns} link set eth0 up",
            host = self.host
        );
        for a in addrs {
            script.push_str(&format!(" && ip -n {ns} addr add {a} dev eth0 nodad"));
        }
        for a in addrs {
            let net: ipnet::IpNet = a.parse().expect("client address");
            let gw = self
                .addrs
                .iter()
                .map(String::as_str)
                .chain(HOST_ADDRS.iter().copied())
                .map(|h| h.parse::<ipnet::IpNet>().unwrap())
                .find(|h| h.contains(&net.addr()))
                .unwrap_or_else(|| panic!("no host address in the subnet of {a}"));
            let fam = if net.addr().is_ipv4() { "-4" } else { "-6" };
            script.push_str(&format!(
                " && (ip {fam} -n {ns} route show default | grep -q . || ip {fam} -n {ns} route add default via {})",
                gw.addr()
            ));
        }
        sh_ok(&script);
        ns
    }

    /// Loads a complete nftables ruleset into the host namespace (`nft -f`).
    pub fn load(&self, ruleset: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ruleset.nft");
        std::fs::write(&file, ruleset).unwrap();
        sh_ok(&format!(
            "ip netns exec {} nft -f {}",
            self.host,
            file.display()
        ));
    }

    /// Runs a shell command inside the host namespace.
    pub fn host_sh(&self, script: &str) -> String {
        sh_ok(&format!(
            "ip netns exec {} sh -c '{}'",
            self.host,
            script.replace('\'', "'\\''")
        ))
    }

    /// Accepts TCP connections on `port` (IPv4 and IPv6) in the host namespace
    /// until the lab is dropped; each accepted connection gets "ok\n".
    pub fn listen_tcp(&mut self, port: u16) {
        let listener = in_netns(&self.host, move || {
            let l = TcpListener::bind(SocketAddr::from(([0u16; 8], port))).expect("bind");
            l.set_nonblocking(true).unwrap();
            l
        });
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"ok\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    /// Echoes UDP datagrams on `port` (IPv4 and IPv6) in the host namespace.
    pub fn listen_udp(&mut self, port: u16) {
        let sock = in_netns(&self.host, move || {
            let s = UdpSocket::bind(SocketAddr::from(([0u16; 8], port))).expect("bind udp");
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            s
        });
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        }));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for ns in self.clients.iter().chain(std::iter::once(&self.host)) {
            // Daemons a test started inside (wireguard-go, fail2ban): ours, by pid.
            let _ = sh(&format!("ip netns pids {ns} | xargs -r kill"));
            let _ = sh(&format!("ip netns del {ns}"));
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`; sockets it
/// creates stay in that namespace.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

/// A TCP connection attempt from namespace `ns` to `addr:port`.
pub fn tcp(ns: &str, addr: &str, port: u16) -> Probe {
    let target = SocketAddr::new(addr.parse::<IpAddr>().expect("address"), port);
    let ns_name = ns.to_string();
    in_netns(ns, move || {
        let ns = ns_name;
        match TcpStream::connect_timeout(&target, PROBE_TIMEOUT) {
            Ok(mut s) => {
                // An accepted connection that the firewall lets through both ways.
                s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
                let mut buf = [0u8; 3];
                match s.read_exact(&mut buf) {
                    Ok(()) if &buf == b"ok\n" => Probe::Open,
                    _ => Probe::Dropped,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Probe::Dropped,
            Err(e) => match e.raw_os_error() {
                // EHOSTUNREACH / ENETUNREACH / EACCES: an ICMP "prohibited" answer.
                Some(113) | Some(101) | Some(13) => Probe::Refused,
                _ => panic!("connect {target} from {ns}: {e}"),
            },
        }
    })
}

/// Whether a TCP connection from `ns` is established at all (for daemons that
/// speak first with their own greeting, like sshd).
pub fn tcp_connect(ns: &str, addr: &str, port: u16) -> Probe {
    let target = SocketAddr::new(addr.parse::<IpAddr>().expect("address"), port);
    in_netns(ns, move || {
        match TcpStream::connect_timeout(&target, PROBE_TIMEOUT) {
            Ok(_) => Probe::Open,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
            Err(_) => Probe::Dropped,
        }
    })
}

/// A UDP datagram from namespace `ns` to `addr:port`, waiting for the echo.
pub fn udp(ns: &str, addr: &str, port: u16) -> Probe {
    let target = SocketAddr::new(addr.parse::<IpAddr>().expect("address"), port);
    in_netns(ns, move || {
        let bind: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let s = UdpSocket::bind(bind).unwrap();
        s.connect(target).unwrap();
        s.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
        let _ = s.send(b"ping");
        let mut buf = [0u8; 16];
        match s.recv(&mut buf) {
            Ok(_) => Probe::Open,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
            Err(_) => Probe::Dropped,
        }
    })
}

/// Retries `ok` for up to 10 s (a daemon starting up), panicking with `what`.
pub fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// TEST DOUBLE for a container image: Debian's static busybox imported as
/// `localhost/busybox:test` (no registry is reachable here; shared/TESTBED.md).
pub fn busybox_image() -> String {
    let image = "localhost/busybox:test";
    if sh(&format!("podman image exists {image}")).status.success() {
        return image.into();
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    sh_ok(&format!(
        "mkdir -p {r}/bin && cp /bin/busybox {r}/bin/ && ln -s busybox {r}/bin/sh \
         && tar -C {r} -c . | podman import - {image} >/dev/null",
        r = root.display()
    ));
    image.into()
}

/// A podman container started inside a lab namespace (the namespace is its
/// "host"); removed on drop.
pub struct Container {
    netns: String,
    name: String,
}

impl Container {
    pub fn run(netns: &str, name: &str, args: &[&str], image: &str, script: &str) -> Container {
        // nsenter (not `ip netns exec`) keeps /sys and its cgroup mounts intact.
        let out = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{netns}"))
            .args(["podman", "run", "-d", "--name", name, "--runtime", "runc"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(args)
            .args([image, "sh", "-c", script])
            .output()
            .expect("podman run");
        assert!(
            out.status.success(),
            "podman run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container {
            netns: netns.into(),
            name: name.into(),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["podman", "rm", "-f", "-t", "0", &self.name])
            .output();
    }
}
