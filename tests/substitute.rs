//! Substitution on the target (issue 17): before potato pushes, the host fetches
//! what it can of the missing paths from its own substituters. The substituter
//! is a real binary cache (Nix's file format, written by `nix copy`, signed with
//! a key from `nix-store --generate-binary-cache-key`) served by a real nginx in
//! the host's own network namespace; its access log is the witness of what the
//! host fetched.

mod common;

use common::cache::{CacheDir, CacheKey, Nginx, host_nix_conf};
use common::fleet::Fleet;
use common::testbed::{self, Testbed};

fn required() -> bool {
    if !testbed::require() {
        return false;
    }
    if !common::have_tools(&["nginx", "curl"]) {
        return false;
    }
    true
}

/// The payload paths of a toplevel built on the deployer.
fn payload_of(top: &str) -> Vec<String> {
    std::fs::read_to_string(format!("{top}/etc/payload"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn closure_count(top: &str) -> usize {
    let out = std::process::Command::new("nix-store")
        .args(["-qR", top])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn nar_size(path: &str) -> u64 {
    let out = std::process::Command::new("nix-store")
        .args(["-q", "--size", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn the_host_fetches_what_its_cache_has_and_potato_pushes_the_rest() {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(2);
    let work = tb.dir.path().to_path_buf();
    let key = CacheKey::generate(&work, "fleet-cache-test-1");
    let other = CacheKey::generate(&work, "someone-else-1");
    let port = 18000 + tb.hosts[0].slot as u16;
    let conf = format!(
        "substituters = http://127.0.0.1:{port}\ntrusted-public-keys = {}",
        key.public
    );
    host_nix_conf(&mut tb.hosts[0], &work.join("t0-conf"), &conf);
    host_nix_conf(&mut tb.hosts[1], &work.join("t1-conf"), &conf);
    let fleet = Fleet::new(&tb);
    let salt = format!("{}-{:?}", std::process::id(), std::time::Instant::now());
    fleet.steer(&format!(
        "payload = {{ count = 4; size = 300000; salt = \"{salt}\"; }};"
    ));
    // Built here first, so the cache can be filled with part of the closure.
    let build = fleet.potato(&["build", "t0", "t1", "--json"]);
    build.ok();
    let tops: serde_json::Value = serde_json::from_str(build.stdout.trim()).unwrap();
    let top0 = tops["t0"].as_str().unwrap().to_string();
    let payload = payload_of(&top0);
    assert_eq!(payload.len(), 4);
    // Two paths signed by the key the hosts trust, one unsigned, one signed
    // by a key they do not trust: only the first two may be substituted.
    let cache = CacheDir::new(work.join("cache"));
    cache.add(&[&payload[0], &payload[1]], Some(&key));
    cache.add(&[&payload[2]], None);
    cache.add(&[&payload[3]], Some(&other));
    let nginx0 = Nginx::serve(&tb.hosts[0], &cache.dir, &work.join("nginx-t0"), port);
    let nginx1 = Nginx::serve(&tb.hosts[1], &cache.dir, &work.join("nginx-t1"), port);

    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let res = &r["t0"];
    assert_eq!(res["result"], "deployed", "{res}");
    // What the JSON says the host fetched is what the cache served.
    let served = nginx0.nars_served();
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(res["paths_fetched"], 2, "{res}");
    let served_bytes: u64 = served.iter().map(|(_, b)| b).sum();
    assert_eq!(res["bytes_fetched"].as_u64().unwrap(), served_bytes);
    assert_eq!(served_bytes, nar_size(&payload[0]) + nar_size(&payload[1]));
    // Everything else of the fresh host's closure was pushed, the refused
    // paths among it.
    assert_eq!(
        res["paths_pushed"].as_u64().unwrap() as usize,
        closure_count(&top0) - 2,
        "{res}"
    );
    for p in &payload {
        tb.hosts[0].sh_ok(&format!("nix-store --check-validity {p}"));
    }
    let sigs = tb.hosts[0].sh_ok(&format!(
        "nix --extra-experimental-features nix-command path-info --sigs {} {}",
        payload[0], payload[3]
    ));
    assert!(
        sigs.contains("fleet-cache-test-1:"),
        "fetched with its signature: {sigs}"
    );
    assert!(
        !sigs.contains("someone-else-1:"),
        "the untrusted one was pushed: {sigs}"
    );
    assert_eq!(tb.hosts[0].current_system(), top0);

    // --no-substitute: the same cache is there, the host is not asked to use it.
    let (code, r, stderr) = fleet.deploy(&["t1", "--no-substitute"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(r["t1"]["paths_fetched"], 0);
    assert!(
        nginx1.nars_served().is_empty(),
        "{:?}",
        nginx1.nars_served()
    );
}

#[test]
fn a_host_without_substituters_gets_everything_pushed() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let top = r["t0"]["store_path"].as_str().unwrap();
    assert_eq!(r["t0"]["paths_fetched"], 0);
    assert_eq!(
        r["t0"]["paths_pushed"].as_u64().unwrap() as usize,
        closure_count(top)
    );
}

/// `nix-store --realise --dry-run` of `paths` on the host, as the host's own
/// root (its nix.conf from `conf_dir`, its own narinfo disk cache): what Nix
/// says it will fetch.
fn dry_run_on(
    host: &common::testbed::TestHost,
    conf_dir: &std::path::Path,
    paths: &[&str],
) -> String {
    let suite = std::env::var("NIX_CONF_DIR").unwrap();
    let out = host.sh(&format!(
        "mount --bind {} {suite} && nix-store --realise --dry-run {} 2>&1",
        conf_dir.display(),
        paths.join(" ")
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_path_the_cache_lacked_when_the_host_last_asked_is_fetched_once_it_is_there() {
    // Nix remembers a cache's "no such path" for an hour (narinfo-cache-
    // negative-ttl, default 3600 s). A host that asked for a path before the
    // fleet cache had it (an earlier deploy, its own nixos-rebuild) must still
    // fetch it once the cache has it.
    if !required() {
        return;
    }
    let mut tb = Testbed::new(1);
    let work = tb.dir.path().to_path_buf();
    let key = CacheKey::generate(&work, "fleet-cache-test-2");
    let port = 18000 + tb.hosts[0].slot as u16;
    let conf_dir = work.join("t0-conf");
    let conf = format!(
        "substituters = http://127.0.0.1:{port}\ntrusted-public-keys = {}",
        key.public
    );
    host_nix_conf(&mut tb.hosts[0], &conf_dir, &conf);
    let fleet = Fleet::new(&tb);
    let salt = format!("{}-{:?}", std::process::id(), std::time::Instant::now());
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 200000; salt = \"{salt}\"; }};"
    ));
    let build = fleet.potato(&["build", "t0", "--json"]);
    build.ok();
    let tops: serde_json::Value = serde_json::from_str(build.stdout.trim()).unwrap();
    let top0 = tops["t0"].as_str().unwrap().to_string();
    let payload = payload_of(&top0);
    let wanted: Vec<&str> = payload.iter().map(String::as_str).collect();
    let cache = CacheDir::new(work.join("cache"));
    // An empty binary cache: just its nix-cache-info (Nix's format).
    std::fs::write(cache.dir.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    let nginx = Nginx::serve(&tb.hosts[0], &cache.dir, &work.join("nginx-t0"), port);

    // The host asks while the cache lacks the paths: Nix records the misses.
    let before = dry_run_on(&tb.hosts[0], &conf_dir, &wanted);
    assert!(!before.contains("will be fetched"), "{before}");
    assert!(
        !nginx.requests_with("404").is_empty(),
        "the host asked the cache: {:?}",
        nginx.requests_with("404")
    );
    // The cache gets them; Nix's own answer on the host still says no (the
    // remembered miss), which is what a deploy meets.
    cache.add(&wanted, Some(&key));
    let remembered = dry_run_on(&tb.hosts[0], &conf_dir, &wanted);
    assert!(
        !remembered.contains("will be fetched"),
        "the host remembers the misses: {remembered}"
    );

    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(r["t0"]["paths_fetched"], 2, "{}", r["t0"]);
    let served: Vec<String> = nginx.nars_served().into_iter().map(|(n, _)| n).collect();
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(tb.hosts[0].current_system(), top0);
}
