//! The SSH and kernel baseline: what every host's sshd and sysctls must say,
//! rendered as native files (`sshd_config`, `sysctl.conf`) and judged by
//! `potato audit` against those files or a live host's effective values.
//!
//! One list of `Item`s per host is the single source: each item is rendered
//! (its `value`) and audited (its `expect`), so a rule cannot be written without
//! being checked, nor checked without being written. Host-file knobs (forwarding,
//! MaxAuthTries, LoginGraceTime) and the host's role (a WireGuard hub or a
//! container host must forward packets) change values, never the list.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::HostPlan;
use crate::render::format::{Refused, sshd, sysctl};

/// Which daemon reads an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Daemon {
    Sshd,
    Sysctl,
}

impl Daemon {
    /// The generated file that carries this daemon's items.
    pub fn file(self) -> &'static str {
        match self {
            Daemon::Sshd => "sshd_config",
            Daemon::Sysctl => "sysctl.conf",
        }
    }
}

/// How a found value is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Expect {
    /// One of these (synonyms: sshd -T prints prohibit-password as without-password).
    OneOf(Vec<String>),
    /// A number no larger than this.
    AtMost(u64),
    /// A comma-separated list using only these algorithms.
    SubsetOf(Vec<String>),
}

/// One baseline rule.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: &'static str,
    pub title: &'static str,
    pub daemon: Daemon,
    /// The keyword (sshd) or sysctl name.
    pub key: &'static str,
    /// What potato writes.
    pub value: String,
    pub expect: Expect,
}

/// Key exchange, ciphers and MACs: modern only, and each understood by the
/// OpenSSH of NixOS 25.11, Debian 12's OpenSSH 9.2 (the testbed) and libssh2
/// (potato's own client).
pub const KEX: &[&str] = &[
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
];
pub const CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];
pub const MACS: &[&str] = &[
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "umac-128-etm@openssh.com",
];

/// The baseline of one host.
pub fn items(plan: &HostPlan) -> Vec<Item> {
    let ssh = &plan.ssh;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut v = Vec::new();
    let mut sshd = |id, title, key, value: String, expect| {
        v.push(Item {
            id,
            title,
            daemon: Daemon::Sshd,
            key,
            value,
            expect,
        })
    };
    let is = |s: &str| Expect::OneOf(vec![s.to_string()]);
    sshd(
        "ssh-password",
        "no password logins",
        "PasswordAuthentication",
        "no".into(),
        is("no"),
    );
    sshd(
        "ssh-kbd-interactive",
        "no keyboard-interactive logins (PAM passwords)",
        "KbdInteractiveAuthentication",
        "no".into(),
        is("no"),
    );
    sshd(
        "ssh-empty-passwords",
        "no empty passwords",
        "PermitEmptyPasswords",
        "no".into(),
        is("no"),
    );
    sshd(
        "ssh-pubkey-only",
        "public keys are the only way in",
        "AuthenticationMethods",
        "publickey".into(),
        is("publickey"),
    );
    sshd(
        "ssh-root-key-only",
        "root logs in by key only",
        "PermitRootLogin",
        "prohibit-password".into(),
        Expect::OneOf(vec![
            "prohibit-password".into(),
            "without-password".into(),
            "no".into(),
        ]),
    );
    sshd(
        "ssh-max-auth-tries",
        "few authentication attempts per connection",
        "MaxAuthTries",
        ssh.max_auth_tries.to_string(),
        Expect::AtMost(u64::from(ssh.max_auth_tries)),
    );
    sshd(
        "ssh-login-grace",
        "short login grace time",
        "LoginGraceTime",
        ssh.login_grace_secs.to_string(),
        Expect::AtMost(ssh.login_grace_secs.max(1)),
    );
    sshd(
        "ssh-kex",
        "modern key exchange only",
        "KexAlgorithms",
        KEX.join(","),
        subset(KEX),
    );
    sshd(
        "ssh-ciphers",
        "modern ciphers only",
        "Ciphers",
        CIPHERS.join(","),
        subset(CIPHERS),
    );
    sshd(
        "ssh-macs",
        "modern MACs only (encrypt-then-MAC)",
        "MACs",
        MACS.join(","),
        subset(MACS),
    );
    sshd(
        "ssh-agent-forwarding",
        "agent forwarding as the host file says (default off)",
        "AllowAgentForwarding",
        yes_no(ssh.allow_agent_forwarding).into(),
        is(yes_no(ssh.allow_agent_forwarding)),
    );
    sshd(
        "ssh-tcp-forwarding",
        "TCP forwarding as the host file says (default off)",
        "AllowTcpForwarding",
        yes_no(ssh.allow_tcp_forwarding).into(),
        is(yes_no(ssh.allow_tcp_forwarding)),
    );
    sshd(
        "ssh-x11-forwarding",
        "no X11 forwarding",
        "X11Forwarding",
        "no".into(),
        is("no"),
    );
    sshd(
        "ssh-tunnel",
        "no tun/tap tunnels",
        "PermitTunnel",
        "no".into(),
        is("no"),
    );
    sshd(
        "ssh-client-alive",
        "idle sessions are probed",
        "ClientAliveInterval",
        "300".into(),
        Expect::AtMost(300),
    );
    sshd(
        "ssh-client-alive-count",
        "dead sessions are closed",
        "ClientAliveCountMax",
        "2".into(),
        Expect::AtMost(2),
    );
    sshd(
        "ssh-log-level",
        "verbose logging (fail2ban reads key fingerprints and failures)",
        "LogLevel",
        "VERBOSE".into(),
        is("verbose"),
    );

    let routes = plan.wireguard.iter().any(|w| w.routes_between_peers())
        || plan
            .containers
            .as_ref()
            .is_some_and(|c| !c.services.is_empty());
    let multi_homed = !plan.wireguard.is_empty() || routes;
    let mut sysctl = |id, title, key, value: &str, accept: &[&str]| {
        v.push(Item {
            id,
            title,
            daemon: Daemon::Sysctl,
            key,
            value: value.into(),
            expect: Expect::OneOf(accept.iter().map(|s| s.to_string()).collect()),
        })
    };
    // Reverse-path filtering: strict where one path exists; loose on hosts with
    // tunnels or bridges, where strict would drop legitimate asymmetric replies.
    let rp = if multi_homed { "2" } else { "1" };
    sysctl(
        "rp-filter",
        "reverse-path filtering",
        "net.ipv4.conf.all.rp_filter",
        rp,
        &["1", "2"],
    );
    sysctl(
        "rp-filter-default",
        "reverse-path filtering on new interfaces",
        "net.ipv4.conf.default.rp_filter",
        rp,
        &["1", "2"],
    );
    for (id, key) in [
        ("no-redirects-v4", "net.ipv4.conf.all.accept_redirects"),
        (
            "no-redirects-v4-default",
            "net.ipv4.conf.default.accept_redirects",
        ),
        ("no-secure-redirects", "net.ipv4.conf.all.secure_redirects"),
        (
            "no-secure-redirects-default",
            "net.ipv4.conf.default.secure_redirects",
        ),
        ("no-redirects-v6", "net.ipv6.conf.all.accept_redirects"),
        (
            "no-redirects-v6-default",
            "net.ipv6.conf.default.accept_redirects",
        ),
    ] {
        sysctl(id, "ICMP redirects are not accepted", key, "0", &["0"]);
    }
    sysctl(
        "no-send-redirects",
        "ICMP redirects are not sent",
        "net.ipv4.conf.all.send_redirects",
        "0",
        &["0"],
    );
    sysctl(
        "no-send-redirects-default",
        "ICMP redirects are not sent",
        "net.ipv4.conf.default.send_redirects",
        "0",
        &["0"],
    );
    for (id, key) in [
        (
            "no-source-route-v4",
            "net.ipv4.conf.all.accept_source_route",
        ),
        (
            "no-source-route-v4-default",
            "net.ipv4.conf.default.accept_source_route",
        ),
        (
            "no-source-route-v6",
            "net.ipv6.conf.all.accept_source_route",
        ),
        (
            "no-source-route-v6-default",
            "net.ipv6.conf.default.accept_source_route",
        ),
    ] {
        sysctl(id, "source-routed packets are dropped", key, "0", &["0"]);
    }
    sysctl(
        "syncookies",
        "SYN cookies against SYN floods",
        "net.ipv4.tcp_syncookies",
        "1",
        &["1"],
    );
    sysctl(
        "icmp-broadcasts",
        "broadcast pings are ignored",
        "net.ipv4.icmp_echo_ignore_broadcasts",
        "1",
        &["1"],
    );
    sysctl(
        "icmp-bogus",
        "bogus ICMP errors are ignored",
        "net.ipv4.icmp_ignore_bogus_error_responses",
        "1",
        &["1"],
    );
    // A WireGuard hub or a container host must route; the firewall's forward
    // chain (routed policy) decides what.
    let fwd = if routes { "1" } else { "0" };
    sysctl(
        "ip-forward",
        "IP forwarding only where the host routes (hub, containers)",
        "net.ipv4.ip_forward",
        fwd,
        &[fwd],
    );
    sysctl(
        "kptr-restrict",
        "kernel pointers hidden",
        "kernel.kptr_restrict",
        "2",
        &["2"],
    );
    sysctl(
        "dmesg-restrict",
        "kernel log for root only",
        "kernel.dmesg_restrict",
        "1",
        &["1"],
    );
    sysctl(
        "unprivileged-bpf",
        "no unprivileged BPF",
        "kernel.unprivileged_bpf_disabled",
        "1",
        &["1", "2"],
    );
    sysctl(
        "bpf-jit-harden",
        "BPF JIT hardened",
        "net.core.bpf_jit_harden",
        "2",
        &["2"],
    );
    sysctl(
        "ptrace-scope",
        "ptrace limited to descendants",
        "kernel.yama.ptrace_scope",
        "1",
        &["1", "2", "3"],
    );
    sysctl(
        "perf-paranoid",
        "perf events for root only",
        "kernel.perf_event_paranoid",
        "2",
        &["2", "3"],
    );
    sysctl(
        "kexec-disabled",
        "kexec_load disabled",
        "kernel.kexec_load_disabled",
        "1",
        &["1"],
    );
    sysctl("sysrq", "magic SysRq off", "kernel.sysrq", "0", &["0"]);
    sysctl(
        "suid-dumpable",
        "no core dumps of setuid programs",
        "fs.suid_dumpable",
        "0",
        &["0"],
    );
    sysctl(
        "protected-hardlinks",
        "protected hardlinks",
        "fs.protected_hardlinks",
        "1",
        &["1"],
    );
    sysctl(
        "protected-symlinks",
        "protected symlinks",
        "fs.protected_symlinks",
        "1",
        &["1"],
    );
    sysctl(
        "protected-fifos",
        "protected FIFOs",
        "fs.protected_fifos",
        "2",
        &["2"],
    );
    sysctl(
        "protected-regular",
        "protected regular files",
        "fs.protected_regular",
        "2",
        &["2"],
    );
    v
}

fn subset(list: &[&str]) -> Expect {
    Expect::SubsetOf(list.iter().map(|s| s.to_string()).collect())
}

/// The native file for one daemon: `Key value` lines (sshd_config) or
/// `key = value` lines (sysctl.d), each written by its format's `line`.
pub fn native(source: &str, items: &[Item], daemon: Daemon) -> Result<String, Refused> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by potato from {}: the {} baseline. Do not edit.",
        crate::render::format::comment_text(source),
        match daemon {
            Daemon::Sshd => "SSH",
            Daemon::Sysctl => "kernel",
        }
    );
    for i in items.iter().filter(|i| i.daemon == daemon) {
        out.push_str(&match daemon {
            Daemon::Sshd => sshd::line(i.key, &i.value)?,
            Daemon::Sysctl => sysctl::line(i.key, &i.value)?,
        });
    }
    Ok(out)
}

/// Effective values, by lower-cased key.
pub type Facts = BTreeMap<String, String>;

/// Reads `Key value` lines (an sshd_config, or `sshd -T` output): first wins,
/// as in sshd.
pub fn parse_sshd(text: &str) -> Facts {
    let mut facts = Facts::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or((line, ""));
        facts
            .entry(k.to_ascii_lowercase())
            .or_insert_with(|| v.trim().trim_start_matches('=').trim().to_string());
    }
    facts
}

/// Reads `key = value` lines (sysctl.d): last wins, as in systemd-sysctl.
pub fn parse_sysctl(text: &str) -> Facts {
    let mut facts = Facts::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            facts.insert(k.trim().replace('/', "."), v.trim().to_string());
        }
    }
    facts
}

/// The verdict on one item.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub title: &'static str,
    pub daemon: Daemon,
    pub key: &'static str,
    pub pass: bool,
    /// The value found, None when the key is not set at all.
    pub found: Option<String>,
    pub want: String,
}

/// Judges each item against the facts of its daemon.
pub fn judge(items: &[Item], sshd: &Facts, sysctl: &Facts) -> Vec<Outcome> {
    items
        .iter()
        .map(|i| {
            let found = match i.daemon {
                Daemon::Sshd => sshd.get(&i.key.to_ascii_lowercase()),
                Daemon::Sysctl => sysctl.get(i.key),
            }
            .cloned();
            let pass = found.as_deref().is_some_and(|f| meets(f, &i.expect));
            Outcome {
                id: i.id,
                title: i.title,
                daemon: i.daemon,
                key: i.key,
                pass,
                found,
                want: describe(&i.expect),
            }
        })
        .collect()
}

fn meets(found: &str, expect: &Expect) -> bool {
    match expect {
        Expect::OneOf(v) => v.iter().any(|w| w.eq_ignore_ascii_case(found.trim())),
        Expect::AtMost(n) => found
            .trim()
            .trim_end_matches('s')
            .parse::<u64>()
            .is_ok_and(|f| f <= *n && f > 0),
        Expect::SubsetOf(allowed) => {
            let list: Vec<&str> = found.split(',').map(str::trim).collect();
            !list.is_empty() && list.iter().all(|a| allowed.iter().any(|w| w == a))
        }
    }
}

fn describe(e: &Expect) -> String {
    match e {
        Expect::OneOf(v) => v.join(" or "),
        Expect::AtMost(n) => format!("1 to {n}"),
        Expect::SubsetOf(_) => "only modern algorithms".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_first_value_wins_and_keys_fold_case() {
        let f = parse_sshd(
            "# c\nPasswordAuthentication no\npasswordauthentication yes\nMaxAuthTries=3\n",
        );
        assert_eq!(f["passwordauthentication"], "no");
        assert_eq!(f["maxauthtries"], "3");
    }

    #[test]
    fn sysctl_last_value_wins() {
        let f = parse_sysctl("a.b = 1\na/b = 2\n; c\n");
        assert_eq!(f["a.b"], "2");
    }

    #[test]
    fn judging() {
        assert!(meets(
            "without-password",
            &Expect::OneOf(vec!["prohibit-password".into(), "without-password".into()])
        ));
        assert!(meets("30", &Expect::AtMost(30)));
        assert!(!meets("60", &Expect::AtMost(30)));
        assert!(!meets("0", &Expect::AtMost(30)), "0 means unlimited");
        assert!(meets("curve25519-sha256", &subset(KEX)));
        assert!(!meets(
            "curve25519-sha256,diffie-hellman-group14-sha1",
            &subset(KEX)
        ));
    }
}
