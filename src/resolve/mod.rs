//! Validation and resolution: `Inventory` (+ catalog, secrets) → `HostPlan`s.
//!
//! Owns every rule about what a valid fleet is. Each check pushes a diagnostic
//! (file, span, message, hint) and carries on, so one run reports every problem.
//! Per-host checks come first, then the fleet-wide ones (duplicates, peers,
//! overlaps). Nothing here writes files or calls Nix.
//!
//! This file is the orchestration: `resolve` and `secret_references` (the entry
//! points), `HostCx` (one host's context: diagnostics, spans, the shared value
//! parsers) and `resolve_host`, which calls each section in turn. The rules live
//! in one file per section, each an `impl HostCx` block with its own tests:
//!
//! - `host`: name, hardware vs. system, time zone, NixOS release, tags, zones
//! - `deploy`: `[deploy]` target/from/mode, `[ssh]`, the lockout guard
//! - `firewall`: `[firewall]` rules and policies, `[fail2ban]`
//! - `wireguard`: `[wireguard.*]` interfaces and fleet-wide peer resolution
//! - `storage`: `[storage]` boot disk and data mounts
//! - `secrets`: `secret:NAME` references, `[secrets.NAME]` owner/group/mode
//! - `proxmox`: `[proxmox]` for proxmox-vm hosts
//! - `containers`, `vpn`: `[containers]` services, networks, ports; `[vpn]`
//! - `health`: `[[health]]` probes and their timing
//! - `cache`: the host's own `[fleet.cache]` settings (the fleet-wide wiring
//!   is `crate::cache::wire`)
//! - `fleet`: checks that span hosts (duplicate names, addresses, vmids, tokens)

use std::collections::BTreeMap;
use std::ops::Range;

use ipnet::IpNet;

use crate::catalog::Catalog;
use crate::diag::{Diagnostic, FileId, Loc, Sources};
use crate::inventory::schema::HostFile;
use crate::inventory::{HostSource, Inventory, Spanned};
use crate::plan::*;
use crate::secrets::SecretIndex;
use crate::units::{parse_duration, parse_mib};

mod cache;
mod containers;
mod deploy;
mod firewall;
mod fleet;
mod health;
mod host;
mod proxmox;
mod secrets;
mod storage;
#[cfg(test)]
pub(crate) mod testkit;
mod vpn;
mod wireguard;

pub use deploy::parse_target;
pub use proxmox::check_proxmox_api;
pub use secrets::SECRET_MODES;
pub use wireguard::is_wg_key;

/// Default container network subnets by zone.
pub(crate) const DEFAULT_NETWORKS: &[(&str, &str)] = &[
    ("proxy", "10.89.1.0/24"),
    ("backend", "10.89.2.0/24"),
    ("monitoring", "10.89.3.0/24"),
    ("vpn", "10.89.4.0/24"),
];

/// The secrets each host's files reference, found or not, whether or not the
/// fleet is otherwise valid (the secrets commands work on a fleet that still
/// misses the very secret being created): (host, name, used on the host).
pub fn secret_references(
    inv: &Inventory,
    catalog: &Catalog,
    secrets: &SecretIndex,
) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for h in &inv.hosts {
        let mut cx = HostCx::new(h, &inv.sources, catalog, secrets);
        let _ = cx.resolve_host();
        for (name, on_host) in cx.references {
            out.push((h.name.clone(), name, on_host));
        }
    }
    out
}

/// Resolves every host. Ok only when no diagnostic was raised anywhere.
pub fn resolve(
    inv: &Inventory,
    catalog: &Catalog,
    secrets: &SecretIndex,
) -> Result<Vec<HostPlan>, Vec<Diagnostic>> {
    let mut diags = inv.diagnostics.clone();
    let mut plans = Vec::new();
    for h in &inv.hosts {
        let mut cx = HostCx::new(h, &inv.sources, catalog, secrets);
        let plan = cx.resolve_host();
        diags.append(&mut cx.diags);
        plans.push((h, plan));
    }
    fleet::fleet_checks(&plans, &inv.sources, &mut diags);
    crate::cache::check_one_cache_host(inv, &mut diags);
    let mut resolved: Vec<HostPlan> = plans.into_iter().filter_map(|(_, p)| p).collect();
    if diags.is_empty() {
        wireguard::resolve_wireguard_peers(inv, &mut resolved, &mut diags);
    }
    // The cache's wiring needs only the tunnels; its errors are reported
    // alongside monitoring's and SSO's, not hidden behind them.
    let tunnels_resolved = diags.is_empty();
    if diags.is_empty() {
        crate::monitoring::wire(inv, &mut resolved, &mut diags);
    }
    if diags.is_empty() {
        crate::edge::wire(inv, &mut resolved, &mut diags);
    }
    if diags.is_empty() {
        crate::edge::blueprint::wire(inv, &mut resolved, &mut diags);
    }
    if tunnels_resolved {
        crate::cache::wire(inv, &mut resolved, &mut diags);
    }
    if diags.is_empty() {
        crate::intrusion::wire(&mut resolved);
        crate::monitoring::publish_scraped_ports(&mut resolved);
    }
    if diags.is_empty() {
        Ok(resolved)
    } else {
        Err(diags)
    }
}

/// Per-host context: where diagnostics go and how spans become locations.
struct HostCx<'a> {
    host: &'a HostSource,
    sources: &'a Sources,
    catalog: &'a Catalog,
    secrets: &'a SecretIndex,
    diags: Vec<Diagnostic>,
    used_secrets: BTreeMap<String, camino::Utf8PathBuf>,
    /// Every secret name referenced, found or not: name → used on the host
    /// (false: only the operator's machine uses it).
    references: BTreeMap<String, bool>,
}

impl<'a> HostCx<'a> {
    fn new(
        host: &'a HostSource,
        sources: &'a Sources,
        catalog: &'a Catalog,
        secrets: &'a SecretIndex,
    ) -> Self {
        HostCx {
            host,
            sources,
            catalog,
            secrets,
            diags: Vec::new(),
            used_secrets: BTreeMap::new(),
            references: BTreeMap::new(),
        }
    }

    fn file(&self) -> FileId {
        self.host.file
    }

    fn loc(&self, span: &Range<usize>) -> Loc {
        Loc::new(self.file(), span.clone())
    }

    fn error(&mut self, span: &Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let d = Diagnostic::at(self.loc(span), message).hint(hint);
        self.diags.push(d);
    }

    /// The span of `range` inside a string value, when the source writes it
    /// without escapes; otherwise the whole value.
    fn inner_span(&self, value: &Spanned<String>, range: &Range<usize>) -> Range<usize> {
        let text = self.sources.text(self.file());
        let start = value.span.start + 1; // after the opening quote
        match text.get(start..start + value.value.len()) {
            Some(raw) if raw == value.value => start + range.start..start + range.end,
            _ => value.span.clone(),
        }
    }

    fn resolve_host(&mut self) -> Option<HostPlan> {
        let raw: &HostFile = &self.host.raw;
        let errors_before = self.diags.len();
        self.check_name();
        self.check_system();
        let memory_mib = self.size(&raw.memory).unwrap_or(0);
        let timezone = self.timezone();
        let state_version = self.state_version();
        let tags = self.tags();
        let zones = self.zones();
        let deploy = self.deploy();
        let ssh = self.ssh();
        let firewall = self.firewall(&zones);
        let fail2ban = self.fail2ban(&zones);
        let storage = self.storage();
        let wireguard = self.wireguard();
        let containers = self.containers(memory_mib, &zones, &wireguard);
        let health = self.health(&health::HealthContext {
            deploy: deploy.as_ref().map(|d| &d.0),
            ssh: ssh.as_ref(),
            containers: containers.as_ref(),
            wireguard: &wireguard,
        });
        let proxmox = self.proxmox();
        let cache = self.fleet_cache();
        let secret_files = self.secret_files();
        if let (Some(d), Some(fw), Some(ssh)) = (&deploy, &firewall, &ssh) {
            self.lockout_guard(d, fw, ssh, &zones);
        }
        if let (Some(c), Some(fw)) = (&containers, &firewall) {
            self.port_claims(c, fw, &wireguard);
        }
        if self.diags.len() > errors_before {
            return None;
        }
        Some(HostPlan {
            name: self.host.name.clone(),
            file: self.host.path.clone(),
            system: raw.system.value,
            hardware: raw.hardware.value,
            memory_mib,
            timezone,
            state_version,
            tags,
            deploy: deploy?.0,
            zones,
            firewall: firewall?,
            ssh: ssh?,
            fail2ban,
            storage,
            wireguard,
            containers,
            health,
            proxmox,
            secrets: std::mem::take(&mut self.used_secrets),
            secret_files,
            monitoring: None,
            edge: None,
            sso: None,
            intrusion: None,
            pki: None,
            cache,
        })
    }

    fn size(&mut self, v: &Spanned<String>) -> Option<u64> {
        match parse_mib(&v.value) {
            Ok(m) => Some(m),
            Err(e) => {
                self.error(&v.span, e, "sizes are written like \"512MiB\" or \"16GiB\"");
                None
            }
        }
    }

    fn duration(&mut self, v: &Spanned<String>) -> Option<u64> {
        match parse_duration(&v.value) {
            Ok(d) => Some(d.as_secs().max(1)),
            Err(e) => {
                self.error(
                    &v.span,
                    e,
                    "durations are written like \"30s\", \"10m\" or \"1h\"",
                );
                None
            }
        }
    }

    fn port(&mut self, v: &Spanned<i64>, what: &str) -> Option<u16> {
        if (1..=65535).contains(&v.value) {
            Some(v.value as u16)
        } else {
            self.error(
                &v.span,
                format!("{what} {} is out of range", v.value),
                "ports are 1 to 65535",
            );
            None
        }
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// The catalog name closest to a typo, if any is close.
fn closest<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (strsim_distance(word, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

fn strsim_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}
