//! The deploy engine against real hosts: testbed namespaces with their own sshd
//! and Nix store. NixOS itself is the test double in tests/fixtures/nixpkgs (its
//! switch-to-configuration applies the firewall inside the test host and can be
//! told to fail, hang or cut SSH). potato runs its normal code path; only the
//! flake input and the targets differ.

mod common;

use common::fleet::Fleet;
use common::testbed::{self, Testbed};

#[test]
fn fresh_host_then_no_op_then_changed_config() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);

    // Fresh host: the closure arrives, generation 1 is current, activation ran.
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let first = &r["t0"];
    assert_eq!(first["result"], "deployed", "{first}");
    assert_eq!(first["generation"], 1);
    let top1 = first["store_path"].as_str().unwrap().to_string();
    assert_eq!(host.current_generation(), Some(1));
    assert_eq!(host.current_system(), top1);
    assert_eq!(host.activations(), vec![format!("switch {top1}")]);
    assert!(first["paths_pushed"].as_u64().unwrap() >= 2);
    let ruleset = host.sh_ok("nft list table inet potato");
    assert!(
        ruleset.contains("tcp dport 22 accept"),
        "the host's firewall was loaded: {ruleset}"
    );

    // No-op redeploy: nothing pushed, not re-activated.
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0);
    assert_eq!(r["t0"]["result"], "up-to-date");
    assert_eq!(r["t0"]["paths_pushed"], 0);
    assert_eq!(host.activations().len(), 1);

    // A changed config: only the changed paths travel; generation 2.
    let text = fleet.read_host("t0").replace(
        "memory = \"1GiB\"",
        "memory = \"1GiB\"\ntimezone = \"Europe/Lisbon\"",
    );
    fleet.write_host("t0", &text);
    fleet.potato(&["gen"]).ok();
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}");
    let second = &r["t0"];
    assert_eq!(second["result"], "deployed");
    assert_eq!(second["generation"], 2);
    // The generated files' path and the toplevel changed; nothing else.
    assert_eq!(second["paths_pushed"], 2, "{second}");
    assert!(second["bytes_pushed"].as_u64().unwrap() > 0);
    assert_eq!(host.current_generation(), Some(2));
}

/// Asserts that a host's result carries an error containing `text`.
fn assert_error(r: &serde_json::Value, host: &str, text: &str) {
    let err = r[host]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{host} has no error: {}", r[host]));
    assert!(err.contains(text), "{host}: expected {text:?} in:\n{err}");
}

/// Deploys t0 once (generation 1) and returns its toplevel.
fn first_deploy(fleet: &Fleet) -> String {
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    r["t0"]["store_path"].as_str().unwrap().to_string()
}

/// Changes t0's configuration so the next deploy is a new system.
fn change_config(fleet: &Fleet, tz: &str) {
    let text = fleet.read_host("t0");
    let text = match text.find("timezone = ") {
        Some(_) => {
            text.lines()
                .map(|l| {
                    if l.starts_with("timezone = ") {
                        format!("timezone = \"{tz}\"")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        None => text.replace(
            "memory = \"1GiB\"",
            &format!("memory = \"1GiB\"\ntimezone = \"{tz}\""),
        ),
    };
    fleet.write_host("t0", &text);
    fleet.potato(&["gen"]).ok();
}

#[test]
fn failed_activation_returns_to_the_previous_generation() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let top1 = first_deploy(&fleet);
    fleet.steer("t0 = \"fail\";");
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1);
    let res = &r["t0"];
    assert_eq!(res["result"], "rolled-back", "{res}");
    let err = res["error"].as_str().unwrap();
    assert!(err.contains("activation failed (exit 4)"), "{err}");
    assert!(
        err.contains("this activation fails, as the test asked"),
        "the activation's own error is shown: {err}"
    );
    assert_eq!(res["generation"], 1);
    assert_eq!(tb.host(0).current_generation(), Some(1));
    assert_eq!(tb.host(0).current_system(), top1);
}

#[test]
fn activation_that_cuts_ssh_is_rolled_back_by_the_watchdog() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let top1 = first_deploy(&fleet);
    fleet.steer("t0 = \"cut-ssh\";");
    let started = std::time::Instant::now();
    let (code, r, _) = fleet.deploy(&["t0", "--confirm-timeout", "3s"]);
    assert_eq!(code, 1);
    let res = &r["t0"];
    assert_eq!(res["result"], "rolled-back", "{res}");
    let err = res["error"].as_str().unwrap();
    // Which side speaks first is a race on a busy machine: the deployer's
    // confirm attempt times out, or it learns the host already rolled back.
    // Either way the host's own verdict is quoted.
    assert!(
        err.contains("could not confirm: no new SSH connection within 3s")
            || err.starts_with("the host rolled back before the confirmation arrived"),
        "{err}"
    );
    assert!(
        err.contains("no confirmation over a new SSH connection within 3s"),
        "the host's own verdict: {err}"
    );
    assert!(started.elapsed().as_secs() < 60);
    // The old generation's activation restored the firewall: SSH works again.
    assert_eq!(tb.host(0).current_generation(), Some(1));
    assert_eq!(tb.host(0).current_system(), top1);
    fleet.potato(&["generations", "t0"]).ok();
}

#[test]
fn hung_activation_is_rolled_back() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let top1 = first_deploy(&fleet);
    fleet.steer("t0 = \"hang\";");
    let (code, r, _) = fleet.deploy(&["t0", "--activation-timeout", "3s"]);
    assert_eq!(code, 1);
    assert_eq!(r["t0"]["result"], "rolled-back", "{}", r["t0"]);
    // Either the watchdog's deadline or potato's refusal to confirm an unfinished
    // activation triggers the rollback, whichever comes first.
    let err = r["t0"]["error"].as_str().unwrap();
    assert!(
        err.contains("activation did not finish within 3s")
            || err.contains("the activation had not finished"),
        "{err}"
    );
    assert_eq!(tb.host(0).current_system(), top1);
}

#[test]
fn failing_health_check_rolls_back() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let top1 = first_deploy(&fleet);
    // Traefik publishes 443 (so the check is valid), but in the test host
    // nothing listens there.
    fleet.append_host(
        "t0",
        // ACME TLS: a testbed fleet has no fleet CA (tests/pki.rs covers internal TLS).
        "\n[proxy]\ntls = \"acme\"\nemail = \"ops@example.net\"\n\n[containers]\nservices = [\"traefik\"]\n\n[[health]]\ntcp = \"127.0.0.1:443\"\ngrace = \"0s\"\n",
    );
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1);
    let res = &r["t0"];
    assert_eq!(res["result"], "rolled-back", "{res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("health check `tcp 127.0.0.1:443` failed: nothing accepts TCP connections on 127.0.0.1:443"),
        "{res}"
    );
    assert_eq!(tb.host(0).current_generation(), Some(1));
    assert_eq!(tb.host(0).current_system(), top1);
}

#[test]
fn rollback_returns_to_the_generation_current_when_the_deploy_began() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    first_deploy(&fleet);
    change_config(&fleet, "Europe/Paris");
    let (_, r, _) = fleet.deploy(&["t0"]);
    let top2 = r["t0"]["store_path"].as_str().unwrap().to_string();
    change_config(&fleet, "Europe/Rome");
    let (_, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(r["t0"]["generation"], 3);

    // rollback --to 2 and generations agree with nix-env on the host.
    fleet.potato(&["rollback", "t0", "--to", "2"]).ok();
    assert_eq!(host.generations(), vec![(1, false), (2, true), (3, false)]);
    assert_eq!(host.current_system(), top2);
    let g = fleet.potato(&["generations", "t0", "--json"]);
    g.ok();
    let v: serde_json::Value = serde_json::from_str(&g.stdout).unwrap();
    let listed: Vec<(u64, bool)> = v["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["number"].as_u64().unwrap(),
                x["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, vec![(1, false), (2, true), (3, false)]);
    assert_eq!(v["generations"][1]["store_path"], top2.as_str());

    // Generation 4 fails to confirm: back to 2 (current when the deploy began), not 3.
    change_config(&fleet, "Europe/Oslo");
    fleet.steer("t0 = \"cut-ssh\";");
    let (code, r, _) = fleet.deploy(&["t0", "--confirm-timeout", "3s"]);
    assert_eq!(code, 1);
    assert_eq!(r["t0"]["result"], "rolled-back");
    assert_eq!(host.current_generation(), Some(2));
    assert_eq!(host.current_system(), top2);
    assert!(
        host.generations().iter().any(|(n, _)| *n == 4),
        "generation 4 was created"
    );

    // Plain rollback goes to the generation before the current one.
    fleet.potato(&["rollback", "t0"]).ok();
    assert_eq!(host.current_generation(), Some(1));
    let bad = fleet.potato(&["rollback", "t0", "--to", "9"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("t0 has no generation 9"),
        "{}",
        bad.stderr
    );
}

#[test]
fn failed_activation_without_magic_rollback_still_restores() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let top1 = first_deploy(&fleet);
    fleet.steer("t0 = \"fail\";");
    let (code, r, _) = fleet.deploy(&["t0", "--no-magic-rollback"]);
    assert_eq!(code, 1);
    assert_eq!(r["t0"]["result"], "rolled-back", "{}", r["t0"]);
    assert_error(
        &r,
        "t0",
        "the host says: rolled back (activation failed (exit 4))",
    );
    assert_eq!(tb.host(0).current_system(), top1);
}

#[test]
fn host_keys_and_credentials() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let empty = fleet.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let empty_arg = empty.to_str().unwrap();

    // Unknown host key: refused with its fingerprint and the command that trusts it.
    let run = fleet.potato(&["deploy", "t0", "--known-hosts", empty_arg]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("unknown host key for 10.213."),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ssh-ed25519 SHA256:"), "{}", run.stderr);
    assert!(run.stderr.contains("potato trust t0"), "{}", run.stderr);
    assert_eq!(
        tb.host(0).current_generation(),
        None,
        "nothing happened on the host"
    );

    // potato trust records it; then the deploy goes through.
    let trust = fleet.potato(&["trust", "t0", "--known-hosts", empty_arg]);
    trust.ok();
    let expected = ssh_keygen_fingerprint(&tb.host(0).dir.join("etc/ssh/ssh_host_ed25519_key.pub"));
    assert!(
        trust.stdout.contains(&expected),
        "trust shows the same fingerprint as ssh-keygen ({expected}): {}",
        trust.stdout
    );
    assert!(
        std::fs::read_to_string(&empty)
            .unwrap()
            .starts_with(&format!("{} ssh-ed25519 ", tb.host(0).addr))
    );
    let (code, r, stderr) = fleet.deploy(&["t0", "--known-hosts", empty_arg]);
    assert_eq!(code, 0, "{stderr}\n{r}");

    // Bad credentials: a key the host does not know.
    let other = fleet.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let run = fleet.potato(&["generations", "t0", "--identity", other.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("authentication as root@10.213."),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("key {}", other.display())),
        "{}",
        run.stderr
    );

    // A changed host key is refused loudly.
    tb.hosts[0].change_host_key();
    let run = fleet.potato(&["deploy", "t0", "--force", "--known-hosts", empty_arg]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("HOST KEY CHANGED"), "{}", run.stderr);
}

fn ssh_keygen_fingerprint(pubkey: &std::path::Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pubkey)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn a_held_lock_refuses_a_second_deploy_until_its_holder_dies() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    first_deploy(&fleet);
    // Another deployer holds the lock through the agent, as potato does.
    let holder = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.host(0).netns, "unshare", "-m", "--propagation", "private", "sh", "-c"])
        .arg(format!("mount --bind {d}/nix /nix && exec sh /nix/var/potato/agent.sh lock 'potato deploy by alice@laptop (pid 42)'", d = tb.host(0).dir.display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    change_config(&fleet, "Europe/Vienna");
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1);
    let err = r["t0"]["error"].as_str().unwrap();
    assert!(
        err.contains(
            "another deploy holds t0's lock: potato deploy by alice@laptop (pid 42) since 20"
        ),
        "{err}"
    );
    assert_eq!(tb.host(0).current_generation(), Some(1));

    // The holder dies without cleaning up: the lock dies with it.
    let mut holder = holder;
    holder.kill().unwrap();
    holder.wait().unwrap();
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(tb.host(0).current_generation(), Some(2));
}

#[test]
fn two_concurrent_deploys_of_one_host() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    first_deploy(&fleet);
    // A slow activation keeps the first deploy inside its lock and watchdog.
    fleet.steer("t0 = \"hang\";");
    let mut first = fleet
        .command(&["deploy", "t0", "--activation-timeout", "4s", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (code, r, _) = fleet.deploy(&["t0", "--force"]);
    assert_eq!(code, 1);
    let err = r["t0"]["error"].as_str().unwrap();
    assert!(
        err.contains("holds t0's lock") || err.contains("rollback watchdog is still pending on t0"),
        "{err}"
    );
    let status = first.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "the first deploy rolls back its hung activation"
    );
    assert_eq!(tb.host(0).current_generation(), Some(1));
}

#[test]
fn six_hosts_in_parallel_one_failing() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(6);
    let fleet = Fleet::new(&tb);
    fleet.steer("t3 = \"fail\";");
    let (code, r, _) = fleet.deploy(&["@testbed", "--parallel", "6"]);
    assert_eq!(code, 1);
    for i in 0..6 {
        let name = format!("t{i}");
        let expected = if i == 3 { "rolled-back" } else { "deployed" };
        assert_eq!(r[&name]["result"], expected, "{name}: {}", r[&name]);
        if i != 3 {
            assert_eq!(tb.host(i).current_generation(), Some(1), "{name}");
            assert!(
                tb.host(i)
                    .current_system()
                    .ends_with(&format!("nixos-system-{name}")),
                "{name}"
            );
        }
    }
    // t3 had no earlier generation to return to: the host says so, and the failed
    // system was never made the running one.
    assert_error(&r, "t3", "no earlier generation");
    assert_eq!(tb.host(3).current_system(), "");
    // The human summary says which host did what.
    let human = fleet.potato(&["deploy", "@testbed"]);
    assert_eq!(human.code, 1);
    assert!(
        human
            .stdout
            .lines()
            .filter(|l| l.contains("up to date"))
            .count()
            == 5,
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("t3") && l.contains("rolled back")),
        "{}",
        human.stdout
    );
}

#[test]
fn killing_potato_mid_push_leaves_the_host_untouched() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let top1 = first_deploy(&fleet);
    // 30 x 4 MB of payload over a 40 Mbit/s link: about 25 s of pushing.
    fleet.steer("payload = { count = 30; size = 4000000; };");
    fleet
        .potato(&[
            "build",
            "t0",
            "--override-input",
            "nixpkgs",
            fleet.path().join("nixpkgs-double").to_str().unwrap(),
        ])
        .ok();
    tb.host(0).limit_rate("40mbit");
    let mut child = fleet
        .command(&["deploy", "t0", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until data is arriving in the host's store, then kill potato.
    let started = std::time::Instant::now();
    loop {
        let arriving = tb
            .host(0)
            .sh_ok("ls /nix/store | grep -c payload || true")
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            > 0
            || tb
                .host(0)
                .sh_ok("ls -a /nix/store | grep -c '^\\.' || true")
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
                > 2;
        if arriving || started.elapsed().as_secs() > 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the push was still running when potato was killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        tb.host(0).generations(),
        vec![(1, true)],
        "no new generation"
    );
    assert_eq!(tb.host(0).current_system(), top1);
    // The lock died with the connection: the next deploy goes through.
    tb.host(0).limit_rate("10gbit");
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(tb.host(0).current_generation(), Some(2));
}

#[test]
fn a_remote_answering_with_a_malicious_store_path_is_refused() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    // This host's nix-store lies when asked which paths are missing.
    let evil = tb.dir.path().join("evil-nix-store");
    common::write_script(
        &evil,
        "#!/bin/sh\necho '/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-x; rm -rf /'\n",
    );
    tb.hosts[0].spawn_sshd(&[(evil.as_path(), "/usr/bin/nix-store")]);
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1);
    let err = r["t0"]["error"].as_str().unwrap();
    assert!(err.contains("not a store path; refusing it"), "{err}");
    assert!(
        err.contains("the name has a character Nix does not allow"),
        "{err}"
    );
    assert_eq!(tb.host(0).generations(), vec![], "nothing was activated");

    // A well-formed path potato never asked about is refused too.
    std::fs::write(
        &evil,
        "#!/bin/sh\necho /nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-not-in-the-closure\n",
    )
    .unwrap();
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1);
    assert_error(&r, "t0", "named a store path potato did not ask about");
}

#[test]
fn status_and_exec() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(2);
    let fleet = Fleet::new(&tb);
    let (code, _, stderr) = fleet.deploy(&["t0", "t1"]);
    assert_eq!(code, 0, "{stderr}");
    change_config(&fleet, "Asia/Tokyo"); // t0 now differs from what it runs
    let run = fleet.potato(&["status", "--json"]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let state = |h: &str| {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["host"] == h)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("t0"), "drifted");
    assert_eq!(state("t1"), "in sync");

    let run = fleet.potato(&[
        "exec",
        "@testbed",
        "--",
        "sh",
        "-c",
        "echo hello from $(readlink -e /run/current-system | cut -c45-)",
    ]);
    run.ok();
    assert!(
        run.stdout.contains("t0 | hello from nixos-system-t0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("t1 | hello from nixos-system-t1"),
        "{}",
        run.stdout
    );
    let run = fleet.potato(&["exec", "t1", "--", "false"]);
    assert_eq!(run.code, 1);

    // An unreachable host is reported as such.
    let text = fleet
        .read_host("t1")
        .replace(&tb.host(1).addr, "10.213.0.254");
    fleet.write_host("t1", &text);
    fleet.potato(&["gen"]).ok();
    let run = fleet.potato(&["status", "t1", "--connect-timeout", "1s"]);
    run.ok();
    assert!(run.stdout.contains("unreachable"), "{}", run.stdout);
}

#[test]
fn proxy_jump_and_host_aliases_from_ssh_config() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    // The baseline turns TCP forwarding off; a jump host needs it.
    tb.hosts[0].allow_tcp_forwarding();
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    // The host is reached at 127.0.0.1 *inside its own namespace*, through
    // itself as the jump host: only the tunnel can get there.
    let config = fleet.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host behind-bastion\n  HostName 127.0.0.1\n  User root\n  ProxyJump root@{}\n",
            host.addr
        ),
    )
    .unwrap();
    let mut kh = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    kh.push_str(&format!("127.0.0.1 {}\n", host.public_key()));
    let kh_file = fleet.path().join("known_hosts_jump");
    std::fs::write(&kh_file, kh).unwrap();
    let text = fleet.read_host("t0").replace(
        &format!("target = \"root@{}\"", host.addr),
        "target = \"behind-bastion\"\nfrom = \"127.0.0.1\"",
    );
    fleet.write_host("t0", &text);
    fleet.potato(&["gen"]).ok();
    let (code, r, stderr) = fleet.deploy(&[
        "t0",
        "--ssh-config",
        config.to_str().unwrap(),
        "--known-hosts",
        kh_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(r["t0"]["result"], "deployed");
    assert_eq!(host.current_generation(), Some(1));
    // The final hop's key is checked too: without its known_hosts line, refused.
    let (code, r, _) = fleet.deploy(&["t0", "--force", "--ssh-config", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_error(&r, "t0", "unknown host key for 127.0.0.1");
}

#[test]
fn ssh_agent_authentication() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let sock = fleet.path().join("agent.sock");
    let agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Kill(agent);
    for _ in 0..50 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let added = std::process::Command::new("ssh-add")
        .arg(&fleet.identity)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["generations", "t0", "--known-hosts"])
        .arg(&fleet.known_hosts)
        .current_dir(fleet.path())
        .env("SSH_AUTH_SOCK", &sock)
        .env("HOME", fleet.path()) // no ~/.ssh/id_* to fall back on
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn verbose_output_shows_the_activation_and_plain_output_shows_phases() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let run = fleet.potato(&["deploy", "t0", "-v"]);
    run.ok();
    // stderr is not a terminal here: plain lines per phase, then the activation output.
    for line in [
        "t0: connect",
        "t0: push",
        "t0: activate",
        "t0: confirm",
        "t0 | test double: activated",
    ] {
        assert!(
            run.stderr.contains(line),
            "missing {line:?} in:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("t0") && l.contains("deployed")),
        "summary table: {}",
        run.stdout
    );
    // Plain lines, no control characters: the push's bytes once, when done
    // (the reporter's vocabulary, as bootstrap's install), and the result.
    let stderr = run.plain_stderr();
    assert!(
        stderr.lines().any(|l| l.starts_with("t0: push done (")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("t0: deployed generation")),
        "{stderr}"
    );
    // --json: one document on stdout, the same plain progress on stderr.
    let run = fleet.potato(&["deploy", "t0", "--force", "--json"]);
    run.ok();
    let doc = run.one_json_document();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["hosts"][0]["host"], "t0", "{doc}");
    let stderr = run.plain_stderr();
    for line in ["t0: connect", "t0: activate"] {
        assert!(stderr.lines().any(|l| l == line), "{line:?} in {stderr}");
    }
    // --quiet: nothing but warnings on stderr.
    let run = fleet.potato(&["deploy", "t0", "--force", "--json", "--quiet"]);
    run.ok();
    run.one_json_document();
    assert!(!run.stderr.contains("t0: connect"), "{}", run.stderr);
}

#[test]
fn the_watchdog_ignores_a_confirmation_of_an_unfinished_activation() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    first_deploy(&fleet); // installs the agent
    let host = tb.host(0);
    // A system whose activation hangs, activated in test mode by the agent itself.
    let fake = host.dir.join("fake-system");
    std::fs::create_dir_all(fake.join("bin")).unwrap();
    std::fs::write(
        fake.join("bin/switch-to-configuration"),
        "#!/bin/sh\nsleep 30\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(fake.join("bin/switch-to-configuration"))
        .status()
        .unwrap();
    let agent = "sh /nix/var/potato/agent.sh";
    let armed = host.sh_ok(&format!(
        "{agent} activate {} test 0abc 1 2 4",
        fake.display()
    ));
    assert!(armed.starts_with("ARMED"), "{armed}");
    host.sh_ok(&format!("{agent} confirm 0abc"));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        host.sh_ok(&format!("{agent} result 0abc 0")).trim(),
        "pending",
        "an early confirmation is not a confirmation"
    );
    let verdict = host.sh_ok(&format!("{agent} result 0abc 15"));
    assert_eq!(
        verdict.trim(),
        "rolled-back activation did not finish within 4s"
    );
}

#[test]
fn secrets_reach_the_host_decrypted_and_never_a_store() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    let v1 = "s3cr3t-v1-2f9c1a77e0";
    fleet.set_secret("t0", "app-token", v1);
    fleet.append_host(
        "t0",
        "\n[secrets.app-token]\nowner = \"nobody\"\ngroup = \"nogroup\"\nmode = \"0440\"\n",
    );
    let run = fleet.potato(&["deploy", "t0", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stdout.contains(v1) && !run.stderr.contains(v1),
        "never in potato's output"
    );

    assert_eq!(host.sh_ok("cat /run/potato-secrets/app-token"), v1);
    assert_eq!(
        host.sh_ok("stat -c '%U %G %a' /run/potato-secrets/app-token")
            .trim(),
        "nobody nogroup 440"
    );
    assert_eq!(host.sh_ok("stat -c '%a' /run/potato-secrets").trim(), "751");
    // Not in the host's store, nor in the closure potato built and pushed.
    let on_host = host.sh(&format!("grep -rl {v1} /nix/store"));
    assert_eq!(
        on_host.status.code(),
        Some(1),
        "found in the host's store: {}",
        String::from_utf8_lossy(&on_host.stdout)
    );
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let top = v["hosts"][0]["store_path"].as_str().unwrap();
    let closure = String::from_utf8(
        std::process::Command::new("nix-store")
            .args(["-qR", top])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let local = std::process::Command::new("grep")
        .arg("-rl")
        .arg(v1)
        .args(closure.lines())
        .output()
        .unwrap();
    assert_eq!(
        local.status.code(),
        Some(1),
        "found in the local closure: {}",
        String::from_utf8_lossy(&local.stdout)
    );

    // A new value is a new generation; rolling back restores the old value.
    let v2 = "s3cr3t-v2-81be0c44d1";
    fleet.set_secret("t0", "app-token", v2);
    fleet.potato(&["gen"]).ok();
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    assert_eq!(host.sh_ok("cat /run/potato-secrets/app-token"), v2);
    fleet.potato(&["rollback", "t0"]).ok();
    assert_eq!(host.sh_ok("cat /run/potato-secrets/app-token"), v1);
    assert!(
        !host.sh_ok("ls /run").contains("potato-secrets.new"),
        "no scratch directories left behind"
    );
}

#[test]
fn tampered_ciphertext_fails_the_activation_and_rolls_back() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    fleet.set_secret("t0", "app-token", "good-value-9a8b");
    fleet.append_host("t0", "\n[secrets.app-token]\n");
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    // Someone flips bytes in the committed ciphertext.
    let f = fleet.path().join("secrets/t0/app-token.age");
    let text = std::fs::read_to_string(&f).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mid = lines.len() / 2;
    lines[mid] = lines[mid].chars().rev().collect();
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    fleet.potato(&["gen"]).ok();
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1);
    assert_eq!(r["t0"]["result"], "rolled-back", "{}", r["t0"]);
    assert_error(&r, "t0", "activation failed");
    assert_eq!(host.current_generation(), Some(1));
    assert_eq!(
        host.sh_ok("cat /run/potato-secrets/app-token"),
        "good-value-9a8b",
        "the old value is back"
    );
}

#[test]
fn plan_live_shows_the_exposure_a_deploy_changes() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let run = fleet.potato(&["plan", "t0", "--live"]);
    run.ok();
    assert!(
        run.stdout.contains("not deployed by potato yet"),
        "{}",
        run.stdout
    );
    first_deploy(&fleet);
    let run = fleet.potato(&["plan", "t0", "--live"]);
    assert!(
        run.stdout
            .contains("exposure compared with the running generation\n  no change\n"),
        "{}",
        run.stdout
    );

    let text = fleet.read_host("t0").replace(
        "rules = [\"allow 22/tcp from lan\"]",
        "rules = [\"allow 22/tcp from lan\", \"allow 8080/tcp from lan\"]",
    );
    fleet.write_host("t0", &text);
    fleet.potato(&["gen"]).ok();
    let run = fleet.potato(&["plan", "t0", "--live", "--json"]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["exposure_changes"],
        serde_json::json!(["+ 8080/tcp open from lan (-)"]),
        "{v}"
    );
    let row = v["exposure"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == "8080")
        .unwrap();
    assert_eq!(row["zones"]["lan"]["state"], "open");
    assert_eq!(row["zones"]["wan"]["by"], "default deny");
}

#[test]
fn bootstrap_detects_a_testbed_hosts_hardware() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    let target = format!("root@{}", host.addr);
    let run = fleet.potato(&["bootstrap", "t0", "--detect", "--target", &target, "--json"]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let hw = &v["hardware"];
    // Facts, each against the machine's own view (the testbed shares its kernel).
    let local = |cmd: &str| {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(hw["arch"], local("uname -m"));
    let mem_kib: u64 = local("awk '/MemTotal/ {print $2}' /proc/meminfo")
        .parse()
        .unwrap();
    assert_eq!(hw["memory_mib"], mem_kib / 1024);
    assert_eq!(
        hw["cpu_cores"].to_string(),
        local("grep -c ^processor /proc/cpuinfo")
    );
    let disks: Vec<String> = local("lsblk -d -n -o NAME,TYPE | awk '$2==\"disk\" {print $1}'")
        .lines()
        .map(str::to_string)
        .collect();
    let got: Vec<String> = hw["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, disks);
    // The host's NIC as its namespace sees it (name and MAC).
    let mac = local(&format!(
        "ip -n {} -j link show {}h | sed 's/.*\"address\":\"\\([^\"]*\\)\".*/\\1/'",
        host.netns, host.veth
    ));
    assert!(
        hw["nics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == format!("{}h", host.veth) && n["mac"] == mac),
        "{hw}"
    );
    // The disk controllers' kernel modules, walked here in Rust: each block
    // device's sysfs device and its parents whose driver is a module.
    let mut modules: Vec<String> = Vec::new();
    for b in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let Ok(mut d) = std::fs::canonicalize(b.path().join("device")) else {
            continue;
        };
        while d != std::path::Path::new("/sys") && d != std::path::Path::new("/") {
            if let Ok(m) = std::fs::canonicalize(d.join("driver/module")) {
                modules.push(m.file_name().unwrap().to_string_lossy().into_owned());
            }
            d = d.parent().unwrap().to_path_buf();
        }
    }
    modules.sort();
    modules.dedup();
    assert_eq!(hw["kernel_modules"], serde_json::json!(modules));
    assert_eq!(v["problems"], serde_json::json!([]));
    let nix = std::fs::read_to_string(fleet.path().join("hosts/t0/hardware.nix")).unwrap();
    assert!(
        nix.contains("nixpkgs.hostPlatform = lib.mkDefault \"x86_64-linux\";"),
        "{nix}"
    );
    let parse = std::process::Command::new("nix-instantiate")
        .arg("--parse")
        .arg(fleet.path().join("hosts/t0/hardware.nix"))
        .output()
        .unwrap();
    assert!(
        parse.status.success(),
        "{}",
        String::from_utf8_lossy(&parse.stderr)
    );

    // A host file that promises more RAM than the machine has: reported, exit 1.
    let text = fleet
        .read_host("t0")
        .replace("memory = \"1GiB\"", "memory = \"4096GiB\"");
    fleet.write_host("t0", &text);
    let run = fleet.potato(&["bootstrap", "t0", "--detect", "--target", &target]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("the host file says memory = 4096 GiB"),
        "{}",
        run.stdout
    );
}

/// The bootstrap's last step: the host must have booted exactly the system the
/// repository builds. The testbed cannot reboot, so /run/booted-system is set
/// by hand (a TEST DOUBLE for a boot), once wrongly and once rightly.
#[test]
fn bootstrap_verify_requires_the_booted_system_and_status_reports_it() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    let system = first_deploy(&fleet);
    // Not booted at all (no /run/booted-system): refused.
    let run = fleet.potato(&["bootstrap", "t0", "--verify"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("the host booted none"),
        "{}",
        run.stderr
    );
    // Booted something else: refused, naming both.
    host.sh_ok("ln -sfn /nix/var /run/booted-system");
    let run = fleet.potato(&["bootstrap", "t0", "--verify"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains(&format!("but the repository builds {system}")),
        "{}",
        run.stderr
    );
    let status = fleet.potato(&["status", "t0"]);
    assert!(
        status.stdout.contains("not bootstrapped by potato"),
        "{}",
        status.stdout
    );
    // Booted the right generation: verified and recorded.
    host.sh_ok(&format!("ln -sfn {system} /run/booted-system"));
    let run = fleet.potato(&["bootstrap", "t0", "--verify"]);
    run.ok();
    assert!(
        run.stdout.contains(&format!("booted {system}")),
        "{}",
        run.stdout
    );
    let status = fleet.potato(&["status", "t0", "--json"]);
    status.ok();
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let b = &v["hosts"][0]["bootstrapped"];
    assert_eq!(b["system"], system.as_str());
    assert!(b["date"].as_str().unwrap().starts_with("20"), "{b}");
    assert!(b["commit"].is_string());
}

/// `bootstrap --install`: the system into a target root on a testbed host
/// standing in for the installer (the root is a directory under its /run, where
/// a real installer would have disko's mounts). Up to what needs a real kernel:
/// the closure is valid in the target's store (and not pushed to the host's
/// own), the system profile points at it, and the pre-generated host key is
/// there, 0600, byte for byte.
#[test]
fn bootstrap_install_puts_the_system_and_host_key_into_the_target_root() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    let target = format!("root@{}", host.addr);
    let with_admin = |args: &[&str]| fleet.potato_as_admin(args);
    // Without a pre-generated host key: refused, with the command to run.
    let run = with_admin(&[
        "bootstrap",
        "t0",
        "--install",
        "--root",
        "/run/target",
        "--target",
        &target,
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("potato secrets hostkey t0"),
        "{}",
        run.stderr
    );
    fleet.pregenerate_host_key("t0");
    // Never the running system's root.
    let run = with_admin(&[
        "bootstrap",
        "t0",
        "--install",
        "--root",
        "/",
        "--target",
        &target,
    ]);
    assert_eq!(run.code, 2);
    let system = fleet.install_into_run_target("t0", host);
    assert!(
        !host
            .sh(&format!("nix-store --check-validity {system}"))
            .status
            .success(),
        "pushed into the host's own store"
    );
    // The profile's links are the installed system's own (/nix/store/...), as it
    // will see them after boot.
    let link = host.sh_ok("readlink /run/target/nix/var/nix/profiles/system");
    let to = host.sh_ok(&format!(
        "readlink /run/target/nix/var/nix/profiles/{}",
        link.trim()
    ));
    assert_eq!(to.trim(), system);
    assert_eq!(
        host.sh_ok("stat -c %a /run/target/etc/ssh/ssh_host_ed25519_key")
            .trim(),
        "600"
    );
    let installed = host.sh_ok("cat /run/target/etc/ssh/ssh_host_ed25519_key");
    let out = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&fleet.admin_identity)
        .arg(fleet.path().join("secrets/t0/ssh_host_ed25519_key.age"))
        .output()
        .unwrap();
    assert_eq!(installed, String::from_utf8_lossy(&out.stdout));
    let public = host.sh_ok("cat /run/target/etc/ssh/ssh_host_ed25519_key.pub");
    let recorded = std::fs::read_to_string(fleet.path().join("secrets/recipients.toml")).unwrap();
    let key = public.split_whitespace().nth(1).unwrap();
    assert!(
        recorded.contains(key),
        "the .pub is the key recorded for t0"
    );
}
