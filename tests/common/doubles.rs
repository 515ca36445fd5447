//! TEST DOUBLES of the catalog's container images, generated from the
//! contracts `potato catalog --json` exposes (src/catalog/contract.rs, whose
//! facts cite each image's upstream Dockerfile or entrypoint).
//!
//! Each double is a local podman image `localhost/potato-double-SERVICE:contract-HASH`
//! built from Debian's busybox-static (TESTBED.md "Containers"): busybox lives
//! outside PATH (/.double/busybox), the generic entrypoint
//! (tests/fixtures/double/entrypoint) reads the contract from files under
//! /.double, and PATH holds exactly the contract's `binaries` (busybox applets
//! where busybox has one, else tests/fixtures/double/tool). The image's USER is
//! the contract's uid:gid, or root when the real entrypoint drops privileges.
//! Written directories the image itself carries are made in the image with the
//! image's owner; needed host paths are not (the host must supply them).
//!
//! Owns: building doubles and running containers of a committed containers.json
//! on them (`podman_run_args`). Must not create host paths: those come from the
//! real systemd-tmpfiles on the generated rules.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use serde_json::Value;

/// Busybox applets the doubles may expose under a contract binary's name.
const APPLETS: &[&str] = &["sh", "wget", "nc", "grep"];

/// The catalog with its contracts, as the CLI exposes it.
pub fn catalog() -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["catalog", "--json"])
        .current_dir(super::source_root())
        .env_remove("POTATO_REPO")
        .output()
        .expect("run potato catalog --json");
    assert!(
        out.status.success(),
        "potato catalog --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("catalog json")
        .as_array()
        .expect("catalog is a list")
        .clone()
}

/// The double's image name for a catalog entry: the tag is a hash of
/// everything the image is built from, so an unchanged double is reused
/// across test runs and a changed contract or script gets a new image.
pub fn image_name(entry: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entry["contract"].to_string().hash(&mut h);
    entry["health"].to_string().hash(&mut h);
    let fixtures = super::source_root().join("tests/fixtures/double");
    for f in ["entrypoint", "tool"] {
        std::fs::read(fixtures.join(f)).unwrap().hash(&mut h);
    }
    std::fs::metadata("/bin/busybox")
        .map(|m| m.len())
        .unwrap_or(0)
        .hash(&mut h);
    let service = entry["name"].as_str().expect("catalog name");
    format!(
        "localhost/potato-double-{service}:contract-{:016x}",
        h.finish()
    )
}

pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("run podman")
}

/// Builds the double of `entry` once per test process; returns its image name.
pub fn build(entry: &Value) -> String {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let name = entry["name"].as_str().expect("catalog name");
    let image = image_name(entry);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.contains(&image) || podman(&["image", "exists", &image]).status.success() {
        return image;
    }
    let root = tempfile::tempdir().expect("tempdir");
    lay_out_rootfs(root.path(), entry);
    let contract = &entry["contract"];
    let uid = contract["user"]["uid"].as_u64().unwrap();
    let gid = contract["user"]["gid"].as_u64().unwrap();
    let user = if contract["drops_privileges"].as_bool().unwrap() {
        "0:0".to_string()
    } else {
        format!("{uid}:{gid}")
    };
    let script = format!(
        "tar --numeric-owner -C {} -c . | podman import --change 'USER {user}' \
         --change 'ENTRYPOINT [\"/.double/entrypoint\"]' \
         --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - {image}",
        root.path().display()
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "building the {name} double: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    built.push(image.clone());
    image
}

/// The double's root file system for one catalog entry.
fn lay_out_rootfs(r: &Path, entry: &Value) {
    let c = &entry["contract"];
    let d = r.join(".double");
    for dir in [&d, &r.join("bin"), &r.join("usr/bin"), &r.join("etc")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(r.join("tmp")).unwrap();
    set_mode(&r.join("tmp"), 0o1777);
    std::fs::copy("/bin/busybox", d.join("busybox")).expect("copy /bin/busybox");
    symlink("busybox", d.join("sh")).unwrap();
    let fixtures = super::source_root().join("tests/fixtures/double");
    for f in ["entrypoint", "tool"] {
        std::fs::copy(fixtures.join(f), d.join(f)).unwrap();
        set_mode(&d.join(f), 0o755);
    }
    let uid = c["user"]["uid"].as_u64().unwrap();
    let gid = c["user"]["gid"].as_u64().unwrap();
    let name = entry["name"].as_str().unwrap();
    write(&d.join("service"), name);
    write(&d.join("uid"), &uid.to_string());
    write(&d.join("gid"), &gid.to_string());
    let drops = c["drops_privileges"].as_bool().unwrap();
    write(&d.join("drops"), if drops { "1" } else { "" });
    write(&d.join("needs"), &needs_lines(c));
    write(&d.join("env"), &env_lines(c));
    write(&d.join("writes"), &lines(&c["writes"]));
    write(&d.join("config"), "");
    if c["ships_config"].as_bool() == Some(true)
        && let Some(cfg) = c["config"].as_str()
    {
        // The image carries its only copy of the config.
        let p = r.join(cfg.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        write(&p, "# config shipped by the double\n");
        write(&d.join("config"), cfg);
    }
    let (port, path) = health_url(entry["health"].as_str().unwrap_or(""));
    write(&d.join("health-port"), &port);
    write(&d.join("health-path"), &path);
    for b in c["binaries"].as_array().unwrap() {
        install_binary(r, b.as_str().unwrap());
    }
    write(
        &r.join("etc/passwd"),
        &format!("root:x:0:0:root:/root:/bin/sh\ndouble:x:{uid}:{gid}:double:/tmp:/bin/sh\n"),
    );
    let group = if gid == 0 {
        "root:x:0:\n".to_string()
    } else {
        format!("root:x:0:\ndouble:x:{gid}:\n")
    };
    write(&r.join("etc/group"), &group);
    // Written directories that are part of the image (a volume may cover them).
    for w in c["writes"].as_array().unwrap() {
        let p = r.join(w.as_str().unwrap().trim_start_matches('/'));
        std::fs::create_dir_all(&p).unwrap();
        chown(&p, uid, gid);
    }
}

/// Puts a contract binary on the double's PATH: a busybox applet or the tool.
fn install_binary(r: &Path, b: &str) {
    let at: PathBuf = if b.starts_with('/') {
        r.join(b.trim_start_matches('/'))
    } else {
        r.join("bin").join(b)
    };
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    let base = at.file_name().unwrap().to_str().unwrap();
    let target = if APPLETS.contains(&base) {
        "/.double/busybox"
    } else {
        "/.double/tool"
    };
    let _ = std::fs::remove_file(&at);
    symlink(target, &at).unwrap();
}

/// "d PATH" / "f PATH" per needed path (a trailing `/` marks a directory).
fn needs_lines(c: &Value) -> String {
    let mut s = String::new();
    for n in c["needs"].as_array().unwrap() {
        let kind = if n["kind"] == "dir" { "d" } else { "f" };
        s += &format!("{kind} {}\n", n["path"].as_str().unwrap());
    }
    s
}

/// "NAME" or "NAME OTHER VALUE" per required variable.
fn env_lines(c: &Value) -> String {
    let mut s = String::new();
    for e in c["required_env"].as_array().unwrap() {
        s += e["name"].as_str().unwrap();
        if let Some(w) = e["when"].as_array() {
            s += &format!(" {} {}", w[0].as_str().unwrap(), w[1].as_str().unwrap());
        }
        s += "\n";
    }
    s
}

fn lines(v: &Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}\n", x.as_str().unwrap()))
        .collect()
}

/// Port and path of an HTTP health check on 127.0.0.1, or empty strings.
fn health_url(health: &str) -> (String, String) {
    let Some(at) = health.find("http://127.0.0.1:") else {
        return (String::new(), String::new());
    };
    let rest = &health[at + "http://127.0.0.1:".len()..];
    let url: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    let (port, path) = url.split_once('/').unwrap_or((&url, ""));
    (port.to_string(), format!("/{path}"))
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u64, gid: u64) {
    std::os::unix::fs::chown(p, Some(uid as u32), Some(gid as u32)).unwrap();
}

/// The catalog entry a container of a containers.json runs (by image and,
/// when several entries share an image, by container name).
pub fn entry_for<'a>(catalog: &'a [Value], container: &str, spec: &Value) -> &'a Value {
    let image = spec["image"].as_str().unwrap();
    let same: Vec<&Value> = catalog.iter().filter(|e| e["image"] == image).collect();
    same.iter()
        .find(|e| e["name"] == container)
        .or(same.first())
        .unwrap_or_else(|| panic!("{container}: no catalog entry has image {image}"))
}

/// The `podman run` arguments for one containers.json entry on its double,
/// volumes moved under `root` (where systemd-tmpfiles created them).
/// TEST DOUBLE of oci-containers' command line, reduced to what the contract
/// is about: user, volumes, environment, capabilities, health check. Networks,
/// ports, devices and the engine socket are left out (tests/containers.rs runs
/// networks and ports in a lab namespace); every container gets --network=none.
/// Host paths NixOS itself provides (no contract creates them): the journal
/// directory (journald's persistent storage) and the machine id. Made under
/// the double's root so a bind mount of them finds its source, as on a host.
fn provide_os_path(root: &Path, host: &str) {
    let at = root.join(host.trim_start_matches('/'));
    match host {
        "/var/log/journal" => std::fs::create_dir_all(&at).unwrap(),
        "/etc/machine-id" if !at.exists() => {
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(&at, "0123456789abcdef0123456789abcdef\n").unwrap();
        }
        _ => {}
    }
}

pub fn podman_run_args(
    cname: &str,
    c: &Value,
    root: &Path,
    image: &str,
    env_file: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        format!("--name={cname}"),
        "--runtime=runc".into(),
        "--ulimit=nofile=1024:1024".into(),
        "--ulimit=nproc=1024:1024".into(),
        "--network=none".into(),
        format!("--env-file={}", env_file.display()),
    ];
    if let Some(u) = c.get("user").and_then(|u| u.as_str()) {
        a.push(format!("--user={u}"));
    }
    for (k, v) in c["environment"].as_object().unwrap() {
        a.push(format!("--env={k}={}", v.as_str().unwrap()));
    }
    for v in c["volumes"].as_array().unwrap() {
        let v = v.as_str().unwrap();
        if v.contains("/var/run/docker.sock") {
            continue;
        }
        // The fleet CA's files (placed by NixOS's environment.etc and by
        // secrets.sh): tests/pki.rs serves TLS from them with a real openssl.
        if v.starts_with("/etc/potato/pki/") || v.starts_with("/run/potato-secrets/") {
            continue;
        }
        let (host, rest) = v.split_once(':').unwrap();
        provide_os_path(root, host);
        a.push(format!(
            "--volume={}:{rest}",
            root.join(host.trim_start_matches('/')).display()
        ));
    }
    for o in c["extraOptions"].as_array().unwrap() {
        let o = o.as_str().unwrap();
        let keep = ["--health-", "--security-opt=", "--cap-add=", "--memory="];
        if keep.iter().any(|k| o.starts_with(k)) {
            a.push(o.to_string());
        }
    }
    a.push(image.to_string());
    a.extend(
        c["cmd"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string()),
    );
    a
}
