//! The fleet binary cache, deploy side (issue 17 item 3): a deploy to several
//! hosts sends each path once, to the cache host, which publishes it into its
//! signed static binary cache (Nix's own `nix copy --to file://…?secret-key=…`);
//! the other hosts substitute from it. Real sshd and a real Nix store per host,
//! a real nginx serving the cache on the cache host, Nix's own signature checks
//! on every consumer.
//!
//! NixOS is a double here (`nixos_double`): what the generated modules would
//! make NixOS do on each host (nix.conf's substituters and trusted keys, nginx
//! serving the cache dir on the cache host's tunnel addresses, the tunnel
//! itself) is set up by the test FROM what potato generated (`potato plan
//! --json`'s `cache`), never from values written here. The WireGuard tunnel is
//! a double too: a direct veth pair between the cache host and each consumer
//! carrying the tunnel addresses the host files give (so the cache's traffic
//! never crosses the deployer's links, as a real tunnel between two hosts of a
//! LAN would not).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::cache::{
    CacheDir, CacheKey, Generated, Nginx, generated, nixos_double, write_cache_fleet,
};
use common::fleet::Fleet;
use common::testbed::{self, TestHost, Testbed};

/// Hosts: t0 serves the cache, t1..t6 consume it.
const HOSTS: usize = 7;

fn required() -> bool {
    testbed::require() && common::have_tools(&["nginx", "curl", "zstd"])
}

/// A payload salt no other test (or run) has used, saying what it is for.
fn unique_salt(what: &str) -> String {
    format!("{what}-{}", common::unique_salt())
}

/// Bytes the deployer has sent into a testbed host's link so far.
fn tx_bytes(host: &TestHost) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{}/statistics/tx_bytes", host.veth))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Bytes the deployer has sent into every host's link so far.
fn deployer_tx(tb: &Testbed) -> u64 {
    tb.hosts.iter().map(tx_bytes).sum()
}

/// Sum of the NAR sizes of `path`'s closure in a host's store.
fn closure_bytes(host: &TestHost, path: &str) -> u64 {
    host.sh_ok(&format!("nix-store -q --size $(nix-store -qR {path})"))
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

/// The fleet (see `write_cache_fleet`): t0 serves the cache, the others
/// consume it.
fn cache_fleet(tb: &Testbed) -> Fleet {
    let fleet = Fleet::new(tb);
    write_cache_fleet(tb, &fleet, 0);
    fleet
}

#[test]
fn seven_hosts_cost_the_deployer_one_closure_and_a_poisoned_cache_heals() {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(HOSTS);
    let work = tb.dir.path().to_path_buf();
    let fleet = cache_fleet(&tb);
    let g = generated(&fleet, "t0");
    assert_eq!(g.consumers.len(), HOSTS - 1, "every other host consumes");
    let (nginx, served) = nixos_double(&mut tb, &g, 0);
    let all: Vec<String> = tb.hosts.iter().map(|h| h.name.clone()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();

    // 2 × 1.5 MB of random payload shared by every host: a host's closure is
    // mostly that, plus its own small generated files.
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 1500000; salt = \"{}\"; }};",
        unique_salt("cache")
    ));
    let before = deployer_tx(&tb);
    let started = Instant::now();
    let run = fleet.potato(&[&["deploy"], &all[..], &["--json"]].concat());
    let wall_cache = started.elapsed();
    let wire_cache = deployer_tx(&tb) - before;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let results: BTreeMap<String, serde_json::Value> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap().to_string(), h.clone()))
        .collect();
    let cache = &doc["cache"];
    assert_eq!(cache["host"], "t0", "{doc}");
    assert!(cache["error"].is_null(), "{cache}");
    assert!(cache["paths_published"].as_u64().unwrap() >= 3, "{cache}");

    // All six activate, each fetching from the cache what nginx says it served.
    let mut fetched_total = 0;
    for (i, host) in tb.hosts.iter().enumerate() {
        let res = &results[&host.name];
        assert_eq!(res["result"], "deployed", "{res}");
        let top = res["store_path"].as_str().unwrap();
        assert_eq!(host.current_system(), top);
        assert_eq!(host.current_generation(), Some(1));
        if i == 0 {
            continue;
        }
        let from = &g.consumers[&host.name].from;
        let served_to = nginx.nars_served_to(from);
        let fetched = res["paths_fetched"].as_u64().unwrap() as usize;
        assert_eq!(
            served_to.len(),
            fetched,
            "{}: {served_to:?} {res}",
            host.name
        );
        assert!(
            fetched >= 3,
            "the payload and the system came from the cache: {res}"
        );
        assert_eq!(res["paths_pushed"], 0, "nothing left to push: {res}");
        fetched_total += fetched;
        // Fetched with the cache's signature, checked by the host's Nix.
        let key_name = g.public_key.split(':').next().unwrap();
        let sigs = host.sh_ok(&format!(
            "nix --extra-experimental-features nix-command path-info --sigs {top}"
        ));
        assert!(sigs.contains(&format!("{key_name}:")), "{sigs}");
    }
    let t1 = &tb.hosts[1];
    let one_closure = closure_bytes(t1, results["t1"]["store_path"].as_str().unwrap());
    eprintln!(
        "fleet cache: 7 hosts in {:.1}s, {wire_cache} bytes on the deployer's links, one closure {one_closure} NAR bytes, cache host got {} wire bytes, consumers fetched {fetched_total} paths",
        wall_cache.as_secs_f64(),
        cache["bytes_sent"]
    );
    assert!(
        wire_cache * 2 < one_closure * 3,
        "{wire_cache} bytes left the deployer for a {one_closure}-byte closure"
    );

    // The same fleet without substitution: every host gets its own copy.
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 1500000; salt = \"{}\"; }};",
        unique_salt("direct")
    ));
    let before = deployer_tx(&tb);
    let started = Instant::now();
    let run = fleet.potato(&[&["deploy"], &all[..], &["--json", "--no-substitute"]].concat());
    let wall_direct = started.elapsed();
    let wire_direct = deployer_tx(&tb) - before;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(doc.get("cache").is_none(), "--no-substitute goes straight");
    eprintln!(
        "direct: 7 hosts in {:.1}s, {wire_direct} bytes on the deployer's links",
        wall_direct.as_secs_f64()
    );
    assert!(
        wire_direct > one_closure * 4,
        "{wire_direct} bytes left the deployer without the cache"
    );

    // Again through the cache, now that the cache host has its key: it
    // deploys alongside the consumers.
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 1500000; salt = \"{}\"; }};",
        unique_salt("again")
    ));
    let before = deployer_tx(&tb);
    let started = Instant::now();
    let (code, r, stderr) = fleet.deploy(&all);
    let wall_again = started.elapsed();
    let wire_again = deployer_tx(&tb) - before;
    assert_eq!(code, 0, "{stderr}\n{r}");
    for host in &tb.hosts {
        assert_eq!(r[&host.name]["result"], "deployed", "{r}");
        assert_eq!(host.current_generation(), Some(3));
    }
    eprintln!(
        "fleet cache, second run: 7 hosts in {:.1}s, {wire_again} bytes on the deployer's links",
        wall_again.as_secs_f64()
    );
    assert!(wire_again * 2 < one_closure * 3, "{wire_again}");

    // An unsigned path and one signed by a key the hosts do not trust, put
    // into the cache before the deploy that needs them (a poisoned cache):
    // the publish replaces both with signed narinfos, and the hosts fetch
    // them, with the fleet key's signature and not the other. (That a host's
    // Nix refuses such paths when they are served is tests/substitute.rs's.)
    fleet.steer(&format!(
        "payload = {{ count = 3; size = 200000; salt = \"{}\"; }};",
        unique_salt("bad")
    ));
    let build = fleet.potato(&["build", "t1", "--json"]);
    build.ok();
    let tops: serde_json::Value = serde_json::from_str(build.stdout.trim()).unwrap();
    let top = tops["t1"].as_str().unwrap().to_string();
    let payload: Vec<String> = std::fs::read_to_string(format!("{top}/etc/payload"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert_eq!(payload.len(), 3);
    let other = CacheKey::generate(&work, "not-the-fleet-cache-1");
    let dir = CacheDir::new(served.clone());
    dir.add(&[&payload[0]], None);
    dir.add(&[&payload[1]], Some(&other));
    let served_before = nginx.nars_served_to(&g.consumers["t1"].from).len();
    // Two consumers: a deploy through the cache (one host alone is pushed to
    // directly).
    let run = fleet.potato(&["deploy", "t1", "t2", "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let doc = run.one_json_document();
    assert!(doc["cache"]["error"].is_null(), "{doc}");
    assert_eq!(doc["cache"]["paths_replaced"], 2, "{}", doc["cache"]);
    let res = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "t1")
        .unwrap()
        .clone();
    assert_eq!(res["result"], "deployed", "{res}");
    assert_eq!(t1.current_system(), top);
    // The three payload paths and the system came from the cache.
    let nars = nginx.nars_served_to(&g.consumers["t1"].from);
    assert_eq!(res["paths_fetched"], 4, "{res}");
    assert_eq!(res["paths_pushed"], 0, "{res}");
    assert_eq!(nars.len() - served_before, 4, "{nars:?}");
    let key_name = g.public_key.split(':').next().unwrap();
    for p in &payload {
        let sigs = t1.sh_ok(&format!(
            "nix --extra-experimental-features nix-command path-info --sigs {p}"
        ));
        assert!(sigs.contains(&format!("{key_name}:")), "{sigs}");
        assert!(!sigs.contains("not-the-fleet-cache-1:"), "{sigs}");
    }
    let _ = &g.key_path;
}

/// Puts `paths` (already in the deployer's store) into a testbed host's store.
fn copy_to_host(fleet: &Fleet, host: &TestHost, paths: &[&str]) {
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--to",
            &format!("ssh://root@{}", host.addr),
        ])
        .args(paths)
        .env(
            "NIX_SSHOPTS",
            format!(
                "-i {} -o UserKnownHostsFile={}",
                fleet.identity.display(),
                fleet.known_hosts.display()
            ),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix copy to {}: {}",
        host.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_agent_publishes_signed_zstd_narinfos_and_says_when_the_key_is_missing() {
    if !required() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    let work = tb.dir.path().to_path_buf();
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 100000; salt = \"{}\"; }};",
        unique_salt("agent")
    ));
    let build = fleet.potato(&["build", "t0", "--json"]);
    build.ok();
    let tops: serde_json::Value = serde_json::from_str(build.stdout.trim()).unwrap();
    let top = tops["t0"].as_str().unwrap().to_string();
    copy_to_host(&fleet, host, &[&top]);
    let key = CacheKey::generate(&work, "agent-test-cache-1");
    let other = CacheKey::generate(&work, "agent-test-other-1");
    // The key where the secrets module would put it: in the host's own /run.
    std::fs::create_dir_all(host.dir.join("run/potato-secrets")).unwrap();
    std::fs::copy(&key.secret, host.dir.join("run/potato-secrets/k")).unwrap();
    let agent = common::source_root().join("src/host/agent.sh");
    let key_pub = key.public.clone();
    let closure = host.sh_ok(&format!("nix-store -qR {top}"));
    let count = closure.lines().count();
    let publish = |dir: &str, key: &str| {
        host.sh(&format!(
            "nix-store -qR {top} | sh {} cache-publish {dir} {key} {}",
            agent.display(),
            key_pub
        ))
    };
    let out = publish("/nix/var/potato-test/cache", "/run/potato-secrets/k");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("PUBLISHED {count}\nREPLACED 0")
    );
    let dir = host.dir.join("nix/var/potato-test/cache");
    assert!(
        std::fs::read_to_string(dir.join("nix-cache-info"))
            .unwrap()
            .contains("StoreDir: /nix/store")
    );
    // Each narinfo zstd-compressed and signed: Nix itself verifies the
    // signatures with the right key and refuses them with another.
    let cache_url = format!("file://{}", dir.display());
    let verify = |pk: &str| {
        Command::new("nix")
            .args([
                "--extra-experimental-features",
                "nix-command",
                "store",
                "verify",
                "--store",
                &cache_url,
                "--trusted-public-keys",
                pk,
                "-r",
                &top,
            ])
            .output()
            .unwrap()
    };
    let good = verify(&key.public);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(
        !verify(&other.public).status.success(),
        "another key's check must fail"
    );
    let narinfos: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "narinfo"))
        .collect();
    assert_eq!(narinfos.len(), count);
    for n in &narinfos {
        let text = std::fs::read_to_string(n.path()).unwrap();
        assert!(text.contains("Compression: zstd"), "{text}");
    }
    // Again: everything is there, nothing is added.
    let again = publish("/nix/var/potato-test/cache", "/run/potato-secrets/k");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "PUBLISHED 0\nREPLACED 0"
    );
    // A poisoned cache heals: one narinfo loses its signature, another is
    // re-signed by a key the hosts do not trust. The next publish replaces
    // exactly those two, and the whole closure verifies with the fleet key.
    let mut texts: Vec<(std::path::PathBuf, String)> = narinfos
        .iter()
        .map(|n| (n.path(), std::fs::read_to_string(n.path()).unwrap()))
        .collect();
    texts.sort();
    let unsigned: String = texts[0]
        .1
        .lines()
        .filter(|l| !l.starts_with("Sig: "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&texts[0].0, unsigned).unwrap();
    let foreign_dir = work.join("foreign-cache");
    let foreign_path = texts[1]
        .1
        .lines()
        .find_map(|l| l.strip_prefix("StorePath: "))
        .unwrap()
        .to_string();
    std::fs::create_dir_all(host.dir.join("nix/var/potato-test")).unwrap();
    std::fs::copy(
        &other.secret,
        host.dir.join("nix/var/potato-test/other.sec"),
    )
    .unwrap();
    host.sh_ok(&format!(
        "nix --extra-experimental-features nix-command copy --to 'file://{}?secret-key=/nix/var/potato-test/other.sec&compression=zstd' {foreign_path}",
        foreign_dir.display()
    ));
    let name = texts[1].0.file_name().unwrap();
    std::fs::copy(foreign_dir.join(name), &texts[1].0).unwrap();
    assert!(
        !verify(&key.public).status.success(),
        "the poisoned cache fails the fleet key's check"
    );
    let healed = publish("/nix/var/potato-test/cache", "/run/potato-secrets/k");
    assert_eq!(
        String::from_utf8_lossy(&healed.stdout).trim(),
        "PUBLISHED 2\nREPLACED 2",
        "{}",
        String::from_utf8_lossy(&healed.stderr)
    );
    let good = verify(&key.public);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    // No key: nothing written, NOKEY, exit 4.
    let none = publish("/nix/var/potato-test/cache2", "/run/potato-secrets/absent");
    assert_eq!(none.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), "NOKEY");
    assert!(!host.dir.join("nix/var/potato-test/cache2").exists());
}

#[test]
fn without_its_signing_key_the_cache_is_skipped_with_one_warning_and_hosts_get_direct_pushes() {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(3);
    let (fleet, g, _nginx, served) = cache_on_t0(&mut tb);
    fleet.steer(&format!(
        "payload = {{ count = 1; size = 300000; salt = \"{}\"; }};",
        unique_salt("nokey")
    ));
    // t0 was never deployed: its signing key has not reached it.
    let run = fleet.potato(&["deploy", "t1", "t2", "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("the fleet cache on t0 cannot be used"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains(&format!(
            "no signing key at {}: the secret `fleet-cache-key`",
            g.key_path
        )) && warnings[0].contains("potato cache init"),
        "{}",
        warnings[0]
    );
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["cache"]["host"], "t0");
    assert!(
        doc["cache"]["error"]
            .as_str()
            .unwrap()
            .contains("fleet-cache-key"),
        "{doc}"
    );
    assert_eq!(doc["cache"]["paths_published"], 0);
    for h in doc["hosts"].as_array().unwrap() {
        assert_eq!(h["result"], "deployed", "{h}");
        assert_eq!(h["paths_fetched"], 0, "{h}");
        assert!(h["paths_pushed"].as_u64().unwrap() >= 3, "{h}");
    }
    for host in &tb.hosts[1..] {
        assert_eq!(host.current_generation(), Some(1));
    }
    // The cache host was used as a cache, not deployed to, and its cache
    // holds nothing.
    assert!(tb.hosts[0].activations().is_empty());
    assert_eq!(tb.hosts[0].current_generation(), None);
    assert!(!served.join("nix-cache-info").exists());
}

/// A working fleet cache to break: t0 serves it, t1..t3 consume it, the
/// double started from what potato generated, t0 deployed once (alone: no
/// cache step) so its signing key is in place, then t1..t3 deployed through
/// the cache, each fetching from it: their Nix knows the cache (its
/// nix-cache-info is remembered, as on any host that used it before), the
/// state a cache fails in on a real fleet.
/// The fleet cache on a testbed: t0 the cache host (not yet deployed), the
/// NixOS double started; the fleet, what potato generated, the web server
/// and the directory it serves.
fn cache_on_t0(tb: &mut Testbed) -> (Fleet, Generated, Nginx, PathBuf) {
    let fleet = cache_fleet(tb);
    let g = generated(&fleet, "t0");
    let (nginx, served) = nixos_double(tb, &g, 0);
    (fleet, g, nginx, served)
}

fn working_cache(tb: &mut Testbed) -> (Fleet, Generated, Nginx) {
    let (fleet, g, nginx, _served) = cache_on_t0(tb);
    fleet.steer(&format!(
        "payload = {{ count = 1; size = 100000; salt = \"{}\"; }};",
        unique_salt("cache-host")
    ));
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(r["t0"]["result"], "deployed", "{r}");
    fleet.steer(&format!(
        "payload = {{ count = 1; size = 100000; salt = \"{}\"; }};",
        unique_salt("working")
    ));
    let (code, r, stderr) = fleet.deploy(&["t1", "t2", "t3"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    for h in ["t1", "t2", "t3"] {
        assert_eq!(r[h]["result"], "deployed", "{r}");
        assert!(r[h]["paths_fetched"].as_u64().unwrap() > 0, "{r}");
    }
    (fleet, g, nginx)
}

/// `potato deploy t1 t2 t3 --json` of a new payload of `count` paths,
/// checked: it succeeds, every consumer is deployed and runs the system potato
/// reports, none fetched a path and each was pushed what it lacked (the
/// payload and the system at least). Returns stderr and the document.
fn consumers_deploy_directly(
    fleet: &Fleet,
    tb: &Testbed,
    what: &str,
    count: usize,
) -> (String, serde_json::Value) {
    fleet.steer(&format!(
        "payload = {{ count = {count}; size = {}; salt = \"{}\"; }};",
        300_000 / count,
        unique_salt(what)
    ));
    let run = fleet.potato(&["deploy", "t1", "t2", "t3", "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let doc = run.one_json_document();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3, "{doc}");
    for h in hosts {
        let name = h["host"].as_str().unwrap();
        let host = tb.hosts.iter().find(|t| t.name == name).unwrap();
        assert_eq!(h["result"], "deployed", "{h}");
        assert_eq!(host.current_system(), h["store_path"].as_str().unwrap());
        assert_eq!(h["paths_fetched"], 0, "{h}");
        assert!(
            h["paths_pushed"].as_u64().unwrap() > count as u64,
            "pushed directly: {h}"
        );
    }
    (run.stderr, doc)
}

/// The deploy's warning lines (any line saying "warning").
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.to_lowercase().contains("warning"))
        .collect()
}

#[test]
fn a_cache_host_whose_sshd_is_down_is_skipped_with_one_warning_and_the_consumers_are_pushed_directly()
 {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(4);
    let (fleet, g, nginx) = working_cache(&mut tb);
    let served: BTreeMap<&String, usize> = g
        .consumers
        .values()
        .map(|c| (&c.from, nginx.nars_served_to(&c.from).len()))
        .collect();
    tb.hosts[0].stop_sshd();
    let (stderr, doc) = consumers_deploy_directly(&fleet, &tb, "sshd-down", 1);
    let warnings = warnings(&stderr);
    assert_eq!(warnings.len(), 1, "{stderr}");
    let reason = format!("cannot connect to {}:22", tb.hosts[0].addr);
    assert!(
        warnings[0].contains("the fleet cache on t0 cannot be used")
            && warnings[0].contains(&reason)
            && warnings[0].contains("refused"),
        "{}",
        warnings[0]
    );
    let cache = &doc["cache"];
    assert_eq!(cache["host"], "t0", "{doc}");
    let error = cache["error"].as_str().unwrap_or_else(|| panic!("{doc}"));
    assert!(error.contains(&reason), "{error}");
    assert_eq!(cache["paths_published"], 0, "{cache}");
    // No consumer asked the cache for a NAR since (it holds none of these
    // paths).
    for c in g.consumers.values() {
        assert_eq!(nginx.nars_served_to(&c.from).len(), served[&c.from]);
    }
}

#[test]
fn a_cache_whose_web_server_is_down_leaves_the_consumers_to_direct_pushes() {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(4);
    let (fleet, g, nginx) = working_cache(&mut tb);
    // The cache host answers SSH (the cache step publishes) but nothing
    // listens on the cache's port any more: every consumer's connection is
    // refused. Nix skips a substituter whose nix-cache-info it cannot get,
    // or fails the dry run when it knew the cache already (its narinfo disk
    // cache); either way nothing is fetched, and potato pushes the rest.
    drop(nginx);
    let (_stderr, doc) = consumers_deploy_directly(&fleet, &tb, "nginx-down", 1);
    let cache = &doc["cache"];
    assert!(cache["error"].is_null(), "{cache}");
    assert!(cache["paths_published"].as_u64().unwrap() >= 3, "{cache}");
    for c in g.consumers.values() {
        let refused = tb.hosts[1].sh(&format!(
            "curl -sS -o /dev/null http://{}:{}/nix-cache-info",
            c.via, g.port
        ));
        assert!(!refused.status.success(), "the cache still answers");
    }
}

#[test]
fn a_hung_cache_web_server_costs_the_consumers_a_bounded_wait_then_direct_pushes() {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(4);
    let (fleet, g, nginx) = working_cache(&mut tb);
    // nginx frozen: the consumers' connections are accepted by the kernel and
    // never answered. Nix waits `stalled-download-timeout` per request and
    // attempt (5 attempts), the requests one after another: at Nix's default
    // of 300 s that is 25 minutes per missing path; the generated 15 s (the
    // double's nix.conf carries it) still makes ~75 s per path, so 30 paths
    // would hang the deploy for most of an hour without the agent's bound on
    // the substituters' answers.
    nginx.freeze();
    assert!(
        g.stalled_download_timeout < 300,
        "the consumers keep Nix's 300 s stall timeout"
    );
    let (stderr, doc) = consumers_deploy_directly(&fleet, &tb, "nginx-hung", PATHS);
    assert!(doc["cache"]["error"].is_null(), "{doc}");
    each_consumer_warns_its_cache_did_not_answer(&stderr);
}

/// The user is told, per consumer, why nothing came from its cache: one
/// warning each, without -v.
fn each_consumer_warns_its_cache_did_not_answer(stderr: &str) {
    let warnings = warnings(stderr);
    for h in ["t1", "t2", "t3"] {
        let said = format!("warning: {h}: the host's substituters did not answer within 60 s");
        assert_eq!(
            warnings.iter().filter(|w| w.starts_with(&said)).count(),
            1,
            "{stderr}"
        );
    }
}

/// Payload paths of the unreachable-cache tests: enough that Nix's waiting
/// out each path's requests in turn would last many minutes.
const PATHS: usize = 30;

#[test]
fn a_blackholed_cache_costs_the_consumers_a_bounded_wait_then_direct_pushes() {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(4);
    let (fleet, g, _nginx) = working_cache(&mut tb);
    // The cache host drops every packet to the cache's port (a tunnel that
    // went down, a firewall that drops): SSH still works, so the cache step
    // publishes, but each consumer's connection attempt waits out Nix's
    // connect-timeout (the generated 5 s), 5 attempts per path, the paths one
    // after another: 30 paths would take over 12 minutes.
    tb.hosts[0].sh_ok(&format!(
        "printf 'table inet potato_unreach {{\n chain input {{\n type filter hook input priority -10;\n tcp dport {} drop\n }}\n}}\n' | nft -f -",
        g.port
    ));
    let c = &g.consumers["t1"];
    let probe = tb.hosts[1].sh(&format!(
        "curl -sS -m 3 -o /dev/null http://{}:{}/nix-cache-info",
        c.via, g.port
    ));
    assert_eq!(probe.status.code(), Some(28), "a connect that times out");
    let (stderr, doc) = consumers_deploy_directly(&fleet, &tb, "blackhole", PATHS);
    assert!(doc["cache"]["error"].is_null(), "{doc}");
    each_consumer_warns_its_cache_did_not_answer(&stderr);
}

/// Whether the host's deploy lock is held right now (the agent holds it with
/// flock for as long as potato's connection lives).
fn lock_held(host: &TestHost) -> bool {
    let lock = host.dir.join("nix/var/potato/deploy.lock");
    lock.exists()
        && !Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
}

#[test]
fn the_hosts_connect_and_lock_while_the_cache_host_is_filled() {
    if !required() {
        return;
    }
    let mut tb = Testbed::new(3);
    let (fleet, _g, _nginx, served) = cache_on_t0(&mut tb);
    // The cache host first: its signing key arrives with its system.
    let (code, r, stderr) = fleet.deploy(&["t0", "--no-magic-rollback"]);
    assert_eq!(code, 0, "{stderr}\n{r}");

    // 3 MB of random payload over a 2 Mbit/s link to the cache host: its
    // push takes seconds, the window in which the hosts must be seen holding
    // their locks with the payload not yet in the cache.
    tb.hosts[0].limit_rate("2mbit");
    fleet.steer(&format!(
        "payload = {{ count = 1; size = 3000000; salt = \"{}\"; }};",
        unique_salt("overlap")
    ));
    let build = fleet.potato(&["build", "t1", "--json"]);
    build.ok();
    let tops: serde_json::Value = serde_json::from_str(build.stdout.trim()).unwrap();
    let top = tops["t1"].as_str().unwrap().to_string();
    let payload = std::fs::read_to_string(format!("{top}/etc/payload")).unwrap();
    let payload = payload.lines().next().unwrap().to_string();
    let narinfo = served.join(format!(
        "{}.narinfo",
        &payload["/nix/store/".len().."/nix/store/".len() + 32]
    ));

    let mut child = fleet
        .command(&["deploy", "t1", "t2", "--json", "--no-magic-rollback"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut overlapped = false;
    while child.try_wait().unwrap().is_none() {
        if !overlapped && lock_held(&tb.hosts[1]) && lock_held(&tb.hosts[2]) {
            // Read after the locks: the payload was not yet published when
            // both hosts already held their locks.
            overlapped = !narinfo.exists();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        overlapped,
        "the hosts took their locks only after the cache was filled\n{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(doc["cache"]["error"].is_null(), "{doc}");
    assert!(narinfo.exists(), "the payload was published");
    for h in doc["hosts"].as_array().unwrap() {
        assert_eq!(h["result"], "deployed", "{h}");
        let phases: Vec<&str> = h["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_str().unwrap())
            .collect();
        assert_eq!(phases[..3], ["connect", "wait", "push"], "{h}");
        assert!(h["paths_fetched"].as_u64().unwrap() >= 2, "{h}");
        assert_eq!(h["paths_pushed"], 0, "{h}");
    }
}
