//! The fleet binary cache, generation side (issue 17 item 3): `potato cache
//! init|show`, the key format proven with real Nix, the generated
//! nix.settings and nginx pieces evaluated by real Nix, the cache host's
//! firewall proven with real packets, and each `potato check` error with its
//! file:line:col.
//!
//! Every test starts from a copy of the example fleet whose cache key is
//! removed, so the key checked was made by the code under test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::lab::{self, Lab, Probe, tcp};
use common::{Repo, have_tools, line_col, source_root};

const SECRET: &str = "secrets/n250/fleet-cache-key.age";
const PUBLIC: &str = "secrets/fleet-cache.pub";

fn fleet_without_key() -> Repo {
    let repo = Repo::examples();
    for rel in [SECRET, PUBLIC, "secrets/n250/fleet-cache-key.recipients"] {
        std::fs::remove_file(repo.path().join(rel))
            .unwrap_or_else(|e| panic!("the example fleet carries {rel}: {e}"));
    }
    repo
}

fn fleet_with_new_key() -> Repo {
    let repo = fleet_without_key();
    repo.potato(&["cache", "init"]).ok();
    repo
}

/// `fleet_with_new_key`, its tunnel addresses moved into the lab's range
/// (10.99.0.x → 10.213.99.x, in 10.213.0.0/16).
fn fleet_in_the_lab_range() -> Repo {
    let repo = fleet_with_new_key();
    for h in ["lepotato", "n250", "pve-apps", "pve-gateway"] {
        let rel = format!("hosts/{h}.toml");
        let text = repo.read(&rel).replace("10.99.0.", "10.213.99.");
        repo.write(&rel, &text);
    }
    repo
}

/// Decrypts a repository age file with an identity file (an age key or an
/// OpenSSH private key): what the admin or a host can read.
fn decrypt(file: &Path, identity: &Path) -> Option<Vec<u8>> {
    common::age_decrypt(&std::fs::read(file).unwrap(), identity).ok()
}

fn host_ssh_key(host: &str) -> PathBuf {
    source_root().join(format!(
        "tests/fixtures/demo-keys/ssh_host_ed25519_key.{host}"
    ))
}

/// The secret key, as the admin decrypts it, written to a 0600 file in `dir`.
fn secret_key_file(repo: &Repo, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let sk = decrypt(&repo.path().join(SECRET), &common::admin_identity())
        .expect("the admin decrypts the signing key");
    let file = dir.join("cache.sk");
    std::fs::write(&file, sk).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

fn nix(args: &[&str]) -> std::process::Output {
    Command::new("nix")
        .args(["--extra-experimental-features", "nix-command"])
        .args(args)
        .output()
        .expect("run nix")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh input-addressed store path no other test has, built by a
/// trivial derivation. (A path `nix-store --add` makes is content-addressed:
/// Nix trusts it without any signature, so it would prove nothing.)
fn new_store_path(dir: &Path) -> String {
    let tag = common::unique_salt();
    let expr = format!(
        "derivation {{ name = \"fleet-cache-payload\"; system = builtins.currentSystem; \
         builder = \"/bin/sh\"; args = [ \"-c\" \"echo {tag} > $out\" ]; }}"
    );
    let out = Command::new("nix-build")
        .args(["--no-out-link", "-E", &expr])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "nix-build: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `nix-instantiate --eval --strict` of `expr` over a generated default.nix:
/// the module's attribute set with `lib.mkDefault` as the identity (nothing
/// else of lib or pkgs is forced for the attributes read), as JSON.
fn eval_generated(repo: &Repo, host: &str, attr: &str) -> serde_json::Value {
    let file = repo
        .path()
        .join(format!("modules/generated/{host}/default.nix"));
    let expr = format!(
        "(import {} {{ lib = {{ mkDefault = x: x; }}; pkgs = {{}}; }}).{attr}",
        file.display()
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &expr])
        .output()
        .unwrap();
    assert!(out.status.success(), "nix-instantiate: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Applies tmpfiles `rules` (a JSON list of lines) with the real
/// `systemd-tmpfiles --create` under a new root in `work`; returns the root.
fn create_tmpfiles(rules: &serde_json::Value, work: &Path) -> PathBuf {
    let lines: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    common::systemd_tmpfiles_create(&(lines.join("\n") + "\n"), work)
}

#[test]
fn init_writes_a_secret_for_the_admins_and_the_cache_host_only() {
    let repo = fleet_with_new_key();
    let public = repo.read(PUBLIC);
    let public = public.trim();
    assert!(public.starts_with("potato-fleet-cache-1:"), "{public}");
    let sk = decrypt(&repo.path().join(SECRET), &common::admin_identity())
        .expect("the admin decrypts it");
    let sk = String::from_utf8(sk).unwrap();
    assert!(sk.starts_with("potato-fleet-cache-1:"), "{sk}");
    assert_ne!(sk, public);
    assert_eq!(
        decrypt(&repo.path().join(SECRET), &host_ssh_key("n250")).as_deref(),
        Some(sk.as_bytes()),
        "the cache host decrypts it"
    );
    for other in ["lepotato", "pve-apps", "pve-gateway"] {
        assert!(
            decrypt(&repo.path().join(SECRET), &host_ssh_key(other)).is_none(),
            "{other} must not decrypt the signing key"
        );
    }
    // The fleet is valid again and `cache show` names the host, URLs, key.
    repo.potato(&["check"]).ok();
    let shown = repo.potato(&["cache", "show"]);
    shown.ok();
    assert!(
        shown.stdout.contains("cache host  n250 (port 5080"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains(public), "{}", shown.stdout);
    for consumer in ["lepotato", "pve-apps", "pve-gateway"] {
        assert!(
            shown
                .stdout
                .lines()
                .any(|l| l.starts_with(consumer) && l.ends_with("http://10.99.0.10:5080")),
            "{consumer}: {}",
            shown.stdout
        );
    }
}

#[test]
fn init_refuses_an_existing_key_and_changes_nothing_unless_forced() {
    let repo = fleet_with_new_key();
    let before = (repo.read(PUBLIC), repo.read(SECRET));
    let again = repo.potato(&["cache", "init"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    assert_eq!((repo.read(PUBLIC), repo.read(SECRET)), before);
    // Only the public half left: still refused, nothing written.
    std::fs::remove_file(repo.path().join(SECRET)).unwrap();
    assert_eq!(repo.potato(&["cache", "init"]).code, 2);
    assert!(!repo.path().join(SECRET).exists());
    repo.potato(&["cache", "init", "--force", "--name", "fleet-2"])
        .ok();
    assert!(repo.read(PUBLIC).starts_with("fleet-2:"));
    assert_ne!(repo.read(PUBLIC), before.0);
}

#[test]
fn init_refuses_a_bad_name_and_a_fleet_without_a_cache_host() {
    let repo = fleet_without_key();
    let bad = repo.potato(&["cache", "init", "--name", "a:b"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("is not a key name"), "{}", bad.stderr);
    repo.edit("hosts/n250.toml", "[fleet.cache]", "[fleet.cache.removed]");
    // Unknown key: the host file no longer parses; un-edit into no table.
    repo.edit("hosts/n250.toml", "[fleet.cache.removed]", "");
    let none = repo.potato(&["cache", "init"]);
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains("no host file has [fleet.cache]"),
        "{}",
        none.stderr
    );
    assert!(!repo.path().join(PUBLIC).exists());
    assert!(!repo.path().join(SECRET).exists());
}

#[test]
fn real_nix_signs_with_the_secret_key_and_verifies_with_the_public_key() {
    if !have_tools(&["nix", "nix-store", "nix-build"]) {
        return;
    }
    let repo = fleet_with_new_key();
    let work = tempfile::tempdir().unwrap();
    let sk = secret_key_file(&repo, work.path());
    let public = repo.read(PUBLIC).trim().to_string();
    let path = new_store_path(work.path());

    let signed = nix(&["store", "sign", "--key-file", sk.to_str().unwrap(), &path]);
    assert!(
        signed.status.success(),
        "nix store sign: {}",
        stderr(&signed)
    );
    let verify = |key: &str, store: Option<&str>| {
        let mut args = vec!["store", "verify", "--no-contents", "--sigs-needed", "1"];
        args.extend(["--trusted-public-keys", key]);
        if let Some(s) = store {
            args.extend(["--store", s]);
        }
        args.push(&path);
        nix(&args)
    };
    let ok = verify(&public, None);
    assert!(
        ok.status.success(),
        "verify with the public key: {}",
        stderr(&ok)
    );

    // Another key of the same name: the signature must not verify.
    let other = tempfile::tempdir().unwrap();
    let o = Command::new("nix-store")
        .args(["--generate-binary-cache-key", "potato-fleet-cache-1"])
        .arg(other.path().join("sk"))
        .arg(other.path().join("pk"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let wrong = std::fs::read_to_string(other.path().join("pk")).unwrap();
    let bad = verify(wrong.trim(), None);
    assert!(
        !bad.status.success(),
        "a wrong public key verified the path"
    );

    // The publish step's store URL (`FleetCache::publish_store_url` form):
    // a file:// cache signed with the key, readable with the priority the
    // consumers use, verified from the cache with the public key only.
    let cache = work.path().join("cache");
    let to = format!(
        "file://{}?secret-key={}&compression=zstd",
        cache.display(),
        sk.display()
    );
    let copied = nix(&["copy", "--to", &to, &path]);
    assert!(copied.status.success(), "nix copy: {}", stderr(&copied));
    let info = std::fs::read_to_string(cache.join("nix-cache-info")).unwrap();
    assert!(info.contains("StoreDir: /nix/store"), "{info}");
    let from = format!("file://{}?priority=30", cache.display());
    let ok = verify(&public, Some(&from));
    assert!(ok.status.success(), "verify in the cache: {}", stderr(&ok));
    assert!(
        !stderr(&ok).contains("unknown setting"),
        "Nix does not know ?priority=: {}",
        stderr(&ok)
    );
    let bad = verify(wrong.trim(), Some(&from));
    assert!(
        !bad.status.success(),
        "a wrong key verified the cached path"
    );
}

#[test]
fn consumers_get_exactly_the_cache_url_and_key() {
    if !have_tools(&["nix-instantiate"]) {
        return;
    }
    let repo = fleet_with_new_key();
    repo.potato(&["gen"]).ok();
    let public = repo.read(PUBLIC).trim().to_string();
    for consumer in ["lepotato", "pve-apps", "pve-gateway"] {
        let settings = eval_generated(&repo, consumer, "nix.settings");
        assert_eq!(
            settings,
            serde_json::json!({
                // n250's wg0 address (hosts/n250.toml), the default port and priority.
                "substituters": ["http://10.99.0.10:5080?priority=30"],
                "trusted-public-keys": [public],
                "connect-timeout": 5,
                "stalled-download-timeout": 15,
            }),
            "{consumer}"
        );
    }
    // The cache host does not substitute from itself.
    let n250 = repo.read("modules/generated/n250/default.nix");
    assert!(!n250.contains("nix.settings.substituters"), "{n250}");
}

#[test]
fn a_changed_port_and_priority_reach_the_consumers() {
    if !have_tools(&["nix-instantiate"]) {
        return;
    }
    let repo = fleet_with_new_key();
    repo.edit(
        "hosts/n250.toml",
        "[fleet.cache]",
        "[fleet.cache]\nport = 8123\npriority = 12",
    );
    repo.potato(&["gen"]).ok();
    let settings = eval_generated(&repo, "pve-apps", "nix.settings.substituters");
    assert_eq!(
        settings,
        serde_json::json!(["http://10.99.0.10:8123?priority=12"])
    );
    let vhost = eval_generated(
        &repo,
        "n250",
        "services.nginx.virtualHosts.\"potato-fleet-cache\".listen",
    );
    assert_eq!(
        vhost,
        serde_json::json!([
            { "addr": "127.0.0.1", "port": 8123 },
            { "addr": "10.99.0.10", "port": 8123 },
        ])
    );
}

#[test]
fn the_cache_host_serves_the_directory_on_its_tunnel_address_after_the_tunnel() {
    if !have_tools(&["nix-instantiate"]) {
        return;
    }
    let repo = fleet_with_new_key();
    repo.potato(&["gen"]).ok();
    let nginx = eval_generated(&repo, "n250", "services.nginx");
    assert_eq!(
        nginx,
        serde_json::json!({
            "enable": true,
            "virtualHosts": { "potato-fleet-cache": {
                "listen": [
                    { "addr": "127.0.0.1", "port": 5080 },
                    { "addr": "10.99.0.10", "port": 5080 },
                ],
                "root": "/var/lib/potato/cache",
            }},
        })
    );
    assert_eq!(
        eval_generated(&repo, "n250", "systemd.tmpfiles.rules"),
        serde_json::json!([
            "d /var/lib/potato/cache 0755 root root -",
            "f /var/lib/potato/cache/nix-cache-info 0644 root root - StoreDir: /nix/store",
        ])
    );
    assert_eq!(
        eval_generated(&repo, "n250", "systemd.services.nginx.after"),
        serde_json::json!(["wireguard-wg0.service"])
    );
    // The signing key is one of the host's secrets (decrypted at activation).
    let deploy = repo.read("modules/generated/n250/deploy.json");
    assert!(deploy.contains("\"name\": \"fleet-cache-key\""), "{deploy}");
    for consumer in ["lepotato", "pve-apps", "pve-gateway"] {
        let text = repo.read(&format!("modules/generated/{consumer}/default.nix"));
        assert!(
            !text.contains("services.nginx"),
            "{consumer} serves no cache"
        );
        let d = repo.read(&format!("modules/generated/{consumer}/deploy.json"));
        assert!(
            !d.contains("fleet-cache-key"),
            "{consumer} gets no signing key"
        );
    }
}

/// The real systemd-tmpfiles makes the cache directory from the generated
/// rules; real Nix reads it as a (empty) binary cache, publishes a signed
/// path into it the way a deploy does, keeps its nix-cache-info, and a
/// consumer's view (the public key only) verifies the path.
#[test]
fn tmpfiles_makes_a_binary_cache_that_nix_publishes_into() {
    if !have_tools(&["systemd-tmpfiles", "nix", "nix-build", "nix-instantiate"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let repo = fleet_with_new_key();
    repo.potato(&["gen"]).ok();
    let rules = eval_generated(&repo, "n250", "systemd.tmpfiles.rules");
    let work = tempfile::tempdir().unwrap();
    let root = create_tmpfiles(&rules, work.path());
    let dir = root.join("var/lib/potato/cache");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    let info = dir.join("nix-cache-info");
    assert_eq!(
        std::fs::read_to_string(&info).unwrap().trim(),
        "StoreDir: /nix/store"
    );
    // Nix opens it as a binary cache (an empty one).
    let store = format!("file://{}", dir.display());
    let ping = nix(&["store", "ping", "--store", &store]);
    assert!(ping.status.success(), "nix store ping: {}", stderr(&ping));
    // A deploy's publish step: signed with the decrypted key.
    let sk = secret_key_file(&repo, work.path());
    let path = new_store_path(work.path());
    let to = format!("{store}?secret-key={}&compression=zstd", sk.display());
    let copied = nix(&["copy", "--to", &to, &path]);
    assert!(copied.status.success(), "nix copy: {}", stderr(&copied));
    assert!(
        std::fs::read_to_string(&info)
            .unwrap()
            .contains("StoreDir: /nix/store")
    );
    let public = repo.read(PUBLIC).trim().to_string();
    let verify = nix(&[
        "store",
        "verify",
        "--no-contents",
        "--sigs-needed",
        "1",
        "--trusted-public-keys",
        &public,
        "--store",
        &store,
        &path,
    ]);
    assert!(verify.status.success(), "verify: {}", stderr(&verify));
}

#[test]
fn the_cache_port_is_open_to_the_consumers_tunnel_addresses_only() {
    if !lab::require() {
        return;
    }
    let repo = fleet_in_the_lab_range();
    repo.potato(&["gen", "n250"]).ok();
    let ruleset = format!(
        "table inet potato {{\n{}}}\n",
        repo.read("modules/generated/n250/firewall.nft")
    );
    let mut lab = Lab::with_addrs(&["10.213.99.10/24"]);
    lab.load(&ruleset);
    lab.listen_tcp(5080);
    // lepotato (.11), pve-apps (.12) and pve-gateway (.1) are consumers.
    let lepotato = lab.client(&["10.213.99.11/24"]);
    let gateway = lab.client(&["10.213.99.1/24"]);
    let stranger = lab.client(&["10.213.99.77/24"]);
    assert_eq!(tcp(&lepotato, "10.213.99.10", 5080), Probe::Open);
    assert_eq!(tcp(&gateway, "10.213.99.10", 5080), Probe::Open);
    assert_eq!(
        tcp(&stranger, "10.213.99.10", 5080),
        Probe::Dropped,
        "an address in the tunnel that is no fleet host"
    );
}

/// nginx started in a lab namespace from the generated virtual host (a
/// DOUBLE of the NixOS nginx module: `listen` and `root` carried over one to
/// one into `server { listen ADDR:PORT; root DIR; }`), stopped by pid.
struct LabNginx(std::process::Child);

impl LabNginx {
    fn start(netns: &str, vhost: &serde_json::Value, root_prefix: &Path, work: &Path) -> LabNginx {
        let w = work.display();
        let mut server = String::new();
        for l in vhost["listen"].as_array().unwrap() {
            server.push_str(&format!(
                "listen {}:{};\n",
                l["addr"].as_str().unwrap(),
                l["port"]
            ));
        }
        let root = format!(
            "{}{}",
            root_prefix.display(),
            vhost["root"].as_str().unwrap()
        );
        let conf = work.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "user root;\nmaster_process off;\nworker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n access_log {w}/access.log;\n\
                 client_body_temp_path {w}/body; proxy_temp_path {w}/proxy; fastcgi_temp_path {w}/fcgi; uwsgi_temp_path {w}/uwsgi; scgi_temp_path {w}/scgi;\n\
                 server {{ {server} root {root}; }}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "nginx", "-c"])
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        LabNginx(child)
    }
}

impl Drop for LabNginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// End to end on the generation side: the cache host's generated pieces
/// (tmpfiles, nginx's listen and root, the firewall) with a path published
/// the way a deploy does; a consumer's generated substituter URL and key
/// verify the path over HTTP through the firewall; a wrong key and an address
/// that is no fleet host are refused.
#[test]
fn a_consumer_verifies_a_published_path_over_the_generated_cache() {
    if !lab::require()
        || !have_tools(&[
            "nginx",
            "systemd-tmpfiles",
            "nix",
            "nix-build",
            "nix-instantiate",
        ])
    {
        return;
    }
    let repo = fleet_in_the_lab_range();
    repo.potato(&["gen"]).ok();
    let settings = eval_generated(&repo, "lepotato", "nix.settings");
    let url = settings["substituters"][0].as_str().unwrap().to_string();
    assert_eq!(url, "http://10.213.99.10:5080?priority=30");
    let key = settings["trusted-public-keys"][0]
        .as_str()
        .unwrap()
        .to_string();

    let work = tempfile::tempdir().unwrap();
    let rules = eval_generated(&repo, "n250", "systemd.tmpfiles.rules");
    let root = create_tmpfiles(&rules, work.path());
    let sk = secret_key_file(&repo, work.path());
    let path = new_store_path(work.path());
    let to = format!(
        "file://{}/var/lib/potato/cache?secret-key={}&compression=zstd",
        root.display(),
        sk.display()
    );
    let copied = nix(&["copy", "--to", &to, &path]);
    assert!(copied.status.success(), "nix copy: {}", stderr(&copied));

    let mut lab = Lab::with_addrs(&["10.213.99.10/24"]);
    lab.load(&format!(
        "table inet potato {{\n{}}}\n",
        repo.read("modules/generated/n250/firewall.nft")
    ));
    let vhost = eval_generated(
        &repo,
        "n250",
        "services.nginx.virtualHosts.\"potato-fleet-cache\"",
    );
    let nginx_work = work.path().join("nginx");
    std::fs::create_dir(&nginx_work).unwrap();
    let _nginx = LabNginx::start(&lab.host, &vhost, &root, &nginx_work);
    let consumer = lab.client(&["10.213.99.11/24"]);
    let stranger = lab.client(&["10.213.99.77/24"]);
    // Each call with its own, empty Nix cache directory: Nix keeps the
    // narinfos it fetched (~/.cache/nix), which would answer without asking
    // the server.
    let verify_from = |ns: &str, key: &str| {
        let nix_cache = tempfile::tempdir().unwrap();
        Command::new("ip")
            .env("XDG_CACHE_HOME", nix_cache.path())
            .args([
                "netns",
                "exec",
                ns,
                "nix",
                "--extra-experimental-features",
                "nix-command",
            ])
            .args(["store", "verify", "--no-contents", "--sigs-needed", "1"])
            .args(["--trusted-public-keys", key, "--store", &url, &path])
            .output()
            .unwrap()
    };
    let mut ok = verify_from(&consumer, &key);
    for _ in 0..50 {
        if ok.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        ok = verify_from(&consumer, &key);
    }
    assert!(
        ok.status.success(),
        "the consumer verifies over the cache: {}\nnginx: {}",
        stderr(&ok),
        std::fs::read_to_string(nginx_work.join("error.log")).unwrap_or_default()
    );
    let wrong = common::cache::CacheKey::generate(work.path(), "potato-fleet-cache-1");
    assert!(
        !verify_from(&consumer, &wrong.public).status.success(),
        "a path signed by another key must be refused"
    );
    assert_eq!(tcp(&stranger, "10.213.99.10", 5080), Probe::Dropped);
    assert!(!verify_from(&stranger, &key).status.success());
}

#[test]
fn a_second_cache_host_is_refused_naming_both_files() {
    let repo = fleet_with_new_key();
    repo.edit(
        "hosts/pve-apps.toml",
        "[deploy]",
        "[fleet.cache]\n\n[deploy]",
    );
    let text = repo.read("hosts/pve-apps.toml");
    let (line, col) = line_col(&text, "[fleet.cache]");
    let run = repo.potato(&["check"]);
    run.invalid_at(
        &format!("hosts/pve-apps.toml:{line}:{col}"),
        "a second fleet cache: n250 already serves the fleet's binary cache (hosts/n250.toml)",
    );
    assert!(run.stderr.contains("hosts/n250.toml:"), "{}", run.stderr);
}

#[test]
fn a_host_sharing_no_tunnel_with_the_cache_host_is_an_error() {
    let repo = fleet_with_new_key();
    // A new host with no WireGuard at all (a documentation address: never
    // reached; `check` connects to nothing).
    repo.write(
        "hosts/lonely.toml",
        r#"system = "x86_64-linux"
hardware = "n250"
memory = "4GiB"

[deploy]
target = "root@192.0.2.50"

[firewall]
rules = ["allow 22/tcp from any"]

[ssh]
authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp admin@laptop"]
"#,
    );
    let run = repo.potato(&["check"]);
    run.invalid_at(
        "hosts/lonely.toml:1:1",
        "lonely shares no WireGuard tunnel with the fleet cache host n250 (its tunnels: wg0 10.99.0.0/24), so it cannot substitute from the cache",
    );
    assert!(
        run.stderr
            .contains("remove [fleet.cache] from hosts/n250.toml"),
        "{}",
        run.stderr
    );
    // Monitoring says the same about its hub: both are reported at once.
    assert!(
        run.stderr
            .contains("lonely shares no WireGuard tunnel with the monitoring hub n250"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_key_or_public_key_is_reported_at_the_cache_table() {
    let repo = fleet_without_key();
    let text = repo.read("hosts/n250.toml");
    let (line, col) = line_col(&text, "[fleet.cache]");
    repo.potato(&["check"]).invalid_at(
        &format!("hosts/n250.toml:{line}:{col}"),
        "the fleet cache's signing key `fleet-cache-key` does not exist",
    );
    let repo = fleet_with_new_key();
    std::fs::remove_file(repo.path().join(PUBLIC)).unwrap();
    repo.potato(&["check"]).invalid_at(
        &format!("hosts/n250.toml:{line}:{col}"),
        "n250 serves the fleet cache, but its public key secrets/fleet-cache.pub is missing",
    );
    repo.write(PUBLIC, "potato-fleet-cache-1:AAAA\n");
    repo.potato(&["check"]).invalid_at(
        &format!("hosts/n250.toml:{line}:{col}"),
        "secrets/fleet-cache.pub is not a Nix public key: its key data is 3 bytes, not 32",
    );
}

/// `setting` added to n250's [fleet.cache]: `potato check` reports `message`
/// at the setting's value.
fn a_cache_setting_is_invalid_at_its_value(setting: &str, message: &str) {
    let repo = fleet_with_new_key();
    repo.edit(
        "hosts/n250.toml",
        "[fleet.cache]",
        &format!("[fleet.cache]\n{setting}\n"),
    );
    let text = repo.read("hosts/n250.toml");
    let (line, col) = line_col(&text, &format!("{setting}\n"));
    let value = col + setting.find("= ").expect("a `key = value` setting") + 2;
    repo.potato(&["check"])
        .invalid_at(&format!("hosts/n250.toml:{line}:{value}"), message);
}

#[test]
fn a_bad_cache_setting_is_reported_with_its_location() {
    a_cache_setting_is_invalid_at_its_value(
        "port = 22",
        "the fleet cache's port 22 is already used by sshd on n250",
    );
    a_cache_setting_is_invalid_at_its_value(
        "key = \"fleet-cache-key\"",
        "`fleet-cache-key` is not a secret reference",
    );
}
