//! The text of `potato plan HOST`: the host's plan (deploy settings,
//! firewall, the exposure table, WireGuard peers, monitoring wiring, the
//! container memory budget, storage, health checks, secrets), the fleet's
//! roles and this host's links, replaced catalog entries and the live
//! exposure comparison; and the `--json` document. Pure: builds strings from
//! `ops::plan::PlanView`, reads nothing, prints nothing.

use std::fmt::Write as _;

use crate::harden::exposure;
use crate::ops::plan::{LiveExposure, PlanView};
use crate::plan::{HostPlan, Probe};
use crate::units::format_mib;

/// The `--json` document: the plan with its exposure table, the live
/// comparison (with --live; null when the running generation has none),
/// replaced catalog entries and the fleet wiring as this host sees it.
pub fn json(v: &PlanView) -> String {
    let mut doc = serde_json::to_value(&v.plan).expect("plans serialize");
    doc["exposure"] = serde_json::to_value(&v.exposure).expect("rows serialize");
    if let Some(live) = &v.live {
        doc["exposure_changes"] = match live {
            LiveExposure::NoTable => serde_json::Value::Null,
            LiveExposure::Changes(c) => serde_json::to_value(c).expect("strings"),
        };
    }
    doc["catalog_replaced"] = serde_json::to_value(&v.replaced).expect("strings");
    doc["fleet_wiring"] = wiring_json(&v.wiring, &v.plan.name);
    format!("{}\n", serde_json::to_string_pretty(&doc).expect("json"))
}

/// The whole human-readable view.
pub fn human(v: &PlanView) -> String {
    let mut o = host(&v.plan, &v.exposure);
    o.push_str(&links(&v.wiring, &v.plan.name));
    if !v.replaced.is_empty() {
        o.push_str("\ncatalog\n");
        for line in &v.replaced {
            let _ = writeln!(o, "  {line}");
        }
    }
    if let Some(live) = &v.live {
        o.push_str(&human_changes(live));
    }
    o
}

fn human_changes(live: &LiveExposure) -> String {
    let mut o = String::from("\nexposure compared with the running generation\n");
    match live {
        LiveExposure::NoTable => o.push_str(
            "  the running generation has no exposure table (not deployed by potato yet)\n",
        ),
        LiveExposure::Changes(lines) if lines.is_empty() => o.push_str("  no change\n"),
        LiveExposure::Changes(lines) => {
            for l in lines {
                let _ = writeln!(o, "  {l}");
            }
        }
    }
    o
}

/// The host's own part of the view: everything its plan says.
fn host(p: &HostPlan, rows: &[exposure::Row]) -> String {
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
    o.push_str(&exposure_table(p, rows));
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
    o.push_str(&wiring(p));
    if let Some(c) = &p.containers {
        let _ = writeln!(o, "\ncontainers ({}): memory budget", name(&c.backend));
        let _ = writeln!(
            o,
            "  {:<18} {:>10} {:>7} {:>5}  {:<26} reached at",
            "service", "limit", "share", "cpus", "networks"
        );
        let mut services: Vec<_> = c.services.iter().collect();
        services.sort_by(|a, b| b.memory_mib.cmp(&a.memory_mib).then(a.name.cmp(&b.name)));
        let share = |m: u64| format!("{:.1}%", m as f64 * 100.0 / p.memory_mib.max(1) as f64);
        for s in services {
            let nets = match &s.network {
                Some(owner) => format!("({owner}'s namespace)"),
                None => s.networks.join(","),
            };
            let reach = match s.web {
                Some(_) if s.sso => format!("https://{}.{} (SSO)", s.name, c.domain),
                Some(_) => format!("https://{}.{} (public)", s.name, c.domain),
                None => "-".into(),
            };
            let _ = writeln!(
                o,
                "  {:<18} {:>10} {:>7} {:>5}  {:<26} {reach}",
                s.name,
                format_mib(s.memory_mib),
                share(s.memory_mib),
                s.cpus,
                nets
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
        for a in &c.agents {
            let _ = writeln!(
                o,
                "  {:<18} on the host (NixOS service, not a container)",
                name(a)
            );
        }
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
            let kind = match &h.probe {
                Probe::Unit(_) => "unit active",
                Probe::Tcp(_) => "tcp connects",
                Probe::Http(_) => "http answers",
                Probe::Container { .. } => "container ok",
            };
            let _ = writeln!(
                o,
                "  {kind:<13} {}  (grace {}s, then {} tries {}s apart)",
                h.probe.target(),
                h.grace_secs,
                h.retries,
                h.interval_secs
            );
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

/// The fleet wiring: which host is the monitoring hub and log sink, what this
/// host sends to it and what it receives.
fn wiring(p: &HostPlan) -> String {
    let Some(m) = &p.monitoring else {
        return "\nfleet wiring: no monitoring hub (no host file has [roles] monitoring = true)\n"
            .into();
    };
    let mut o = String::from("\nfleet wiring\n");
    if m.is_hub {
        let _ = writeln!(
            o,
            "  monitoring hub  {} (this host): Prometheus, Alertmanager, Grafana; logs sink: Loki",
            m.hub
        );
    } else {
        let _ = writeln!(o, "  monitoring hub  {} (metrics and logs sink)", m.hub);
    }
    let exporters = std::iter::once(("node".to_string(), crate::monitoring::EXPORTER_PORT))
        .chain(m.extra_exporters.iter().cloned())
        .map(|(job, port)| format!("{job} {}", crate::monitoring::socket(m.address, port)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        o,
        "  sends           metrics: {exporters}, scraped by {} (only {} may connect)",
        m.hub, m.scraped_from
    );
    let _ = writeln!(
        o,
        "                  logs: journal and containers, to {} via {}",
        m.hub, m.loki_push_url
    );
    if let Some(h) = &m.hub_config {
        let _ = writeln!(o, "                  alerts: to ntfy at {}", h.ntfy_url);
        let _ = writeln!(
            o,
            "  receives        scrapes every {}s ({} targets):",
            h.scrape_interval_secs,
            h.targets.len()
        );
        for t in &h.targets {
            let _ = writeln!(
                o,
                "                    {:<10} {:<14} {}",
                t.job, t.host, t.address
            );
        }
        let sources: Vec<String> = h
            .log_sources
            .iter()
            .map(|(host, addr)| format!("{host} ({addr})"))
            .collect();
        let _ = writeln!(
            o,
            "                  logs from: {}",
            if sources.is_empty() {
                "this host only".to_string()
            } else {
                format!("{} and this host", sources.join(", "))
            }
        );
    } else {
        let _ = writeln!(
            o,
            "  receives        nothing (monitoring is served by {})",
            m.hub
        );
    }
    o
}

/// The fleet wiring as this host sees it, for `--json`: the role holders and
/// this host's links.
fn wiring_json(fleet: &crate::wiring::FleetWiring, host: &str) -> serde_json::Value {
    let mine = fleet.hosts.get(host).cloned().unwrap_or_default();
    serde_json::json!({
        "identity": fleet.identity,
        "authentik_url": fleet.authentik_url,
        "protected_routes": fleet.protected_routes,
        "monitoring": fleet.monitoring,
        "logs": fleet.logs,
        "cache": fleet.cache,
        "substituter": mine.substituter,
        "sends": mine.sends,
        "receives": mine.receives,
        "wireguard_peers": mine.wireguard_peers,
    })
}

/// Who serves identity, monitoring and logs, and this host's links with the
/// other hosts, one line each.
pub fn links(fleet: &crate::wiring::FleetWiring, host: &str) -> String {
    let role = |who: &Option<String>, none: &str| match who {
        Some(h) if h == host => format!("{h} (this host)"),
        Some(h) => h.clone(),
        None => none.to_string(),
    };
    let mut o = String::from("\nfleet roles and links\n");
    let sso = match &fleet.authentik_url {
        Some(url) => format!(
            ": authentik at {url}, {} protected routes fleet-wide",
            fleet.protected_routes
        ),
        None => String::new(),
    };
    let _ = writeln!(
        o,
        "  identity    {}{sso}",
        role(
            &fleet.identity,
            "none (no host file has [roles] identity = true)"
        )
    );
    let _ = writeln!(
        o,
        "  monitoring  {}",
        role(
            &fleet.monitoring,
            "none (no host file has [roles] monitoring = true)"
        )
    );
    let _ = writeln!(o, "  logs        {}", role(&fleet.logs, "none"));
    let _ = writeln!(
        o,
        "  cache       {}",
        role(&fleet.cache, "none (no host file has [fleet.cache])")
    );
    let Some(mine) = fleet.hosts.get(host) else {
        return o;
    };
    let mut line = |dir: &str, l: &crate::wiring::Link| {
        let _ = writeln!(
            o,
            "  {dir:<13} {:<12} {:<12} {}",
            l.peer,
            l.kind.as_str(),
            l.detail
        );
    };
    for l in &mine.sends {
        line("sends to", l);
    }
    for l in &mine.receives {
        line("receives from", l);
    }
    for l in &mine.wireguard_peers {
        line("tunnel with", l);
    }
    if mine.sends.is_empty() && mine.receives.is_empty() && mine.wireguard_peers.is_empty() {
        o.push_str("  no links with other hosts\n");
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

/// Who reaches each port from each zone, by which rule, and what answers.
fn exposure_table(p: &HostPlan, rows: &[exposure::Row]) -> String {
    let zones = exposure::zone_names(p);
    let cell = |r: &exposure::Reach| {
        if r.state == "closed" {
            "-".to_string()
        } else {
            format!("{} {}", r.state, r.by)
        }
    };
    let mut widths: Vec<usize> = zones.iter().map(|z| z.len()).collect();
    for row in rows {
        for (i, z) in zones.iter().enumerate() {
            widths[i] = widths[i].max(cell(&row.zones[z]).len());
        }
    }
    let mut o =
        String::from("\nexposure: who reaches each port (first matching rule decides; - closed)\n");
    let _ = write!(o, "  {:<13} {:<16}", "port", "answers");
    for (z, w) in zones.iter().zip(&widths) {
        let _ = write!(o, " {z:<w$}");
    }
    let line = o.trim_end().len();
    o.truncate(line);
    o.push('\n');
    for row in rows {
        let _ = write!(
            o,
            "  {:<13} {:<16}",
            format!("{}/{}", row.port, row.proto),
            row.target
        );
        for (z, w) in zones.iter().zip(&widths) {
            let _ = write!(o, " {:<w$}", cell(&row.zones[z]));
        }
        let line = o.trim_end().len();
        o.truncate(line);
        o.push('\n');
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n250 as the example repository plans it, with `live` as given.
    fn view(live: Option<LiveExposure>) -> PlanView {
        let root = camino::Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let plans = crate::ops::fleet::load_plans(&root).expect("the example fleet loads");
        let plan = plans.iter().find(|p| p.name == "n250").unwrap().clone();
        PlanView {
            exposure: exposure::table(&plan),
            wiring: crate::wiring::fleet(&plans),
            plan,
            replaced: Vec::new(),
            live,
        }
    }

    fn json_of(v: &PlanView) -> serde_json::Value {
        serde_json::from_str(&json(v)).expect("json() is one JSON document")
    }

    #[test]
    fn without_live_nothing_is_compared() {
        let v = view(None);
        assert!(!human(&v).contains("compared with the running generation"));
        assert!(json_of(&v).get("exposure_changes").is_none());
    }

    #[test]
    fn a_generation_without_an_exposure_table_says_so_and_is_null_in_json() {
        let v = view(Some(LiveExposure::NoTable));
        let text = human(&v);
        assert!(
            text.ends_with(
                "\nexposure compared with the running generation\n  the running generation has no exposure table (not deployed by potato yet)\n"
            ),
            "{text}"
        );
        assert_eq!(json_of(&v)["exposure_changes"], serde_json::Value::Null);
    }

    #[test]
    fn no_difference_says_no_change_and_differences_are_listed() {
        let same = view(Some(LiveExposure::Changes(Vec::new())));
        assert!(human(&same).ends_with("generation\n  no change\n"));
        assert_eq!(json_of(&same)["exposure_changes"], serde_json::json!([]));
        let line = "+ 8080/tcp open from lan (-)".to_string();
        let changed = view(Some(LiveExposure::Changes(vec![line.clone()])));
        assert!(human(&changed).ends_with(&format!("generation\n  {line}\n")));
        assert_eq!(
            json_of(&changed)["exposure_changes"],
            serde_json::json!([line])
        );
    }

    #[test]
    fn replaced_catalog_entries_get_their_own_section() {
        let mut v = view(None);
        assert!(!human(&v).contains("\ncatalog\n"));
        v.replaced = vec!["jellyfin: replaced by modules/catalog/jellyfin.toml".into()];
        assert!(
            human(&v)
                .contains("\ncatalog\n  jellyfin: replaced by modules/catalog/jellyfin.toml\n")
        );
        assert_eq!(
            json_of(&v)["catalog_replaced"],
            serde_json::json!(["jellyfin: replaced by modules/catalog/jellyfin.toml"])
        );
    }
}
