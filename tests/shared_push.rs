//! Compress once, send to many (issue 17): when several hosts are pushed from
//! the deployer, each path is framed once (`nix::frames`) and every host that
//! lacks it gets the same bytes; incompressible data is framed raw. The hosts
//! are testbed hosts whose real `zstd -d | nix-store --serve --write` must
//! accept the assembled stream. A three-host deploy is shown to take that path
//! end to end: potato's per-host frame counts, and strace's account of the
//! frame files (each created once, read once per host).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::fleet::Fleet;
use common::testbed::{self, Testbed};

#[test]
fn three_hosts_take_shared_frames_and_random_data_travels_raw() {
    if !testbed::require() || !common::have_tools(&["zstd"]) {
        return;
    }
    let tb = Testbed::new(3);
    let fleet = Fleet::new(&tb);

    // Random payload: framed raw, so the wire carries about the NAR bytes
    // (a zstd attempt on random data would cost CPU for nothing).
    fleet.steer_fresh_payload(2, 1500000);
    let (code, r, stderr) = fleet.deploy(&["t0", "t1", "t2", "--compress", "yes"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    for h in ["t0", "t1", "t2"] {
        let res = &r[h];
        assert_eq!(res["result"], "deployed", "{res}");
        let nar = res["bytes_pushed"].as_u64().unwrap();
        let wire = res["bytes_sent"].as_u64().unwrap();
        assert!(nar > 3_000_000, "{res}");
        assert!(
            wire > nar * 99 / 100 && wire < nar + nar / 100 + 4096,
            "{h}: random data framed raw: {wire} on the wire for {nar} NAR bytes"
        );
        let top = res["store_path"].as_str().unwrap();
        assert_eq!(
            tb.hosts[h[1..].parse::<usize>().unwrap()].current_system(),
            top
        );
    }

    // Real files: compressed, once, to well under the NAR size.
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 1500000; real = true; salt = \"{}\"; }};",
        common::unique_salt()
    ));
    let (code, r, stderr) = fleet.deploy(&["t0", "t1", "t2"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    for h in ["t0", "t1", "t2"] {
        let res = &r[h];
        assert_eq!(res["result"], "deployed", "{res}");
        let nar = res["bytes_pushed"].as_u64().unwrap();
        let wire = res["bytes_sent"].as_u64().unwrap();
        assert!(
            wire * 10 < nar * 8,
            "{h}: {wire} on the wire for {nar} NAR bytes"
        );
    }
}

/// `cmd` run under `strace -f -e trace=openat`, its trace written to `log`.
fn under_strace(cmd: &std::process::Command, log: &Path) -> std::process::Command {
    let mut s = std::process::Command::new("strace");
    s.args(["-f", "-qq", "--seccomp-bpf", "-e", "trace=openat", "-o"])
        .arg(log);
    common::run_under(s, cmd)
}

/// Per file under `dir`'s `potato-frames*` directories: (times opened with
/// O_CREAT, times opened for reading), from an strace log of openat calls.
fn frame_file_opens(log: &str, dir: &Path) -> BTreeMap<String, (usize, usize)> {
    let prefix = format!("\"{}/potato-frames", dir.display());
    let mut opens: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(&prefix)) {
        let start = line.find(&prefix).unwrap() + 1;
        let path = &line[start..start + line[start..].find('"').unwrap()];
        let Some((_, file)) = path.rsplit_once('/') else {
            continue;
        };
        if file.starts_with("potato-frames") || line.contains("O_DIRECTORY") {
            continue;
        }
        let e = opens.entry(file.to_string()).or_default();
        if line.contains("O_CREAT") {
            e.0 += 1;
        } else if line.contains("O_RDONLY") {
            e.1 += 1;
        }
    }
    opens
}

#[test]
fn a_three_host_deploy_compresses_each_path_once_for_all_hosts() {
    if !testbed::require() || !common::have_tools(&["zstd", "strace"]) {
        return;
    }
    let tb = Testbed::new(3);
    let fleet = Fleet::new(&tb);
    // Real files: they compress, so every frame is zstd work on the deployer.
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 1500000; real = true; salt = \"{}\"; }};",
        common::unique_salt()
    ));
    let tmp = tb.dir.path().join("deployer-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let trace = tb.dir.path().join("openat.trace");
    let mut cmd = fleet.command(&[
        "deploy",
        "t0",
        "t1",
        "t2",
        "--no-substitute",
        "--compress",
        "yes",
        // strace slows the deployer down: a busy machine must not miss the
        // hosts' confirm window.
        "--confirm-timeout",
        "60s",
        "--json",
    ]);
    cmd.env("TMPDIR", &tmp);
    let before: Vec<u64> = tb.hosts.iter().map(|h| h.tx_bytes()).collect();
    let run = common::Run::from(under_strace(&cmd, &trace).output().unwrap());
    let wire: Vec<u64> = tb
        .hosts
        .iter()
        .zip(&before)
        .map(|(h, b)| h.tx_bytes() - b)
        .collect();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);

    // What each host needed: its whole closure (the hosts start empty).
    let mut distinct = BTreeSet::new();
    let mut sent_total = 0;
    let mut made_total = 0;
    let mut made_bytes = 0;
    for (i, h) in hosts.iter().enumerate() {
        assert_eq!(h["result"], "deployed", "{h}");
        let top = h["store_path"].as_str().unwrap();
        let closure = String::from_utf8(
            std::process::Command::new("nix-store")
                .args(["-qR", top])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let closure: Vec<&str> = closure.lines().collect();
        assert_eq!(
            h["paths_pushed"].as_u64().unwrap() as usize,
            closure.len(),
            "{h}"
        );
        assert_eq!(tb.hosts[i].current_system(), top);
        distinct.extend(closure.iter().map(|p| p.to_string()));
        let frames = &h["frames"];
        assert_eq!(frames["sent"], h["paths_pushed"], "{h}");
        sent_total += frames["sent"].as_u64().unwrap() as usize;
        made_total += frames["made"].as_u64().unwrap() as usize;
        made_bytes += frames["made_bytes"].as_u64().unwrap();
    }
    // The hosts share most of their closures (the payload, the base system).
    assert!(
        distinct.len() < sent_total,
        "{} distinct paths, {sent_total} pushed",
        distinct.len()
    );

    // The kernel's account (not potato's): each frame file was created once,
    // one per distinct path, and read once per host that was sent it.
    let log = std::fs::read_to_string(&trace).unwrap();
    let opens = frame_file_opens(&log, &tmp);
    assert_eq!(opens.len(), distinct.len(), "{opens:?}");
    assert!(
        opens.values().all(|(created, _)| *created == 1),
        "a frame was compressed more than once: {opens:?}"
    );
    assert_eq!(
        opens.values().map(|(_, read)| read).sum::<usize>(),
        sent_total,
        "{opens:?}"
    );
    // potato's own count: each distinct path compressed once, by one host's push.
    assert_eq!(made_total, distinct.len());
    // The wire: each host's link carried all the frames' bytes (compressed,
    // well under the payload's 3 MB of NAR), not fewer.
    let nar: u64 = hosts[0]["bytes_pushed"].as_u64().unwrap();
    eprintln!(
        "3 hosts: {} distinct paths, {sent_total} frames sent, {made_total} made ({made_bytes} bytes), links {wire:?}, NAR per host {nar}",
        distinct.len()
    );
    for (i, w) in wire.iter().enumerate() {
        assert!(
            *w >= made_bytes && *w < nar,
            "t{i}: {w} bytes on the link, frames {made_bytes}, NAR {nar}"
        );
    }
}
