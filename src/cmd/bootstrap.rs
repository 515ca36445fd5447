//! `potato bootstrap HOST --target root@ADDR`: today its first step, hardware
//! detection over SSH (`--detect`): architecture, RAM, CPU, disks (size, model,
//! serial, by-id path) and NICs (MAC), written as `hosts/<host>/hardware.json`
//! and `hosts/<host>/hardware.nix` and checked against the host file. The
//! install itself (kexec, disko, install, reboot) is not built yet; its last
//! step is (`--verify`): the host must have *booted* the system the repository
//! builds, and then the bootstrap is recorded on the host for `potato status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::{Connection, Global};
use crate::error::Error;
use crate::plan::Target;
use crate::units::format_mib;

/// What a machine is made of, as detected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// uname -m: x86_64, aarch64.
    pub arch: String,
    pub memory_mib: u64,
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub name: String,
    pub size_bytes: u64,
    pub model: String,
    pub serial: String,
    /// /dev/disk/by-id/... links to this disk (stable names for the host file).
    pub by_id: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    pub name: String,
    pub mac: String,
}

/// One SSH command that prints everything, in sections.
pub const PROBE: &str = "echo '@@arch'; uname -m; echo '@@meminfo'; cat /proc/meminfo; \
echo '@@cpuinfo'; cat /proc/cpuinfo; echo '@@lsblk'; lsblk -J -b -d -o NAME,SIZE,MODEL,SERIAL,TYPE; \
echo '@@byid'; for l in /dev/disk/by-id/*; do [ -e \"$l\" ] && printf '%s %s\\n' \"$l\" \"$(readlink -f \"$l\")\"; done; \
echo '@@links'; ip -j link";

/// Parses the probe's output.
pub fn parse(text: &str) -> Result<Hardware, String> {
    let mut sections: BTreeMap<&str, String> = BTreeMap::new();
    let mut current = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            current = name;
            continue;
        }
        let s = sections.entry(current).or_default();
        s.push_str(line);
        s.push('\n');
    }
    let get = |k: &str| sections.get(k).cloned().unwrap_or_default();
    let arch = get("arch").trim().to_string();
    let memory_kib: u64 = get("meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or("no MemTotal in /proc/meminfo")?;
    let cpuinfo = get("cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "model name" | "Model" | "Hardware").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let cpu_cores = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
        .count() as u32;
    let by_id: Vec<(String, String)> = get("byid")
        .lines()
        .filter_map(|l| {
            let (link, dev) = l.split_once(' ')?;
            Some((link.to_string(), dev.trim().to_string()))
        })
        .collect();
    let lsblk: Value = serde_json::from_str(&get("lsblk")).map_err(|e| format!("lsblk: {e}"))?;
    let mut disks = Vec::new();
    for d in lsblk["blockdevices"].as_array().into_iter().flatten() {
        if d["type"] != "disk" {
            continue;
        }
        let name = d["name"].as_str().unwrap_or("").to_string();
        let text = |k: &str| d[k].as_str().unwrap_or("").trim().to_string();
        let dev = format!("/dev/{name}");
        let mut ids: Vec<String> = by_id
            .iter()
            .filter(|(_, target)| *target == dev)
            .map(|(l, _)| l.clone())
            .collect();
        ids.sort();
        disks.push(Disk {
            size_bytes: d["size"].as_u64().unwrap_or(0),
            model: text("model"),
            serial: text("serial"),
            by_id: ids,
            name,
        });
    }
    let links: Value =
        serde_json::from_str(&get("links")).map_err(|e| format!("ip -j link: {e}"))?;
    let nics = links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["link_type"] == "ether")
        .map(|l| Nic {
            name: l["ifname"].as_str().unwrap_or("").to_string(),
            mac: l["address"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    Ok(Hardware {
        arch,
        memory_mib: memory_kib / 1024,
        cpu_model,
        cpu_cores,
        disks,
        nics,
    })
}

/// The facts as a NixOS module (comments for people, the platform for Nix).
pub fn hardware_nix(host: &str, h: &Hardware) -> String {
    let mut out = format!(
        "# Detected by `potato bootstrap {host} --detect`. Facts for people and for\n\
         # potato's checks; hardware support itself is modules/hardware/<profile>.nix.\n\
         #   CPU: {} ({} cores), RAM: {}\n",
        h.cpu_model,
        h.cpu_cores,
        format_mib(h.memory_mib)
    );
    for d in &h.disks {
        out.push_str(&format!(
            "#   disk {}: {:.1} GB, {} {}, {}\n",
            d.name,
            d.size_bytes as f64 / 1e9,
            d.model,
            d.serial,
            d.by_id
                .first()
                .map(String::as_str)
                .unwrap_or("(no by-id link)")
        ));
    }
    for n in &h.nics {
        out.push_str(&format!("#   nic {}: {}\n", n.name, n.mac));
    }
    let platform = match h.arch.as_str() {
        "aarch64" | "arm64" => "aarch64-linux",
        _ => "x86_64-linux",
    };
    out.push_str(&format!(
        "{{ lib, ... }}:\n{{\n  nixpkgs.hostPlatform = lib.mkDefault \"{platform}\";\n}}\n"
    ));
    out
}

pub fn run(g: &Global, host: &str, detect: bool, conn: &Connection) -> Result<(), Error> {
    if !detect {
        return Err(Error::NotImplemented(
            "bootstrap (only --detect, hardware detection, is built)",
        ));
    }
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = crate::repo::select(&plans, &[host.to_string()])?[0].clone();
    // The machine to install: not yet the host file's address, so it is given.
    let target = machine(conn, "--detect")?;
    let remote = super::hosts::connect(&root, g, host, &target, conn)?;
    let out = remote.session.exec(PROBE).map_err(|e| Error::Host {
        host: host.into(),
        message: e.to_string(),
    })?;
    let hw = parse(&out.stdout).map_err(|e| Error::Host {
        host: host.into(),
        message: format!("hardware detection: {e}"),
    })?;
    let dir = root.join("hosts").join(host);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let json = serde_json::to_string_pretty(&hw).expect("facts serialize") + "\n";
    std::fs::write(dir.join("hardware.json"), json).map_err(|e| Error::io(&dir, e))?;
    std::fs::write(dir.join("hardware.nix"), hardware_nix(host, &hw))
        .map_err(|e| Error::io(&dir, e))?;
    let problems = compare(&plan, &hw);
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "host": host, "hardware": hw, "problems": problems })
        );
    } else {
        println!(
            "{host}: {} · {} ({} cores) · {} RAM · {} disk(s) · {} NIC(s); wrote hosts/{host}/hardware.json and hardware.nix",
            hw.arch,
            hw.cpu_model,
            hw.cpu_cores,
            format_mib(hw.memory_mib),
            hw.disks.len(),
            hw.nics.len()
        );
        for p in &problems {
            println!("  ! {p}");
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Host {
            host: host.into(),
            message: format!("{} fact(s) disagree with hosts/{host}.toml", problems.len()),
        })
    }
}

/// Where a bootstrap is recorded on the host (date, commit, system).
pub const MARKER: &str = "/nix/var/potato/bootstrapped";

/// The machine being bootstrapped: `--target`, required (it is not yet at the
/// host file's address). `step` shows in the example.
fn machine(conn: &Connection, step: &str) -> Result<Target, Error> {
    let Some(given) = conn.target.as_deref() else {
        return Err(Error::usage(
            "bootstrap needs --target root@ADDR (the machine as it runs now)",
            format!("e.g. potato bootstrap n250 {step} --target root@192.168.178.99"),
        ));
    };
    crate::resolve::parse_target(given).map_err(|e| Error::usage(e, "write root@ADDR"))
}

/// `--verify`: booted == built, then record the bootstrap.
pub fn verify(
    g: &Global,
    host: &str,
    conn: &Connection,
    nix_args: &crate::cli::NixArgs,
) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = crate::repo::select(&plans, &[host.to_string()])?[0].clone();
    let target =
        super::deploy::target_override(conn, 1)?.unwrap_or_else(|| plan.deploy.target.clone());
    let built = super::deploy::build(&root, nix_args, std::slice::from_ref(&plan.name))?;
    let expected = built[&plan.name].to_string();
    let remote = super::hosts::connect(&root, g, host, &target, conn)?;
    let fail = |message: String| Error::Host {
        host: host.into(),
        message,
    };
    let out = remote
        .session
        .exec("readlink -e /run/booted-system 2>/dev/null || echo none")
        .map_err(|e| fail(e.to_string()))?;
    let booted = out.stdout.trim().to_string();
    if booted != expected {
        return Err(fail(format!(
            "the host booted {booted}, but the repository builds {expected}: not bootstrapped (reboot into the installed system, or install again)"
        )));
    }
    let commit = std::process::Command::new("git")
        .args(["-C", root.as_str(), "rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "(not a git checkout)".into());
    let record = serde_json::json!({
        "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "commit": commit,
        "system": expected,
    });
    let script = format!(
        "mkdir -p /nix/var/potato && printf '%s\\n' {} > {MARKER}.new && mv {MARKER}.new {MARKER}",
        crate::deploy::remote::shell_quote(&record.to_string())
    );
    let out = remote
        .session
        .exec(&script)
        .map_err(|e| fail(e.to_string()))?;
    if out.code != 0 {
        return Err(fail(format!(
            "recording the bootstrap: {}",
            out.stderr.trim()
        )));
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "host": host, "bootstrapped": record })
        );
    } else {
        println!("{host}: booted {expected}; bootstrap recorded (commit {commit})");
    }
    Ok(())
}

/// `--install --root DIR`: the system into a prepared target root (partitioned
/// and mounted, e.g. by disko from an installer): the closure into DIR's store,
/// the system profile, and the pre-generated host key (0600), so the secrets in
/// the closure decrypt on first boot. The bootloader and reboot need the
/// installer's NixOS tooling and are not done here.
pub fn install(
    g: &Global,
    host: &str,
    root_dir: &str,
    conn: &Connection,
    nix_args: &crate::cli::NixArgs,
) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = crate::repo::select(&plans, &[host.to_string()])?[0].clone();
    let target = machine(conn, "--install --root /mnt")?;
    if !root_dir.starts_with('/') || root_dir == "/" {
        return Err(Error::usage(
            format!("--root {root_dir}: give the mounted target root, e.g. /mnt"),
            "never / (that is the running system)",
        ));
    }
    // The host key first: without it the installed system cannot decrypt.
    let key_file = root.join(format!("secrets/{host}/ssh_host_ed25519_key.age"));
    if !key_file.exists() {
        return Err(Error::usage(
            format!("{host} has no pre-generated host key ({key_file} is missing)"),
            format!("run `potato secrets hostkey {host}` first"),
        ));
    }
    let ids = crate::secrets::store::load_identities(None)
        .map_err(|e| Error::usage(e.to_string(), "set POTATO_AGE_IDENTITY"))?;
    let private = crate::secrets::store::decrypt(&key_file, &ids)
        .map_err(|e| Error::usage(e.to_string(), "check your age identity"))?;
    let public = crate::secrets::store::Recipients::load(&root)
        .ok()
        .and_then(|r| r.hosts.get(host).cloned())
        .unwrap_or_default();
    let built = super::deploy::build(&root, nix_args, std::slice::from_ref(&plan.name))?;
    let system = built[&plan.name].clone();
    let closure = crate::nix::closure(&system)?;
    let mut remote = super::hosts::connect(&root, g, host, &target, conn)?;
    remote.set_store_root(root_dir);
    let fail = |m: String| Error::Host {
        host: host.into(),
        message: m,
    };
    let paths: Vec<_> = closure.iter().map(|p| p.path.clone()).collect();
    let missing = remote.missing(&paths).map_err(|e| fail(e.to_string()))?;
    let send: Vec<_> = closure
        .into_iter()
        .filter(|p| missing.contains(&p.path))
        .collect();
    let count = send.len();
    say(
        g,
        &format!("{host}: pushing {count} paths into {root_dir}/nix/store"),
    );
    let mut stream = crate::nix::transfer::ServeStream::new(send);
    remote
        .add_to_store(&mut stream, count, false, &mut |_| {})
        .map_err(|e| fail(e.to_string()))?;
    let q = crate::deploy::remote::shell_quote;
    let profile = format!("{root_dir}/nix/var/nix/profiles/system");
    let script = format!(
        "nix-env --store {r} -p {p} --set {s} && umask 077 && mkdir -p {r}/etc/ssh          && cat > {r}/etc/ssh/ssh_host_ed25519_key.new && chmod 0600 {r}/etc/ssh/ssh_host_ed25519_key.new          && mv {r}/etc/ssh/ssh_host_ed25519_key.new {r}/etc/ssh/ssh_host_ed25519_key          && printf '%s\\n' {pubkey} > {r}/etc/ssh/ssh_host_ed25519_key.pub && chmod 0644 {r}/etc/ssh/ssh_host_ed25519_key.pub",
        r = q(root_dir),
        p = q(&profile),
        s = q(system.as_str()),
        pubkey = q(&format!("{public} root@{host}")),
    );
    // The private key travels on stdin, never in an argv.
    let out = remote
        .session
        .exec_with(&script, Some(&mut &private[..]), &mut |_| {})
        .map_err(|e| fail(e.to_string()))?;
    if out.code != 0 {
        return Err(fail(format!(
            "installing into {root_dir}: {}",
            out.stderr.trim()
        )));
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "host": host, "root": root_dir, "system": system, "pushed": count })
        );
    } else {
        println!(
            "{host}: {system} installed into {root_dir} ({count} paths pushed, host key in place)
             next: install the bootloader from the installer, reboot, then `potato bootstrap {host} --verify`"
        );
    }
    Ok(())
}

fn say(g: &Global, line: &str) {
    if !g.json {
        eprintln!("{line}");
    }
}

/// Where the host file and the machine disagree.
pub fn compare(plan: &crate::plan::HostPlan, hw: &Hardware) -> Vec<String> {
    let mut out = Vec::new();
    let want_arch = plan.system.as_str().trim_end_matches("-linux");
    if hw.arch != want_arch {
        out.push(format!(
            "the machine is {}, the host file says system = \"{}\"",
            hw.arch,
            plan.system.as_str()
        ));
    }
    // The kernel keeps some RAM for itself: allow 10 % below the stated size.
    if hw.memory_mib < plan.memory_mib * 9 / 10 {
        out.push(format!(
            "the machine has {} of RAM, the host file says memory = {}",
            format_mib(hw.memory_mib),
            format_mib(plan.memory_mib)
        ));
    }
    if let Some(boot) = &plan.storage.boot_disk
        && !hw.disks.iter().any(|d| d.by_id.iter().any(|i| i == boot))
    {
        let found: Vec<&str> = hw
            .disks
            .iter()
            .flat_map(|d| d.by_id.first())
            .map(String::as_str)
            .collect();
        out.push(format!(
            "boot_disk {boot} is not on the machine; its disks: {}",
            if found.is_empty() {
                "(none with a by-id link)".into()
            } else {
                found.join(", ")
            }
        ));
    }
    out
}
