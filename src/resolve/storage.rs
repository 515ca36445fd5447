//! `[storage]`: the boot disk (a stable device path) and data mounts (device by
//! label or UUID, a known filesystem, fstab-safe options, `nofail` added). Owns
//! only these rules; disk layout for installs is `bootstrap::layout`'s.

use super::HostCx;
use crate::plan::*;

impl HostCx<'_> {
    pub(super) fn storage(&mut self) -> StoragePlan {
        let Some(s) = &self.host.raw.storage else {
            return StoragePlan::default();
        };
        if let Some(b) = &s.boot_disk
            && !b.value.starts_with("/dev/disk/by-id/")
            && !b.value.starts_with("/dev/disk/by-path/")
        {
            self.error(
                &b.span,
                format!("boot disk `{}` is not a stable device path", b.value),
                "use /dev/disk/by-id/... (device names like /dev/sda can change between boots)",
            );
        }
        let mut mounts = Vec::new();
        // Mount points were checked when the host file was read (AbsPath).
        for (point, m) in &s.mounts {
            if matches!(point.as_str(), "/boot" | "/nix" | "/nix/store") {
                self.error(
                    &m.span,
                    format!("mount point `{point}` belongs to the hardware profile"),
                    "/, /boot and /nix come from the hardware profile; mount data disks elsewhere, e.g. \"/mnt/storage\"",
                );
            }
            let dev = &m.device;
            let dev_ok = [
                "/dev/disk/by-label/",
                "/dev/disk/by-uuid/",
                "/dev/disk/by-id/",
                "/dev/disk/by-partlabel/",
                "LABEL=",
                "UUID=",
            ]
            .iter()
            .any(|p| dev.value.starts_with(p) && dev.value.len() > p.len())
                && fstab_word(&dev.value);
            if !dev_ok {
                self.error(&dev.span, format!("device `{}` is not addressed by label or UUID", dev.value), "use \"/dev/disk/by-label/NAME\" or \"/dev/disk/by-uuid/UUID\" so the mount survives device renaming");
            }
            let fs_ok = [
                "ext4", "xfs", "btrfs", "vfat", "exfat", "ntfs3", "f2fs", "zfs",
            ]
            .contains(&m.fs.value.as_str());
            if !fs_ok {
                self.error(
                    &m.fs.span,
                    format!("unknown filesystem `{}`", m.fs.value),
                    "use ext4, xfs, btrfs, vfat, exfat, ntfs3, f2fs or zfs",
                );
            }
            let device = match dev.value.split_once('=') {
                Some(("LABEL", l)) => format!("/dev/disk/by-label/{l}"),
                Some(("UUID", u)) => format!("/dev/disk/by-uuid/{u}"),
                _ => dev.value.clone(),
            };
            for o in &m.options {
                if o.value.is_empty() || o.value.contains(',') || !fstab_word(&o.value) {
                    self.error(
                        &o.span,
                        format!("`{}` is not a mount option", o.value),
                        "one option per string, e.g. [\"noatime\", \"compress=zstd\"]: letters, digits and = . _ - + : / @",
                    );
                }
            }
            let mut options: Vec<String> = m.options.iter().map(|o| o.value.clone()).collect();
            if options.is_empty() {
                options.push("defaults".into());
            }
            if !options.iter().any(|o| o == "nofail") {
                options.push("nofail".into());
            }
            mounts.push(MountPlan {
                point: point.to_string(),
                device,
                fs: m.fs.value.clone(),
                options,
            });
        }
        StoragePlan {
            boot_disk: s.boot_disk.as_ref().map(|b| b.value.to_string()),
            mounts,
        }
    }
}

/// One word of an fstab line: no whitespace, no '#', no control character.
fn fstab_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '=' | '.' | '_' | '-' | '+' | ':' | '/' | '@')
        })
}

#[cfg(test)]
mod tests {
    use crate::resolve::testkit::one;

    #[test]
    fn mounts_by_label_get_defaults_and_nofail() {
        let ok = one(
            "h",
            "[storage]\nboot_disk = \"/dev/disk/by-id/nvme-X\"\nmounts.\"/mnt/data\" = { device = \"LABEL=data\", fs = \"ext4\" }\nmounts.\"/mnt/b\" = { device = \"/dev/disk/by-uuid/1234\", fs = \"xfs\", options = [\"noatime\", \"nofail\"] }",
        );
        let s = &ok.plan().storage;
        assert_eq!(s.boot_disk.as_deref(), Some("/dev/disk/by-id/nvme-X"));
        let data = s.mounts.iter().find(|m| m.point == "/mnt/data").unwrap();
        assert_eq!(data.device, "/dev/disk/by-label/data");
        assert_eq!(data.options, ["defaults", "nofail"]);
        let b = s.mounts.iter().find(|m| m.point == "/mnt/b").unwrap();
        assert_eq!(b.options, ["noatime", "nofail"]);
    }

    #[test]
    fn the_boot_disk_is_a_stable_path() {
        one("h", "[storage]\nboot_disk = \"/dev/sda\"").assert_error(
            "boot disk `/dev/sda` is not a stable device path",
            "\"/dev/sda\"",
        );
    }

    #[test]
    fn profile_mount_points_are_refused() {
        let out = one(
            "h",
            "[storage]\nmounts.\"/nix\" = { device = \"LABEL=x\", fs = \"ext4\" }",
        );
        let d = out.error("mount point `/nix` belongs to the hardware profile");
        assert_eq!(out.span_of(d), "{ device = \"LABEL=x\", fs = \"ext4\" }");
    }

    #[test]
    fn devices_by_label_or_uuid_only() {
        for bad in ["/dev/sdb1", "LABEL=", "LABEL=a b", "/dev/disk/by-label/x#y"] {
            one(
                "h",
                &format!("[storage]\nmounts.\"/mnt/d\" = {{ device = \"{bad}\", fs = \"ext4\" }}"),
            )
            .assert_error(
                &format!("device `{bad}` is not addressed by label or UUID"),
                &format!("\"{bad}\""),
            );
        }
    }

    #[test]
    fn known_filesystems_only() {
        one(
            "h",
            "[storage]\nmounts.\"/mnt/d\" = { device = \"LABEL=d\", fs = \"fat32\" }",
        )
        .assert_error("unknown filesystem `fat32`", "\"fat32\"");
    }

    #[test]
    fn one_fstab_word_per_option() {
        for bad in ["rw,noatime", "", "x y"] {
            one(
                "h",
                &format!("[storage]\nmounts.\"/mnt/d\" = {{ device = \"LABEL=d\", fs = \"ext4\", options = [\"{bad}\"] }}"),
            )
            .assert_error(&format!("`{bad}` is not a mount option"), &format!("\"{bad}\""));
        }
    }
}
