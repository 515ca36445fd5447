//! `[wireguard.*]` interfaces (name, address, port, keys, external peers) and,
//! fleet-wide, peer resolution: the hosts an interface names and the hosts that
//! name it (a hub derives its spokes), with overlapping AllowedIPs refused.
//! Owns `is_wg_key`; the native configs are `harden::wireguard`'s.

use std::ops::Range;

use ipnet::IpNet;

use super::{HostCx, parse_target};
use crate::diag::{Diagnostic, Loc};
use crate::harden::firewall::parse_net;
use crate::inventory::{HostSource, Inventory};
use crate::plan::*;

impl HostCx<'_> {
    pub(super) fn wireguard(&mut self) -> Vec<WgInterface> {
        let mut out: Vec<(WgInterface, Range<usize>)> = Vec::new();
        for (name, wg) in &self.host.raw.wireguard {
            if !name.starts_with("wg")
                || name.len() > 15
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                self.error(
                    &wg.span,
                    format!("`{name}` is not a WireGuard interface name"),
                    "name interfaces wg0, wg1, ...",
                );
            }
            let address = match wg.address.value.parse::<IpNet>() {
                Ok(a) if a.prefix_len() < a.max_prefix_len() => Some(a),
                Ok(_) => {
                    self.error(
                        &wg.address.span,
                        format!("`{}` has no subnet prefix", wg.address.value),
                        "give the tunnel's prefix, e.g. \"10.99.0.10/24\"",
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        &wg.address.span,
                        format!("`{}` is not an address with prefix", wg.address.value),
                        "write e.g. \"10.99.0.10/24\"",
                    );
                    None
                }
            };
            let listen_port = wg
                .listen_port
                .as_ref()
                .and_then(|p| self.port(p, "listen_port"));
            if let Some(e) = &wg.endpoint
                && let Err(m) = check_endpoint(&e.value)
            {
                self.error(
                    &e.span,
                    m,
                    "write \"host:port\", e.g. \"gw.example.net:51820\"",
                );
            }
            let private = self.secret(&wg.private_key);
            if let Some(pk) = &wg.public_key
                && !is_wg_key(&pk.value)
            {
                self.error(&pk.span, "not a WireGuard public key (44 characters of base64)", format!("run `potato secrets gen {} --kind wireguard` and copy the public key it prints", wg.private_key.value.trim_start_matches("secret:")));
            }
            let mut peers = Vec::new();
            for ext in &wg.external_peers {
                if !is_wg_key(&ext.public_key.value) {
                    self.error(
                        &ext.public_key.span,
                        "not a WireGuard public key (44 characters of base64)",
                        "copy the peer's public key (`wg pubkey`)",
                    );
                }
                let mut allowed = Vec::new();
                for a in &ext.allowed_ips {
                    match parse_net(&a.value) {
                        Some(n) => allowed.push(n),
                        None => self.error(
                            &a.span,
                            format!("`{}` is not a valid CIDR", a.value),
                            "write e.g. \"10.99.0.50/32\"",
                        ),
                    }
                }
                if let Some(e) = &ext.endpoint
                    && let Err(m) = check_endpoint(&e.value)
                {
                    self.error(&e.span, m, "write \"host:port\"");
                }
                peers.push(WgPeer {
                    name: ext.name.value.to_string(),
                    public_key: ext.public_key.value.clone(),
                    allowed_ips: allowed,
                    endpoint: ext.endpoint.as_ref().map(|e| e.value.clone()),
                    persistent_keepalive: None,
                });
            }
            if let (Some(address), Some(private)) = (address, private) {
                for (other, other_span) in &out {
                    if other.address.trunc().contains(&address.trunc())
                        || address.trunc().contains(&other.address.trunc())
                    {
                        let d = Diagnostic::at(
                            self.loc(&wg.address.span),
                            format!(
                                "WireGuard subnet {} of {name} overlaps {} of {}",
                                address.trunc(),
                                other.address.trunc(),
                                other.name
                            ),
                        )
                        .related(self.loc(other_span), "overlapping interface")
                        .hint("give each interface its own subnet");
                        self.diags.push(d);
                    }
                }
                let iface = WgInterface {
                    name: name.clone(),
                    address,
                    listen_port,
                    private_key_secret: private,
                    public_key: wg.public_key.as_ref().map(|p| p.value.clone()),
                    peers,
                };
                out.push((iface, wg.address.span.clone()));
            }
        }
        out.into_iter().map(|(w, _)| w).collect()
    }
}

fn check_endpoint(s: &str) -> Result<(), String> {
    match parse_target(s) {
        Ok(t) if t.user.is_none() && t.port.is_some() => Ok(()),
        _ => Err(format!("`{s}` is not \"host:port\"")),
    }
}

/// 32 bytes in base64: 43 characters, then '='; the last character carries 2 zero bits.
pub fn is_wg_key(k: &str) -> bool {
    let b = k.as_bytes();
    b.len() == 44
        && b[43] == b'='
        && b[..43]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        && b"AEIMQUYcgkosw048".contains(&b[42])
}

/// Fills in each interface's peers: the hosts it names, and the hosts that name it
/// (a hub derives its spokes). Errors: unknown host, no matching interface,
/// missing public key, overlapping AllowedIPs.
///
/// Near-linear in the fleet: every lookup goes through a `WgIndex` built once, and
/// overlapping AllowedIPs are found by sorting, not by comparing every pair.
pub(super) fn resolve_wireguard_peers(
    inv: &Inventory,
    plans: &mut [HostPlan],
    diags: &mut Vec<Diagnostic>,
) {
    let snapshot: Vec<HostPlan> = plans.to_vec();
    let index = WgIndex::new(inv, &snapshot);
    let find_iface = |host: &str, addr: &IpNet| -> Option<(&HostPlan, &WgInterface)> {
        let p = index.plan(host)?;
        let w = p
            .wireguard
            .iter()
            .find(|w| w.address.trunc().contains(&addr.addr()))?;
        Some((p, w))
    };
    for plan in plans.iter_mut() {
        let src = index.source(&plan.name).expect("plan comes from a host");
        for iface in plan.wireguard.iter_mut() {
            let raw = &src.raw.wireguard[&iface.name];
            let mut named = Vec::new();
            for peer in &raw.peers {
                let loc = Loc::new(src.file, peer.span.clone());
                if peer.value == plan.name {
                    diags.push(
                        Diagnostic::at(loc, "an interface cannot peer with its own host")
                            .hint("name another host"),
                    );
                    continue;
                }
                if index.plan(peer.value.as_str()).is_none() {
                    let known: Vec<&str> = snapshot.iter().map(|p| p.name.as_str()).collect();
                    diags.push(
                        Diagnostic::at(loc, format!("unknown host `{}`", peer.value)).hint(
                            format!("peers are host names from hosts/: {}", known.join(", ")),
                        ),
                    );
                    continue;
                }
                match find_iface(&peer.value, &iface.address) {
                    Some((p, w)) => named.push((p.name.clone(), w.clone(), loc)),
                    None => diags.push(
                        Diagnostic::at(
                            loc,
                            format!(
                                "host `{}` has no WireGuard interface in {}",
                                peer.value,
                                iface.address.trunc()
                            ),
                        )
                        .hint(format!(
                            "give {} a [wireguard.*] address inside {}",
                            peer.value,
                            iface.address.trunc()
                        )),
                    ),
                }
            }
            // Hosts naming this one, in fleet order.
            let named_hosts: std::collections::HashSet<&str> =
                named.iter().map(|(n, _, _)| n.as_str()).collect();
            let mut derived = Vec::new();
            for &(host, w) in index.naming(&plan.name) {
                let other = &snapshot[host];
                let w = &other.wireguard[w];
                if other.name != plan.name
                    && iface.address.trunc().contains(&w.address.addr())
                    && !named_hosts.contains(other.name.as_str())
                {
                    let other_src = index.source(&other.name).expect("plan comes from a host");
                    derived.push((
                        other.name.clone(),
                        w.clone(),
                        Loc::new(
                            other_src.file,
                            other_src.raw.wireguard[&w.name].span.clone(),
                        ),
                    ));
                }
            }
            let single_hub = named.len() == 1;
            let mut peers = std::mem::take(&mut iface.peers);
            for (is_named, (name, w, loc)) in named
                .iter()
                .map(|x| (true, x))
                .chain(derived.iter().map(|x| (false, x)))
            {
                let Some(pk) = &w.public_key else {
                    diags.push(Diagnostic::at(loc.clone(), format!("host `{name}` ({}) has no public_key", w.name)).hint(format!("run `potato secrets gen {} --kind wireguard` for {name} and set its public_key", w.private_key_secret)));
                    continue;
                };
                let allowed = if is_named && single_hub && w.endpoint_is_hub() {
                    vec![w.address.trunc()]
                } else {
                    vec![IpNet::from(w.address.addr())]
                };
                let endpoint = index.source(name).and_then(|s| hub_endpoint(s, &w.name));
                let keepalive = (endpoint.is_some() && iface.listen_port.is_none()).then_some(25);
                peers.push(WgPeer {
                    name: name.clone(),
                    public_key: pk.clone(),
                    allowed_ips: allowed,
                    endpoint,
                    persistent_keepalive: keepalive,
                });
            }
            for (j, i) in overlapping_peers(&peers) {
                let span = raw.span.clone();
                diags.push(
                    Diagnostic::at(Loc::new(src.file, span), format!("{}: AllowedIPs of peers `{}` and `{}` overlap", iface.name, peers[j].name, peers[i].name))
                        .hint("WireGuard routes each address to one peer; give each peer distinct allowed_ips"),
                );
            }
            peers.sort_by(|a, b| a.name.cmp(&b.name));
            iface.peers = peers;
        }
    }
}

/// What peer resolution looks up, built once: host files and plans by host name,
/// and for each host name the interfaces that name it as a peer.
struct WgIndex<'a> {
    sources: std::collections::HashMap<&'a str, &'a HostSource>,
    plans: std::collections::HashMap<&'a str, &'a HostPlan>,
    /// Host name → (plan index, interface index) of each interface whose `peers`
    /// lists it, once per interface, in fleet order.
    naming: std::collections::HashMap<&'a str, Vec<(usize, usize)>>,
}

impl<'a> WgIndex<'a> {
    fn new(inv: &'a Inventory, plans: &'a [HostPlan]) -> WgIndex<'a> {
        // The first of equal names wins, as a linear search would find it.
        let mut sources = std::collections::HashMap::new();
        for h in &inv.hosts {
            sources.entry(h.name.as_str()).or_insert(h);
        }
        let mut by_name = std::collections::HashMap::new();
        for p in plans {
            by_name.entry(p.name.as_str()).or_insert(p);
        }
        let mut naming: std::collections::HashMap<&str, Vec<(usize, usize)>> =
            std::collections::HashMap::new();
        for (host, p) in plans.iter().enumerate() {
            let Some(src) = sources.get(p.name.as_str()) else {
                continue;
            };
            for (wi, w) in p.wireguard.iter().enumerate() {
                let mut listed = std::collections::HashSet::new();
                for peer in &src.raw.wireguard[&w.name].peers {
                    if listed.insert(peer.value.as_str()) {
                        naming
                            .entry(peer.value.as_str())
                            .or_default()
                            .push((host, wi));
                    }
                }
            }
        }
        WgIndex {
            sources,
            plans: by_name,
            naming,
        }
    }
    fn source(&self, host: &str) -> Option<&'a HostSource> {
        self.sources.get(host).copied()
    }
    fn plan(&self, host: &str) -> Option<&'a HostPlan> {
        self.plans.get(host).copied()
    }
    fn naming(&self, host: &str) -> &[(usize, usize)] {
        self.naming.get(host).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The pairs of peers (j, i), j < i, with overlapping AllowedIPs, ordered by i
/// then j. CIDR blocks either nest or are disjoint, so after sorting by start
/// (wider first) every block overlaps exactly the open blocks that enclose it.
fn overlapping_peers(peers: &[WgPeer]) -> Vec<(usize, usize)> {
    let mut blocks: Vec<Block> = peers
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.allowed_ips.iter().map(move |n| net_block(n, i)))
        .collect();
    blocks.sort_unstable();
    let mut pairs = std::collections::BTreeSet::new();
    let mut open: Vec<Block> = Vec::new();
    for b in blocks {
        while open.last().is_some_and(|o| o.0 != b.0 || o.3 < b.1) {
            open.pop();
        }
        for o in &open {
            if o.4 != b.4 {
                pairs.insert((o.4.max(b.4), o.4.min(b.4)));
            }
        }
        open.push(b);
    }
    pairs.into_iter().map(|(i, j)| (j, i)).collect()
}

/// A network as (family, first address, prefix length, last address, owner):
/// sorted, a block comes after every block that encloses it.
type Block = (u8, u128, u8, u128, usize);

fn net_block(n: &IpNet, owner: usize) -> Block {
    match n {
        IpNet::V4(v) => (
            4,
            u32::from(v.network()).into(),
            v.prefix_len(),
            u32::from(v.broadcast()).into(),
            owner,
        ),
        IpNet::V6(v) => (
            6,
            v.network().into(),
            v.prefix_len(),
            v.broadcast().into(),
            owner,
        ),
    }
}

/// The endpoint a host's interface is reached at, if its host file gives one.
fn hub_endpoint(src: &HostSource, iface: &str) -> Option<String> {
    src.raw
        .wireguard
        .get(iface)?
        .endpoint
        .as_ref()
        .map(|e| e.value.clone())
}

impl WgInterface {
    /// A hub listens on a port; a spoke routes the whole tunnel subnet to it.
    fn endpoint_is_hub(&self) -> bool {
        self.listen_port.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::overlaps;

    use crate::resolve::testkit::{Fleet, Outcome, WG_KEY_A, WG_KEY_B};

    fn iface(body: &str) -> Outcome {
        Fleet::default()
            .secret("shared", "wg")
            .host(
                "h",
                &format!("[wireguard.wg0]\nprivate_key = \"secret:wg\"\n{body}"),
            )
            .resolve()
    }

    #[test]
    fn an_interface_with_external_peers() {
        let out = iface(&format!(
            "address = \"10.99.0.1/24\"\nlisten_port = 51820\npublic_key = \"{WG_KEY_A}\"\n[[wireguard.wg0.external_peers]]\nname = \"phone\"\npublic_key = \"{WG_KEY_B}\"\nallowed_ips = [\"10.99.0.50/32\"]\nendpoint = \"phone.example.net:51820\""
        ));
        let w = &out.plan().wireguard[0];
        assert_eq!((w.name.as_str(), w.listen_port), ("wg0", Some(51820)));
        assert_eq!(
            w.peers[0].allowed_ips,
            ["10.99.0.50/32".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn interface_names_are_wg_something() {
        let out = Fleet::default()
            .secret("shared", "wg")
            .host(
                "h",
                "[wireguard.tun0]\naddress = \"10.99.0.1/24\"\nprivate_key = \"secret:wg\"",
            )
            .resolve();
        out.assert_error(
            "`tun0` is not a WireGuard interface name",
            "[wireguard.tun0]",
        );
    }

    #[test]
    fn the_address_carries_the_tunnel_prefix() {
        iface("address = \"10.99.0.1/32\"")
            .assert_error("`10.99.0.1/32` has no subnet prefix", "\"10.99.0.1/32\"");
        iface("address = \"10.99.0.1\"")
            .assert_error("`10.99.0.1` is not an address with prefix", "\"10.99.0.1\"");
    }

    #[test]
    fn endpoints_are_host_and_port() {
        iface("address = \"10.99.0.1/24\"\nendpoint = \"gw.example.net:51820\"").plan();
        for bad in ["gw.example.net", "root@gw:51820"] {
            iface(&format!("address = \"10.99.0.1/24\"\nendpoint = \"{bad}\"")).assert_error(
                &format!("`{bad}` is not \"host:port\""),
                &format!("\"{bad}\""),
            );
        }
    }

    #[test]
    fn public_keys_are_wireguard_keys() {
        assert!(is_wg_key(WG_KEY_A));
        // Right length and padding, but the last character carries nonzero bits.
        assert!(!is_wg_key("KAvvvZodlOnkhEvElyx3PJdozphdyEKIXCVG2XLO5D9="));
        iface("address = \"10.99.0.1/24\"\npublic_key = \"not-a-key\"").assert_error(
            "not a WireGuard public key (44 characters of base64)",
            "\"not-a-key\"",
        );
    }

    #[test]
    fn external_peers_are_checked() {
        let peer = |fields: &str| {
            iface(&format!(
                "address = \"10.99.0.1/24\"\n[[wireguard.wg0.external_peers]]\nname = \"phone\"\n{fields}"
            ))
        };
        peer("public_key = \"bad\"\nallowed_ips = [\"10.99.0.50/32\"]")
            .assert_error("not a WireGuard public key", "\"bad\"");
        peer(&format!(
            "public_key = \"{WG_KEY_B}\"\nallowed_ips = [\"10.99.0.50\"]"
        ))
        .plan();
        peer(&format!(
            "public_key = \"{WG_KEY_B}\"\nallowed_ips = [\"10.99.0.50/24\"]"
        ))
        .assert_error("`10.99.0.50/24` is not a valid CIDR", "\"10.99.0.50/24\"");
        peer(&format!(
            "public_key = \"{WG_KEY_B}\"\nallowed_ips = []\nendpoint = \"phone\""
        ))
        .assert_error("`phone` is not \"host:port\"", "\"phone\"");
    }

    #[test]
    fn two_interfaces_of_one_host_do_not_overlap() {
        let out = Fleet::default()
            .secret("shared", "wg")
            .host(
                "h",
                "[wireguard.wg0]\naddress = \"10.99.0.1/24\"\nprivate_key = \"secret:wg\"\n[wireguard.wg1]\naddress = \"10.99.0.129/25\"\nprivate_key = \"secret:wg\"",
            )
            .resolve();
        let d = out.assert_error(
            "WireGuard subnet 10.99.0.128/25 of wg1 overlaps 10.99.0.0/24 of wg0",
            "\"10.99.0.129/25\"",
        );
        assert_eq!(d.related[0].1, "overlapping interface");
    }

    fn member(addr: &str, wg: &str) -> String {
        format!(
            "[deploy]\ntarget = \"root@{addr}\"\n[wireguard.wg0]\nprivate_key = \"secret:wg\"\n{wg}"
        )
    }

    fn hub() -> String {
        member(
            "192.0.2.1",
            &format!(
                "address = \"10.99.0.1/24\"\nlisten_port = 51820\nendpoint = \"192.0.2.1:51820\"\npublic_key = \"{WG_KEY_A}\""
            ),
        )
    }

    fn spoke(extra: &str) -> String {
        member(
            "192.0.2.2",
            &format!("address = \"10.99.0.2/24\"\npublic_key = \"{WG_KEY_B}\"\n{extra}"),
        )
    }

    fn fleet() -> Fleet {
        Fleet::default().secret("shared", "wg")
    }

    #[test]
    fn a_spoke_names_the_hub_and_the_hub_derives_the_spoke() {
        let out = fleet()
            .host("hub", &hub())
            .host("spoke", &spoke("peers = [\"hub\"]"))
            .resolve();
        let plans = out.plans();
        let hub = &plans.iter().find(|p| p.name == "hub").unwrap().wireguard[0];
        let spoke = &plans.iter().find(|p| p.name == "spoke").unwrap().wireguard[0];
        // The spoke routes the whole tunnel to its hub and keeps the NAT open.
        assert_eq!(spoke.peers[0].name, "hub");
        assert_eq!(
            spoke.peers[0].allowed_ips,
            ["10.99.0.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(spoke.peers[0].endpoint.as_deref(), Some("192.0.2.1:51820"));
        assert_eq!(spoke.peers[0].persistent_keepalive, Some(25));
        // The hub routes only the spoke's address to it.
        assert_eq!(hub.peers[0].name, "spoke");
        assert_eq!(
            hub.peers[0].allowed_ips,
            ["10.99.0.2/32".parse::<IpNet>().unwrap()]
        );
        assert_eq!(hub.peers[0].public_key, WG_KEY_B);
    }

    #[test]
    fn peers_are_other_hosts_in_the_tunnel() {
        fleet()
            .host("hub", &hub())
            .host("spoke", &spoke("peers = [\"spoke\"]"))
            .resolve()
            .assert_error("an interface cannot peer with its own host", "\"spoke\"");
        let out = fleet()
            .host("hub", &hub())
            .host("spoke", &spoke("peers = [\"hbu\"]"))
            .resolve();
        let d = out.assert_error("unknown host `hbu`", "\"hbu\"");
        assert!(d.hint.as_deref().unwrap().contains("hub, spoke"));
        let far = member(
            "192.0.2.3",
            &format!("address = \"10.98.0.1/24\"\npublic_key = \"{WG_KEY_A}\""),
        );
        fleet()
            .host("far", &far)
            .host("spoke", &spoke("peers = [\"far\"]"))
            .resolve()
            .assert_error(
                "host `far` has no WireGuard interface in 10.99.0.0/24",
                "\"far\"",
            );
    }

    #[test]
    fn a_peer_needs_a_public_key() {
        let keyless = member(
            "192.0.2.1",
            "address = \"10.99.0.1/24\"\nlisten_port = 51820",
        );
        let out = fleet()
            .host("hub", &keyless)
            .host("spoke", &spoke("peers = [\"hub\"]"))
            .resolve();
        let d = out.assert_error("host `hub` (wg0) has no public_key", "\"hub\"");
        assert!(d.hint.as_deref().unwrap().contains("--kind wireguard"));
    }

    #[test]
    fn allowed_ips_of_two_peers_must_not_overlap() {
        let out = fleet()
            .host("hub", &hub())
            .host(
                "spoke",
                &spoke(&format!(
                    "peers = [\"hub\"]\n[[wireguard.wg0.external_peers]]\nname = \"phone\"\npublic_key = \"{WG_KEY_A}\"\nallowed_ips = [\"10.99.0.50/32\"]"
                )),
            )
            .resolve();
        let d = out.error("wg0: AllowedIPs of peers `phone` and `hub` overlap");
        assert_eq!(out.file_of(d), "hosts/spoke.toml");
    }
    use proptest::prelude::*;

    fn peer(name: &str, nets: &[&str]) -> WgPeer {
        WgPeer {
            name: name.into(),
            public_key: String::new(),
            allowed_ips: nets.iter().map(|n| n.parse().unwrap()).collect(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }

    #[test]
    fn nested_duplicate_and_disjoint_blocks() {
        let peers = [
            peer("a", &["10.0.0.0/8"]),
            peer("b", &["10.1.0.0/16"]),
            peer("c", &["10.1.2.3/32"]),
            peer("d", &["192.168.0.1/32", "10.2.0.0/16"]),
            peer("e", &["10.1.2.3/32"]),
            peer("f", &["10.1.2.4/32"]),
        ];
        assert_eq!(
            overlapping_peers(&peers),
            [
                (0, 1),
                (0, 2),
                (1, 2),
                (0, 3),
                (0, 4),
                (1, 4),
                (2, 4),
                (0, 5),
                (1, 5)
            ]
        );
    }

    #[test]
    fn families_apart_and_a_peer_never_overlaps_itself() {
        let peers = [
            peer("v6", &["::/0", "fd00::/8"]),
            peer("v4", &["0.0.0.0/0", "10.0.0.0/8"]),
            peer("v6b", &["fd00::1/128"]),
        ];
        assert_eq!(overlapping_peers(&peers), [(0, 2)]);
        assert!(overlapping_peers(&[peer("x", &["10.0.0.0/8", "10.0.0.0/8"])]).is_empty());
    }

    /// Every pair (j, i), j < i, compared directly: what the sort must match.
    fn pairwise(peers: &[WgPeer]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for i in 0..peers.len() {
            for j in 0..i {
                if peers[i]
                    .allowed_ips
                    .iter()
                    .any(|a| peers[j].allowed_ips.iter().any(|b| overlaps(a, b)))
                {
                    out.push((j, i));
                }
            }
        }
        out
    }

    /// Small networks in few addresses, so that nesting and repeats are common.
    fn net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (0u32..64, 24u8..=32).prop_map(|(a, len)| {
                IpNet::V4(ipnet::Ipv4Net::new((0x0a00_0000 | a).into(), len).unwrap()).trunc()
            }),
            (0u128..64, 120u8..=128).prop_map(|(a, len)| {
                IpNet::V6(ipnet::Ipv6Net::new(((0xfd00u128 << 112) | a).into(), len).unwrap())
                    .trunc()
            }),
        ]
    }

    proptest! {
        #[test]
        fn the_sort_finds_the_same_pairs_as_comparing_all(
            nets in prop::collection::vec(prop::collection::vec(net(), 0..4), 0..40)
        ) {
            let peers: Vec<WgPeer> = nets
                .into_iter()
                .enumerate()
                .map(|(i, n)| WgPeer { allowed_ips: n, ..peer(&i.to_string(), &[]) })
                .collect();
            prop_assert_eq!(overlapping_peers(&peers), pairwise(&peers));
        }
    }
}
