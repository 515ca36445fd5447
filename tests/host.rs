//! The host layer (`src/host/`) against real testbed hosts: reading a host
//! writes nothing there, status works on several hosts at once, and bootstrap's
//! install pushes through the same compressed pipeline as deploy.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::fleet::Fleet;
use common::testbed::{self, Testbed};

/// Every entry under `dir` (not following links): its kind, size, mtime and,
/// for a link, its target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let kind = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                "dir".to_string()
            } else {
                format!("file {} bytes", m.len())
            };
            out.insert(
                p.strip_prefix(base).unwrap().to_path_buf(),
                format!("{kind}, mtime {}.{:09}", m.mtime(), m.mtime_nsec()),
            );
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What changed between two snapshots, one line per path.
fn changes(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, a) in after {
        match before.get(p) {
            None => out.push(format!("new: {} ({a})", p.display())),
            Some(b) if b != a => out.push(format!("changed: {} ({b} → {a})", p.display())),
            _ => {}
        }
    }
    for p in before.keys().filter(|p| !after.contains_key(*p)) {
        out.push(format!("removed: {}", p.display()));
    }
    out
}

/// The trees a session on the host could write to: its /nix (the store,
/// /nix/var/potato, profiles), /run and /etc/ssh, and what it wrote to /tmp
/// (the upper layer of an overlay on the host's /tmp).
fn host_trees(dir: &Path, tmp_upper: &Path) -> BTreeMap<PathBuf, String> {
    let mut all = BTreeMap::new();
    for t in ["nix", "run", "etc"] {
        for (p, v) in snapshot(&dir.join(t)) {
            all.insert(Path::new(t).join(p), v);
        }
    }
    for (p, v) in snapshot(tmp_upper) {
        all.insert(Path::new("tmp").join(p), v);
    }
    all
}

/// `potato status` (and the other read-only commands: `plan --live`,
/// `audit --live`, bootstrap's detection) leaves a fresh host's filesystem as
/// it was: no agent is uploaded, no /nix/var/potato created. After a deploy
/// (which installs the agent), status does not reinstall it either.
#[test]
fn reading_a_host_writes_nothing_there() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    // The host's /tmp is an overlay: what its sessions write there lands in an
    // upper layer outside /tmp (so it cannot overlap the lower one).
    let layers = tempfile::Builder::new()
        .prefix("potato-host-tmp")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (upper, work) = (layers.path().join("u"), layers.path().join("w"));
    tb.hosts[0].spawn_sshd_after(
        &[],
        &format!(
            "mkdir -p {u} {w} && mount -t overlay overlay -o lowerdir=/tmp,upperdir={u},workdir={w} /tmp",
            u = upper.display(),
            w = work.display()
        ),
    );
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    let target = format!("root@{}", host.addr);
    let read_only: Vec<Vec<&str>> = vec![
        vec!["status", "t0", "--json"],
        vec!["plan", "t0", "--live"],
        vec!["audit", "t0", "--live"],
        vec!["bootstrap", "t0", "--detect", "--target", &target, "--json"],
    ];

    let before = host_trees(&host.dir, &upper);
    assert!(
        !host.dir.join("nix/var/potato").exists(),
        "the testbed host is fresh"
    );
    let status = fleet.potato(&["status", "t0", "--json"]);
    status.ok();
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        v["hosts"][0]["state"], "drifted",
        "status reached the host: {v}"
    );
    let mut ran = Vec::new();
    for args in &read_only[1..] {
        let run = fleet.potato(args);
        // audit --live fails its baseline checks on a testbed host (exit 1);
        // what counts here is that it talked to the host.
        assert!(run.code == 0 || run.code == 1, "{args:?}: {}", run.stderr);
        ran.push(format!("{args:?}: exit {}", run.code));
    }
    let after = host_trees(&host.dir, &upper);
    assert_eq!(
        changes(&before, &after),
        Vec::<String>::new(),
        "reading a fresh host wrote on it ({ran:?})"
    );

    // A deploy installs the agent; reading afterwards leaves it (and
    // everything else) untouched. (Detection may have filled in the host file:
    // generate first.)
    fleet.potato(&["gen"]).ok();
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert!(host.dir.join("nix/var/potato/agent.sh").exists());
    let before = host_trees(&host.dir, &upper);
    let status = fleet.potato(&["status", "t0", "--json"]);
    status.ok();
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["hosts"][0]["state"], "in sync", "{v}");
    assert_eq!(v["hosts"][0]["detail"], "generation 1", "{v}");
    for args in &read_only[1..] {
        let run = fleet.potato(args);
        assert!(run.code == 0 || run.code == 1, "{args:?}: {}", run.stderr);
    }
    assert_eq!(
        changes(&before, &host_trees(&host.dir, &upper)),
        Vec::<String>::new(),
        "reading a deployed host wrote on it"
    );
}

/// `potato status` works on every host at once. Each host's sshd runs every
/// command behind a barrier that opens only when every host has a command
/// running (or gives up after 30 s, and records that): one host after the
/// other, the first host's command would wait out the barrier.
#[test]
fn status_reaches_several_hosts_at_once() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(3);
    let gate = tb.dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let barrier = tb.dir.path().join("barrier.sh");
    std::fs::write(
        &barrier,
        r#"#!/bin/sh
# barrier DIR COUNT HOST: wait until COUNT hosts have a command here, then run it.
dir=$1 count=$2 host=$3
: > "$dir/arrived-$host"
i=0
while [ "$(ls "$dir" | grep -c '^arrived-')" -lt "$count" ]; do
  i=$((i + 1))
  if [ "$i" -ge 300 ]; then echo "$host" >> "$dir/gave-up"; break; fi
  sleep 0.1
done
exec sh -c "$SSH_ORIGINAL_COMMAND"
"#,
    )
    .unwrap();
    let count = tb.hosts.len();
    for h in tb.hosts.iter_mut() {
        h.write_sshd_config(&format!(
            "ForceCommand sh {} {} {count} {}\n",
            barrier.display(),
            gate.display(),
            h.name
        ));
        h.spawn_sshd(&[]);
    }
    let fleet = Fleet::new(&tb);
    let run = fleet.potato(&["status", "--json"]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), count, "{v}");
    for h in hosts {
        assert_eq!(h["state"], "drifted", "every host answered: {v}");
    }
    for h in &tb.hosts {
        assert!(gate.join(format!("arrived-{}", h.name)).exists());
    }
    let gave_up = std::fs::read_to_string(gate.join("gave-up")).unwrap_or_default();
    assert_eq!(
        gave_up, "",
        "these hosts waited for the others in vain: status ran them one by one"
    );
}

/// `bootstrap --install` pushes through the one push pipeline: the closure
/// travels zstd-compressed (the machine has zstd), decompressed by the
/// machine's own zstd, which a wrapper on the host records.
#[test]
fn bootstrap_install_streams_the_closure_compressed() {
    if !testbed::require() || !common::have_tools(&["zstd", "age"]) {
        return;
    }
    let mut tb = Testbed::new(1);
    let dir = tb.host(0).dir.clone();
    let real = dir.join("zstd.real");
    let zstd = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v zstd"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let zstd = zstd.trim();
    std::fs::copy(zstd, &real).unwrap();
    let wrapper = dir.join("zstd-wrapper");
    let log = dir.join("zstd.log");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    tb.hosts[0].spawn_sshd(&[(&wrapper, zstd)]);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    fleet.pregenerate_host_key("t0");
    fleet.install_into_run_target("t0", host);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        calls
            .lines()
            .any(|l| l.split_whitespace().any(|w| w.starts_with("-d"))),
        "the machine's zstd decompressed the stream: calls were {calls:?}"
    );
}

/// A host that reads nothing of the push for longer than the SSH keepalive
/// interval (15 s; here its zstd starts 25 s late, as a host busy writing a
/// large path to an SD card would) still gets the whole closure: libssh2
/// reports such a wait as "Timed out waiting on socket" although the
/// connection is fine, and the push must wait it out, not fail.
#[test]
fn a_host_that_pauses_longer_than_the_keepalive_still_gets_its_push() {
    if !testbed::require() || !common::have_tools(&["zstd"]) {
        return;
    }
    let mut tb = Testbed::new(1);
    let dir = tb.host(0).dir.clone();
    let zstd = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v zstd"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let zstd = zstd.trim().to_string();
    let real = dir.join("zstd.real");
    std::fs::copy(&zstd, &real).unwrap();
    let wrapper = dir.join("zstd-slow");
    let log = dir.join("zstd.log");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$*\" in *-d*) echo paused >> {log}; sleep 25 ;; esac\nexec {real} \"$@\"\n",
            log = log.display(),
            real = real.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    tb.hosts[0].spawn_sshd(&[(&wrapper, &zstd)]);
    let fleet = Fleet::new(&tb);
    // 12 MB of random data: far more than the SSH window and the socket
    // buffers, so the deployer's write blocks while the host pauses.
    fleet.steer(&format!(
        "payload = {{ count = 1; size = 12000000; salt = \"pause-{}-{:?}\"; }};",
        std::process::id(),
        std::time::Instant::now()
    ));
    let (code, v, stderr) = fleet.deploy(&[
        "t0",
        "--no-substitute",
        "--compress",
        "yes",
        "--confirm-timeout",
        "120s",
    ]);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("paused"),
        "the host's zstd paused before reading"
    );
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["t0"]["result"], "deployed", "{v}");
    assert_eq!(
        tb.host(0).current_system(),
        v["t0"]["store_path"].as_str().unwrap(),
        "the host runs the pushed system"
    );
}

/// A probe of a machine whose address goes away mid-command (a reboot takes
/// it; no FIN arrives) gives up at its deadline instead of waiting for TCP to
/// give up many minutes later: bootstrap's wait for the rebooted machine
/// probes the old address while the machine may be leaving it.
#[test]
fn a_probe_of_a_machine_that_vanishes_mid_command_gives_up() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let h = tb.host(0);
    let target = potato::plan::Target {
        user: Some("root".into()),
        host: h.addr.clone(),
        port: None,
    };
    let utf8 = |p: &Path| camino::Utf8PathBuf::from_path_buf(p.to_path_buf()).unwrap();
    // An empty ssh_config: this machine's own ~/.ssh/config plays no part.
    let ssh_config = tb.dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "").unwrap();
    let opts = potato::ssh::SshOptions {
        identity: Some(utf8(&tb.client_key)),
        known_hosts: vec![utf8(&tb.known_hosts)],
        trust_file: utf8(&tb.known_hosts),
        connect_timeout: std::time::Duration::from_secs(5),
        ssh_config: Some(utf8(&ssh_config)),
        host_name: None,
    };
    let remote = potato::host::Remote::connect(&target, &opts).expect("the host answers");
    let (netns, addr) = (h.netns.clone(), h.addr.clone());
    let vanish = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let dev = String::from_utf8(
            std::process::Command::new("ip")
                .args(["-n", &netns, "-o", "-4", "addr", "show"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .lines()
        .find(|l| l.contains(&format!(" {addr}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the host's interface")
        .to_string();
        let ok = std::process::Command::new("ip")
            .args(["-n", &netns, "addr", "flush", "dev", &dev])
            .status()
            .unwrap()
            .success();
        assert!(ok, "the address went away");
    });
    let out = remote.run_within(
        "sleep 20; echo still-here",
        std::time::Duration::from_secs(6),
    );
    vanish.join().unwrap();
    let err = out.expect_err("the machine vanished: the probe fails, it does not answer");
    assert!(
        err.to_string().contains("did not end in time"),
        "the probe gave up at its deadline: {err}"
    );
    std::mem::forget(remote); // its session would wait on a peer that is gone
}
