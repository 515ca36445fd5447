//! hardware.nix and disko.nix are written through `render::nix` (issue 16):
//! hostile values from a machine's detected facts or a disk layout (quotes,
//! `${`, `$${`, backslashes, line breaks) come back exactly when real Nix
//! evaluates the file, nothing in them becomes code, what Nix strings cannot
//! hold (NUL) or fstab could not read back is refused with an error naming it,
//! and the files parse and are the same bytes on every run.

mod common;

use std::process::Command;

use common::{Repo, have_tool};
use potato::bootstrap::hardware::{self, Disk, Hardware, Nic};
use potato::render::disko::{DataDisk, Layout};
use serde_json::{Value, json};

/// Strings Nix would read as something else when written raw into "...".
const HOSTILE: &[&str] = &[
    "a\"b",
    "${builtins.currentSystem}",
    "$${x}",
    "back\\slash\\",
    "two\nlines\r\t",
    "''${x}''",
    "\\${x}",
    "x\n}; y = builtins.readFile /etc/passwd; #",
];

/// Evaluates `expr` with real Nix, strictly, as JSON.
fn eval(expr: &str) -> Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", expr])
        .output()
        .expect("run nix-instantiate");
    assert!(
        out.status.success(),
        "nix-instantiate --eval failed for\n{expr}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn parses(file: &std::path::Path) {
    let out = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(file)
        .output()
        .expect("run nix-instantiate");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn facts(kernel_modules: &[&str], text: &str) -> Hardware {
    Hardware {
        arch: "x86_64".into(),
        memory_mib: 4096,
        cpu_model: text.into(),
        cpu_cores: 2,
        disks: vec![Disk {
            name: text.into(),
            size_bytes: 1,
            model: text.into(),
            serial: text.into(),
            by_id: vec![text.into()],
        }],
        nics: vec![Nic {
            name: text.into(),
            mac: text.into(),
        }],
        kernel_modules: kernel_modules.iter().map(|s| s.to_string()).collect(),
    }
}

/// `lib.mkDefault` as nixpkgs defines it (lib/modules.nix: `mkDefault =
/// mkOverride 1000`, `mkOverride = priority: content: { _type = "override";
/// inherit priority content; }`): the TEST DOUBLE for the lib argument, since
/// no nixpkgs is on this machine.
const LIB: &str =
    "{ mkDefault = content: { _type = \"override\"; priority = 1000; inherit content; }; }";

#[test]
fn hostile_hardware_facts_read_back_exactly_and_stay_out_of_the_code() {
    if !have_tool("nix-instantiate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in HOSTILE.iter().enumerate() {
        let host = format!("h{i}\n}}; z = 1; #");
        let nix = hardware::hardware_nix(&host, &facts(HOSTILE, text)).unwrap();
        let file = dir.path().join(format!("hardware{i}.nix"));
        std::fs::write(&file, &nix).unwrap();
        parses(&file);
        let v = eval(&format!(
            "let m = import {} {{ lib = {LIB}; }}; in {{ names = builtins.attrNames m; boot = builtins.attrNames m.boot; platform = m.nixpkgs.hostPlatform; modules = m.boot.initrd.availableKernelModules; }}",
            file.display()
        ));
        assert_eq!(v["names"], json!(["boot", "nixpkgs"]), "{nix}");
        assert_eq!(v["boot"], json!(["initrd"]), "{nix}");
        assert_eq!(
            v["platform"],
            json!({"_type": "override", "priority": 1000, "content": "x86_64-linux"})
        );
        assert_eq!(v["modules"], json!(HOSTILE), "{nix}");
    }
}

#[test]
fn a_nul_in_a_detected_value_is_refused_with_its_name() {
    let e = hardware::hardware_nix("h", &facts(&["nvme", "a\0b"], "cpu")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("a detected kernel module: a Nix string"),
        "{e}"
    );
    // In a comment a NUL is written as an escape, so the module is still written.
    let nix = hardware::hardware_nix("h", &facts(&[], "cpu\0x")).unwrap();
    assert!(nix.contains("cpu\\0x"), "{nix}");
}

fn data(point: &str, device: &str, fs: &str, label: Option<&str>) -> DataDisk {
    DataDisk {
        mount_point: point.into(),
        device: device.into(),
        fs: fs.into(),
        label: label.map(String::from),
    }
}

#[test]
fn hostile_layout_values_read_back_exactly() {
    if !have_tool("nix-instantiate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in HOSTILE.iter().enumerate() {
        // What fstab can carry goes there (no line break, no backslash);
        // the boot disk is only a Nix string and takes anything but NUL.
        let fstab_safe = text.replace(['\n', '\r', '\t', '\\'], "_");
        let layout = Layout {
            boot_disk: format!("/dev/disk/by-id/{text}"),
            wipe: vec![data(
                &format!("/mnt/{fstab_safe}"),
                &format!("/dev/disk/by-label/{fstab_safe}"),
                "vfat",
                Some(&fstab_safe),
            )],
            keep: vec![data(
                "/mnt/k",
                &format!("/dev/disk/by-label/{fstab_safe}k"),
                "ext4",
                None,
            )],
        };
        let nix = layout.disko_nix(&format!("hosts/{text}.toml")).unwrap();
        let file = dir.path().join(format!("disko{i}.nix"));
        std::fs::write(&file, &nix).unwrap();
        parses(&file);
        let v = eval(&format!(
            "let d = import {}; in {{ top = builtins.attrNames d; disks = builtins.attrNames d.disko.devices.disk; inherit (d.disko.devices.disk) boot data0; }}",
            file.display()
        ));
        assert_eq!(v["top"], json!(["disko"]), "{nix}");
        assert_eq!(v["disks"], json!(["boot", "data0"]), "{nix}");
        assert_eq!(v["boot"]["device"], json!(layout.boot_disk), "{nix}");
        assert_eq!(
            v["data0"],
            json!({
                "type": "disk",
                "device": layout.wipe[0].device,
                "content": {
                    "type": "filesystem",
                    "format": "vfat",
                    "mountpoint": layout.wipe[0].mount_point,
                    "extraArgs": ["-n", fstab_safe],
                },
            }),
            "{nix}"
        );
        let p = &v["boot"]["content"]["partitions"];
        assert_eq!(p["ESP"]["content"]["mountpoint"], "/boot");
        assert_eq!(p["root"]["content"]["extraArgs"], json!(["-L", "nixos"]));
    }
}

#[test]
fn what_fstab_or_nix_cannot_hold_is_refused_by_name() {
    let layout = |boot: &str, point: &str| Layout {
        boot_disk: boot.into(),
        wipe: vec![],
        keep: vec![data(point, "/dev/disk/by-label/d", "ext4", None)],
    };
    let e = layout("/dev/disk/by-id/x\0", "/mnt/d")
        .disko_nix("hosts/h.toml")
        .unwrap_err();
    assert!(
        e.to_string().starts_with("storage.boot_disk: a Nix string"),
        "{e}"
    );
    for point in ["/mnt/a\\b", "/mnt/a\nb"] {
        let e = layout("/dev/disk/by-id/x", point)
            .disko_nix("hosts/h.toml")
            .unwrap_err();
        assert!(
            e.to_string().starts_with("a mount point: an fstab field"),
            "{e}"
        );
    }
}

/// The committed disko.nix is what `potato gen` writes, every time, and it
/// parses; hardware.nix is the same bytes for the same facts.
#[test]
fn generated_files_parse_and_are_the_same_bytes_on_every_run() {
    let r = Repo::examples();
    let committed = r.read("modules/generated/n250/disko.nix");
    r.potato(&["gen"]).ok();
    let first = r.read("modules/generated/n250/disko.nix");
    std::fs::remove_file(r.path().join("modules/generated/n250/disko.nix")).unwrap();
    r.potato(&["gen"]).ok();
    let second = r.read("modules/generated/n250/disko.nix");
    assert_eq!(first, second);
    assert_eq!(first, committed, "the committed file is up to date");
    let hw = facts(&["nvme", "xhci_pci"], "Intel(R) N250");
    let a = hardware::hardware_nix("n250", &hw).unwrap();
    assert_eq!(a, hardware::hardware_nix("n250", &hw).unwrap());
    if !have_tool("nix-instantiate") {
        return;
    }
    parses(&r.path().join("modules/generated/n250/disko.nix"));
    let file = r.path().join("hardware.nix");
    std::fs::write(&file, a).unwrap();
    parses(&file);
}
