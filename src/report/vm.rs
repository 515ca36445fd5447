//! The text of `potato vm create|status`: the VM's state, its differences
//! from the host file, and the host key its SSH answered with. Pure.

use std::fmt::Write as _;

use serde_json::json;

use crate::ops::vm::VmState;
use crate::ui::Output;

/// The VM as found or made (one JSON line with --json).
pub fn state(out: Output, vm: &VmState) -> String {
    if out.json {
        return format!("{}\n", json!(vm));
    }
    let mut o = format!("{}: VM {} on {}: {}\n", vm.host, vm.vmid, vm.node, vm.state);
    for d in &vm.mismatches {
        let _ = writeln!(o, "  {d}");
    }
    let Some(ssh) = &vm.ssh else { return o };
    if ssh.pre_generated {
        let _ = writeln!(
            o,
            "{}: SSH answers at {} with its pre-generated host key",
            vm.host, ssh.address
        );
    } else {
        let _ = writeln!(
            o,
            "{}: SSH answers at {} with key {} {} (not the one in secrets/recipients.toml: check it, then `potato trust {}`)",
            vm.host, ssh.address, ssh.key_type, ssh.fingerprint, vm.host
        );
    }
    o
}
