//! Pinned SSH trust against a real sshd on the testbed (issue 13, "Pinned
//! trust"): the repository's secrets/known_hosts wins over ~/.ssh/known_hosts,
//! `@revoked` is honoured, `@cert-authority` is refused clearly, a
//! `[host]:port` pin is exact, an ecdsa-only pin works against a server that
//! also has ed25519, and `potato trust` shows, refuses and replaces a changed
//! key. Each test runs potato the way an operator does: no --known-hosts, so
//! the repository's pin file and $HOME/.ssh/known_hosts (a temporary HOME)
//! are the files searched.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Run;
use common::fleet::{Fleet, host_file};
use common::testbed::{self, TestHost, Testbed};

/// A fleet plus a private $HOME, and potato run without --known-hosts.
struct Operator {
    fleet: Fleet,
    home: tempfile::TempDir,
}

impl Operator {
    fn new(tb: &Testbed) -> Operator {
        let fleet = Fleet::new(tb);
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        Operator { fleet, home }
    }

    fn pins(&self) -> PathBuf {
        self.fleet.path().join("secrets/known_hosts")
    }

    fn user_known_hosts(&self) -> PathBuf {
        self.home.path().join(".ssh/known_hosts")
    }

    /// `potato ARGS --identity KEY` with the default known_hosts search.
    fn potato(&self, args: &[&str]) -> Run {
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let (mine, rest) = args.split_at(split);
        let out = Command::new(env!("CARGO_BIN_EXE_potato"))
            .args(mine)
            .arg("--identity")
            .arg(&self.fleet.identity)
            .args(rest)
            .current_dir(self.fleet.path())
            .env("HOME", self.home.path())
            .env_remove("POTATO_REPO")
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("run potato");
        Run::from(out)
    }

    fn reach(&self) -> Run {
        self.potato(&["exec", "t0", "--", "true"])
    }
}

/// "TYPE BASE64" of a fresh key that no host has.
fn stranger_key(kind: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k");
    keygen(kind, &f);
    public_key(&f.with_extension("pub"))
}

fn keygen(kind: &str, file: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(file)
        .status()
        .unwrap();
    assert!(st.success());
}

fn public_key(pub_file: &Path) -> String {
    std::fs::read_to_string(pub_file)
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `SHA256:...` as OpenSSH's ssh-keygen prints it.
fn fingerprint(pub_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn ed25519_pub(h: &TestHost) -> PathBuf {
    h.dir.join("etc/ssh/ssh_host_ed25519_key.pub")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn refused(run: &Run, what: &str) {
    assert_ne!(run.code, 0, "expected a refusal\n{}", run.stderr);
    assert!(
        run.stderr.contains(what),
        "missing {what:?} in:\n{}",
        run.stderr
    );
}

#[test]
fn repository_pin_wins_over_the_users_known_hosts() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let op = Operator::new(&tb);
    let h = tb.host(0);
    // The repository pins another key for the host; the user's file has the
    // key the host (or someone in between) presents.
    write(
        &op.pins(),
        &format!("{} {}\n", h.addr, stranger_key("ed25519")),
    );
    write(
        &op.user_known_hosts(),
        &format!("{} {}\n", h.addr, h.public_key()),
    );
    let run = op.reach();
    refused(&run, "HOST KEY CHANGED");
    assert!(
        run.stderr
            .contains("secrets/known_hosts pins ssh-ed25519 SHA256:")
    );
    assert!(
        run.stderr.contains("potato trust t0 --replace"),
        "{}",
        run.stderr
    );
    // A malformed pin file is an error naming its line, not a reason to fall
    // through to the user's file.
    write(&op.pins(), &format!("{} ssh-ed25519 not-base64!\n", h.addr));
    refused(
        &op.reach(),
        "secrets/known_hosts:1: the ssh-ed25519 key is not valid base64",
    );
    // Without a repository pin for the host, the user's file still counts,
    // also hashed as OpenSSH writes it (HashKnownHosts).
    write(&op.pins(), "");
    op.reach().ok();
    let st = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(op.user_known_hosts())
        .output()
        .unwrap();
    assert!(st.status.success());
    let hashed = std::fs::read_to_string(op.user_known_hosts()).unwrap();
    assert!(hashed.starts_with("|1|") && !hashed.contains(&h.addr));
    op.reach().ok();
}

#[test]
fn revoked_keys_are_refused_even_when_pinned() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let op = Operator::new(&tb);
    let h = tb.host(0);
    write(&op.pins(), &format!("{} {}\n", h.addr, h.public_key()));
    op.reach().ok();
    // Revoked in the same file, after the pin.
    write(
        &op.pins(),
        &format!(
            "{} {}\n@revoked * {}\n",
            h.addr,
            h.public_key(),
            h.public_key()
        ),
    );
    let run = op.reach();
    refused(&run, "REVOKED host key");
    assert!(
        run.stderr.contains("known_hosts:2 marks @revoked"),
        "{}",
        run.stderr
    );
    // Revoked in the user's file while the repository pins it.
    write(&op.pins(), &format!("{} {}\n", h.addr, h.public_key()));
    write(
        &op.user_known_hosts(),
        &format!("@revoked {} {}\n", h.addr, h.public_key()),
    );
    refused(&op.reach(), "REVOKED host key");
    // potato trust will not pin a revoked key either.
    write(&op.pins(), "");
    let run = op.potato(&["trust", "t0"]);
    refused(&run, "marks @revoked");
    assert_eq!(std::fs::read_to_string(op.pins()).unwrap(), "");
}

#[test]
fn cert_authority_lines_do_not_grant_trust_and_say_why() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let op = Operator::new(&tb);
    let h = tb.host(0);
    // Even a CA line carrying the host's own key is not a pin.
    write(
        &op.user_known_hosts(),
        &format!("@cert-authority * {}\n", h.public_key()),
    );
    let run = op.reach();
    refused(&run, "unknown host key");
    assert!(
        run.stderr.contains("cannot verify host certificates"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_port_pin_is_exact() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    tb.hosts[0].write_sshd_config("Port 2222\n");
    tb.hosts[0].spawn_sshd(&[]);
    let op = Operator::new(&tb);
    let h = tb.host(0);
    op.fleet.write_host(
        "t0",
        &host_file(&format!("{}:2222", h.addr), &tb.client_pub, ""),
    );
    // A bare-host pin is for port 22 only.
    write(&op.pins(), &format!("{} {}\n", h.addr, h.public_key()));
    let run = op.reach();
    refused(&run, &format!("unknown host key for [{}]:2222", h.addr));
    // A [host]:2222 pin is not used for port 22.
    write(
        &op.pins(),
        &format!("[{}]:2222 {}\n", h.addr, h.public_key()),
    );
    op.reach().ok();
    let run = op.potato(&[
        "exec",
        "t0",
        "--target",
        &format!("root@{}", h.addr),
        "--",
        "true",
    ]);
    refused(&run, &format!("unknown host key for {}:", h.addr));
    // The hint carries the --target, and doing what it says pins port 22.
    let target = format!("root@{}", h.addr);
    let hint = format!("potato trust t0 --target {target}");
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    op.potato(&["trust", "t0", "--target", &target]).ok();
    op.potato(&["exec", "t0", "--target", &target, "--", "true"])
        .ok();
    op.reach().ok();
}

#[test]
fn an_ecdsa_pin_is_honoured_by_a_server_that_also_has_ed25519() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    let ecdsa = tb.hosts[0].dir.join("etc/ssh/ssh_host_ecdsa_key");
    keygen("ecdsa", &ecdsa);
    tb.hosts[0].write_sshd_config("HostKey /etc/ssh/ssh_host_ecdsa_key\n");
    tb.hosts[0].spawn_sshd(&[]);
    let op = Operator::new(&tb);
    let h = tb.host(0);
    let ecdsa_pub = public_key(&ecdsa.with_extension("pub"));
    assert!(ecdsa_pub.starts_with("ecdsa-sha2-nistp256 "));
    write(&op.pins(), &format!("{} {ecdsa_pub}\n", h.addr));
    op.reach().ok();
    // And an ed25519 pin still gets ed25519.
    write(&op.pins(), &format!("{} {}\n", h.addr, h.public_key()));
    op.reach().ok();
    // `potato trust` compares like for like: the ecdsa pin is already there.
    write(&op.pins(), &format!("{} {ecdsa_pub}\n", h.addr));
    let run = op.potato(&["trust", "t0"]);
    run.ok();
    assert!(run.stdout.contains("already pinned"), "{}", run.stdout);
}

#[test]
fn trust_shows_refuses_and_replaces_a_changed_key() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    let op = Operator::new(&tb);
    // Unknown: the hint names a command that works, and it works.
    let run = op.reach();
    refused(&run, "unknown host key");
    let hint = run
        .stderr
        .lines()
        .find_map(|l| {
            l.split_once("trust it: ")
                .map(|(_, c)| c.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no trust hint in:\n{}", run.stderr));
    assert_eq!(hint, "potato trust t0");
    let run = op.potato(&["trust", "t0"]);
    run.ok();
    let old_fp = fingerprint(&ed25519_pub(tb.host(0)));
    assert!(run.stdout.contains(&old_fp), "{}", run.stdout);
    op.reach().ok();
    // The address works too (a hint for a jump host names one).
    let addr = tb.host(0).addr.clone();
    let run = op.potato(&["trust", &addr]);
    run.ok();
    assert!(run.stdout.contains("already pinned"), "{}", run.stdout);

    // The host is reinstalled: both fingerprints, a refusal, nothing changed.
    tb.hosts[0].change_host_key();
    let new_fp = fingerprint(&ed25519_pub(tb.host(0)));
    let before = std::fs::read_to_string(op.pins()).unwrap();
    let run = op.potato(&["trust", "t0"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(&old_fp), "{}", run.stderr);
    assert!(run.stderr.contains(&new_fp), "{}", run.stderr);
    assert!(
        run.stderr.contains("potato trust t0 --replace"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(op.pins()).unwrap(), before);
    refused(&op.reach(), "HOST KEY CHANGED");

    // --replace: the old line is gone, not kept beside the new one.
    let run = op.potato(&["trust", "t0", "--replace"]);
    run.ok();
    assert!(run.stdout.contains(&old_fp) && run.stdout.contains(&new_fp));
    let pins = std::fs::read_to_string(op.pins()).unwrap();
    assert_eq!(
        pins,
        format!("{addr} {}\n", tb.host(0).public_key()),
        "exactly the new key is pinned"
    );
    op.reach().ok();
}

#[test]
fn trust_follows_its_own_hints_through_a_jump_host() {
    if !testbed::require() {
        return;
    }
    let mut tb = Testbed::new(1);
    // The host is reached at 127.0.0.1 inside its own namespace, through itself
    // as the jump host (~/.ssh/config): only the tunnel gets there.
    tb.hosts[0].allow_tcp_forwarding();
    let op = Operator::new(&tb);
    let h = tb.host(0);
    write(
        &op.home.path().join(".ssh/config"),
        &format!(
            "Host behind-bastion\n  HostName 127.0.0.1\n  User root\n  ProxyJump root@{}\n",
            h.addr
        ),
    );
    let text = host_file("behind-bastion", &tb.client_pub, "").replace(
        "target = \"root@behind-bastion\"",
        "target = \"root@behind-bastion\"\nfrom = \"127.0.0.1\"",
    );
    op.fleet.write_host("t0", &text);
    let hint = |run: &Run| {
        run.stderr
            .lines()
            .find_map(|l| {
                l.split_once("trust it: potato ")
                    .map(|(_, c)| c.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no trust hint in:\n{}", run.stderr))
    };
    // The jump host's key is unknown: the hint names the jump host's address.
    let run = op.reach();
    refused(&run, &format!("unknown host key for {}:", h.addr));
    assert_eq!(hint(&run), format!("trust {}", h.addr));
    op.potato(&["trust", &h.addr]).ok();
    // Then the final host's: the hint names the inventory host, and trust
    // reaches it through the (now verified) jump host.
    let run = op.reach();
    refused(&run, "unknown host key for 127.0.0.1:");
    assert_eq!(hint(&run), "trust t0");
    op.potato(&["trust", "t0"]).ok();
    op.reach().ok();
    let pins = std::fs::read_to_string(op.pins()).unwrap();
    assert_eq!(
        pins,
        format!("{} {k}\n127.0.0.1 {k}\n", h.addr, k = h.public_key())
    );
}
