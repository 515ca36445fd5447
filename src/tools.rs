//! The external programs potato runs on the deployer, and finding them.
//!
//! Owns the one table of those programs (what each is for, which potato
//! commands need it, the Debian package and the nixpkgs attribute that provide
//! it), `find`, which looks a program up on PATH with the `which` crate, and
//! `MissingProgram`, the error a missing one ends in. Every local
//! `Command::new` of an external program takes its path from `find`.
//! Commands run over SSH on a host are not in this table; neither is the
//! user's `$EDITOR` (run through `sh`, which every system has).

use std::path::PathBuf;

use serde::Serialize;

/// An external program potato runs on the deployer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Program {
    Nix,
    Git,
    Tar,
    SshKeygen,
    Debugfs,
    QemuImg,
    NixInstantiate,
    NixStore,
    MkfsExt4,
    E2fsck,
    Sfdisk,
}

/// What the table says about one program.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Info {
    /// The executable's name on PATH.
    pub name: &'static str,
    /// What potato uses it for, a phrase after "it": "streams the ...".
    pub purpose: &'static str,
    /// The potato commands that run it (empty: only the test suite does).
    pub needed_by: &'static [&'static str],
    /// The Debian package that provides it.
    pub debian: &'static str,
    /// The nixpkgs attribute that provides it (`pkgs.<attr>`).
    pub nixos: &'static str,
}

/// A program potato needs that is not on PATH. `command` (the potato command
/// that needed it) is filled in at the edge, where the command is known.
#[derive(Debug, Clone, Serialize)]
pub struct MissingProgram {
    pub program: &'static str,
    pub purpose: &'static str,
    pub command: Option<String>,
    pub needed_by: &'static [&'static str],
    pub debian: &'static str,
    pub nixos: &'static str,
}

/// Whether a program is on PATH, and where.
#[derive(Debug, Clone, Serialize)]
pub struct Presence {
    pub program: Program,
    #[serde(flatten)]
    pub info: Info,
    /// The resolved path, None when missing.
    pub path: Option<PathBuf>,
}

const BUILDING: &[&str] = &[
    "potato build",
    "potato deploy",
    "potato status",
    "potato image",
    "potato flash",
    "potato bootstrap",
    "potato vm create",
];

impl Program {
    /// Every program, in the order `potato doctor` lists them.
    pub const ALL: [Program; 11] = [
        Program::Nix,
        Program::Git,
        Program::Tar,
        Program::SshKeygen,
        Program::Debugfs,
        Program::QemuImg,
        Program::NixInstantiate,
        Program::NixStore,
        Program::MkfsExt4,
        Program::E2fsck,
        Program::Sfdisk,
    ];

    /// The table. Debian packages as `dpkg -S` names them on Debian 12; nixpkgs
    /// attributes as in nixpkgs' all-packages.
    pub fn info(self) -> Info {
        let (name, purpose, needed_by, debian, nixos): (_, _, &'static [&'static str], _, _) =
            match self {
                Program::Nix => (
                    "nix",
                    "evaluates and builds the hosts' systems and images; lists closures to push",
                    BUILDING,
                    "nix-bin",
                    "nix",
                ),
                Program::Git => (
                    "git",
                    "lets Nix read a git checkout's flake; lists untracked files; records the bootstrapped commit",
                    &[
                        "potato build",
                        "potato deploy",
                        "potato status",
                        "potato bootstrap",
                    ],
                    "git",
                    "git",
                ),
                Program::Tar => (
                    "tar",
                    "streams the kexec installer to the machine",
                    &["potato bootstrap"],
                    "tar",
                    "gnutar",
                ),
                Program::SshKeygen => (
                    "ssh-keygen",
                    "pre-generates a host's SSH host key",
                    &["potato secrets hostkey"],
                    "openssh-client",
                    "openssh",
                ),
                Program::Debugfs => (
                    "debugfs",
                    "writes the pre-generated host key into an image's root filesystem",
                    &["potato image", "potato flash", "potato vm create"],
                    "e2fsprogs",
                    "e2fsprogs",
                ),
                Program::QemuImg => (
                    "qemu-img",
                    "opens qcow2 images to put the host key in",
                    &["potato image", "potato vm create"],
                    "qemu-utils",
                    "qemu-utils",
                ),
                Program::NixInstantiate => (
                    "nix-instantiate",
                    "parses generated Nix (the test suite)",
                    &[],
                    "nix-bin",
                    "nix",
                ),
                Program::NixStore => (
                    "nix-store",
                    "builds on and copies from a Nix remote builder of the deployer's `builders` (build_on)",
                    &["potato build", "potato deploy"],
                    "nix-bin",
                    "nix",
                ),
                Program::MkfsExt4 => (
                    "mkfs.ext4",
                    "makes ext4 test images (the test suite)",
                    &[],
                    "e2fsprogs",
                    "e2fsprogs",
                ),
                Program::E2fsck => (
                    "e2fsck",
                    "checks images the host key went into (the test suite)",
                    &[],
                    "e2fsprogs",
                    "e2fsprogs",
                ),
                Program::Sfdisk => (
                    "sfdisk",
                    "writes GPT test partition tables (the test suite)",
                    &[],
                    "fdisk",
                    "util-linux",
                ),
            };
        Info {
            name,
            purpose,
            needed_by,
            debian,
            nixos,
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }
}

/// The program's path on PATH (the `which` crate's lookup).
pub fn find(program: Program) -> Result<PathBuf, MissingProgram> {
    which::which(program.name()).map_err(|_| MissingProgram::of(program))
}

/// Every program in the table, found or not.
pub fn survey() -> Vec<Presence> {
    Program::ALL
        .iter()
        .map(|&program| Presence {
            program,
            info: program.info(),
            path: find(program).ok(),
        })
        .collect()
}

impl MissingProgram {
    pub fn of(program: Program) -> MissingProgram {
        let info = program.info();
        MissingProgram {
            program: info.name,
            purpose: info.purpose,
            command: None,
            needed_by: info.needed_by,
            debian: info.debian,
            nixos: info.nixos,
        }
    }

    /// Names the potato command that needed the program (at the edge).
    pub fn in_command(mut self, command: &str) -> MissingProgram {
        self.command = Some(command.to_string());
        self
    }

    /// How to install it, on Debian and on NixOS.
    pub fn hint(&self) -> String {
        format!(
            "install it: on Debian `apt-get install {}`; on NixOS add `pkgs.{}` to environment.systemPackages (or try `nix-shell -p {}`). `potato doctor` lists every program potato runs",
            self.debian, self.nixos, self.nixos
        )
    }
}

impl std::fmt::Display for MissingProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not installed (not found on PATH): ",
            self.program
        )?;
        match &self.command {
            Some(c) => write!(f, "`{c}` needs it")?,
            None => write!(f, "potato needs it")?,
        }
        write!(f, "; it {}", self.purpose)
    }
}

impl std::error::Error for MissingProgram {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_has_packages_and_a_distinct_name() {
        let mut names = std::collections::HashSet::new();
        for p in Program::ALL {
            let i = p.info();
            assert!(names.insert(i.name), "{} listed twice", i.name);
            assert!(!i.debian.is_empty() && !i.nixos.is_empty(), "{}", i.name);
            for c in i.needed_by {
                assert!(c.starts_with("potato "), "{c}");
            }
        }
    }

    #[test]
    fn the_error_names_program_command_and_both_packages() {
        let e = MissingProgram::of(Program::Nix).in_command("potato build");
        let text = format!("{e}\n{}", e.hint());
        for part in [
            "`nix`",
            "`potato build`",
            "apt-get install nix-bin",
            "pkgs.nix",
        ] {
            assert!(text.contains(part), "{part} missing in {text}");
        }
    }
}
