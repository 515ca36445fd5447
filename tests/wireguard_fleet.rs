//! WireGuard peer resolution in a large fleet: the example repository plus a hub
//! with 300 spokes (several /24s of one /16 tunnel), to show that resolving
//! peers through indexes instead of pairwise scans picks the same peers. The
//! expected peers, AllowedIPs and endpoints are computed by hand from the host
//! files written here (a spoke names its hub; the hub derives its spokes).

mod common;

use common::Repo;

const SPOKES: usize = 300;
const HUB_KEY: &str = "0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4=";
const HUB_KEY_WG1: &str = "KAvvvZodlOnkhEvElyx3PJdozphdyEKIXCVG2XLO5D8=";
/// Spokes that also have a second interface, wg1 in 10.200.0.0/24, to the hub's wg1.
const DUAL: [usize; 2] = [2, 3];

/// Spoke `i`'s tunnel address: 10.100.0.2 ... spread over 10.100.0-1.x.
fn spoke_addr(i: usize) -> String {
    format!("10.100.{}.{}", i / 250, i % 250 + 2)
}

/// Spoke `i`'s public key: 44 characters, a valid WireGuard key shape.
fn spoke_key(i: usize) -> String {
    format!("spoke{i:037}A=")
}

/// A small host with a WireGuard interface wg0 whose table body is `wg`, then `more`.
fn host_file(deploy: &str, wg: &str, more: &str) -> String {
    format!(
        r#"system = "x86_64-linux"
hardware = "n250"
memory = "2GiB"

[deploy]
target = "root@{deploy}"

[zones]
lan = ["198.18.0.0/15"]
wg = ["10.100.0.0/16"]

[firewall]
rules = ["limit 22/tcp from lan", "allow 22/tcp from wg"]

[ssh]
authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp admin@laptop"]

[wireguard.wg0]
private_key = "secret:wg0"
{wg}
{more}"#
    )
}

/// Registers `host` with pve-apps's host key and gives it pve-apps's wg0 secret
/// (encrypted to that key), so its `secret:wg0` resolves.
fn add_secrets(repo: &Repo, host: &str) {
    let recipients = repo.read("secrets/recipients.toml");
    let key = recipients
        .lines()
        .find_map(|l| l.strip_prefix("pve-apps = "))
        .expect("pve-apps recipient");
    repo.write(
        "secrets/recipients.toml",
        &format!("{recipients}{host} = {key}\n"),
    );
    for f in ["wg0.age", "wg0.recipients"] {
        let bytes = std::fs::read(repo.path().join("secrets/pve-apps").join(f)).unwrap();
        std::fs::create_dir_all(repo.path().join("secrets").join(host)).unwrap();
        std::fs::write(repo.path().join("secrets").join(host).join(f), bytes).unwrap();
    }
}

/// The example repository plus `hub` and `spoke-1` ... `spoke-SPOKES`.
fn big_fleet() -> Repo {
    let repo = Repo::examples();
    // These hundreds of hosts share no tunnel with the example fleet's
    // monitoring hub or its binary cache, which would refuse them (every host
    // must be scrapable and reach the cache): this fleet has neither, so n250
    // drops the role, its stack and its `[fleet.cache]` table.
    let n250 = repo
        .read("hosts/n250.toml")
        .replace("[roles]\nmonitoring = true", "[roles]\nmonitoring = false")
        .replace(
            "\"prometheus\", \"alertmanager\", \"grafana\", \"loki\",",
            "",
        )
        .lines()
        .filter(|l| !l.starts_with("[fleet.cache]"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!n250.contains("\"prometheus\"") && n250.contains("monitoring = false"));
    assert!(!n250.contains("[fleet.cache]"));
    repo.write("hosts/n250.toml", &n250);
    add_secrets(&repo, "hub");
    repo.write(
        "hosts/hub.toml",
        &host_file(
            "198.18.0.1",
            &format!("address = \"10.100.0.1/16\"\nlisten_port = 51820\nendpoint = \"hub.example.net:51820\"\npublic_key = \"{HUB_KEY}\""),
            &format!("\n[wireguard.wg1]\nprivate_key = \"secret:wg0\"\naddress = \"10.200.0.1/24\"\nlisten_port = 51821\nendpoint = \"hub.example.net:51821\"\npublic_key = \"{HUB_KEY_WG1}\"\n"),
        ),
    );
    for i in 1..=SPOKES {
        let name = format!("spoke-{i}");
        add_secrets(&repo, &name);
        let wg = format!(
            "address = \"{}/16\"\npublic_key = \"{}\"\npeers = [\"hub\"]",
            spoke_addr(i),
            spoke_key(i)
        );
        let more = if DUAL.contains(&i) {
            format!(
                "\n[wireguard.wg1]\nprivate_key = \"secret:wg0\"\naddress = \"10.200.0.{}/24\"\npublic_key = \"{}\"\npeers = [\"hub\"]\n",
                i + 1,
                spoke_key(1000 + i)
            )
        } else {
            String::new()
        };
        repo.write(
            &format!("hosts/{name}.toml"),
            &host_file(&format!("198.19.{}.{}", i / 250, i % 250 + 1), &wg, &more),
        );
    }
    repo
}

/// The [Peer] sections of a generated wg0.conf, each as its lines (comment first).
fn peers(conf: &str) -> Vec<Vec<String>> {
    conf.split("\n[Peer]\n")
        .skip(1)
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_hub_with_hundreds_of_spokes_gets_each_of_them_and_each_spoke_only_the_hub() {
    let repo = big_fleet();
    repo.potato(&["gen"]).ok();

    let hub = peers(&repo.read("modules/generated/hub/wg0.conf"));
    assert_eq!(hub.len(), SPOKES);
    // Sorted by name: spoke-1, spoke-10, spoke-100, spoke-101, ...
    assert_eq!(
        hub[0],
        lines(&[
            "# spoke-1",
            "PublicKey = spoke0000000000000000000000000000000000001A=",
            "AllowedIPs = 10.100.0.3/32",
        ])
    );
    assert_eq!(
        hub[1],
        lines(&[
            "# spoke-10",
            "PublicKey = spoke0000000000000000000000000000000000010A=",
            "AllowedIPs = 10.100.0.12/32",
        ])
    );
    // spoke-250 crosses into the next /24: 10.100.1.2.
    let s250 = hub
        .iter()
        .find(|p| p[0] == "# spoke-250")
        .expect("spoke-250");
    assert_eq!(
        s250,
        &lines(&[
            "# spoke-250",
            "PublicKey = spoke0000000000000000000000000000000000250A=",
            "AllowedIPs = 10.100.1.2/32",
        ])
    );
    // No example host is a peer of the new hub (they use 10.99.0.0/24).
    assert!(hub.iter().all(|p| p[0].starts_with("# spoke-")));

    // The hub's second interface gets only the spokes whose wg1 names it.
    let hub_wg1 = peers(&repo.read("modules/generated/hub/wg1.conf"));
    assert_eq!(
        hub_wg1,
        vec![
            lines(&[
                "# spoke-2",
                "PublicKey = spoke0000000000000000000000000000000001002A=",
                "AllowedIPs = 10.200.0.3/32",
            ]),
            lines(&[
                "# spoke-3",
                "PublicKey = spoke0000000000000000000000000000000001003A=",
                "AllowedIPs = 10.200.0.4/32",
            ]),
        ]
    );
    let spoke2_wg1 = peers(&repo.read("modules/generated/spoke-2/wg1.conf"));
    assert_eq!(
        spoke2_wg1,
        vec![lines(&[
            "# hub",
            &format!("PublicKey = {HUB_KEY_WG1}"),
            "AllowedIPs = 10.200.0.0/24",
            "Endpoint = hub.example.net:51821",
            "PersistentKeepalive = 25",
        ])]
    );

    for i in [1, 249, 300] {
        let spoke = peers(&repo.read(&format!("modules/generated/spoke-{i}/wg0.conf")));
        assert_eq!(
            spoke,
            vec![lines(&[
                "# hub",
                &format!("PublicKey = {HUB_KEY}"),
                "AllowedIPs = 10.100.0.0/16",
                "Endpoint = hub.example.net:51820",
                "PersistentKeepalive = 25",
            ])],
            "spoke-{i}"
        );
    }

    // The example fleet's own hub is untouched by the new hosts.
    repo.potato(&["gen", "--check"]).ok();
    let gateway = peers(&repo.read("modules/generated/pve-gateway/wg0.conf"));
    let names: Vec<&str> = gateway.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(names, ["# lepotato", "# n250", "# pve-apps"]);
}

#[test]
fn spoke_to_spoke_peers_and_overlaps_are_found_among_hundreds() {
    // spoke-7 also names spoke-8 (two named peers: the hub is then only its /32),
    // so spoke-8 derives spoke-7 next to its hub, whose /16 holds spoke-7's /32.
    let repo = big_fleet();
    repo.edit(
        "hosts/spoke-7.toml",
        "peers = [\"hub\"]",
        "peers = [\"hub\", \"spoke-8\"]",
    );
    let run = repo.potato(&["check"]);
    let (line, col) = common::line_col(&repo.read("hosts/spoke-8.toml"), "[wireguard.wg0]");
    run.invalid_at(
        &format!("hosts/spoke-8.toml:{line}:{col}"),
        "wg0: AllowedIPs of peers `hub` and `spoke-7` overlap",
    );
    // Exactly that one problem: the 299 other spokes and the hub resolve cleanly.
    assert!(
        run.stderr
            .contains("the host files are invalid (1 problem)"),
        "one problem expected:\n{}",
        run.stderr
    );

    // spoke-8 names spoke-7 instead of the hub: the two name each other, and
    // each lists the other once (named, not derived again).
    repo.edit(
        "hosts/spoke-8.toml",
        "peers = [\"hub\"]",
        "peers = [\"spoke-7\"]",
    );
    repo.potato(&["gen"]).ok();
    let s7 = peers(&repo.read("modules/generated/spoke-7/wg0.conf"));
    assert_eq!(
        s7,
        vec![
            lines(&[
                "# hub",
                &format!("PublicKey = {HUB_KEY}"),
                "AllowedIPs = 10.100.0.1/32",
                "Endpoint = hub.example.net:51820",
                "PersistentKeepalive = 25",
            ]),
            lines(&[
                "# spoke-8",
                "PublicKey = spoke0000000000000000000000000000000000008A=",
                "AllowedIPs = 10.100.0.10/32",
            ]),
        ]
    );
    let s8 = peers(&repo.read("modules/generated/spoke-8/wg0.conf"));
    assert_eq!(
        s8,
        vec![lines(&[
            "# spoke-7",
            "PublicKey = spoke0000000000000000000000000000000000007A=",
            "AllowedIPs = 10.100.0.9/32",
        ])]
    );
    // The hub no longer derives spoke-8, still derives the other 299.
    let hub = peers(&repo.read("modules/generated/hub/wg0.conf"));
    assert_eq!(hub.len(), SPOKES - 1);
    assert!(!hub.iter().any(|p| p[0] == "# spoke-8"));
}
