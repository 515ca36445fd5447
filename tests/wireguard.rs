//! The generated WireGuard configs, run for real: the example hub (pve-gateway)
//! and two spokes (n250, lepotato) as lab namespaces, each bringing up its
//! committed `wg0.conf` with `wg-quick` on wireguard-go (no kernel module here),
//! its private key decrypted from the example secrets with the demo admin key.
//! Each "host" gets a private /run (where PostUp finds the key) and an
//! /etc/hosts that resolves the documentation endpoint gw.example.net to the
//! hub's lab address; the config bytes are used as generated.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::lab::{self, Lab, Probe, tcp};

/// A WireGuard "host" brought up by wg-quick; its private /run and /etc/hosts
/// live in `_dir` (the daemon is stopped with the lab's namespaces).
struct WgHost {
    _dir: tempfile::TempDir,
}

fn decrypt_example_key(host: &str) -> Vec<u8> {
    let root = common::source_root();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(root.join("tests/fixtures/demo-keys/admin.agekey"))
        .arg(root.join(format!("secrets/{host}/wg0.age")))
        .output()
        .expect("age");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fresh_key() -> Vec<u8> {
    Command::new("wg").arg("genkey").output().unwrap().stdout
}

/// Brings up `conf` in `netns` with `key` at /run/potato-secrets/wg0.
fn wg_up(netns: &str, conf: &Path, key: &[u8]) -> WgHost {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("run/potato-secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("wg0"), key).unwrap();
    std::fs::set_permissions(secrets.join("wg0"), std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::write(
        dir.path().join("hosts"),
        "127.0.0.1 localhost\n203.0.113.1 gw.example.net\n",
    )
    .unwrap();
    let conf_copy: PathBuf = dir.path().join("wg0.conf");
    std::fs::copy(conf, &conf_copy).unwrap();
    let script = format!(
        "mount --bind {d}/run /run && mount --bind {d}/hosts /etc/hosts && exec wg-quick up {c}",
        d = dir.path().display(),
        c = conf_copy.display()
    );
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "unshare",
            "-m",
            "--propagation",
            "private",
        ])
        .args(["sh", "-c", &script])
        .env("WG_QUICK_USERSPACE_IMPLEMENTATION", "wireguard-go")
        .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wg-quick up in {netns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    WgHost { _dir: dir }
}

fn ping(netns: &str, addr: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", netns, "busybox", "ping", "-c", "1", "-W", "1", addr,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn generated(host: &str) -> PathBuf {
    common::source_root().join(format!("modules/generated/{host}/wg0.conf"))
}

#[test]
fn hub_and_spokes_talk_through_the_tunnel_and_a_wrong_key_gets_nothing() {
    if !lab::require()
        || !common::have_tool("wireguard-go")
        || !common::have_tool("wg-quick")
        || !common::have_tool("age")
        || !common::have_tool("busybox")
    {
        return;
    }
    // The lab host is the hub; its only lab address is the underlay (the
    // tunnel subnet must exist on wg0 alone).
    let mut lab = Lab::with_addrs(&["203.0.113.1/24"]);
    // The hub is the lab host: its generated firewall (which opens 51820/udp
    // and forwards wg0 to wg0 for a hub) and IP forwarding.
    let body = std::fs::read_to_string(
        common::source_root().join("modules/generated/pve-gateway/firewall.nft"),
    )
    .unwrap();
    lab.load(&format!("table inet potato {{\n{body}}}\n"));
    lab.host_sh("sysctl -qw net.ipv4.ip_forward=1");
    lab.listen_tcp(22); // "allow 22/tcp from wg" on the hub
    let n250 = lab.client(&["203.0.113.20/24"]);
    let lepotato = lab.client(&["203.0.113.21/24"]);
    let impostor = lab.client(&["203.0.113.22/24"]);

    let _hub = wg_up(
        &lab.host,
        &generated("pve-gateway"),
        &decrypt_example_key("pve-gateway"),
    );
    let _a = wg_up(&n250, &generated("n250"), &decrypt_example_key("n250"));
    let _b = wg_up(
        &lepotato,
        &generated("lepotato"),
        &decrypt_example_key("lepotato"),
    );
    // Same config as n250 (same address, same hub), but not n250's key.
    let _c = wg_up(&impostor, &generated("n250"), &fresh_key());

    lab::wait_for(|| ping(&n250, "10.99.0.1"), "n250 → hub ping through wg0");
    assert_eq!(
        tcp(&n250, "10.99.0.1", 22),
        Probe::Open,
        "TCP through the tunnel"
    );
    lab::wait_for(|| ping(&lepotato, "10.99.0.1"), "lepotato → hub ping");
    // Spoke to spoke, routed by the hub (AllowedIPs: the spoke sends the whole
    // subnet to the hub; the hub has one /32 per spoke).
    lab::wait_for(|| ping(&n250, "10.99.0.11"), "n250 → lepotato via the hub");

    // The hub does not know the impostor's key: no handshake, nothing through.
    assert!(!ping(&impostor, "10.99.0.1"));
    assert_eq!(tcp(&impostor, "10.99.0.1", 22), Probe::Dropped);
}
