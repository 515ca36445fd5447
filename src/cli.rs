//! The command line: clap definitions and dispatch to `cmd::*`.
//! Parsing only; each command's work lives in its own module under `cmd/`.

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd;
use crate::error::Error;

/// potato: provision a small NixOS fleet from one TOML file per machine.
///
/// Host files live in hosts/<name>.toml. potato validates them, renders NixOS
/// modules into modules/generated/<name>/, builds them with Nix and deploys them
/// over SSH as NixOS generations that roll back by themselves when a deploy breaks
/// the host.
///
/// Exit codes: 0 success, 1 failure, 2 invalid input.
#[derive(Debug, Parser)]
#[command(name = "potato", version, max_term_width = 100, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  potato check                 validate every host file
  potato gen                   write modules/generated/ (commit it)
  potato gen --check           fail with a diff when generated files are stale
  potato plan n250             what n250 runs, exposes and costs
  potato deploy n250           build, push, activate, confirm
  potato deploy @media         every host tagged media";

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Repository root (default: the nearest directory upwards holding flake.nix).
    #[arg(long, global = true, value_name = "DIR", env = "POTATO_REPO")]
    pub repo: Option<Utf8PathBuf>,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate every host file and render in memory (no Nix needed).
    ///
    /// All problems of all hosts are reported together, each with file:line:col,
    /// the offending text underlined and a hint. Exit code 2 when any is found.
    Check(Hosts),
    /// Write modules/generated/<host>/ from the host files, or verify it (--check).
    Gen {
        #[command(flatten)]
        hosts: Hosts,
        /// Change nothing; exit 1 with a unified diff when files are stale.
        #[arg(long)]
        check: bool,
    },
    /// Show what a host runs: deploy settings, firewall, open ports, WireGuard
    /// peers, containers with their memory budget, secrets used.
    Plan {
        /// Host name.
        host: String,
        /// Also compare the exposure with the generation the host runs (over SSH).
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check the SSH and kernel baseline: each rule, pass or fail, on the
    /// generated files (what a deploy installs) and with --live on the running host.
    Audit {
        /// Host name.
        host: String,
        /// Also read the running host's effective values over SSH (`sshd -T`, sysctl).
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Build system closures with Nix (one invocation for all hosts).
    Build {
        #[command(flatten)]
        hosts: Hosts,
        #[command(flatten)]
        nix: NixArgs,
        /// Where to build, overriding the host files' build_on: local, target,
        /// or a builder (a host file's name or a configured Nix builder).
        #[arg(long, value_name = "local|target|HOST")]
        build_on: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Build, push, activate and confirm (HOSTS: names or @tags, or --all).
    ///
    /// Each host gets a new NixOS generation. With magic rollback (the default for
    /// switch and test), the host arms a watchdog before activating and returns to
    /// the generation it ran before unless potato confirms over a NEW SSH
    /// connection, after the host file's [[health]] checks pass, within the
    /// confirm timeout. Exit codes: 0 every host deployed or up to date, 1 a host
    /// failed or rolled back, 2 invalid input.
    Deploy(DeployArgs),
    /// Restore a previous generation.
    Rollback {
        host: String,
        /// Generation number (default: the one before the current).
        #[arg(long)]
        to: Option<u32>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List a host's generations (number, date, current, store path).
    Generations {
        host: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Running generation vs. what the repository would deploy.
    Status {
        #[command(flatten)]
        hosts: Hosts,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        nix: NixArgs,
    },
    /// Run a command on hosts in parallel, output prefixed by host.
    Exec {
        #[command(flatten)]
        hosts: Hosts,
        #[command(flatten)]
        conn: Connection,
        /// Hosts worked on at once.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Record a host's SSH host key in secrets/known_hosts after showing it.
    /// HOST is a host file's name, or an address (ADDR[:PORT]) such as a jump host.
    Trust {
        host: String,
        /// Replace the key(s) pinned for this host when it presents a different one.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Build the host's image (SD card, raw/ISO, Proxmox).
    Image {
        host: String,
        /// One kind only: sd (lepotato), raw-efi or iso (n250), qcow2 or vma (Proxmox VMs).
        #[arg(long)]
        kind: Option<String>,
        /// Copy the image files out of the Nix store into this directory.
        #[arg(long)]
        out: Option<camino::Utf8PathBuf>,
        #[command(flatten)]
        nix: NixArgs,
    },
    /// Write the host's card image to an SD card (or a file), then read it back
    /// and verify. Refuses partitions, mounted or fixed disks and the disk
    /// holding /; asks you to type the device unless --yes.
    Flash {
        host: String,
        /// The card's whole device (e.g. /dev/sdb, /dev/mmcblk0), or a file.
        device: camino::Utf8PathBuf,
        /// Flash this image file instead of building the host's.
        #[arg(long)]
        image: Option<camino::Utf8PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        nix: NixArgs,
    },
    /// Install NixOS on fresh hardware over SSH, up to a verified first boot.
    ///
    /// The machine runs any Linux with SSH (or the NixOS installer) and is
    /// reached with --target root@ADDR. Steps: detect (hardware.{json,nix},
    /// missing facts into the host file), host-key (pre-generated, secrets
    /// rekeyed), generate, installer (kexec into the NixOS installer unless it
    /// runs one; needs 1.5 GiB RAM), partition (boot disk: GPT, ESP + ext4 root;
    /// asks, or --yes; data disks only with --wipe), install, bootloader,
    /// reboot, reconnect (its own host key, at its address or found by MAC),
    /// verify (it booted exactly the built system; recorded for `potato
    /// status`). Progress is kept in .potato/bootstrap/HOST.json: run the
    /// command again to go on after a failure, --from STEP to go back.
    ///
    ///   potato bootstrap n250 --target root@192.168.178.99 --yes
    Bootstrap {
        host: String,
        /// Only detect the hardware (arch, RAM, CPU, disks, NICs) and compare it
        /// with the host file; writes hosts/HOST/hardware.{json,nix}.
        #[arg(long, conflicts_with_all = ["verify", "install"])]
        detect: bool,
        /// Only the last step: check that the host booted exactly the system the
        /// repo builds, and record the bootstrap (date, commit) on the host.
        #[arg(long, conflicts_with = "install")]
        verify: bool,
        /// Only install into a prepared, mounted target root (see --root):
        /// closure, system profile and the pre-generated host key.
        #[arg(long, requires = "root")]
        install: bool,
        /// The mounted target root for --install, e.g. /mnt.
        #[arg(long)]
        root: Option<String>,
        /// Wipe the boot disk without asking (the partition step asks on a
        /// terminal, and refuses elsewhere).
        #[arg(long)]
        yes: bool,
        /// Also format this data disk, named by its mount point or device in
        /// [storage].mounts (repeatable). Data disks are otherwise never touched.
        #[arg(long, value_name = "DISK")]
        wipe: Vec<String>,
        /// Go back to STEP: forget it and every later step, and run from there.
        #[arg(long, value_enum, value_name = "STEP")]
        from: Option<crate::bootstrap::Step>,
        /// Forget earlier progress (.potato/bootstrap/HOST.json) and start over.
        #[arg(long)]
        restart: bool,
        /// How long to wait for the machine to answer after kexec and reboot.
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        wait: String,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        nix: NixArgs,
    },
    /// Proxmox VMs for VM hosts.
    Vm {
        #[command(subcommand)]
        action: VmAction,
    },
    /// Age-encrypted secrets under secrets/.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// List the container catalog: every service a host file may name.
    Catalog,
    /// Print the JSON Schema of host files (docs/host.schema.json).
    Schema,
    /// Check this machine: the programs potato runs, Nix and its configuration.
    ///
    /// Lists every external program potato runs (found on PATH, or missing
    /// with the Debian package and the nixpkgs attribute that provide it) and
    /// which commands need each; the Nix version; whether nix.conf enables
    /// nix-command and flakes; the deployer's system and extra-platforms (which
    /// architectures it builds itself); whether each substituter answers
    /// (file:// has a nix-cache-info, http(s):// serves one) and each remote
    /// builder's SSH port accepts a connection (nothing logs in); and, inside a
    /// fleet repository, what builds each host's system. --json prints one
    /// document. Exit code 1 when a program some command needs is missing.
    #[command(after_long_help = "Examples:
  potato doctor                    what this machine has and lacks
  potato doctor --json             one document: .ok, .programs, .commands, .nix, .fleet
  NIX_CONF_DIR=DIR potato doctor   as Nix sees DIR/nix.conf")]
    Doctor,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct Hosts {
    /// Host names or @tags (default: every host).
    pub hosts: Vec<String>,
}

/// How to reach hosts over SSH.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Replace the host file's SSH target: USER@ADDR[:PORT] (one host only).
    #[arg(long, value_name = "USER@ADDR[:PORT]")]
    pub target: Option<String>,
    /// Private key to log in with (default: ssh-agent, then ~/.ssh/id_*).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Option<Utf8PathBuf>,
    /// known_hosts file (default: the repo's secrets/known_hosts, then ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<Utf8PathBuf>,
    /// Give up connecting after this long.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub connect_timeout: String,
    /// ssh_config file for Host aliases, HostName, User, Port, IdentityFile and
    /// ProxyJump (default: ~/.ssh/config).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<Utf8PathBuf>,
}

/// Passed through to Nix.
#[derive(Debug, Clone, Args)]
pub struct NixArgs {
    /// Override a flake input: NAME PATH (repeatable), e.g. nixpkgs ../nixpkgs.
    #[arg(long, num_args = 2, value_names = ["NAME", "PATH"], action = clap::ArgAction::Append)]
    pub override_input: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub hosts: Hosts,
    /// Every host.
    #[arg(long, conflicts_with = "hosts")]
    pub all: bool,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub nix: NixArgs,
    /// Activation mode, overriding the host files: switch, boot, test, dry-activate.
    #[arg(long, value_parser = ["switch", "boot", "test", "dry-activate"])]
    pub mode: Option<String>,
    /// Do not arm the rollback watchdog.
    #[arg(long)]
    pub no_magic_rollback: bool,
    /// How long the host waits for confirmation, overriding the host files.
    #[arg(long, value_name = "DURATION")]
    pub confirm_timeout: Option<String>,
    /// How long an activation may run before the host gives up on it.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub activation_timeout: String,
    /// Push and activate even when the host already runs this system.
    #[arg(long)]
    pub force: bool,
    /// Hosts deployed at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Compress closures on the wire with zstd: auto (when the host has zstd), yes, no.
    #[arg(long, default_value = "auto", value_parser = ["auto", "yes", "no"])]
    pub compress: String,
    /// Where to build, overriding the host files' build_on: local, target, or a
    /// builder (a host file's name or a configured Nix builder). Built
    /// elsewhere, only the derivations travel and nothing comes back here.
    #[arg(long, value_name = "local|target|HOST")]
    pub build_on: Option<String>,
    /// Do not let hosts fetch missing paths from their own substituters before
    /// the push (by default they do, when they have any).
    #[arg(long)]
    pub no_substitute: bool,
}

#[derive(Debug, Subcommand)]
// Parsed once per run; boxing the flattened argument groups buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum VmAction {
    /// Create the VM of a VM host through the Proxmox API, start it, and wait
    /// for SSH at the host's address.
    ///
    /// From the qcow2 (default): uploaded with content=import, the VM created
    /// with import-from. From the vma (--from vma): copied to the node over SSH
    /// (--node-ssh) and restored with qmrestore, then configured through the
    /// API. Either way the VM gets the host file's vmid, cores, memory, disk
    /// size, bridge and a disk serial (/dev/disk/by-id in the guest). A VM that
    /// exists and matches is left alone; a mismatch is reported, never changed.
    Create {
        host: String,
        #[command(flatten)]
        vm: VmArgs,
        /// Which image to create the VM from.
        #[arg(long, value_enum, default_value = "qcow2")]
        from: VmImage,
        /// Use this image file instead of building the host's.
        #[arg(long)]
        image: Option<camino::Utf8PathBuf>,
        /// SSH to the Proxmox node for --from vma (default: root@ the API's host).
        #[arg(long, value_name = "USER@ADDR[:PORT]")]
        node_ssh: Option<String>,
        /// How long to wait for the VM's SSH after starting it ("0s": do not wait).
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        wait: String,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        nix: NixArgs,
    },
    /// Show the VM: exists or not, running or not, and how it differs from the host file.
    Status {
        host: String,
        #[command(flatten)]
        vm: VmArgs,
    },
}

/// The image a VM is created from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VmImage {
    /// Uploaded through the API (content=import).
    Qcow2,
    /// Copied over SSH and restored with qmrestore.
    Vma,
}

#[derive(Debug, Args)]
pub struct VmArgs {
    /// Use this API base URL instead of [proxmox] api (e.g. through an SSH tunnel).
    #[arg(long)]
    pub api: Option<String>,
    /// The age identity that decrypts the API token (default: as for `potato secrets`).
    #[arg(long, value_name = "FILE")]
    pub age_identity: Option<camino::Utf8PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Decrypt, open $EDITOR, re-encrypt (refused if the editor fails).
    Edit {
        name: String,
        #[command(flatten)]
        scope: SecretScope,
    },
    /// Store a value read from stdin.
    Set {
        name: String,
        #[command(flatten)]
        scope: SecretScope,
    },
    /// Generate a value without printing it (a WireGuard key prints its public key).
    Gen {
        name: String,
        #[arg(long, value_enum)]
        kind: SecretKind,
        #[command(flatten)]
        scope: SecretScope,
    },
    /// Re-encrypt secrets whose recipients changed (admins, host keys, users).
    Rekey,
    /// Pre-generate a host's SSH host key (before bootstrap or an image): the
    /// private key is stored encrypted as secrets/HOST/ssh_host_ed25519_key.age,
    /// the public key recorded in secrets/recipients.toml, and secrets are
    /// rekeyed so the host decrypts them on first boot.
    Hostkey {
        host: String,
        /// Replace a key the host already has (it must then get the new key).
        #[arg(long)]
        force: bool,
    },
    /// List secrets, the hosts that use them, and whether they need a rekey.
    List,
}

/// Which file a secret name means.
#[derive(Debug, Args)]
pub struct SecretScope {
    /// The host's own secret: secrets/HOST/NAME.age.
    #[arg(long, conflicts_with = "shared")]
    pub host: Option<String>,
    /// A secret shared between hosts: secrets/shared/NAME.age.
    #[arg(long)]
    pub shared: bool,
    /// Replace an existing value (gen).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SecretKind {
    /// A WireGuard private key (its public key is printed for the host file).
    Wireguard,
    /// 32 characters from an unambiguous alphabet.
    Password,
    /// 32 random bytes, hex.
    Token,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The command as typed, without arguments: "potato vm create".
pub fn command_name(matches: &clap::ArgMatches) -> String {
    let mut name = String::from("potato");
    let mut m = matches;
    while let Some((sub, next)) = m.subcommand() {
        name.push(' ');
        name.push_str(sub);
        m = next;
    }
    name
}

/// Runs the parsed command. Returns the process exit code on success paths that
/// still want a non-zero code.
pub fn run(cli: Cli) -> Result<(), Error> {
    let g = &cli.global;
    match cli.command {
        Command::Check(h) => cmd::check::run(g, &h.hosts),
        Command::Gen { hosts, check } => cmd::generate::run(g, &hosts.hosts, check),
        Command::Plan { host, live, conn } => cmd::plan::run(g, &host, live, &conn),
        Command::Audit { host, live, conn } => cmd::audit::run(g, &host, live, &conn),
        Command::Catalog => cmd::catalog::run(g),
        Command::Schema => cmd::schema::run(),
        Command::Doctor => cmd::doctor::run(g),
        Command::Completions { shell } => {
            cmd::schema::completions(shell);
            Ok(())
        }
        Command::Build {
            hosts,
            nix,
            build_on,
            conn,
        } => cmd::deploy::build_command(g, &hosts.hosts, &nix, build_on.as_deref(), &conn),
        Command::Deploy(args) => cmd::deploy::run(g, &args),
        Command::Rollback { host, to, conn } => cmd::hosts::rollback(g, &host, to, &conn),
        Command::Generations { host, conn } => cmd::hosts::generations(g, &host, &conn),
        Command::Status { hosts, conn, nix } => cmd::hosts::status(g, &hosts.hosts, &conn, &nix),
        Command::Exec {
            hosts,
            conn,
            parallel,
            command,
        } => cmd::hosts::exec(g, &hosts.hosts, &conn, parallel, &command),
        Command::Trust {
            host,
            replace,
            conn,
        } => cmd::hosts::trust(g, &host, replace, &conn),
        Command::Image {
            host,
            kind,
            out,
            nix,
        } => cmd::image::run(g, &host, kind.as_deref(), out.as_deref(), &nix),
        Command::Flash {
            host,
            device,
            image,
            yes,
            nix,
        } => cmd::flash::run(
            g,
            &cmd::flash::FlashArgs {
                host: &host,
                device: &device,
                image: image.as_deref(),
                yes,
                nix: &nix,
            },
        ),
        Command::Bootstrap {
            host,
            detect,
            verify,
            install,
            root,
            yes,
            wipe,
            from,
            restart,
            wait,
            conn,
            nix,
        } => {
            if verify {
                cmd::bootstrap::verify(g, &host, &conn, &nix)
            } else if install {
                cmd::bootstrap::install(g, &host, root.as_deref().unwrap_or(""), &conn, &nix)
            } else if detect {
                cmd::bootstrap::detect(g, &host, &conn, &nix)
            } else {
                let wait = crate::units::parse_duration(&wait)
                    .map_err(|e| Error::usage(format!("--wait: {e}"), "e.g. --wait 10m"))?;
                let opts = cmd::bootstrap::Options {
                    yes,
                    wipe,
                    from,
                    restart,
                    wait,
                };
                cmd::bootstrap::run(g, &host, &conn, &nix, opts)
            }
        }
        Command::Vm { action } => cmd::vm::run(g, &action),
        Command::Secrets { action } => cmd::secrets::run(g, &action),
    }
}
