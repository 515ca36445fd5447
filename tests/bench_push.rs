//! Push benchmarks on the testbed (run by benches/push.sh; ignored by `cargo test`).
//! Prints numbers; asserts only that each run did its job, never how fast.
//!   - potato's push vs `nix copy --to ssh://` vs raw `ssh host 'cat > /dev/null'`
//!     of the same export stream, for a synthetic closure (POTATO_BENCH_PATHS paths,
//!     POTATO_BENCH_BYTES bytes each; default 1000 x 500 kB = 500 MB, random data)
//!   - a no-op redeploy's wall time
//!   - six hosts in parallel vs one
//!   - potato's peak RSS while pushing

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

fn wipe_store(tb: &Testbed, i: usize) {
    let d = tb.host(i).dir.join("nix");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
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

#[test]
#[ignore]
fn push_benchmarks() {
    if !testbed::require() {
        return;
    }
    let count = env_or("POTATO_BENCH_PATHS", 1000);
    let size = env_or("POTATO_BENCH_BYTES", 500_000);
    let runs = env_or("POTATO_BENCH_RUNS", 3) as usize;
    let tb = Testbed::new(6);
    let fleet = Fleet::new(&tb);
    fleet.steer(&format!("payload = {{ count = {count}; size = {size}; }};"));
    let build = fleet.potato(&["build", "@testbed", "--json"]);
    build.ok();
    let tops: serde_json::Value = serde_json::from_str(&build.stdout).unwrap();
    let top0 = tops["t0"].as_str().unwrap().to_string();
    let closure = String::from_utf8(
        Command::new("nix-store")
            .args(["-qR", &top0])
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
    println!(
        "closure: {} paths, {:.1} MB",
        paths.len(),
        bytes as f64 / 1e6
    );
    let host = tb.host(0);
    let key = fleet.identity.display().to_string();
    let kh = fleet.known_hosts.display().to_string();
    let sshopts = format!("-i {key} -o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes");

    // raw ssh: the physical limit here
    let mut raw = Vec::new();
    for _ in 0..runs {
        raw.push(secs(|| {
            let st = Command::new("sh")
                .arg("-c")
                .arg(format!("nix-store --export $(nix-store -qR {top0}) | ssh {sshopts} root@{} 'cat > /dev/null'", host.addr))
                .status()
                .unwrap();
            assert!(st.success());
        }));
    }
    // nix copy
    let mut copy = Vec::new();
    for _ in 0..runs {
        wipe_store(&tb, 0);
        copy.push(secs(|| {
            let st = Command::new("nix")
                .args([
                    "--extra-experimental-features",
                    "nix-command",
                    "copy",
                    "--no-check-sigs",
                    "--to",
                ])
                .arg(format!("ssh://root@{}", host.addr))
                .arg(&top0)
                .env("NIX_SSHOPTS", &sshopts)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        }));
    }
    // potato: the push phase of a deploy to an empty store, and its peak RSS
    let mut push = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        wipe_store(&tb, 0);
        let mut cmd = fleet.command(&["deploy", "t0", "--json", "--no-magic-rollback"]);
        let args: Vec<String> = std::iter::once(cmd.get_program().to_string_lossy().into_owned())
            .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
            .collect();
        let out = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("RSS_KB=%M")
            .args(&args)
            .current_dir(fleet.path())
            .output()
            .unwrap();
        let _ = &mut cmd;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        let h = &v["hosts"][0];
        assert_eq!(h["result"], "deployed", "{h}");
        let p = h["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x[0] == "push")
            .unwrap()[1]
            .as_f64()
            .unwrap();
        push.push(p);
        let stderr = String::from_utf8_lossy(&out.stderr);
        rss.push(
            stderr
                .lines()
                .find_map(|l| l.strip_prefix("RSS_KB="))
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap(),
        );
    }
    let (raw_m, copy_m, push_m) = (median(raw), median(copy), median(push));
    println!(
        "raw ssh cat:        {raw_m:.2} s  ({:.0} MB/s)",
        bytes as f64 / 1e6 / raw_m
    );
    println!(
        "nix copy ssh://:    {copy_m:.2} s  ({:.0} MB/s)",
        bytes as f64 / 1e6 / copy_m
    );
    println!(
        "potato push phase:  {push_m:.2} s  ({:.0} MB/s) = {:.2}x nix copy, {:.0}% of raw ssh throughput",
        bytes as f64 / 1e6 / push_m,
        push_m / copy_m,
        raw_m / push_m * 100.0
    );
    println!(
        "potato peak RSS while deploying: {} KB",
        rss.iter().max().unwrap()
    );

    // no-op redeploy, toplevel already built
    let mut noop = Vec::new();
    for _ in 0..runs {
        noop.push(secs(|| {
            let (code, r, _) = fleet.deploy(&["t0"]);
            assert_eq!(code, 0);
            assert_eq!(r["t0"]["result"], "up-to-date");
        }));
    }
    println!("no-op redeploy:     {:.2} s wall", median(noop));

    // six hosts in parallel vs one, empty stores
    wipe_store(&tb, 0);
    let one = secs(|| {
        let (code, _, _) = fleet.deploy(&["t0", "--no-magic-rollback"]);
        assert_eq!(code, 0);
    });
    for i in 0..6 {
        wipe_store(&tb, i);
    }
    let six = secs(|| {
        let (code, r, _) = fleet.deploy(&["@testbed", "--parallel", "6", "--no-magic-rollback"]);
        assert_eq!(code, 0, "{r}");
    });
    println!(
        "one host: {one:.2} s, six hosts in parallel: {six:.2} s = {:.2}x",
        six / one
    );
}
