//! `potato bootstrap HOST --target root@ADDR`, end to end, on a testbed host
//! standing in for a fresh machine running another Linux (Debian, this test
//! machine's own userland). Real: sshd, the SSH session, Nix and its stores,
//! the partition table (sfdisk), filesystems (mkfs.vfat, mkfs.ext4) and mounts
//! on a real block device (a loop device backed by a sparse file, linked as
//! /dev/disk/by-id/... inside the host's own /dev overlay), the age host key,
//! the neighbour table. Doubles, each named in its own file, for what needs a
//! real kernel or firmware: kexec (tests/fixtures/nixpkgs/kexec.sh, in the
//! nixpkgs double's kexec tree), nixos-enter's bootloader install and reboot
//! (tests/fixtures/installer/, bound at /usr/local/sbin inside the host only).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fleet::Fleet;
use common::testbed::{self, TestHost, Testbed};

/// A loop device over a sparse file: the machine's disk. Detached on drop
/// (lazily, if the host's namespace still holds a mount).
struct LoopDisk {
    file: PathBuf,
    dev: String,
}

impl LoopDisk {
    fn new(dir: &Path) -> LoopDisk {
        let file = dir.join("disk.img");
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(1400 << 20).unwrap();
        let dev = common::attach_loop(&file, true);
        LoopDisk { file, dev }
    }

    /// Bytes at `offset` of the disk, as written through the device.
    fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.file).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut buf = vec![0; len];
        f.read_exact(&mut buf).unwrap();
        buf
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn available() -> bool {
    if !testbed::require() {
        return false;
    }
    let missing: Vec<&str> = [
        "losetup",
        "sfdisk",
        "mkfs.vfat",
        "mkfs.ext4",
        "cpio",
        "tar",
        "partx",
    ]
    .into_iter()
    .filter(|t| !common::have_tool(t))
    .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("bootstrap tests are required in CI: {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// The host's sshd, with a /dev of its own (an overlay: the loop device gets a
/// by-id link only the host sees) and the installer doubles on its PATH.
fn stand_in_machine(
    host: &mut TestHost,
    disk: &LoopDisk,
    doubles: &Path,
    by_id: &str,
    extra_binds: &[(&Path, &str)],
) {
    let d = host.dir.display();
    let setup = format!(
        "mkdir -p {d}/devfs && mount -t tmpfs none {d}/devfs && mkdir -p {d}/devfs/u {d}/devfs/w \
         && mount -t overlay overlay -o lowerdir=/dev,upperdir={d}/devfs/u,workdir={d}/devfs/w /dev \
         && mkdir -p /dev/disk/by-id && ln -s {} {by_id}",
        disk.dev
    );
    // Its own /root too: the kexec tree lands in /root/potato-kexec.
    let root_home = host.dir.join("root");
    std::fs::create_dir_all(&root_home).unwrap();
    let mut binds: Vec<(&Path, &str)> = vec![(doubles, "/usr/local/sbin"), (&root_home, "/root")];
    binds.extend_from_slice(extra_binds);
    host.spawn_sshd_after(&binds, &setup);
}

fn doubles_dir(base: &Path) -> PathBuf {
    let dir = base.join("installer-doubles");
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = vec!["nixos-enter", "reboot"];
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.trim_end().ends_with("vfat")) {
        eprintln!("note: this kernel has no vfat; the ESP is mounted through the mount double");
        names.push("mount");
    }
    for name in names {
        std::fs::copy(
            common::source_root()
                .join("tests/fixtures/installer")
                .join(name),
            dir.join(name),
        )
        .unwrap();
    }
    dir
}

/// Runs potato with the fleet admin's age identity.
fn potato(fleet: &Fleet, args: &[&str]) -> common::Run {
    common::Run::from(
        fleet
            .command(args)
            .env("POTATO_AGE_IDENTITY", &fleet.admin_identity)
            .output()
            .unwrap(),
    )
}

/// Over SSH, inside the host's namespaces (where sshd's mounts are).
fn on_host(fleet: &Fleet, target: &str, cmd: &str) -> String {
    let run = potato(
        fleet,
        &["exec", "t0", "--target", target, "--", "sh", "-c", cmd],
    );
    assert_eq!(run.code, 0, "{cmd}: {}", run.stderr);
    // `potato exec` prefixes each line with "HOST | ".
    run.stdout
        .lines()
        .map(|l| l.strip_prefix("t0 | ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The full run on a machine that is not an installer: detection writes the
/// boot disk into the host file, kexec brings the installer with the
/// pre-generated host key, wiping needs --yes, and after the reboot the host is
/// found again by its MAC at the new address it came back with, and verified.
#[test]
fn bootstrap_installs_a_fresh_machine_end_to_end_and_resumes() {
    if !available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // Dropped after the testbed (declared first): the host's mounts go first.
    let disk = LoopDisk::new(work.path());
    let doubles = doubles_dir(work.path());
    let mut tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let slot = tb.host(0).slot;
    let by_id = format!("/dev/disk/by-id/ata-POTATO_TEST_DISK_{slot}");
    stand_in_machine(&mut tb.hosts[0], &disk, &doubles, &by_id, &[]);
    let host = tb.host(0);
    let target = format!("root@{}", host.addr);
    // Safety: the reboot potato will run on the host is the double.
    assert_eq!(
        on_host(&fleet, &target, "command -v reboot"),
        "/usr/local/sbin/reboot"
    );
    assert_eq!(
        on_host(&fleet, &target, "readlink -f /dev/disk/by-id/*"),
        disk.dev
    );
    // A data disk the layout must keep.
    // A secret of the host, and a data disk the layout must keep. The
    // machine's own (old) host key is kept aside.
    let old_key = work.path().join("old_host_key");
    std::fs::copy(host.dir.join("etc/ssh/ssh_host_ed25519_key"), &old_key).unwrap();
    fleet.set_secret("t0", "app-token", "tok-5f0c-first-boot");
    fleet.append_host(
        "t0",
        "\n[storage]\nmounts.\"/mnt/data\" = { device = \"/dev/disk/by-label/data\", fs = \"ext4\" }\n\n[secrets.app-token]\n",
    );

    // --wipe naming something that is not a data disk: refused before anything.
    let run = potato(
        &fleet,
        &[
            "bootstrap",
            "t0",
            "--target",
            &target,
            "--wipe",
            "/mnt/other",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("not a data disk of t0"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("/mnt/data"), "{}", run.stderr);
    assert!(!fleet.path().join(".potato/bootstrap/t0.json").exists());

    // Without --yes (and no terminal): everything up to the partition step,
    // which refuses, naming the disk; the disk is untouched.
    let run = potato(
        &fleet,
        &["bootstrap", "t0", "--target", &target, "--wait", "30s"],
    );
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains("refusing to wipe boot disk"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&by_id), "{}", run.stderr);
    assert!(run.stderr.contains("[4/10] installer"), "{}", run.stderr);
    // Plain lines (no terminal): the kexec tree's bytes once, when sent.
    assert!(
        run.plain_stderr()
            .lines()
            .any(|l| l.starts_with("t0: send done (")),
        "{}",
        run.stderr
    );
    assert_eq!(disk.read(512, 8), vec![0; 8], "the disk was written");
    // Detection wrote the one disk's by-id path into the host file.
    let text = fleet.read_host("t0");
    assert!(text.contains(&format!("boot_disk = \"{by_id}\"")), "{text}");
    assert!(text.contains("mounts.\"/mnt/data\""), "{text}");
    // The host key was pre-generated, and kexec brought the installer, which
    // answers with it (the known_hosts check passes only for that key).
    let kexec = on_host(&fleet, &target, "cat /nix/var/potato-test/kexec");
    assert!(
        kexec.starts_with("load ./kernel --initrd=./initrd.potato"),
        "{kexec}"
    );
    assert!(kexec.ends_with("exec"), "{kexec}");
    let recorded = std::fs::read_to_string(fleet.path().join("secrets/recipients.toml")).unwrap();
    let answered = on_host(&fleet, &target, "cat /etc/ssh/ssh_host_ed25519_key.pub");
    let key = answered.split_whitespace().nth(1).unwrap().to_string();
    assert!(
        recorded.contains(&format!("t0 = \"ssh-ed25519 {key}\"")),
        "{recorded}"
    );
    assert!(
        on_host(
            &fleet,
            &target,
            "cat /nix/var/potato-test/installer-authorized_keys"
        )
        .contains(&tb.client_pub)
    );
    let state = std::fs::read_to_string(fleet.path().join(".potato/bootstrap/t0.json")).unwrap();
    assert!(state.contains("\"installer\""), "{state}");
    assert!(!state.contains("\"partition\""), "{state}");

    // The host will come back at another address (a new lease).
    let [a, b, c, _] = host.addr.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let moved = format!("{a}.{b}.{c}.77");
    std::fs::write(doubles.join("new-address"), &moved).unwrap();
    let run = potato(&fleet, &["bootstrap", "t0", "--yes", "--wait", "20s"]);
    let reboot_log = String::from_utf8_lossy(
        &host
            .sh("ls -la /run /run/potato-bootstrap; cat /run/potato-test-reboot.log; ip -4 -o addr")
            .stdout,
    )
    .to_string();
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}\nreboot double: {reboot_log}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains("[1/10] detect: done earlier"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("keeping /dev/disk/by-label/data"),
        "{}",
        run.stderr
    );
    // The install pushed through the one push pipeline, reported in deploy's
    // words: "pushing N paths", then the push's bytes once, as plain lines.
    let stderr = run.plain_stderr();
    assert!(stderr.contains("[6/10] install"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.trim_start().starts_with("pushing ")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("t0: push done (")),
        "{stderr}"
    );
    assert!(
        run.stderr.contains(&format!("its MAC answers at {moved}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains(&format!(
            "t0: bootstrapped; it runs the built system at root@{moved}"
        )),
        "{}",
        run.stdout
    );
    let state = std::fs::read_to_string(fleet.path().join(".potato/bootstrap/t0.json")).unwrap();
    assert!(
        state.contains(&format!("\"target\": \"root@{moved}\"")),
        "{state}"
    );
    // The disk: GPT with an ESP and the root, as the layout says.
    assert_eq!(disk.read(512, 8), b"EFI PART");
    let parts = Command::new("sfdisk")
        .arg("--dump")
        .arg(&disk.dev)
        .output()
        .unwrap();
    let parts = String::from_utf8_lossy(&parts.stdout);
    assert!(parts.contains("name=\"ESP\""), "{parts}");
    assert!(parts.contains("name=\"nixos\""), "{parts}");
    assert!(parts.contains("size=     2097152"), "1 GiB ESP: {parts}");
    // The host booted exactly the built system and records the bootstrap.
    let new_target = format!("root@{moved}");
    let booted = on_host(&fleet, &new_target, "readlink -e /run/booted-system");
    let marker = on_host(&fleet, &new_target, "cat /nix/var/potato/bootstrapped");
    let m: serde_json::Value = serde_json::from_str(&marker).unwrap();
    assert_eq!(m["system"], booted);
    let status = potato(&fleet, &["status", "t0", "--target", &new_target]);
    assert!(status.stdout.contains("bootstrapped"), "{}", status.stdout);
    assert!(
        !status.stdout.contains("not bootstrapped"),
        "{}",
        status.stdout
    );
    // Secrets decrypt with the installed key: the host's key file is the
    // pre-generated one, 0600.
    assert_eq!(
        on_host(
            &fleet,
            &new_target,
            "stat -c %a /etc/ssh/ssh_host_ed25519_key"
        ),
        "600"
    );

    // The first boot decrypted the host's secret with the pre-generated key;
    // the machine's old key no longer opens it.
    assert_eq!(
        on_host(&fleet, &new_target, "cat /run/potato-secrets/app-token"),
        "tok-5f0c-first-boot"
    );
    assert_eq!(
        on_host(
            &fleet,
            &new_target,
            "stat -c %a /run/potato-secrets/app-token"
        ),
        "400"
    );
    let with_old = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&old_key)
        .arg(fleet.path().join("secrets/t0/app-token.age"))
        .output()
        .unwrap();
    assert!(!with_old.status.success(), "the old key still decrypts");

    // Run again: every step is done; only the verification runs.
    let run = potato(&fleet, &["bootstrap", "t0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("[9/10] reconnect: done earlier"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("bootstrap recorded"), "{}", run.stdout);
    // --json: one document on stdout; the steps still on stderr, plain.
    let run = potato(&fleet, &["bootstrap", "t0", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = run.one_json_document();
    assert_eq!(doc["host"], "t0", "{doc}");
    assert_eq!(doc["target"], new_target.as_str(), "{doc}");
    assert!(
        run.plain_stderr()
            .contains("[9/10] reconnect: done earlier"),
        "{}",
        run.stderr
    );

    // A host that booted something else fails the verification.
    on_host(&fleet, &new_target, "ln -sfn /nix/var /run/booted-system");
    let run = potato(&fleet, &["bootstrap", "t0", "--from", "verify"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("not bootstrapped"), "{}", run.stderr);
}

/// Below the kexec installer's RAM, the machine is refused with the image
/// route, before anything is uploaded or changed on it.
#[test]
fn bootstrap_refuses_kexec_below_its_ram_and_points_to_the_image() {
    if !available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let disk = LoopDisk::new(work.path());
    let doubles = doubles_dir(work.path());
    let meminfo = work.path().join("meminfo");
    std::fs::write(
        &meminfo,
        "MemTotal:        1012000 kB\nMemFree:          800000 kB\n",
    )
    .unwrap();
    let mut tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let slot = tb.host(0).slot;
    let by_id = format!("/dev/disk/by-id/ata-POTATO_TEST_DISK_{slot}");
    stand_in_machine(
        &mut tb.hosts[0],
        &disk,
        &doubles,
        &by_id,
        &[(&meminfo, "/proc/meminfo")],
    );
    let target = format!("root@{}", tb.host(0).addr);
    let text = fleet
        .read_host("t0")
        .replace("memory = \"1GiB\"", "memory = \"1000MiB\"");
    fleet.write_host("t0", &text);
    let run = potato(&fleet, &["bootstrap", "t0", "--target", &target, "--yes"]);
    // The machine cannot take the kexec installer: exit 1, not invalid input
    // (the host file and flags are right; issue 16).
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the kexec installer needs at least 1.5 GiB"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("potato image t0 --kind iso"),
        "{}",
        run.stderr
    );
    let listing = on_host(&fleet, &target, "ls /root/potato-kexec 2>&1 || true");
    assert!(listing.contains("No such file"), "{listing}");
    assert_eq!(disk.read(512, 8), vec![0; 8]);
}

/// The progress file cannot be written (here a directory stands where
/// .potato/bootstrap/t0.json goes): the step that ran is reported done on
/// the machine, and potato fails with exit 1 and what it could not record,
/// not exit 2 ("invalid input": the host file and flags are right).
#[test]
fn an_unwritable_progress_file_is_exit_1_not_2() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let target = format!("root@{}", tb.host(0).addr);
    let state = fleet.path().join(".potato/bootstrap/t0.json");
    std::fs::create_dir_all(state.join("in-the-way")).unwrap();
    let run = potato(
        &fleet,
        &["bootstrap", "t0", "--target", &target, "--restart"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot record the bootstrap's progress in .potato/bootstrap/t0.json"),
        "{}",
        run.stderr
    );
    // The detect step ran before the save failed.
    assert!(
        fleet.path().join("hosts/t0/hardware.json").is_file(),
        "{}",
        run.stderr
    );
    assert!(state.join("in-the-way").is_dir(), "nothing removed");
}
