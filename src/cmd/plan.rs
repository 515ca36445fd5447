//! `potato plan HOST`: what a host runs, exposes and costs.

use std::fmt::Write as _;

use super::args::{Connection, Global};
use crate::error::Error;
use crate::harden::exposure;
use crate::ops::fleet::Fleet;
use crate::plan::{HostPlan, Probe};
use crate::units::format_mib;

/// Where a deployed generation keeps its planned exposure.
use crate::host::paths::DEPLOYED_EXPOSURE;

/// Show what a host runs: deploy settings, firewall, open ports, WireGuard
/// peers, containers with their memory budget, secrets used.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Host name.
    pub host: String,
    /// Also compare the exposure with the generation the host runs (over SSH).
    #[arg(long)]
    pub live: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let host = a.host.as_str();
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_connection(a.conn.settings());
    let (plan, target) = fleet.one(host)?;
    let root = &fleet.root;
    let wiring = crate::wiring::fleet(&fleet.plans);
    let table = exposure::table(&plan);
    let replaced = replaced_entries(root, &plan)?;
    let changes = if a.live {
        let remote = fleet.connect(host, &target)?;
        Some(deployed_changes(&remote, host, &table)?)
    } else {
        None
    };
    if g.json {
        let mut v = serde_json::to_value(&plan).expect("plans serialize");
        v["exposure"] = serde_json::to_value(&table).expect("rows serialize");
        if let Some(c) = &changes {
            v["exposure_changes"] = serde_json::to_value(c).expect("strings");
        }
        v["catalog_replaced"] = serde_json::to_value(&replaced).expect("strings");
        v["fleet_wiring"] = wiring_json(&wiring, &plan.name);
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print!("{}", human(&plan));
        print!("{}", links(&wiring, &plan.name));
        if !replaced.is_empty() {
            println!("\ncatalog");
            for line in &replaced {
                println!("  {line}");
            }
        }
        if let Some(c) = changes {
            print!("{}", human_changes(c.as_deref()));
        }
    }
    Ok(())
}

/// The host's services whose built-in catalog entry an operator file replaced.
fn replaced_entries(root: &camino::Utf8Path, plan: &HostPlan) -> Result<Vec<String>, Error> {
    let Some(c) = &plan.containers else {
        return Ok(Vec::new());
    };
    let cat = crate::catalog::Catalog::for_repo(root).map_err(Error::Invalid)?;
    Ok(cat.replaced_lines(c.services.iter().map(|s| s.name.as_str())))
}

/// The exposure changes a deploy would make, or None when the running
/// generation predates exposure.json (or was not deployed by potato).
fn deployed_changes(
    remote: &crate::host::Remote,
    host: &str,
    planned: &[exposure::Row],
) -> Result<Option<Vec<String>>, Error> {
    let Some(text) = remote
        .read_file(DEPLOYED_EXPOSURE)
        .map_err(|e| Error::remote(host, e))?
    else {
        return Ok(None);
    };
    let running: Vec<exposure::Row> = serde_json::from_str(&text).map_err(|e| Error::Host {
        host: host.into(),
        message: format!("{DEPLOYED_EXPOSURE} is not potato's exposure table: {e}"),
    })?;
    // The running table came from the host: what it says is cleaned before it is shown.
    let shown = exposure::diff(&running, planned)
        .into_iter()
        .map(|l| crate::ssh::output::clean(l.as_bytes()))
        .collect();
    Ok(Some(shown))
}

fn human_changes(changes: Option<&[String]>) -> String {
    let mut o = String::from("\nexposure compared with the running generation\n");
    match changes {
        None => o.push_str(
            "  the running generation has no exposure table (not deployed by potato yet)\n",
        ),
        Some([]) => o.push_str("  no change\n"),
        Some(lines) => {
            for l in lines {
                let _ = writeln!(o, "  {l}");
            }
        }
    }
    o
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
    o.push_str(&exposure_table(p));
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
fn exposure_table(p: &HostPlan) -> String {
    let rows = exposure::table(p);
    let zones = exposure::zone_names(p);
    let cell = |r: &exposure::Reach| {
        if r.state == "closed" {
            "-".to_string()
        } else {
            format!("{} {}", r.state, r.by)
        }
    };
    let mut widths: Vec<usize> = zones.iter().map(|z| z.len()).collect();
    for row in &rows {
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
    for row in &rows {
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
