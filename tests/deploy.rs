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
