//! `[proxmox]` for hardware = "proxmox-vm": the API URL (https, host and port
//! only: the token is sent there), vmid, cores, disk, storages and the token
//! secret. Owns `check_proxmox_api`; the API client is `crate::proxmox`.

use std::net::IpAddr;

use super::HostCx;
use crate::inventory::schema::Hardware;
use crate::plan::*;

impl HostCx<'_> {
    pub(super) fn proxmox(&mut self) -> Option<ProxmoxPlan> {
        let is_vm = self.host.raw.hardware.value == Hardware::ProxmoxVm;
        let Some(p) = &self.host.raw.proxmox else {
            if is_vm {
                let span = self.host.raw.hardware.span.clone();
                self.error(
                    &span,
                    "a proxmox-vm host needs a [proxmox] table",
                    "add [proxmox] with api, node, vmid, disk, bridge and token",
                );
            }
            return None;
        };
        if !is_vm {
            self.error(
                &p.span,
                "[proxmox] is only for hardware = \"proxmox-vm\"",
                "remove the table, or set hardware = \"proxmox-vm\"",
            );
        }
        if let Err(e) = check_proxmox_api(&p.api.value) {
            self.error(
                &p.api.span,
                e,
                "write https://HOST or https://HOST:PORT, e.g. \"https://192.168.100.2:8006\" (no user, path, query or fragment)",
            );
        }
        if !(100..=999_999_999).contains(&p.vmid.value) {
            self.error(
                &p.vmid.span,
                format!("vmid {} is out of range", p.vmid.value),
                "Proxmox VM ids are 100 to 999999999",
            );
        }
        let cores = match &p.cores {
            Some(c) if (1..=128).contains(&c.value) => c.value as u32,
            Some(c) => {
                self.error(
                    &c.span,
                    format!("{} cores is out of range", c.value),
                    "use 1 to 128",
                );
                1
            }
            None => 1,
        };
        let disk_mib = self.size(&p.disk).unwrap_or(0);
        let token = self.operator_secret(&p.token);
        Some(ProxmoxPlan {
            api: p.api.value.clone(),
            node: p.node.value.to_string(),
            vmid: p.vmid.value.clamp(0, u32::MAX as i64) as u32,
            cores,
            disk_mib,
            bridge: p.bridge.value.to_string(),
            token_secret: token.unwrap_or_default(),
            fingerprint: p.fingerprint.as_ref().map(|f| f.value.clone()),
            image_storage: p
                .image_storage
                .as_ref()
                .map(|s| s.value.to_string())
                .unwrap_or_else(|| "local".into()),
            disk_storage: p
                .disk_storage
                .as_ref()
                .map(|s| s.value.to_string())
                .unwrap_or_else(|| "local-lvm".into()),
        })
    }
}

/// "https://HOST[:PORT]" and nothing else: the API token is sent there.
pub fn check_proxmox_api(url: &str) -> Result<(), String> {
    let Some(authority) = url.strip_prefix("https://") else {
        return Err(format!("`{url}` is not an https URL"));
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains(['@', '/', '?', '#']) {
        return Err(format!(
            "`{url}` has more than a host and port: the API token would be sent with it"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: missing ']'"))?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{h}` is not an IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port {
        crate::catalog::parse_port(p).map_err(|e| format!("`{url}`: {e}"))?;
    }
    let dns_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !(dns_name || host.parse::<IpAddr>().is_ok()) {
        return Err(format!("`{host}` is not a host name or address"));
    }
    Ok(())
}
