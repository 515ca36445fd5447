//! Port lists in firewall rules, proven with real packets: rules whose lists
//! overlap, repeat, touch or run to tens of thousands of ports are compiled by
//! `potato gen` (which coalesces them into sorted ranges), loaded with `nft -f`
//! into a lab namespace (tests/common/lab.rs) and probed. Expectations are
//! written from the rule texts.

mod common;

use common::Repo;
use common::lab::{self, Lab, Probe, tcp, udp};

const LAN4: &str = "192.168.178.1";
const WAN4: &str = "203.0.113.1";

/// The ruleset `potato gen` writes for n250 with its rules replaced by `rules`
/// (a TOML array) and the (from, to) edits made, wrapped the way NixOS wraps it.
fn ruleset_with(rules: &str, edits: &[(&str, &str)]) -> String {
    let repo = Repo::examples();
    let hosts = repo.read("hosts/n250.toml");
    let start = hosts.find("rules = [").unwrap();
    let end = start + hosts[start..].find("]\n").unwrap() + 2;
    let new = format!("{}rules = {rules}\n{}", &hosts[..start], &hosts[end..]);
    repo.write("hosts/n250.toml", &new);
    for (from, to) in edits {
        repo.edit("hosts/n250.toml", from, to);
    }
    repo.potato(&["gen", "n250"]).ok();
    format!(
        "table inet potato {{\n{}}}\n",
        repo.read("modules/generated/n250/firewall.nft")
    )
}

#[test]
fn overlapping_repeated_and_touching_ports_open_exactly_the_listed_ones() {
    if !lab::require() {
        return;
    }
    let ruleset = ruleset_with(
        r#"[
  "limit 22/tcp from lan",
  "allow 1005-1020,1000-1010,1032,1030,1031,1032/tcp",
  "allow 2003,2000,2001,2000/udp from lan",
]"#,
        &[],
    );
    // Coalesced: one sorted set of disjoint ranges per rule, protocols apart.
    assert!(ruleset.contains("tcp dport { 1000-1020, 1030-1032 } accept"));
    assert!(ruleset.contains("udp dport { 2000-2001, 2003 } accept"));
    let mut lab = Lab::new();
    lab.load(&ruleset);
    for p in [1000, 1015, 1020, 1021, 1029, 1031, 1032, 1033, 2001] {
        lab.listen_tcp(p);
    }
    for p in [2000, 2001, 2002, 2003] {
        lab.listen_udp(p);
    }
    let lan = lab.client(&["192.168.178.70/24"]);
    let wan = lab.client(&["203.0.113.70/24"]);
    for p in [1000, 1015, 1020, 1031, 1032] {
        assert_eq!(tcp(&wan, WAN4, p), Probe::Open, "tcp {p}");
    }
    for p in [1021, 1029, 1033] {
        assert_eq!(tcp(&wan, WAN4, p), Probe::Dropped, "tcp {p}");
    }
    assert_eq!(udp(&lan, LAN4, 2000), Probe::Open);
    assert_eq!(udp(&lan, LAN4, 2001), Probe::Open);
    assert_eq!(udp(&lan, LAN4, 2002), Probe::Dropped);
    assert_eq!(udp(&lan, LAN4, 2003), Probe::Open);
    assert_eq!(
        udp(&wan, WAN4, 2001),
        Probe::Dropped,
        "udp rule is lan only"
    );
    assert_eq!(
        tcp(&lan, LAN4, 2001),
        Probe::Dropped,
        "udp rule opens no tcp"
    );
}

#[test]
fn a_rule_listing_sixty_five_thousand_ports_one_by_one() {
    if !lab::require() {
        return;
    }
    // 1 ... 65000 listed singly, backwards, without 4242 and 40000.
    let list: Vec<String> = (1..=65000u32)
        .rev()
        .filter(|p| *p != 4242 && *p != 40000)
        .map(|p| p.to_string())
        .collect();
    // Default allow: everything not denied is open.
    let ruleset = ruleset_with(
        &format!(
            r#"["limit 22/tcp from lan", "deny {}/tcp from 203.0.113.71"]"#,
            list.join(",")
        ),
        &[("incoming = \"deny\"", "incoming = \"allow\"")],
    );
    assert!(
        ruleset.contains("tcp dport { 1-4241, 4243-39999, 40001-65000 } drop"),
        "{}",
        ruleset
            .lines()
            .filter(|l| l.contains("drop"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut lab = Lab::new();
    lab.load(&ruleset);
    for p in [4241, 4242, 4243, 40000, 65000, 65001] {
        lab.listen_tcp(p);
    }
    let denied = lab.client(&["203.0.113.71/24"]);
    let other = lab.client(&["203.0.113.72/24"]);
    for p in [4241, 4243, 65000] {
        assert_eq!(tcp(&denied, WAN4, p), Probe::Dropped, "listed {p}");
    }
    for p in [4242, 40000, 65001] {
        assert_eq!(tcp(&denied, WAN4, p), Probe::Open, "not listed {p}");
    }
    assert_eq!(tcp(&other, WAN4, 4241), Probe::Open, "other source");
}
