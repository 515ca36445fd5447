//! fail2ban with the generated files: the filters against sample log lines
//! (fail2ban-regex), and a real fail2ban with the generated jail and ban action
//! banning a real sshd's attacker in a lab namespace, after which that source's
//! packets are dropped on every port while others still connect.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::lab::{self, Lab, Probe, tcp, tcp_connect};

fn generated(host: &str, file: &str) -> PathBuf {
    common::source_root().join(format!("modules/generated/{host}/{file}"))
}

/// fail2ban-regex's verdict: how many of `lines` the filter matched.
fn matched(lines: &[String], filter: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sample.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = Command::new("fail2ban-regex")
        .arg(&log)
        .arg(filter)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fail2ban-regex: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("Lines:"))
        .unwrap_or_else(|| panic!("no summary in:\n{text}"));
    // "Lines: 4 lines, 0 ignored, 2 matched, 2 missed"
    line.split(", ")
        .find_map(|p| p.strip_suffix(" matched"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn syslog(msg: &str) -> String {
    let now = chrono_like_now("%b %e %H:%M:%S");
    format!("{now} n250 sshd[4242]: {msg}")
}

fn chrono_like_now(fmt: &str) -> String {
    let out = Command::new("date")
        .arg("-u")
        .arg(format!("+{fmt}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn traefik_filter_matches_refusals_only() {
    if !common::have_tool("fail2ban-regex") {
        return;
    }
    let t = chrono_like_now("%d/%b/%Y:%H:%M:%S +0000");
    let line = |who: &str, user: &str, req: &str, status: u16| {
        format!(
            "{who} - {user} [{t}] \"{req}\" {status} 17 \"-\" \"curl/8.0\" 42 \"auth@docker\" \"http://10.89.1.5:9000\" 3ms"
        )
    };
    let filter = common::source_root().join("modules/fail2ban/potato-traefik-auth.conf");
    let filter = filter.to_str().unwrap();
    let attacks = vec![
        line("203.0.113.9", "-", "GET /admin HTTP/1.1", 401),
        line("203.0.113.9", "bob", "POST /login HTTP/2.0", 401),
        line("2001:db8::9", "-", "GET /api HTTP/2.0", 403),
    ];
    assert_eq!(matched(&attacks, filter), 3);
    let benign = vec![
        line("192.168.178.5", "-", "GET / HTTP/1.1", 200),
        line("192.168.178.5", "-", "GET /401 HTTP/1.1", 404),
        line(
            "192.168.178.5",
            "alice",
            "GET /outpost.goauthentik.io/start HTTP/2.0",
            302,
        ),
    ];
    assert_eq!(matched(&benign, filter), 0);
}

#[test]
fn sshd_filter_in_the_jails_mode_matches_failures_only() {
    if !common::have_tool("fail2ban-regex") {
        return;
    }
    // The jail file says which upstream filter mode the sshd jail uses.
    let jails = std::fs::read_to_string(generated("n250", "fail2ban-jails.local")).unwrap();
    let sshd = jails.split("[sshd]").nth(1).unwrap();
    let mode = sshd
        .lines()
        .find_map(|l| l.strip_prefix("mode = "))
        .expect("sshd jail mode");
    let filter = format!("sshd[mode={mode}]");
    let attacks = vec![
        syslog("Invalid user admin from 203.0.113.9 port 51234"),
        syslog("Failed password for root from 203.0.113.9 port 51234 ssh2"),
        syslog("Connection closed by authenticating user root 203.0.113.9 port 51234 [preauth]"),
        syslog(
            "Unable to negotiate with 203.0.113.9 port 51234: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]",
        ),
    ];
    assert_eq!(matched(&attacks, &filter), 4);
    let benign = vec![
        syslog(
            "Accepted publickey for root from 192.168.178.50 port 50000 ssh2: ED25519 SHA256:AAAA",
        ),
        syslog("Server listening on 0.0.0.0 port 22."),
        syslog("Received disconnect from 192.168.178.50 port 50000:11: disconnected by user"),
    ];
    assert_eq!(matched(&benign, &filter), 0);
}

/// A real sshd in the lab host whose stderr is written as syslog lines to a file.
/// TEST DOUBLE for journald, which the lab lacks: the messages are sshd's own.
fn spawn_sshd(lab: &Lab, dir: &Path) -> Child {
    let key = dir.join("hostkey");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir_all("/run/sshd").unwrap();
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port 22\nHostKey {}\nPidFile {}/sshd.pid\nLogLevel VERBOSE\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            key.display(),
            dir.display()
        ),
    )
    .unwrap();
    let log = dir.join("auth.log");
    let script = format!(
        "/usr/sbin/sshd -D -e -f {cfg} 2>&1 | while IFS= read -r l; do printf '%s n250 sshd[4242]: %s\\n' \"$(date -u '+%b %e %H:%M:%S')\" \"$l\" >> {log}; done",
        cfg = cfg.display(),
        log = log.display()
    );
    Command::new("ip")
        .args(["netns", "exec", &lab.host, "sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// fail2ban's own configuration (Debian's jail.conf, filters and actions), the
/// generated jail file, ban action and filter, and the lab's double for the
/// journal: the sshd jail reads the syslog file instead.
fn fail2ban_config(dir: &Path, host: &str, sshd_log: &Path) -> PathBuf {
    let conf = dir.join("fail2ban");
    let out = Command::new("cp")
        .arg("-a")
        .arg("/etc/fail2ban")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(conf.join("jail.d"));
    let _ = std::fs::remove_file(conf.join("jail.local"));
    std::fs::create_dir_all(conf.join("jail.d")).unwrap();
    std::fs::copy(
        generated(host, "fail2ban-jails.local"),
        conf.join("jail.d/potato.local"),
    )
    .unwrap();
    std::fs::copy(
        common::source_root().join("modules/fail2ban/potato-nftables.conf"),
        conf.join("action.d/potato-nftables.conf"),
    )
    .unwrap();
    std::fs::write(
        conf.join("jail.d/zz-lab.local"),
        format!(
            "# TEST DOUBLE: no journald in the lab.\n[sshd]\nbackend = polling\nlogpath = {}\n[traefik-auth]\nenabled = false\n",
            sshd_log.display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("fail2ban.local"),
        format!(
            "[Definition]\nlogtarget = {d}/fail2ban.log\nsocket = {d}/fail2ban.sock\npidfile = {d}/fail2ban.pid\ndbfile = :memory:\n",
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

fn client(lab: &Lab, conf: &Path, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.host, "fail2ban-client", "-c"])
        .arg(conf)
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One failed SSH login attempt (no usable credentials) from `ns`.
fn failed_login(ns: &str) {
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "PubkeyAuthentication=no", "-o", "ConnectTimeout=2"])
        .args(["nosuchuser@203.0.113.1", "true"])
        .output();
}

fn banned(lab: &Lab, conf: &Path, ip: &str) -> bool {
    client(lab, conf, &["status", "sshd"])
        .lines()
        .any(|l| l.contains("Banned IP list") && l.split_whitespace().any(|w| w == ip))
}

#[test]
fn real_fail2ban_bans_after_maxretry_and_the_ban_drops_packets() {
    if !lab::require() || !common::have_tool("fail2ban-server") || !common::have_tool("ssh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::with_addrs(&["203.0.113.1/24", "192.168.178.1/24"]);
    let attacker = lab.client(&["203.0.113.9/24"]);
    let bystander = lab.client(&["203.0.113.10/24"]);
    let neighbour = lab.client(&["192.168.178.50/24"]); // in n250's "lan": ignored
    lab.listen_tcp(80);
    let mut sshd = spawn_sshd(&lab, dir.path());
    lab::wait_for(
        || tcp_connect(&bystander, "203.0.113.1", 22) == Probe::Open,
        "sshd",
    );
    let conf = fail2ban_config(dir.path(), "n250", &dir.path().join("auth.log"));
    let started = client(&lab, &conf, &["start"]);
    lab::wait_for(
        || client(&lab, &conf, &["status", "sshd"]).contains("Currently failed"),
        &format!("fail2ban start: {started}"),
    );

    // The ignore list (n250's lan and wg zones): failures from the LAN never ban.
    for _ in 0..7 {
        failed_login(&neighbour);
    }
    // The attacker: banned after at most maxretry (5 in hosts/n250.toml) attempts.
    let mut attempts = 0;
    while !banned(&lab, &conf, "203.0.113.9") {
        assert!(
            attempts < 5,
            "not banned after {attempts} failed logins:\n{}",
            client(&lab, &conf, &["status", "sshd"])
        );
        failed_login(&attacker);
        attempts += 1;
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    assert!(
        !banned(&lab, &conf, "192.168.178.50"),
        "the LAN is on the ignore list"
    );

    // The ban drops the attacker on every port, in fail2ban's own table...
    assert_eq!(tcp_connect(&attacker, "203.0.113.1", 22), Probe::Dropped);
    assert_eq!(tcp_connect(&bystander, "203.0.113.1", 22), Probe::Open);
    assert_eq!(tcp(&attacker, "203.0.113.1", 80), Probe::Dropped);
    let set = lab.host_sh("nft list set inet potato-f2b ban4-sshd");
    assert!(set.contains("203.0.113.9"), "{set}");
    // ...and nobody else.
    assert_eq!(tcp(&bystander, "203.0.113.1", 80), Probe::Open);
    assert_eq!(tcp(&neighbour, "192.168.178.1", 80), Probe::Open);

    // Unbanning removes it again.
    client(&lab, &conf, &["set", "sshd", "unbanip", "203.0.113.9"]);
    assert_eq!(tcp(&attacker, "203.0.113.1", 80), Probe::Open);
    client(&lab, &conf, &["stop"]);
    let _ = sshd.kill();
    let _ = sshd.wait();
}
