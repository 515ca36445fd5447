//! The fleet CA (issue 15): `potato ca init|issue|export`, proven with real
//! programs. openssl verifies every issued certificate against the CA; a real
//! TLS server (`openssl s_server`, in a lab network namespace) serves a host's
//! certificate and the key the host decrypts with its own SSH key; a client
//! that trusts only the fleet CA completes the handshake for a name under the
//! host's domain and is refused for another name, and a client without the CA
//! is refused. Each `potato check` error about the CA has its own test.
//!
//! Every test starts from a copy of the example fleet whose CA and
//! certificates are removed, so what is checked was made by the code under
//! test, not copied from the repository.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Repo, Run, have_tools, source_root};

/// The example hosts whose Traefik serves internal TLS (domain <host>.home.arpa).
const INTERNAL: &[&str] = &["lepotato", "n250", "pve-apps"];

/// A copy of the example fleet without any CA file, then `ca init` and
/// `ca issue` as the example admin.
fn fleet_with_new_ca() -> Repo {
    let repo = fleet_without_ca();
    repo.potato_as_admin(&["ca", "init"]).ok();
    let issued = repo.potato_as_admin(&["ca", "issue"]);
    issued.ok();
    for h in INTERNAL {
        assert!(
            issued.stdout.contains(&format!("issued  {h}")),
            "{h} not issued:\n{}",
            issued.stdout
        );
    }
    repo
}

fn fleet_without_ca() -> Repo {
    let repo = Repo::examples();
    let mut removed = 0;
    for rel in [
        "secrets/fleet-ca.crt",
        "secrets/shared/fleet-ca-key.age",
        "secrets/shared/fleet-ca-key.recipients",
    ] {
        removed += std::fs::remove_file(repo.path().join(rel)).is_ok() as usize;
    }
    for h in INTERNAL {
        for ext in ["crt", "age", "recipients"] {
            let _ = std::fs::remove_file(repo.path().join(format!("secrets/{h}/tls-{h}.{ext}")));
        }
    }
    assert_eq!(removed, 3, "the example fleet carries a CA");
    repo
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl")
}

fn text_of(cert: &Path) -> String {
    let out = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where a host's CA problems are reported: its [proxy] table, else its
/// `traefik` entry in `services`.
fn tls_location(repo: &Repo, host: &str) -> String {
    let rel = format!("hosts/{host}.toml");
    let text = repo.read(&rel);
    let needle = if text.contains("\n[proxy]") {
        "[proxy]"
    } else {
        "\"traefik\""
    };
    repo.at(&rel, needle)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Decrypts a repository age file with an identity file (an age key or an
/// OpenSSH private key): what the admin or the host can read.
fn decrypt(file: &Path, identity: &Path) -> Option<Vec<u8>> {
    common::age_decrypt(&std::fs::read(file).unwrap(), identity).ok()
}

fn host_ssh_key(host: &str) -> PathBuf {
    source_root().join(format!(
        "tests/fixtures/demo-keys/ssh_host_ed25519_key.{host}"
    ))
}

#[test]
fn issued_certificates_verify_with_openssl_and_carry_the_ca_and_host_profiles() {
    if !have_tools(&["openssl"]) {
        return;
    }
    let repo = fleet_with_new_ca();
    let ca = repo.path().join("secrets/fleet-ca.crt");
    let ca_text = text_of(&ca);
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
    assert!(ca_text.contains("Certificate Sign"), "{ca_text}");
    assert!(ca_text.contains("ecdsa-with-SHA256"), "{ca_text}");
    for h in INTERNAL {
        let crt = repo.path().join(format!("secrets/{h}/tls-{h}.crt"));
        let out = openssl(&[
            "verify",
            "-CAfile",
            ca.to_str().unwrap(),
            crt.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{h}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let t = text_of(&crt);
        assert!(
            t.contains(&format!("DNS:{h}.home.arpa, DNS:*.{h}.home.arpa")),
            "{t}"
        );
        assert!(t.contains("CA:FALSE"), "{t}");
        assert!(t.contains("TLS Web Server Authentication"), "{t}");
        // Another CA (the repository's own example CA is a different key) does
        // not verify it: the verification above can fail.
        let other = source_root().join("secrets/fleet-ca.crt");
        let out = openssl(&[
            "verify",
            "-CAfile",
            other.to_str().unwrap(),
            crt.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{h} verified against a foreign CA");
    }
    // `ca export` prints exactly the CA certificate; --out writes it.
    let exported = repo.potato(&["ca", "export"]);
    exported.ok();
    assert_eq!(exported.stdout, repo.read("secrets/fleet-ca.crt"));
    repo.potato(&["ca", "export", "--out", "device-ca.crt"])
        .ok();
    assert_eq!(
        repo.read("device-ca.crt"),
        repo.read("secrets/fleet-ca.crt")
    );
    // A second `ca issue` finds everything current and changes nothing.
    let before: Vec<_> = INTERNAL
        .iter()
        .map(|h| repo.read(&format!("secrets/{h}/tls-{h}.crt")))
        .collect();
    let again = repo.potato_as_admin(&["ca", "issue"]);
    again.ok();
    assert!(!again.stdout.contains("issued"), "{}", again.stdout);
    let after: Vec<_> = INTERNAL
        .iter()
        .map(|h| repo.read(&format!("secrets/{h}/tls-{h}.crt")))
        .collect();
    assert_eq!(before, after);
}

/// Kills the TLS server when the test ends, even on failure.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_client` in the lab namespace against 127.0.0.1:4433, sending
/// SNI `name` and checking the certificate for `name`, trusting `trust`.
fn handshake(ns: &str, name: &str, trust: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "openssl", "s_client"])
        .args(["-connect", "127.0.0.1:4433", "-servername", name])
        .args(["-verify_return_error", "-verify_hostname", name])
        .args(trust)
        .stdin(Stdio::null())
        .output()
        .expect("run s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_client_trusting_only_the_fleet_ca_completes_a_handshake_with_the_host_certificate() {
    if !have_tools(&["openssl", "ip"]) || !common::lab::require() {
        return;
    }
    let repo = fleet_with_new_ca();
    // The key as the host gets it: decrypted with n250's own SSH host key
    // (what secrets.sh does at activation), not the admin's.
    let key = decrypt(
        &repo.path().join("secrets/n250/tls-n250.age"),
        &host_ssh_key("n250"),
    )
    .expect("n250 decrypts its TLS key with its SSH host key");
    let key_file = repo.path().join("host.key");
    std::fs::write(&key_file, &key).unwrap();
    // The certificate as the generation places it for Traefik.
    repo.potato(&["gen"]).ok();
    let cert = repo.path().join("modules/generated/n250/pki/host.crt");
    let ca = repo.path().join("modules/generated/n250/pki/fleet-ca.crt");
    assert_eq!(
        std::fs::read_to_string(&cert).unwrap(),
        repo.read("secrets/n250/tls-n250.crt")
    );
    let lab = common::lab::Lab::with_addrs(&[]);
    let _server = Server(
        Command::new("ip")
            .args(["netns", "exec", &lab.host, "openssl", "s_server", "-quiet"])
            .args(["-accept", "127.0.0.1:4433", "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server"),
    );
    let fleet_ca = ["-CAfile", ca.to_str().unwrap(), "-no-CApath", "-no-CAstore"];
    let mut ok = (false, String::new());
    for _ in 0..50 {
        ok = handshake(&lab.host, "x.n250.home.arpa", &fleet_ca);
        if ok.0 || !ok.1.contains("connect:errno") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok.0, "handshake for x.n250.home.arpa failed:\n{}", ok.1);
    assert!(ok.1.contains("Verify return code: 0 (ok)"), "{}", ok.1);
    let apex = handshake(&lab.host, "n250.home.arpa", &fleet_ca);
    assert!(
        apex.0,
        "handshake for the domain itself failed:\n{}",
        apex.1
    );

    let wrong = handshake(&lab.host, "x.other.home.arpa", &fleet_ca);
    assert!(!wrong.0, "a wrong name was accepted:\n{}", wrong.1);
    assert!(wrong.1.contains("hostname mismatch"), "{}", wrong.1);
    // Two labels below the domain: a wildcard covers one.
    let deep = handshake(&lab.host, "a.b.n250.home.arpa", &fleet_ca);
    assert!(!deep.0, "a.b.n250.home.arpa was accepted:\n{}", deep.1);

    // A device that never installed the fleet CA (the system's public roots).
    let system = handshake(
        &lab.host,
        "x.n250.home.arpa",
        &["-CApath", "/etc/ssl/certs"],
    );
    assert!(
        !system.0,
        "a client without the CA accepted it:\n{}",
        system.1
    );
    assert!(
        system.1.contains("unable to get local issuer certificate"),
        "{}",
        system.1
    );
}

#[test]
fn no_private_key_is_in_the_repository_in_plaintext() {
    let repo = fleet_with_new_ca();
    repo.potato(&["gen"]).ok();
    let mut age_files = 0;
    for f in files_under(repo.path()) {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("PRIVATE KEY-----"),
            "{} holds a private key in plaintext",
            f.display()
        );
        age_files += text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") as usize;
    }
    assert!(age_files > 0);
    // The CA key is the age file, for the admins only: the admin decrypts a
    // PKCS#8 key whose public half is the CA certificate's; no host can.
    let ca_key = repo.path().join("secrets/shared/fleet-ca-key.age");
    let plain = decrypt(&ca_key, &common::admin_identity()).expect("the admin decrypts the CA key");
    let plain = String::from_utf8(plain).unwrap();
    assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----"));
    let pub_of_key = Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(plain.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let pub_of_cert = openssl(&[
        "x509",
        "-noout",
        "-pubkey",
        "-in",
        repo.path().join("secrets/fleet-ca.crt").to_str().unwrap(),
    ]);
    assert_eq!(pub_of_key.stdout, pub_of_cert.stdout);
    for h in ["n250", "lepotato", "pve-apps", "pve-gateway"] {
        assert!(
            decrypt(&ca_key, &host_ssh_key(h)).is_none(),
            "{h} can decrypt the CA key"
        );
    }
    // Each host's TLS key: its own host decrypts it, another host cannot.
    assert!(
        decrypt(
            &repo.path().join("secrets/n250/tls-n250.age"),
            &host_ssh_key("lepotato")
        )
        .is_none()
    );
    // The source repository too: its example CA key is only an age file.
    for f in files_under(&source_root().join("secrets"))
        .into_iter()
        .chain(files_under(&source_root().join("modules")))
    {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!text.contains("PRIVATE KEY-----"), "{}", f.display());
    }
}

#[test]
fn ca_init_twice_refuses_and_changes_nothing() {
    let repo = fleet_without_ca();
    repo.potato_as_admin(&["ca", "init"]).ok();
    let snapshot = |r: &Repo| -> Vec<(PathBuf, Vec<u8>)> {
        files_under(&r.path().join("secrets"))
            .into_iter()
            .map(|f| {
                let b = std::fs::read(&f).unwrap();
                (f, b)
            })
            .collect()
    };
    let before = snapshot(&repo);
    let again = repo.potato_as_admin(&["ca", "init"]);
    assert_eq!(again.code, 2, "{}{}", again.stdout, again.stderr);
    assert!(
        again
            .stderr
            .contains("the fleet CA exists already (secrets/fleet-ca.crt); nothing was changed"),
        "{}",
        again.stderr
    );
    assert_eq!(before, snapshot(&repo));
    // Only the key left (a half-removed CA): still refused, still unchanged.
    std::fs::remove_file(repo.path().join("secrets/fleet-ca.crt")).unwrap();
    let before = snapshot(&repo);
    let third = repo.potato_as_admin(&["ca", "init"]);
    assert_eq!(third.code, 2);
    assert!(
        third.stderr.contains("secrets/shared/fleet-ca-key.age"),
        "{}",
        third.stderr
    );
    assert_eq!(before, snapshot(&repo));
}

#[test]
fn check_refuses_internal_tls_without_a_fleet_ca() {
    let repo = fleet_without_ca();
    let run = repo.potato(&["check"]);
    for h in INTERNAL {
        run.invalid_at(
            &tls_location(&repo, h),
            &format!("`{h}` serves TLS from the fleet CA ([proxy] tls = \"internal\"), but the fleet has no CA"),
        );
    }
    assert!(run.stderr.contains("potato ca init"), "{}", run.stderr);
}

#[test]
fn check_refuses_a_missing_host_certificate() {
    let repo = fleet_with_new_ca();
    repo.potato(&["check"]).ok();
    std::fs::remove_file(repo.path().join("secrets/n250/tls-n250.crt")).unwrap();
    let run = repo.potato(&["check"]);
    run.invalid_at(
        &tls_location(&repo, "n250"),
        "`n250` has no certificate for n250.home.arpa (secrets/n250/tls-n250.crt is missing)",
    );
    assert!(
        run.stderr.contains("potato ca issue n250"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("lepotato"), "{}", run.stderr);
}

#[test]
fn check_refuses_a_certificate_that_does_not_cover_the_domain() {
    let repo = fleet_with_new_ca();
    repo.edit(
        "hosts/n250.toml",
        "[containers]\nbackend = \"podman\"\n",
        "[containers]\nbackend = \"podman\"\ndomain = \"media.home.arpa\"\n",
    );
    let run = repo.potato(&["check"]);
    run.invalid_at(
        &tls_location(&repo, "n250"),
        "secrets/n250/tls-n250.crt does not cover media.home.arpa and *.media.home.arpa (it is for n250.home.arpa, *.n250.home.arpa)",
    );
    // The fix the hint names works: ca issue renews it for the new names.
    let issued = repo.potato_as_admin(&["ca", "issue", "n250"]);
    issued.ok();
    assert!(
        issued.stdout.contains("does not cover"),
        "{}",
        issued.stdout
    );
    repo.potato(&["check"]).ok();
}

#[test]
fn check_refuses_a_certificate_from_another_ca() {
    let repo = fleet_with_new_ca();
    for rel in [
        "secrets/fleet-ca.crt",
        "secrets/shared/fleet-ca-key.age",
        "secrets/shared/fleet-ca-key.recipients",
    ] {
        std::fs::remove_file(repo.path().join(rel)).unwrap();
    }
    repo.potato_as_admin(&["ca", "init"]).ok();
    let run = repo.potato(&["check"]);
    for h in INTERNAL {
        run.invalid_at(
            &tls_location(&repo, h),
            &format!("secrets/{h}/tls-{h}.crt is not signed by the current fleet CA (secrets/fleet-ca.crt)"),
        );
    }
    repo.potato_as_admin(&["ca", "issue"]).ok();
    repo.potato(&["check"]).ok();
}

#[test]
fn check_refuses_an_expired_certificate() {
    // The clock moves instead of the test waiting a year: the same check
    // `potato check` runs, one second after the certificate's notAfter.
    if !have_tools(&["openssl"]) {
        return;
    }
    let repo = fleet_with_new_ca();
    let crt = repo.path().join("secrets/n250/tls-n250.crt");
    let end = openssl(&["x509", "-noout", "-enddate", "-in", crt.to_str().unwrap()]);
    let end = String::from_utf8_lossy(&end.stdout);
    let end = end.trim().trim_start_matches("notAfter=");
    let date = Command::new("date")
        .args(["-u", "-d", end, "+%s"])
        .output()
        .unwrap();
    let not_after: i64 = String::from_utf8_lossy(&date.stdout)
        .trim()
        .parse()
        .unwrap();
    let root = camino::Utf8PathBuf::from_path_buf(repo.path().to_path_buf()).unwrap();
    let check_at = |now: i64| {
        let mut fleet =
            potato::ops::fleet::load_resolved(&root).unwrap_or_else(|_| panic!("fleet loads"));
        let d =
            potato::pki::check::attach_at(&root, &fleet.inv, &fleet.secrets, &mut fleet.plans, now);
        (d, fleet.inv)
    };
    let (before, _) = check_at(not_after - 1);
    assert!(
        before.is_empty(),
        "{:?}",
        before.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    let (after, inv) = check_at(not_after + 1);
    let n250: Vec<_> = after
        .iter()
        .filter(|d| {
            d.message
                .starts_with("secrets/n250/tls-n250.crt expired on ")
        })
        .collect();
    assert_eq!(
        n250.len(),
        1,
        "{:?}",
        after.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    let loc = n250[0].loc.as_ref().unwrap();
    let (l, c) = inv.sources.line_col(loc.file, loc.span.start);
    assert_eq!(
        format!("{}:{l}:{c}", inv.sources.name(loc.file)),
        tls_location(&repo, "n250")
    );
    assert!(
        n250[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("potato ca issue n250")
    );
}

#[test]
fn check_refuses_a_missing_host_key() {
    let repo = fleet_with_new_ca();
    std::fs::remove_file(repo.path().join("secrets/n250/tls-n250.age")).unwrap();
    repo.potato(&["check"]).invalid_at(
        &tls_location(&repo, "n250"),
        "`n250`'s TLS key secrets/n250/tls-n250.age is missing",
    );
}

#[test]
fn check_refuses_a_host_key_not_encrypted_to_its_host() {
    let repo = fleet_with_new_ca();
    // Encrypted to the admins only (as when the host had no SSH key yet).
    let sidecar = "secrets/n250/tls-n250.recipients";
    let text = repo.read(sidecar);
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("ssh-")).collect();
    repo.write(sidecar, &(kept.join("\n") + "\n"));
    repo.potato(&["check"]).invalid_at(
        &tls_location(&repo, "n250"),
        "`n250`'s TLS key secrets/n250/tls-n250.age is not encrypted to n250",
    );
}

#[test]
fn check_refuses_a_host_file_that_uses_the_ca_key() {
    let repo = fleet_with_new_ca();
    repo.edit(
        "hosts/n250.toml",
        "why = \"hardware video transcoding on the iGPU\"\n",
        "why = \"hardware video transcoding on the iGPU\"\nenv = { CA = \"secret:fleet-ca-key\" }\n",
    );
    let run = repo.potato(&["check"]);
    run.invalid_at(
        &repo.at("hosts/n250.toml", "\"secret:fleet-ca-key\""),
        "`fleet-ca-key` is the fleet CA's private key: no host may use it",
    );
    // Nor does `secrets rekey` encrypt the key to the host that names it.
    repo.potato_as_admin(&["secrets", "rekey"]);
    let recipients = repo.read("secrets/shared/fleet-ca-key.recipients");
    assert!(!recipients.contains("ssh-"), "{recipients}");
}

#[test]
fn every_host_trusts_the_ca_and_traefik_mounts_the_files_read_only() {
    let repo = fleet_with_new_ca();
    repo.potato(&["gen"]).ok();
    let ca_pem = repo.read("secrets/fleet-ca.crt");
    // One base64 line of the CA, as it appears inside the Nix string.
    let line = ca_pem.lines().nth(1).unwrap();
    for h in ["n250", "lepotato", "pve-apps", "pve-gateway"] {
        let dir = format!("modules/generated/{h}");
        let nix = repo.read(&format!("{dir}/default.nix"));
        let at = nix
            .find("security.pki.certificates = [")
            .unwrap_or_else(|| panic!("{h}: no security.pki.certificates"));
        assert!(
            nix[at..].contains(line),
            "{h}: the CA is not the trusted certificate"
        );
        assert_eq!(repo.read(&format!("{dir}/pki/fleet-ca.crt")), ca_pem);
        if have_tools(&["nix-instantiate"]) {
            let out = Command::new("nix-instantiate")
                .args(["--parse"])
                .arg(repo.path().join(format!("{dir}/default.nix")))
                .env("NIX_CONF_DIR", source_root().join("tests/nix"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{h}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for h in INTERNAL {
        let spec: serde_json::Value =
            serde_json::from_str(&repo.read(&format!("modules/generated/{h}/containers.json")))
                .unwrap();
        let volumes: Vec<&str> = spec["containers"]["traefik"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for want in [
            "/etc/potato/pki/fleet-ca.crt:/certs/fleet-ca.crt:ro".to_string(),
            "/etc/potato/pki/host.crt:/certs/host.crt:ro".to_string(),
            format!("/run/potato-secrets/tls-{h}:/certs/host.key:ro"),
        ] {
            assert!(
                volumes.contains(&want.as_str()),
                "{h}: {want} not in {volumes:?}"
            );
        }
        // The key is decrypted at activation for root (traefik's image has no
        // USER), readable by it alone; the host certificate is its own.
        let sh = repo.read(&format!("modules/generated/{h}/secrets.sh"));
        assert!(
            sh.contains(&format!("install_secret 'tls-{h}' 'root' 'root' '0400'")),
            "{sh}"
        );
        assert_eq!(
            repo.read(&format!("modules/generated/{h}/pki/host.crt")),
            repo.read(&format!("secrets/{h}/tls-{h}.crt"))
        );
        let nix = repo.read(&format!("modules/generated/{h}/default.nix"));
        assert!(
            nix.contains("environment.etc.\"potato/pki/host.crt\".source = ./pki/host.crt;"),
            "{nix}"
        );
    }
    // pve-gateway runs no Traefik: it trusts the CA but has no certificate.
    assert!(
        !repo
            .path()
            .join("modules/generated/pve-gateway/pki/host.crt")
            .exists()
    );
}

/// The bundled example fleet (what the README's first command checks) carries
/// a CA and current certificates for every internal-TLS host.
#[test]
fn the_example_fleet_has_its_ca_and_certificates() {
    let repo = Repo::examples();
    let run: Run = repo.potato(&["ca", "show"]);
    run.ok();
    for h in INTERNAL {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(h) && l.ends_with("current")),
            "{h}:\n{}",
            run.stdout
        );
    }
    repo.potato(&["check"]).ok();
    // `secrets list`: the CA key is the operator's alone (admins only), each
    // TLS key its host's (admins + that host).
    let list = repo.potato(&["--json", "secrets", "list"]);
    list.ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let row = |file: &str| {
        v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"] == file)
            .unwrap_or_else(|| panic!("{file} not listed"))
            .clone()
    };
    let ca = row("secrets/shared/fleet-ca-key.age");
    assert_eq!(ca["used_by"], serde_json::json!(["operator"]));
    assert_eq!(ca["recipients"], 1);
    let n250 = row("secrets/n250/tls-n250.age");
    assert_eq!(n250["used_by"], serde_json::json!(["n250"]));
    assert_eq!(n250["recipients"], 2);
}

/// `podman run --rm` of the busybox double with the Traefik container's
/// fleet-CA mounts (sources mapped as below), as `user`; its stdout or None.
fn in_traefik_double(mounts: &[String], user: &str, script: &str) -> Option<String> {
    let image = common::lab::busybox_image();
    let mut cmd = Command::new("podman");
    cmd.args(["run", "--rm", "--network=none", "--runtime=runc"])
        .args(["--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"])
        .arg(format!("--user={user}"));
    for m in mounts {
        cmd.arg(format!("--volume={m}"));
    }
    let out = cmd.args([&image, "sh", "-c", script]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Traefik container's three mounts, end to end: the generated secrets.sh
/// decrypts the host's TLS key with the host's SSH key (real `age`, as at
/// activation, in a private mount namespace whose /run is a temp dir), and a
/// container running as the user of Traefik's catalog contract (root) reads
/// the CA, the certificate and the key at pki::*_IN_PROXY; another user cannot
/// read the key. The /etc/potato/pki sources are the generated pki/ files,
/// which NixOS's environment.etc links there (TEST DOUBLE of that link).
#[test]
fn traefik_reads_the_ca_certificate_and_key_at_its_mount_points() {
    if !have_tools(&["age", "unshare", "podman", "openssl"]) {
        return;
    }
    let repo = fleet_with_new_ca();
    repo.potato(&["gen"]).ok();
    let generated = repo.path().join("modules/generated/n250");
    let run = tempfile::tempdir().unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind {run} /run && sh {gen}/secrets.sh $(command -v age) {gen}/secrets {key}",
            run = run.path().display(),
            gen = generated.display(),
            key = host_ssh_key("n250").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec: serde_json::Value =
        serde_json::from_str(&repo.read("modules/generated/n250/containers.json")).unwrap();
    let mounts: Vec<String> = spec["containers"]["traefik"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .filter_map(|v| {
            if let Some(rest) = v.strip_prefix("/etc/potato/pki/") {
                Some(format!("{}/pki/{rest}", generated.display()))
            } else {
                v.strip_prefix("/run/potato-secrets/")
                    .map(|rest| format!("{}/potato-secrets/{rest}", run.path().display()))
            }
        })
        .collect();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    let owner = std::process::Command::new("stat")
        .args(["-c", "%a %u"])
        .arg(run.path().join("potato-secrets/tls-n250"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), "400 0");
    let seen = in_traefik_double(
        &mounts,
        "0:0",
        // A separator base64 never holds (a PEM line may end in "==").
        "cat /certs/fleet-ca.crt; echo @@; cat /certs/host.crt; echo @@; cat /certs/host.key",
    )
    .expect("traefik's user reads its mounts");
    let parts: Vec<&str> = seen.split("@@\n").collect();
    assert_eq!(parts.len(), 3, "{seen}");
    assert_eq!(
        parts[0].trim_end(),
        repo.read("secrets/fleet-ca.crt").trim_end()
    );
    assert_eq!(
        parts[1].trim_end(),
        repo.read("secrets/n250/tls-n250.crt").trim_end()
    );
    // The key Traefik reads is the certificate's: same public key.
    let key_file = repo.path().join("seen.key");
    std::fs::write(&key_file, parts[2]).unwrap();
    let from_key = openssl(&["pkey", "-pubout", "-in", key_file.to_str().unwrap()]);
    let from_cert = openssl(&[
        "x509",
        "-noout",
        "-pubkey",
        "-in",
        repo.path()
            .join("secrets/n250/tls-n250.crt")
            .to_str()
            .unwrap(),
    ]);
    assert!(from_key.status.success());
    assert_eq!(from_key.stdout, from_cert.stdout);
    // Mode 0400 root: another user in the container cannot read the key.
    assert!(
        in_traefik_double(&mounts, "1000:1000", "cat /certs/host.key").is_none(),
        "uid 1000 read the key"
    );
}
