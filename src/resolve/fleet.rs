//! Checks that span hosts: names unique (case-insensitively), deploy addresses
//! unique, WireGuard addresses unique, Proxmox vmids unique per node, and one
//! Proxmox token sent to one API. Per-host rules live in the section files.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::diag::{Diagnostic, Loc, Sources};
use crate::inventory::HostSource;
use crate::plan::*;

/// Checks that span hosts: names unique (case-insensitively), addresses unique,
/// WireGuard addresses unique, Proxmox vmids unique per node.
pub(super) fn fleet_checks(
    plans: &[(&HostSource, Option<HostPlan>)],
    _sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) {
    let mut names: BTreeMap<String, &HostSource> = BTreeMap::new();
    for (h, _) in plans {
        if let Some(first) = names.insert(h.name.to_lowercase(), h) {
            diags.push(
                Diagnostic::at(
                    Loc::new(h.file, 0..0),
                    format!("host name `{}` is used twice", h.name),
                )
                .related(Loc::new(first.file, 0..0), "other host file")
                .hint(
                    "host names are the file names in hosts/ and must differ (case does not count)",
                ),
            );
        }
    }
    let mut addresses: BTreeMap<(String, u16), &HostSource> = BTreeMap::new();
    let mut wg_addrs: BTreeMap<IpAddr, (&HostSource, String)> = BTreeMap::new();
    let mut vmids: BTreeMap<(String, String, u32), &HostSource> = BTreeMap::new();
    let mut token_apis: BTreeMap<String, (&str, &HostSource)> = BTreeMap::new();
    for (h, plan) in plans {
        let Some(p) = plan else { continue };
        let key = (
            p.deploy.target.host.to_lowercase(),
            p.deploy.target.port.unwrap_or(p.ssh.port),
        );
        if let Some(first) = addresses.insert(key, h) {
            diags.push(
                Diagnostic::at(Loc::new(h.file, h.raw.deploy.target.span.clone()), format!("hosts `{}` and `{}` have the same deploy address", first.name, h.name))
                    .related(Loc::new(first.file, first.raw.deploy.target.span.clone()), "same address")
                    .hint("each host needs its own address; a deploy would otherwise overwrite the other machine"),
            );
        }
        for w in &p.wireguard {
            let span = h
                .raw
                .wireguard
                .get(&w.name)
                .map(|x| x.address.span.clone())
                .unwrap_or(0..0);
            if let Some((first, iface)) = wg_addrs.insert(w.address.addr(), (h, w.name.clone())) {
                let first_span = first
                    .raw
                    .wireguard
                    .get(&iface)
                    .map(|x| x.address.span.clone())
                    .unwrap_or(0..0);
                diags.push(
                    Diagnostic::at(
                        Loc::new(h.file, span),
                        format!(
                            "WireGuard address {} is also used by {} ({iface})",
                            w.address.addr(),
                            first.name
                        ),
                    )
                    .related(Loc::new(first.file, first_span), "first used here")
                    .hint("give every peer its own tunnel address"),
                );
            }
        }
        if let Some(px) = &p.proxmox {
            same_api_per_token(h, px, &mut token_apis, diags);
            let span = h
                .raw
                .proxmox
                .as_ref()
                .map(|x| x.vmid.span.clone())
                .unwrap_or(0..0);
            if let Some(first) = vmids.insert((px.api.clone(), px.node.clone(), px.vmid), h) {
                diags.push(
                    Diagnostic::at(
                        Loc::new(h.file, span),
                        format!(
                            "vmid {} on node {} is also used by {}",
                            px.vmid, px.node, first.name
                        ),
                    )
                    .hint("choose a free vmid"),
                );
            }
        }
    }
}

/// The shared Proxmox token goes wherever `api` points, so one host file cannot
/// point it somewhere else: every host naming the same token names the same API.
fn same_api_per_token<'a>(
    h: &'a HostSource,
    px: &'a ProxmoxPlan,
    seen: &mut BTreeMap<String, (&'a str, &'a HostSource)>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(raw) = &h.raw.proxmox else { return };
    match seen.get(&px.token_secret) {
        None => {
            seen.insert(px.token_secret.clone(), (px.api.as_str(), h));
        }
        Some((api, first)) if *api != px.api => {
            let first_span = first
                .raw
                .proxmox
                .as_ref()
                .map(|x| x.api.span.clone())
                .unwrap_or(0..0);
            diags.push(
                Diagnostic::at(
                    Loc::new(h.file, raw.api.span.clone()),
                    format!(
                        "the Proxmox token `{}` would be sent to {}, but {} sends it to {api}",
                        px.token_secret, px.api, first.name
                    ),
                )
                .related(Loc::new(first.file, first_span), "this host's API")
                .hint("one token belongs to one Proxmox API: use the same api in every host file, or give this API its own token secret"),
            );
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::resolve::testkit::{Fleet, WG_KEY_A, WG_KEY_B};

    fn target(addr: &str) -> String {
        format!("[deploy]\ntarget = \"{addr}\"")
    }

    #[test]
    fn distinct_hosts_pass() {
        let out = Fleet::default()
            .host("a", &target("root@192.0.2.1"))
            .host("b", &target("root@192.0.2.2"))
            // Same address, other SSH port: another machine behind one NAT.
            .host("c", &target("root@192.0.2.1:2222"))
            .resolve();
        assert_eq!(out.plans().len(), 3);
    }

    #[test]
    fn host_names_differ_ignoring_case() {
        let out = Fleet::default()
            .host("web", &target("root@192.0.2.1"))
            .host("WEB", &target("root@192.0.2.2"))
            .resolve();
        let d = out.error("host name `WEB` is used twice");
        assert_eq!(out.file_of(d), "hosts/WEB.toml");
        assert_eq!(d.related[0].1, "other host file");
    }

    #[test]
    fn deploy_addresses_differ() {
        let out = Fleet::default()
            .host("a", &target("root@192.0.2.1"))
            .host("b", &target("admin@192.0.2.1:22"))
            .resolve();
        let d = out.assert_error(
            "hosts `a` and `b` have the same deploy address",
            "\"admin@192.0.2.1:22\"",
        );
        assert_eq!(out.file_of(d), "hosts/b.toml");
    }

    fn wg(target_addr: &str, address: &str, key: &str) -> String {
        format!(
            "{}\n[wireguard.wg0]\naddress = \"{address}\"\nprivate_key = \"secret:wg\"\npublic_key = \"{key}\"",
            target(target_addr)
        )
    }

    #[test]
    fn wireguard_addresses_differ() {
        let out = Fleet::default()
            .secret("shared", "wg")
            .host("a", &wg("root@192.0.2.1", "10.99.0.1/24", WG_KEY_A))
            .host("b", &wg("root@192.0.2.2", "10.99.0.1/24", WG_KEY_B))
            .resolve();
        let d = out.assert_error(
            "WireGuard address 10.99.0.1 is also used by a (wg0)",
            "\"10.99.0.1/24\"",
        );
        assert_eq!(out.file_of(d), "hosts/b.toml");
    }

    fn vm(addr: &str, api: &str, node: &str, vmid: u32, token: &str) -> String {
        format!(
            "hardware = \"proxmox-vm\"\n{}\n[proxmox]\napi = \"{api}\"\nnode = \"{node}\"\nvmid = {vmid}\ndisk = \"8GiB\"\nbridge = \"vmbr0\"\ntoken = \"secret:{token}\"",
            target(addr)
        )
    }

    #[test]
    fn vmids_differ_per_node() {
        let api = "https://192.0.2.100:8006";
        let fleet = || Fleet::default().secret("shared", "t");
        fleet()
            .host("a", &vm("root@192.0.2.1", api, "pve", 111, "t"))
            .host("b", &vm("root@192.0.2.2", api, "pve2", 111, "t"))
            .resolve()
            .plans();
        fleet()
            .host("a", &vm("root@192.0.2.1", api, "pve", 111, "t"))
            .host("b", &vm("root@192.0.2.2", api, "pve", 111, "t"))
            .resolve()
            .assert_error("vmid 111 on node pve is also used by a", "111");
    }

    #[test]
    fn one_token_goes_to_one_api() {
        let fleet = || Fleet::default().secret("shared", "t").secret("shared", "u");
        fleet()
            .host(
                "a",
                &vm("root@192.0.2.1", "https://192.0.2.100", "pve", 111, "t"),
            )
            .host(
                "b",
                &vm("root@192.0.2.2", "https://192.0.2.200", "pve", 112, "u"),
            )
            .resolve()
            .plans();
        let out = fleet()
            .host(
                "a",
                &vm("root@192.0.2.1", "https://192.0.2.100", "pve", 111, "t"),
            )
            .host(
                "b",
                &vm("root@192.0.2.2", "https://192.0.2.200", "pve", 112, "t"),
            )
            .resolve();
        let d = out.assert_error(
            "the Proxmox token `t` would be sent to https://192.0.2.200, but a sends it to https://192.0.2.100",
            "\"https://192.0.2.200\"",
        );
        assert_eq!(d.related[0].1, "this host's API");
    }
}
