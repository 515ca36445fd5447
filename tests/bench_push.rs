//! Push benchmarks on the testbed (run by benches/push.sh; ignored by `cargo test`).
//! Prints numbers; asserts only that each run did its job, never how fast.
//!
//! 1. Loopback, random data (the CPU is the limit): raw `ssh host 'cat >/dev/null'`
//!    of the export stream, `nix copy --to ssh://`, potato with and without zstd.
//! 2. Loopback, real files (copies of /usr/lib, compressible like real closures).
//! 3. A 100 Mbit/s link (tc on the deployer's veth), real files.
//! 4. No-op redeploy wall time; six hosts in parallel vs one on 100 Mbit/s links.
//! 5. potato's peak RSS while pushing.
//!
//! Sizes: POTATO_BENCH_PATHS x POTATO_BENCH_BYTES (default 1000 x 500 kB) for 1-2;
//! a tenth of that for 3-4. POTATO_BENCH_RUNS runs each (default 3, median shown).

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::fleet::Fleet;
use common::testbed::{self, Testbed};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Empties a host's store, keeping the directory (its sshd has it bind-mounted).
fn wipe_store(tb: &Testbed, i: usize) {
    let d = tb.host(i).dir.join("nix");
    for e in std::fs::read_dir(&d).unwrap() {
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

fn secs(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Bench<'a> {
    tb: &'a Testbed,
    fleet: &'a Fleet,
    runs: usize,
    sshopts: String,
}

impl<'a> Bench<'a> {
    fn new(tb: &'a Testbed, fleet: &'a Fleet) -> Bench<'a> {
        let sshopts = format!(
            "-i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
            fleet.identity.display(),
            fleet.known_hosts.display()
        );
        Bench {
            tb,
            fleet,
            runs: env_or("POTATO_BENCH_RUNS", 3) as usize,
            sshopts,
        }
    }

    /// Builds the payload, returns (t0's toplevel, closure MB).
    fn payload(&self, count: u64, size: u64, real: bool) -> (String, f64) {
        self.fleet.steer(&format!(
            "payload = {{ count = {count}; size = {size}; real = {real}; }};"
        ));
        let build = self.fleet.potato(&["build", "@testbed", "--json"]);
        build.ok();
        let tops: serde_json::Value = serde_json::from_str(&build.stdout).unwrap();
        let top = tops["t0"].as_str().unwrap().to_string();
        let closure = String::from_utf8(
            Command::new("nix-store")
                .args(["-qR", &top])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let paths: Vec<&str> = closure.lines().collect();
        let bytes: u64 = String::from_utf8(
            Command::new("nix-store")
                .args(["-q", "--size"])
                .args(&paths)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum();
        (top, bytes as f64 / 1e6)
    }

    fn raw_ssh(&self, top: &str) -> f64 {
        median((0..self.runs).map(|_| secs(|| {
            let st = Command::new("sh").arg("-c")
                .arg(format!("nix-store --export $(nix-store -qR {top}) | ssh {} root@{} 'cat > /dev/null'", self.sshopts, self.tb.host(0).addr))
                .status().unwrap();
            assert!(st.success());
        })).collect())
    }

    fn nix_copy(&self, top: &str) -> f64 {
        median(
            (0..self.runs)
                .map(|_| {
                    wipe_store(self.tb, 0);
                    secs(|| {
                        let st = Command::new("nix")
                            .args([
                                "--extra-experimental-features",
                                "nix-command",
                                "copy",
                                "--no-check-sigs",
                                "--to",
                            ])
                            .arg(format!("ssh://root@{}", self.tb.host(0).addr))
                            .arg(top)
                            .env("NIX_SSHOPTS", &self.sshopts)
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .unwrap();
                        assert!(st.success());
                    })
                })
                .collect(),
        )
    }

    /// potato's push phase into an empty store: (median seconds, max RSS KB, wire MB).
    fn potato(&self, compress: &str) -> (f64, u64, f64) {
        let mut times = Vec::new();
        let mut rss = 0;
        let mut wire = 0.0;
        for _ in 0..self.runs {
            wipe_store(self.tb, 0);
            let cmd = self.fleet.command(&[
                "deploy",
                "t0",
                "--json",
                "--no-magic-rollback",
                "--compress",
                compress,
            ]);
            let args: Vec<String> =
                std::iter::once(cmd.get_program().to_string_lossy().into_owned())
                    .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
                    .collect();
            let out = Command::new("/usr/bin/time")
                .arg("-f")
                .arg("RSS_KB=%M")
                .args(&args)
                .current_dir(self.fleet.path())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let v: serde_json::Value = serde_json::from_str(stdout.trim())
                .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
            let h = &v["hosts"][0];
            assert_eq!(h["result"], "deployed", "{h}");
            times.push(
                h["phases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x[0] == "push")
                    .unwrap()[1]
                    .as_f64()
                    .unwrap(),
            );
            wire = h["bytes_sent"].as_f64().unwrap() / 1e6;
            let stderr = String::from_utf8_lossy(&out.stderr);
            rss = rss.max(
                stderr
                    .lines()
                    .find_map(|l| l.strip_prefix("RSS_KB="))
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
        (median(times), rss, wire)
    }

    fn compare(&self, label: &str, top: &str, mb: f64, with_raw: bool) {
        println!("\n== {label}: {mb:.0} MB closure");
        let raw = with_raw.then(|| self.raw_ssh(top));
        let copy = self.nix_copy(top);
        let (zstd, rss, wire) = self.potato("yes");
        let (plain, _, _) = self.potato("no");
        if let Some(raw) = raw {
            println!(
                "raw ssh cat of the export:  {raw:6.2} s  {:5.0} MB/s",
                mb / raw
            );
        }
        println!(
            "nix copy --to ssh://:       {copy:6.2} s  {:5.0} MB/s",
            mb / copy
        );
        println!(
            "potato push, zstd:          {zstd:6.2} s  {:5.0} MB/s  = {:.2}x nix copy  ({wire:.0} MB on the wire){}",
            mb / zstd,
            zstd / copy,
            raw.map(|r| format!(", {:.0}% of raw ssh throughput", r / zstd * 100.0))
                .unwrap_or_default()
        );
        println!(
            "potato push, uncompressed:  {plain:6.2} s  {:5.0} MB/s  = {:.2}x nix copy{}",
            mb / plain,
            plain / copy,
            raw.map(|r| format!(", {:.0}% of raw ssh throughput", r / plain * 100.0))
                .unwrap_or_default()
        );
        println!("potato peak RSS:            {rss} KB");
    }
}

#[test]
#[ignore]
fn push_benchmarks() {
    if !testbed::require() {
        return;
    }
    let count = env_or("POTATO_BENCH_PATHS", 1000);
    let size = env_or("POTATO_BENCH_BYTES", 500_000);
    let tb = Testbed::new(6);
    let fleet = Fleet::new(&tb);
    let b = Bench::new(&tb, &fleet);

    let (top, mb) = b.payload(count, size, false);
    b.compare("loopback, random data", &top, mb, true);
    let (top, mb) = b.payload(count, size, true);
    b.compare("loopback, real files", &top, mb, true);

    let (top, mb) = b.payload(count / 10, size, true);
    tb.host(0).limit_rate("100mbit");
    b.compare("100 Mbit/s link, real files", &top, mb, false);
    tb.host(0).limit_rate("10gbit");

    // No-op redeploy with the toplevel built.
    let noop = median(
        (0..b.runs)
            .map(|_| {
                secs(|| {
                    let (code, r, _) = fleet.deploy(&["t0"]);
                    assert_eq!(code, 0);
                    assert_eq!(r["t0"]["result"], "up-to-date");
                })
            })
            .collect(),
    );
    println!("\nno-op redeploy: {noop:.2} s wall");

    // Six hosts in parallel vs one, each on its own 100 Mbit/s link.
    for i in 0..6 {
        tb.host(i).limit_rate("100mbit");
    }
    wipe_store(&tb, 0);
    let one = secs(|| assert_eq!(fleet.deploy(&["t0", "--no-magic-rollback"]).0, 0));
    for i in 0..6 {
        wipe_store(&tb, i);
    }
    let six = secs(|| {
        assert_eq!(
            fleet
                .deploy(&["@testbed", "--parallel", "6", "--no-magic-rollback"])
                .0,
            0
        )
    });
    println!(
        "100 Mbit/s links, {mb:.0} MB each: one host {one:.2} s, six hosts in parallel {six:.2} s = {:.2}x",
        six / one
    );
}

/// Quick probe: potato's uncompressed push on loopback only (for comparing SSH
/// settings through the environment). `cargo test --release --test bench_push
/// -- --ignored probe --nocapture`.
#[test]
#[ignore]
fn probe_push() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let b = Bench::new(&tb, &fleet);
    let (top, mb) = b.payload(
        env_or("POTATO_BENCH_PATHS", 300),
        env_or("POTATO_BENCH_BYTES", 500_000),
        false,
    );
    let (t, _, _) = b.potato("no");
    println!("probe: {mb:.0} MB in {t:.2} s = {:.0} MB/s", mb / t);
    let openssh = median((0..b.runs).map(|_| {
        wipe_store(&tb, 0);
        secs(|| {
            let st = Command::new("sh").arg("-c")
                .arg(format!("nix-store --export $(nix-store -qR {top}) | ssh {} root@{} 'nix-store --import' >/dev/null", b.sshopts, tb.host(0).addr))
                .status().unwrap();
            assert!(st.success());
        })
    }).collect());
    println!("probe: export | OpenSSH | nix-store --import: {openssh:.2} s");
    let copy = b.nix_copy(&top);
    println!("probe: nix copy: {copy:.2} s");
}

/// Probe: per-host phase times of six hosts deployed in parallel on 100 Mbit/s links.
#[test]
#[ignore]
fn probe_parallel() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(6);
    let fleet = Fleet::new(&tb);
    fleet.steer(&format!(
        "payload = {{ count = {}; size = {}; real = true; }};",
        env_or("POTATO_BENCH_PATHS", 100),
        env_or("POTATO_BENCH_BYTES", 500_000)
    ));
    fleet.potato(&["build", "@testbed"]).ok();
    for i in 0..6 {
        tb.host(i).limit_rate("100mbit");
    }
    let t = Instant::now();
    let (code, r, _) = fleet.deploy(&["t0", "--no-magic-rollback"]);
    assert_eq!(code, 0);
    println!(
        "probe one: {:.2}s {}",
        t.elapsed().as_secs_f64(),
        r["t0"]["phases"]
    );
    for i in 0..6 {
        wipe_store(&tb, i);
    }
    let t = Instant::now();
    let (code, r, _) = fleet.deploy(&["@testbed", "--parallel", "6", "--no-magic-rollback"]);
    assert_eq!(code, 0);
    println!("probe six: {:.2}s", t.elapsed().as_secs_f64());
    for i in 0..6 {
        println!("probe   t{i}: {}", r[&format!("t{i}")]["phases"]);
    }
}
