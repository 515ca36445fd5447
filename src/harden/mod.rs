//! Host hardening compiled from the host file: the UFW-style firewall today;
//! WireGuard, fail2ban and the SSH/kernel baseline join it here.

pub mod firewall;
