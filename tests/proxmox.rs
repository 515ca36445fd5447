//! `potato vm` against a TEST DOUBLE of the Proxmox VE API: a small HTTP server
//! in this file that checks each request the way PVE does (token header, method
//! and path, parameter names and forms: content=import uploads, import-from
//! pointing at an uploaded file, size syntax) and answers in PVE's shape
//! (`{"data": ...}`, UPIDs, 500 "does not exist" for a missing VM). It records
//! every request so the tests can say exactly what potato asked.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::Repo;
use serde_json::{Value, json};

const TOKEN: &str = "potato@pve!deploy=5e1b2c3d-0000-4000-8000-00000000demo";

/// Parameters PVE's `POST /nodes/{node}/qemu` accepts that potato may send.
const QEMU_PARAMS: &[&str] = &[
    "vmid", "name", "cores", "memory", "net0", "scsihw", "scsi0", "bios", "efidisk0", "boot",
    "agent", "ostype",
];

#[derive(Default)]
struct State {
    token: String,
    vms: BTreeMap<u32, BTreeMap<String, String>>,
    running: BTreeMap<u32, bool>,
    uploads: BTreeMap<String, usize>,
    log: Vec<String>,
    /// Where the qmrestore double records restores (a testbed host's file).
    restores: Option<std::path::PathBuf>,
}

/// Parameters PVE's `PUT /nodes/{node}/qemu/{vmid}/config` accepts that potato may send.
const CONFIG_PARAMS: &[&str] = &["name", "cores", "memory", "net0", "scsi0", "virtio0"];

/// A VM restored by the qmrestore double appears with the configuration
/// nixpkgs' proxmox image puts into its vma (proxmox.qemuConf defaults).
fn sync_restores(st: &mut State) {
    let Some(file) = &st.restores else { return };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(id), Some(storage)) = (f.get(1).and_then(|i| i.parse::<u32>().ok()), f.get(2))
        else {
            continue;
        };
        st.vms.entry(id).or_insert_with(|| {
            BTreeMap::from([
                ("name".to_string(), "nixos-25.11".to_string()),
                ("cores".into(), "1".into()),
                ("memory".into(), "1024".into()),
                (
                    "net0".into(),
                    "virtio=00:00:00:00:00:00,bridge=vmbr0,firewall=1".into(),
                ),
                (
                    "virtio0".into(),
                    format!("{storage}:vm-{id}-disk-0,size=8G"),
                ),
                ("bios".into(), "seabios".into()),
            ])
        });
    }
}

struct Pve {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Pve {
    fn start(token: &str) -> Pve {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            token: token.into(),
            ..State::default()
        }));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Pve { port, state }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    let (status, v) = handle(state, &method, &path, &headers, &body);
    let text = v.to_string();
    let mut w = conn;
    let reason = match status {
        200 => "OK",
        401 => "authentication failure",
        400 => "Parameter verification failed",
        500 => "Internal Server Error",
        _ => "Not Implemented",
    };
    let _ = write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// (content field, file name, file length) of a multipart upload.
fn multipart(headers: &BTreeMap<String, String>, body: &[u8]) -> Option<(String, String, usize)> {
    let boundary = headers
        .get("content-type")?
        .split("boundary=")
        .nth(1)?
        .to_string();
    let text = String::from_utf8_lossy(body);
    let mut content = None;
    let mut file = None;
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, data)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        if head.contains("name=\"content\"") {
            content = Some(data.trim_end_matches("\r\n").to_string());
        } else if let Some(f) = head.split("filename=\"").nth(1) {
            let name = f.split('"').next()?.to_string();
            file = Some((name, data.trim_end_matches("\r\n").len()));
        }
    }
    let (name, len) = file?;
    Some((content?, name, len))
}

fn ok(data: Value) -> (u16, Value) {
    (200, json!({ "data": data }))
}

fn err(status: u16, message: &str) -> (u16, Value) {
    (status, json!({ "data": null, "message": message }))
}

fn handle(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> (u16, Value) {
    let mut st = state.lock().unwrap();
    let params = if headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        form(body)
    } else {
        BTreeMap::new()
    };
    let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    st.log.push(
        format!("{method} {path} {}", shown.join("&"))
            .trim_end()
            .to_string(),
    );
    if headers.get("authorization").map(String::as_str)
        != Some(&format!("PVEAPIToken={}", st.token))
    {
        return err(401, "authentication failure");
    }
    let Some(rest) = path.strip_prefix("/api2/json/nodes/pve/") else {
        return err(501, &format!("Method '{method} {path}' not implemented"));
    };
    let seg: Vec<&str> = rest.split('/').collect();
    sync_restores(&mut st);
    match (method, seg.as_slice()) {
        ("PUT", ["qemu", id, "config"]) => {
            if let Some(bad) = params.keys().find(|k| !CONFIG_PARAMS.contains(&k.as_str())) {
                return err(
                    400,
                    &format!(
                        "parameter verification failed: {bad}: property is not defined in schema"
                    ),
                );
            }
            let id: u32 = id.parse().unwrap();
            match st.vms.get_mut(&id) {
                Some(cfg) => {
                    cfg.extend(params.clone());
                    ok(Value::Null)
                }
                None => err(
                    500,
                    &format!("Configuration file 'nodes/pve/qemu-server/{id}.conf' does not exist"),
                ),
            }
        }
        ("GET", ["qemu", id, "config"]) => {
            let id: u32 = id.parse().unwrap();
            match st.vms.get(&id) {
                Some(cfg) => ok(json!(cfg)),
                None => err(
                    500,
                    &format!("Configuration file 'nodes/pve/qemu-server/{id}.conf' does not exist"),
                ),
            }
        }
        ("GET", ["qemu", id, "status", "current"]) => {
            let id: u32 = id.parse().unwrap();
            let running = st.running.get(&id).copied().unwrap_or(false);
            ok(json!({ "status": if running { "running" } else { "stopped" } }))
        }
        ("POST", ["storage", storage, "upload"]) => {
            let Some((content, name, len)) = multipart(headers, body) else {
                return err(400, "upload: expected multipart content and filename");
            };
            if content != "import" {
                return err(400, &format!("content '{content}' is not 'import'"));
            }
            if !name.ends_with(".qcow2") && !name.ends_with(".raw") {
                return err(400, "import files must be .qcow2, .raw, .vmdk or .ova");
            }
            st.uploads.insert(format!("{storage}:import/{name}"), len);
            ok(json!(format!(
                "UPID:pve:00001:00000001:6500000{}:imgcopy::root@pam:",
                st.uploads.len()
            )))
        }
        ("POST", ["qemu"]) => {
            if let Some(bad) = params.keys().find(|k| !QEMU_PARAMS.contains(&k.as_str())) {
                return err(
                    400,
                    &format!(
                        "parameter verification failed: {bad}: property is not defined in schema"
                    ),
                );
            }
            let Some(id) = params.get("vmid").and_then(|v| v.parse::<u32>().ok()) else {
                return err(
                    400,
                    "parameter verification failed: vmid: property is missing",
                );
            };
            if st.vms.contains_key(&id) {
                return err(
                    500,
                    &format!("unable to create VM {id} - VM {id} already exists on node 'pve'"),
                );
            }
            let scsi0 = params.get("scsi0").cloned().unwrap_or_default();
            let import = scsi0
                .split(',')
                .find_map(|p| p.strip_prefix("import-from="))
                .unwrap_or("");
            if !st.uploads.contains_key(import) {
                return err(
                    500,
                    &format!("import-from: volume '{import}' does not exist"),
                );
            }
            let mut cfg: BTreeMap<String, String> = params.clone();
            cfg.remove("vmid");
            cfg.insert(
                "scsi0".into(),
                scsi0.replace(&format!("import-from={import}"), &format!("vm-{id}-disk-1")),
            );
            st.vms.insert(id, cfg);
            ok(json!(format!(
                "UPID:pve:00001:00000002:65000010:qmcreate:{id}:root@pam:"
            )))
        }
        ("PUT", ["qemu", id, "resize"]) => {
            let id: u32 = id.parse().unwrap();
            let size = params.get("size").cloned().unwrap_or_default();
            let valid = size
                .trim_start_matches('+')
                .trim_end_matches(['K', 'M', 'G', 'T'])
                .parse::<f64>()
                .is_ok();
            let disk = params.get("disk").cloned().unwrap_or_default();
            if !["scsi0", "virtio0"].contains(&disk.as_str()) || !valid {
                return err(400, "parameter verification failed: disk/size");
            }
            match st.vms.get_mut(&id) {
                Some(cfg) if cfg.contains_key(&disk) => {
                    let s: Vec<String> = cfg[&disk]
                        .split(',')
                        .filter(|p| !p.starts_with("size="))
                        .map(String::from)
                        .collect();
                    cfg.insert(disk, format!("{},size={size}", s.join(",")));
                    ok(Value::Null)
                }
                Some(_) => err(500, &format!("disk '{disk}' does not exist")),
                None => err(500, "VM does not exist"),
            }
        }
        ("POST", ["qemu", id, "status", "start"]) => {
            let id: u32 = id.parse().unwrap();
            st.running.insert(id, true);
            ok(json!(format!(
                "UPID:pve:00001:00000003:65000020:qmstart:{id}:root@pam:"
            )))
        }
        ("GET", ["tasks", upid, "status"]) => {
            if !upid.starts_with("UPID%3Apve") {
                return err(400, "task id is not percent-encoded");
            }
            ok(json!({ "status": "stopped", "exitstatus": "OK" }))
        }
        _ => err(501, &format!("Method '{method} {path}' not implemented")),
    }
}

fn vm(repo: &Repo, pve: &Pve, args: &[&str]) -> common::Run {
    let identity = common::admin_identity();
    let mut all: Vec<&str> = vec!["vm"];
    all.extend_from_slice(args);
    let url = pve.url();
    all.extend_from_slice(&["--api", &url, "--age-identity", identity.to_str().unwrap()]);
    repo.potato(&all)
}

#[test]
fn create_then_leave_alone_then_report_a_mismatch() {
    let r = Repo::examples();
    let pve = Pve::start(TOKEN);
    let image = r.path().join("pve-apps.qcow2");
    std::fs::write(&image, vec![7u8; 300_000]).unwrap();

    let run = vm(&r, &pve, &["status", "pve-apps"]);
    run.ok();
    assert!(
        run.stdout.contains("pve-apps: VM 111 on pve: absent"),
        "{}",
        run.stdout
    );

    // Created and started; then potato waits for SSH at the VM's address
    // (here --target: a closed port on loopback, never the example address),
    // which does not answer: a clear error after the wait, exit 1.
    let run = vm(
        &r,
        &pve,
        &[
            "create",
            "pve-apps",
            "--image",
            image.to_str().unwrap(),
            "--target",
            "root@127.0.0.1:1",
            "--wait",
            "1s",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("VM 111 on pve: created"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("SSH at 127.0.0.1 did not answer within 1s"),
        "{}",
        run.stderr
    );
    // Not a terminal: the steps as plain lines.
    let stderr = run.plain_stderr();
    for step in [
        "pve-apps: uploading ",
        "pve-apps: creating VM 111 on pve",
        "pve-apps: waiting up to 1s for SSH at 127.0.0.1",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(step)),
            "{step:?} in {stderr}"
        );
    }
    let log = pve.log();
    // Exactly these calls, in this order (hosts/pve-apps.toml: vmid 111, 2 cores,
    // 4 GiB, 32 GiB disk, vmbr0).
    let calls: Vec<String> = log
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        calls[1..],
        [
            "GET /api2/json/nodes/pve/qemu/111/config",
            "POST /api2/json/nodes/pve/storage/local/upload",
            "GET /api2/json/nodes/pve/tasks/UPID%3Apve%3A00001%3A00000001%3A65000001%3Aimgcopy%3A%3Aroot%40pam%3A/status",
            "POST /api2/json/nodes/pve/qemu",
            "GET /api2/json/nodes/pve/tasks/UPID%3Apve%3A00001%3A00000002%3A65000010%3Aqmcreate%3A111%3Aroot%40pam%3A/status",
            "PUT /api2/json/nodes/pve/qemu/111/resize",
            "POST /api2/json/nodes/pve/qemu/111/status/start",
            "GET /api2/json/nodes/pve/tasks/UPID%3Apve%3A00001%3A00000003%3A65000020%3Aqmstart%3A111%3Aroot%40pam%3A/status",
        ]
    );
    {
        let st = pve.state.lock().unwrap();
        assert_eq!(
            st.uploads.get("local:import/potato-pve-apps.qcow2"),
            Some(&300_000)
        );
        let cfg = &st.vms[&111];
        assert_eq!(cfg["name"], "pve-apps");
        assert_eq!(cfg["cores"], "2");
        assert_eq!(cfg["memory"], "4096");
        assert_eq!(cfg["net0"], "virtio,bridge=vmbr0");
        assert_eq!(
            cfg["scsi0"],
            "local-lvm:0,vm-111-disk-1,serial=pve-apps,size=32768M"
        );
        assert_eq!(cfg["bios"], "ovmf");
        assert_eq!(st.running.get(&111), Some(&true));
    }

    // Again: the VM exists and matches; one read, nothing changed.
    let before = pve.log().len();
    let run = vm(
        &r,
        &pve,
        &["create", "pve-apps", "--image", image.to_str().unwrap()],
    );
    run.ok();
    assert!(
        run.stdout.contains("VM 111 on pve: exists"),
        "{}",
        run.stdout
    );
    assert_eq!(pve.log()[before..].len(), 1, "{:?}", &pve.log()[before..]);
    // --json: exactly one document on stdout.
    let run = vm(
        &r,
        &pve,
        &[
            "create",
            "pve-apps",
            "--image",
            image.to_str().unwrap(),
            "--json",
        ],
    );
    run.ok();
    let doc = run.one_json_document();
    assert_eq!(doc["state"], "exists", "{doc}");
    assert_eq!(doc["vmid"], 111, "{doc}");

    // The host file now says 4 cores: reported, never changed, exit 1.
    r.edit("hosts/pve-apps.toml", "cores = 2", "cores = 4");
    let before = pve.log().len();
    let run = vm(
        &r,
        &pve,
        &["create", "pve-apps", "--image", image.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("cores: VM has `2`, host file says `4`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("potato does not change an existing VM"),
        "{}",
        run.stderr
    );
    assert!(pve.log()[before..].iter().all(|l| l.starts_with("GET ")));
    assert_eq!(pve.state.lock().unwrap().vms[&111]["cores"], "2");

    let run = vm(&r, &pve, &["status", "pve-apps", "--json"]);
    run.ok();
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["state"], "running");
    assert_eq!(v["mismatches"][0], "cores: VM has `2`, host file says `4`");
}

#[test]
fn a_wrong_token_and_a_malformed_token_are_clear_errors() {
    let r = Repo::examples();
    let pve = Pve::start("someone@pve!other=1");
    let run = vm(&r, &pve, &["status", "pve-apps"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("HTTP 401: authentication failure"),
        "{}",
        run.stderr
    );

    // A token secret that is not USER@REALM!TOKENID=SECRET is refused before any request.
    let set = std::process::Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["secrets", "set", "proxmox-token", "--shared"])
        .current_dir(r.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"just-a-password")?;
            c.wait()
        })
        .unwrap();
    assert!(set.success());
    let before = pve.log().len();
    let run = vm(&r, &pve, &["status", "pve-apps"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("must read USER@REALM!TOKENID=SECRET"),
        "{}",
        run.stderr
    );
    assert_eq!(pve.log().len(), before, "no request was made");
}

/// `--from vma`: the vma goes to the node over SSH (a testbed host standing in
/// for the PVE node, with the qmrestore double on its PATH), is restored there,
/// and the restored VM gets the host file's settings through the API (the
/// disk is virtio0, as in nixpkgs' vma); then SSH is awaited at the VM's
/// address (another testbed host standing in for the booted VM).
#[test]
fn create_from_vma_restores_over_ssh_then_configures_and_waits_for_ssh() {
    if !common::testbed::require() {
        return;
    }
    let r = Repo::examples();
    let pve = Pve::start(TOKEN);
    let mut tb = common::testbed::Testbed::new(2);
    let work = tempfile::tempdir().unwrap();
    let doubles = work.path().join("pve-bin");
    let vartmp = work.path().join("var-tmp");
    std::fs::create_dir_all(&doubles).unwrap();
    std::fs::create_dir_all(&vartmp).unwrap();
    for tool in ["qmrestore", "pvesm"] {
        std::fs::copy(
            common::source_root().join("tests/fixtures/pve").join(tool),
            doubles.join(tool),
        )
        .unwrap();
    }
    // pve-apps has a pre-generated host key: it goes into the restored disk.
    let admin = common::admin_identity();
    r.potato_as_admin(&["secrets", "hostkey", "pve-apps", "--force"])
        .ok();
    r.potato_as_admin(&["gen"]).ok();
    tb.hosts[0].spawn_sshd(&[(&doubles, "/usr/local/sbin"), (&vartmp, "/var/tmp")]);
    pve.state.lock().unwrap().restores = Some(tb.host(0).dir.join("nix/var/potato-test/qmrestore"));
    // A vma as nixpkgs makes them: "VMA\0" and data, zstd-compressed.
    let raw = work.path().join("image.vma");
    let mut bytes = b"VMA\0".to_vec();
    bytes.extend((0..400_000u32).map(|i| (i * 31 % 251) as u8));
    std::fs::write(&raw, &bytes).unwrap();
    let st = std::process::Command::new("zstd")
        .args(["-q", "-f"])
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    let vma = work.path().join("image.vma.zst");
    let node = format!("root@{}", tb.host(0).addr);
    let vm_addr = format!("root@{}", tb.host(1).addr);
    let key = tb.client_key.to_str().unwrap().to_string();
    let known = tb.known_hosts.to_str().unwrap().to_string();
    let run = vm(
        &r,
        &pve,
        &[
            "create",
            "pve-apps",
            "--from",
            "vma",
            "--image",
            vma.to_str().unwrap(),
            "--node-ssh",
            &node,
            "--target",
            &vm_addr,
            "--identity",
            &key,
            "--known-hosts",
            &known,
            "--wait",
            "20s",
        ],
    );
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("VM 111 on pve: created"),
        "{}",
        run.stdout
    );
    // The copy's bytes in the reporter's words, once, as plain lines.
    let stderr = run.plain_stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("pve-apps: copy done (")),
        "{stderr}"
    );
    // The node restored exactly the file potato sent, into the disk storage,
    // and the copy was removed afterwards.
    let restores =
        std::fs::read_to_string(tb.host(0).dir.join("nix/var/potato-test/qmrestore")).unwrap();
    let sha = std::process::Command::new("sha256sum")
        .arg(&vma)
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(restores.trim(), format!("restore 111 local-lvm {sha}"));
    let left: Vec<String> = std::fs::read_dir(&vartmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["potato-test-disks"], "the vma copy is removed");
    // The restored disk carries the pre-generated host key, 0600.
    let disk = vartmp.join("potato-test-disks/vm-111-disk-0.raw");
    let debugfs = |req: &str| {
        std::process::Command::new("debugfs")
            .args(["-R", req])
            .arg(format!("{}?offset=1048576", disk.display()))
            .output()
            .unwrap()
    };
    let expected = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&admin)
        .arg(r.path().join("secrets/pve-apps/ssh_host_ed25519_key.age"))
        .output()
        .unwrap()
        .stdout;
    assert!(!expected.is_empty());
    assert_eq!(
        debugfs("cat /etc/ssh/ssh_host_ed25519_key").stdout,
        expected
    );
    assert!(
        String::from_utf8_lossy(&debugfs("stat /etc/ssh/ssh_host_ed25519_key").stdout)
            .contains("Mode:  0600")
    );
    assert!(
        run.stderr
            .contains("host key installed into local-lvm:vm-111-disk-0"),
        "{}",
        run.stderr
    );
    let calls: Vec<String> = pve
        .log()
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /api2/json/nodes/pve/qemu/111/config",
            "GET /api2/json/nodes/pve/qemu/111/config",
            "PUT /api2/json/nodes/pve/qemu/111/config",
            "PUT /api2/json/nodes/pve/qemu/111/resize",
            "POST /api2/json/nodes/pve/qemu/111/status/start",
            "GET /api2/json/nodes/pve/tasks/UPID%3Apve%3A00001%3A00000003%3A65000020%3Aqmstart%3A111%3Aroot%40pam%3A/status",
        ]
    );
    {
        let st = pve.state.lock().unwrap();
        let cfg = &st.vms[&111];
        assert_eq!(cfg["name"], "pve-apps");
        assert_eq!(cfg["cores"], "2");
        assert_eq!(cfg["memory"], "4096");
        assert_eq!(cfg["net0"], "virtio,bridge=vmbr0");
        assert_eq!(
            cfg["virtio0"],
            "local-lvm:vm-111-disk-0,serial=pve-apps,size=32768M"
        );
    }
    // SSH answered at the VM's address; its key is shown and is not the
    // pre-generated one (the example fleet records a different key).
    assert!(
        run.stdout.contains(&format!(
            "pve-apps: SSH answers at {} with key ssh-ed25519 SHA256:",
            tb.host(1).addr
        )),
        "{}",
        run.stdout
    );
    // The restored VM now matches the host file: status shows no mismatch.
    let run = vm(&r, &pve, &["status", "pve-apps", "--json"]);
    run.ok();
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["mismatches"], json!([]), "{v}");
}

/// Without --image, the qcow2 is built (here by the nixpkgs double) and a
/// private copy gets the pre-generated host key before upload. The double's
/// "qcow2" is a text file, so the key cannot go in: a warning says the VM will
/// make its own key, and the built image is uploaded as it is.
#[test]
fn a_built_qcow2_that_cannot_take_the_key_is_uploaded_with_a_warning() {
    if !common::have_tool("nix") {
        assert!(std::env::var_os("CI").is_none(), "nix is required in CI");
        eprintln!("SKIPPED: nix is not installed");
        return;
    }
    let r = Repo::examples();
    let pve = Pve::start(TOKEN);
    r.potato_as_admin(&["secrets", "hostkey", "pve-apps", "--force"])
        .ok();
    r.potato_as_admin(&["gen"]).ok();
    let double = common::source_root().join("tests/fixtures/nixpkgs");
    let run = vm(
        &r,
        &pve,
        &[
            "create",
            "pve-apps",
            "--override-input",
            "nixpkgs",
            double.to_str().unwrap(),
            "--wait",
            "0s",
        ],
    );
    run.ok();
    assert!(
        run.stderr
            .contains("no ext4 root partition in its partition table")
            && run.stderr.contains("the VM makes its own host key"),
        "{}",
        run.stderr
    );
    let st = pve.state.lock().unwrap();
    let uploaded = st.uploads["local:import/potato-pve-apps.qcow2"];
    let text = "TEST DOUBLE image: kind=qcow2 host=pve-apps toplevel=";
    assert!(uploaded > text.len(), "{uploaded}");
}
