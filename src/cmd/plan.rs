//! `potato plan HOST`: what a host runs, exposes and costs.

use std::fmt::Write as _;

use crate::catalog::Proto;
use crate::cli::Global;
use crate::error::Error;
use crate::harden::firewall::Action;
use crate::plan::{HealthCheck, HostPlan};
use crate::repo;
use crate::units::format_mib;

pub fn run(g: &Global, host: &str) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = repo::select(&plans, &[host.to_string()])?[0];
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(plan).expect("plans serialize")
        );
    } else {
        print!("{}", human(plan));
    }
    Ok(())
}

/// The human-readable plan.
pub fn human(p: &HostPlan) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "host {} ({}, {}, {}) from {}",
        p.name,
        p.system.as_str(),
        p.hardware.as_str(),
        format_mib(p.memory_mib),
        p.file
    );
    let d = &p.deploy;
    let rollback = if d.magic_rollback {
        format!("magic rollback after {}s", d.confirm_timeout_secs)
    } else {
        "no magic rollback".into()
    };
    let _ = writeln!(
        o,
        "  deploy   {} (ssh port {}), mode {}, {rollback}, build on {}",
        d.target,
        p.ssh.port,
        d.mode.as_str(),
        name(&d.build_on)
    );
    if !p.tags.is_empty() {
        let _ = writeln!(o, "  tags     {}", p.tags.join(", "));
    }
    let pol = &p.firewall.policies;
    let _ = writeln!(
        o,
        "\nfirewall: incoming {}, outgoing {}, routed {}",
        name(&pol.incoming),
        name(&pol.outgoing),
        name(&pol.routed)
    );
    let _ = writeln!(o, "  {:>2}  {:<40} from", "#", "rule");
    for (i, r) in p.firewall.rules.iter().enumerate() {
        let _ = writeln!(o, "  {:>2}  {:<40} {}", i + 1, r.text, r.source.describe());
    }
    let _ = writeln!(o, "\nopen ports (first matching rule admits):");
    let mut any = false;
    for (i, r) in p
        .firewall
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.action.admits())
    {
        for range in &r.ports {
            for proto in &r.protos {
                let port = if range.lo == range.hi {
                    range.lo.to_string()
                } else {
                    format!("{}-{}", range.lo, range.hi)
                };
                let how = if r.action == Action::Limit {
                    " (rate-limited)"
                } else {
                    ""
                };
                let on = r
                    .iface
                    .as_ref()
                    .map(|i| format!(" on {i}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "  {:<14} from {}{on} by rule {}{how}{}",
                    format!("{port}/{}", proto.as_str()),
                    r.source.describe(),
                    i + 1,
                    service_on(p, range.lo, *proto)
                );
                any = true;
            }
        }
    }
    for w in &p.wireguard {
        if let Some(port) = w.listen_port {
            let _ = writeln!(
                o,
                "  {:<14} from any (WireGuard {})",
                format!("{port}/udp"),
                w.name
            );
            any = true;
        }
    }
    if !any {
        let _ = writeln!(o, "  none");
    }
    for w in &p.wireguard {
        let _ = writeln!(
            o,
            "\nwireguard {} {}{}",
            w.name,
            w.address,
            w.listen_port
                .map(|p| format!(" listening on {p}/udp"))
                .unwrap_or_default()
        );
        for peer in &w.peers {
            let ips: Vec<String> = peer.allowed_ips.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(
                o,
                "  peer {:<14} allowed {:<18} {}{}",
                peer.name,
                ips.join(","),
                peer.endpoint.as_deref().unwrap_or("(no endpoint)"),
                peer.persistent_keepalive
                    .map(|k| format!(", keepalive {k}s"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(c) = &p.containers {
        let _ = writeln!(o, "\ncontainers ({}): memory budget", name(&c.backend));
        let _ = writeln!(o, "  {:<18} {:>10} {:>7}", "service", "limit", "share");
        let mut services: Vec<_> = c.services.iter().collect();
        services.sort_by(|a, b| b.memory_mib.cmp(&a.memory_mib).then(a.name.cmp(&b.name)));
        let share = |m: u64| format!("{:.1}%", m as f64 * 100.0 / p.memory_mib.max(1) as f64);
        for s in services {
            let _ = writeln!(
                o,
                "  {:<18} {:>10} {:>7}",
                s.name,
                format_mib(s.memory_mib),
                share(s.memory_mib)
            );
        }
        let _ = writeln!(
            o,
            "  {:<18} {:>10} {:>7}",
            "(os reserve)",
            format_mib(c.os_reserve_mib),
            share(c.os_reserve_mib)
        );
        let total = c.total_mib() + c.os_reserve_mib;
        let _ = writeln!(
            o,
            "  {:<18} {:>10} {:>7}  of {}, {} free",
            "total",
            format_mib(total),
            share(total),
            format_mib(p.memory_mib),
            format_mib(p.memory_mib.saturating_sub(total))
        );
    }
    if !p.storage.mounts.is_empty() {
        let _ = writeln!(o, "\nstorage");
        for m in &p.storage.mounts {
            let _ = writeln!(o, "  {:<16} {} ({})", m.point, m.device, m.fs);
        }
    }
    if !p.health.is_empty() {
        let _ = writeln!(o, "\nhealth checks before confirming a deploy");
        for h in &p.health {
            let (kind, target) = match h {
                HealthCheck::Unit(u) => ("unit active", u),
                HealthCheck::Tcp(t) => ("tcp connects", t),
                HealthCheck::Http(u) => ("http answers", u),
            };
            let _ = writeln!(o, "  {kind:<13} {target}");
        }
    }
    if !p.secrets.is_empty() {
        let _ = writeln!(
            o,
            "\nsecrets (decrypted on the host into /run/potato-secrets)"
        );
        for (name, file) in &p.secrets {
            let _ = writeln!(o, "  {name:<16} {file}");
        }
    }
    o
}

/// The host-file spelling of an enum value ("deny", "podman", "local").
fn name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn service_on(p: &HostPlan, port: u16, proto: Proto) -> String {
    p.containers
        .iter()
        .flat_map(|c| c.services.iter())
        .find(|s| s.ports.iter().any(|x| x.host == port && x.proto == proto))
        .map(|s| format!(" -> {}", s.name))
        .unwrap_or_default()
}
