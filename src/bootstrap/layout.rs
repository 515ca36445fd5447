//! The disk layout a bootstrap installs with, from the host file's `[storage]`:
//! the boot disk as GPT with a 1 GiB EFI system partition and an ext4 root;
//! data disks kept, unless named with `--wipe` (then formatted with their
//! filesystem and the label their mount names). One `Layout` (its data and its
//! `disko.nix` live in `render::disko`), built here with `--wipe` and rendered
//! twice: as the disko configuration (the declarative record, by
//! `render::disko`) and as the shell script the bootstrap runs on the installer
//! (sfdisk, mkfs, mount at /mnt), which needs only util-linux, dosfstools and
//! e2fsprogs, all on the NixOS installer. Owns building the layout and the
//! script; it writes no Nix.

use std::fmt::Write as _;

use crate::plan::HostPlan;
pub use crate::render::disko::{DataDisk, ESP_LABEL, Layout, ROOT_LABEL};
use crate::render::format::{Refused, sh};

/// Where the installer mounts the new system's root (an on-host path).
pub use crate::host::paths::TARGET_ROOT;

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
    #[error("{0}")]
    Unwritable(#[from] Refused),
}

impl DataDisk {
    /// The command that formats it, with its label.
    fn mkfs(&self) -> Result<String, Refused> {
        let label = match self.label.as_deref() {
            Some(l) => format!(" {} {}", self.label_flag(), sh::word(l)?),
            None => String::new(),
        };
        Ok(match self.fs.as_str() {
            "ext4" => format!("mkfs.ext4 -q -F{label}"),
            "xfs" => format!("mkfs.xfs -f{label}"),
            "btrfs" => format!("mkfs.btrfs -f{label}"),
            _ => format!("mkfs.vfat -F 32{label}"),
        })
    }
}

impl Layout {
    /// The layout for `plan`, formatting the data disks named in `wipe` (by
    /// mount point or device, as the host file writes them).
    pub fn new(plan: &HostPlan, wipe: &[String]) -> Result<Layout, LayoutError> {
        let (wipe, keep) = data_disks(plan, wipe)?;
        let boot_disk = plan
            .storage
            .boot_disk
            .clone()
            .ok_or_else(|| LayoutError::NoBootDisk {
                host: plan.name.clone(),
            })?;
        Ok(Layout {
            boot_disk,
            wipe,
            keep,
        })
    }

    /// The script the installer runs (as root): partition and format the boot
    /// disk, format the `--wipe` disks, mount the new root at /mnt. Refuses a
    /// disk that is missing or in use; prints `ROOT=... ESP=...` at the end and
    /// records them in /run/potato-bootstrap/devices.
    pub fn partition_script(&self) -> Result<String, Refused> {
        let q = sh::word;
        let mut s = String::from(PARTITION_PRELUDE);
        let boot = q(&self.boot_disk).map_err(|e| e.of("storage.boot_disk"))?;
        let _ = writeln!(s, "boot=$(disk {boot})");
        let _ = writeln!(s, "not_in_use \"$boot\" {boot}");
        for d in &self.wipe {
            let _ = writeln!(s, "data=$(disk {})", q(&d.device)?);
            let _ = writeln!(s, "not_in_use \"$data\" {}", q(&d.device)?);
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
                dev = q(&d.device)?,
                show = q(&format!("{} ({}) for {}", d.device, d.fs, d.mount_point))?,
                mkfs = d.mkfs()?,
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
        Ok(s)
    }
}

/// The data disks to format (named in `wipe`) and to keep; every name in
/// `wipe` must be one of them.
pub fn data_disks(
    plan: &HostPlan,
    wipe: &[String],
) -> Result<(Vec<DataDisk>, Vec<DataDisk>), LayoutError> {
    let disks: Vec<DataDisk> = plan
        .storage
        .mounts
        .iter()
        .map(DataDisk::from_mount)
        .collect();
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
    Ok(disks
        .into_iter()
        .partition(|d| wipe.iter().any(|w| *w == d.mount_point || *w == d.device)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The example n250: a boot disk and three data disks (ssd, storage, cachehdd).
    fn plan() -> HostPlan {
        let repo = camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
        let plans = crate::ops::fleet::load_plans(repo).expect("example hosts are valid");
        plans.into_iter().find(|p| p.name == "n250").unwrap()
    }

    #[test]
    fn only_disks_named_with_wipe_are_formatted() {
        let l = Layout::new(&plan(), &["/mnt/storage".into()]).unwrap();
        assert_eq!(l.wipe.len(), 1);
        assert_eq!(l.wipe[0].label.as_deref(), Some("storage"));
        let kept: Vec<&str> = l.keep.iter().map(|d| d.mount_point.as_str()).collect();
        assert_eq!(kept, ["/mnt/cachehdd", "/mnt/ssd"]);
        let script = l.partition_script().unwrap();
        assert!(
            script.contains("mkfs.ext4 -q -F -L 'storage' \"$data\""),
            "{script}"
        );
        for kept in ["by-label/ssd", "by-label/cachehdd"] {
            assert!(
                !script.contains(kept),
                "a kept disk is never touched:\n{script}"
            );
        }
        let nix = l.disko_nix("hosts/n250.toml").unwrap();
        assert!(
            nix.contains("device = \"/dev/disk/by-label/storage\""),
            "{nix}"
        );
        assert!(
            nix.contains("#   /mnt/ssd on /dev/disk/by-label/ssd (ext4), never wiped"),
            "{nix}"
        );
        // Parses, when Nix is here.
        crate::render::nix::assert_parses(&nix);
    }

    #[test]
    fn wipe_must_name_a_data_disk_and_a_boot_disk_is_required() {
        let e = Layout::new(&plan(), &["/dev/sda".into()]).unwrap_err();
        assert!(e.to_string().contains("not a data disk of n250"), "{e}");
        assert!(
            e.to_string().contains("/mnt/ssd (/dev/disk/by-label/ssd)"),
            "{e}"
        );
        let mut p = plan();
        p.storage.boot_disk = None;
        assert!(matches!(
            Layout::new(&p, &[]),
            Err(LayoutError::NoBootDisk { .. })
        ));
    }

    /// Issue 13: `#   POINT on DEVICE (FS)` was written raw, so a line break in
    /// a mount point ended the comment and the rest became Nix code.
    #[test]
    fn a_line_break_in_a_mount_point_is_refused_not_written_as_code() {
        let mut p = plan();
        let payload = "/mnt/x\n; y = builtins.readFile /etc/passwd; #";
        p.storage.mounts[0].point = payload.into();
        let old = format!("{{\n#   {payload} on /dev/x (ext4), never wiped\n}}\n");
        assert!(
            old.lines()
                .any(|l| l.starts_with("; y = builtins.readFile")),
            "the old comment line let code through"
        );
        let e = Layout::new(&p, &[])
            .unwrap()
            .disko_nix("hosts/n250.toml")
            .unwrap_err();
        assert_eq!(e.problem, crate::render::format::Problem::LineBreak);
        assert!(
            e.to_string().starts_with("a mount point: an fstab field"),
            "{e}"
        );
        // The comment writer alone keeps it on one line, should it be reached.
        assert!(!crate::render::nix::comment(payload).contains('\n'));
    }

    /// Issue 13: a NUL in boot_disk panicked (exit 101); now it is refused.
    #[test]
    fn a_nul_in_the_boot_disk_is_refused_not_a_panic() {
        let mut p = plan();
        p.storage.boot_disk = Some("/dev/disk/by-id/x\0y".into());
        let l = Layout::new(&p, &[]).unwrap();
        let e = l.disko_nix("hosts/n250.toml").unwrap_err();
        assert_eq!(e.problem, crate::render::format::Problem::Nul);
        assert!(
            e.to_string().starts_with("storage.boot_disk: a Nix string"),
            "{e}"
        );
        let e = l.partition_script().unwrap_err();
        assert_eq!(e.problem, crate::render::format::Problem::Nul);
    }
}
