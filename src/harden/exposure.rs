//! The exposure table: every port the host listens on or its firewall opens,
//! who reaches it from each zone (wan, the host file's zones, localhost), by
//! which rule, and what answers there (a container, sshd, WireGuard).
//!
//! Computed from the plan with the firewall's own first-match semantics, so it
//! says what the compiled ruleset does; the packet tests prove the ruleset.
//! Also written as `exposure.json` into the generated files (and so into the
//! system closure), which lets `potato plan --live` diff against what a host
//! runs.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::firewall::{Action, Rule};
use crate::catalog::Proto;
use crate::inventory::schema::Policy;
use crate::plan::HostPlan;

/// One port (or range) and who reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// "443" or "8000-8100".
    pub port: String,
    pub proto: String,
    /// What answers: a container, "sshd", "WireGuard wg0", or "-" (a rule opens
    /// it, nothing of potato's listens).
    pub target: String,
    /// Zone name → reach.
    pub zones: BTreeMap<String, Reach>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// "open", "partly" (some of the zone's networks) or "closed".
    pub state: String,
    /// Why: "rule 2 (limit)", "default deny", "WireGuard wg0" (its listen port), "loopback".
    pub by: String,
}

/// The zones a table has columns for, in order.
pub fn zone_names(plan: &HostPlan) -> Vec<String> {
    let mut z = vec!["wan".to_string()];
    z.extend(plan.zones.keys().filter(|k| *k != "wan").cloned());
    z.push("localhost".into());
    z
}

/// The exposure of one host.
pub fn table(plan: &HostPlan) -> Vec<Row> {
    let mut ports: Vec<(u16, u16, Proto)> = Vec::new();
    for r in plan.firewall.rules.iter().filter(|r| r.action.admits()) {
        for range in &r.ports {
            for p in &r.protos {
                ports.push((range.lo, range.hi, *p));
            }
        }
    }
    ports.push((plan.ssh.port, plan.ssh.port, Proto::Tcp));
    for w in &plan.wireguard {
        if let Some(p) = w.listen_port {
            ports.push((p, p, Proto::Udp));
        }
    }
    for s in plan.containers.iter().flat_map(|c| c.services.iter()) {
        for p in &s.ports {
            ports.push((p.host, p.host, p.proto));
        }
    }
    ports.sort_by_key(|(lo, hi, p)| (*lo, *hi, p.as_str()));
    ports.dedup();

    let zones = zone_names(plan);
    ports
        .into_iter()
        .map(|(lo, hi, proto)| {
            let reach = zones
                .iter()
                .map(|z| (z.clone(), reach(plan, z, lo, proto)))
                .collect();
            Row {
                port: if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                },
                proto: proto.as_str().to_string(),
                target: target(plan, lo, proto),
                zones: reach,
            }
        })
        .collect()
}

fn target(plan: &HostPlan, port: u16, proto: Proto) -> String {
    if let Some(s) = plan
        .containers
        .iter()
        .flat_map(|c| c.services.iter())
        .find(|s| s.ports.iter().any(|p| p.host == port && p.proto == proto))
    {
        return s.name.clone();
    }
    if port == plan.ssh.port && proto == Proto::Tcp {
        return "sshd".into();
    }
    if let Some(w) = plan
        .wireguard
        .iter()
        .find(|w| w.listen_port == Some(port) && proto == Proto::Udp)
    {
        return format!("WireGuard {}", w.name);
    }
    "-".into()
}

fn reach(plan: &HostPlan, zone: &str, port: u16, proto: Proto) -> Reach {
    let r = |state: &str, by: String| Reach {
        state: state.into(),
        by,
    };
    if zone == "localhost" {
        return r("open", "loopback".into());
    }
    if proto == Proto::Udp
        && let Some(w) = plan.wireguard.iter().find(|w| w.listen_port == Some(port))
    {
        return r("open", format!("WireGuard {}", w.name));
    }
    let nets: Vec<IpNet> = if zone == "wan" {
        vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]
    } else {
        plan.zones.get(zone).cloned().unwrap_or_default()
    };
    let verdicts: Vec<(bool, String)> = nets
        .iter()
        .map(|n| {
            first_match(
                &plan.firewall.rules,
                plan.firewall.policies.incoming,
                n,
                port,
                proto,
            )
        })
        .collect();
    let open = verdicts.iter().filter(|(o, _)| *o).count();
    let mut why: Vec<String> = verdicts.iter().map(|(_, w)| w.clone()).collect();
    why.dedup();
    let state = match open {
        0 => "closed",
        n if n == verdicts.len() => "open",
        _ => "partly",
    };
    r(state, why.join(", "))
}

/// The first rule whose source covers all of `from` (interface-bound rules
/// included, and said so), or the default policy.
fn first_match(
    rules: &[Rule],
    incoming: Policy,
    from: &IpNet,
    port: u16,
    proto: Proto,
) -> (bool, String) {
    for (i, rule) in rules.iter().enumerate() {
        if rule.matches_port(port, proto) && rule.source.covers_net(from) {
            let action = match rule.action {
                Action::Allow => "allow",
                Action::Deny => "deny",
                Action::Reject => "reject",
                Action::Limit => "limit",
            };
            let on = rule
                .iface
                .as_ref()
                .map(|i| format!(" on {i}"))
                .unwrap_or_default();
            return (
                rule.action.admits(),
                format!("rule {} ({action}){on}", i + 1),
            );
        }
    }
    let default = match incoming {
        Policy::Allow => "default allow",
        Policy::Deny => "default deny",
        Policy::Reject => "default reject",
    };
    (incoming == Policy::Allow, default.into())
}

/// Rows that differ between what a host runs (`old`) and the plan (`new`),
/// as human lines: "+" appears, "-" disappears, "~" changes.
pub fn diff(old: &[Row], new: &[Row]) -> Vec<String> {
    let key = |r: &Row| (r.port.clone(), r.proto.clone());
    let old_map: BTreeMap<_, _> = old.iter().map(|r| (key(r), r)).collect();
    let new_map: BTreeMap<_, _> = new.iter().map(|r| (key(r), r)).collect();
    let mut out = Vec::new();
    for (k, n) in &new_map {
        match old_map.get(k) {
            None => out.push(format!(
                "+ {}/{} {} ({})",
                k.0,
                k.1,
                open_zones(n),
                n.target
            )),
            Some(o) if o != n => {
                for (z, reach) in &n.zones {
                    let before = o.zones.get(z).map(|r| r.state.as_str()).unwrap_or("closed");
                    if before != reach.state {
                        out.push(format!(
                            "~ {}/{} from {z}: {before} -> {} ({})",
                            k.0, k.1, reach.state, reach.by
                        ));
                    }
                }
                if o.target != n.target {
                    out.push(format!(
                        "~ {}/{} answered by {} -> {}",
                        k.0, k.1, o.target, n.target
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for (k, o) in &old_map {
        if !new_map.contains_key(k) {
            out.push(format!(
                "- {}/{} {} ({})",
                k.0,
                k.1,
                open_zones(o),
                o.target
            ));
        }
    }
    out
}

fn open_zones(r: &Row) -> String {
    let open: Vec<&str> = r
        .zones
        .iter()
        .filter(|(z, reach)| *z != "localhost" && reach.state != "closed")
        .map(|(z, _)| z.as_str())
        .collect();
    if open.is_empty() {
        "open to localhost only".into()
    } else {
        format!("open from {}", open.join(", "))
    }
}
