//! Every path potato reads or leaves on a host, in one place. The agent
//! (`agent.sh`) names the same state directory and profile; a test below keeps
//! them equal. Owns names only: what runs there is `remote`'s business.

/// potato's state on a host: the agent, the deploy lock, watchdog files, the
/// bootstrap record. Under /nix so a host with its own store keeps its own.
pub const STATE_DIR: &str = "/nix/var/potato";
/// The installed agent (only operations that change the host install it).
pub const AGENT: &str = "/nix/var/potato/agent.sh";
/// Where a bootstrap is recorded on the host (date, commit, system).
pub const BOOTSTRAP_MARKER: &str = "/nix/var/potato/bootstrapped";
/// The NixOS system profile whose generations deploys add.
pub const SYSTEM_PROFILE: &str = "/nix/var/nix/profiles/system";
/// The running system.
pub const CURRENT_SYSTEM: &str = "/run/current-system";
/// The exposure table the running generation was built with (`plan --live`).
pub const DEPLOYED_EXPOSURE: &str = "/run/current-system/etc/potato/exposure.json";
/// Where the kexec installer tree is unpacked on a machine being bootstrapped.
pub const KEXEC_DIR: &str = "/root/potato-kexec";
/// Where the installer mounts the new system's root (disko's default).
pub const TARGET_ROOT: &str = "/mnt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_uses_the_same_paths() {
        let agent = super::super::remote::AGENT_SCRIPT;
        assert!(agent.contains(&format!("\nSTATE={STATE_DIR}\n")));
        assert!(agent.contains(&format!("\nPROFILE={SYSTEM_PROFILE}\n")));
        assert_eq!(AGENT, format!("{STATE_DIR}/agent.sh"));
        assert_eq!(BOOTSTRAP_MARKER, format!("{STATE_DIR}/bootstrapped"));
        assert!(DEPLOYED_EXPOSURE.starts_with(CURRENT_SYSTEM));
    }
}
