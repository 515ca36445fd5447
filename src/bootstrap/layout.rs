//! The disk layout a bootstrap installs with, from the host file's `[storage]`:
//! the boot disk as GPT with a 1 GiB EFI system partition and an ext4 root;
//! data disks kept, unless named with `--wipe` (then formatted with their
//! filesystem and the label their mount names). One `Layout`, rendered twice:
//! as a disko configuration (`disko.nix`, the declarative record, committed
//! under modules/generated/<host>/) and as the shell script the bootstrap runs
//! on the installer (sfdisk, mkfs, mount at /mnt), which needs only
//! util-linux, dosfstools and e2fsprogs, all on the NixOS installer.

use std::fmt::Write as _;

use crate::plan::{HostPlan, MountPlan};
use crate::render::nix::escape_into;

/// Where the target root is mounted while installing.
pub const TARGET_ROOT: &str = "/mnt";
/// Filesystem labels of the boot disk's partitions.
pub const ESP_LABEL: &str = "ESP";
pub const ROOT_LABEL: &str = "nixos";

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// /dev/disk/by-id/... of the disk that gets the ESP and /.
    pub boot_disk: String,
    /// Data filesystems to format (named with `--wipe`).
    pub wipe: Vec<DataDisk>,
    /// Data filesystems kept as they are.
    pub keep: Vec<DataDisk>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataDisk {
    pub mount_point: String,
    pub device: String,
    pub fs: String,
    /// The label the mount's device names (/dev/disk/by-label/NAME, LABEL=NAME).
    pub label: Option<String>,
}

/// Why a layout cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    #[error("{host} has no storage.boot_disk, so there is no disk to install to")]
    NoBootDisk { host: String },
    #[error("--wipe {given}: not a data disk of {host} (its data disks: {known})")]
    UnknownWipe {
        host: String,
        given: String,
        known: String,
    },
    #[error("--wipe {given}: potato formats ext4, xfs, btrfs and vfat, not {fs}")]
    UnsupportedFs { given: String, fs: String },
}

impl DataDisk {
    fn from_mount(m: &MountPlan) -> DataDisk {
        let label = m
            .device
            .strip_prefix("/dev/disk/by-label/")
            .or_else(|| m.device.strip_prefix("LABEL="))
            .map(String::from);
        DataDisk {
            mount_point: m.point.clone(),
            device: m.device.clone(),
            fs: m.fs.clone(),
            label,
        }
    }

    /// The command that formats it, with its label.
    fn mkfs(&self) -> String {
        let q = crate::deploy::remote::shell_quote;
        let label = |flag: &str| {
            self.label
                .as_deref()
                .map(|l| format!(" {flag} {}", q(l)))
                .unwrap_or_default()
        };
        match self.fs.as_str() {
            "ext4" => format!("mkfs.ext4 -q -F{}", label("-L")),
            "xfs" => format!("mkfs.xfs -f{}", label("-L")),
            "btrfs" => format!("mkfs.btrfs -f{}", label("-L")),
            _ => format!("mkfs.vfat -F 32{}", label("-n")),
        }
    }
}

impl Layout {
    /// The layout for `plan`, formatting the data disks named in `wipe` (by
    /// mount point or device, as the host file writes them).
    pub fn new(plan: &HostPlan, wipe: &[String]) -> Result<Layout, LayoutError> {
        let boot_disk = plan
            .storage
            .boot_disk
            .clone()
            .ok_or_else(|| LayoutError::NoBootDisk {
                host: plan.name.clone(),
            })?;
        let disks: Vec<DataDisk> = plan.storage.mounts.iter().map(DataDisk::from_mount).collect();
        for given in wipe {
            let Some(d) = disks
                .iter()
                .find(|d| &d.mount_point == given || &d.device == given)
            else {
                let known: Vec<String> = disks
                    .iter()
                    .map(|d| format!("{} ({})", d.mount_point, d.device))
                    .collect();
                return Err(LayoutError::UnknownWipe {
                    host: plan.name.clone(),
                    given: given.clone(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                });
            };
            if !["ext4", "xfs", "btrfs", "vfat"].contains(&d.fs.as_str()) {
                return Err(LayoutError::UnsupportedFs {
                    given: given.clone(),
                    fs: d.fs.clone(),
                });
            }
        }
        let (wipe, keep) = disks.into_iter().partition(|d| {
            wipe.iter()
                .any(|w| *w == d.mount_point || *w == d.device)
        });
        Ok(Layout {
            boot_disk,
            wipe,
            keep,
        })
    }

    /// The disko configuration (disko's `disko.devices` schema).
    pub fn disko_nix(&self, source: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Generated by potato from {source}: the disk layout `potato bootstrap`\n\
             # installs with. The boot disk is partitioned; data disks are kept:"
        );
        for d in &self.keep {
            let _ = writeln!(
                out,
                "#   {} on {} ({}), never wiped",
                d.mount_point, d.device, d.fs
            );
        }
        out.push_str("{\n");
        let _ = write!(
            out,
            r#"  disko.devices.disk.boot = {{
    type = "disk";
    device = "{dev}";
    content = {{
      type = "gpt";
      partitions = {{
        ESP = {{
          size = "1G";
          type = "EF00";
          content = {{
            type = "filesystem";
            format = "vfat";
            extraArgs = [ "-n" "{ESP_LABEL}" ];
            mountpoint = "/boot";
            mountOptions = [ "umask=0077" ];
          }};
        }};
        root = {{
          size = "100%";
          content = {{
            type = "filesystem";
            format = "ext4";
            extraArgs = [ "-L" "{ROOT_LABEL}" ];
            mountpoint = "/";
          }};
        }};
      }};
    }};
  }};
"#,
            dev = nix_string(&self.boot_disk)
        );
        for (i, d) in self.wipe.iter().enumerate() {
            let label_args = match (&d.label, d.fs.as_str()) {
                (Some(l), "vfat") => format!(" extraArgs = [ \"-n\" \"{}\" ];", nix_string(l)),
                (Some(l), _) => format!(" extraArgs = [ \"-L\" \"{}\" ];", nix_string(l)),
                (None, _) => String::new(),
            };
            let _ = write!(
                out,
                "  # named with --wipe: formatted\n  disko.devices.disk.data{i} = {{\n    type = \"disk\";\n    device = \"{}\";\n    content = {{ type = \"filesystem\"; format = \"{}\"; mountpoint = \"{}\";{label_args} }};\n  }};\n",
                nix_string(&d.device),
                nix_string(&d.fs),
                nix_string(&d.mount_point),
            );
        }
        out.push_str("}\n");
        out
    }

    /// The script the installer runs (as root): partition and format the boot
    /// disk, format the `--wipe` disks, mount the new root at /mnt. Refuses a
    /// disk that is missing or in use; prints `ROOT=... ESP=...` at the end and
    /// records them in /run/potato-bootstrap/devices.
    pub fn partition_script(&self) -> String {
        let q = crate::deploy::remote::shell_quote;
        let mut s = String::from(PARTITION_PRELUDE);
        let _ = writeln!(s, "boot=$(disk {})", q(&self.boot_disk));
        let _ = writeln!(s, "not_in_use \"$boot\" {}", q(&self.boot_disk));
        for d in &self.wipe {
            let _ = writeln!(s, "data=$(disk {})", q(&d.device));
            let _ = writeln!(s, "not_in_use \"$data\" {}", q(&d.device));
        }
        let _ = writeln!(
            s,
            "step 'partitioning' \"$boot\"\n\
             wipefs -a -q \"$boot\"\n\
             printf 'label: gpt\\nsize=1GiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=nixos\\n' | sfdisk -q \"$boot\" >/dev/null\n\
             esp=$(partition \"$boot\" 1)\nroot=$(partition \"$boot\" 2)\n\
             step 'formatting' \"$esp (vfat) and $root (ext4)\"\n\
             mkfs.vfat -F 32 -n {ESP_LABEL} \"$esp\" >/dev/null\n\
             mkfs.ext4 -q -F -L {ROOT_LABEL} \"$root\""
        );
        for d in &self.wipe {
            let _ = writeln!(
                s,
                "data=$(disk {dev})\nstep 'formatting' {show}\nwipefs -a -q \"$data\"\n{mkfs} \"$data\" >/dev/null",
                dev = q(&d.device),
                show = q(&format!("{} ({}) for {}", d.device, d.fs, d.mount_point)),
                mkfs = d.mkfs(),
            );
        }
        let _ = writeln!(
            s,
            "step 'mounting' 'the new root at {TARGET_ROOT}'\n\
             mkdir -p {TARGET_ROOT}\nmount \"$root\" {TARGET_ROOT}\n\
             mkdir -p {TARGET_ROOT}/boot\nmount -o umask=0077 \"$esp\" {TARGET_ROOT}/boot\n\
             mkdir -p /run/potato-bootstrap\n\
             printf 'ROOT=%s\\nESP=%s\\n' \"$root\" \"$esp\" > /run/potato-bootstrap/devices\n\
             echo \"ROOT=$root ESP=$esp\""
        );
        s
    }
}

/// Shell helpers of the partition script. Exit codes: 10 a disk is missing,
/// 11 a disk is in use.
const PARTITION_PRELUDE: &str = r#"set -eu
step() { echo "@@step $*"; }
# disk PATH: the block device PATH names, or exit 10.
disk() {
  d=$(readlink -f "$1" 2>/dev/null || true)
  if [ -z "$d" ] || [ ! -b "$d" ]; then
    echo "$1 is not on this machine (no such block device)" >&2
    exit 10
  fi
  echo "$d"
}
# not_in_use DEV NAME: exit 11 when DEV or one of its partitions is mounted
# or used as swap (a leftover mount at /mnt from an earlier attempt is undone).
not_in_use() {
  umount -R /mnt 2>/dev/null || true
  base=$(basename "$1")
  for p in "$1" /dev/"$base"*; do
    if grep -q "^$p " /proc/mounts /proc/swaps 2>/dev/null; then
      echo "$2 ($p) is in use (mounted or swap); unmount it first" >&2
      exit 11
    fi
  done
}
# partition DISK N: the device of partition N, waiting for it to appear.
partition() {
  case "$1" in *[0-9]) p="$1p$2" ;; *) p="$1$2" ;; esac
  name=$(basename "$p")
  i=0
  while [ ! -e "/sys/class/block/$name/dev" ] && [ "$i" -lt 50 ]; do
    partx -u "$1" 2>/dev/null || blockdev --rereadpt "$1" 2>/dev/null || true
    sleep 0.1; i=$((i + 1))
  done
  command -v udevadm >/dev/null 2>&1 && udevadm settle 2>/dev/null || true
  if [ ! -b "$p" ] && [ -e "/sys/class/block/$name/dev" ]; then
    # No udev here (a container's /dev): make the node from sysfs.
    mm=$(cat "/sys/class/block/$name/dev")
    mknod "$p" b "${mm%:*}" "${mm#*:}"
  fi
  [ -b "$p" ] || { echo "partition $p did not appear" >&2; exit 12; }
  echo "$p"
}
"#;

fn nix_string(s: &str) -> String {
    let mut out = String::new();
    escape_into(s, &mut out).expect("paths from a validated host file escape");
    out
}

/// The committed `disko.nix` of a host: None for hosts without a boot disk
/// (SD-card and VM-image hosts).
pub fn disko(plan: &HostPlan) -> Option<String> {
    let layout = Layout::new(plan, &[]).ok()?;
    Some(layout.disko_nix(plan.file.as_str()))
}
