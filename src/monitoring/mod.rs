//! The fleet's monitoring wiring: which host is the monitoring hub, what it
//! scrapes over WireGuard, where every host's logs and the hub's alerts go.
//!
//! Owns the `[roles] monitoring` / `[monitoring]` rules (one hub; no second,
//! disconnected stack; every host reachable from the hub through a tunnel),
//! the per-host `MonitoringPlan`, and the firewall openings the wiring needs
//! (the exporter port to the hub's tunnel address only, Loki to the spokes),
//! which it appends to each plan's rules as ordinary `firewall::Rule`s, after
//! the host's own, so the one compiler writes them. The native files live in `native`. It runs after
//! every host resolved and the WireGuard peers are known; it never reads
//! files or calls programs.

pub mod native;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;

use ipnet::IpNet;
use serde::Serialize;

use crate::catalog::{Proto, Publish};
use crate::diag::{Diagnostic, Loc};
use crate::harden::firewall::{Action, PortRange, Rule, Source};
use crate::inventory::{HostSource, Inventory, Spanned};
use crate::plan::HostPlan;
use crate::units::parse_duration;

/// node-exporter's port (NixOS `services.prometheus.exporters.node.port` default).
pub const EXPORTER_PORT: u16 = 9100;
/// Loki's HTTP port, where Alloy pushes (the image's default config).
pub const LOKI_PORT: u16 = 3100;
/// Traefik's metrics entrypoint, scraped where Traefik runs.
pub const TRAEFIK_METRICS_PORT: u16 = 8082;
/// CrowdSec's Prometheus endpoint (its `prometheus.listen_port` default).
pub const CROWDSEC_METRICS_PORT: u16 = 6060;
/// The containers that make up the hub's stack; only the hub runs them.
pub const STACK: &[&str] = &["prometheus", "alertmanager", "grafana", "loki"];

/// The catalog's node-exporter host agent. modules/monitoring.nix is the one
/// place that configures it (on every host of the wiring), so a host may list
/// it only when the fleet has a hub; listing it then changes nothing.
pub const HOST_EXPORTER: &str = "node-exporter";

/// One host's part in the monitoring wiring.
#[derive(Debug, Clone, Serialize)]
pub struct MonitoringPlan {
    /// The monitoring hub's host name (also where logs go).
    pub hub: String,
    pub is_hub: bool,
    /// Where the hub's Prometheus scrapes this host: its tunnel address (the
    /// hub's own: its tunnel address, or its monitoring network's gateway).
    pub address: IpAddr,
    /// The only source allowed to this host's exporter port.
    pub scraped_from: IpNet,
    /// Loki's push URL, as this host's log shipper reaches it.
    pub loki_push_url: String,
    /// Exporters besides node-exporter that the hub scrapes here: (job, port).
    pub extra_exporters: Vec<(String, u16)>,
    /// This host's WireGuard peers that are fleet hosts: their last handshake
    /// is exported for the "peer silent" alert (phones and laptops, which
    /// come and go, are left out).
    pub tunnel_peers: Vec<TunnelPeer>,
    /// The hub's own settings and targets; None on a spoke.
    pub hub_config: Option<HubConfig>,
}

/// What the hub's Prometheus, Alertmanager and Grafana are configured with.
#[derive(Debug, Clone, Serialize)]
pub struct HubConfig {
    pub scrape_interval_secs: u64,
    pub host_down_after_secs: u64,
    /// Every scrape target of the fleet, sorted by job then host.
    pub targets: Vec<ScrapeTarget>,
    /// The ntfy topic URL alerts are posted to.
    pub ntfy_url: String,
    /// cAdvisor runs on the hub (scraped on the monitoring network).
    pub cadvisor: bool,
    /// Hosts that push logs to the hub's Loki, with the address they come from.
    pub log_sources: Vec<(String, IpAddr)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelPeer {
    pub interface: String,
    pub peer: String,
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScrapeTarget {
    pub job: String,
    pub host: String,
    /// "address:port" as Prometheus dials it.
    pub address: String,
}

/// The hub claim: which host, where in its file.
struct Hub<'a> {
    src: &'a HostSource,
    span: Range<usize>,
}

/// Wires monitoring into every plan, or adds diagnostics and changes nothing.
pub fn wire(inv: &Inventory, plans: &mut [HostPlan], diags: &mut Vec<Diagnostic>) {
    let before = diags.len();
    let hub = find_hub(inv, diags);
    if diags.len() > before {
        return; // two hubs: the rest would only repeat it
    }
    misplaced_settings(inv, hub.as_ref(), diags);
    stack_placement(inv, hub.as_ref(), diags);
    let Some(hub) = hub else { return };
    if diags.len() > before {
        return;
    }
    let settings = hub_settings(inv, &hub, plans, diags);
    let addresses = scrape_addresses(inv, &hub, plans, diags);
    let (Some(settings), Some(addresses)) = (settings, addresses) else {
        return;
    };
    if diags.len() > before {
        return;
    }
    apply(&hub.src.name, settings, &addresses, inv, plans, diags);
}

/// The host whose file says `[roles] monitoring = true`; a second is an error
/// naming both places.
fn find_hub<'a>(inv: &'a Inventory, diags: &mut Vec<Diagnostic>) -> Option<Hub<'a>> {
    let mut hub: Option<Hub> = None;
    for h in &inv.hosts {
        let Some(flag) = h.raw.roles.as_ref().and_then(|r| r.monitoring.as_ref()) else {
            continue;
        };
        if !flag.value {
            continue;
        }
        match &hub {
            Some(first) => diags.push(
                Diagnostic::at(
                    Loc::new(h.file, flag.span.clone()),
                    format!(
                        "a second monitoring hub: {} already is the fleet's monitoring hub",
                        first.src.name
                    ),
                )
                .label("second hub")
                .related(Loc::new(first.src.file, first.span.clone()), "first hub")
                .hint("one host per fleet scrapes and stores for all: keep `monitoring = true` on one of the two"),
            ),
            None => {
                hub = Some(Hub {
                    src: h,
                    span: flag.span.clone(),
                })
            }
        }
    }
    hub
}

/// `[monitoring]` belongs on the hub only.
fn misplaced_settings(inv: &Inventory, hub: Option<&Hub>, diags: &mut Vec<Diagnostic>) {
    for h in &inv.hosts {
        let Some(m) = &h.raw.monitoring else { continue };
        if hub.is_some_and(|hub| hub.src.name == h.name) {
            continue;
        }
        let hint = match hub {
            Some(hub) => format!(
                "move the table to {} (the monitoring hub), or make this host the hub with [roles] monitoring = true",
                hub.src.path
            ),
            None => "add [roles] monitoring = true to this host, or remove the table".into(),
        };
        diags.push(
            Diagnostic::at(
                Loc::new(h.file, m.span.clone()),
                format!(
                    "[monitoring] settings on {}, which is not the monitoring hub",
                    h.name
                ),
            )
            .hint(hint),
        );
    }
}

/// The stack (Prometheus, Alertmanager, Grafana, Loki) runs on the hub and
/// nowhere else: a second stack would be disconnected from the fleet's.
fn stack_placement(inv: &Inventory, hub: Option<&Hub>, diags: &mut Vec<Diagnostic>) {
    for h in &inv.hosts {
        let services = h
            .raw
            .containers
            .as_ref()
            .map(|c| &c.services[..])
            .unwrap_or(&[]);
        if hub.is_none()
            && let Some(s) = services.iter().find(|s| s.value.as_str() == HOST_EXPORTER)
        {
            diags.push(
                Diagnostic::at(
                    Loc::new(h.file, s.span.clone()),
                    format!(
                        "`{HOST_EXPORTER}` runs on {} as part of the fleet's monitoring, but no host is the monitoring hub",
                        h.name
                    ),
                )
                .hint(format!(
                    "add `[roles]` with `monitoring = true` to one host (every host then runs node-exporter), or remove `{HOST_EXPORTER}` from {}",
                    h.path
                )),
            );
        }
        let is_hub = hub.is_some_and(|hub| hub.src.name == h.name);
        if is_hub {
            continue;
        }
        for s in services
            .iter()
            .filter(|s| STACK.contains(&s.value.as_str()))
        {
            let d = match hub {
                Some(hub) => Diagnostic::at(
                    Loc::new(h.file, s.span.clone()),
                    format!(
                        "`{}` runs on {}, but {} is the fleet's monitoring hub",
                        s.value, h.name, hub.src.name
                    ),
                )
                .related(Loc::new(hub.src.file, hub.span.clone()), "the hub")
                .hint(format!(
                    "remove it: {} is scraped by and ships its logs to {}; a second stack would see only itself",
                    h.name, hub.src.name
                )),
                None => Diagnostic::at(
                    Loc::new(h.file, s.span.clone()),
                    format!(
                        "`{}` runs on {}, but no host is the fleet's monitoring hub",
                        s.value, h.name
                    ),
                )
                .hint(format!(
                    "add `[roles]` with `monitoring = true` to {} (it then scrapes every host), or remove the service",
                    h.path
                )),
            };
            diags.push(d);
        }
    }
    let Some(hub) = hub else { return };
    let services: Vec<&str> = hub
        .src
        .raw
        .containers
        .as_ref()
        .map(|c| c.services.iter().map(|s| s.value.as_str()).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = STACK
        .iter()
        .copied()
        .filter(|s| !services.contains(s))
        .collect();
    if !missing.is_empty() {
        diags.push(
            Diagnostic::at(
                Loc::new(hub.src.file, hub.span.clone()),
                format!(
                    "the monitoring hub {} does not run {}",
                    hub.src.name,
                    missing.join(", ")
                ),
            )
            .hint(format!(
                "add {} to its [containers] services",
                missing
                    .iter()
                    .map(|m| format!("\"{m}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }
}

/// Intervals and the ntfy URL from the hub's `[monitoring]`, with defaults.
struct Settings {
    scrape_interval_secs: u64,
    host_down_after_secs: u64,
    ntfy_url: String,
}

fn hub_settings(
    inv: &Inventory,
    hub: &Hub,
    plans: &[HostPlan],
    diags: &mut Vec<Diagnostic>,
) -> Option<Settings> {
    let file = hub.src.file;
    let m = hub.src.raw.monitoring.as_ref().map(|m| &m.value);
    let mut ok = true;
    let mut secs = |v: Option<&Spanned<String>>, default: u64, diags: &mut Vec<Diagnostic>| {
        let Some(v) = v else { return default };
        match parse_duration(&v.value) {
            Ok(d) if d.subsec_nanos() == 0 => d.as_secs(),
            Ok(_) => {
                ok = false;
                diags.push(
                    Diagnostic::at(
                        Loc::new(file, v.span.clone()),
                        format!("`{}` is not a whole number of seconds", v.value),
                    )
                    .hint("write e.g. \"15s\", \"1m\" or \"2m30s\""),
                );
                default
            }
            Err(e) => {
                ok = false;
                diags.push(
                    Diagnostic::at(Loc::new(file, v.span.clone()), e)
                        .hint("durations are written like \"30s\", \"10m\" or \"1h\""),
                );
                default
            }
        }
    };
    let scrape_interval_secs = secs(m.and_then(|m| m.scrape_interval.as_ref()), 30, diags);
    let host_down_after_secs = secs(m.and_then(|m| m.host_down_after.as_ref()), 120, diags);
    let ntfy_url = ntfy_url(inv, hub, plans, diags);
    (ok && ntfy_url.is_some()).then(|| Settings {
        scrape_interval_secs,
        host_down_after_secs,
        ntfy_url: ntfy_url.unwrap_or_default(),
    })
}

/// `[monitoring] ntfy_url`, or https://ntfy.<domain>/<topic> of the host that
/// runs ntfy. With neither, alerts would go nowhere: an error.
fn ntfy_url(
    inv: &Inventory,
    hub: &Hub,
    plans: &[HostPlan],
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let file = hub.src.file;
    let m = hub.src.raw.monitoring.as_ref().map(|m| &m.value);
    if let Some(u) = m.and_then(|m| m.ntfy_url.as_ref()) {
        return match check_ntfy_url(&u.value) {
            Ok(url) => Some(url),
            Err(e) => {
                diags.push(Diagnostic::at(Loc::new(file, u.span.clone()), e).hint(
                    "write the topic's URL, e.g. \"https://ntfy.example.net/alerts\" (access tokens do not belong in the URL)",
                ));
                None
            }
        };
    }
    let topic = match m.and_then(|m| m.ntfy_topic.as_ref()) {
        Some(t) if valid_topic(&t.value) => t.value.clone(),
        Some(t) => {
            diags.push(
                Diagnostic::at(
                    Loc::new(file, t.span.clone()),
                    format!("`{}` is not an ntfy topic name", t.value),
                )
                .hint("topics are 1-64 letters, digits, '-' and '_'"),
            );
            return None;
        }
        None => "alerts".to_string(),
    };
    let runs_ntfy = plans.iter().find(|p| {
        p.containers
            .as_ref()
            .is_some_and(|c| c.services.iter().any(|s| s.name == "ntfy"))
    });
    match runs_ntfy {
        Some(p) => {
            let domain = &p.containers.as_ref().expect("runs ntfy").domain;
            Some(format!("https://ntfy.{domain}/{topic}"))
        }
        None => {
            let _ = inv;
            diags.push(
                Diagnostic::at(
                    Loc::new(file, hub.span.clone()),
                    "alerts have nowhere to go: no host runs ntfy and [monitoring] ntfy_url is not set",
                )
                .hint("add \"ntfy\" to some host's [containers] services, or set [monitoring] ntfy_url = \"https://...\" on the hub"),
            );
            None
        }
    }
}

/// An http(s) URL with a host and no credentials; returned normalized.
pub fn check_ntfy_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` carries credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a query or fragment; potato adds the template parameters itself"
        ));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(format!("`{text}` names no topic"));
    }
    Ok(url.to_string())
}

fn valid_topic(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// Per host: the address the hub scrapes and the hub's address it sees the
/// scrapes (and sends its logs) from. A host the hub shares no tunnel with
/// is an error: scrapes travel over WireGuard only.
fn scrape_addresses(
    inv: &Inventory,
    hub: &Hub,
    plans: &[HostPlan],
    diags: &mut Vec<Diagnostic>,
) -> Option<BTreeMap<String, (IpAddr, IpAddr)>> {
    let hub_plan = plans.iter().find(|p| p.name == hub.src.name)?;
    let mut out = BTreeMap::new();
    for p in plans {
        if p.name == hub_plan.name {
            let own = match hub_plan.wireguard.first() {
                Some(w) => w.address.addr(),
                None => monitoring_gateway(hub_plan)?,
            };
            out.insert(p.name.clone(), (own, own));
            continue;
        }
        match p.shared_tunnel(hub_plan) {
            Some(pair) => {
                out.insert(p.name.clone(), pair);
            }
            None => {
                let src = inv.hosts.iter().find(|h| h.name == p.name)?;
                let tunnels: Vec<String> = hub_plan
                    .wireguard
                    .iter()
                    .map(|w| w.address.trunc().to_string())
                    .collect();
                let span = src
                    .raw
                    .wireguard
                    .values()
                    .next()
                    .map(|w| w.span.clone())
                    .unwrap_or(0..0);
                let tunnels = if tunnels.is_empty() {
                    "none: the hub has no [wireguard] interface".to_string()
                } else {
                    tunnels.join(", ")
                };
                diags.push(
                    Diagnostic::at(
                        Loc::new(src.file, span),
                        format!(
                            "{} shares no WireGuard tunnel with the monitoring hub {} (its tunnels: {tunnels}), so it cannot be scraped",
                            p.name, hub_plan.name
                        ),
                    )
                    .related(Loc::new(hub.src.file, hub.span.clone()), "the hub")
                    .hint("metrics and logs travel over WireGuard only: give this host a [wireguard.wg0] address in the hub's tunnel subnet"),
                );
            }
        }
    }
    Some(out)
}

/// The hub's own address as its containers see it when it has no tunnel: the
/// monitoring network's gateway.
fn monitoring_gateway(plan: &HostPlan) -> Option<IpAddr> {
    let net = plan.containers.as_ref()?.networks.get("monitoring")?;
    net.hosts().next()
}

/// Fills in every plan: the `MonitoringPlan`, the firewall openings, and
/// Loki's published port on the hub.
fn apply(
    hub: &str,
    settings: Settings,
    addresses: &BTreeMap<String, (IpAddr, IpAddr)>,
    inv: &Inventory,
    plans: &mut [HostPlan],
    diags: &mut Vec<Diagnostic>,
) {
    let hub_monitoring_net = plans
        .iter()
        .find(|p| p.name == hub)
        .and_then(|p| p.containers.as_ref()?.networks.get("monitoring").copied());
    let Some(hub_monitoring_net) = hub_monitoring_net else {
        return;
    };
    let mut targets = Vec::new();
    let mut log_sources = Vec::new();
    for p in plans.iter() {
        let (addr, _) = addresses[&p.name];
        for (job, port) in
            std::iter::once(("node".to_string(), EXPORTER_PORT)).chain(extra_exporters(p))
        {
            targets.push(ScrapeTarget {
                job,
                host: p.name.clone(),
                address: socket(addr, port),
            });
        }
        if p.name != hub {
            log_sources.push((p.name.clone(), addr));
        }
    }
    targets.sort_by(|a, b| (&a.job, &a.host).cmp(&(&b.job, &b.host)));
    let cadvisor = plans.iter().any(|p| {
        p.name == hub
            && p.containers
                .as_ref()
                .is_some_and(|c| c.services.iter().any(|s| s.name == "cadvisor"))
    });
    let fleet: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    for p in plans.iter_mut() {
        let (addr, hub_addr) = addresses[&p.name];
        let tunnel_peers = p
            .wireguard
            .iter()
            .flat_map(|w| {
                w.peers
                    .iter()
                    .filter(|peer| fleet.contains(&peer.name))
                    .map(|peer| TunnelPeer {
                        interface: w.name.clone(),
                        peer: peer.name.clone(),
                        public_key: peer.public_key.clone(),
                    })
            })
            .collect();
        let is_hub = p.name == hub;
        let scraped_from = if is_hub {
            hub_monitoring_net
        } else {
            IpNet::from(hub_addr)
        };
        check_host_openings(inv, p, hub, scraped_from, diags);
        let extra = extra_exporters(p);
        let mut fleet_rules = vec![allow_from(
            EXPORTER_PORT,
            vec![scraped_from],
            &format!("node-exporter, scraped by the monitoring hub {hub}"),
        )];
        for (job, port) in &extra {
            fleet_rules.push(allow_from(
                *port,
                vec![scraped_from],
                &format!("{job} metrics, scraped by the monitoring hub {hub}"),
            ));
        }
        let loki_push_url = if is_hub {
            format!("http://127.0.0.1:{LOKI_PORT}/loki/api/v1/push")
        } else {
            format!("http://{}/loki/api/v1/push", socket(hub_addr, LOKI_PORT))
        };
        if is_hub {
            grafana_auth_proxy(p);
        }
        if is_hub && !log_sources.is_empty() {
            fleet_rules.push(allow_from(
                LOKI_PORT,
                log_sources.iter().map(|(_, a)| IpNet::from(*a)).collect(),
                "Loki, where every host ships its logs",
            ));
            publish_loki(p);
        }
        // After the host's own rules (whose numbers stay those of the host
        // file), before the default policy.
        p.firewall.rules.append(&mut fleet_rules);
        p.monitoring = Some(MonitoringPlan {
            hub: hub.to_string(),
            is_hub,
            address: addr,
            scraped_from,
            loki_push_url,
            extra_exporters: extra,
            tunnel_peers,
            hub_config: is_hub.then(|| HubConfig {
                scrape_interval_secs: settings.scrape_interval_secs,
                host_down_after_secs: settings.host_down_after_secs,
                targets: targets.clone(),
                ntfy_url: settings.ntfy_url.clone(),
                cadvisor,
                log_sources: log_sources.clone(),
            }),
        });
    }
}

/// The user header Grafana trusts: authentik's outpost sets it and Traefik's
/// forward-auth copies it onto the request, replacing one the client sent
/// (Traefik's `authResponseHeaders`).
pub const GRAFANA_USER_HEADER: &str = "X-authentik-username";

/// Grafana's auth proxy on the hub (`[auth.proxy]`, set through `GF_AUTH_PROXY_*`;
/// <https://grafana.com/docs/grafana/latest/setup-grafana/configure-access/configure-authentication/auth-proxy/>):
/// on, with auto sign-up, only when Grafana's route is behind forward-auth and
/// the hub runs Traefik, and then trusting the header from Traefik's fixed
/// address on the proxy network alone (`whitelist`). Without forward-auth a
/// client could send the header itself through Traefik, so the proxy is off
/// and Grafana asks for its own login.
fn grafana_auth_proxy(p: &mut HostPlan) {
    let Some(c) = p.containers.as_mut() else {
        return;
    };
    let traefik = c.traefik_address();
    let Some(grafana) = c.services.iter_mut().find(|s| s.name == "grafana") else {
        return;
    };
    let text = |v: &str| vec![crate::catalog::EnvPart::Text(v.to_string())];
    for key in [
        "GF_AUTH_PROXY_ENABLED",
        "GF_AUTH_PROXY_HEADER_NAME",
        "GF_AUTH_PROXY_HEADER_PROPERTY",
        "GF_AUTH_PROXY_AUTO_SIGN_UP",
        "GF_AUTH_PROXY_WHITELIST",
    ] {
        grafana.env.remove(key);
    }
    match traefik.filter(|_| grafana.sso && grafana.web.is_some()) {
        Some(addr) => {
            grafana
                .env
                .insert("GF_AUTH_PROXY_ENABLED".into(), text("true"));
            grafana.env.insert(
                "GF_AUTH_PROXY_HEADER_NAME".into(),
                text(GRAFANA_USER_HEADER),
            );
            grafana
                .env
                .insert("GF_AUTH_PROXY_HEADER_PROPERTY".into(), text("username"));
            grafana
                .env
                .insert("GF_AUTH_PROXY_AUTO_SIGN_UP".into(), text("true"));
            grafana
                .env
                .insert("GF_AUTH_PROXY_WHITELIST".into(), text(&addr.to_string()));
        }
        None => {
            grafana
                .env
                .insert("GF_AUTH_PROXY_ENABLED".into(), text("false"));
        }
    }
}

/// Publishes each scraped container's metrics port on its host (Traefik's
/// 8082, CrowdSec's 6060), so the hub reaches it at the host's tunnel address.
/// Who may connect is the firewall rule `apply` added for the job: the hub's
/// tunnel address only. Both images listen on all their interfaces there.
pub fn publish_scraped_ports(plans: &mut [HostPlan]) {
    for p in plans.iter_mut() {
        let Some(m) = &p.monitoring else { continue };
        let jobs = m.extra_exporters.clone();
        let Some(c) = p.containers.as_mut() else {
            continue;
        };
        for (job, port) in jobs {
            if let Some(svc) = c.services.iter_mut().find(|s| s.name == job)
                && !svc.ports.iter().any(|x| x.host == port)
            {
                svc.ports.push(Publish {
                    host: port,
                    container: port,
                    proto: Proto::Tcp,
                });
            }
        }
    }
}

/// Traefik and CrowdSec expose metrics where they run.
fn extra_exporters(p: &HostPlan) -> Vec<(String, u16)> {
    let runs = |name: &str| {
        p.containers
            .as_ref()
            .is_some_and(|c| c.services.iter().any(|s| s.name == name))
    };
    let mut out = Vec::new();
    if runs("traefik") {
        out.push(("traefik".to_string(), TRAEFIK_METRICS_PORT));
    }
    if runs("crowdsec") {
        out.push(("crowdsec".to_string(), CROWDSEC_METRICS_PORT));
    }
    out
}

/// A host rule that lets more than the hub reach the exporter port would undo
/// "the hub's tunnel address only".
fn check_host_openings(
    inv: &Inventory,
    p: &HostPlan,
    hub: &str,
    scraped_from: IpNet,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(src) = inv.hosts.iter().find(|h| h.name == p.name) else {
        return;
    };
    for (i, r) in p.firewall.rules.iter().enumerate() {
        let too_wide = r.action.admits()
            && r.matches_port(EXPORTER_PORT, Proto::Tcp)
            && match &r.source {
                Source::Any => true,
                Source::Nets { nets, .. } => nets.iter().any(|n| !scraped_from.contains(n)),
            };
        if !too_wide {
            continue;
        }
        let span = src
            .raw
            .firewall
            .rules
            .get(i)
            .map(|t| t.span.clone())
            .unwrap_or(0..0);
        diags.push(
            Diagnostic::at(
                Loc::new(src.file, span),
                format!(
                    "rule `{}` opens node-exporter's port {EXPORTER_PORT} to {}, beyond the monitoring hub {hub} ({scraped_from})",
                    r.text,
                    r.source.describe()
                ),
            )
            .hint(format!(
                "remove the rule: potato opens {EXPORTER_PORT}/tcp to the hub's tunnel address only"
            )),
        );
    }
}

pub(crate) fn allow_from(port: u16, nets: Vec<IpNet>, why: &str) -> Rule {
    let sources: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
    Rule {
        text: format!("allow {port}/tcp from {} (fleet: {why})", sources.join(",")),
        action: Action::Allow,
        ports: vec![PortRange { lo: port, hi: port }],
        protos: vec![Proto::Tcp],
        source: Source::Nets { name: None, nets },
        iface: None,
    }
}

/// Loki answers the spokes on the hub's published port 3100; the firewall
/// rule above decides who reaches it.
fn publish_loki(p: &mut HostPlan) {
    let Some(c) = p.containers.as_mut() else {
        return;
    };
    if let Some(loki) = c.services.iter_mut().find(|s| s.name == "loki")
        && !loki.ports.iter().any(|x| x.host == LOKI_PORT)
    {
        loki.ports.push(Publish {
            host: LOKI_PORT,
            container: LOKI_PORT,
            proto: Proto::Tcp,
        });
    }
}

/// "10.99.0.10:9100", or "[fd00::1]:9100".
pub fn socket(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntfy_urls() {
        assert_eq!(
            check_ntfy_url("https://ntfy.example.net/alerts").unwrap(),
            "https://ntfy.example.net/alerts"
        );
        assert!(check_ntfy_url("ftp://x/alerts").is_err());
        assert!(check_ntfy_url("https://user:pw@x/alerts").is_err());
        assert!(check_ntfy_url("https://x/alerts?auth=1").is_err());
        assert!(check_ntfy_url("https://x/").is_err());
        assert!(check_ntfy_url("not a url").is_err());
    }

    #[test]
    fn sockets_bracket_ipv6() {
        assert_eq!(socket("10.0.0.1".parse().unwrap(), 9100), "10.0.0.1:9100");
        assert_eq!(socket("fd00::1".parse().unwrap(), 9100), "[fd00::1]:9100");
    }
}
