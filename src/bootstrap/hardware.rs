//! What a machine is, as detected over SSH by one probe command: architecture,
//! RAM, CPU, disks (size, model, serial, by-id path), NICs (MAC), and whether
//! it runs the NixOS installer (with the tools a bootstrap needs). Written as
//! `hosts/<host>/hardware.json` and (through `render::hardware`, which writes
//! all of its Nix) `hardware.nix`, and compared with the host file.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::render;
use crate::render::format::Refused;
use crate::render::hardware::HardwareModule;
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
    /// Kernel modules of the disks' controllers (each disk's device and its
    /// parents, where the driver is a module): what the initrd needs to find
    /// the root disk.
    #[serde(default)]
    pub kernel_modules: Vec<String>,
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

/// The running system, beside its hardware: what the bootstrap can do there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Running {
    /// /etc/os-release says VARIANT_ID=installer (NixOS installers since 23.05).
    pub installer: bool,
    /// PRETTY_NAME of /etc/os-release.
    pub os: String,
    /// Which of `TOOLS` are on the PATH.
    pub tools: BTreeSet<String>,
}

/// Tools the steps use on the target, looked for by the probe.
pub const TOOLS: &[&str] = &[
    "cpio",
    "tar",
    "setsid",
    "sfdisk",
    "mkfs.vfat",
    "mkfs.ext4",
    "partx",
    "nixos-enter",
];

/// One SSH command that prints everything, in sections.
pub fn probe() -> String {
    format!(
        "echo '@@arch'; uname -m; echo '@@meminfo'; cat /proc/meminfo; \
echo '@@cpuinfo'; cat /proc/cpuinfo; echo '@@lsblk'; lsblk -J -b -d -o NAME,SIZE,MODEL,SERIAL,TYPE; \
echo '@@byid'; for l in /dev/disk/by-id/*; do [ -e \"$l\" ] && printf '%s %s\\n' \"$l\" \"$(readlink -f \"$l\")\"; done; \
echo '@@links'; ip -j link; echo '@@os'; cat /etc/os-release 2>/dev/null; \
echo '@@modules'; for b in /sys/block/*; do d=$(readlink -f \"$b/device\" 2>/dev/null) || continue; \
while [ -n \"$d\" ] && [ \"$d\" != / ] && [ \"$d\" != /sys ]; do \
[ -e \"$d/driver/module\" ] && basename \"$(readlink -f \"$d/driver/module\")\"; d=$(dirname \"$d\"); done; done; \
echo '@@tools'; for t in {}; do command -v \"$t\" >/dev/null 2>&1 && echo \"$t\"; done; true",
        TOOLS.join(" ")
    )
}

/// The sections of the probe's output, by name.
fn sections(text: &str) -> BTreeMap<&str, String> {
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
    sections
}

/// What the probe says of the running system.
pub fn parse_running(text: &str) -> Running {
    let s = sections(text);
    let os = s.get("os").cloned().unwrap_or_default();
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    Running {
        installer: field("VARIANT_ID") == "installer",
        os: field("PRETTY_NAME"),
        tools: s
            .get("tools")
            .map(|t| t.lines().map(|l| l.trim().to_string()).collect())
            .unwrap_or_default(),
    }
}

/// Parses the probe's output.
pub fn parse(text: &str) -> Result<Hardware, String> {
    let sections = sections(text);
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
        let name = d["name"].as_str().unwrap_or("").to_string();
        let text = |k: &str| d[k].as_str().unwrap_or("").trim().to_string();
        let dev = format!("/dev/{name}");
        let mut ids: Vec<String> = by_id
            .iter()
            .filter(|(_, target)| *target == dev)
            .map(|(l, _)| l.clone())
            .collect();
        ids.sort();
        // Disks; and a loop device only when a by-id link names it (never on
        // real hardware, where loop devices have none: a test's stand-in disk).
        let is_disk = d["type"] == "disk" || (d["type"] == "loop" && !ids.is_empty());
        if !is_disk {
            continue;
        }
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
        kernel_modules: {
            let mut m: Vec<String> = get("modules")
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            m.sort();
            m.dedup();
            m
        },
    })
}

/// The facts as hardware.nix (`render::hardware`): lines for people, the
/// platform and the initrd's modules for Nix.
pub fn hardware_nix(host: &str, h: &Hardware) -> Result<String, Refused> {
    render::hardware::hardware_nix(&module(host, h))
}

/// What hardware.nix records of the facts.
pub fn module(host: &str, h: &Hardware) -> HardwareModule {
    let mut comments = vec![
        format!("Detected by `potato bootstrap {host}` (written again by each detection)."),
        format!(
            "The flake imports it into {host}'s system, beside modules/hardware/<profile>.nix."
        ),
        format!(
            "  CPU: {} ({} cores), RAM: {}",
            h.cpu_model,
            h.cpu_cores,
            format_mib(h.memory_mib)
        ),
    ];
    for d in &h.disks {
        comments.push(format!(
            "  disk {}: {:.1} GB, {} {}, {}",
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
        comments.push(format!("  nic {}: {}", n.name, n.mac));
    }
    let platform = match h.arch.as_str() {
        "aarch64" | "arm64" => "aarch64-linux",
        _ => "x86_64-linux",
    };
    HardwareModule {
        comments,
        platform: platform.to_string(),
        kernel_modules: h.kernel_modules.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_output(modules: &str) -> String {
        format!(
            "@@arch\nx86_64\n@@meminfo\nMemTotal:       16273396 kB\n@@cpuinfo\nprocessor\t: 0\nmodel name\t: Intel(R) N250\nprocessor\t: 1\n\
             @@lsblk\n{{\"blockdevices\": [{{\"name\":\"nvme0n1\",\"size\":500107862016,\"model\":\"Samsung SSD 980 500GB\",\"serial\":\"S64DNX0R123456\",\"type\":\"disk\"}},{{\"name\":\"loop0\",\"size\":1,\"model\":null,\"serial\":null,\"type\":\"loop\"}}]}}\n\
             @@byid\n/dev/disk/by-id/nvme-Samsung_SSD_980_500GB_S64DNX0R123456 /dev/nvme0n1\n\
             @@links\n[{{\"ifname\":\"lo\",\"link_type\":\"loopback\",\"address\":\"00:00:00:00:00:00\"}},{{\"ifname\":\"enp1s0\",\"link_type\":\"ether\",\"address\":\"a8:b8:e0:01:02:03\"}}]\n\
             @@os\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n@@modules\n{modules}@@tools\ncpio\ntar\n"
        )
    }

    #[test]
    fn a_probe_parses_into_facts_and_a_module() {
        let text = probe_output("nvme\nxhci_pci\nnvme\n");
        let h = parse(&text).unwrap();
        assert_eq!(h.arch, "x86_64");
        assert_eq!(h.memory_mib, 16273396 / 1024);
        assert_eq!((h.cpu_model.as_str(), h.cpu_cores), ("Intel(R) N250", 2));
        assert_eq!(
            h.disks.len(),
            1,
            "a loop device without a by-id link is no disk"
        );
        assert_eq!(
            h.disks[0].by_id,
            ["/dev/disk/by-id/nvme-Samsung_SSD_980_500GB_S64DNX0R123456"]
        );
        assert_eq!(h.nics.len(), 1);
        assert_eq!(h.nics[0].mac, "a8:b8:e0:01:02:03");
        assert_eq!(h.kernel_modules, ["nvme", "xhci_pci"]);
        let nix = hardware_nix("n250", &h).unwrap();
        assert!(
            nix.contains("boot.initrd.availableKernelModules = [ \"nvme\" \"xhci_pci\" ];"),
            "{nix}"
        );
        let running = parse_running(&text);
        assert!(!running.installer);
        assert_eq!(running.os, "Debian GNU/Linux 12 (bookworm)");
        assert!(running.tools.contains("cpio") && !running.tools.contains("setsid"));
        crate::render::nix::assert_parses(&nix);
        // Without modules (drivers built in), no initrd line.
        let h = parse(&probe_output("")).unwrap();
        assert!(
            !hardware_nix("n250", &h)
                .unwrap()
                .contains("availableKernelModules")
        );
    }
}
