//! Each native format's one function (`potato::render::format`) against the
//! real reader of that format: adversarial strings either read back exactly or
//! are refused. Readers: sh (dash), wg-quick, systemd-tmpfiles, libmount
//! (findmnt), nft (in a fresh network namespace), ssh-keygen for
//! authorized_keys, fail2ban's own config parser, PyYAML, nix-instantiate.
//! Plus the findings of issue 13, each shown first against the old rendering
//! (the payload gets through the real reader) and then refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Repo, have_tool};
use potato::render::format::{
    Problem, comment_text, fail2ban, fstab, nft, sh, sshd, tmpfiles, wgquick, yaml_json,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// Characters that break formats, plus any character at all.
fn adversarial_string() -> impl Strategy<Value = String> {
    let special = prop_oneof![
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just(' '),
        Just('\0'),
        Just('"'),
        Just('\''),
        Just('\\'),
        Just('$'),
        Just('`'),
        Just(';'),
        Just('#'),
        Just('['),
        Just('='),
        Just('%'),
        Just('*'),
        Just('\u{1}'),
        Just('\u{7f}'),
        Just('\u{85}'),
        Just('\u{2028}'),
        Just('é'),
        Just('💥'),
        any::<char>(),
        prop::char::range('a', 'z'),
    ];
    prop::collection::vec(special, 0..20).prop_map(|cs| cs.into_iter().collect())
}

/// `n` adversarial strings from a fixed seed, after the `fixed` ones.
fn samples(n: usize, fixed: &[&str]) -> Vec<String> {
    let mut runner = TestRunner::new(Config {
        rng_seed: RngSeed::Fixed(0x13_f0_4a),
        ..Config::default()
    });
    let strategy = adversarial_string();
    let mut v: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    while v.len() < n {
        v.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    v
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn stdout_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- POSIX shell ----

#[test]
fn shell_words_read_back_through_sh() {
    if !have_tool("sh") {
        return;
    }
    let values = samples(256, &["X;id>/tmp/f;Y", "'", "''\\''", "$(id)", "`id`", ""]);
    let (ok, refused): (Vec<_>, Vec<_>) = values.iter().partition(|v| !v.contains('\0'));
    for v in &refused {
        assert_eq!(sh::word(v).unwrap_err().problem, Problem::Nul);
    }
    let script = format!(
        "printf '%s\\001' {}\n",
        ok.iter()
            .map(|v| sh::word(v).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    );
    stdout_ok(Command::new("sh").args(["-n", "-c", &script]));
    let out = stdout_ok(Command::new("sh").args(["-c", &script]));
    let back: Vec<&str> = out.split('\u{1}').collect();
    // Values holding \u{1} are split further; compare the joined stream instead.
    let want: String = ok.iter().map(|v| format!("{v}\u{1}")).collect();
    assert_eq!(
        out,
        want,
        "every word printed back exactly ({} words)",
        back.len()
    );
}

/// Issue 13: a catalog env key `X;id>/tmp/f;Y` was written unquoted into
/// secrets.sh as `env_var KEY ...`; sh ran the command. Now the key is refused
/// (not a variable name) and every word is quoted.
#[test]
fn secrets_sh_env_key_injection_ran_a_command_and_is_now_refused() {
    if !have_tool("sh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let key = format!("X;touch {};Y", marker.display());
    // The old line, as the old renderer wrote it: `env_var {key} secret NAME`.
    let old = format!("env_var() {{ :; }}\nenv_var {key} secret x\n");
    let _ = run(Command::new("sh").args(["-c", &old]));
    assert!(marker.exists(), "the old secrets.sh line ran the payload");
    std::fs::remove_file(&marker).unwrap();

    let quoted = format!(
        "env_var() {{ printf '%s' \"$1\"; }}\nenv_var {} secret x\n",
        sh::word(&key).unwrap()
    );
    let out = stdout_ok(Command::new("sh").args(["-c", &quoted]));
    assert_eq!(out, key, "quoted, the key is one word");
    assert!(!marker.exists());
    let e = potato::render::format::envfile::key(&key).unwrap_err();
    assert!(e.to_string().contains("is not a variable name"), "{e}");
}

// ---- wg-quick ----

fn wg_interface(peer_name: &str, endpoint: Option<&str>) -> potato::plan::WgInterface {
    potato::plan::WgInterface {
        name: "wg0".into(),
        address: "10.99.0.1/24".parse().unwrap(),
        listen_port: Some(51820),
        private_key_secret: "wg0".into(),
        public_key: None,
        peers: vec![potato::plan::WgPeer {
            name: peer_name.into(),
            public_key: "0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4=".into(),
            allowed_ips: vec!["10.99.0.50/32".parse().unwrap()],
            endpoint: endpoint.map(String::from),
            persistent_keepalive: None,
        }],
    }
}

/// `wg-quick strip`: what wg-quick hands on to `wg setconf` after taking its
/// own directives (Address, PostUp, ...) out of [Interface] sections.
fn wg_quick_strip(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wg0.conf");
    std::fs::write(&file, text).unwrap();
    stdout_ok(Command::new("wg-quick").arg("strip").arg(&file))
}

#[test]
fn wg_quick_comments_and_values_read_back_or_are_refused() {
    if !have_tool("wg-quick") {
        return;
    }
    let names = samples(
        64,
        &["phone\n[Interface]\nPostUp = id", "a # b", "tab\there"],
    );
    let mut accepted = 0;
    for name in &names {
        let w = wg_interface(name, Some("gw.example.net:51820"));
        let Ok(conf) = potato::harden::wireguard::native_config("hosts/x.toml", &w) else {
            assert!(
                wgquick::comment(name).is_err(),
                "only the comment can refuse here: {name:?}"
            );
            continue;
        };
        accepted += 1;
        let stripped = wg_quick_strip(&conf);
        assert_eq!(
            stripped.matches("[Interface]").count(),
            1,
            "{conf}\n---\n{stripped}"
        );
        assert!(
            !stripped.lines().any(|l| l.starts_with("PostUp")),
            "wg-quick took its PostUp:\n{stripped}"
        );
        // (bash's `read` drops trailing blanks; a comment carries no data.)
        let line = format!("# {name}");
        assert!(
            stripped.contains(&format!("[Peer]\n{}\nPublicKey = ", line.trim_end())),
            "the comment is one line that wg setconf ignores:\n{stripped}"
        );
        assert!(stripped.contains("Endpoint = gw.example.net:51820\n"));
    }
    assert!(accepted > 5, "some names are accepted ({accepted})");
    for v in samples(64, &["a b", "x#y", "$(id)"]) {
        match wgquick::value(&v) {
            Ok(_) => {
                let conf = format!("[Interface]\nListenPort = 1\n\n[Peer]\nEndpoint = {v}\n");
                let stripped = wg_quick_strip(&conf);
                assert!(
                    stripped.contains(&format!("Endpoint = {v}\n")),
                    "{stripped}"
                );
            }
            Err(e) => assert!(
                v.is_empty()
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == '#' || c.is_control()),
                "refused without cause: {v:?}: {e}"
            ),
        }
    }
}

/// Issue 13: an external peer's name with a line break added `[Interface]`
/// and a `PostUp` that wg-quick takes as its own (and runs as root).
#[test]
fn wg_conf_peer_name_injection_reached_wg_quick_and_is_now_refused() {
    if !have_tool("wg-quick") {
        return;
    }
    let name = "phone\n[Interface]\nPostUp = touch /tmp/pwned";
    // The old rendering of a peer: "\n[Peer]\n# {name}" then its keys.
    let old = format!(
        "[Interface]\nListenPort = 51820\n\n[Peer]\n# {name}\nPublicKey = 0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4=\n"
    );
    let stripped = wg_quick_strip(&old);
    assert_eq!(
        stripped.matches("[Interface]").count(),
        2,
        "wg-quick saw a second [Interface]"
    );
    assert!(
        old.lines().any(|l| l.starts_with("PostUp"))
            && !stripped.lines().any(|l| l.starts_with("PostUp")),
        "wg-quick consumed the injected PostUp as its own hook:\n{stripped}"
    );

    let e = potato::harden::wireguard::native_config("hosts/x.toml", &wg_interface(name, None))
        .unwrap_err();
    assert_eq!(e.problem, Problem::LineBreak);
    assert!(
        e.to_string()
            .contains("a WireGuard peer's name: a wg-quick comment"),
        "{e}"
    );

    // End to end: the host file's external peer makes `gen` exit 2, writing nothing.
    let r = Repo::examples();
    r.edit(
        "hosts/pve-gateway.toml",
        "public_key = \"0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4=\"",
        "public_key = \"0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4=\"\nexternal_peers = [{ name = \"phone\\n[Interface]\\nPostUp = touch /tmp/pwned\", public_key = \"KAvvvZodlOnkhEvElyx3PJdozphdyEKIXCVG2XLO5D8=\", allowed_ips = [\"10.99.0.50/32\"] }]",
    );
    let before = r.read("modules/generated/pve-gateway/wg0.conf");
    let run = r.potato(&["gen"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        // Refused where it is read, at its position (the wg-quick function above
        // refuses it too, should a value ever reach it another way).
        run.stderr.contains("hosts/pve-gateway.toml:41:") && run.stderr.contains("newline"),
        "{}",
        run.stderr
    );
    assert_eq!(r.read("modules/generated/pve-gateway/wg0.conf"), before);
}

// ---- systemd-tmpfiles ----

/// Every path (and parent) below `root`, relative, as bytes-exact strings.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(format!(
                "/{}",
                p.strip_prefix(root).unwrap().to_str().unwrap()
            ));
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `/a/b/c` → `/a`, `/a/b`, `/a/b/c`.
fn prefixes(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut prefix = String::new();
    for part in path.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(part);
        out.push(prefix.clone());
    }
    out
}

fn tmpfiles_create(lines: &str) -> (tempfile::TempDir, Vec<String>) {
    let root = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let file = conf.path().join("potato.conf");
    std::fs::write(&file, lines).unwrap();
    let out = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(&file));
    assert!(
        out.status.success(),
        "systemd-tmpfiles failed on:\n{lines}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = tree(root.path());
    (root, t)
}

#[test]
fn tmpfiles_paths_create_exactly_the_directory_named() {
    if !have_tool("systemd-tmpfiles") {
        return;
    }
    let names = samples(
        128,
        &["x\nL+ /etc/x - - - - /tmp", "a b", "100%", "%h", "\\x20"],
    );
    let mut lines = String::new();
    let mut want = vec!["/srv".to_string()];
    for n in &names {
        let path = format!("/srv/d-{n}");
        match tmpfiles::directory(&path, 0o750) {
            Ok(line) => {
                lines.push_str(&line);
                lines.push('\n');
                want.extend(prefixes(&path));
            }
            Err(e) => assert!(
                matches!(
                    e.problem,
                    Problem::Nul
                        | Problem::NotNormalized
                        | Problem::LineBreak
                        | Problem::Control(_)
                ),
                "{path:?}: {e}"
            ),
        }
    }
    want.sort();
    want.dedup();
    let (_root, got) = tmpfiles_create(&lines);
    assert_eq!(got, want, "exactly the named directories, nothing else");
}

/// Issue 13: a newline in `[containers] data` made an extra tmpfiles line;
/// `L+ /etc/x - - - - /tmp` was created for real.
#[test]
fn tmpfiles_line_injection_made_a_symlink_and_is_now_refused() {
    if !have_tool("systemd-tmpfiles") {
        return;
    }
    let data = "/srv/x\nL+ /etc/x - - - - /tmp";
    // The old line, from modules/containers.nix: "d ${d} 0750 root root -".
    let (root, got) = tmpfiles_create(&format!("d {data} 0750 root root -\n"));
    assert!(got.contains(&"/etc/x".to_string()), "{got:?}");
    assert!(
        root.path().join("etc/x").is_symlink(),
        "the payload line ran"
    );

    let e = tmpfiles::directory(data, 0o750).unwrap_err();
    assert_eq!(e.problem, Problem::LineBreak);
    // Spaces cannot split the line either: the path is quoted.
    let spaced = "/srv/x L+ /etc/x - - - - /tmp";
    let (root, got) = tmpfiles_create(&(tmpfiles::directory(spaced, 0o750).unwrap() + "\n"));
    assert_eq!(
        got,
        prefixes(spaced),
        "one directory (and its parents), named literally"
    );
    assert!(!root.path().join("etc").exists());
}

// ---- fstab ----

/// What libmount reads from an fstab: (source, target) of every entry.
fn findmnt(fstab_text: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fstab");
    std::fs::write(&file, fstab_text).unwrap();
    let out =
        stdout_ok(
            Command::new("findmnt")
                .arg("-F")
                .arg(&file)
                .args(["-J", "-o", "SOURCE,TARGET"]),
        );
    if out.trim().is_empty() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["source"].as_str().unwrap_or("").to_string(),
                f["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// NixOS's own escaping of fstab fields, evaluated by real Nix: a copy of
/// `escape` in nixos/modules/tasks/filesystems.nix (nixpkgs 25.11), the small
/// TEST DOUBLE for the NixOS module that writes /etc/fstab.
fn nixos_escape(values: &[String]) -> Vec<String> {
    let list = serde_json::Value::Array(values.iter().cloned().map(Into::into).collect());
    let expr = format!(
        "map (builtins.replaceStrings [ \" \" \"\\t\" ] [ \"\\\\040\" \"\\\\011\" ]) {}",
        potato::render::nix::literal(&list, 0).unwrap()
    );
    let out = stdout_ok(
        Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "-E", &expr]),
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn fstab_fields_read_back_through_libmount() {
    if !have_tool("findmnt") || !have_tool("nix-instantiate") {
        return;
    }
    let values = samples(
        128,
        &[
            "/mnt/my disk",
            "a\n/dev/sda /etc ext4 rw 0 0",
            "\\040",
            "#x",
        ],
    );
    // Fields potato writes itself.
    let mut text = String::new();
    let mut want = Vec::new();
    for v in &values {
        let target = format!("/mnt/{v}");
        match (fstab::field(v), fstab::field(&target)) {
            (Ok(src), Ok(tgt)) => {
                text.push_str(&format!("{src} {tgt} ext4 defaults 0 0\n"));
                want.push((v.clone(), target));
            }
            _ => assert!(v.contains('\0') || v.is_empty(), "{v:?}"),
        }
    }
    assert_eq!(findmnt(&text), want);
    // Fields NixOS writes with its own escaping.
    let ok: Vec<String> = values
        .iter()
        .map(|v| format!("/mnt/{v}"))
        .filter(|v| fstab::nixos_field(v).is_ok())
        .collect();
    assert!(ok.len() > 10, "some are accepted: {}", ok.len());
    let escaped = nixos_escape(&ok);
    let text: String = escaped
        .iter()
        .map(|t| format!("/dev/disk/by-label/x {t} ext4 defaults 0 0\n"))
        .collect();
    let got: Vec<String> = findmnt(&text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(got, ok, "NixOS's fstab reads back what was checked");
}

/// Issue 13: a mount point with a line break became a second fstab entry
/// (through NixOS's escaping, which handles only spaces and tabs).
#[test]
fn fstab_entry_injection_made_a_second_mount_and_is_now_refused() {
    if !have_tool("findmnt") || !have_tool("nix-instantiate") {
        return;
    }
    let point = "/mnt/x\n/dev/sdb\u{b}/etc".to_string();
    let escaped = nixos_escape(std::slice::from_ref(&point));
    let got = findmnt(&format!(
        "/dev/disk/by-label/x {} ext4 defaults 0 0\n",
        escaped[0]
    ));
    assert_eq!(
        got,
        [("/dev/sdb\u{b}/etc".to_string(), "ext4".to_string())],
        "libmount dropped the intended mount and read the injected line instead"
    );
    assert_eq!(
        fstab::nixos_field(&point).unwrap_err().problem,
        Problem::LineBreak
    );
}

// ---- nftables ----

fn nft_in_fresh_netns(ruleset: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.nft");
    std::fs::write(&file, ruleset).unwrap();
    run(Command::new("unshare")
        .args(["-n", "sh", "-c"])
        .arg(format!(
            "nft -f {0} && nft -j list table inet t",
            file.display()
        )))
}

#[test]
fn nft_comments_and_interfaces_read_back_from_the_kernel() {
    if !have_tool("nft") || !have_tool("unshare") {
        return;
    }
    let values = samples(
        128,
        &["x\" accept", "a\n\t\tip saddr 0.0.0.0/0 accept", "wg*"],
    );
    let mut body = String::new();
    let mut want = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if let Ok(c) = nft::comment(v) {
            body.push_str(&format!("\t\tudp dport {} accept comment {c}\n", 1000 + i));
            want.push((v.clone(), None));
        }
        if let Ok(n) = nft::iface(v) {
            body.push_str(&format!("\t\tiifname {n} tcp dport {} accept\n", 1000 + i));
            want.push((String::new(), Some(v.clone())));
        }
    }
    let ruleset = format!(
        "table inet t {{\n\tchain c {{\n\t\ttype filter hook input priority 0;\n{body}\t}}\n}}\n"
    );
    let out = nft_in_fresh_netns(&ruleset);
    assert!(
        out.status.success(),
        "nft refused:\n{ruleset}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, Option<String>)> = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .map(|r| {
            let iface = r["expr"].as_array().unwrap().iter().find_map(|e| {
                (e["match"]["left"]["meta"]["key"] == "iifname")
                    .then(|| e["match"]["right"].as_str().unwrap().to_string())
            });
            (r["comment"].as_str().unwrap_or("").to_string(), iface)
        })
        .collect();
    assert_eq!(got, want, "one rule per accepted value, read back exactly");
}

/// Issue 13 (the class): a catalog zone name with a quote and a line break
/// would have added an accept-all rule to the forward chain.
#[test]
fn nft_comment_injection_added_a_rule_and_is_now_refused() {
    if !have_tool("nft") || !have_tool("unshare") {
        return;
    }
    let zone = "a\"\n\t\tip saddr 0.0.0.0/0 accept comment \"b";
    // The old line: comment \"container zone {zone}\".
    let old = format!(
        "table inet t {{\n\tchain c {{\n\t\ttype filter hook forward priority 0; policy drop;\n\t\tip saddr 10.0.0.0/24 ip daddr 10.0.0.0/24 accept comment \"container zone {zone}\"\n\t}}\n}}\n"
    );
    let out = nft_in_fresh_netns(&old);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        listed.matches("\"rule\"").count(),
        2,
        "the kernel holds an injected second rule: {listed}"
    );
    assert_eq!(
        nft::comment(&format!("container zone {zone}"))
            .unwrap_err()
            .problem,
        Problem::LineBreak
    );
}

// ---- sshd / authorized_keys ----

#[test]
fn authorized_keys_lines_stay_one_key_each() {
    if !have_tool("ssh-keygen") {
        return;
    }
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp";
    let second = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDaOEAClx5N79Sb9NIDKTTheZgF06M2YOnV+GTcD4pCL";
    let comments = samples(96, &[&format!("x\n{second} evil")]);
    let entries: Vec<String> = comments.iter().map(|c| format!("{key} {c}")).collect();
    let ok: Vec<&str> = entries
        .iter()
        .map(String::as_str)
        .filter(|e| sshd::authorized_key(e).is_ok())
        .collect();
    assert!(ok.len() > 10);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("authorized_keys");
    std::fs::write(
        &file,
        sshd::authorized_keys_file(ok.iter().copied()).unwrap(),
    )
    .unwrap();
    let listed = stdout_ok(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&file));
    assert_eq!(
        listed.lines().count(),
        ok.len(),
        "one key per entry:\n{listed}"
    );
    std::fs::write(&file, format!("{key}\n")).unwrap();
    let alone = stdout_ok(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&file));
    let fingerprint = alone.split_whitespace().nth(1).unwrap().to_string();
    assert!(
        listed.lines().all(|l| l.contains(&fingerprint)),
        "every line is the one key:\n{listed}"
    );

    // Issue 13: the old joined lines made a second key out of a comment.
    let evil = format!("{key} x\n{second} evil");
    std::fs::write(&file, format!("{evil}\n")).unwrap();
    let listed = stdout_ok(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&file));
    assert_eq!(listed.lines().count(), 2, "the old file held two keys");
    assert_eq!(
        sshd::authorized_key(&evil).unwrap_err().problem,
        Problem::LineBreak
    );
}

#[test]
fn sshd_values_are_read_as_one_word_by_sshd() {
    if !have_tool("ssh-keygen") || !Path::new("/usr/sbin/sshd").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hostkey");
    stdout_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key),
    );
    let mut checked = 0;
    for v in samples(
        96,
        &[
            "none\nPermitRootLogin yes",
            "a b",
            "\"x\"",
            "plain",
            "é💥",
            "a;b$c`",
        ],
    ) {
        let path = format!("/etc/issue-{v}");
        let Ok(line) = sshd::line("Banner", &path) else {
            continue;
        };
        checked += 1;
        let cfg = dir.path().join("sshd_config");
        std::fs::write(&cfg, format!("{line}PermitRootLogin no\n")).unwrap();
        let out = stdout_ok(
            Command::new("/usr/sbin/sshd")
                .args(["-T", "-f"])
                .arg(&cfg)
                .arg("-h")
                .arg(&key),
        );
        assert!(out.contains(&format!("\nbanner {path}\n")), "{v:?}: {out}");
        assert!(out.contains("\npermitrootlogin no\n"));
    }
    assert!(checked >= 3, "{checked} accepted");
}

// ---- fail2ban ----

#[test]
fn fail2ban_values_read_back_through_its_config_parser() {
    if !have_tool("/usr/bin/python3") {
        return;
    }
    let values = samples(
        96,
        &["x\n[sshd]\nenabled = false", "100%", "%(known/x)s", " lead"],
    );
    let mut text = String::from("[potato]\n");
    let mut want = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if let Ok(line) = fail2ban::line(&format!("k{i}"), v) {
            text.push_str(&line);
            want.push((format!("k{i}"), v.clone()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jail.local");
    std::fs::write(&file, &text).unwrap();
    let script = "import json, sys\nfrom fail2ban.client.configparserinc import SafeConfigParserWithIncludes as P\np = P()\np.read(sys.argv[1])\nprint(json.dumps({'sections': p.sections(), 'items': [[k, p.get('potato', k)] for k in p.options('potato') if k.startswith('k')]}))";
    let out = stdout_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(&file),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["sections"],
        serde_json::json!(["potato"]),
        "no section was added"
    );
    let mut got: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

// ---- YAML / JSON ----

#[test]
fn json_documents_read_back_as_yaml() {
    if !have_tool("/usr/bin/python3") {
        return;
    }
    let values = samples(
        256,
        &[
            "a: b", "- x", "{", "\u{2028}", "\u{85}", "\u{feff}", "\u{7f}",
        ],
    )
    .into_iter()
    .filter(|v| !v.contains('\0'))
    .collect::<Vec<_>>();
    let mut map = serde_json::Map::new();
    for (i, v) in values.iter().enumerate() {
        map.insert(format!("{v}{i}"), v.clone().into());
    }
    let doc = serde_json::json!({ "list": values, "map": map });
    let text = yaml_json::yaml("potato test", &doc).unwrap();
    let out = common::pipe_through(
        "/usr/bin/python3",
        &[
            "-c",
            "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))",
        ],
        text.as_bytes(),
    );
    let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, doc, "YAML reads back every string");
}

/// Tagged YAML (authentik's blueprints): adversarial strings as keys, as
/// plain values and under local tags read back exactly through PyYAML (the
/// reader authentik uses), each tag arriving on the node it was put on.
#[test]
fn tagged_yaml_reads_back_with_its_tags() {
    use potato::render::format::yaml_json::{Node, Tag};
    if !have_tool("/usr/bin/python3") {
        return;
    }
    let values: Vec<String> = samples(
        128,
        &[
            "!KeyOf x", "a: b", "[", "\u{2028}", "\u{85}", "# c", "&a", "*a",
        ],
    )
    .into_iter()
    .filter(|v| !v.contains('\0'))
    .collect();
    let key_of = Tag::new("!KeyOf").unwrap();
    let find = Tag::new("!Find").unwrap();
    let mut pairs = Vec::new();
    let mut want = serde_json::Map::new();
    for (i, v) in values.iter().enumerate() {
        let node = match i % 3 {
            0 => Node::str(v),
            1 => Node::tagged(key_of.clone(), Node::str(v)),
            _ => Node::tagged(
                find.clone(),
                Node::Seq(vec![Node::str(v), Node::Seq(vec![])]),
            ),
        };
        let back = match i % 3 {
            0 => serde_json::json!(v),
            1 => serde_json::json!(["!KeyOf", v]),
            _ => serde_json::json!(["!Find", [v, []]]),
        };
        pairs.push((format!("{v}{i}"), node));
        want.insert(format!("{v}{i}"), back);
    }
    let text = yaml_json::tagged_yaml("potato test", &Node::map(pairs)).unwrap();
    let script = "import json, sys, yaml\n\
        class L(yaml.SafeLoader): pass\n\
        L.add_constructor('!KeyOf', lambda l, n: ['!KeyOf', l.construct_scalar(n)])\n\
        L.add_constructor('!Find', lambda l, n: ['!Find', l.construct_sequence(n, deep=True)])\n\
        print(json.dumps(yaml.load(sys.stdin.read(), L)))";
    let out = common::pipe_through("/usr/bin/python3", &["-c", script], text.as_bytes());
    let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, serde_json::Value::Object(want));
}

// ---- Nix comments ----

#[test]
fn nix_comments_never_become_code() {
    if !have_tool("nix-instantiate") {
        return;
    }
    let values = samples(
        128,
        &[
            "x\n}; y = builtins.readFile /etc/passwd; #",
            "\r1",
            "\u{2028}",
        ],
    );
    let body: String = values
        .iter()
        .map(|v| format!("  # {}\n", comment_text(v)))
        .collect();
    let expr = format!("[\n{body}  \"only\"\n]\n");
    let out = stdout_ok(
        Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "-E", &expr]),
    );
    assert_eq!(out.trim(), "[\"only\"]");
}
