//! Fleet push benchmarks (issue 17 "Benchmarks"; run by benches/fleet.sh,
//! ignored by `cargo test`). Prints numbers; asserts only that each run did its
//! job (every selected host deployed and switched to its system), never how fast.
//!
//! For N = 1, 3 and 6 consumer hosts on the testbed, the same closure (the
//! nixpkgs double's payload, POTATO_BENCH_PATHS x POTATO_BENCH_BYTES of real
//! files, default 20 x 1 MB, plus each host's own toplevel) is deployed to
//! t0..t(N-1), two ways:
//! - `direct`: `potato deploy t0.. --no-substitute`: every host is pushed from
//!   the deployer (each path compressed once, the frames shared: `nix::frames`);
//! - `cache`: the fleet cache. A seventh host is the cache host; potato pushes
//!   each path once to it, it publishes them into its signed static cache served
//!   by nginx, and the N hosts substitute from it (`setup_cache`).
//!
//! The deployer is a network namespace of its own (`Deployer`): potato runs in
//! it, and its only link is one veth pair to the machine's root namespace, which
//! routes between it and every testbed host (and between hosts, so consumers
//! reach the cache host without passing the deployer). So:
//! - **bytes** = what left the deployer: its veth's transmitted bytes, read as
//!   the root-side peer's `rx_bytes` (a veth pair: one side's tx is the other's
//!   rx). Every frame counts (Ethernet/IP/TCP headers, SSH, TCP ACKs of what the
//!   hosts send back); traffic between hosts (cache host -> consumers) never
//!   crosses this link, so it is not counted.
//! - **rate**: POTATO_BENCH_RATE (default `100mbit`; `none` = unlimited, a
//!   comma list runs each) shapes the deployer's egress with tc tbf, as
//!   bench_push's 100 Mbit/s case shapes a host's link: the deployer's uplink is
//!   the bottleneck a fleet cache relieves. Host-to-host links stay unlimited.
//! - **CPU** = user+sys of the potato process and every child it waited for
//!   (nix evaluation and nix-store on the deployer; SSH is libssh2 inside potato,
//!   zstd is in-process too), as `getrusage(RUSAGE_CHILDREN)` before and after the
//!   one spawned potato. Host-side work (sshd, nix-store --serve, the cache
//!   host's publishing, nginx, substitution) is not counted, although on this
//!   machine it shares the same cores and so shows in the wall time.
//! - **wall** = the whole `potato deploy` (evaluation, push, activation; magic
//!   rollback off, as in bench_push).
//!
//! Each run starts from empty host stores (and an empty cache); the systems are
//! built in the deployer's store once before the runs. POTATO_BENCH_RUNS runs
//! each (default 3); the median of each number is shown.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

use common::fleet::Fleet;
use common::testbed::{self, Testbed};

/// The consumer counts measured.
const SIZES: [usize; 3] = [1, 3, 6];
/// Index of the cache host in the testbed (after the six consumers).
const CACHE_HOST: usize = 6;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn sh(script: &str) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Empties a directory, keeping it (a host's sshd has its store bind-mounted).
fn empty_dir(d: &std::path::Path) {
    for e in std::fs::read_dir(d).unwrap() {
        assert!(
            Command::new("rm")
                .arg("-rf")
                .arg(e.unwrap().path())
                .status()
                .unwrap()
                .success()
        );
    }
}

/// Empties a host's store.
fn wipe_store(tb: &Testbed, i: usize) {
    empty_dir(&tb.host(i).dir.join("nix"));
}

/// The deployer's own network namespace and its one link (see the top comment).
/// Removed on drop: the namespace (with anything still in it, by pid), the veth,
/// the slot claim.
struct Deployer {
    netns: String,
    /// The root-side end of the deployer's veth.
    veth: String,
    slot_file: PathBuf,
}

impl Deployer {
    /// Creates the namespace at 10.213.<slot>.2, routed through the root
    /// namespace, and gives every testbed host a route back to it (the whole
    /// 10.213.0.0/16 through its own link, so hosts also reach each other).
    fn new(tb: &Testbed) -> Deployer {
        let (slot, slot_file) = testbed::claim_slot();
        let dep = Deployer {
            netns: format!("potato-t{slot}"),
            veth: format!("ptb{slot}"),
            slot_file,
        };
        let (ns, v) = (&dep.netns, &dep.veth);
        sh(&format!(
            "ip netns add {ns} && ip link add {v} type veth peer name {v}h && ip link set {v}h netns {ns} \
             && ip addr add 10.213.{slot}.1/24 dev {v} && ip link set {v} up \
             && ip -n {ns} addr add 10.213.{slot}.2/24 dev {v}h && ip -n {ns} link set {v}h up \
             && ip -n {ns} link set lo up && ip -n {ns} route add 10.213.0.0/16 via 10.213.{slot}.1"
        ));
        for h in &tb.hosts {
            sh(&format!(
                "ip -n {} route replace 10.213.0.0/16 via 10.213.{}.1",
                h.netns, h.slot
            ));
        }
        dep
    }

    /// Bytes the deployer has sent so far (its veth's tx = the peer's rx).
    fn tx_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/sys/class/net/{}/statistics/rx_bytes", self.veth))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Shapes the deployer's egress (`None`: unlimited). Same tbf as
    /// `TestHost::limit_rate`.
    fn limit_rate(&self, rate: Option<&str>) {
        let (ns, v) = (&self.netns, &self.veth);
        match rate {
            Some(r) => sh(&format!(
                "tc -n {ns} qdisc replace dev {v}h root tbf rate {r} burst 32kbit latency 400ms"
            )),
            None => {
                let _ = Command::new("tc")
                    .args(["-n", ns, "qdisc", "del", "dev", &format!("{v}h"), "root"])
                    .output();
            }
        }
    }

    /// `cmd` run inside the deployer's namespace (`ip netns exec` execs it, so
    /// the spawned child is `cmd`'s program itself).
    fn wrap(&self, cmd: &Command) -> Command {
        let mut ip = Command::new("ip");
        ip.args(["netns", "exec", &self.netns]);
        common::run_under(ip, cmd)
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        testbed::release_slot(&self.netns, &self.veth, &self.slot_file);
    }
}

/// CPU seconds the whole machine has been busy so far (all cores, from
/// /proc/stat: user, nice, system, irq, softirq, steal). On the testbed every
/// host shares this machine's cores, so a run's busy seconds / the core count
/// is a floor under its wall time that a real fleet (a CPU per host) has not.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu = stat.lines().next().unwrap();
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0.0)) / hz
}

/// The machine's core count.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// User+sys seconds of this process's waited-for children so far.
fn children_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) },
        0
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Cache,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Cache => "cache",
        }
    }
}

/// One deploy's numbers.
#[derive(Debug, Clone)]
struct Sample {
    bytes: f64,
    cpu: f64,
    wall: f64,
    /// The machine's busy CPU seconds during the run (`machine_busy`).
    busy: f64,
    /// Each deploy phase's seconds (the JSON's `phases`), averaged over the hosts:
    /// where the wall time went.
    phases: Vec<(String, f64)>,
}

/// The JSON's per-host `phases` ([name, seconds] pairs), averaged over hosts,
/// in the order they first appear.
fn mean_phases(hosts: &[serde_json::Value]) -> Vec<(String, f64)> {
    let mut sums: Vec<(String, f64)> = Vec::new();
    for h in hosts {
        for p in h["phases"].as_array().into_iter().flatten() {
            let (name, secs) = (p[0].as_str().unwrap_or("?"), p[1].as_f64().unwrap_or(0.0));
            match sums.iter_mut().find(|(n, _)| n == name) {
                Some((_, s)) => *s += secs,
                None => sums.push((name.to_string(), secs)),
            }
        }
    }
    let n = hosts.len().max(1) as f64;
    sums.into_iter().map(|(k, s)| (k, s / n)).collect()
}

/// The fleet cache on the testbed, ready for runs: what a run empties and
/// which extra deploy arguments it takes.
struct CacheBench {
    /// The static cache directory the cache host publishes into (emptied per run).
    dir: PathBuf,
    /// The cache's web server, stopped on drop.
    _server: common::cache::Nginx,
}

/// Sets up the fleet cache on the testbed: the cache host (t6) and the
/// consumers' Nix configured from what potato generated (`cache_half`). None
/// with POTATO_BENCH_CACHE=0: the cache rows are then not measured. Called before the systems are
/// built (it rewrites the host files).
fn setup_cache(tb: &mut Testbed, fleet: &Fleet) -> Option<CacheBench> {
    if std::env::var("POTATO_BENCH_CACHE").as_deref() == Ok("0") {
        return None;
    }
    Some(cache_half::setup(tb, fleet))
}

/// The cache half: the fleet cache double of tests/common/cache.rs (shared
/// with tests/fleet_cache.rs), for a cache host that is not itself deployed by
/// the runs.
mod cache_half {
    use super::*;

    use common::cache::{generated, nixos_double, write_cache_fleet};

    /// The cache half's setup: the fleet rewritten with the cache (t6 its
    /// host), the double configured from `potato plan --json` and started, and
    /// the cache host deployed once (unmeasured) so its signing key is in
    /// place; its store is emptied again by every run.
    pub fn setup(tb: &mut Testbed, fleet: &Fleet) -> CacheBench {
        write_cache_fleet(tb, fleet, CACHE_HOST);
        let g = generated(fleet, &tb.hosts[CACHE_HOST].name);
        let (nginx, served) = nixos_double(tb, &g, CACHE_HOST);
        let (code, r, stderr) = fleet.deploy(&[&tb.hosts[CACHE_HOST].name, "--no-magic-rollback"]);
        assert_eq!(code, 0, "{stderr}\n{r}");
        CacheBench {
            dir: served,
            _server: nginx,
        }
    }
}

struct Bench<'a> {
    tb: &'a Testbed,
    fleet: &'a Fleet,
    dep: &'a Deployer,
    runs: usize,
}

impl Bench<'_> {
    /// One `potato deploy t0..t(n-1)`, from empty host stores: its numbers,
    /// after checking every host deployed and runs the system potato reported.
    fn once(&self, n: usize, mode: Mode, cache: Option<&CacheBench>) -> Sample {
        for i in 0..n {
            wipe_store(self.tb, i);
        }
        if let Some(c) = cache {
            wipe_store(self.tb, CACHE_HOST);
            empty_dir(&c.dir);
        }
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let mut args = vec!["deploy", "--json", "--no-magic-rollback"];
        args.extend(names.iter().map(String::as_str));
        if mode == Mode::Direct {
            args.push("--no-substitute");
        }
        let trace = std::env::var("POTATO_BENCH_TRACE").is_ok();
        if trace {
            args.push("-v");
        }
        let mut cmd = self.dep.wrap(&self.fleet.command(&args));
        let (bytes0, cpu0, busy0, t0) = (
            self.dep.tx_bytes(),
            children_cpu(),
            machine_busy(),
            Instant::now(),
        );
        let out = if trace {
            traced(&mut cmd, t0)
        } else {
            cmd.output().unwrap()
        };
        let (wall, cpu, busy, bytes) = (
            t0.elapsed().as_secs_f64(),
            children_cpu() - cpu0,
            machine_busy() - busy0,
            (self.dep.tx_bytes() - bytes0) as f64,
        );
        let hosts = self.check_deployed(&names, &out);
        Sample {
            bytes,
            cpu,
            wall,
            busy,
            phases: mean_phases(&hosts),
        }
    }

    /// The JSON's hosts, after checking each deployed and runs its system.
    fn check_deployed(&self, names: &[String], out: &Output) -> Vec<serde_json::Value> {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}\n{stderr}"));
        let hosts = v["hosts"].as_array().expect("hosts");
        assert_eq!(hosts.len(), names.len(), "{v}");
        for h in hosts {
            assert_eq!(h["result"], "deployed", "{h}");
            let name = h["host"].as_str().unwrap();
            let i: usize = name[1..].parse().unwrap();
            assert_eq!(
                self.tb.host(i).current_system(),
                h["store_path"].as_str().unwrap(),
                "{name} runs the deployed system"
            );
        }
        hosts.clone()
    }

    fn measure(&self, n: usize, mode: Mode, cache: Option<&CacheBench>) -> Sample {
        let runs: Vec<Sample> = (0..self.runs).map(|_| self.once(n, mode, cache)).collect();
        let pick = |f: fn(&Sample) -> f64| median(runs.iter().map(f).collect());
        let wall = pick(|s| s.wall);
        // The phases of the run whose wall time is the median.
        let phases = runs
            .iter()
            .find(|s| s.wall == wall)
            .map(|s| s.phases.clone())
            .unwrap_or_default();
        let s = Sample {
            bytes: pick(|s| s.bytes),
            cpu: pick(|s| s.cpu),
            wall,
            busy: pick(|s| s.busy),
            phases,
        };
        let phases: Vec<String> = s
            .phases
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        println!(
            "  N={n} {}: {:.2} MB sent, {:.2} CPU s, {:.2} s wall, machine busy {:.2} CPU s (median of {}); \
             phases, s per host: {}",
            mode.name(),
            s.bytes / 1e6,
            s.cpu,
            s.wall,
            s.busy,
            self.runs,
            phases.join(", ")
        );
        s
    }
}

/// Runs `cmd`, printing each stderr line as it comes with the seconds since
/// `t0` (POTATO_BENCH_TRACE: where a run's wall time goes).
fn traced(cmd: &mut Command, t0: Instant) -> Output {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        let mut all = Vec::new();
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            println!("    {:6.2} {l}", t0.elapsed().as_secs_f64());
            all.extend_from_slice(l.as_bytes());
            all.push(b'\n');
        }
        all
    });
    let mut out = child.wait_with_output().unwrap();
    out.stderr = lines.join().unwrap();
    out
}

/// NAR bytes of a store path's closure in the deployer's store.
fn closure_bytes(top: &str) -> u64 {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("nix-store -q --size $(nix-store -qR {top})"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

/// Prints one rate's table: per mode, N, and the ratios vs N = 1.
fn print_table(rate: &str, rows: &[(Mode, usize, Option<Sample>)]) {
    println!(
        "\n== deployer uplink {rate}; busy = the machine's CPU seconds during the run \
         (deployer and every host share its {} cores: busy/cores is a floor under wall)",
        cores()
    );
    println!(
        "{:>2}  {:<7} {:>10} {:>11} {:>8} {:>10} {:>9} {:>7} {:>11}",
        "N",
        "mode",
        "MB sent",
        "CPU s/host",
        "wall s",
        "bytes/N=1",
        "wall/N=1",
        "busy s",
        "busy/cores"
    );
    for (mode, n, s) in rows {
        let Some(s) = s else {
            println!(
                "{n:>2}  {:<7} not measured (POTATO_BENCH_CACHE=0)",
                mode.name()
            );
            continue;
        };
        // The ratios are against the same mode's N = 1 (the direct one when
        // that mode's was not run).
        let one = [*mode, Mode::Direct]
            .iter()
            .find_map(|want| {
                rows.iter()
                    .find(|(m, k, _)| m == want && *k == 1)
                    .and_then(|r| r.2.as_ref())
            })
            .unwrap_or(s);
        println!(
            "{n:>2}  {:<7} {:>10.2} {:>11.2} {:>8.2} {:>9.2}x {:>8.2}x {:>7.2} {:>11.2}",
            mode.name(),
            s.bytes / 1e6,
            s.cpu / *n as f64,
            s.wall,
            s.bytes / one.bytes,
            s.wall / one.wall,
            s.busy,
            s.busy / cores() as f64
        );
    }
}

#[test]
#[ignore]
fn fleet_benchmarks() {
    if !testbed::require() {
        return;
    }
    let count = env_or("POTATO_BENCH_PATHS", 20);
    let size = env_or("POTATO_BENCH_BYTES", 1_000_000);
    let rates = std::env::var("POTATO_BENCH_RATE").unwrap_or_else(|_| "100mbit".into());
    let mut tb = Testbed::new(CACHE_HOST + 1);
    let fleet = Fleet::new(&tb);
    let cache = setup_cache(&mut tb, &fleet);
    fleet.steer(&format!(
        "payload = {{ count = {count}; size = {size}; real = true; }};"
    ));
    let build = fleet.potato(&["build", "@testbed", "--json"]);
    build.ok();
    let tops: serde_json::Value = serde_json::from_str(&build.stdout).unwrap();
    let closure = closure_bytes(tops["t0"].as_str().unwrap());
    let dep = Deployer::new(&tb);
    let bench = Bench {
        tb: &tb,
        fleet: &fleet,
        dep: &dep,
        runs: env_or("POTATO_BENCH_RUNS", 3).max(1) as usize,
    };
    println!(
        "fleet push: {count} x {size} B payload, t0's closure {:.2} MB NAR; median of {} runs",
        closure as f64 / 1e6,
        bench.runs
    );
    // POTATO_BENCH_SIZES / POTATO_BENCH_MODES narrow the runs (comma lists).
    let sizes: Vec<usize> = std::env::var("POTATO_BENCH_SIZES")
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|_| SIZES.to_vec());
    let modes: Vec<Mode> = std::env::var("POTATO_BENCH_MODES")
        .map(|v| {
            [Mode::Direct, Mode::Cache]
                .into_iter()
                .filter(|m| v.split(',').any(|w| w == m.name()))
                .collect()
        })
        .unwrap_or_else(|_| vec![Mode::Direct, Mode::Cache]);
    for rate in rates.split(',') {
        dep.limit_rate((rate != "none").then_some(rate));
        let mut rows = Vec::new();
        for &mode in &modes {
            for &n in &sizes {
                let s = match (mode, &cache) {
                    (Mode::Cache, None) => None,
                    (_, c) => Some(bench.measure(n, mode, c.as_ref())),
                };
                rows.push((mode, n, s));
            }
        }
        print_table(rate, &rows);
    }
}
