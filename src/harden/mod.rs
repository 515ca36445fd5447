//! Host hardening compiled from the host file: the UFW-style firewall, the
//! native WireGuard configs, fail2ban, and the SSH/kernel baseline.

pub mod baseline;
pub mod exposure;
pub mod fail2ban;
pub mod firewall;
pub mod wireguard;
