//! The compiled firewall, proven with real packets: each host's generated
//! `firewall.nft` is loaded with `nft -f` into a lab namespace and probed from
//! client namespaces in different zones (tests/common/lab.rs). The expectations
//! below are written from the host files' rules, not from the generated text.

mod common;

use common::Repo;
use common::lab::{self, Lab, Probe, tcp, udp};

/// The committed ruleset of an example host, wrapped the way NixOS wraps it.
fn example_ruleset(host: &str) -> String {
    let body = std::fs::read_to_string(
        common::source_root().join(format!("modules/generated/{host}/firewall.nft")),
    )
    .unwrap();
    format!("table inet potato {{\n{body}}}\n")
}

/// The ruleset `potato gen` writes for n250 after its rules are replaced and
/// the (from, to) edits are made to its host file.
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

const LAN4: &str = "192.168.178.1";
const LAN6: &str = "fd00:178::1";
const WG: &str = "10.99.0.1";
const WAN4: &str = "203.0.113.1";
const WAN6: &str = "2001:db8:113::1";

#[test]
fn n250_ports_by_zone_ipv4_and_ipv6() {
    if !lab::require() {
        return;
    }
    let mut lab = Lab::new();
    lab.load(&example_ruleset("n250"));
    for p in [22, 80, 443, 8080, 9100, 22000] {
        lab.listen_tcp(p);
    }
    lab.listen_udp(21027);
    let lan = lab.client(&["192.168.178.50/24", "fd00:178::50/64"]);
    let wg = lab.client(&["10.99.0.5/24"]);
    let wan = lab.client(&["203.0.113.9/24", "2001:db8:113::9/64"]);

    // "allow 80,443/tcp": from everywhere, both families.
    assert_eq!(tcp(&wan, WAN4, 443), Probe::Open);
    assert_eq!(tcp(&wan, WAN6, 80), Probe::Open);
    assert_eq!(tcp(&lan, LAN4, 443), Probe::Open);
    // "limit 22/tcp from lan", "allow 22/tcp from wg": SSH from those zones only.
    assert_eq!(tcp(&lan, LAN4, 22), Probe::Open);
    assert_eq!(tcp(&lan, LAN6, 22), Probe::Open);
    assert_eq!(tcp(&wg, WG, 22), Probe::Open);
    assert_eq!(tcp(&wan, WAN4, 22), Probe::Dropped);
    assert_eq!(tcp(&wan, WAN6, 22), Probe::Dropped);
    // node-exporter: n250 is the monitoring hub, so only its own Prometheus
    // (on its monitoring container network) may scrape it, not the tunnel.
    assert_eq!(tcp(&wg, WG, 9100), Probe::Dropped);
    assert_eq!(tcp(&lan, LAN4, 9100), Probe::Dropped);
    // "allow 22000/tcp" from anywhere; "allow 22000,21027/udp from lan".
    assert_eq!(tcp(&wan, WAN4, 22000), Probe::Open);
    assert_eq!(udp(&lan, LAN4, 21027), Probe::Open);
    assert_eq!(udp(&lan, LAN6, 21027), Probe::Open);
    assert_eq!(udp(&wan, WAN4, 21027), Probe::Dropped);
    // No rule: the default "deny" drops, from the LAN too.
    assert_eq!(tcp(&lan, LAN4, 8080), Probe::Dropped);
}

#[test]
fn other_example_hosts_by_zone() {
    if !lab::require() {
        return;
    }
    // lepotato: web from lan and wg only, 2222 from lan only.
    let mut lab = Lab::new();
    lab.load(&example_ruleset("lepotato"));
    for p in [22, 443, 2222] {
        lab.listen_tcp(p);
    }
    let lan = lab.client(&["192.168.178.60/24"]);
    let wg = lab.client(&["10.99.0.6/24"]);
    let wan = lab.client(&["203.0.113.10/24", "2001:db8:113::10/64"]);
    assert_eq!(tcp(&lan, LAN4, 443), Probe::Open);
    assert_eq!(tcp(&wg, WG, 443), Probe::Open);
    assert_eq!(tcp(&wan, WAN4, 443), Probe::Dropped);
    assert_eq!(tcp(&wan, WAN6, 443), Probe::Dropped);
    assert_eq!(tcp(&lan, LAN4, 2222), Probe::Open);
    assert_eq!(tcp(&wg, WG, 2222), Probe::Dropped);
    drop(lab);

    // pve-gateway: the WireGuard listen port is open to the world without a rule.
    let mut lab = Lab::new();
    lab.load(&example_ruleset("pve-gateway"));
    lab.listen_udp(51820);
    lab.listen_udp(51821);
    lab.listen_tcp(22);
    let wan = lab.client(&["203.0.113.11/24"]);
    let lan = lab.client(&["192.168.100.50/24"]);
    assert_eq!(udp(&wan, WAN4, 51820), Probe::Open);
    assert_eq!(udp(&wan, WAN4, 51821), Probe::Dropped);
    assert_eq!(tcp(&lan, "192.168.100.1", 22), Probe::Open);
    assert_eq!(tcp(&wan, WAN4, 22), Probe::Dropped);
}

#[test]
fn limit_refuses_the_sixth_new_connection_per_source() {
    if !lab::require() {
        return;
    }
    let mut lab = Lab::new();
    lab.load(&example_ruleset("n250")); // "limit 22/tcp from lan"
    lab.listen_tcp(22);
    let a = lab.client(&["192.168.178.70/24", "fd00:178::70/64"]);
    let b = lab.client(&["192.168.178.71/24"]);
    for i in 1..=5 {
        assert_eq!(tcp(&a, LAN4, 22), Probe::Open, "connection {i} from a");
    }
    // The 6th within 30 s is refused with a reset, not silently dropped...
    assert_eq!(tcp(&a, LAN4, 22), Probe::Refused);
    // ...and so are retries right after it.
    assert_eq!(tcp(&a, LAN4, 22), Probe::Refused);
    // Another source is counted on its own, and IPv6 has its own counter.
    assert_eq!(tcp(&b, LAN4, 22), Probe::Open);
    for i in 1..=5 {
        assert_eq!(tcp(&a, LAN6, 22), Probe::Open, "IPv6 connection {i} from a");
    }
    assert_eq!(tcp(&a, LAN6, 22), Probe::Refused);
}

#[test]
fn reject_deny_sources_and_interfaces() {
    if !lab::require() {
        return;
    }
    let ruleset = ruleset_with(
        r#"[
  "limit 22/tcp from lan",
  "reject 23/tcp",
  "deny 24/tcp",
  "reject 5353/udp",
  "allow 8443/tcp from 203.0.113.9",
  "allow 8096/tcp on br0",
  "allow 8097/tcp on wg0",
  "deny 3000/tcp from lan",
  "allow 3000/tcp",
]"#,
        &[],
    );
    let mut lab = Lab::new();
    lab.load(&ruleset);
    for p in [23, 24, 3000, 8096, 8097, 8443] {
        lab.listen_tcp(p);
    }
    lab.listen_udp(5353);
    let lan = lab.client(&["192.168.178.80/24"]);
    let wan9 = lab.client(&["203.0.113.9/24"]);
    let wan10 = lab.client(&["203.0.113.10/24"]);
    assert_eq!(tcp(&lan, LAN4, 23), Probe::Refused, "reject answers");
    assert_eq!(tcp(&lan, LAN4, 24), Probe::Dropped, "deny drops");
    assert_eq!(udp(&lan, LAN4, 5353), Probe::Refused, "reject answers UDP");
    assert_eq!(tcp(&wan9, WAN4, 8443), Probe::Open, "the named address");
    assert_eq!(tcp(&wan10, WAN4, 8443), Probe::Dropped, "its neighbour");
    assert_eq!(tcp(&wan10, WAN4, 8096), Probe::Open, "arrives on br0");
    assert_eq!(tcp(&wan10, WAN4, 8097), Probe::Dropped, "not on wg0");
    // First match wins: the LAN's deny comes before everyone's allow.
    assert_eq!(tcp(&lan, LAN4, 3000), Probe::Dropped);
    assert_eq!(tcp(&wan9, WAN4, 3000), Probe::Open);
}

#[test]
fn default_reject_answers_instead_of_dropping() {
    if !lab::require() {
        return;
    }
    let ruleset = ruleset_with(
        r#"["limit 22/tcp from lan"]"#,
        &[("incoming = \"deny\"", "incoming = \"reject\"")],
    );
    let mut lab = Lab::new();
    lab.load(&ruleset);
    lab.listen_tcp(22);
    lab.listen_tcp(8080);
    let lan = lab.client(&["192.168.178.81/24"]);
    let wan = lab.client(&["203.0.113.12/24", "2001:db8:113::12/64"]);
    assert_eq!(tcp(&lan, LAN4, 22), Probe::Open);
    assert_eq!(tcp(&wan, WAN4, 8080), Probe::Refused);
    assert_eq!(tcp(&wan, WAN6, 8080), Probe::Refused);
}

/// A podman container publishing a port, inside the lab host: reachable exactly
/// as the host's rules say. The same check without potato's ruleset first shows
/// the bypass this guards against (the port is open to everyone).
#[test]
fn published_container_ports_obey_the_policy() {
    if !lab::require() || !common::have_tool("podman") || !common::have_tool("runc") {
        return;
    }
    let mut lab = Lab::new();
    let lan = lab.client(&["192.168.178.90/24"]);
    let wan = lab.client(&["203.0.113.13/24"]);
    let image = lab::busybox_image();
    let name = format!("{}-web", lab.host);
    let _container = lab::Container::run(
        &lab.host,
        &name,
        &["-p", "8080:8080", "-p", "8081:8081"],
        &image,
        "busybox nc -ll -p 8080 -e busybox echo ok & busybox nc -ll -p 8081 -e busybox echo ok & wait",
    );
    lab::wait_for(
        || tcp(&lan, LAN4, 8080) == Probe::Open,
        "container port 8080",
    );
    lab::wait_for(
        || tcp(&lan, LAN4, 8081) == Probe::Open,
        "container port 8081",
    );
    // Without potato's table: podman's DNAT lets everyone in.
    assert_eq!(tcp(&wan, WAN4, 8080), Probe::Open);
    assert_eq!(tcp(&wan, WAN4, 8081), Probe::Open);

    let ruleset = ruleset_with(
        r#"["limit 22/tcp from lan", "allow 8080/tcp from lan"]"#,
        &[],
    );
    lab.load(&ruleset);
    assert_eq!(tcp(&lan, LAN4, 8080), Probe::Open, "allowed from the LAN");
    assert_eq!(tcp(&wan, WAN4, 8080), Probe::Dropped, "not from elsewhere");
    assert_eq!(
        tcp(&lan, LAN4, 8081),
        Probe::Dropped,
        "published, but no rule"
    );
}
