//! `potato bootstrap HOST --target root@ADDR`: install NixOS on fresh
//! hardware (`ops::bootstrap`), or one step by hand (`--detect`, `--install
//! --root DIR`, `--verify`).

use std::time::Duration;

use serde_json::json;

use super::args::{Connection, Global, NixArgs, duration};
use crate::error::Error;
use crate::ops::{bootstrap, fleet::Fleet};
use crate::ui::Reporter;

/// Install NixOS on fresh hardware over SSH, up to a verified first boot.
///
/// The machine runs any Linux with SSH (or the NixOS installer) and is
/// reached with --target root@ADDR. Steps: detect (hardware.{json,nix},
/// missing facts into the host file), host-key (pre-generated, secrets
/// rekeyed), generate, installer (kexec into the NixOS installer unless it
/// runs one; needs 1.5 GiB RAM), partition (boot disk: GPT, ESP + ext4 root;
/// asks, or --yes; data disks only with --wipe), install, bootloader,
/// reboot, reconnect (its own host key, at its address or found by MAC),
/// verify (it booted exactly the built system; recorded for `potato
/// status`). Progress is kept in .potato/bootstrap/HOST.json: run the
/// command again to go on after a failure, --from STEP to go back.
///
///   potato bootstrap n250 --target root@192.168.178.99 --yes
#[derive(Debug, clap::Args)]
pub struct Args {
    pub host: String,
    /// Only detect the hardware (arch, RAM, CPU, disks, NICs) and compare it
    /// with the host file; writes hosts/HOST/hardware.{json,nix}.
    #[arg(long, conflicts_with_all = ["verify", "install"])]
    pub detect: bool,
    /// Only the last step: check that the host booted exactly the system the
    /// repo builds, and record the bootstrap (date, commit) on the host.
    #[arg(long, conflicts_with = "install")]
    pub verify: bool,
    /// Only install into a prepared, mounted target root (see --root):
    /// closure, system profile and the pre-generated host key.
    #[arg(long, requires = "root")]
    pub install: bool,
    /// The mounted target root for --install, e.g. /mnt.
    #[arg(long)]
    pub root: Option<String>,
    /// Wipe the boot disk without asking (the partition step asks on a
    /// terminal, and refuses elsewhere).
    #[arg(long)]
    pub yes: bool,
    /// Also format this data disk, named by its mount point or device in
    /// [storage].mounts (repeatable). Data disks are otherwise never touched.
    #[arg(long, value_name = "DISK")]
    pub wipe: Vec<String>,
    /// Go back to STEP: forget it and every later step, and run from there.
    #[arg(long, value_enum, value_name = "STEP")]
    pub from: Option<crate::bootstrap::Step>,
    /// Forget earlier progress (.potato/bootstrap/HOST.json) and start over.
    #[arg(long)]
    pub restart: bool,
    /// How long to wait for the machine to answer after kexec and reboot.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = duration)]
    pub wait: Duration,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub nix: NixArgs,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?
        .with_nix(a.nix.overrides())
        .with_connection(a.conn.settings());
    let report = Reporter::new(g.output());
    let host = a.host.as_str();
    if a.verify {
        let record = bootstrap::verify(fleet, host, &report)?;
        report.document(&json!({ "host": host, "bootstrapped": record }));
        return Ok(());
    }
    if a.install {
        let root = a.root.as_deref().unwrap_or("");
        let done = bootstrap::install(fleet, host, root, &report)?;
        report.document(
            &json!({ "host": host, "root": root, "system": done.system, "pushed": done.pushed }),
        );
        if !g.json {
            println!(
                "{host}: {} installed into {root} ({} paths pushed, host key in place)\n\
                 next: the bootloader (nixos-enter), reboot, then `potato bootstrap {host} --verify`",
                done.system, done.pushed
            );
        }
        return Ok(());
    }
    if a.detect {
        let found = bootstrap::detect(fleet, host, &report)?;
        report.document(&json!(found));
        return found.refuse_problems();
    }
    let options = bootstrap::Options {
        yes: a.yes,
        wipe: a.wipe.clone(),
        from: a.from,
        restart: a.restart,
        wait: a.wait,
    };
    let done = bootstrap::run(fleet, host, options, &report)?;
    report.document(&json!({ "host": done.host, "target": done.target, "done": done.done }));
    if !g.json {
        println!(
            "{}: bootstrapped; it runs the built system at {}",
            done.host, done.target
        );
    }
    Ok(())
}
