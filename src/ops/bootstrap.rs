//! The bootstrap step engine: from a machine running any Linux (or the NixOS
//! installer) with SSH to a host that booted exactly the system the
//! repository builds, in the steps of `bootstrap::Step`, each reported as it
//! runs and recorded in `.potato/bootstrap/HOST.json`, so a run after a failure
//! goes on where the last one stopped. `detect`, `install` and `verify` run one
//! step by hand. The pieces that are not steps (state, hardware, layout,
//! facts, reach) live in `bootstrap`; this module runs them against the
//! machine. Progress goes to the `Reporter`; results are returned.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use serde_json::json;

use super::fleet::Fleet;
use crate::bootstrap::hardware::{self, Hardware, Running};
use crate::bootstrap::layout::{Layout, TARGET_ROOT};
use crate::bootstrap::{MARKER, State, Step, facts, reach};
use crate::error::{Error, StateAction};
use crate::host::paths::KEXEC_DIR;
use crate::host::push::{self, Compress, PushEvent};
use crate::host::{HostError, Remote};
use crate::plan::{HostPlan, Target};
use crate::ui::{Reporter, confirm_by_typing};
use crate::units::format_mib;

/// The kexec installer needs this much RAM (nixos-anywhere's documented minimum;
/// swap does not count).
pub const KEXEC_MIN_RAM_MIB: u64 = 1536;

/// What the command line asks of a bootstrap.
#[derive(Debug, Clone)]
pub struct Options {
    pub yes: bool,
    pub wipe: Vec<String>,
    pub from: Option<Step>,
    pub restart: bool,
    pub wait: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            yes: false,
            wipe: Vec::new(),
            from: None,
            restart: false,
            wait: Duration::from_secs(600),
        }
    }
}

/// A whole bootstrap, done.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    pub host: String,
    pub target: String,
    pub done: std::collections::BTreeMap<Step, String>,
}

/// What `detect` found: the hardware, and the facts that disagree with the
/// host file.
#[derive(Debug, Clone, Serialize)]
pub struct Detected {
    pub host: String,
    pub hardware: Hardware,
    pub problems: Vec<String>,
    #[serde(skip)]
    file: Utf8PathBuf,
}

impl Detected {
    /// Facts that disagree with the host file stop a bootstrap.
    pub fn refuse_problems(&self) -> Result<(), Error> {
        if self.problems.is_empty() {
            return Ok(());
        }
        Err(Error::Host {
            host: self.host.clone(),
            message: format!(
                "{} fact(s) disagree with {}; fix the host file or use the right machine",
                self.problems.len(),
                self.file
            ),
        })
    }
}

/// What `install` put into the root.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub system: String,
    pub pushed: usize,
}

/// One bootstrap in progress: the fleet, the host, the machine, the state.
struct Run {
    fleet: Fleet,
    report: Reporter,
    plan: HostPlan,
    opts: Options,
    state: State,
    target: Target,
}

/// The whole bootstrap, resuming where the last run stopped.
pub fn run(fleet: Fleet, host: &str, opts: Options, report: &Reporter) -> Result<Finished, Error> {
    let plan = fleet.host(host)?;
    let mut state = if opts.restart {
        State::default()
    } else {
        State::load(&fleet.root, host).map_err(|e| state_error(host, StateAction::Read, e))?
    };
    if let Some(step) = opts.from {
        state.forget_from(step);
    }
    // The machine: --target, else where the last run left it.
    let target = match &fleet.connect_settings().target {
        Some(_) => machine(&fleet, "")?,
        None if !state.target.is_empty() => state
            .saved_target()
            .map_err(|e| state_error(host, StateAction::Read, e))?,
        None => machine(&fleet, "")?,
    };
    state.target = target.to_string();
    // The layout is checked before anything changes (a wrong --wipe, an image
    // host). A disk host without a boot disk gets one from the detection.
    let detect_fills_it = plan.storage.boot_disk.is_none()
        && plan.hardware == crate::inventory::schema::Hardware::N250;
    if detect_fills_it {
        crate::bootstrap::layout::data_disks(&plan, &opts.wipe)
            .map_err(|e| layout_error(&plan, e))?;
    } else {
        Layout::new(&plan, &opts.wipe).map_err(|e| layout_error(&plan, e))?;
    }
    let mut run = Run {
        fleet,
        report: report.clone(),
        plan,
        opts,
        state,
        target,
    };
    for step in Step::ALL {
        // Verification always runs: it is cheap, and it is the truth.
        if run.state.is_done(step) && step != Step::Verify {
            run.say(step, "done earlier");
            continue;
        }
        run.step(step)?;
        run.state.mark(step);
        run.state
            .save(&run.fleet.root, &run.plan.name)
            .map_err(|e| state_error(&run.plan.name, StateAction::Record, e))?;
    }
    Ok(Finished {
        host: run.plan.name.clone(),
        target: run.state.target.clone(),
        done: run.state.done.clone(),
    })
}

/// Only the hardware detection (`--detect`), at `--target`.
pub fn detect(fleet: Fleet, host: &str, report: &Reporter) -> Result<Detected, Error> {
    let target = machine(&fleet, "--detect")?;
    single(fleet, host, target, report)?.detect()
}

/// Only the install into a prepared, mounted root (`--install --root DIR`).
pub fn install(
    fleet: Fleet,
    host: &str,
    root_dir: &str,
    report: &Reporter,
) -> Result<Installed, Error> {
    let target = machine(&fleet, "--install --root /mnt")?;
    let run = single(fleet, host, target, report)?;
    if !root_dir.starts_with('/') || root_dir == "/" {
        return Err(Error::usage(
            format!("--root {root_dir}: give the mounted target root, e.g. /mnt"),
            "never / (that is the running system)",
        ));
    }
    let (system, pushed) = run.install_into(root_dir)?;
    Ok(Installed { system, pushed })
}

/// Only the last step (`--verify`), at the host file's address (or --target):
/// the bootstrap record written on the host.
pub fn verify(fleet: Fleet, host: &str, report: &Reporter) -> Result<serde_json::Value, Error> {
    let (_, target) = fleet.one(host)?;
    single(fleet, host, target, report)?.verify()
}

/// A run of one step by hand, at `target`.
fn single(fleet: Fleet, host: &str, target: Target, report: &Reporter) -> Result<Run, Error> {
    let plan = fleet.host(host)?;
    Ok(Run {
        fleet,
        report: report.clone(),
        plan,
        opts: Options::default(),
        state: State::default(),
        target,
    })
}

/// The progress file of `host` could not be read or recorded (exit 1).
fn state_error(host: &str, action: StateAction, source: crate::bootstrap::StateError) -> Error {
    Error::StateFile {
        file: State::rel(host),
        action,
        source,
    }
}

/// The machine being bootstrapped: `--target`, required (it is not yet at the
/// host file's address). `step` shows in the example.
fn machine(fleet: &Fleet, step: &str) -> Result<Target, Error> {
    let Some(given) = fleet.connect_settings().target.as_deref() else {
        let step = if step.is_empty() {
            String::new()
        } else {
            format!(" {step}")
        };
        return Err(Error::usage(
            "bootstrap needs --target root@ADDR (the machine as it runs now)",
            format!("e.g. potato bootstrap n250{step} --target root@192.168.178.99"),
        ));
    };
    crate::resolve::parse_target(given).map_err(|e| Error::usage(e, "write root@ADDR"))
}

fn layout_error(plan: &HostPlan, e: crate::bootstrap::layout::LayoutError) -> Error {
    use crate::bootstrap::layout::LayoutError;
    let hint = match e {
        LayoutError::NoBootDisk { .. }
            if plan.hardware != crate::inventory::schema::Hardware::N250 =>
        {
            format!(
                "{} is installed from its image: `potato image {0}` (then `potato flash` or `potato vm create`)",
                plan.name
            )
        }
        LayoutError::NoBootDisk { .. } => format!(
            "set storage.boot_disk in {} (`potato bootstrap {} --detect --target ...` lists the disks)",
            plan.file, plan.name
        ),
        LayoutError::UnknownWipe { .. } => {
            "name a mount point or device from [storage].mounts".into()
        }
        LayoutError::UnsupportedFs { .. } => "format that disk by hand".into(),
        LayoutError::Unwritable(_) => format!("change that value in {}", plan.file),
    };
    Error::usage(e.to_string(), hint)
}

impl Run {
    fn step(&mut self, step: Step) -> Result<(), Error> {
        self.say(step, "");
        match step {
            Step::Detect => self.detect_step(),
            Step::HostKey => self.host_key(),
            Step::Generate => self.generate(),
            Step::Installer => self.installer(),
            Step::Partition => self.partition(),
            Step::Install => self.install_into(TARGET_ROOT).map(drop),
            Step::Bootloader => self.bootloader(),
            Step::Reboot => self.reboot(),
            Step::Reconnect => self.reconnect(),
            Step::Verify => self.verify().map(drop),
        }
    }

    /// "[3/10] generate: ..." (not in --json or --quiet).
    fn say(&self, step: Step, text: &str) {
        self.report
            .step(step.number(), Step::ALL.len(), step.name(), text);
    }

    fn note(&self, text: &str) {
        self.report.note(&format!("      {text}"));
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        Error::Host {
            host: self.plan.name.clone(),
            message: message.into(),
        }
    }

    fn connect(&self) -> Result<Remote, Error> {
        self.fleet.connect(&self.plan.name, &self.target)
    }

    /// A failure on the machine, its typed error kept.
    fn remote_err(&self, e: HostError) -> Error {
        Error::remote(&self.plan.name, e)
    }

    /// `s` as one shell word (NUL cannot be one).
    fn q(&self, s: &str) -> Result<String, Error> {
        crate::render::format::sh::word(s).map_err(|e| self.fail(e.to_string()))
    }

    /// Runs `script` on the machine; its output, or an error naming `what`.
    fn sh(&self, remote: &Remote, what: &str, script: &str) -> Result<String, Error> {
        let out = remote.run(script).map_err(|e| self.remote_err(e))?;
        if out.code != 0 {
            return Err(self.fail(format!("{what}: {}", out.stderr.trim())));
        }
        Ok(out.stdout)
    }

    fn probe(&self, remote: &Remote) -> Result<(Hardware, Running), Error> {
        let out = self.sh(remote, "hardware detection", &hardware::probe())?;
        let hw =
            hardware::parse(&out).map_err(|e| self.fail(format!("hardware detection: {e}")))?;
        Ok((hw, hardware::parse_running(&out)))
    }

    /// hosts/<host>/hardware.json as `detect` wrote it (read without
    /// following links), if it is there and parses.
    fn saved_hardware(&self) -> Option<Hardware> {
        let rel = Utf8PathBuf::from("hosts")
            .join(&self.plan.name)
            .join("hardware.json");
        let text = crate::fsguard::RepoFs::open(&self.fleet.root)
            .ok()?
            .read_string(&rel)
            .ok()??;
        serde_json::from_str(&text).ok()
    }

    // ---- the steps ----

    fn detect(&mut self) -> Result<Detected, Error> {
        let remote = self.connect()?;
        let (hw, running) = self.probe(&remote)?;
        let dir = Utf8PathBuf::from("hosts").join(&self.plan.name);
        let json = serde_json::to_string_pretty(&hw).expect("facts serialize") + "\n";
        let fs = crate::fsguard::RepoFs::open(&self.fleet.root)?;
        fs.write_atomic(&dir.join("hardware.json"), json.as_bytes(), 0o644)?;
        fs.write_atomic(
            &dir.join("hardware.nix"),
            hardware::hardware_nix(&self.plan.name, &hw)
                .map_err(|e| self.fail(format!("writing hardware.nix: {e}")))?
                .as_bytes(),
            0o644,
        )?;
        let host = self.plan.name.clone();
        self.report.say(&format!(
                "{host}: {} · {} ({} cores) · {} RAM · {} disk(s) · {} NIC(s) · {}; wrote hosts/{host}/hardware.json and hardware.nix",
                hw.arch,
                hw.cpu_model,
                hw.cpu_cores,
                format_mib(hw.memory_mib),
                hw.disks.len(),
                hw.nics.len(),
                if running.installer {
                    "NixOS installer".to_string()
                } else {
                    running.os.clone()
                }
            ));
        let new = match facts::missing(&self.plan, &hw) {
            Ok(new) => new,
            Err(why) => {
                // Not fatal here: the partition step asks for the boot disk.
                self.note(&format!("note: {why}"));
                Vec::new()
            }
        };
        if !new.is_empty() {
            facts::write(&self.fleet.root, &self.plan.file, &new).map_err(|e| match e {
                facts::WriteError::Fs(e) => Error::from(e),
                e => Error::usage(e.to_string(), "fix the host file"),
            })?;
            for f in &new {
                self.note(&format!(
                    "wrote {}.{} = \"{}\" into {}",
                    f.table, f.key, f.value, self.plan.file
                ));
            }
            self.fleet.reload()?;
            self.plan = self.fleet.host(&host)?;
        }
        let problems = hardware::compare(&self.plan, &hw);
        for p in &problems {
            self.report.say(&format!("  ! {p}"));
        }
        Ok(Detected {
            host,
            hardware: hw,
            problems,
            file: self.plan.file.clone(),
        })
    }

    /// The detect step: facts that disagree with the host file stop the run.
    fn detect_step(&mut self) -> Result<(), Error> {
        self.detect()?.refuse_problems()
    }

    fn host_key(&mut self) -> Result<(), Error> {
        if self.key_file().exists() {
            self.note(&format!("kept {}", self.key_file()));
            return Ok(());
        }
        // A key recorded without its private half belongs to the system this
        // bootstrap replaces: the pre-generated key takes its place.
        let replaced = !self.public_host_key().is_empty();
        let made = super::secrets::host_key(&self.fleet.root, &self.plan.name, true)?;
        self.note(&format!(
            "{} recorded in secrets/recipients.toml{}; secrets rekeyed",
            made.public,
            if replaced {
                " (replacing the old system's key)"
            } else {
                ""
            }
        ));
        Ok(())
    }

    fn generate(&mut self) -> Result<(), Error> {
        let done = super::generate::write(&self.fleet, &[])?;
        for f in &done.written.left_alone {
            self.report.warn(&format!(
                "warning: left {f} alone: potato did not write it, so it does not delete it (remove it by hand if it is not needed)"
            ));
        }
        // The layout the partition step uses, with --wipe, as disko reads it.
        let layout =
            Layout::new(&self.plan, &self.opts.wipe).map_err(|e| layout_error(&self.plan, e))?;
        let rel = crate::bootstrap::State::rel(&self.plan.name).with_extension("disko.nix");
        let disko = layout
            .disko_nix(self.plan.file.as_str())
            .map_err(|e| layout_error(&self.plan, e.into()))?;
        crate::fsguard::RepoFs::open(&self.fleet.root)?.write_atomic(
            &rel,
            disko.as_bytes(),
            0o644,
        )?;
        let file = self.fleet.root.join(&rel);
        self.note(&format!(
            "modules/generated/ up to date; this run's layout: {file}"
        ));
        Ok(())
    }

    fn installer(&mut self) -> Result<(), Error> {
        let remote = self.connect()?;
        let (hw, running) = self.probe(&remote)?;
        if running.installer {
            self.note("the machine runs the NixOS installer");
            return Ok(());
        }
        if hw.memory_mib < KEXEC_MIN_RAM_MIB {
            return Err(Error::HostUnfit {
                host: self.plan.name.clone(),
                message: format!(
                    "{} runs {} with {} of RAM; the kexec installer needs at least {} (swap does not count)",
                    self.plan.name,
                    if running.os.is_empty() {
                        "Linux"
                    } else {
                        &running.os
                    },
                    format_mib(hw.memory_mib),
                    format_mib(KEXEC_MIN_RAM_MIB)
                ),
                hint: format!(
                    "take the image route: `potato image {0} --kind iso`, boot the machine from it, then `potato bootstrap {0} --target root@ADDR`",
                    self.plan.name
                ),
            });
        }
        for tool in ["tar", "cpio", "setsid"] {
            if !running.tools.contains(tool) {
                return Err(self.fail(format!(
                    "{tool} is missing on the machine; the kexec step needs tar, cpio and setsid (install them, or boot the installer ISO)"
                )));
            }
        }
        if self.target.user.as_deref().unwrap_or("root") != "root" {
            return Err(Error::usage("kexec needs root", "use --target root@ADDR"));
        }
        self.note(&format!(
            "{} is not an installer; building and booting the kexec installer",
            if running.os.is_empty() {
                "the machine"
            } else {
                &running.os
            }
        ));
        let tree = super::image::build_output(&self.fleet, &self.plan.name, "kexec", &self.report)?;
        self.upload_kexec(&remote, &tree)?;
        let out = self.sh(
            &remote,
            "starting the kexec installer",
            &format!("sh {KEXEC_DIR}/run"),
        )?;
        self.note(out.trim());
        drop(remote);
        let remote = self.wait_for_host_key(false)?;
        let (_, running) = self.probe(&remote)?;
        if !running.installer {
            return Err(self.fail(
                "after kexec the machine answers with its host key but is not the NixOS installer",
            ));
        }
        Ok(())
    }

    /// The kexec tree and, under extra/potato, the host key and login keys.
    fn upload_kexec(&self, remote: &Remote, tree: &Utf8Path) -> Result<(), Error> {
        // tar streams the tree (kernel and initrd are hundreds of MB) straight
        // into the SSH channel; the bar counts against the files' total size.
        let total: u64 = tree
            .read_dir_utf8()
            .map_err(|e| Error::io(tree, e))?
            .flatten()
            .filter_map(|e| std::fs::metadata(e.path()).ok())
            .map(|m| m.len())
            .sum();
        let mut tar = std::process::Command::new(crate::tools::find(crate::tools::Program::Tar)?)
            .args(["-c", "-h", "-C", tree.as_str(), "."])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| self.fail(format!("tar: {e}")))?;
        let mut stream = tar.stdout.take().expect("stdout is piped");
        let unpack = format!(
            "rm -rf {KEXEC_DIR} && mkdir -p {KEXEC_DIR}/extra/potato && tar -x -C {KEXEC_DIR} && chmod -R u+w {KEXEC_DIR}"
        );
        self.note(&format!(
            "sending the kexec installer ({})",
            crate::units::format_mib(total >> 20)
        ));
        let host = self.plan.name.as_str();
        // tar's headers make the stream a little longer than the files.
        let out = remote
            .run_with(&unpack, &mut stream, &mut |n| {
                self.report.bytes(host, "send", n.min(total), total)
            })
            .map_err(|e| self.remote_err(e))?;
        let local = tar
            .wait_with_output()
            .map_err(|e| self.fail(format!("tar: {e}")))?;
        if !local.status.success() {
            return Err(self.fail(format!(
                "tar of {tree}: {}",
                String::from_utf8_lossy(&local.stderr).trim()
            )));
        }
        if out.code != 0 {
            return Err(self.fail(format!(
                "unpacking the kexec installer: {}",
                out.stderr.trim()
            )));
        }
        let private = self.private_host_key()?;
        let authorized = crate::render::format::sshd::authorized_keys_file(
            self.plan.ssh.authorized_keys.iter().map(String::as_str),
        )
        .map_err(|e| self.fail(e.to_string()))?;
        let keys = format!(
            "umask 077 && cat > {KEXEC_DIR}/extra/potato/ssh_host_ed25519_key && printf '%s\\n' {} > {KEXEC_DIR}/extra/potato/ssh_host_ed25519_key.pub && printf '%s\\n' {} > {KEXEC_DIR}/extra/potato/authorized_keys",
            self.q(&format!(
                "{} root@{}",
                self.public_host_key(),
                self.plan.name
            ))?,
            self.q(authorized.trim_end())?,
        );
        self.send(
            remote,
            &keys,
            &private,
            "handing the host key to the installer",
        )
    }

    /// Runs `script` with `input` on its stdin (never in an argv).
    fn send(&self, remote: &Remote, script: &str, input: &[u8], what: &str) -> Result<(), Error> {
        let out = remote
            .run_with(script, &mut &input[..], &mut |_| {})
            .map_err(|e| self.remote_err(e))?;
        if out.code != 0 {
            return Err(self.fail(format!("{what}: {}", out.stderr.trim())));
        }
        Ok(())
    }

    fn partition(&mut self) -> Result<(), Error> {
        let layout =
            Layout::new(&self.plan, &self.opts.wipe).map_err(|e| layout_error(&self.plan, e))?;
        let disk = self.describe_disk(&layout.boot_disk);
        let mut doomed = vec![format!("boot disk {disk}")];
        doomed.extend(
            layout
                .wipe
                .iter()
                .map(|d| format!("{} ({})", d.device, d.mount_point)),
        );
        confirm_by_typing(
            self.opts.yes,
            &format!(
                "refusing to wipe {} of {} without confirmation",
                doomed.join(" and "),
                self.plan.name
            ),
            &format!("Everything on {} is lost.", doomed.join(" and ")),
            &self.plan.name,
        )?;
        for d in &layout.keep {
            self.note(&format!(
                "keeping {} ({}) as it is",
                d.device, d.mount_point
            ));
        }
        let remote = self.connect()?;
        let (_, running) = self.probe(&remote)?;
        if !running.installer {
            return Err(self.fail("the machine is not running the NixOS installer; run the installer step again (--from installer)"));
        }
        let script = layout
            .partition_script()
            .map_err(|e| layout_error(&self.plan, e.into()))?;
        let out = remote
            .run_with("sh -s", &mut script.as_bytes(), &mut |_| {})
            .map_err(|e| self.remote_err(e))?;
        for line in out.stdout.lines() {
            if let Some(s) = line.strip_prefix("@@step ") {
                self.note(s);
            }
        }
        match out.code {
            0 => Ok(()),
            10 | 11 => Err(self.fail(format!("{} (nothing was changed)", out.stderr.trim()))),
            c => Err(self.fail(format!(
                "partitioning failed (exit {c}): {}",
                out.stderr.trim()
            ))),
        }
    }

    /// "/dev/disk/by-id/... (Samsung SSD 980, 500.1 GB)" from hardware.json.
    fn describe_disk(&self, by_id: &str) -> String {
        let hw = self.saved_hardware();
        let found = hw.and_then(|h| {
            h.disks
                .into_iter()
                .find(|d| d.by_id.iter().any(|i| i == by_id))
        });
        match found {
            Some(d) => format!(
                "{by_id} ({}, {:.1} GB)",
                if d.model.is_empty() {
                    &d.name
                } else {
                    &d.model
                },
                d.size_bytes as f64 / 1e9
            ),
            None => by_id.to_string(),
        }
    }

    fn key_file(&self) -> Utf8PathBuf {
        self.fleet.root.join(format!(
            "secrets/{}/ssh_host_ed25519_key.age",
            self.plan.name
        ))
    }

    fn private_host_key(&self) -> Result<Vec<u8>, Error> {
        match super::secrets::pregenerated_host_key(&self.fleet.root, &self.plan.name, None)? {
            Some((private, _)) => Ok(private),
            None => Err(Error::usage(
                format!(
                    "{} has no pre-generated host key ({} is missing)",
                    self.plan.name,
                    self.key_file()
                ),
                format!("run `potato secrets hostkey {}` first", self.plan.name),
            )),
        }
    }

    /// "ssh-ed25519 AAAA..." recorded for the host.
    fn public_host_key(&self) -> String {
        crate::secrets::store::Recipients::load(&self.fleet.root)
            .ok()
            .and_then(|r| r.hosts.get(&self.plan.name).cloned())
            .unwrap_or_default()
    }

    /// Closure, profile, /etc/NIXOS and host key into `root_dir`; returns the
    /// system and how many paths were pushed.
    fn install_into(&self, root_dir: &str) -> Result<(String, usize), Error> {
        let private = self.private_host_key()?;
        let public = self.public_host_key();
        let built = self.build()?;
        let system = built[&self.plan.name].clone();
        let mut remote = self.connect()?;
        remote.set_store_root(root_dir);
        // The one push pipeline (as deploy's): only what the target store
        // lacks, zstd-compressed when the machine has zstd; its events in
        // deploy's words (a note, then "push" bytes).
        let host = self.plan.name.as_str();
        let pushed = push::push_closure(&remote, &system, Compress::Auto, &mut |e| {
            if let Some(line) = e.describe() {
                self.note(&format!("{line} into {root_dir}"));
            }
            if let PushEvent::Progress { done, total } = e {
                self.report.bytes(host, "push", done, total);
            }
        })
        .map_err(|e| match e {
            push::PushError::Host(e) => self.remote_err(e),
            push::PushError::Closure { source, .. } => (*source).into(),
            e => self.fail(e.to_string()),
        })?;
        let count = pushed.paths;
        let q = |s: &str| self.q(s);
        let profile = format!("{root_dir}{}", crate::host::paths::SYSTEM_PROFILE);
        let script = format!(
            "nix-env --store {r} -p {p} --set {s} && mkdir -p {r}/etc && touch {r}/etc/NIXOS \
             && umask 077 && mkdir -p {r}/etc/ssh \
             && cat > {r}/etc/ssh/ssh_host_ed25519_key.new && chmod 0600 {r}/etc/ssh/ssh_host_ed25519_key.new \
             && mv {r}/etc/ssh/ssh_host_ed25519_key.new {r}/etc/ssh/ssh_host_ed25519_key \
             && printf '%s\\n' {pubkey} > {r}/etc/ssh/ssh_host_ed25519_key.pub && chmod 0644 {r}/etc/ssh/ssh_host_ed25519_key.pub",
            r = q(root_dir)?,
            p = q(&profile)?,
            s = q(system.as_str())?,
            pubkey = q(&format!("{public} root@{}", self.plan.name))?,
        );
        // The private key travels on stdin, never in an argv.
        self.send(
            &remote,
            &script,
            &private,
            &format!("installing into {root_dir}"),
        )?;
        self.note(&format!(
            "{system} installed into {root_dir} ({count} paths pushed, host key 0600)"
        ));
        Ok((system.to_string(), count))
    }

    /// The host's system, built (warnings through the reporter).
    fn build(&self) -> Result<std::collections::BTreeMap<String, crate::nix::StorePath>, Error> {
        let report = &self.report;
        super::deploy::build(
            &self.fleet,
            std::slice::from_ref(&self.plan.name),
            &mut |l| report.warn(l),
        )
    }

    fn bootloader(&mut self) -> Result<(), Error> {
        let remote = self.connect()?;
        let r = TARGET_ROOT;
        let script = format!(
            "command -v nixos-enter >/dev/null || {{ echo 'nixos-enter is missing: not a NixOS installer' >&2; exit 3; }}; \
             mountpoint -q {r} || {{ echo '{r} is not mounted (run again with --from partition)' >&2; exit 3; }}; \
             mkdir -p {r}/dev {r}/proc {r}/sys {r}/etc && ln -sfn /proc/mounts {r}/etc/mtab && \
             NIXOS_INSTALL_BOOTLOADER=1 nixos-enter --root {r} -c '/nix/var/nix/profiles/system/bin/switch-to-configuration boot'"
        );
        let out = self.sh(&remote, "installing the bootloader", &script)?;
        self.report.detail(&format!("      {}", out.trim()));
        Ok(())
    }

    fn reboot(&mut self) -> Result<(), Error> {
        // The host key the installed system will answer with, trusted now.
        self.trust_host_key(&self.target.host.clone(), self.target.port.unwrap_or(22))?;
        let remote = self.connect()?;
        let script = format!(
            "sync; umount -R {TARGET_ROOT} 2>/dev/null; setsid sh -c 'sleep 1; reboot' </dev/null >/dev/null 2>&1 & echo rebooting"
        );
        self.sh(&remote, "rebooting", &script)?;
        Ok(())
    }

    fn reconnect(&mut self) -> Result<(), Error> {
        let remote = self.wait_for_host_key(true)?;
        drop(remote);
        self.note(&format!(
            "the host answers at {} with its own host key",
            self.target
        ));
        Ok(())
    }

    fn verify(&self) -> Result<serde_json::Value, Error> {
        let host = &self.plan.name;
        let built = self.build()?;
        let expected = built[host].to_string();
        let remote = self.connect()?;
        let booted = self
            .sh(
                &remote,
                "reading the booted system",
                "readlink -e /run/booted-system 2>/dev/null || echo none",
            )?
            .trim()
            .to_string();
        if booted != expected {
            return Err(self.fail(format!(
                "the host booted {booted}, but the repository builds {expected}: not bootstrapped (reboot into the installed system, or install again)"
            )));
        }
        let commit = crate::tools::find(crate::tools::Program::Git)
            .ok()
            .and_then(|git| {
                std::process::Command::new(git)
                    .args([
                        "-C",
                        self.fleet.root.as_str(),
                        "rev-parse",
                        "--short",
                        "HEAD",
                    ])
                    .output()
                    .ok()
            })
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "(not a git checkout)".into());
        let record = json!({
            "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "commit": commit,
            "system": expected,
        });
        let script = format!(
            "mkdir -p {} && printf '%s\\n' {} > {MARKER}.new && mv {MARKER}.new {MARKER}",
            crate::host::paths::STATE_DIR,
            self.q(&record.to_string())?
        );
        self.sh(&remote, "recording the bootstrap", &script)?;
        self.report.say(&format!(
            "{host}: booted {expected}; bootstrap recorded (commit {commit})"
        ));
        Ok(record)
    }

    // ---- finding the machine again ----

    /// Records the pre-generated host key for ADDR in the trust file (once).
    fn trust_host_key(&self, addr: &str, port: u16) -> Result<(), Error> {
        let public = self.public_host_key();
        let mut parts = public.split_whitespace();
        let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
            return Err(
                self.fail("no host key recorded in secrets/recipients.toml (host-key step)")
            );
        };
        let opts = self.fleet.ssh_options()?;
        let name = crate::ssh::known_hosts_name(addr, port);
        let line = format!("{name} {kind} {b64}");
        let known = std::fs::read_to_string(&opts.trust_file).unwrap_or_default();
        if known.lines().any(|l| l.trim() == line) {
            return Ok(());
        }
        let key = crate::ssh::HostKey {
            key_type: kind.to_string(),
            base64: b64.to_string(),
            fingerprint: String::new(),
        };
        crate::ssh::record_host_key(&opts.trust_file, addr, port, &key)
            .map_err(|e| Error::io(&opts.trust_file, e))
    }

    /// Waits until the machine answers SSH with the pre-generated host key: at
    /// the current target, the host file's address, or (after half the wait)
    /// wherever its MAC answers on the /24. `after_install`: the installed
    /// system (the host file's address counts), else the kexec installer.
    fn wait_for_host_key(&mut self, after_install: bool) -> Result<Remote, Error> {
        let port = self.target.port.unwrap_or(22);
        let mut candidates = vec![self.target.clone()];
        if after_install && self.plan.deploy.target.host != self.target.host {
            candidates.push(Target {
                user: self.target.user.clone(),
                ..self.plan.deploy.target.clone()
            });
        }
        let want = self.public_host_key();
        let want_b64 = want.split_whitespace().nth(1).unwrap_or("").to_string();
        for c in &candidates {
            self.trust_host_key(&c.host, c.port.unwrap_or(port))?;
        }
        self.note(&format!(
            "waiting up to {} for SSH with the host key at {}",
            humantime::format_duration(self.opts.wait),
            candidates
                .iter()
                .map(|c| c.host.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        ));
        let start = std::time::Instant::now();
        let mut scanned = false;
        loop {
            for c in &candidates {
                if let Some(remote) = self.try_connect(c, &want_b64, !after_install) {
                    self.target = c.clone();
                    self.state.target = c.to_string();
                    return Ok(remote);
                }
            }
            let half = start.elapsed() >= self.opts.wait / 2;
            if half && !scanned {
                scanned = true;
                if let Some(found) = self.find_by_mac(port) {
                    self.note(&format!("not at its address; its MAC answers at {found}"));
                    self.trust_host_key(&found, port)?;
                    candidates.push(Target {
                        user: self.target.user.clone(),
                        host: found,
                        port: self.target.port,
                    });
                    continue;
                }
            }
            if start.elapsed() >= self.opts.wait {
                return Err(self.fail(format!(
                    "no SSH with the host key at {} within {} (nor by MAC on the LAN); check the console, then run bootstrap again to go on",
                    candidates.iter().map(|c| c.host.as_str()).collect::<Vec<_>>().join(", "),
                    humantime::format_duration(self.opts.wait)
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A session at `t` whose host key is `want_b64`, or None.
    fn try_connect(&self, t: &Target, want_b64: &str, installer: bool) -> Option<Remote> {
        let mut opts = self.fleet.ssh_options().ok()?;
        opts.known_hosts.insert(0, opts.trust_file.clone());
        opts.connect_timeout = Duration::from_secs(3);
        let remote = Remote::connect(t, &opts).ok()?;
        let key = remote.host_key()?;
        if key.base64 != want_b64 {
            return None;
        }
        // The installer and the installed system answer with the same key:
        // which one this is tells a reboot that has not happened yet.
        // A machine that reboots right now can take its address away
        // mid-command (no FIN): the probe gives up and the wait goes on.
        let out = remote
            .run_within(
                "grep -Eq '^VARIANT_ID=\"?installer' /etc/os-release && echo installer || echo system",
                Duration::from_secs(10),
            )
            .ok()?;
        if (out.stdout.trim() == "installer") != installer {
            return None;
        }
        Some(remote)
    }

    fn find_by_mac(&self, port: u16) -> Option<String> {
        let hw = self.saved_hardware()?;
        let macs: Vec<String> = hw.nics.iter().map(|n| n.mac.clone()).collect();
        let near: std::net::Ipv4Addr = self.target.host.parse().ok()?;
        reach::find_by_mac(near, port, &macs).map(|ip| ip.to_string())
    }
}
