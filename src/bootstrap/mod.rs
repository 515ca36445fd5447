//! From a machine running any Linux (or the NixOS installer) with SSH to a host
//! that booted exactly the system the repository builds. This module owns the
//! pieces that are not commands: the steps and their order, the resumable
//! state kept between runs, hardware detection (`hardware`), facts written
//! back into the host file (`facts`), the disk layout (`layout`), and finding
//! the machine again after a kexec or a reboot (`reach`). `cmd::bootstrap`
//! runs the steps.

pub mod facts;
pub mod hardware;
pub mod layout;
pub mod reach;

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// Where a bootstrap is recorded on the host (date, commit, system): an
/// on-host path, kept with the others in `host::paths`.
pub use crate::host::paths::BOOTSTRAP_MARKER as MARKER;

/// The steps, in order. Each is done once; a run after a failure starts at the
/// first step not done (`--from STEP` goes back).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Detect the hardware; write hardware.{json,nix} and missing facts.
    Detect,
    /// Pre-generate the SSH host key and re-encrypt the host's secrets to it.
    HostKey,
    /// Regenerate modules/generated (new recipients, the disk layout).
    Generate,
    /// Be in the NixOS installer: kexec into it when the machine runs another Linux.
    Installer,
    /// Partition and format the boot disk (and `--wipe` disks), mount at /mnt.
    Partition,
    /// The system's closure, profile, host key into /mnt.
    Install,
    /// The bootloader, from inside the installed system (nixos-enter).
    Bootloader,
    /// Reboot into the installed system.
    Reboot,
    /// Wait for SSH with the host's key, at its address or found by MAC.
    Reconnect,
    /// The host booted exactly the built system; record the bootstrap.
    Verify,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Step::Detect,
        Step::HostKey,
        Step::Generate,
        Step::Installer,
        Step::Partition,
        Step::Install,
        Step::Bootloader,
        Step::Reboot,
        Step::Reconnect,
        Step::Verify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Detect => "detect",
            Step::HostKey => "host-key",
            Step::Generate => "generate",
            Step::Installer => "installer",
            Step::Partition => "partition",
            Step::Install => "install",
            Step::Bootloader => "bootloader",
            Step::Reboot => "reboot",
            Step::Reconnect => "reconnect",
            Step::Verify => "verify",
        }
    }

    /// 1-based position, for "[3/10]".
    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }
}

/// Why the progress file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Fs(#[from] crate::fsguard::FsError),
    #[error("it is not a progress record: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the saved target `{target}` is not an address: {why}")]
    Target { target: String, why: String },
}

/// What a bootstrap of one host has done so far, kept in
/// `.potato/bootstrap/<host>.json` (not committed: it is about one machine,
/// one attempt).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// USER@ADDR[:PORT] the machine answers at now (after a reboot, maybe
    /// another address than the one the bootstrap started with).
    pub target: String,
    /// Steps done, with when.
    pub done: BTreeMap<Step, String>,
}

impl State {
    pub fn file(repo: &Utf8Path, host: &str) -> Utf8PathBuf {
        repo.join(State::rel(host))
    }

    /// The state file, repository-relative.
    pub fn rel(host: &str) -> Utf8PathBuf {
        Utf8PathBuf::from(".potato/bootstrap").join(format!("{host}.json"))
    }

    /// The saved state, or an empty one (read through `fsguard`).
    pub fn load(repo: &Utf8Path, host: &str) -> Result<State, StateError> {
        let file = State::rel(host);
        let fs = crate::fsguard::RepoFs::open(repo)?;
        match fs.read_string(&file)? {
            Some(text) => Ok(serde_json::from_str(&text)?),
            None => Ok(State::default()),
        }
    }

    /// Writes the state atomically (through `fsguard`, never through a link).
    pub fn save(&self, repo: &Utf8Path, host: &str) -> Result<(), StateError> {
        let text = serde_json::to_string_pretty(self).expect("state serializes") + "\n";
        crate::fsguard::RepoFs::open(repo)?.write_atomic(
            &State::rel(host),
            text.as_bytes(),
            0o644,
        )?;
        Ok(())
    }

    /// The machine's address as the last run saved it.
    pub fn saved_target(&self) -> Result<crate::plan::Target, StateError> {
        crate::resolve::parse_target(&self.target).map_err(|why| StateError::Target {
            target: self.target.clone(),
            why,
        })
    }

    pub fn is_done(&self, step: Step) -> bool {
        self.done.contains_key(&step)
    }

    pub fn mark(&mut self, step: Step) {
        self.done.insert(
            step,
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        );
    }

    /// Forgets `step` and every step after it.
    pub fn forget_from(&mut self, step: Step) {
        self.done.retain(|s, _| *s < step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_forgets_from_a_step() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Utf8Path::from_path(dir.path()).unwrap();
        assert_eq!(State::load(repo, "h").unwrap(), State::default());
        let mut s = State {
            target: "root@10.0.0.2".into(),
            ..State::default()
        };
        for step in [Step::Detect, Step::HostKey, Step::Generate, Step::Installer] {
            s.mark(step);
        }
        s.save(repo, "h").unwrap();
        let mut back = State::load(repo, "h").unwrap();
        assert_eq!(back, s);
        back.forget_from(Step::Generate);
        assert!(back.is_done(Step::HostKey));
        assert!(!back.is_done(Step::Generate));
        assert!(!back.is_done(Step::Installer));
        std::fs::write(State::file(repo, "h"), "{ not json").unwrap();
        // A damaged record is a parse failure (the command's hint names
        // --restart), not an empty state.
        assert!(matches!(
            State::load(repo, "h").unwrap_err(),
            StateError::Parse(_)
        ));
    }

    #[test]
    fn steps_are_numbered_in_order() {
        assert_eq!(Step::Detect.number(), 1);
        assert_eq!(Step::Verify.number(), Step::ALL.len());
        assert!(Step::Partition < Step::Install);
    }
}
