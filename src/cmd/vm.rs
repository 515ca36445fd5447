//! `potato vm create|status HOST`: a Proxmox VM host's VM, through the Proxmox
//! VE API (`proxmox`), with the API token from the secrets store. Idempotent: an
//! existing VM that matches the host file is left alone; one that does not is
//! reported field by field and never changed.

use std::time::Duration;

use camino::Utf8Path;
use serde_json::{Value, json};

use crate::cli::{Global, VmAction, VmArgs};
use crate::error::Error;
use crate::plan::{HostPlan, ProxmoxPlan};
use crate::proxmox::{Client, ProxmoxError};
use crate::{repo, secrets};

const TASK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub fn run(g: &Global, action: &VmAction) -> Result<(), Error> {
    match action {
        VmAction::Create {
            host,
            vm,
            image,
            nix,
        } => {
            let (root, plan, px, client) = open(g, host, vm)?;
            create(g, &root, &plan, &px, &client, image.as_deref(), nix)
        }
        VmAction::Status { host, vm } => {
            let (_, plan, px, client) = open(g, host, vm)?;
            status(g, &plan, &px, &client)
        }
    }
}

fn api_error(host: &str, e: ProxmoxError) -> Error {
    Error::Host {
        host: host.into(),
        message: e.to_string(),
    }
}

fn open(
    g: &Global,
    host: &str,
    vm: &VmArgs,
) -> Result<(camino::Utf8PathBuf, HostPlan, ProxmoxPlan, Client), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = repo::select(&plans, &[host.to_string()])?[0].clone();
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
    let located = secrets::SecretIndex::scan(&root)
        .ok()
        .and_then(|i| i.locate(&plan.name, &px.token_secret))
        .unwrap_or_default();
    let file = root.join(located);
    let ids = secrets::store::load_identities(vm.identity.as_deref())
        .map_err(|e| Error::usage(e.to_string(), "pass --identity, or set POTATO_AGE_IDENTITY"))?;
    let token = secrets::store::decrypt(&file, &ids).map_err(|e| {
        Error::usage(
            e.to_string(),
            "the API token is an operator secret; check your identity",
        )
    })?;
    let token = String::from_utf8_lossy(&token).trim().to_string();
    let api = vm.api.clone().unwrap_or_else(|| px.api.clone());
    let client = Client::new(&api, &token, px.fingerprint.as_deref()).map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix the token secret or [proxmox] fingerprint",
        )
    })?;
    Ok((root, plan, px, client))
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
            _ => option(&text("scsi0"), "serial"),
        };
        if got != want {
            out.push(format!("{field}: VM has `{got}`, host file says `{want}`"));
        }
    }
    out
}

fn create(
    g: &Global,
    root: &Utf8Path,
    plan: &HostPlan,
    px: &ProxmoxPlan,
    client: &Client,
    image: Option<&Utf8Path>,
    nix_args: &crate::cli::NixArgs,
) -> Result<(), Error> {
    let host = plan.name.as_str();
    let fail = |e| api_error(host, e);
    if let Some(cfg) = client.vm_config(&px.node, px.vmid).map_err(fail)? {
        let diffs = mismatches(&cfg, plan, px);
        if diffs.is_empty() {
            report(g, host, px, "exists", &[]);
            return Ok(());
        }
        report(g, host, px, "mismatch", &diffs);
        return Err(Error::Host {
            host: host.into(),
            message: format!(
                "VM {} on {} exists but differs from the host file; potato does not change an existing VM",
                px.vmid, px.node
            ),
        });
    }
    let image = match image {
        Some(i) => i.to_path_buf(),
        None => super::image::build_one(root, host, "qcow2", nix_args)?,
    };
    let file_name = format!("potato-{host}.qcow2");
    say(
        g,
        &format!(
            "{host}: uploading {image} to {}:import/{file_name}",
            px.image_storage
        ),
    );
    let upid = client
        .upload_import(&px.node, &px.image_storage, &file_name, image.as_std_path())
        .map_err(fail)?;
    client
        .wait_task(&px.node, &upid, TASK_TIMEOUT)
        .map_err(fail)?;
    say(
        g,
        &format!("{host}: creating VM {} on {}", px.vmid, px.node),
    );
    let params = vec![
        ("vmid", px.vmid.to_string()),
        ("name", host.to_string()),
        ("cores", px.cores.to_string()),
        ("memory", plan.memory_mib.to_string()),
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
    let upid = client.create_vm(&px.node, &params).map_err(fail)?;
    client
        .wait_task(&px.node, &upid, TASK_TIMEOUT)
        .map_err(fail)?;
    client
        .resize_disk(&px.node, px.vmid, "scsi0", &format!("{}M", px.disk_mib))
        .map_err(fail)?;
    let upid = client.start_vm(&px.node, px.vmid).map_err(fail)?;
    client
        .wait_task(&px.node, &upid, TASK_TIMEOUT)
        .map_err(fail)?;
    report(g, host, px, "created", &[]);
    Ok(())
}

fn status(g: &Global, plan: &HostPlan, px: &ProxmoxPlan, client: &Client) -> Result<(), Error> {
    let host = plan.name.as_str();
    let fail = |e| api_error(host, e);
    match client.vm_config(&px.node, px.vmid).map_err(fail)? {
        None => report(g, host, px, "absent", &[]),
        Some(cfg) => {
            let state = client.vm_status(&px.node, px.vmid).map_err(fail)?;
            let diffs = mismatches(&cfg, plan, px);
            report(g, host, px, &state, &diffs);
        }
    }
    Ok(())
}

fn say(g: &Global, line: &str) {
    if !g.json {
        eprintln!("{line}");
    }
}

fn report(g: &Global, host: &str, px: &ProxmoxPlan, state: &str, diffs: &[String]) {
    if g.json {
        println!(
            "{}",
            json!({ "host": host, "node": px.node, "vmid": px.vmid, "state": state, "mismatches": diffs })
        );
        return;
    }
    println!("{host}: VM {} on {}: {state}", px.vmid, px.node);
    for d in diffs {
        println!("  {d}");
    }
}
