//! Building where it is cheapest (issue 17): `build_on = "target"` and a
//! builder host on the testbed (real sshd, a real Nix store per host), the
//! cross-architecture check, and the validation of build_on names. NixOS is the
//! test double in tests/fixtures/nixpkgs; its toplevel and payload derivations
//! are real derivations, built by whichever store realises them.

mod common;

use std::process::Command;

use common::Repo;
use common::fleet::Fleet;
use common::testbed::{self, Testbed};

/// Sets `build_on` in a fleet host file's [deploy] table and regenerates.
fn set_build_on(fleet: &Fleet, host: &str, value: &str) {
    let text = fleet.read_host(host).replace(
        "confirm_timeout = \"10s\"\n",
        &format!("confirm_timeout = \"10s\"\nbuild_on = \"{value}\"\n"),
    );
    assert!(
        text.contains("build_on"),
        "the host file has a [deploy] table"
    );
    fleet.write_host(host, &text);
    fleet.potato(&["gen"]).ok();
}

/// Whether `path` is valid in the deployer's own store (the test machine's).
fn on_deployer(path: &str) -> bool {
    Command::new("nix-store")
        .args(["--check-validity", path])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// `potato build ARGS --json` with the testbed's key and known hosts (a
/// build on a host reaches it over SSH): its one JSON document.
fn build_json(tb: &Testbed, fleet: &Fleet, args: &[&str]) -> serde_json::Value {
    build_run(tb, fleet, args).one_json_document()
}

/// `potato build ARGS --json` with the testbed's key, which must succeed.
fn build_run(tb: &Testbed, fleet: &Fleet, args: &[&str]) -> common::Run {
    let (key, known) = (tb.client_key.to_str(), tb.known_hosts.to_str());
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.extend(["--identity", key.unwrap(), "--known-hosts", known.unwrap()]);
    all.push("--json");
    let run = fleet.potato(&all);
    run.ok();
    run
}

/// `err` says the build failed on `on` and quotes the builder's own log:
/// the line the double's failing derivation prints (`t0 = "build-fail"`).
fn assert_failed_with_the_builders_log(err: &str, on: &str) {
    assert!(err.contains(&format!("on {on} failed")), "{err}");
    assert!(
        err.contains("this system fails to build, as the test asked"),
        "the builder's own log is shown: {err}"
    );
}

/// Sum of the NAR sizes of `path`'s closure in a host's store.
fn closure_bytes(host: &testbed::TestHost, path: &str) -> u64 {
    host.sh_ok(&format!("nix-store -q --size $(nix-store -qR {path})"))
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn build_on_target_sends_only_derivations_and_the_host_builds_and_activates() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    // 2 × 3 MB of random payload: the output is large, its derivations tiny.
    fleet.steer_fresh_payload(2, 3000000);
    set_build_on(&fleet, "t0", "target");

    let before = host.tx_bytes();
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    let wire = host.tx_bytes() - before;
    assert_eq!(code, 0, "{stderr}\n{r}");
    let res = &r["t0"];
    assert_eq!(res["result"], "deployed", "{res}");
    assert_eq!(res["build"]["on"], "target", "{res}");
    let built: Vec<&str> = res["build"]["built"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(built.contains(&"nixos-system-t0"), "{built:?}");
    assert_eq!(
        built.iter().filter(|b| b.starts_with("payload-")).count(),
        2,
        "{built:?}"
    );
    // What was pushed is the derivation closure: .drv files and sources.
    assert!(res["paths_pushed"].as_u64().unwrap() >= 4, "{res}");
    let top = res["store_path"].as_str().unwrap();

    // The output exists on the target, complete, and is far larger than what
    // crossed the link.
    host.sh_ok(&format!("nix-store --check-validity {top}"));
    let output = closure_bytes(host, top);
    assert!(output > 6_000_000, "output closure {output}");
    eprintln!("build_on target: {wire} bytes on the wire, {output}-byte output closure");
    assert!(
        wire * 10 < output,
        "{wire} bytes on the wire for a {output}-byte output"
    );
    // Nothing was built here or copied back.
    assert!(
        !on_deployer(top),
        "{top} must not be in the deployer's store"
    );
    let payload = host.sh_ok(&format!("cat {top}/etc/payload"));
    for p in payload.lines().filter(|l| !l.is_empty()) {
        assert!(!on_deployer(p), "{p} must not be in the deployer's store");
    }

    // The host activated the system it built.
    assert_eq!(host.current_system(), top);
    assert_eq!(host.activations(), vec![format!("switch {top}")]);
    assert_eq!(host.current_generation(), Some(1));
}

#[test]
fn a_build_failure_on_the_target_reports_its_log_and_keeps_the_old_generation() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let host = tb.host(0);
    set_build_on(&fleet, "t0", "target");
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let top1 = r["t0"]["store_path"].as_str().unwrap().to_string();

    fleet.steer("t0 = \"build-fail\";");
    let (code, r, _) = fleet.deploy(&["t0"]);
    assert_eq!(code, 1);
    let res = &r["t0"];
    assert_eq!(res["result"], "failed", "{res}");
    let err = res["error"].as_str().unwrap();
    assert_failed_with_the_builders_log(err, "target");
    assert_eq!(
        res["phases"].as_array().unwrap().last().unwrap()[0],
        "build"
    );
    assert_eq!(host.current_generation(), Some(1));
    assert_eq!(host.current_system(), top1);
    assert_eq!(host.activations().len(), 1, "nothing was activated");
}

#[test]
fn a_builder_host_builds_and_the_target_receives_the_result() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(2);
    let fleet = Fleet::new(&tb);
    fleet.steer_fresh_payload(1, 2000000);
    set_build_on(&fleet, "t0", "t1");

    // `potato build` builds on t1 and leaves the output there: nothing is
    // sent to the target, nothing lands in the deployer's store.
    let v = build_json(&tb, &fleet, &["t0"]);
    assert_eq!(v["t0"]["build"]["on"], "t1", "{v}");
    let built = v["t0"]["store_path"].as_str().unwrap();
    assert!(tb.host(1).has_path(built), "built on t1");
    assert!(
        !tb.host(0).has_path(built),
        "potato build sends nothing to the target"
    );
    assert!(!on_deployer(built));

    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let res = &r["t0"];
    assert_eq!(res["result"], "deployed", "{res}");
    assert_eq!(res["build"]["on"], "t1", "{res}");
    assert_eq!(res["store_path"], built, "{res}");
    assert!(
        res["build"]["relayed_paths"].as_u64().unwrap() >= 3,
        "{res}"
    );
    let top = res["store_path"].as_str().unwrap();
    // Built on t1, received by t0, never in the deployer's store.
    tb.host(1)
        .sh_ok(&format!("nix-store --check-validity {top}"));
    tb.host(0)
        .sh_ok(&format!("nix-store --check-validity {top}"));
    assert!(!on_deployer(top));
    assert_eq!(tb.host(0).current_system(), top);
    // The builder was not deployed to.
    assert!(tb.host(1).activations().is_empty());
}

#[test]
fn potato_build_on_target_builds_there_and_not_here() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let run = build_run(&tb, &fleet, &["t0", "--build-on", "target", "-v"]);
    // Progress while it builds there: the phase, what was sent, the result.
    let lines: Vec<&str> = run.stderr.lines().collect();
    for want in ["t0: build", "t0: built on target"] {
        assert!(lines.contains(&want), "{want:?} in {}", run.stderr);
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("t0 | building on target: sent ")),
        "{}",
        run.stderr
    );
    let v = run.one_json_document();
    assert_eq!(v["t0"]["build"]["on"], "target", "{v}");
    let top = v["t0"]["store_path"].as_str().unwrap();
    tb.host(0)
        .sh_ok(&format!("nix-store --check-validity {top}"));
    assert!(!on_deployer(top));
    assert!(tb.host(0).activations().is_empty(), "build does not deploy");
}

/// A testbed host that declares aarch64-linux: hardware lepotato.
fn make_aarch64(fleet: &Fleet, host: &str) {
    let text = fleet
        .read_host(host)
        .replace("system = \"x86_64-linux\"", "system = \"aarch64-linux\"")
        .replace("hardware = \"n250\"", "hardware = \"lepotato\"");
    fleet.write_host(host, &text);
    fleet.potato(&["gen"]).ok();
}

#[test]
fn an_aarch64_system_is_built_by_the_host_whose_nix_has_that_platform() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    // The host's Nix reports aarch64-linux as an extra platform (as a real
    // board's, or a machine with binfmt emulation, does); the deployer's
    // (tests/nix/nix.conf) does not.
    let conf = tb.dir.path().join("t0-nix-conf");
    common::cache::host_nix_conf(&mut tb.hosts[0], &conf, "extra-platforms = aarch64-linux");
    let fleet = Fleet::new(&tb);
    fleet.steer("hostSystems = true;");
    make_aarch64(&fleet, "t0");

    // Built here, it cannot be: check says so and names both fixes ...
    let check = fleet.potato(&["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(
        check.stderr.contains("t0's system is aarch64-linux")
            && check.stderr.contains("build_on = \"target\"")
            && check.stderr.contains("builders"),
        "{}",
        check.stderr
    );
    // ... and Nix agrees: the double's derivation is an aarch64-linux one.
    let local = fleet.potato(&["build", "t0"]);
    assert_ne!(local.code, 0);
    assert!(local.stderr.contains("aarch64-linux"), "{}", local.stderr);

    // Built on the target, it builds there and activates.
    set_build_on(&fleet, "t0", "target");
    fleet.potato(&["check"]).ok();
    let (code, r, stderr) = fleet.deploy(&["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let res = &r["t0"];
    assert_eq!(res["build"]["on"], "target");
    let top = res["store_path"].as_str().unwrap();
    let drv_system = tb.hosts[0].sh_ok(&format!(
        "nix-store -q --deriver {top} | xargs cat | grep -o 'aarch64-linux' | head -n1"
    ));
    assert_eq!(drv_system.trim(), "aarch64-linux");
    assert!(!on_deployer(top));
    assert_eq!(tb.hosts[0].current_system(), top);
}

#[test]
fn build_on_an_unknown_builder_is_refused_before_connecting() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "build_on = \"local\"",
        "build_on = \"nosuchbuilder\"",
    );
    r.potato(&["gen"]).ok();
    let run = r.potato(&["deploy", "n250"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "n250: build_on = \"nosuchbuilder\" is neither a host file nor a builder in the deployer's Nix `builders`"
        ),
        "{}",
        run.stderr
    );
    let check = r.potato(&["check"]);
    assert_eq!(check.code, 2);
    assert!(check.stderr.contains("nosuchbuilder"), "{}", check.stderr);
}

#[test]
fn a_build_on_value_that_is_not_a_host_name_is_invalid_at_its_location() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "build_on = \"local\"",
        "build_on = \"b1; rm -rf /\"",
    );
    let text = r.read("hosts/n250.toml");
    let (line, col) = common::line_col(&text, "\"b1; rm");
    r.potato(&["check"]).invalid_at(
        &format!("hosts/n250.toml:{line}:{col}"),
        "build_on = \"b1; rm -rf /\": not a host name",
    );
}

#[test]
fn the_example_lepotato_builds_on_itself_and_passes_check() {
    let r = Repo::examples();
    assert!(
        r.read("hosts/lepotato.toml")
            .contains("build_on = \"target\"")
    );
    r.potato(&["check", "lepotato"]).ok();
    // Without it, an x86_64 deployer without an ARM builder cannot build it.
    r.edit("hosts/lepotato.toml", "build_on = \"target\"\n", "");
    let run = r.potato(&["check", "lepotato"]);
    if std::env::var("NIX_CONF_DIR").is_ok() {
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("hosts/lepotato.toml: lepotato's system is aarch64-linux"),
            "{}",
            run.stderr
        );
    }
}

/// A deployer Nix configuration for one test: tests/nix/nix.conf plus
/// `extra`, in a directory of its own (for NIX_CONF_DIR).
fn deployer_nix_conf(tb: &Testbed, extra: &str) -> std::path::PathBuf {
    let dir = tb.dir.path().join("deployer-nix");
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(common::source_root().join("tests/nix/nix.conf")).unwrap();
    std::fs::write(dir.join("nix.conf"), format!("{base}\n{extra}\n")).unwrap();
    dir
}

/// Two testbed hosts, t0 in the fleet and t1 outside it (its host file
/// removed): a builder only the deployer's nix.conf can name.
fn fleet_and_a_builder_outside_it() -> (Testbed, Fleet) {
    let tb = Testbed::new(2);
    let fleet = Fleet::new(&tb);
    std::fs::remove_file(fleet.path().join("hosts/t1.toml")).unwrap();
    fleet.potato(&["gen"]).ok();
    (tb, fleet)
}

/// A `builders` entry for a testbed host as a Nix remote builder (Nix's
/// manual, "Remote Builds": URI, systems, SSH key, max jobs, speed factor,
/// supported features, mandatory features, base64 of the host's public key).
fn builders_line(tb: &Testbed, host: &testbed::TestHost, host_key: &str) -> String {
    builders_line_with(tb, &format!("ssh-ng://root@{}", host.addr), host_key)
}

/// `builders_line` for a builder written as `uri`.
fn builders_line_with(tb: &Testbed, uri: &str, host_key: &str) -> String {
    use base64::Engine;
    let host_key = base64::engine::general_purpose::STANDARD.encode(host_key);
    format!(
        "builders = {uri} x86_64-linux {} 1 1 - - {host_key}",
        tb.client_key.display()
    )
}

/// `potato ARGS` with the deployer's Nix configured by `conf`.
fn potato_with_conf(fleet: &Fleet, conf: &std::path::Path, args: &[&str]) -> common::Run {
    common::Run::from(
        fleet
            .command(args)
            .env("NIX_CONF_DIR", conf)
            .output()
            .unwrap(),
    )
}

/// `potato deploy ARGS --json` with the deployer's Nix configured by `conf`:
/// (exit code, hosts by name, stderr).
fn deploy_with_conf(
    fleet: &Fleet,
    conf: &std::path::Path,
    args: &[&str],
) -> (i32, serde_json::Value, String) {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = potato_with_conf(fleet, conf, &all);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}\n{}", run.stdout, run.stderr));
    let mut by_host = serde_json::Map::new();
    for h in v["hosts"].as_array().cloned().unwrap_or_default() {
        by_host.insert(h["host"].as_str().unwrap().to_string(), h);
    }
    (run.code, serde_json::Value::Object(by_host), run.stderr)
}

#[test]
fn a_nix_remote_builder_of_the_deployers_nix_conf_builds_and_the_target_receives_the_result() {
    if !testbed::require() {
        return;
    }
    let (tb, fleet) = fleet_and_a_builder_outside_it();
    let (target, builder) = (tb.host(0), tb.host(1));
    fleet.steer_fresh_payload(1, 2000000);
    // build_on names the builder by the host of its URI.
    set_build_on(&fleet, "t0", &builder.addr);

    // The builders line's host key is the one Nix checks: with another
    // host's key there, the builder is refused and nothing is deployed.
    let conf = deployer_nix_conf(&tb, &builders_line(&tb, builder, &target.public_key()));
    let (code, r, stderr) = deploy_with_conf(&fleet, &conf, &["t0"]);
    assert_eq!(code, 1, "{stderr}\n{r}");
    let err = r["t0"]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains(&format!("on the builder ssh-ng://root@{}", builder.addr))
            && err.contains("Host key verification failed"),
        "{err}"
    );
    assert!(target.activations().is_empty());

    let conf = deployer_nix_conf(&tb, &builders_line(&tb, builder, &builder.public_key()));
    let to_builder = builder.tx_bytes();
    potato_with_conf(&fleet, &conf, &["check"]).ok();

    let (code, r, stderr) = deploy_with_conf(&fleet, &conf, &["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let res = &r["t0"];
    assert_eq!(res["result"], "deployed", "{res}");
    assert_eq!(
        res["build"]["on"],
        format!("ssh-ng://root@{}", builder.addr),
        "{res}"
    );
    let built: Vec<&str> = res["build"]["built"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(built.contains(&"nixos-system-t0"), "{built:?}");
    assert!(built.iter().any(|b| b.starts_with("payload-")), "{built:?}");
    assert!(
        res["build"]["derivation_paths_sent"].as_u64().unwrap() >= 3,
        "{res}"
    );
    assert!(
        res["build"]["relayed_paths"].as_u64().unwrap() >= 3,
        "{res}"
    );
    assert!(
        res["build"]["relayed_bytes"].as_u64().unwrap() > 2_000_000,
        "{res}"
    );
    let top = res["store_path"].as_str().unwrap();
    // To the builder went derivations, not the output.
    let to_builder = builder.tx_bytes() - to_builder;
    let relayed = res["build"]["relayed_bytes"].as_u64().unwrap();
    eprintln!(
        "Nix builder: {to_builder} bytes deployer -> builder, {relayed} bytes relayed to the target"
    );
    assert!(
        to_builder * 4 < relayed,
        "{to_builder} bytes to the builder for a {relayed}-byte output"
    );

    // Built in the builder's store, received by the target's, activated there.
    builder.sh_ok(&format!("nix-store --check-validity {top}"));
    target.sh_ok(&format!("nix-store --check-validity {top}"));
    assert_eq!(target.current_system(), top);
    assert_eq!(target.activations(), vec![format!("switch {top}")]);
    assert!(
        builder.activations().is_empty(),
        "the builder is not deployed to"
    );
    // Never in the deployer's store: not the system, not its payload.
    assert!(
        !on_deployer(top),
        "{top} must not be in the deployer's store"
    );
    let payload = target.sh_ok(&format!("cat {top}/etc/payload"));
    assert!(!payload.trim().is_empty());
    for p in payload.lines().filter(|l| !l.is_empty()) {
        assert!(!on_deployer(p), "{p} must not be in the deployer's store");
        builder.sh_ok(&format!("nix-store --check-validity {p}"));
    }

    // A build that fails on the builder: its log is in the error, and the
    // target stays on the generation it has.
    fleet.steer("t0 = \"build-fail\";");
    let (code, r, stderr) = deploy_with_conf(&fleet, &conf, &["t0"]);
    assert_eq!(code, 1, "{stderr}\n{r}");
    let err = r["t0"]["error"].as_str().unwrap();
    assert_failed_with_the_builders_log(err, &format!("ssh-ng://root@{}", builder.addr));
    assert_eq!(target.current_system(), top);
    assert_eq!(target.activations().len(), 1, "nothing more was activated");
}

#[test]
fn a_builder_written_without_a_scheme_is_an_ssh_builder_and_builds_too() {
    if !testbed::require() {
        return;
    }
    let (tb, fleet) = fleet_and_a_builder_outside_it();
    let (target, builder) = (tb.host(0), tb.host(1));
    // "root@ADDR" is ssh://root@ADDR to Nix (its legacy SSH store, which cannot
    // realise a derivation from the command line: potato goes through the
    // daemon protocol on the same machine, key and host key).
    let line = builders_line_with(
        &tb,
        &format!("root@{}", builder.addr),
        &builder.public_key(),
    );
    let conf = deployer_nix_conf(&tb, &line);
    fleet.steer_fresh_payload(1, 100000);
    set_build_on(&fleet, "t0", &builder.addr);
    let (code, r, stderr) = deploy_with_conf(&fleet, &conf, &["t0"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    let res = &r["t0"];
    assert_eq!(res["build"]["on"], format!("ssh://root@{}", builder.addr));
    let top = res["store_path"].as_str().unwrap();
    builder.sh_ok(&format!("nix-store --check-validity {top}"));
    assert_eq!(target.current_system(), top);
    assert!(
        !on_deployer(top),
        "{top} must not be in the deployer's store"
    );
}

#[test]
fn potato_build_on_a_nix_remote_builder_builds_there_and_not_here() {
    if !testbed::require() {
        return;
    }
    let (tb, fleet) = fleet_and_a_builder_outside_it();
    let (target, builder) = (tb.host(0), tb.host(1));
    fleet.steer_fresh_payload(1, 500000);
    let conf = deployer_nix_conf(&tb, &builders_line(&tb, builder, &builder.public_key()));
    let uri = format!("ssh-ng://root@{}", builder.addr);
    // No --identity: building on a builder does not reach the target.
    let build = ["build", "t0", "--build-on", builder.addr.as_str()];
    let json = [&build[..], &["--json"]].concat();

    let run = potato_with_conf(&fleet, &conf, &json);
    run.ok();
    let v = run.one_json_document();
    let t0 = &v["t0"];
    assert_eq!(t0["build"]["on"], uri, "{v}");
    let built = common::strs(&t0["build"]["built"]);
    assert!(built.contains(&"nixos-system-t0"), "{built:?}");
    assert!(built.iter().any(|b| b.starts_with("payload-")), "{built:?}");
    assert!(
        t0["build"]["derivation_paths_sent"].as_u64().unwrap() >= 3,
        "{v}"
    );
    let top = t0["store_path"].as_str().unwrap().to_string();

    // The builder's store holds the system and its payload; the deployer's
    // holds neither, and the target is not sent anything by a build.
    builder.sh_ok(&format!("nix-store --check-validity {top}"));
    assert!(
        !on_deployer(&top),
        "{top} must not be in the deployer's store"
    );
    let payload = builder.sh_ok(&format!("cat {top}/etc/payload"));
    assert!(!payload.trim().is_empty());
    for p in payload.lines().filter(|l| !l.is_empty()) {
        assert!(!on_deployer(p), "{p} must not be in the deployer's store");
    }
    assert!(
        !target.has_path(&top),
        "potato build copies nothing to the target"
    );
    assert!(target.activations().is_empty(), "build does not deploy");

    // The plain output names the builder too; built already, nothing is built again.
    let run = potato_with_conf(&fleet, &conf, &build);
    run.ok();
    assert!(
        run.stdout.contains(&top) && run.stdout.contains(&format!("(built on {uri})")),
        "{}",
        run.stdout
    );

    // A build that fails on the builder: non-zero, with the builder's log tail.
    fleet.steer("t0 = \"build-fail\";");
    let run = potato_with_conf(&fleet, &conf, &json);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let v = run.one_json_document();
    assert_eq!(v["ok"], false, "{v}");
    let plain = potato_with_conf(&fleet, &conf, &build);
    assert_eq!(plain.code, 1, "{}", plain.stderr);
    for text in [v["error"].as_str().unwrap(), plain.stderr.as_str()] {
        assert_failed_with_the_builders_log(text, &uri);
    }
}

/// The upstream fact `nix::remote_store::realise` rests on (why no GC root
/// guards a Nix builder's output between its build and the relay): Nix makes
/// no root through an `ssh-ng://` store, neither `nix-store --realise
/// --add-root` nor `nix build --out-link` (on neither machine), and the
/// builder may delete the output right after. Should a Nix version root it,
/// this fails: then `remote_store::realise` can root the output.
#[test]
fn nix_roots_no_output_realised_through_an_ssh_ng_store() {
    if !testbed::require() {
        return;
    }
    use base64::Engine;
    let tb = Testbed::new(1);
    let builder = tb.host(0);
    let uri = format!(
        "ssh-ng://root@{}?ssh-key={}&base64-ssh-public-host-key={}",
        builder.addr,
        tb.client_key.display(),
        base64::engine::general_purpose::STANDARD.encode(builder.public_key())
    );
    let forms = [
        "nix-store --store \"$URI\" --realise \"$DRV\" --add-root \"$ROOT\"",
        "nix --extra-experimental-features nix-command build --store \"$URI\" \"$DRV\" --out-link \"$ROOT\"",
    ];
    for (i, realise) in forms.iter().enumerate() {
        let expr = format!(
            "derivation {{ name = \"unrooted-{i}\"; system = builtins.currentSystem; \
             builder = \"/bin/sh\"; args = [ \"-c\" \"echo {} > $out\" ]; }}",
            common::unique_salt()
        );
        let root = tb.dir.path().join(format!("root-{i}"));
        let script = format!(
            "set -e; DRV=$(nix-instantiate --expr '{expr}' 2>/dev/null)\n\
             nix --extra-experimental-features nix-command copy --derivation --to \"$URI\" \"$DRV\"\n\
             {realise}\n\
             nix-store --store \"$URI\" -q --outputs \"$DRV\""
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("URI", &uri)
            .env("ROOT", &root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{realise}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let output = stdout.lines().last().unwrap().trim();
        builder.sh_ok(&format!("nix-store --check-validity {output}"));
        // The testbed host sees this machine's file system but its own /nix:
        // ROOT is the same path on both.
        assert!(!root.exists(), "{realise}: {} was made", root.display());
        let auto = builder.sh_ok("ls /nix/var/nix/gcroots/auto 2>/dev/null || true");
        assert!(auto.trim().is_empty(), "{realise}: roots {auto}");
        // Unrooted: the builder deletes it (a rooted path is refused).
        builder.sh_ok(&format!("nix-store --delete {output}"));
        assert!(!builder.has_path(output));
    }
}
