//! `potato vm create|status HOST`: a Proxmox VM host's VM (`ops::vm`), shown
//! by `report::vm`.

use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::args::{Connection, Global, NixArgs, duration_or_zero};
use crate::error::Error;
use crate::ops::fleet::Fleet;
use crate::ops::vm::{self, CreateRequest, Source, VmState};
use crate::ui::Reporter;

/// Proxmox VMs for VM hosts.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
// Parsed once per run; boxing the flattened argument groups buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Create the VM of a VM host through the Proxmox API, start it, and wait
    /// for SSH at the host's address.
    ///
    /// From the qcow2 (default): uploaded with content=import, the VM created
    /// with import-from. From the vma (--from vma): copied to the node over SSH
    /// (--node-ssh) and restored with qmrestore, then configured through the
    /// API. Either way the VM gets the host file's vmid, cores, memory, disk
    /// size, bridge and a disk serial (/dev/disk/by-id in the guest). A VM that
    /// exists and matches is left alone; a mismatch is reported, never changed.
    Create {
        host: String,
        #[command(flatten)]
        vm: VmArgs,
        /// Which image to create the VM from.
        #[arg(long, value_enum, default_value = "qcow2")]
        from: Source,
        /// Use this image file instead of building the host's.
        #[arg(long)]
        image: Option<camino::Utf8PathBuf>,
        /// SSH to the Proxmox node for --from vma (default: root@ the API's host).
        #[arg(long, value_name = "USER@ADDR[:PORT]")]
        node_ssh: Option<String>,
        /// How long to wait for the VM's SSH after starting it ("0s": do not wait).
        #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = duration_or_zero)]
        wait: Duration,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        nix: NixArgs,
    },
    /// Show the VM: exists or not, running or not, and how it differs from the host file.
    Status {
        host: String,
        #[command(flatten)]
        vm: VmArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Use this API base URL instead of [proxmox] api (e.g. through an SSH tunnel).
    #[arg(long)]
    pub api: Option<String>,
    /// The age identity that decrypts the API token (default: as for `potato secrets`).
    #[arg(long, value_name = "FILE")]
    pub age_identity: Option<camino::Utf8PathBuf>,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let report = Reporter::new(g.output());
    match &a.action {
        Action::Create {
            host,
            vm: v,
            from,
            image,
            node_ssh,
            wait,
            conn,
            nix,
        } => {
            let fleet = Fleet::load(g.repo.as_deref(), g.output())?
                .with_nix(nix.overrides())
                .with_connection(conn.settings());
            let opened = vm::open(&fleet, host, v.api.as_deref(), v.age_identity.as_deref())?;
            let request = CreateRequest {
                from: *from,
                image: image.as_deref(),
                node_ssh: node_ssh.as_deref(),
                wait: *wait,
                age_identity: v.age_identity.as_deref(),
            };
            let created = vm::create(&fleet, &opened, &request, &report)?;
            show(&report, &created.state);
            match created.failure() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        Action::Status { host, vm: v } => {
            let fleet = Fleet::load(g.repo.as_deref(), g.output())?;
            let opened = vm::open(&fleet, host, v.api.as_deref(), v.age_identity.as_deref())?;
            show(&report, &vm::status(&opened)?);
            Ok(())
        }
    }
}

/// The VM: one JSON document with --json (through the reporter), lines for
/// people otherwise.
fn show(report: &Reporter, vm: &VmState) {
    if report.output().json {
        report.document(&json!(vm));
    } else {
        print!("{}", crate::report::vm::state(report.output(), vm));
    }
}
