//! The fleet-wide part of `[fleet.cache]`: at most one cache host; every
//! other host reaches it over a WireGuard tunnel the two share; the cache
//! host's firewall admits the cache port from those consumers' tunnel
//! addresses only (an ordinary `firewall::Rule` appended after the host's
//! own, compiled by the one firewall compiler, as monitoring does). Runs
//! after every host resolved and the WireGuard peers are known.

use std::ops::Range;

use ipnet::IpNet;

use super::Consumer;
use crate::diag::{Diagnostic, Loc};
use crate::inventory::{HostSource, Inventory};
use crate::plan::HostPlan;

/// The cache claim: which host, where in its file.
struct Claim<'a> {
    src: &'a HostSource,
    span: Range<usize>,
}

/// At most one host of the fleet has `[fleet.cache]`: a second is an error
/// naming both files. Checked with the per-host rules (`resolve` calls it
/// whatever else is wrong), so it is never hidden behind another error.
pub fn check_one_cache_host(inv: &Inventory, diags: &mut Vec<Diagnostic>) {
    let mut first: Option<Claim> = None;
    for claim in claims(inv) {
        match &first {
            Some(first) => diags.push(
                Diagnostic::at(
                    Loc::new(claim.src.file, claim.span.clone()),
                    format!(
                        "a second fleet cache: {} already serves the fleet's binary cache ({})",
                        first.src.name, first.src.path
                    ),
                )
                .label("second cache")
                .related(Loc::new(first.src.file, first.span.clone()), "first cache")
                .hint("one host serves the cache for the whole fleet: keep [fleet.cache] in one of the two files"),
            ),
            None => first = Some(claim),
        }
    }
}

/// Every host file's `[fleet.cache]` table, in inventory order.
fn claims(inv: &Inventory) -> impl Iterator<Item = Claim<'_>> {
    inv.hosts.iter().filter_map(|h| {
        let table = h.raw.fleet.as_ref()?.cache.as_ref()?;
        Some(Claim {
            src: h,
            span: table.span.clone(),
        })
    })
}

/// Wires the cache into every plan, or adds diagnostics and changes nothing.
/// Runs on a fleet that passed `check_one_cache_host`.
pub fn wire(inv: &Inventory, plans: &mut [HostPlan], diags: &mut Vec<Diagnostic>) {
    let before = diags.len();
    let Some(claim) = claims(inv).next() else {
        return;
    };
    let Some(mut cache) = plans
        .iter()
        .find(|p| p.name == claim.src.name)
        .and_then(|p| p.cache.clone())
    else {
        return;
    };
    let Some(cache_plan) = plans.iter().find(|p| p.name == claim.src.name) else {
        return;
    };
    port_is_free(&claim, cache_plan, cache.port, diags);
    for p in plans.iter().filter(|p| p.name != cache.host) {
        match p.shared_tunnel(cache_plan) {
            Some((from, via)) => {
                cache.consumers.insert(
                    p.name.clone(),
                    Consumer {
                        url: format!("http://{}", crate::monitoring::socket(via, cache.port)),
                        from,
                        via,
                    },
                );
            }
            None => diags.push(no_shared_tunnel(inv, &claim, cache_plan, p)),
        }
    }
    if let Some(p) = plans.iter().find(|p| p.name == cache.host) {
        host_openings(&claim, p, &cache, diags);
    }
    if diags.len() > before {
        return;
    }
    for p in plans.iter_mut() {
        if p.name == cache.host && !cache.consumers.is_empty() {
            let from: Vec<IpNet> = cache.consumers.values().map(|c| c.from.into()).collect();
            p.firewall.rules.push(crate::monitoring::allow_from(
                cache.port,
                from,
                "the binary cache, substituted from by every host",
            ));
        }
        p.cache = Some(cache.clone());
    }
}

/// The cache port must not be one the cache host already uses: its SSH port
/// or a port its containers publish.
fn port_is_free(claim: &Claim, p: &HostPlan, port: u16, diags: &mut Vec<Diagnostic>) {
    let port_span = claim
        .src
        .raw
        .fleet
        .as_ref()
        .and_then(|f| f.cache.as_ref())
        .and_then(|c| c.port.as_ref())
        .map(|x| x.span.clone())
        .unwrap_or_else(|| claim.span.clone());
    let user = if p.ssh.port == port {
        Some("sshd".to_string())
    } else {
        p.containers.as_ref().and_then(|c| {
            c.services
                .iter()
                .find(|s| s.ports.iter().any(|x| x.host == port))
                .map(|s| format!("the container `{}`", s.name))
        })
    };
    if let Some(user) = user {
        diags.push(
            Diagnostic::at(
                Loc::new(claim.src.file, port_span),
                format!(
                    "the fleet cache's port {port} is already used by {user} on {}",
                    p.name
                ),
            )
            .hint("set [fleet.cache] port to a free port (the default is 5080)"),
        );
    }
}

/// A rule of the cache host's own that admits the cache port from beyond
/// the consumers' tunnel addresses would undo "the fleet's hosts only" (the
/// cache serves every path of every host, unauthenticated).
fn host_openings(
    claim: &Claim,
    p: &HostPlan,
    cache: &super::FleetCache,
    diags: &mut Vec<Diagnostic>,
) {
    use crate::catalog::Proto;
    use crate::harden::firewall::Source;
    let allowed: Vec<IpNet> = cache.consumers.values().map(|c| c.from.into()).collect();
    let own = &claim.src.raw.firewall.rules;
    for (r, text) in p.firewall.rules.iter().zip(own) {
        let too_wide = r.action.admits()
            && r.matches_port(cache.port, Proto::Tcp)
            && match &r.source {
                Source::Any => true,
                Source::Nets { nets, .. } => {
                    nets.iter().any(|n| !allowed.iter().any(|a| a.contains(n)))
                }
            };
        if too_wide {
            diags.push(
                Diagnostic::at(
                    Loc::new(claim.src.file, text.span.clone()),
                    format!(
                        "rule `{}` opens the fleet cache's port {} to {}, beyond the fleet's hosts",
                        r.text,
                        cache.port,
                        r.source.describe()
                    ),
                )
                .hint(format!(
                    "remove the rule: potato opens {}/tcp to the other hosts' tunnel addresses only",
                    cache.port
                )),
            );
        }
    }
}

fn no_shared_tunnel(
    inv: &Inventory,
    claim: &Claim,
    cache_plan: &HostPlan,
    p: &HostPlan,
) -> Diagnostic {
    let src = inv.hosts.iter().find(|h| h.name == p.name);
    let (file, span) = match src {
        Some(s) => (
            s.file,
            s.raw
                .wireguard
                .values()
                .next()
                .map(|w| w.span.clone())
                .unwrap_or(0..0),
        ),
        None => (claim.src.file, claim.span.clone()),
    };
    let tunnels: Vec<String> = cache_plan
        .wireguard
        .iter()
        .map(|w| format!("{} {}", w.name, w.address.trunc()))
        .collect();
    let tunnels = if tunnels.is_empty() {
        "none: it has no [wireguard] interface".to_string()
    } else {
        tunnels.join(", ")
    };
    Diagnostic::at(
        Loc::new(file, span),
        format!(
            "{} shares no WireGuard tunnel with the fleet cache host {} (its tunnels: {tunnels}), so it cannot substitute from the cache",
            p.name, cache_plan.name
        ),
    )
    .related(Loc::new(claim.src.file, claim.span.clone()), "the fleet cache")
    .hint(format!(
        "the cache is served over WireGuard only: give {} a [wireguard.wg0] address in {}'s tunnel subnet (peers = [\"{}\"] or its hub), or remove [fleet.cache] from {}",
        p.name, cache_plan.name, cache_plan.name, claim.src.path
    ))
}

#[cfg(test)]
mod tests {
    use crate::resolve::testkit::{Fleet, WG_KEY_A, WG_KEY_B};

    const WG_KEY_C: &str = "mRpMyv3rLiKAII7Q8yHm0raBqhO6zKOu4d47elPPzGE=";

    /// A host at `addr` with a wg0 address `wg` (None: no tunnel), peering
    /// with `peer`, optionally serving the cache.
    fn host(addr: &str, wg: Option<(&str, &str, &str)>, cache: bool) -> String {
        let mut s = format!("[deploy]\ntarget = \"root@{addr}\"\n");
        if let Some((address, key, peer)) = wg {
            s += &format!(
                "[wireguard.wg0]\naddress = \"{address}\"\nprivate_key = \"secret:wg\"\npublic_key = \"{key}\"\n"
            );
            if !peer.is_empty() {
                s += &format!("peers = [\"{peer}\"]\nlisten_port = 51820\n");
            } else {
                s += "listen_port = 51820\n";
            }
        }
        if cache {
            s += "[fleet.cache]\n";
        }
        s
    }

    fn fleet() -> Fleet {
        Fleet::default()
            .secret("shared", "wg")
            .secret("shared", "fleet-cache-key")
    }

    /// The cache host c: 192.0.2.1, wg0 10.99.0.1/24, `[fleet.cache]` when
    /// `serves`.
    fn c(serves: bool) -> String {
        host("192.0.2.1", Some(("10.99.0.1/24", WG_KEY_A, "")), serves)
    }

    /// Host number `n` of the fleet: 192.0.2.`n`, wg0 `net`.`n`/24 with
    /// `key`, peering with c.
    fn consumer(n: u8, net: &str, key: &str) -> String {
        let wg = format!("{net}.{n}/24");
        host(&format!("192.0.2.{n}"), Some((&wg, key, "c")), false)
    }

    /// c (serving the cache when `serves`) and d, c's peer on wg0 at 10.99.0.2.
    fn c_and_d(serves: bool) -> Fleet {
        fleet()
            .host("c", &c(serves))
            .host("d", &consumer(2, "10.99.0", WG_KEY_B))
    }

    #[test]
    fn consumers_get_the_cache_hosts_tunnel_address() {
        let out = c_and_d(true)
            .host("e", &consumer(3, "10.99.0", WG_KEY_C))
            .resolve();
        let plans = out.plans();
        let cache = crate::cache::of_fleet(plans).expect("the fleet has a cache");
        assert_eq!(cache.host, "c");
        assert_eq!(cache.url_for("d").as_deref(), Some("http://10.99.0.1:5080"));
        assert_eq!(cache.url_for("e").as_deref(), Some("http://10.99.0.1:5080"));
        assert_eq!(
            cache.url_for("c"),
            None,
            "the cache host does not substitute from itself"
        );
        assert_eq!(
            cache.substituter_for("d").as_deref(),
            Some("http://10.99.0.1:5080?priority=30")
        );
        assert_eq!(cache.consumers["e"].from.to_string(), "10.99.0.3");
        assert_eq!(
            cache.listen_addresses(),
            vec!["10.99.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        // Every plan carries the same cache.
        for p in plans {
            assert_eq!(p.cache.as_ref(), Some(cache), "{}", p.name);
        }
        // The cache host admits its port from the consumers' tunnel addresses only.
        let c = plans.iter().find(|p| p.name == "c").unwrap();
        let rule = c
            .firewall
            .rules
            .iter()
            .find(|r| r.matches_port(5080, crate::catalog::Proto::Tcp))
            .expect("a rule for the cache port");
        let crate::harden::firewall::Source::Nets { nets, .. } = &rule.source else {
            panic!("the cache port is open to any: {rule:?}")
        };
        let nets: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.99.0.2/32", "10.99.0.3/32"]);
        let d = plans.iter().find(|p| p.name == "d").unwrap();
        assert!(
            !d.firewall
                .rules
                .iter()
                .any(|r| r.matches_port(5080, crate::catalog::Proto::Tcp))
        );
    }

    #[test]
    fn a_fleet_without_the_table_has_no_cache() {
        let out = c_and_d(false).resolve();
        assert!(crate::cache::of_fleet(out.plans()).is_none());
    }

    #[test]
    fn two_cache_hosts_are_refused_naming_both_files() {
        let d = consumer(2, "10.99.0", WG_KEY_B) + "[fleet.cache]\n";
        let out = fleet().host("c", &c(true)).host("d", &d).resolve();
        let d = out.assert_error(
            "a second fleet cache: c already serves the fleet's binary cache (hosts/c.toml)",
            "[fleet.cache]",
        );
        assert_eq!(out.file_of(d), "hosts/d.toml");
        assert_eq!(d.related[0].1, "first cache");
        assert_eq!(out.inv.sources.name(d.related[0].0.file), "hosts/c.toml");
    }

    #[test]
    fn a_consumer_sharing_no_tunnel_is_an_error() {
        let out = fleet()
            .host("c", &c(true))
            .host("d", &host("192.0.2.2", None, false))
            .resolve();
        let d = out.error("d shares no WireGuard tunnel with the fleet cache host c (its tunnels: wg0 10.99.0.0/24)");
        assert_eq!(out.file_of(d), "hosts/d.toml");
        assert!(
            d.hint
                .as_deref()
                .unwrap()
                .contains("remove [fleet.cache] from hosts/c.toml"),
            "{d:?}"
        );
        assert_eq!(d.related[0].1, "the fleet cache");
    }

    #[test]
    fn a_consumer_in_another_subnet_is_an_error() {
        let d = host("192.0.2.2", Some(("10.98.0.2/24", WG_KEY_B, "")), false);
        let out = fleet().host("c", &c(true)).host("d", &d).resolve();
        out.error("d shares no WireGuard tunnel with the fleet cache host c");
    }

    #[test]
    fn the_port_must_be_free_on_the_cache_host() {
        let out = fleet().host("c", "[fleet.cache]\nport = 22").resolve();
        out.assert_error(
            "the fleet cache's port 22 is already used by sshd on c",
            "22",
        );
    }

    #[test]
    fn a_host_rule_opening_the_cache_port_wider_is_refused() {
        let wide = c(true).replace(
            "[deploy]",
            "[firewall]\nrules = [\"allow 22/tcp from any\", \"allow 5000-5100/tcp from 10.99.0.0/24\"]\n[deploy]",
        );
        let d = consumer(2, "10.99.0", WG_KEY_B);
        let out = fleet().host("c", &wide).host("d", &d).resolve();
        out.assert_error(
            "rule `allow 5000-5100/tcp from 10.99.0.0/24` opens the fleet cache's port 5080 to 10.99.0.0/24, beyond the fleet's hosts",
            "\"allow 5000-5100/tcp from 10.99.0.0/24\"",
        );
        // The consumers' own addresses are fine.
        let narrow = c(true).replace(
            "[deploy]",
            "[firewall]\nrules = [\"allow 22/tcp from any\", \"allow 5080/tcp from 10.99.0.2\"]\n[deploy]",
        );
        fleet().host("c", &narrow).host("d", &d).resolve().plans();
    }

    #[test]
    fn a_lone_cache_host_has_no_consumers_and_no_opening() {
        let out = fleet().host("c", "[fleet.cache]").resolve();
        let p = out.plan();
        assert!(p.cache.as_ref().unwrap().consumers.is_empty());
        assert!(
            !p.firewall
                .rules
                .iter()
                .any(|r| r.matches_port(5080, crate::catalog::Proto::Tcp))
        );
    }
}
