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

#[cfg(test)]
mod tests {
    use super::check_proxmox_api;
    use crate::resolve::testkit::{Fleet, Outcome};

    fn vm(table: &str) -> Outcome {
        Fleet::default()
            .secret("shared", "pve")
            .host("vm", &format!("hardware = \"proxmox-vm\"\n[proxmox]\nnode = \"pve\"\nbridge = \"vmbr0\"\ntoken = \"secret:pve\"\n{table}"))
            .resolve()
    }

    const OK: &str = "api = \"https://192.0.2.2:8006\"\nvmid = 111\ndisk = \"32GiB\"";

    #[test]
    fn a_vm_plan_with_defaults() {
        let out = vm(OK);
        let p = out.plan().proxmox.as_ref().unwrap();
        assert_eq!((p.vmid, p.cores, p.disk_mib), (111, 1, 32 * 1024));
        assert_eq!(
            (p.image_storage.as_str(), p.disk_storage.as_str()),
            ("local", "local-lvm")
        );
    }

    #[test]
    fn a_proxmox_vm_needs_its_table_and_only_it_has_one() {
        Fleet::default()
            .host("vm", "hardware = \"proxmox-vm\"")
            .resolve()
            .assert_error(
                "a proxmox-vm host needs a [proxmox] table",
                "\"proxmox-vm\"",
            );
        let out = Fleet::default()
            .secret("shared", "pve")
            .host(
                "n",
                &format!(
                    "[proxmox]\nnode = \"pve\"\nbridge = \"vmbr0\"\ntoken = \"secret:pve\"\n{OK}"
                ),
            )
            .resolve();
        out.assert_error(
            "[proxmox] is only for hardware = \"proxmox-vm\"",
            "[proxmox]",
        );
    }

    #[test]
    fn the_api_is_https_host_and_port_only() {
        for ok in [
            "https://pve.example.net",
            "https://[fd00::2]:8006",
            "https://192.0.2.2:8006/",
        ] {
            assert_eq!(check_proxmox_api(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://192.0.2.2:8006", "is not an https URL"),
            ("https://evil@192.0.2.2", "has more than a host and port"),
            ("https://192.0.2.2/api2", "has more than a host and port"),
            ("https://pve_host", "is not a host name or address"),
            ("https://192.0.2.2:0", "`https://192.0.2.2:0`"),
        ] {
            vm(&format!("api = \"{bad}\"\nvmid = 111\ndisk = \"32GiB\""))
                .assert_error(why, &format!("\"{bad}\""));
        }
    }

    #[test]
    fn vmid_cores_and_disk_in_range() {
        let ok = vm(&format!("{OK}\ncores = 128"));
        assert_eq!(ok.plan().proxmox.as_ref().unwrap().cores, 128);
        vm("api = \"https://192.0.2.2\"\nvmid = 99\ndisk = \"32GiB\"")
            .assert_error("vmid 99 is out of range", "99");
        vm(&format!("{OK}\ncores = 0")).assert_error("0 cores is out of range", "0");
        vm("api = \"https://192.0.2.2\"\nvmid = 111\ndisk = \"big\"").diags_at("\"big\"");
    }
}
