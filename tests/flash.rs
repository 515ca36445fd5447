//! `potato flash` against stand-ins for a card: a regular file and a loop
//! device (real block device, backed by a file). Written and verified; refused
//! while mounted, without confirmation, and when the image does not fit. The
//! rules for real disks (fixed, partition, the disk holding /) are unit tests
//! on a fake sysfs in src/flash.rs: this test never points at a real disk.

mod common;

use std::process::Command;

use common::Repo;

fn image(dir: &std::path::Path, len: usize) -> std::path::PathBuf {
    let p = dir.join("card.img");
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn flash_to_a_file_writes_and_verifies_and_needs_confirmation() {
    let r = Repo::examples();
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 5 << 20);
    let target = dir.path().join("sdcard.bin");
    std::fs::write(&target, b"old contents").unwrap();
    // No --yes and no terminal: refused, nothing written.
    let run = r.potato(&[
        "flash",
        "lepotato",
        target.to_str().unwrap(),
        "--image",
        img.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("without confirmation"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"old contents");
    let run = r.potato(&[
        "flash",
        "lepotato",
        target.to_str().unwrap(),
        "--image",
        img.to_str().unwrap(),
        "--yes",
    ]);
    run.ok();
    assert!(
        run.stdout.contains("read back and verified"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&img).unwrap()
    );
    // Not a terminal: plain progress lines, each transfer once when done.
    let stderr = run.plain_stderr();
    for line in [
        "lepotato: write done (5.2 MB)",
        "lepotato: verify done (5.2 MB)",
    ] {
        assert!(stderr.lines().any(|l| l == line), "{line:?} in {stderr}");
    }
    assert!(stderr.contains("writing "), "{stderr}");
    // --json: one document on stdout (the same plain progress on stderr).
    std::fs::write(&target, b"old contents").unwrap();
    let run = r.potato(&[
        "flash",
        "lepotato",
        target.to_str().unwrap(),
        "--image",
        img.to_str().unwrap(),
        "--yes",
        "--json",
    ]);
    run.ok();
    let doc = run.one_json_document();
    assert_eq!(doc["verified"], true, "{doc}");
    assert_eq!(doc["bytes"], 5 << 20, "{doc}");
    assert_eq!(doc["host"], "lepotato", "{doc}");
    assert!(
        run.plain_stderr().contains("lepotato: verify done"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&img).unwrap()
    );
    // A VM host has no card.
    let run = r.potato(&["flash", "pve-apps", target.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("potato vm create pve-apps"),
        "{}",
        run.stderr
    );
}

/// A loop device over a file, detached on drop.
struct Loop {
    dev: String,
    mount: Option<tempfile::TempDir>,
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg(m.path()).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

#[test]
fn flash_to_a_loop_device_refuses_while_mounted_then_writes() {
    if !common::lab::require() || !common::have_tool("losetup") || !common::have_tool("mkfs.ext4") {
        return;
    }
    let r = Repo::examples();
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("card-backing");
    std::fs::write(&backing, vec![0u8; 16 << 20]).unwrap();
    let dev = common::attach_loop(&backing, false);
    let mut lo = Loop { dev, mount: None };
    assert!(
        Command::new("mkfs.ext4")
            .args(["-q", &lo.dev])
            .status()
            .unwrap()
            .success()
    );
    let mnt = tempfile::tempdir().unwrap();
    assert!(
        Command::new("mount")
            .arg(&lo.dev)
            .arg(mnt.path())
            .status()
            .unwrap()
            .success()
    );
    lo.mount = Some(mnt);
    let img = image(dir.path(), 3 << 20);
    let flash = |extra: &[&str]| {
        let mut args = vec![
            "flash",
            "lepotato",
            lo.dev.as_str(),
            "--image",
            img.to_str().unwrap(),
            "--yes",
        ];
        args.extend_from_slice(extra);
        r.potato(&args)
    };
    let run = flash(&[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is mounted"), "{}", run.stderr);
    // Unmounted: written and verified, byte for byte.
    let m = lo.mount.take().unwrap();
    assert!(
        Command::new("umount")
            .arg(m.path())
            .status()
            .unwrap()
            .success()
    );
    let run = flash(&[]);
    run.ok();
    assert!(run.stdout.contains("loop device"), "{}", run.stdout);
    let written = std::fs::read(&backing).unwrap();
    assert_eq!(&written[..3 << 20], &std::fs::read(&img).unwrap()[..]);
    // An image larger than the device: refused before writing.
    let big = dir.path().join("big.img");
    std::fs::write(&big, vec![1u8; 17 << 20]).unwrap();
    let run = r.potato(&[
        "flash",
        "lepotato",
        lo.dev.as_str(),
        "--image",
        big.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is larger than"), "{}", run.stderr);
    assert_eq!(std::fs::read(&backing).unwrap(), written);
}

/// The card gets the host's pre-generated SSH host key in its root filesystem
/// (0600, byte for byte the key in secrets/), so its secrets decrypt on first
/// boot; the image it was written from stays without it.
#[test]
fn flash_puts_the_pre_generated_host_key_onto_the_card() {
    let tools = ["sfdisk", "mkfs.ext4", "debugfs", "ssh-keygen", "age"];
    if let Some(t) = tools.iter().find(|t| !common::have_tool(t)) {
        assert!(std::env::var_os("CI").is_none(), "{t} is required in CI");
        eprintln!("SKIPPED: {t} is not installed");
        return;
    }
    let r = Repo::examples();
    let admin = common::admin_identity();
    r.potato_as_admin(&["secrets", "hostkey", "lepotato", "--force"])
        .ok();
    // An SD-card-like image: MBR, a FAT-typed firmware partition, an ext4 root.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("sd.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(48 << 20)
        .unwrap();
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\nstart=2048, size=8192, type=b\nstart=16384, type=83\n")
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let root_offset = 16384 * 512;
    let mkfs = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            "NIXOS_SD",
            "-E",
            &format!("offset={root_offset}"),
        ])
        .arg(&img)
        .arg("30M")
        .status()
        .unwrap();
    assert!(mkfs.success());
    let card = dir.path().join("card.bin");
    let run = r.potato_as_admin(&[
        "flash",
        "lepotato",
        card.to_str().unwrap(),
        "--image",
        img.to_str().unwrap(),
        "--yes",
    ]);
    run.ok();
    assert!(
        run.stdout.contains("read back and verified"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("host key installed"), "{}", run.stdout);
    let debugfs = |file: &std::path::Path, req: &str| {
        Command::new("debugfs")
            .args(["-R", req])
            .arg(format!("{}?offset={root_offset}", file.display()))
            .output()
            .unwrap()
    };
    let on_card = debugfs(&card, "cat /etc/ssh/ssh_host_ed25519_key").stdout;
    let expected = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&admin)
        .arg(r.path().join("secrets/lepotato/ssh_host_ed25519_key.age"))
        .output()
        .unwrap()
        .stdout;
    assert!(expected.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert_eq!(on_card, expected);
    let stat =
        String::from_utf8_lossy(&debugfs(&card, "stat /etc/ssh/ssh_host_ed25519_key").stdout)
            .to_string();
    assert!(
        stat.contains("Mode:  0600") && stat.contains("User:     0"),
        "{stat}"
    );
    let public =
        String::from_utf8_lossy(&debugfs(&card, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout)
            .to_string();
    let recorded = std::fs::read_to_string(r.path().join("secrets/recipients.toml")).unwrap();
    assert!(
        recorded.contains(public.split_whitespace().nth(1).unwrap()),
        "{public}"
    );
    // The source image has no key.
    assert!(
        debugfs(&img, "cat /etc/ssh/ssh_host_ed25519_key")
            .stdout
            .is_empty()
    );
}

/// On a terminal (a pty from util-linux's `script`) the reporter draws live
/// instead of writing plain lines; `CI` set turns plain lines back on.
#[test]
fn on_a_terminal_progress_is_live_and_in_ci_it_is_plain() {
    if !common::have_tool("script") {
        return;
    }
    let r = Repo::examples();
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), 5 << 20);
    let target = dir.path().join("sdcard.bin");
    let on_a_pty = |ci: bool| {
        let command = format!(
            "{} flash lepotato {} --image {} --yes",
            env!("CARGO_BIN_EXE_potato"),
            target.display(),
            img.display()
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"])
            .current_dir(r.path())
            .env_remove("POTATO_REPO")
            .env("TERM", "xterm")
            .stdin(std::process::Stdio::null());
        if ci {
            cmd.env("CI", "true");
        } else {
            cmd.env_remove("CI");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // stdout and stderr both go to the pty: the note and the result show,
    // the plain sink's "done" lines do not (a live bar took their place).
    let live = on_a_pty(false);
    assert!(live.contains("writing "), "{live:?}");
    assert!(live.contains("read back and verified"), "{live:?}");
    assert!(!live.contains("write done"), "{live:?}");
    let ci = on_a_pty(true);
    assert!(ci.contains("lepotato: write done (5.2 MB)"), "{ci:?}");
    assert!(!ci.contains('\x1b'), "{ci:?}");
}
