//! The fleet wiring as `potato plan` shows it: which host serves identity,
//! monitoring, logs and the binary cache, and per host what it sends to and receives from the
//! others (forward-auth to the identity host, metrics scraped by the hub,
//! logs shipped to the hub's Loki, paths substituted from the fleet cache)
//! and its WireGuard peers among them.
//!
//! Owns only this read-out: it is derived from the resolved plans (their
//! `sso`, `monitoring`, `edge`, `cache` and WireGuard parts, decided by
//! `edge`, `monitoring`, `cache` and `resolve`) and changes nothing. Must not decide any
//! wiring itself.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::monitoring::socket;
use crate::plan::HostPlan;

/// The whole fleet's wiring.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetWiring {
    /// The identity host (its authentik is the fleet's single sign-on).
    pub identity: Option<String>,
    /// authentik as browsers reach it, and how many routes of the fleet it
    /// protects (its blueprint's providers).
    pub authentik_url: Option<String>,
    pub protected_routes: usize,
    /// The monitoring hub (Prometheus, Alertmanager, Grafana).
    pub monitoring: Option<String>,
    /// Where every host's logs go (the hub's Loki).
    pub logs: Option<String>,
    /// The host serving the fleet binary cache (`[fleet.cache]`).
    pub cache: Option<String>,
    /// Per host, by name (every host of the fleet has an entry).
    pub hosts: BTreeMap<String, HostWiring>,
}

/// One host's links with the other hosts, each list sorted by (kind, peer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostWiring {
    pub sends: Vec<Link>,
    pub receives: Vec<Link>,
    /// Fleet hosts this host has a WireGuard tunnel with (both directions).
    pub wireguard_peers: Vec<Link>,
    /// The fleet cache's URL this host substitutes from (None on the cache
    /// host and in a fleet without one).
    pub substituter: Option<String>,
}

/// What flows between this host and `peer`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Link {
    pub kind: LinkKind,
    pub peer: String,
    /// What exactly: the routes, the scrape targets, the push URL, the interface.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// Traefik asks the identity host's authentik before routing a request.
    ForwardAuth,
    /// The hub's Prometheus scrapes this host's exporters.
    Metrics,
    /// This host's log shipper pushes to the hub's Loki.
    Logs,
    /// This host's Nix substitutes paths from the fleet binary cache.
    Cache,
    Wireguard,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::ForwardAuth => "forward-auth",
            LinkKind::Metrics => "metrics",
            LinkKind::Logs => "logs",
            LinkKind::Cache => "cache",
            LinkKind::Wireguard => "wireguard",
        }
    }
}

/// The wiring of the fleet `plans` (every host, resolved together).
pub fn fleet(plans: &[HostPlan]) -> FleetWiring {
    let mut w = FleetWiring {
        identity: identity(plans),
        monitoring: plans
            .iter()
            .find_map(|p| p.monitoring.as_ref().map(|m| m.hub.clone())),
        ..FleetWiring::default()
    };
    w.logs = w.monitoring.clone();
    w.cache = crate::cache::of_fleet(plans).map(|c| c.host.clone());
    if let Some(sso) = plans.iter().find_map(|p| p.sso.as_ref()) {
        w.authentik_url = Some(sso.authentik_url.clone());
        w.protected_routes = sso.routes.len();
    }
    for p in plans {
        w.hosts.insert(p.name.clone(), HostWiring::default());
    }
    forward_auth(plans, &mut w);
    monitoring(plans, &mut w);
    cache(plans, &mut w);
    tunnels(plans, &mut w);
    for h in w.hosts.values_mut() {
        h.sends.sort();
        h.receives.sort();
        h.wireguard_peers.sort();
    }
    w
}

/// The identity host: the one carrying the fleet's `SsoPlan`, else the one
/// the edge plans name.
fn identity(plans: &[HostPlan]) -> Option<String> {
    plans
        .iter()
        .find(|p| p.sso.is_some())
        .map(|p| p.name.clone())
        .or_else(|| {
            plans.iter().find_map(|p| {
                p.edge
                    .as_ref()
                    .and_then(|e| e.identity.as_ref())
                    .map(|i| i.host.clone())
            })
        })
}

/// Adds `link` to `from`'s sends and its mirror to `to`'s receives.
fn connect(w: &mut FleetWiring, kind: LinkKind, from: &str, to: &str, detail: String) {
    if let Some(h) = w.hosts.get_mut(from) {
        h.sends.push(Link {
            kind,
            peer: to.to_string(),
            detail: detail.clone(),
        });
    }
    if let Some(h) = w.hosts.get_mut(to) {
        h.receives.push(Link {
            kind,
            peer: from.to_string(),
            detail,
        });
    }
}

/// Each host's protected routes, asked of the identity host's authentik.
fn forward_auth(plans: &[HostPlan], w: &mut FleetWiring) {
    let Some(id) = w.identity.clone() else {
        return;
    };
    let Some(sso) = plans.iter().find_map(|p| p.sso.as_ref()) else {
        return;
    };
    let mut by_host: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &sso.routes {
        by_host.entry(&r.host).or_default().push(&r.name);
    }
    for (host, routes) in by_host {
        if host == id {
            continue;
        }
        let detail = format!("{} via {}", routes.join(", "), sso.authentik_url);
        connect(w, LinkKind::ForwardAuth, host, &id, detail);
    }
}

/// Metrics and logs from every spoke to the hub.
fn monitoring(plans: &[HostPlan], w: &mut FleetWiring) {
    for p in plans {
        let Some(m) = &p.monitoring else { continue };
        if m.is_hub {
            continue;
        }
        let targets: Vec<String> =
            std::iter::once(("node".to_string(), crate::monitoring::EXPORTER_PORT))
                .chain(m.extra_exporters.iter().cloned())
                .map(|(job, port)| format!("{job} {}", socket(m.address, port)))
                .collect();
        connect(w, LinkKind::Metrics, &p.name, &m.hub, targets.join(", "));
        connect(w, LinkKind::Logs, &p.name, &m.hub, m.loki_push_url.clone());
    }
}

/// Every other host substitutes from the cache host, at its URL.
fn cache(plans: &[HostPlan], w: &mut FleetWiring) {
    let Some(c) = crate::cache::of_fleet(plans) else {
        return;
    };
    for (host, consumer) in &c.consumers {
        connect(w, LinkKind::Cache, host, &c.host, consumer.url.clone());
        if let Some(h) = w.hosts.get_mut(host) {
            h.substituter = c.substituter_for(host);
        }
    }
}

/// WireGuard peers that are fleet hosts.
fn tunnels(plans: &[HostPlan], w: &mut FleetWiring) {
    for p in plans {
        for iface in &p.wireguard {
            for peer in &iface.peers {
                if !w.hosts.contains_key(&peer.name) {
                    continue;
                }
                if let Some(h) = w.hosts.get_mut(&p.name) {
                    h.wireguard_peers.push(Link {
                        kind: LinkKind::Wireguard,
                        peer: peer.name.clone(),
                        detail: iface.name.clone(),
                    });
                }
            }
        }
    }
}
