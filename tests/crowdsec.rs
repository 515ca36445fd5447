//! Intrusion prevention with the generated files and Debian's real programs
//! (crowdsec 1.4.6, crowdsec-firewall-bouncer 0.0.25):
//! - the bouncer's tables load together with the host's firewall (`nft -c`,
//!   then for real), and reloading the host's table keeps the bans;
//! - the bouncer's key script takes a CrowdSec key and refuses anything else;
//! - end to end in a lab namespace: crowdsec, with n250's generated acquisition
//!   files and a private configuration, reads a Traefik access log (Common Log
//!   Format) with probing lines and sshd's journal (entries written by the real
//!   systemd-journal-remote) with guessed logins, and decides a ban for each
//!   source; the real bouncer, with
//!   n250's generated configuration and its key registered by `cscli bouncers
//!   add`, puts each source into its nftables set (IPv4 and IPv6); the
//!   attacker's packets to 443 (the host's port) and to a port a real podman
//!   container publishes (DNAT, the forward hook) are dropped, as are the IPv6
//!   attacker's to 443, while a bystander still connects;
//! - modules/crowdsec, evaluated by the real Nix with n250's spec, places the
//!   generated files where the tests above used them.
//!
//! Nothing of the machine's /etc/crowdsec or /var/lib/crowdsec is changed: the
//! test reads the offline hub Debian ships and writes only its temp dir.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{self, Lab, Probe, tcp};

/// The bouncer key the test registers (any letters and digits; cscli makes 32 hex).
const KEY: &str = "5f0c9b2e7a4d41c3b8e6f1a2d3c4b5a6";
/// The lab's addresses (10.213.0.0/16 only): host, attacker, bystander, and
/// the podman network of the published container.
const HOST: &str = "10.213.41.1";
const ATTACKER: &str = "10.213.41.9";
const BYSTANDER: &str = "10.213.41.10";
/// Guesses sshd logins (sshd's journal, the second generated acquisition).
const SSH_ATTACKER: &str = "10.213.41.11";
/// The host and an attacker over IPv6 (a ULA of the lab's own), for the
/// bouncer's ip6 table.
const HOST6: &str = "fd00:213:41::1";
const ATTACKER6: &str = "fd00:213:41::9";
/// Debian's journal writer from the export format (package systemd-journal-remote).
const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const CONTAINER_NET: &str = "10.213.42.0/24";
/// A port n250's firewall allows from anywhere and that a container publishes
/// here (syncthing's), DNAT-ed to the container's 8080.
const PUBLISHED: u16 = 22000;

fn generated(file: &str) -> PathBuf {
    common::source_root().join(format!("modules/generated/n250/{file}"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn sh(script: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(script).output().unwrap()
}

fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "`{script}`: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// n250's potato table as NixOS loads it, and the bouncer's tables file.
fn host_ruleset() -> String {
    format!(
        "table inet potato {{\n{}}}\n",
        read(&generated("firewall.nft"))
    )
}

/// Retries `ok` for up to `secs`; on timeout, panics with `what` and `context()`.
fn wait_long(mut ok: impl FnMut() -> bool, secs: u64, what: &str, context: impl Fn() -> String) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_bouncer_tables_load_with_the_host_firewall_and_survive_its_reload() {
    if !lab::require() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("both.nft");
    std::fs::write(
        &both,
        format!(
            "{}{}",
            host_ruleset(),
            read(&generated("crowdsec/bouncer.nft"))
        ),
    )
    .unwrap();
    // The check alone, in a throwaway network namespace.
    sh_ok(&format!("unshare -n nft -c -f {}", both.display()));

    // For real: both tables, a ban in the bouncer's set, then the host's table
    // reloaded the way NixOS reloads it (delete and re-add in one batch).
    let lab = Lab::with_addrs(&[]);
    lab.load(&format!(
        "{}{}",
        host_ruleset(),
        read(&generated("crowdsec/bouncer.nft"))
    ));
    lab.host_sh(&format!(
        "nft add element ip potato-crowdsec crowdsec-blacklists {{ {ATTACKER} timeout 1h }}"
    ));
    lab.load(&format!(
        "table inet potato\ndelete table inet potato\n{}",
        host_ruleset()
    ));
    let set = lab.host_sh("nft list set ip potato-crowdsec crowdsec-blacklists");
    assert!(set.contains(ATTACKER), "the ban survives: {set}");
    let tables = lab.host_sh("nft list tables");
    for t in [
        "table inet potato",
        "table ip potato-crowdsec",
        "table ip6 potato-crowdsec6",
    ] {
        assert!(tables.contains(t), "{t} missing in:\n{tables}");
    }
    // Both families hook input and forward, before potato's table.
    for (family, table) in [("ip", "potato-crowdsec"), ("ip6", "potato-crowdsec6")] {
        let t = lab.host_sh(&format!("nft list table {family} {table}"));
        for hook in ["input", "forward"] {
            assert!(
                t.contains(&format!("type filter hook {hook} priority filter - 10;")),
                "{family} {table} lacks a {hook} hook before filter:\n{t}"
            );
        }
    }
}

/// The script the bouncer's unit runs before it starts (modules/crowdsec).
fn key_script(key: &str, run: &Path) -> std::process::Output {
    let key_file = run.join("key");
    std::fs::write(&key_file, key).unwrap();
    Command::new("sh")
        .arg(common::source_root().join("modules/crowdsec/bouncer-key.sh"))
        .arg(&key_file)
        .arg(generated("crowdsec/bouncer.yaml"))
        .arg(run)
        .output()
        .unwrap()
}

#[test]
fn the_key_script_writes_the_override_and_refuses_what_yaml_would_misread() {
    let dir = tempfile::tempdir().unwrap();
    let out = key_script(&format!("{KEY}\n"), dir.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        read(&dir.path().join("config.yaml.local")),
        format!("api_key: {KEY}\n")
    );
    assert_eq!(
        read(&dir.path().join("config.yaml")),
        read(&generated("crowdsec/bouncer.yaml"))
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("config.yaml.local"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key file is the owner's only");
    for bad in ["", "abc: def", "abc\napi_url: http://evil/", "ab\"c"] {
        let dir = tempfile::tempdir().unwrap();
        let out = key_script(bad, dir.path());
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("letters and digits only"),
            "{out:?}"
        );
        assert!(!dir.path().join("config.yaml.local").exists());
    }
}

/// Processes the test started, killed by pid on drop; then podman's.
struct Cleanup {
    children: Vec<Child>,
    containers: Vec<(String, String)>,
    networks: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (ns, name) in &self.containers {
            let _ = sh(&format!(
                "nsenter --net=/var/run/netns/{ns} podman rm -f -t 0 {name}"
            ));
        }
        for n in &self.networks {
            let _ = sh(&format!("podman network rm -f {n}"));
        }
    }
}

/// A private CrowdSec: configuration, hub selection and database in `dir`,
/// Debian's offline hub read in place. The Traefik collection is enabled as
/// Debian's postinst enables collections (symlinks into the hub). The
/// whitelist parser is left out: it whitelists private ranges, and the lab's
/// attacker is 10.213.x (a real host's attackers come from public addresses).
fn crowdsec_config(dir: &Path) -> PathBuf {
    let etc = dir.join("etc");
    let hub = Path::new("/var/lib/crowdsec/hub");
    std::fs::create_dir_all(etc.join("acquis.d")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    sh_ok(&format!(
        "cp -a /etc/crowdsec/collections /etc/crowdsec/parsers /etc/crowdsec/scenarios \
         /etc/crowdsec/patterns /etc/crowdsec/profiles.yaml /etc/crowdsec/simulation.yaml {etc}/ \
         && mkdir -p {etc}/postoverflows \
         && cp /var/lib/crowdsec/data/*.txt /var/lib/crowdsec/data/*.regex {data}/ \
         && ln -sf {hub}/collections/crowdsecurity/traefik.yaml {etc}/collections/ \
         && ln -sf {hub}/parsers/s01-parse/crowdsecurity/traefik-logs.yaml {etc}/parsers/s01-parse/ \
         && rm -f {etc}/parsers/s02-enrich/whitelists.yaml",
        etc = etc.display(),
        data = dir.join("data").display(),
        hub = hub.display(),
    ));
    // n250's generated acquisition files, byte for byte.
    for f in ["traefik.yaml", "sshd.yaml"] {
        std::fs::copy(
            generated(&format!("crowdsec/acquis.d/{f}")),
            etc.join("acquis.d").join(f),
        )
        .unwrap();
    }
    let config = etc.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "common:\n  daemonize: false\n  log_media: stdout\n  log_level: info\n  working_dir: .\n\
             config_paths:\n  config_dir: {etc}/\n  data_dir: {data}/\n  simulation_path: {etc}/simulation.yaml\n\
             \x20 hub_dir: {hub}/\n  index_path: {hub}/.index.json\n  notification_dir: {etc}/notifications/\n\
             \x20 plugin_dir: /usr/lib/crowdsec/plugins/\n\
             crowdsec_service:\n  acquisition_dir: {etc}/acquis.d\n  parser_routines: 1\n\
             cscli:\n  output: human\n  hub_branch: master\n\
             db_config:\n  type: sqlite\n  db_path: {data}/crowdsec.db\n  use_wal: true\n\
             api:\n  client:\n    credentials_path: {etc}/local_api_credentials.yaml\n\
             \x20 server:\n    listen_uri: 127.0.0.1:8080\n    profiles_path: {etc}/profiles.yaml\n\
             \x20   console_path: {etc}/console.yaml\n\
             prometheus:\n  enabled: false\n",
            etc = etc.display(),
            data = dir.join("data").display(),
            hub = hub.display(),
        ),
    )
    .unwrap();
    config
}

fn cscli(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new("cscli")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Traefik's Common Log Format line, as its access log writes it.
fn clf(ip: &str, path: &str, status: u16, n: usize) -> String {
    let now = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%d/%b/%Y:%H:%M:%S +0000"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    format!(
        "{ip} - - [{}] \"GET {path} HTTP/1.1\" {status} 19 \"-\" \"Mozilla/5.0\" {n} \"app@file\" \"http://10.89.1.5:8080\" 2ms\n",
        now.trim()
    )
}

/// Writes sshd journal entries (as journald records sshd.service's lines) into
/// a new file of the journal directory `dir`, with Debian's real
/// systemd-journal-remote reading the journal export format. Each batch is
/// its own file: `journalctl --follow` picks up new files.
fn journal_sshd(dir: &Path, batch: &str, messages: &[String]) {
    let machine = read(Path::new("/etc/machine-id")).trim().to_string();
    let mut export = String::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    for (i, m) in messages.iter().enumerate() {
        let t = now + i as u128;
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={t}\n\
             _BOOT_ID=0123456789abcdef0123456789abcdef\n_MACHINE_ID={machine}\n\
             _HOSTNAME=n250\n_TRANSPORT=syslog\n_SYSTEMD_UNIT=sshd.service\n\
             SYSLOG_IDENTIFIER=sshd\n_PID=4242\nPRIORITY=6\nSYSLOG_FACILITY=4\nMESSAGE={m}\n\n"
        ));
    }
    let at = dir.join(&machine);
    std::fs::create_dir_all(&at).unwrap();
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg("-o")
        .arg(at.join(format!("{batch}.journal")))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), export.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// `cscli decisions list` asks the Local API, which listens in the lab host.
fn decided(ns: &str, config: &Path) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cscli", "-c"])
        .arg(config)
        .args(["decisions", "list", "-o", "json"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_attacker_in_the_traefik_log_is_dropped_at_443_and_at_a_published_port() {
    if !lab::require()
        || !common::have_tools(&[
            "crowdsec",
            "cscli",
            "crowdsec-firewall-bouncer",
            "podman",
            "runc",
            "nsenter",
            "unshare",
            "journalctl",
            JOURNAL_REMOTE,
        ])
    {
        return;
    }
    let mut lab = Lab::with_addrs(&[&format!("{HOST}/24"), &format!("{HOST6}/64")]);
    let attacker = lab.client(&[&format!("{ATTACKER}/24")]);
    let attacker6 = lab.client(&[&format!("{ATTACKER6}/64")]);
    let bystander = lab.client(&[&format!("{BYSTANDER}/24")]);
    let mut cleanup = Cleanup {
        children: Vec::new(),
        containers: Vec::new(),
        networks: Vec::new(),
    };
    // n250's firewall and the bouncer's tables, as the host loads them.
    lab.load(&format!(
        "{}{}",
        host_ruleset(),
        read(&generated("crowdsec/bouncer.nft"))
    ));
    lab.host_sh("sysctl -qw net.ipv4.ip_forward=1");
    lab.listen_tcp(443);

    // A real container publishing PUBLISHED → 8080, on a network of its own.
    let net = format!("{}-pub", lab.host);
    sh_ok(&format!(
        "podman network create --subnet {CONTAINER_NET} {net} >/dev/null"
    ));
    cleanup.networks.push(net.clone());
    let image = lab::busybox_image();
    let cname = format!("{}-app", lab.host);
    sh_ok(&format!(
        "nsenter --net=/var/run/netns/{ns} podman run -d --name {cname} --runtime runc \
         --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network {net} \
         -p {PUBLISHED}:8080 {image} busybox nc -ll -p 8080 -e busybox echo ok >/dev/null",
        ns = lab.host
    ));
    cleanup.containers.push((lab.host.clone(), cname));
    lab::wait_for(
        || tcp(&bystander, HOST, PUBLISHED) == Probe::Open,
        "the published port from the bystander",
    );
    assert_eq!(
        tcp(&attacker6, HOST6, 443),
        Probe::Open,
        "IPv6 → 443 before"
    );
    for who in [&attacker, &bystander] {
        assert_eq!(tcp(who, HOST, 443), Probe::Open, "{who} → 443 before");
        assert_eq!(
            tcp(who, HOST, PUBLISHED),
            Probe::Open,
            "{who} → {PUBLISHED} before"
        );
    }

    // CrowdSec in the lab host's namespace, seeing a private /var/log where
    // the generated acquisition expects Traefik's log.
    let dir = tempfile::tempdir().unwrap();
    let config = crowdsec_config(dir.path());
    let varlog = dir.path().join("varlog");
    std::fs::create_dir_all(varlog.join("traefik")).unwrap();
    let access_log = varlog.join("traefik/access.log");
    std::fs::write(&access_log, "").unwrap();
    // The host's journal, where NixOS keeps it: journalctl refuses to start
    // (and crowdsec with it) when it finds no journal file at all.
    let journal = varlog.join("journal");
    journal_sshd(
        &journal,
        "system",
        &["Server listening on 0.0.0.0 port 22.".to_string()],
    );
    // TEST SHIM, not a double: the real journalctl, pointed at that directory.
    // journalctl's default lookup (what crowdsec runs) did not pick up journal
    // files appended here outside journald (measured on Debian's systemd 252);
    // `-D` does. crowdsec's own arguments, the generated filter among them,
    // pass through unchanged.
    let shim = dir.path().join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    common::write_script(
        &shim.join("journalctl"),
        format!(
            "#!/bin/sh\nexec /usr/bin/journalctl -D /var/log/journal/{} \"$@\"\n",
            read(Path::new("/etc/machine-id")).trim()
        ),
    );
    let added = cscli(
        &config,
        &[
            "machines",
            "add",
            "potato-test",
            "--auto",
            "-f",
            &dir.path()
                .join("etc/local_api_credentials.yaml")
                .display()
                .to_string(),
        ],
    );
    assert!(added.status.success(), "{added:?}");
    // As the engine container's docker_start.sh registers BOUNCER_KEY_firewall.
    let bouncer = cscli(
        &config,
        &[
            "bouncers",
            "add",
            potato::intrusion::BOUNCER_NAME,
            "--key",
            KEY,
        ],
    );
    assert!(bouncer.status.success(), "{bouncer:?}");
    let engine_log = std::fs::File::create(dir.path().join("crowdsec.log")).unwrap();
    cleanup.children.push(
        Command::new("ip")
            .args(["netns", "exec", &lab.host])
            .args(["unshare", "-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /var/log && exec crowdsec -c {}",
                varlog.display(),
                config.display()
            ))
            .env(
                "PATH",
                format!("{}:{}", shim.display(), std::env::var("PATH").unwrap()),
            )
            .stdout(engine_log.try_clone().unwrap())
            .stderr(engine_log)
            .spawn()
            .unwrap(),
    );
    let engine_says = || read(&dir.path().join("crowdsec.log"));
    wait_long(
        || lab::tcp_connect(&lab.host, "127.0.0.1", 8080) == Probe::Open,
        30,
        "crowdsec's Local API",
        engine_says,
    );
    wait_long(
        || engine_says().contains("/var/log/traefik/access.log"),
        30,
        "crowdsec to follow the access log",
        engine_says,
    );

    // The bouncer: n250's generated configuration, the key through the unit's
    // script, its tables already loaded (as the unit's ExecStartPre does).
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let out = key_script(KEY, &run);
    assert!(out.status.success(), "{out:?}");
    let bouncer_log = std::fs::File::create(dir.path().join("bouncer.log")).unwrap();
    cleanup.children.push(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.host,
                "crowdsec-firewall-bouncer",
                "-c",
            ])
            .arg(run.join("config.yaml"))
            .stdin(Stdio::null())
            .stdout(bouncer_log.try_clone().unwrap())
            .stderr(bouncer_log)
            .spawn()
            .unwrap(),
    );

    // The attack: 15 probes of distinct missing paths (hub scenario
    // crowdsecurity/http-probing: 10 distinct 404s within its leak), among a
    // bystander's ordinary requests.
    let mut lines = String::new();
    for n in 0..15 {
        lines.push_str(&clf(BYSTANDER, "/", 200, 2 * n));
        lines.push_str(&clf(ATTACKER, &format!("/wp-{n}.php"), 404, 2 * n + 1));
        lines.push_str(&clf(ATTACKER6, &format!("/old-{n}.php"), 404, 2 * n + 1));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&access_log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, lines.as_bytes()))
        .unwrap();
    // And sshd's journal: 8 unknown users from one source (hub scenario
    // crowdsecurity/ssh-bf: 5 failed authentications within its leak).
    let guesses: Vec<String> = (0..8)
        .map(|n| {
            format!(
                "Invalid user admin{n} from {SSH_ATTACKER} port {}",
                40000 + n
            )
        })
        .collect();
    journal_sshd(&journal, "attack", &guesses);
    wait_long(
        || {
            let d = decided(&lab.host, &config);
            d.contains(&format!("\"value\": \"{ATTACKER}\""))
                && d.contains(&format!("\"value\": \"{SSH_ATTACKER}\""))
                && d.contains(&format!("\"value\": \"{ATTACKER6}\""))
        },
        30,
        "decisions on both attackers",
        || format!("{}\n{}", decided(&lab.host, &config), engine_says()),
    );
    let decisions: serde_json::Value = serde_json::from_str(&decided(&lab.host, &config)).unwrap();
    let values: Vec<String> = decisions
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["decisions"].as_array().unwrap().iter())
        .map(|d| {
            format!(
                "{} {}",
                d["type"].as_str().unwrap(),
                d["value"].as_str().unwrap()
            )
        })
        .collect();
    let mut values = values;
    values.sort();
    assert_eq!(
        values,
        [
            format!("ban {SSH_ATTACKER}"),
            format!("ban {ATTACKER}"),
            format!("ban {ATTACKER6}")
        ],
        "{decisions:#}"
    );

    wait_long(
        || {
            let set = lab.host_sh("nft list set ip potato-crowdsec crowdsec-blacklists");
            let set6 = lab.host_sh("nft list set ip6 potato-crowdsec6 crowdsec6-blacklists");
            set.contains(ATTACKER) && set.contains(SSH_ATTACKER) && set6.contains(ATTACKER6)
        },
        40,
        "the bouncer to fill its set",
        || read(&dir.path().join("bouncer.log")),
    );
    let set = lab.host_sh("nft list set ip potato-crowdsec crowdsec-blacklists");
    assert!(!set.contains(BYSTANDER), "{set}");

    assert_eq!(tcp(&attacker, HOST, 443), Probe::Dropped, "attacker → 443");
    assert_eq!(
        tcp(&attacker6, HOST6, 443),
        Probe::Dropped,
        "IPv6 attacker → 443"
    );
    assert_eq!(
        tcp(&attacker, HOST, PUBLISHED),
        Probe::Dropped,
        "attacker → published {PUBLISHED}"
    );
    assert_eq!(tcp(&bystander, HOST, 443), Probe::Open, "bystander → 443");
    assert_eq!(
        tcp(&bystander, HOST, PUBLISHED),
        Probe::Open,
        "bystander → published {PUBLISHED}"
    );
    // Control, hook by hook: without the forward chain the published port
    // opens to the attacker (DNAT-ed packets never meet input) while 443
    // stays dropped; without the tables everything opens, so the drops above
    // are the bouncer's doing.
    lab.host_sh("nft delete chain ip potato-crowdsec forward");
    assert_eq!(
        tcp(&attacker, HOST, PUBLISHED),
        Probe::Open,
        "attacker → {PUBLISHED} without the forward hook"
    );
    assert_eq!(
        tcp(&attacker, HOST, 443),
        Probe::Dropped,
        "attacker → 443 still"
    );
    lab.host_sh("nft delete table ip potato-crowdsec");
    assert_eq!(
        tcp(&attacker, HOST, 443),
        Probe::Open,
        "attacker → 443 unbanned"
    );
    drop(cleanup);
}

/// modules/crowdsec with n250's generated spec, evaluated by the real Nix with
/// stand-ins for `lib`, `pkgs` and `config` (TEST DOUBLES: nixpkgs cannot be
/// fetched here; the module uses only `lib.getExe`, three packages and
/// `services.journald.storage`). Returns the module's attribute set as JSON.
fn eval_module(storage: &str) -> serde_json::Value {
    let root = common::source_root();
    let expr = format!(
        "let spec = builtins.fromJSON (builtins.readFile {spec}); \
         m = import {module} {{ inherit spec; dir = \"/gen\"; }}; \
         lib = {{ getExe = p: \"${{p}}/bin/${{p.pname}}\"; }}; \
         pkgs = {{ nftables = \"/pkgs/nftables\"; runtimeShell = \"/pkgs/sh\"; \
         crowdsec-firewall-bouncer = {{ pname = \"crowdsec-firewall-bouncer\"; outPath = \"/pkgs/cfb\"; }}; }}; \
         config = {{ services.journald.storage = \"{storage}\"; }}; \
         in m {{ inherit lib pkgs config; }}",
        spec = generated("crowdsec/crowdsec.json").display(),
        module = root.join("modules/crowdsec").display(),
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &expr])
        .env("NIX_CONF_DIR", root.join("tests/nix"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_nixos_module_places_the_generated_files() {
    if !common::have_tool("nix-instantiate") {
        return;
    }
    let m = eval_module("persistent");
    let c = &m["virtualisation"]["oci-containers"]["containers"]["crowdsec"];
    // The Local API on the host's loopback only, where the bouncer asks.
    assert_eq!(c["ports"], serde_json::json!(["127.0.0.1:8080:8080/tcp"]));
    // Each generated acquisition file, read-only, in the image's acquis.d.
    assert_eq!(
        c["volumes"],
        serde_json::json!([
            "/gen/acquis.d/traefik.yaml:/etc/crowdsec/acquis.d/traefik.yaml:ro",
            "/gen/acquis.d/sshd.yaml:/etc/crowdsec/acquis.d/sshd.yaml:ro"
        ])
    );
    let unit = &m["systemd"]["services"]["crowdsec-firewall-bouncer"];
    let after: Vec<&str> = unit["after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(after.contains(&"podman-crowdsec.service"), "{after:?}");
    let pre: Vec<&str> = unit["serviceConfig"]["ExecStartPre"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(pre[0], "/pkgs/nftables/bin/nft -f /gen/bouncer.nft");
    assert!(
        pre[1].ends_with(
            "-bouncer-key.sh /run/potato-secrets/crowdsec-bouncer-key /gen/bouncer.yaml /run/crowdsec-firewall-bouncer"
        ),
        "{pre:?}"
    );
    assert_eq!(
        unit["serviceConfig"]["ExecStart"],
        "/pkgs/cfb/bin/crowdsec-firewall-bouncer -c /run/crowdsec-firewall-bouncer/config.yaml"
    );
    assert_eq!(m["assertions"][0]["assertion"], true);
    // A volatile journal is refused at evaluation.
    assert_eq!(eval_module("volatile")["assertions"][0]["assertion"], false);
}
