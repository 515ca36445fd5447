//! A Proxmox VM host's VM, through the Proxmox VE API (`proxmox`), with the
//! API token from the secrets store: its state and differences from the host
//! file, and creating it (from the qcow2 uploaded through the API, or the vma
//! restored on the node over SSH), with the pre-generated host key put into
//! its disk, then waiting for its SSH. Idempotent: an existing VM that matches
//! the host file is left alone; one that does not is reported field by field
//! and never changed. Progress goes to the `Reporter`; results are returned.

use std::time::Duration;

use camino::Utf8Path;
use serde::Serialize;
use serde_json::Value;

use super::fleet::Fleet;
use crate::error::Error;
use crate::host::{HostError, Remote};
use crate::image_key::{KeyError, Place, ToolOutput};
use crate::plan::{HostPlan, ProxmoxPlan, Target};
use crate::proxmox::{Client, ProxmoxError};
use crate::secrets;
use crate::ui::Reporter;

const TASK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The image a VM is created from (also `potato vm create --from`, whose
/// help shows these doc comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Uploaded through the API (content=import).
    Qcow2,
    /// Copied over SSH and restored with qmrestore.
    Vma,
}

/// A VM host, its [proxmox] table and an API client with its token.
pub struct Opened {
    pub plan: HostPlan,
    pub px: ProxmoxPlan,
    pub client: Client,
}

/// The VM as found (or made): "absent", "exists", "created", "mismatch", or
/// the API's run state; and its differences from the host file.
#[derive(Debug, Clone, Serialize)]
pub struct VmState {
    pub host: String,
    pub node: String,
    pub vmid: u32,
    pub state: String,
    pub mismatches: Vec<String>,
    /// After `create`: the VM's SSH as it answered (None: not waited for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshSeen>,
}

/// The host key a new VM's SSH answered with.
#[derive(Debug, Clone, Serialize)]
pub struct SshSeen {
    pub address: String,
    pub key_type: String,
    pub fingerprint: String,
    /// It is the pre-generated key of secrets/recipients.toml.
    pub pre_generated: bool,
}

/// What `vm create` is asked.
pub struct CreateRequest<'a> {
    pub from: Source,
    /// This image file instead of building the host's.
    pub image: Option<&'a Utf8Path>,
    /// SSH to the node for a vma (default: root@ the API's host).
    pub node_ssh: Option<&'a str>,
    /// How long to wait for the VM's SSH (zero: not at all).
    pub wait: Duration,
    /// Decrypts the pre-generated host key (as it does the token).
    pub age_identity: Option<&'a Utf8Path>,
}

/// An API call for `host`'s VM failed (exit 1), the API's error kept.
fn api_error(host: &str, e: ProxmoxError) -> Error {
    Error::Api {
        host: host.into(),
        source: Box::new(e),
    }
}

/// The VM host `host` and an API client (at `api`, else [proxmox] api)
/// holding the token `age_identity` decrypts.
pub fn open(
    fleet: &Fleet,
    host: &str,
    api: Option<&str>,
    age_identity: Option<&Utf8Path>,
) -> Result<Opened, Error> {
    let root = &fleet.root;
    let plan = fleet.host(host)?;
    let Some(px) = plan.proxmox.clone() else {
        return Err(Error::usage(
            format!(
                "{host} is not a Proxmox VM host (hardware = \"{}\")",
                plan.hardware.as_str()
            ),
            "vm commands are for hosts with hardware = \"proxmox-vm\" and a [proxmox] table",
        ));
    };
    // The token is an operator secret: never shipped to the host, so it is
    // looked up by name rather than among the host's secrets.
    let located = secrets::SecretIndex::scan(root)
        .ok()
        .and_then(|i| i.locate(&plan.name, &px.token_secret))
        .unwrap_or_default();
    let ids = secrets::store::load_identities(age_identity)
        .map_err(|e| Error::from_secret(e, "pass --age-identity, or set POTATO_AGE_IDENTITY"))?;
    let token = secrets::store::decrypt(root, &located, &ids)?;
    let token = String::from_utf8_lossy(&token).trim().to_string();
    let api = api.map(str::to_string).unwrap_or_else(|| px.api.clone());
    let client = Client::new(&api, &token, px.fingerprint.as_deref()).map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix the token secret or [proxmox] fingerprint",
        )
    })?;
    Ok(Opened { plan, px, client })
}

/// What the VM should look like, as (field, expected) pairs.
fn expected(plan: &HostPlan, px: &ProxmoxPlan) -> Vec<(&'static str, String)> {
    vec![
        ("name", plan.name.clone()),
        ("cores", px.cores.to_string()),
        ("memory", plan.memory_mib.to_string()),
        ("bridge", px.bridge.clone()),
        ("disk serial", plan.name.clone()),
    ]
}

/// The VM's boot disk: scsi0 (created from the qcow2) or virtio0 (restored
/// from nixpkgs' vma).
fn boot_disk_key(cfg: &Value) -> &'static str {
    if cfg["scsi0"].is_null() && !cfg["virtio0"].is_null() {
        "virtio0"
    } else {
        "scsi0"
    }
}

/// Differences between a VM's config and the host file: "field: VM has X, host file says Y".
fn mismatches(cfg: &Value, plan: &HostPlan, px: &ProxmoxPlan) -> Vec<String> {
    let text = |k: &str| match &cfg[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let option = |field: &str, key: &str| {
        field
            .split(',')
            .find_map(|p| p.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .to_string()
    };
    let mut out = Vec::new();
    for (field, want) in expected(plan, px) {
        let got = match field {
            "name" => text("name"),
            "cores" => text("cores"),
            "memory" => text("memory"),
            "bridge" => option(&text("net0"), "bridge"),
            _ => option(&text(boot_disk_key(cfg)), "serial"),
        };
        if got != want {
            out.push(format!("{field}: VM has `{got}`, host file says `{want}`"));
        }
    }
    out
}

/// One `vm create`: the host, its [proxmox] table, the API client.
struct Vm<'a> {
    fleet: &'a Fleet,
    report: &'a Reporter,
    root: &'a Utf8Path,
    plan: &'a HostPlan,
    px: &'a ProxmoxPlan,
    client: &'a Client,
    /// Decrypts the pre-generated host key (as it does the token).
    age_identity: Option<&'a Utf8Path>,
}

/// What `create` did, and the wait for SSH when that failed after the VM was
/// made (the caller reports the VM as created, then the failure).
pub struct Created {
    pub state: VmState,
    pub ssh_wait: Option<Error>,
}

impl Created {
    /// The failure to report once the VM has been shown: the wait for SSH,
    /// or an existing VM that differs from the host file (never changed).
    pub fn failure(self) -> Option<Error> {
        if let Some(e) = self.ssh_wait {
            return Some(e);
        }
        let made = self.state;
        (made.state == "mismatch").then(|| Error::Host {
            message: format!(
                "VM {} on {} exists but differs from the host file; potato does not change an existing VM",
                made.vmid, made.node
            ),
            host: made.host,
        })
    }
}

/// Creates the VM unless it exists (then it is left alone: `exists`, or
/// `mismatch` with its differences, for the caller to refuse), starts it and
/// waits for its SSH.
pub fn create(
    fleet: &Fleet,
    vm: &Opened,
    req: &CreateRequest,
    report: &Reporter,
) -> Result<Created, Error> {
    Vm {
        fleet,
        report,
        root: &fleet.root,
        plan: &vm.plan,
        px: &vm.px,
        client: &vm.client,
        age_identity: req.age_identity,
    }
    .create(req)
}

fn state(plan: &HostPlan, px: &ProxmoxPlan, state: &str, diffs: Vec<String>) -> VmState {
    VmState {
        host: plan.name.clone(),
        node: px.node.clone(),
        vmid: px.vmid,
        state: state.to_string(),
        mismatches: diffs,
        ssh: None,
    }
}

impl Vm<'_> {
    fn fail(&self, e: ProxmoxError) -> Error {
        api_error(&self.plan.name, e)
    }

    fn task(&self, upid: &str) -> Result<(), Error> {
        self.client
            .wait_task(&self.px.node, upid, TASK_TIMEOUT)
            .map_err(|e| self.fail(e))
    }

    fn create(&self, req: &CreateRequest) -> Result<Created, Error> {
        let (host, px, from) = (self.plan.name.as_str(), self.px, req.from);
        if let Some(cfg) = self
            .client
            .vm_config(&px.node, px.vmid)
            .map_err(|e| self.fail(e))?
        {
            let diffs = mismatches(&cfg, self.plan, px);
            let found = if diffs.is_empty() {
                "exists"
            } else {
                "mismatch"
            };
            return Ok(Created {
                state: state(self.plan, px, found, diffs),
                ssh_wait: None,
            });
        }
        let kind = match from {
            Source::Qcow2 => "qcow2",
            Source::Vma => "vma",
        };
        let scratch = tempfile::tempdir().map_err(|e| Error::io(self.root, e))?;
        let image = match req.image {
            Some(i) => i.to_path_buf(),
            None => {
                let built = super::image::build_one(self.fleet, host, kind, self.report)?;
                self.with_host_key(from, &built, scratch.path())?
            }
        };
        let disk = match from {
            Source::Qcow2 => self.create_from_qcow2(&image)?,
            Source::Vma => self.restore_vma(&image, req.node_ssh)?,
        };
        self.client
            .resize_disk(&px.node, px.vmid, disk, &format!("{}M", px.disk_mib))
            .map_err(|e| self.fail(e))?;
        let upid = self
            .client
            .start_vm(&px.node, px.vmid)
            .map_err(|e| self.fail(e))?;
        self.task(&upid)?;
        let mut made = state(self.plan, px, "created", Vec::new());
        let mut ssh_wait = None;
        if !req.wait.is_zero() {
            match self.wait_for_ssh(req.wait) {
                Ok(seen) => made.ssh = Some(seen),
                Err(e) => ssh_wait = Some(e),
            }
        }
        Ok(Created {
            state: made,
            ssh_wait,
        })
    }

    /// A copy of the built qcow2 with the host's pre-generated SSH host key in
    /// it (the store's image has none), when there is one; else the image as
    /// built (the VM then makes its own key; the wait for SSH says so). A vma
    /// gets its key on the node, after the restore (`key_into_volume`).
    fn with_host_key(
        &self,
        from: Source,
        built: &Utf8Path,
        scratch: &std::path::Path,
    ) -> Result<camino::Utf8PathBuf, Error> {
        let host = self.plan.name.as_str();
        let key = super::secrets::pregenerated_host_key(self.root, host, self.age_identity)?;
        let (Some((private, public)), Source::Qcow2) = (key, from) else {
            return Ok(built.to_path_buf());
        };
        let copy = camino::Utf8PathBuf::from_path_buf(scratch.join(format!("{host}.qcow2")))
            .map_err(|p| Error::Environment {
                message: format!("the temporary directory {} is not UTF-8", p.display()),
                hint: "set TMPDIR to a UTF-8 path".into(),
            })?;
        std::fs::copy(built, &copy).map_err(|e| Error::io(built, e))?;
        let mut perms = std::fs::metadata(&copy)
            .map_err(|e| Error::io(&copy, e))?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&copy, perms).map_err(|e| Error::io(&copy, e))?;
        match crate::image_key::install(copy.as_std_path(), &private, &public) {
            Ok(()) => {
                self.report.note(&format!(
                    "{host}: host key installed into a copy of the qcow2"
                ));
                Ok(copy)
            }
            Err(e) => {
                self.report.warn(&format!(
                        "{host}: warning: {e}; the VM makes its own host key (trust it with `potato trust {host}`)"
                    ),
                );
                Ok(built.to_path_buf())
            }
        }
    }

    /// Upload (content=import) and create with import-from; the disk is scsi0.
    fn create_from_qcow2(&self, image: &Utf8Path) -> Result<&'static str, Error> {
        let (host, px) = (self.plan.name.as_str(), self.px);
        let file_name = format!("potato-{host}.qcow2");
        self.report.note(&format!(
            "{host}: uploading {image} to {}:import/{file_name}",
            px.image_storage
        ));
        let upid = self
            .client
            .upload_import(&px.node, &px.image_storage, &file_name, image.as_std_path())
            .map_err(|e| self.fail(e))?;
        self.task(&upid)?;
        self.report
            .note(&format!("{host}: creating VM {} on {}", px.vmid, px.node));
        let params = vec![
            ("vmid", px.vmid.to_string()),
            ("name", host.to_string()),
            ("cores", px.cores.to_string()),
            ("memory", self.plan.memory_mib.to_string()),
            ("net0", format!("virtio,bridge={}", px.bridge)),
            ("scsihw", "virtio-scsi-single".into()),
            // serial= gives the disk a /dev/disk/by-id path inside the guest.
            (
                "scsi0",
                format!(
                    "{}:0,import-from={}:import/{file_name},serial={host}",
                    px.disk_storage, px.image_storage
                ),
            ),
            ("bios", "ovmf".into()),
            ("efidisk0", format!("{}:1,efitype=4m", px.disk_storage)),
            ("boot", "order=scsi0".into()),
            ("agent", "1".into()),
            ("ostype", "l26".into()),
        ];
        let upid = self
            .client
            .create_vm(&px.node, &params)
            .map_err(|e| self.fail(e))?;
        self.task(&upid)?;
        Ok("scsi0")
    }

    /// Copies the vma to the node over SSH, restores it with qmrestore, then
    /// gives the restored VM the host file's settings; the disk is virtio0
    /// (nixpkgs' proxmox image). The node is reached through the host handle
    /// (`host::Remote`: connecting writes nothing there, no agent).
    fn restore_vma(&self, image: &Utf8Path, node_ssh: Option<&str>) -> Result<&'static str, Error> {
        let (host, px) = (self.plan.name.as_str(), self.px);
        let node = self.node_target(node_ssh)?;
        let mut opts = self.fleet.ssh_options()?;
        opts.host_name = None;
        let node_name = format!("{} (Proxmox node)", px.node);
        let on_node = |e: HostError| Error::remote(&node_name, e);
        let remote = Remote::connect(&node, &opts).map_err(on_node)?;
        let remote_file = format!("/var/tmp/potato-{host}-{}.vma.zst", px.vmid);
        let len = std::fs::metadata(image).map(|m| m.len()).unwrap_or(0);
        self.report.note(&format!(
            "{host}: copying {image} ({len} bytes) to {node}:{remote_file}"
        ));
        let mut file = std::fs::File::open(image).map_err(|e| Error::io(image, e))?;
        remote
            .write_file(&remote_file, &mut file, &mut |n| {
                self.report.bytes(host, "copy", n, len)
            })
            .map_err(on_node)?;
        self.report.note(&format!(
            "{host}: qmrestore into VM {} on {}",
            px.vmid, px.disk_storage
        ));
        let vmid = px.vmid.to_string();
        let restored = remote.run_argv(&[
            "qmrestore",
            &remote_file,
            &vmid,
            "--storage",
            &px.disk_storage,
        ]);
        // The copy goes whatever qmrestore did.
        let removed = remote.run_argv(&["rm", "-f", &remote_file]);
        let out = restored.map_err(on_node)?;
        if !out.success() {
            return Err(on_node(HostError::Command {
                what: "qmrestore".into(),
                code: out.code,
                detail: out.stderr.trim().to_string(),
            }));
        }
        removed.map_err(on_node)?;
        let cfg = self
            .client
            .vm_config(&px.node, px.vmid)
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| {
                on_node(HostError::Command {
                    what: "qmrestore".into(),
                    code: 0,
                    detail: format!("after it, VM {} does not exist", px.vmid),
                })
            })?;
        let key = boot_disk_key(&cfg);
        let volume = cfg[key].as_str().unwrap_or("").to_string();
        let volume: Vec<&str> = volume
            .split(',')
            .filter(|p| !p.starts_with("serial="))
            .collect();
        let params = vec![
            ("name", host.to_string()),
            ("cores", px.cores.to_string()),
            ("memory", self.plan.memory_mib.to_string()),
            ("net0", format!("virtio,bridge={}", px.bridge)),
            (key, format!("{},serial={host}", volume.join(","))),
        ];
        self.client
            .set_config(&px.node, px.vmid, &params)
            .map_err(|e| self.fail(e))?;
        self.key_into_volume(&remote, volume.first().copied().unwrap_or_default())?;
        Ok(key)
    }

    /// The host's pre-generated SSH host key into the restored disk, on the
    /// node (`pvesm path`, then debugfs there). Without a key, or when the disk
    /// cannot take it, the VM makes its own (a warning says so).
    fn key_into_volume(&self, node: &Remote, volume: &str) -> Result<(), Error> {
        let host = self.plan.name.as_str();
        let Some((private, public)) =
            super::secrets::pregenerated_host_key(self.root, host, self.age_identity)?
        else {
            return Ok(());
        };
        let warn = |why: String| {
            self.report.warn(&format!(
                    "{host}: warning: {why}; the VM makes its own host key (trust it with `potato trust {host}`)"
                ),
            )
        };
        let path = match node.run_argv(&["pvesm", "path", volume]) {
            Ok(out) if out.code == 0 => out.stdout.trim().to_string(),
            Ok(out) => {
                warn(format!("pvesm path {volume}: {}", out.stderr.trim()));
                return Ok(());
            }
            Err(e) => {
                warn(e.to_string());
                return Ok(());
            }
        };
        let mut disk = NodeDisk {
            node,
            path: std::path::PathBuf::from(&path),
            scratch: None,
        };
        match crate::image_key::install_at(&mut disk, &private, &public) {
            Ok(()) => self.report.note(&format!(
                "{host}: host key installed into {volume} ({path}) on the node"
            )),
            Err(e) => warn(e.to_string()),
        }
        Ok(())
    }

    /// `--node-ssh`, else root@ the API URL's host.
    fn node_target(&self, given: Option<&str>) -> Result<Target, Error> {
        let text = match given {
            Some(t) => t.to_string(),
            None => {
                let host = self
                    .px
                    .api
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split(['/', ':']).next())
                    .unwrap_or_default();
                format!("root@{host}")
            }
        };
        crate::resolve::parse_target(&text)
            .map_err(|e| Error::usage(format!("--node-ssh: {e}"), "write root@ADDR"))
    }

    /// Waits for the VM's sshd at its address (or --target): the key it
    /// answers with is shown, and compared with the pre-generated one.
    fn wait_for_ssh(&self, wait: Duration) -> Result<SshSeen, Error> {
        let host = self.plan.name.as_str();
        let target = self
            .fleet
            .target_override(1)?
            .unwrap_or_else(|| self.plan.deploy.target.clone());
        let opts = self.fleet.ssh_options()?;
        self.report.note(&format!(
            "{host}: waiting up to {} for SSH at {}",
            humantime::format_duration(wait),
            target.host
        ));
        let key = crate::ssh::wait_for(wait, Duration::from_millis(500), || {
            crate::ssh::fetch_host_key(&target, &opts).ok()
        })
        .ok_or_else(|| Error::Host {
            host: host.into(),
            message: format!(
                "the VM started, but SSH at {} did not answer within {}; check its console in Proxmox",
                target.host,
                humantime::format_duration(wait)
            ),
        })?;
        let (_, _, key) = key;
        let pre = crate::secrets::store::Recipients::load(self.root)
            .ok()
            .and_then(|r| r.hosts.get(host).cloned())
            .unwrap_or_default();
        let known = pre.split_whitespace().nth(1) == Some(key.base64.as_str());
        Ok(SshSeen {
            address: target.host.clone(),
            key_type: key.key_type.clone(),
            fingerprint: key.fingerprint.clone(),
            pre_generated: known,
        })
    }
}

/// The VM: absent, or its run state and differences from the host file.
pub fn status(vm: &Opened) -> Result<VmState, Error> {
    let (plan, px, client) = (&vm.plan, &vm.px, &vm.client);
    let fail = |e| api_error(&plan.name, e);
    Ok(match client.vm_config(&px.node, px.vmid).map_err(fail)? {
        None => state(plan, px, "absent", Vec::new()),
        Some(cfg) => {
            let run = client.vm_status(&px.node, px.vmid).map_err(fail)?;
            state(plan, px, &run, mismatches(&cfg, plan, px))
        }
    })
}

/// A VM disk on the Proxmox node, worked on through the node's host handle
/// (dd to read, debugfs to write), with a private scratch directory there that
/// is removed afterwards.
struct NodeDisk<'a> {
    node: &'a Remote,
    path: std::path::PathBuf,
    scratch: Option<String>,
}

impl NodeDisk<'_> {
    fn io(&self, e: impl std::fmt::Display) -> KeyError {
        KeyError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// One program on the node, its words quoted by the handle.
    fn run(&self, words: &[&str]) -> Result<crate::ssh::Output, KeyError> {
        self.node.run_argv(words).map_err(|e| self.io(e))
    }

    fn path_text(&self) -> String {
        self.path.display().to_string()
    }
}

impl Place for NodeDisk<'_> {
    fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, KeyError> {
        let out = self.run(&[
            "dd",
            &format!("if={}", self.path_text()),
            "iflag=skip_bytes,count_bytes",
            &format!("skip={offset}"),
            &format!("count={len}"),
            "status=none",
        ])?;
        if out.code != 0 {
            return Err(self.io(out.stderr.trim()));
        }
        Ok(out.stdout_raw)
    }

    fn stage(&mut self, name: &str, bytes: &[u8]) -> Result<String, KeyError> {
        if self.scratch.is_none() {
            let out = self.run(&["mktemp", "-d", "/tmp/potato-key.XXXXXX"])?;
            if out.code != 0 {
                return Err(self.io(out.stderr.trim()));
            }
            self.scratch = Some(out.stdout.trim().to_string());
        }
        let file = format!("{}/{name}", self.scratch.as_deref().unwrap_or("/tmp"));
        self.node
            .write_file(&file, &mut { bytes }, &mut |_| {})
            .map_err(|e| KeyError::Io {
                path: file.clone().into(),
                message: e.to_string(),
            })?;
        Ok(file)
    }

    fn debugfs(&mut self, args: &[&str], offset: u64) -> Result<ToolOutput, KeyError> {
        let target = format!("{}?offset={offset}", self.path_text());
        let mut words = vec!["debugfs"];
        words.extend_from_slice(args);
        words.push(&target);
        let out = self.run(&words)?;
        if out.code == 127 {
            return Err(KeyError::Missing {
                tool: "debugfs",
                why: "e2fsprogs on the Proxmox node",
            });
        }
        Ok(ToolOutput {
            ok: out.code == 0,
            stdout: out.stdout_raw,
            stderr: out.stderr,
        })
    }
}

impl Drop for NodeDisk<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch.as_deref() {
            let _ = self.node.run_argv(&["rm", "-rf", dir]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(state: &str, ssh_wait: Option<Error>) -> Created {
        Created {
            state: VmState {
                host: "pve-apps".into(),
                node: "pve".into(),
                vmid: 120,
                state: state.into(),
                mismatches: vec!["memory: 4096 MiB, the host file says 8192".into()],
                ssh: None,
            },
            ssh_wait,
        }
    }

    #[test]
    fn a_mismatching_vm_fails_after_it_is_shown_and_a_matching_one_does_not() {
        assert!(created("created", None).failure().is_none());
        assert!(created("exists", None).failure().is_none());
        match created("mismatch", None).failure() {
            Some(Error::Host { host, message }) => {
                assert_eq!(host, "pve-apps");
                assert!(
                    message.starts_with("VM 120 on pve exists but differs"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_ssh_wait_is_the_failure_reported() {
        let wait = Error::Host {
            host: "pve-apps".into(),
            message: "no SSH after 5m".into(),
        };
        match created("created", Some(wait)).failure() {
            Some(Error::Host { message, .. }) => assert_eq!(message, "no SSH after 5m"),
            other => panic!("{other:?}"),
        }
    }
}
