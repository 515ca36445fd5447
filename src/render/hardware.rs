//! `hardware.nix`: what a detection found on a machine, as a NixOS module the
//! flake imports beside `modules/hardware/<profile>.nix` (written to
//! `hosts/<host>/hardware.nix`).
//!
//! Owns the module's text from plain data (`HardwareModule`, filled by the
//! hardware detection of a first install). What the machine reported is untrusted:
//! it reaches the file only as Nix comments (`nix::comment`) and Nix strings
//! (`nix::string`), never raw. It does not probe or parse anything.

use crate::render::format::Refused;
use crate::render::nix;

/// What hardware.nix records.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareModule {
    /// Lines for people (what wrote the file, CPU, disks, NICs): one `# `
    /// comment line each, leading spaces kept.
    pub comments: Vec<String>,
    /// The Nix system double, e.g. "x86_64-linux" (`nixpkgs.hostPlatform`).
    pub platform: String,
    /// Kernel modules the initrd needs to find the root disk.
    pub kernel_modules: Vec<String>,
}

/// The module's text.
pub fn hardware_nix(m: &HardwareModule) -> Result<String, Refused> {
    let mut out = String::new();
    for line in &m.comments {
        out.push_str(&format!("# {}\n", nix::comment(line)));
    }
    let platform = nix::string(&m.platform).map_err(|e| e.of("the detected platform"))?;
    let modules: Vec<String> = m
        .kernel_modules
        .iter()
        .map(|k| nix::string(k).map_err(|e| e.of("a detected kernel module")))
        .collect::<Result<_, _>>()?;
    let initrd = if modules.is_empty() {
        String::new()
    } else {
        format!(
            "  # The disk controllers' modules, so the initrd finds the root disk.\n  boot.initrd.availableKernelModules = [ {} ];\n",
            modules.join(" ")
        )
    };
    out.push_str(&format!(
        "{{ lib, ... }}:\n{{\n  nixpkgs.hostPlatform = lib.mkDefault {platform};\n{initrd}}}\n"
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(kernel_modules: &[&str]) -> HardwareModule {
        HardwareModule {
            comments: vec!["first".into(), "  two\nlines".into()],
            platform: "aarch64-linux".into(),
            kernel_modules: kernel_modules.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn comments_stay_comments_and_modules_are_strings() {
        let nix = hardware_nix(&module(&["nvme", "a\"b"])).unwrap();
        assert!(
            nix.starts_with("# first\n#   two\\nlines\n{ lib, ... }:\n"),
            "{nix}"
        );
        assert!(nix.contains("nixpkgs.hostPlatform = lib.mkDefault \"aarch64-linux\";"));
        assert!(
            nix.contains("availableKernelModules = [ \"nvme\" \"a\\\"b\" ];"),
            "{nix}"
        );
        crate::render::nix::assert_parses(&nix);
        assert!(
            !hardware_nix(&module(&[]))
                .unwrap()
                .contains("availableKernelModules")
        );
    }
}
