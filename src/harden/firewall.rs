//! The UFW-style firewall: rule grammar, first-match evaluation, and compilation
//! to one nftables table.
//!
//! Owns the meaning of a rule string ("limit 22/tcp from lan on enp1s0"), the
//! question "what happens to a new connection from here to this port" (used by the
//! SSH lock-out guard and shadowing checks), and the `firewall.nft` text. It knows
//! zones only as resolved lists of networks, handed in by `resolve`.

use std::fmt::Write as _;
use std::ops::Range;

use ipnet::IpNet;
use serde::Serialize;

use crate::catalog::{Proto, parse_port};
use crate::inventory::schema::Policy;
use crate::render::format::{Refused, nft};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    Reject,
    /// Allow, but refuse a source's 6th new connection within 30 s.
    Limit,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        match s {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            "reject" => Some(Action::Reject),
            "limit" => Some(Action::Limit),
            _ => None,
        }
    }
    /// Does a first matching rule with this action let the connection in?
    pub fn admits(self) -> bool {
        matches!(self, Action::Allow | Action::Limit)
    }
}

/// Inclusive port range; a single port has lo == hi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
    fn covers(&self, other: &PortRange) -> bool {
        self.lo <= other.lo && other.hi <= self.hi
    }
    /// Does this range hold `other` or touch it (`1-3` and `4-9`)?
    fn meets(&self, other: &PortRange) -> bool {
        u32::from(other.lo) <= u32::from(self.hi) + 1
            && u32::from(self.lo) <= u32::from(other.hi) + 1
    }
    fn nft(&self) -> String {
        if self.lo == self.hi {
            self.lo.to_string()
        } else {
            format!("{}-{}", self.lo, self.hi)
        }
    }
}

/// Where a rule's packets come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Source {
    Any,
    /// A zone (by name) or a literal CIDR/address (name None), resolved to networks.
    Nets {
        name: Option<String>,
        nets: Vec<IpNet>,
    },
}

impl Source {
    /// Does every address of `net` fall under this source?
    pub fn covers_net(&self, net: &IpNet) -> bool {
        match self {
            Source::Any => true,
            Source::Nets { nets, .. } => nets.iter().any(|n| n.contains(net)),
        }
    }
    fn covers(&self, other: &Source) -> bool {
        match other {
            Source::Any => matches!(self, Source::Any),
            Source::Nets { nets, .. } => nets.iter().all(|n| self.covers_net(n)),
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Source::Any => "any".into(),
            Source::Nets { name: Some(n), .. } => n.clone(),
            Source::Nets { name: None, nets } => nets
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// One parsed rule. Spans are byte ranges inside the rule text.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub text: String,
    pub action: Action,
    /// Sorted, disjoint and not touching: see `coalesce`.
    pub ports: Vec<PortRange>,
    pub protos: Vec<Proto>,
    pub source: Source,
    pub iface: Option<String>,
}

impl Rule {
    pub fn matches_port(&self, port: u16, proto: Proto) -> bool {
        self.protos.contains(&proto) && range_holding(&self.ports, port).is_some()
    }

    /// Would every packet this rule matches already be matched by `earlier`?
    pub fn is_shadowed_by(&self, earlier: &Rule) -> bool {
        let iface_ok = earlier.iface.is_none() || earlier.iface == self.iface;
        iface_ok
            && self.protos.iter().all(|p| earlier.protos.contains(p))
            && self
                .ports
                .iter()
                .all(|r| range_holding(&earlier.ports, r.lo).is_some_and(|e| e.covers(r)))
            && earlier.source.covers(&self.source)
    }
}

/// A rule that did not parse: where in the rule text, what, and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub range: Range<usize>,
    pub message: String,
    pub hint: String,
}

const GRAMMAR: &str =
    "rules read \"ACTION PORTS[/PROTO] [from SOURCE] [on IFACE]\", e.g. \"limit 22/tcp from lan\"";

/// Parses one rule. `zone` resolves a zone name to its networks (None: unknown).
pub fn parse_rule(
    text: &str,
    zone: &dyn Fn(&str) -> Option<Vec<IpNet>>,
) -> Result<Rule, RuleError> {
    let words = words(text);
    let err = |range: Range<usize>, message: String, hint: &str| RuleError {
        range,
        message,
        hint: hint.to_string(),
    };
    let Some((action_word, action_range)) = words.first().cloned() else {
        return Err(err(0..text.len(), "empty firewall rule".into(), GRAMMAR));
    };
    let action = Action::parse(action_word).ok_or_else(|| {
        err(
            action_range.clone(),
            format!("unknown action `{action_word}`"),
            "use allow, deny, reject or limit",
        )
    })?;
    let Some((ports_word, ports_range)) = words.get(1).cloned() else {
        return Err(err(0..text.len(), "rule has no ports".into(), GRAMMAR));
    };
    let (ports, protos) =
        parse_ports(ports_word, ports_range.start).map_err(|(r, m, h)| err(r, m, h))?;

    let mut source = Source::Any;
    let mut iface = None;
    let mut i = 2;
    while i < words.len() {
        let (kw, kw_range) = words[i].clone();
        let Some((val, val_range)) = words.get(i + 1).cloned() else {
            return Err(err(kw_range, format!("`{kw}` needs a value"), GRAMMAR));
        };
        match kw {
            "from" => source = parse_source(val, zone).map_err(|(m, h)| err(val_range, m, &h))?,
            "on" => {
                if !valid_iface(val) {
                    return Err(err(
                        val_range,
                        format!("`{val}` is not an interface name"),
                        "interface names are 1-15 characters of letters, digits, '-', '_', '.'",
                    ));
                }
                iface = Some(val.to_string());
            }
            other => return Err(err(kw_range, format!("unexpected `{other}`"), GRAMMAR)),
        }
        i += 2;
    }
    Ok(Rule {
        // Normalized: single spaces, so the text is safe in an nft comment line.
        text: words.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(" "),
        action,
        ports,
        protos,
        source,
        iface,
    })
}

/// Words with their byte ranges.
fn words(text: &str) -> Vec<(&str, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((&text[s..i], s..i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

type PortsError = (Range<usize>, String, &'static str);

fn parse_ports(word: &str, offset: usize) -> Result<(Vec<PortRange>, Vec<Proto>), PortsError> {
    let (list, protos) = match word.split_once('/') {
        Some((list, proto)) => {
            let p = Proto::parse(proto).ok_or_else(|| {
                let at = offset + list.len() + 1;
                (
                    at..at + proto.len(),
                    format!("unknown protocol `{proto}`"),
                    "use tcp or udp, or leave it out for both",
                )
            })?;
            (list, vec![p])
        }
        None => (word, vec![Proto::Tcp, Proto::Udp]),
    };
    let mut ranges = Vec::new();
    let mut pos = offset;
    for item in list.split(',') {
        let range = pos..pos + item.len();
        pos += item.len() + 1;
        let hint = "ports are 1-65535, written N, N-M or N,M,...";
        let r = match item.split_once('-') {
            Some((a, b)) => {
                let lo = parse_port(a).map_err(|m| (range.clone(), m, hint))?;
                let hi = parse_port(b).map_err(|m| (range.clone(), m, hint))?;
                if lo > hi {
                    return Err((
                        range,
                        format!("port range {lo}-{hi} is upside down"),
                        "write the lower port first",
                    ));
                }
                PortRange { lo, hi }
            }
            None => {
                let p = parse_port(item).map_err(|m| (range.clone(), m, hint))?;
                PortRange { lo: p, hi: p }
            }
        };
        ranges.push(r);
    }
    Ok((coalesce(ranges), protos))
}

/// One sorted list of the same ports, with ranges that overlap or touch merged:
/// `5,1,2,3,2` becomes `1-3,5`. A port set then costs what its ranges cost, not
/// what its listed ports cost, and lookups can search it (`range_holding`).
pub fn coalesce(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort_unstable_by_key(|r| (r.lo, r.hi));
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.meets(&r) => last.hi = last.hi.max(r.hi),
            _ => out.push(r),
        }
    }
    out
}

/// The range of a coalesced list that holds `port`, by binary search. A range
/// the list covers lies inside one of its ranges, since they do not touch.
fn range_holding(ports: &[PortRange], port: u16) -> Option<&PortRange> {
    let i = ports.partition_point(|r| r.hi < port);
    ports.get(i).filter(|r| r.contains(port))
}

/// A source: "any", a zone name, a CIDR or an address.
pub fn parse_source(
    word: &str,
    zone: &dyn Fn(&str) -> Option<Vec<IpNet>>,
) -> Result<Source, (String, String)> {
    if word == "any" {
        return Ok(Source::Any);
    }
    if let Some(net) = parse_net(word) {
        return Ok(Source::Nets {
            name: None,
            nets: vec![net],
        });
    }
    if word.contains(['.', ':', '/']) {
        return Err((
            format!("`{word}` is not a valid address or CIDR"),
            "write e.g. 192.168.1.0/24, 10.0.0.5 or fd00::/64".into(),
        ));
    }
    match zone(word) {
        Some(nets) => Ok(Source::Nets {
            name: Some(word.to_string()),
            nets,
        }),
        None => Err((
            format!("unknown zone `{word}`"),
            format!(
                "define it under [zones] (e.g. {word} = [\"192.168.1.0/24\"]) or use a CIDR or \"any\""
            ),
        )),
    }
}

/// "10.0.0.0/8" or a bare address (as a /32 or /128). Host bits must be zero in a CIDR.
pub fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return (net.trunc() == net).then_some(net);
    }
    s.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

fn valid_iface(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The compiled policy of one host.
#[derive(Debug, Clone, Serialize)]
pub struct Policies {
    pub incoming: Policy,
    pub outgoing: Policy,
    pub routed: Policy,
}

/// What a new connection from `from` to `port/proto` meets: the first matching
/// rule's action, or the default incoming policy. Interface-bound rules are
/// skipped, since the deployer's interface is not known.
pub fn verdict(
    rules: &[Rule],
    incoming: Policy,
    from: &IpNet,
    port: u16,
    proto: Proto,
) -> (bool, Option<usize>) {
    // Implicit rule, before the host's: loopback is always accepted.
    let loopback: [IpNet; 2] = [
        "127.0.0.0/8".parse().expect("valid"),
        "::1/128".parse().expect("valid"),
    ];
    if loopback.iter().any(|l| l.contains(from)) {
        return (true, None);
    }
    for (i, r) in rules.iter().enumerate() {
        if r.iface.is_none() && r.matches_port(port, proto) && r.source.covers_net(from) {
            return (r.action.admits(), Some(i));
        }
    }
    (incoming == Policy::Allow, None)
}

/// The nftables table name; NixOS wraps the body in `table inet potato { ... }`.
pub const TABLE: &str = "potato";

/// Wraps a compiled body the way NixOS's nftables module does, for `nft -f`.
pub fn as_table(body: &str) -> String {
    format!("table inet {TABLE} {{\n{body}}}\n")
}

/// What the ruleset lets through besides the host's own rules.
#[derive(Debug, Clone, Default)]
pub struct Openings {
    /// UDP ports opened because a WireGuard interface listens on them: (port, why).
    pub udp: Vec<(u16, String)>,
    /// The host runs containers: their bridges may reach out (egress and
    /// replies), which `routed = "deny"` would otherwise stop.
    pub containers: bool,
    /// The subnets of the host's container zones (proxy, backend, ...): each
    /// reaches itself and the outside, never another zone (a container that
    /// needs two zones joins both networks).
    pub container_zones: Vec<(String, IpNet)>,
    /// WireGuard interfaces that route between their peers (hubs).
    pub hub_ifaces: Vec<String>,
}

/// Bridge names podman (netavark, CNI) and docker give container networks.
const CONTAINER_BRIDGES: &str = "\"podman*\", \"cni-podman*\", \"docker0\", \"br-*\"";

/// Compiles the policy to the body of one nftables table, in UFW order.
///
/// Container ports: podman and docker publish ports with DNAT in prerouting, so
/// those packets never reach an input chain; that is how they bypass UFW. Here
/// the forward chain sends every DNAT-ed new connection to `published`, which
/// holds the host's rules again, matched on the port the client dialled
/// (`ct original proto-dst`) instead of the port after translation. A published
/// port is therefore reachable exactly when the same port on the host would be,
/// whatever the container engine's own tables say: nftables drops are final
/// across base chains, and the engine's accepts cannot undo them. (Publishing
/// only on loopback would also work, but it relies on every catalog entry and
/// override being right; this holds for any port any engine publishes.)
///
/// Data (comments, interface names) reaches the ruleset only through
/// `render::format::nft`; a value it refuses is returned as the error.
pub fn compile(rules: &[Rule], pol: &Policies, open: &Openings) -> Result<String, Refused> {
    let mut out = String::new();
    out.push_str("# Generated by potato from the host file's [firewall]; do not edit.\n");
    out.push_str("# UFW semantics: implicit rules, then the host's rules in order (first match wins), then the default.\n");
    out.push_str(
        "# limit: per source, a token bucket of 5 new connections refilled at 10/minute,\n",
    );
    out.push_str("# nftables' nearest equal of ufw's \"6th connection within 30 s is refused\".\n");
    out.push_str("\tset limit4 { type ipv4_addr; size 65535; flags dynamic; timeout 30s; }\n");
    out.push_str("\tset limit6 { type ipv6_addr; size 65535; flags dynamic; timeout 30s; }\n\n");
    out.push_str("\tchain limit-reject {\n\t\tlimit rate 3/minute log prefix \"[potato limit] \" level info\n\t\tmeta l4proto tcp reject with tcp reset\n\t\treject\n\t}\n\n");
    out.push_str("\tchain refuse {\n\t\tlimit rate 3/minute burst 10 packets log prefix \"[potato refused] \" level info\n");
    let _ = writeln!(out, "\t\t{}\n\t}}\n", policy_verdict(pol.incoming));
    out.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n");
    out.push_str("\t\tiifname \"lo\" accept\n");
    out.push_str("\t\tct state vmap { invalid : drop, established : accept, related : accept }\n");
    out.push_str("\t\ticmp type { echo-request, destination-unreachable, time-exceeded, parameter-problem } accept\n");
    out.push_str("\t\ticmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query, mld-listener-report, mld2-listener-report } accept\n");
    out.push_str("\t\tudp sport 67 udp dport 68 accept\n");
    if !open.container_zones.is_empty() {
        let _ = writeln!(
            out,
            "\t\tip saddr {{ {} }} meta l4proto {{ tcp, udp }} th dport 53 accept comment \"container DNS on the bridge gateways\"",
            zone_list(&open.container_zones)
        );
    }
    for (port, why) in &open.udp {
        let why =
            nft::comment(why).map_err(|e| e.of(format!("the reason UDP port {port} is open")))?;
        let _ = writeln!(out, "\t\tudp dport {port} accept comment {why}");
    }
    write_rules(&mut out, rules, Match::Port)?;
    out.push_str(policy_end(pol.incoming));
    out.push_str("\t}\n\n");

    out.push_str("\tchain published {\n");
    out.push_str("\t\t# DNAT-ed connections (published container ports) meet the same rules,\n");
    out.push_str("\t\t# matched on the port the client dialled.\n");
    write_rules(&mut out, rules, Match::OriginalPort)?;
    out.push_str(policy_end(pol.incoming));
    out.push_str("\t}\n\n");

    let _ = writeln!(
        out,
        "\tchain forward {{\n\t\ttype filter hook forward priority filter; policy {};",
        policy_chain(pol.routed)
    );
    out.push_str("\t\tct state vmap { invalid : drop, established : accept, related : accept }\n");
    out.push_str(
        "\t\ticmp type { destination-unreachable, time-exceeded, parameter-problem } accept\n",
    );
    out.push_str("\t\ticmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept\n");
    out.push_str("\t\tct status dnat jump published\n");
    for (zone, net) in &open.container_zones {
        let why = nft::comment(&format!("container zone {zone}"))
            .map_err(|e| e.of("a container zone"))?;
        let _ = writeln!(
            out,
            "\t\tip saddr {net} ip daddr {net} accept comment {why}"
        );
    }
    if !open.container_zones.is_empty() {
        let all = zone_list(&open.container_zones);
        let _ = writeln!(
            out,
            "\t\tip saddr {{ {all} }} ip daddr {{ {all} }} drop comment \"container zones do not reach each other\""
        );
    }
    if open.containers {
        let _ = writeln!(
            out,
            "\t\tiifname {{ {CONTAINER_BRIDGES} }} accept comment \"container egress\""
        );
    }
    for i in &open.hub_ifaces {
        let i = nft::iface(i).map_err(|e| e.of("a WireGuard interface"))?;
        let _ = writeln!(
            out,
            "\t\tiifname {i} oifname {i} accept comment \"WireGuard hub: peer to peer\""
        );
    }
    if pol.routed != Policy::Allow {
        out.push_str(
            "\t\tlimit rate 3/minute burst 10 packets log prefix \"[potato routed] \" level info\n",
        );
    }
    if pol.routed == Policy::Reject {
        out.push_str("\t\treject\n");
    }
    out.push_str("\t}\n\n");
    let _ = writeln!(
        out,
        "\tchain output {{\n\t\ttype filter hook output priority filter; policy {};\n\t\toifname \"lo\" accept\n\t\tct state vmap {{ invalid : drop, established : accept, related : accept }}\n\t}}",
        policy_chain(pol.outgoing)
    );
    Ok(out)
}

/// How a rule's ports are matched: on the packet, or on the connection's
/// original destination (before DNAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Port,
    OriginalPort,
}

fn zone_list(zones: &[(String, IpNet)]) -> String {
    zones
        .iter()
        .map(|(_, n)| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_rules(out: &mut String, rules: &[Rule], how: Match) -> Result<(), Refused> {
    for (i, r) in rules.iter().enumerate() {
        let text =
            nft::line_comment(&r.text).map_err(|e| e.of(format!("firewall rule {}", i + 1)))?;
        let _ = writeln!(out, "\t\t# rule {}: {text}", i + 1);
        for line in rule_lines(r, how)? {
            let _ = writeln!(out, "\t\t{line}");
        }
    }
    Ok(())
}

fn policy_end(p: Policy) -> &'static str {
    if p == Policy::Allow {
        "\t\taccept\n"
    } else {
        "\t\tjump refuse\n"
    }
}

fn policy_chain(p: Policy) -> &'static str {
    match p {
        Policy::Allow => "accept",
        Policy::Deny | Policy::Reject => "drop",
    }
}

fn policy_verdict(p: Policy) -> &'static str {
    match p {
        Policy::Allow => "accept",
        Policy::Deny => "drop",
        Policy::Reject => "meta l4proto tcp reject with tcp reset\n\t\treject",
    }
}

/// nftables lines for one rule: one per address family that its source has.
fn rule_lines(r: &Rule, how: Match) -> Result<Vec<String>, Refused> {
    let iface = match &r.iface {
        Some(i) => format!("iifname {} ", nft::iface(i)?),
        None => String::new(),
    };
    let ports = if r.ports.len() == 1 {
        r.ports[0].nft()
    } else {
        format!(
            "{{ {} }}",
            r.ports
                .iter()
                .map(PortRange::nft)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let l4 = match (how, r.protos.len() == 2) {
        (Match::Port, true) => format!("meta l4proto {{ tcp, udp }} th dport {ports}"),
        (Match::Port, false) => format!("{} dport {ports}", r.protos[0].as_str()),
        (Match::OriginalPort, true) => {
            format!("meta l4proto {{ tcp, udp }} ct original proto-dst {ports}")
        }
        (Match::OriginalPort, false) => format!(
            "meta l4proto {} ct original proto-dst {ports}",
            r.protos[0].as_str()
        ),
    };
    let sources: Vec<(Option<&str>, String)> = match &r.source {
        Source::Any => vec![(None, String::new())],
        Source::Nets { nets, .. } => {
            let v4: Vec<String> = nets
                .iter()
                .filter(|n| matches!(n, IpNet::V4(_)))
                .map(|n| n.to_string())
                .collect();
            let v6: Vec<String> = nets
                .iter()
                .filter(|n| matches!(n, IpNet::V6(_)))
                .map(|n| n.to_string())
                .collect();
            let mut s = Vec::new();
            if !v4.is_empty() {
                s.push((Some("4"), format!("ip saddr {{ {} }} ", v4.join(", "))));
            }
            if !v6.is_empty() {
                s.push((Some("6"), format!("ip6 saddr {{ {} }} ", v6.join(", "))));
            }
            s
        }
    };
    let mut lines = Vec::new();
    for (fam, saddr) in sources {
        let m = format!("{iface}{saddr}{l4}");
        match r.action {
            Action::Allow => lines.push(format!("{m} accept")),
            Action::Deny => lines.push(format!("{m} drop")),
            Action::Reject => lines.push(format!("{m} reject")),
            Action::Limit => {
                let fams: &[&str] = match fam {
                    Some("4") => &["4"],
                    Some(_) => &["6"],
                    None => &["4", "6"],
                };
                for f in fams {
                    let (set, key) = if *f == "4" {
                        ("limit4", "ip saddr")
                    } else {
                        ("limit6", "ip6 saddr")
                    };
                    lines.push(format!("{m} ct state new update @{set} {{ {key} limit rate over 10/minute burst 5 packets }} jump limit-reject"));
                }
                lines.push(format!("{m} accept"));
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(name: &str) -> Option<Vec<IpNet>> {
        (name == "lan").then(|| {
            vec![
                "192.168.178.0/24".parse().unwrap(),
                "fd00:178::/64".parse().unwrap(),
            ]
        })
    }

    #[test]
    fn parses_full_rule() {
        let r = parse_rule("allow 8096/tcp from lan on enp1s0", &zones).unwrap();
        assert_eq!(r.action, Action::Allow);
        assert_eq!(r.ports, vec![PortRange { lo: 8096, hi: 8096 }]);
        assert_eq!(r.protos, vec![Proto::Tcp]);
        assert_eq!(r.iface.as_deref(), Some("enp1s0"));
        assert!(
            matches!(r.source, Source::Nets { ref name, .. } if name.as_deref() == Some("lan"))
        );
    }

    #[test]
    fn port_lists_and_ranges_and_both_protocols() {
        let r = parse_rule("allow 80,443,8000-8100", &zones).unwrap();
        assert_eq!(r.ports.len(), 3);
        assert_eq!(r.protos, vec![Proto::Tcp, Proto::Udp]);
        assert!(r.matches_port(8050, Proto::Udp));
        assert!(!r.matches_port(8101, Proto::Tcp));
    }

    #[test]
    fn errors_point_at_the_bad_word() {
        let e = parse_rule("allow 70000/tcp", &zones).unwrap_err();
        assert_eq!(e.range, 6..11);
        assert!(e.message.contains("out of range"));
        let e = parse_rule("allow 0/tcp", &zones).unwrap_err();
        assert!(e.message.contains("out of range"));
        let e = parse_rule("allow 90-80/tcp", &zones).unwrap_err();
        assert!(e.message.contains("upside down"));
        assert_eq!(e.range, 6..11);
        let e = parse_rule("permit 22", &zones).unwrap_err();
        assert_eq!(e.range, 0..6);
        let e = parse_rule("allow 22/sctp", &zones).unwrap_err();
        assert_eq!(e.range, 9..13);
        let e = parse_rule("allow 22 from dmz", &zones).unwrap_err();
        assert_eq!(
            (e.range.clone(), e.message.as_str()),
            (14..17, "unknown zone `dmz`")
        );
        let e = parse_rule("allow 22 from 10.0.0.300/8", &zones).unwrap_err();
        assert!(e.message.contains("not a valid address"));
        let e = parse_rule("allow 22 to lan", &zones).unwrap_err();
        assert!(e.message.contains("unexpected `to`"));
        let e = parse_rule("allow 22 from", &zones).unwrap_err();
        assert!(e.message.contains("needs a value"));
    }

    #[test]
    fn rule_text_is_normalized_for_comments() {
        let r = parse_rule("allow\t22/tcp\nfrom   lan", &zones).unwrap();
        assert_eq!(r.text, "allow 22/tcp from lan");
    }

    #[test]
    fn cidr_with_host_bits_is_refused() {
        assert!(parse_net("192.168.1.5/24").is_none());
        assert!(parse_net("192.168.1.0/24").is_some());
        assert_eq!(parse_net("10.0.0.1").unwrap().prefix_len(), 32);
    }

    #[test]
    fn shadowing() {
        let a = parse_rule("deny 22/tcp", &zones).unwrap();
        let b = parse_rule("allow 22/tcp from lan", &zones).unwrap();
        assert!(b.is_shadowed_by(&a));
        assert!(!a.is_shadowed_by(&b));
        let c = parse_rule("allow 20-30", &zones).unwrap();
        assert!(a.is_shadowed_by(&c));
        let d = parse_rule("allow 22/tcp on wg0", &zones).unwrap();
        assert!(
            !parse_rule("allow 22/tcp", &zones)
                .unwrap()
                .is_shadowed_by(&d)
        );
    }

    #[test]
    fn first_match_verdict() {
        let rules = vec![
            parse_rule("limit 22/tcp from lan", &zones).unwrap(),
            parse_rule("deny 22/tcp", &zones).unwrap(),
        ];
        let lan: IpNet = "192.168.178.7/32".parse().unwrap();
        let wan: IpNet = "203.0.113.9/32".parse().unwrap();
        assert_eq!(
            verdict(&rules, Policy::Deny, &lan, 22, Proto::Tcp),
            (true, Some(0))
        );
        assert_eq!(
            verdict(&rules, Policy::Deny, &wan, 22, Proto::Tcp),
            (false, Some(1))
        );
        assert_eq!(
            verdict(&rules, Policy::Allow, &wan, 80, Proto::Tcp),
            (true, None)
        );
    }

    fn ports_of(rule: &str) -> Vec<(u16, u16)> {
        parse_rule(rule, &zones)
            .unwrap()
            .ports
            .iter()
            .map(|r| (r.lo, r.hi))
            .collect()
    }

    #[test]
    fn adjacent_ports_become_one_range() {
        assert_eq!(ports_of("allow 1,2,3,5/tcp"), [(1, 3), (5, 5)]);
        assert_eq!(ports_of("allow 8000-8099,8100-8200/tcp"), [(8000, 8200)]);
        assert_eq!(ports_of("allow 21,23/tcp"), [(21, 21), (23, 23)]);
    }

    #[test]
    fn overlapping_and_nested_ranges_merge() {
        assert_eq!(ports_of("allow 10-20,15-30,31/tcp"), [(10, 31)]);
        assert_eq!(
            ports_of("allow 1-100,50-60,200/udp"),
            [(1, 100), (200, 200)]
        );
        assert_eq!(ports_of("allow 40-50,10-40"), [(10, 50)]);
    }

    #[test]
    fn duplicates_collapse_and_the_list_is_sorted() {
        assert_eq!(ports_of("allow 443,80,443,80/tcp"), [(80, 80), (443, 443)]);
        assert_eq!(ports_of("allow 9,7,9,8/tcp"), [(7, 9)]);
    }

    #[test]
    fn a_single_port_stays_itself() {
        assert_eq!(ports_of("allow 22/tcp"), [(22, 22)]);
        let r = parse_rule("allow 22/tcp", &zones).unwrap();
        assert!(rule_lines(&r, Match::Port).unwrap()[0].ends_with("tcp dport 22 accept"));
    }

    #[test]
    fn the_full_range_and_its_edges() {
        assert_eq!(ports_of("allow 1-65535"), [(1, 65535)]);
        assert_eq!(ports_of("allow 65535,1-65534/tcp"), [(1, 65535)]);
        assert_eq!(
            ports_of("allow 65535,65534,1/udp"),
            [(1, 1), (65534, 65535)]
        );
        let r = parse_rule("allow 65535,1-65534/tcp", &zones).unwrap();
        assert!(r.matches_port(1, Proto::Tcp) && r.matches_port(65535, Proto::Tcp));
    }

    #[test]
    fn a_listed_port_set_matches_exactly_its_ports() {
        let r = parse_rule("allow 5,1,2,3,10-12/tcp", &zones).unwrap();
        let open: Vec<u16> = (0..=20)
            .filter(|p| r.matches_port(*p, Proto::Tcp))
            .collect();
        assert_eq!(open, [1, 2, 3, 5, 10, 11, 12]);
        assert!(!r.matches_port(2, Proto::Udp));
    }

    #[test]
    fn tcp_and_udp_rules_keep_their_own_ranges() {
        let rules = vec![
            parse_rule("allow 1,2/tcp", &zones).unwrap(),
            parse_rule("allow 3,4/udp", &zones).unwrap(),
            parse_rule("allow 6,5", &zones).unwrap(),
        ];
        let pol = Policies {
            incoming: Policy::Deny,
            outgoing: Policy::Allow,
            routed: Policy::Deny,
        };
        let nft = compile(&rules, &pol, &Openings::default()).unwrap();
        assert!(nft.contains("\t\ttcp dport 1-2 accept\n"));
        assert!(nft.contains("\t\tudp dport 3-4 accept\n"));
        assert!(nft.contains("\t\tmeta l4proto { tcp, udp } th dport 5-6 accept\n"));
        assert!(!nft.contains("1-4"));
        assert!(!rules[0].matches_port(3, Proto::Tcp));
        assert!(!rules[1].matches_port(2, Proto::Udp));
    }

    #[test]
    fn a_set_of_ranges_is_written_sorted_and_disjoint() {
        let r = parse_rule("allow 8000-8100,443,80,8101,443/tcp", &zones).unwrap();
        assert_eq!(
            rule_lines(&r, Match::Port).unwrap(),
            ["tcp dport { 80, 443, 8000-8101 } accept"]
        );
    }

    #[test]
    fn a_range_covered_by_listed_ports_is_shadowed() {
        let earlier = parse_rule("allow 1,2,3,4/tcp", &zones).unwrap();
        let later = parse_rule("deny 2-4/tcp from lan", &zones).unwrap();
        assert!(later.is_shadowed_by(&earlier));
        let wider = parse_rule("deny 2-5/tcp from lan", &zones).unwrap();
        assert!(!wider.is_shadowed_by(&earlier));
        let gap = parse_rule("allow 1,2,4/tcp", &zones).unwrap();
        assert!(
            !parse_rule("deny 1-4/tcp", &zones)
                .unwrap()
                .is_shadowed_by(&gap)
        );
        assert!(
            parse_rule("deny 4,1/tcp", &zones)
                .unwrap()
                .is_shadowed_by(&gap)
        );
    }

    #[test]
    fn compiles_families_separately() {
        let r = parse_rule("limit 22/tcp from lan", &zones).unwrap();
        let lines = rule_lines(&r, Match::Port).unwrap();
        assert!(
            lines[0].starts_with(
                "ip saddr { 192.168.178.0/24 } tcp dport 22 ct state new update @limit4"
            )
        );
        assert!(lines[1].starts_with("ip saddr { 192.168.178.0/24 } tcp dport 22 accept"));
        assert!(
            lines[2].starts_with(
                "ip6 saddr { fd00:178::/64 } tcp dport 22 ct state new update @limit6"
            )
        );
    }
}
