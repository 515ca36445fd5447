//! `potato secrets`: real age encryption with the example fleet's demo keys
//! (tests/fixtures/demo-keys), decrypted in the test with the age crate as the
//! admin and as hosts (their SSH host keys).

mod common;

use std::process::{Command, Stdio};

use common::{Repo, line_col, source_root};

fn demo(file: &str) -> std::path::PathBuf {
    source_root().join("tests/fixtures/demo-keys").join(file)
}

/// Decrypts a repo file with an age identity file or an SSH private key.
fn decrypt_as(repo: &Repo, secret: &str, identity: &std::path::Path) -> Result<String, String> {
    let data = std::fs::read(repo.path().join(secret)).unwrap();
    let plain = common::age_decrypt(&data, identity)?;
    Ok(String::from_utf8(plain).unwrap())
}

/// Regular files anywhere below `dir` (the scratch directories potato keeps
/// under the runtime directory do not count; a plaintext copy does).
fn files_below(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() { files_below(&p) } else { 1 }
        })
        .sum()
}

fn potato_with_stdin(repo: &Repo, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> common::Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_potato"));
    cmd.args(args)
        .current_dir(repo.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env("POTATO_AGE_IDENTITY", demo("admin.agekey"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin.as_bytes()).unwrap();
    drop(child.stdin.take());
    common::Run::from(child.wait_with_output().unwrap())
}

#[test]
fn set_encrypts_to_admins_and_the_host_only_and_never_prints_the_value() {
    let r = Repo::examples();
    let value = "correct horse battery staple 7f3a";
    let run = potato_with_stdin(
        &r,
        &["secrets", "set", "db-password", "--host", "n250"],
        value,
        &[],
    );
    run.ok();
    assert!(!run.stdout.contains(value) && !run.stderr.contains(value));
    let f = "secrets/n250/db-password.age";
    assert_eq!(
        decrypt_as(&r, f, &demo("admin.agekey")).unwrap(),
        value,
        "the admin decrypts"
    );
    assert_eq!(
        decrypt_as(&r, f, &demo("ssh_host_ed25519_key.n250")).unwrap(),
        value,
        "n250 decrypts with its host key"
    );
    assert!(
        decrypt_as(&r, f, &demo("ssh_host_ed25519_key.lepotato")).is_err(),
        "another host cannot"
    );
    let sidecar = r.read("secrets/n250/db-password.recipients");
    assert_eq!(sidecar.lines().filter(|l| !l.starts_with('#')).count(), 2);
}

#[test]
fn gen_wireguard_prints_only_the_public_key() {
    let r = Repo::examples();
    let run = potato_with_stdin(
        &r,
        &[
            "secrets",
            "gen",
            "wg1",
            "--kind",
            "wireguard",
            "--host",
            "n250",
        ],
        "",
        &[],
    );
    run.ok();
    let private = decrypt_as(&r, "secrets/n250/wg1.age", &demo("admin.agekey")).unwrap();
    let private = private.trim();
    assert_eq!(private.len(), 44);
    assert!(!run.stdout.contains(private) && !run.stderr.contains(private));
    // The printed public key belongs to the stored private key (checked with wg when present).
    let printed = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("public_key = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    if let Ok(mut wg) = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        std::io::Write::write_all(wg.stdin.as_mut().unwrap(), private.as_bytes()).unwrap();
        drop(wg.stdin.take());
        let out = wg.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), printed);
    }
    // Refuses to overwrite without --force.
    let again = potato_with_stdin(
        &r,
        &[
            "secrets",
            "gen",
            "wg1",
            "--kind",
            "wireguard",
            "--host",
            "n250",
        ],
        "",
        &[],
    );
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("pass --force"));
    for kind in ["password", "token"] {
        potato_with_stdin(
            &r,
            &[
                "secrets",
                "gen",
                &format!("x-{kind}"),
                "--kind",
                kind,
                "--shared",
            ],
            "",
            &[],
        )
        .ok();
        let v = decrypt_as(
            &r,
            &format!("secrets/shared/x-{kind}.age"),
            &demo("admin.agekey"),
        )
        .unwrap();
        assert_eq!(v.trim().len(), if kind == "token" { 64 } else { 32 });
    }
}

#[test]
fn edit_with_a_scripted_editor() {
    let r = Repo::examples();
    let before = decrypt_as(&r, "secrets/n250/wg0.age", &demo("admin.agekey")).unwrap();
    let editor = r.path().join("editor.sh");
    let argv_log = r.path().join("editor-argv.log");
    common::write_script(
        &editor,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nls -l \"$1\" >> {}\nprintf 'NEW-VALUE\\n' > \"$1\"\n",
            argv_log.display(),
            argv_log.display()
        ),
    );
    let scratch_base = tempfile::tempdir().unwrap();
    let env = [
        ("EDITOR", editor.to_str().unwrap()),
        ("XDG_RUNTIME_DIR", scratch_base.path().to_str().unwrap()),
    ];
    let run = potato_with_stdin(&r, &["secrets", "edit", "wg0", "--host", "n250"], "", &env);
    run.ok();
    assert_eq!(
        decrypt_as(&r, "secrets/n250/wg0.age", &demo("admin.agekey")).unwrap(),
        "NEW-VALUE\n"
    );
    assert_eq!(
        decrypt_as(
            &r,
            "secrets/n250/wg0.age",
            &demo("ssh_host_ed25519_key.n250")
        )
        .unwrap(),
        "NEW-VALUE\n"
    );
    let log = std::fs::read_to_string(&argv_log).unwrap();
    assert!(
        log.contains("-rw-------"),
        "the scratch file is 0600: {log}"
    );
    assert!(
        !log.contains(before.trim()),
        "the value never appears in the editor's argv"
    );
    assert_eq!(
        files_below(scratch_base.path()),
        0,
        "the scratch directory is removed"
    );

    // An editor that fails changes nothing.
    std::fs::write(&editor, "#!/bin/sh\nprintf 'HALF' > \"$1\"\nexit 3\n").unwrap();
    let run = potato_with_stdin(&r, &["secrets", "edit", "wg0", "--host", "n250"], "", &env);
    // A failed program is exit 1, not invalid input (issue 16).
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    assert!(
        run.stderr.contains("$EDITOR failed") && run.stderr.contains("exit status: 3"),
        "{}",
        run.stderr
    );
    assert_eq!(
        decrypt_as(&r, "secrets/n250/wg0.age", &demo("admin.agekey")).unwrap(),
        "NEW-VALUE\n"
    );
    assert_eq!(files_below(scratch_base.path()), 0);
}

#[test]
fn a_new_user_of_a_secret_needs_a_rekey_and_gets_it() {
    let r = Repo::examples();
    // lepotato starts using the shared token (say, for a backup job).
    potato_with_stdin(
        &r,
        &["secrets", "set", "backup-token", "--shared"],
        "s3cr3t-token",
        &[],
    )
    .ok();
    r.edit(
        "hosts/lepotato.toml",
        "private_key = \"secret:wg0\"",
        "private_key = \"secret:backup-token\"",
    );
    let loc = {
        let (l, c) = line_col(&r.read("hosts/lepotato.toml"), "\"secret:backup-token\"");
        format!("hosts/lepotato.toml:{l}:{c}")
    };
    r.potato(&["check"]).invalid_at(
        &loc,
        "secret `backup-token` (secrets/shared/backup-token.age) is not encrypted to lepotato",
    );
    assert!(
        decrypt_as(
            &r,
            "secrets/shared/backup-token.age",
            &demo("ssh_host_ed25519_key.lepotato")
        )
        .is_err()
    );
    let before_n250 = r.read("secrets/n250/wg0.age");
    let rekey = potato_with_stdin(&r, &["secrets", "rekey"], "", &[]);
    rekey.ok();
    assert!(
        rekey
            .stdout
            .contains("rekeyed secrets/shared/backup-token.age")
    );
    assert!(
        rekey.stdout.contains("1 secret rekeyed"),
        "only the file whose recipients changed: {}",
        rekey.stdout
    );
    assert_eq!(
        r.read("secrets/n250/wg0.age"),
        before_n250,
        "untouched files are not rewritten"
    );
    assert_eq!(
        decrypt_as(
            &r,
            "secrets/shared/backup-token.age",
            &demo("ssh_host_ed25519_key.lepotato")
        )
        .unwrap(),
        "s3cr3t-token"
    );
    assert!(
        decrypt_as(
            &r,
            "secrets/shared/backup-token.age",
            &demo("ssh_host_ed25519_key.n250")
        )
        .is_err(),
        "n250 does not use it"
    );
    let list = r.potato(&["secrets", "list"]);
    list.ok();
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("secrets/shared/backup-token.age")
                && l.contains("lepotato")
                && l.ends_with("ok")),
        "{}",
        list.stdout
    );
}

#[test]
fn a_host_without_a_key_cannot_be_given_secrets() {
    let r = Repo::examples();
    let text = r.read("secrets/recipients.toml");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("n250 = "))
        .map(|l| format!("{l}\n"))
        .collect();
    r.write("secrets/recipients.toml", &without);
    let (l, c) = line_col(&r.read("hosts/n250.toml"), "\"secret:wg0\"");
    let run = r.potato(&["check"]);
    run.invalid_at(
        &format!("hosts/n250.toml:{l}:{c}"),
        "host `n250` has no SSH host key in secrets/recipients.toml",
    );
    assert!(run.stderr.contains("potato secrets rekey"));
}

#[test]
fn tampered_ciphertext_is_a_clear_error() {
    let r = Repo::examples();
    let f = "secrets/n250/wg0.age";
    let text = r.read(f);
    let lines: Vec<&str> = text.lines().collect();
    let mut bad = lines.clone();
    let mid = lines.len() / 2;
    let flipped: String = lines[mid].chars().rev().collect();
    bad[mid] = &flipped;
    r.write(f, &(bad.join("\n") + "\n"));
    // Force a rekey of that file by adding a recipient-relevant change: a new admin.
    let extra = age::x25519::Identity::generate().to_public().to_string();
    let rec = r
        .read("secrets/recipients.toml")
        .replace("admins = [\"", &format!("admins = [\"{extra}\", \""));
    r.write("secrets/recipients.toml", &rec);
    let run = potato_with_stdin(&r, &["secrets", "rekey"], "", &[]);
    // A file that will not decrypt is a failure (exit 1), not invalid input
    // (issue 16: exit 2 only when the user's input is wrong).
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot decrypt secrets/n250/wg0.age")
            || run
                .stderr
                .contains(&format!("cannot decrypt {}", r.path().join(f).display())),
        "{}",
        run.stderr
    );
}

#[test]
fn no_identity_is_a_clear_error() {
    let r = Repo::examples();
    let rec = r.read("secrets/recipients.toml").replace(
        "admins = [\"",
        "admins = [\"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\", \"",
    );
    r.write("secrets/recipients.toml", &rec);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_potato"));
    let out = cmd
        .args(["secrets", "rekey"])
        .current_dir(r.path())
        .env_remove("POTATO_AGE_IDENTITY")
        .env("HOME", r.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no identity to decrypt with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ctrl_c_during_edit_wipes_the_plaintext_and_changes_nothing() {
    let r = Repo::examples();
    let before = r.read("secrets/n250/wg0.age");
    let editor = r.path().join("slow-editor.sh");
    common::write_script(
        &editor,
        "#!/bin/sh\nprintf 'HALF-TYPED' > \"$1\"\nsleep 2\n",
    );
    let scratch_base = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["secrets", "edit", "wg0", "--host", "n250"])
        .current_dir(r.path())
        .env("POTATO_AGE_IDENTITY", demo("admin.agekey"))
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", scratch_base.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert_eq!(
        files_below(scratch_base.path()),
        1,
        "the editor is running on a scratch copy"
    );
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        files_below(scratch_base.path()),
        0,
        "the plaintext copy is gone"
    );
    assert_eq!(r.read("secrets/n250/wg0.age"), before);
}

#[test]
fn no_secret_value_in_the_argv_of_anything_potato_runs() {
    if !common::have_tool("strace") {
        return;
    }
    let r = Repo::examples();
    let old = decrypt_as(&r, "secrets/n250/wg0.age", &demo("admin.agekey")).unwrap();
    let new_value = "brand-new-value-5d1e9f";
    let editor = r.path().join("editor.sh");
    common::write_script(
        &editor,
        format!("#!/bin/sh\nprintf '{new_value}' > \"$1\"\n"),
    );
    let log = r.path().join("execve.log");
    // edit (decrypts and re-encrypts), then a rekey (decrypts everything).
    let extra = age::x25519::Identity::generate().to_public().to_string();
    let rec = r
        .read("secrets/recipients.toml")
        .replace("admins = [\"", &format!("admins = [\"{extra}\", \""));
    for (args, before) in [
        (vec!["secrets", "edit", "wg0", "--host", "n250"], None),
        (vec!["secrets", "rekey"], Some(rec.clone())),
    ] {
        if let Some(text) = before {
            r.write("secrets/recipients.toml", &text);
        }
        let out = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=execve", "-s", "4096", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_potato"))
            .args(&args)
            .current_dir(r.path())
            .env("POTATO_AGE_IDENTITY", demo("admin.agekey"))
            .env("EDITOR", &editor)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let traced = std::fs::read_to_string(&log).unwrap();
        assert!(traced.contains("execve("), "strace recorded the children");
        for value in [old.trim(), new_value] {
            assert!(
                !traced.contains(value),
                "{value} appears in an argv:\n{traced}"
            );
            assert!(!stdout.contains(value) && !stderr.contains(value));
        }
    }
    assert_eq!(
        decrypt_as(
            &r,
            "secrets/n250/wg0.age",
            &demo("ssh_host_ed25519_key.n250")
        )
        .unwrap(),
        new_value
    );
}

/// `potato secrets hostkey`: a fresh host key for n250, its private half stored
/// encrypted, its public half recorded, and n250's secrets rekeyed: the new
/// key decrypts them, the old (demo) key no longer does, other hosts' keys never.
#[test]
fn a_pregenerated_host_key_decrypts_the_hosts_secrets_and_nothing_else_does() {
    if !common::have_tool("ssh-keygen") {
        return;
    }
    let r = Repo::examples();
    // Refused without --force: n250 already has a key.
    let run = potato_with_stdin(&r, &["secrets", "hostkey", "n250"], "", &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("already has a host key"),
        "{}",
        run.stderr
    );
    let run = potato_with_stdin(&r, &["secrets", "hostkey", "n250", "--force"], "", &[]);
    run.ok();
    let recipients = r.read("secrets/recipients.toml");
    let line = recipients
        .lines()
        .find(|l| l.starts_with("n250 = "))
        .unwrap();
    let public = line.trim_start_matches("n250 = ").trim_matches('"');
    assert!(public.starts_with("ssh-ed25519 "), "{line}");
    assert!(
        !recipients.contains(
            &std::fs::read_to_string(demo("ssh_host_ed25519_key.n250.pub"))
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string()
        )
    );
    assert!(
        recipients.contains("lepotato = "),
        "other hosts keep their keys"
    );
    // The private key, as the operator (admin) decrypts it to install it.
    let private = decrypt_as(
        &r,
        "secrets/n250/ssh_host_ed25519_key.age",
        &demo("admin.agekey"),
    )
    .unwrap();
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let key = r.path().join("new-n250-key");
    std::fs::write(&key, &private).unwrap();
    // n250's secret: the new key decrypts it, the old demo key and lepotato's do not.
    assert!(decrypt_as(&r, "secrets/n250/wg0.age", &key).is_ok());
    assert!(
        decrypt_as(
            &r,
            "secrets/n250/wg0.age",
            &demo("ssh_host_ed25519_key.n250")
        )
        .is_err()
    );
    assert!(
        decrypt_as(
            &r,
            "secrets/n250/wg0.age",
            &demo("ssh_host_ed25519_key.lepotato")
        )
        .is_err()
    );
    // And the fleet is consistent: check passes (every secret covers its users).
    r.potato(&["check"]).ok();
}

/// An identity that is not among a secret's recipients cannot open it: that
/// is a decrypt failure, exit 1 with a hint about the identity (not exit 2,
/// "invalid input": the command and the repository are right), and nothing
/// is rewritten.
#[test]
fn a_secret_the_identity_cannot_open_is_exit_1_not_2() {
    let r = Repo::examples();
    let before = r.read("secrets/n250/wg0.age");
    // A rekey is due (a new admin), and the only identity is a stranger's.
    let extra = age::x25519::Identity::generate().to_public().to_string();
    let rec = r
        .read("secrets/recipients.toml")
        .replace("admins = [\"", &format!("admins = [\"{extra}\", \""));
    r.write("secrets/recipients.toml", &rec);
    let stranger = tempfile::tempdir().unwrap();
    let key = stranger.path().join("stranger.agekey");
    {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        std::fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    }
    let run = potato_with_stdin(
        &r,
        &["secrets", "rekey"],
        "",
        &[("POTATO_AGE_IDENTITY", key.to_str().unwrap())],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot decrypt"), "{}", run.stderr);
    assert!(run.stderr.contains("age identity"), "{}", run.stderr);
    assert_eq!(r.read("secrets/n250/wg0.age"), before, "nothing rewritten");
}

/// The fleet CA's key decrypts only for an admin: with another identity (a
/// host's key) `ca issue` is a decrypt failure, exit 1 (issue 16), with the
/// CA's own hint; no certificate is written.
#[test]
fn a_fleet_ca_key_that_will_not_decrypt_is_exit_1() {
    let r = Repo::examples();
    let before = r.read("secrets/n250/tls-n250.crt");
    let run = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["ca", "issue", "n250", "--force"])
        .current_dir(r.path())
        .env_remove("POTATO_REPO")
        .env("POTATO_AGE_IDENTITY", demo("ssh_host_ed25519_key.n250"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot decrypt secrets/shared/fleet-ca-key.age"),
        "{stderr}"
    );
    assert!(stderr.contains("encrypted to the admins"), "{stderr}");
    assert_eq!(r.read("secrets/n250/tls-n250.crt"), before);
}
