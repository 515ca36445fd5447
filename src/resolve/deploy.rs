//! How the deployer reaches the host: `[deploy]` (target, from, mode, confirm
//! timeout, build_on), `[ssh]` (port, authorized keys, limits) and the lockout
//! guard (the firewall must still admit SSH from where the deployer connects).
//! Owns `parse_target`; it does not open connections (that is `deploy`/`ssh`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::HostCx;
use crate::catalog::Proto;
use crate::diag::Diagnostic;
use crate::harden::firewall::{self, Source, parse_net};
use crate::inventory::schema::{BuildOn, Mode};
use crate::plan::*;

impl HostCx<'_> {
    pub(super) fn deploy(&mut self) -> Option<(DeployPlan, Option<Vec<IpNet>>)> {
        let d = &self.host.raw.deploy;
        let target = match parse_target(&d.target.value) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(&d.target.span, e, "write \"user@address\", \"user@address:port\", \"[fd00::1]:22\" or an ~/.ssh/config Host");
                None
            }
        };
        let from = d.from.as_ref().and_then(|f| {
            let zones = &self.host.raw.zones;
            let lookup = |z: &str| {
                zones
                    .get(z)
                    .map(|v| v.iter().filter_map(|n| parse_net(&n.value)).collect())
            };
            match firewall::parse_source(&f.value, &lookup) {
                Ok(Source::Any) => {
                    Some(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()])
                }
                Ok(Source::Nets { nets, .. }) => Some(nets),
                Err((m, h)) => {
                    self.error(&f.span, m, h);
                    None
                }
            }
        });
        let confirm_timeout_secs = match &d.confirm_timeout {
            Some(t) => self.duration(t)?,
            None => 30,
        };
        Some((
            DeployPlan {
                target: target?,
                mode: d.mode.as_ref().map(|m| m.value).unwrap_or(Mode::Switch),
                magic_rollback: d.magic_rollback.unwrap_or(true),
                confirm_timeout_secs,
                build_on: d
                    .build_on
                    .as_ref()
                    .map(|b| b.value)
                    .unwrap_or(BuildOn::Local),
            },
            from,
        ))
    }

    pub(super) fn ssh(&mut self) -> Option<SshPlan> {
        let s = &self.host.raw.ssh;
        let port = match &s.port {
            Some(p) => self.port(p, "ssh port")?,
            None => 22,
        };
        let mut keys = Vec::new();
        for k in &s.authorized_keys {
            if let Err(e) = check_public_key(&k.value) {
                self.error(
                    &k.span,
                    e,
                    "paste one line of ~/.ssh/id_ed25519.pub: \"ssh-ed25519 AAAA... comment\" (one key per string)",
                );
            }
            keys.push(k.value.clone());
        }
        if keys.is_empty() {
            let span = self.host.raw.deploy.target.span.clone();
            self.error(
                &span,
                "no [ssh] authorized_keys: password login is off, so nobody could log in to deploy",
                "add [ssh] authorized_keys = [\"ssh-ed25519 AAAA... you@laptop\"]",
            );
        }
        let max_auth_tries = match &s.max_auth_tries {
            Some(m) if (1..=6).contains(&m.value) => m.value as u32,
            Some(m) => {
                self.error(
                    &m.span,
                    format!("max_auth_tries {} is out of range", m.value),
                    "use 1 to 6 (each key the client offers is one try)",
                );
                3
            }
            None => 3,
        };
        let login_grace_secs = match &s.login_grace_time {
            Some(t) => self.duration(t).unwrap_or(30),
            None => 30,
        };
        Some(SshPlan {
            port,
            authorized_keys: keys,
            allow_tcp_forwarding: s.allow_tcp_forwarding.unwrap_or(false),
            allow_agent_forwarding: s.allow_agent_forwarding.unwrap_or(false),
            max_auth_tries,
            login_grace_secs,
        })
    }

    /// The deployer must still reach SSH after this firewall is active.
    pub(super) fn lockout_guard(
        &mut self,
        (d, from): &(DeployPlan, Option<Vec<IpNet>>),
        fw: &FirewallPlan,
        ssh: &SshPlan,
        zones: &BTreeMap<String, Vec<IpNet>>,
    ) {
        let target_ip: Option<IpAddr> = d.target.host.parse().ok();
        let (nets, origin) = match (from, target_ip) {
            (Some(nets), _) => (nets.clone(), "deploy.from".to_string()),
            (None, Some(ip)) => match zones
                .iter()
                .find(|(_, ns)| ns.iter().any(|n| n.contains(&ip)))
            {
                Some((z, ns)) => (
                    ns.iter().filter(|n| n.contains(&ip)).cloned().collect(),
                    format!("zone `{z}`, which holds the target address"),
                ),
                None => (
                    vec![IpNet::from(ip)],
                    "the target's own address".to_string(),
                ),
            },
            (None, None) => (
                vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
                "anywhere (the target is a name; set deploy.from to narrow it)".to_string(),
            ),
        };
        for net in &nets {
            let (admits, rule) =
                firewall::verdict(&fw.rules, fw.policies.incoming, net, ssh.port, Proto::Tcp);
            if admits {
                continue;
            }
            let raw = &self.host.raw;
            let mut diag = Diagnostic::at(
                self.loc(&raw.deploy.target.span),
                format!(
                    "the firewall would lock the deployer out: SSH ({}/tcp) from {net} is refused",
                    ssh.port
                ),
            )
            .label(format!("deployer connects from {origin}"));
            diag = match rule {
                Some(i) => diag.related(
                    self.loc(&raw.firewall.rules[i].span),
                    "refused by this rule",
                ),
                None => diag.related(self.loc(&(0..0)), "refused by the default incoming policy"),
            };
            let zone_hint = from.as_ref().map(|_| "").unwrap_or("");
            self.diags.push(diag.hint(format!("add a rule like \"limit {}/tcp from {}\" before any rule that refuses it{zone_hint}", ssh.port, zone_for(zones, net).unwrap_or_else(|| net.to_string()))));
            return;
        }
    }
}

fn zone_for(zones: &BTreeMap<String, Vec<IpNet>>, net: &IpNet) -> Option<String> {
    zones
        .iter()
        .find(|(_, ns)| ns.iter().any(|n| n.contains(net)))
        .map(|(z, _)| z.clone())
}

/// "user@host:port", "host", "[v6]:port".
pub fn parse_target(s: &str) -> Result<Target, String> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) => {
            if u.is_empty()
                || !u
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(format!("`{u}` is not a user name"));
            }
            (Some(u.to_string()), r)
        }
        None => (None, s),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{s}`: missing ']'"))?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{h}` is not an IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(crate::catalog::parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(format!("`{s}`: unexpected `{after}`")),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                (h.to_string(), Some(crate::catalog::parse_port(p)?))
            }
            Some(_) => {
                return Err(format!(
                    "`{s}`: write IPv6 addresses in brackets, e.g. root@[fd00::1]:22"
                ));
            }
            None => (rest.to_string(), None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if !host_ok {
        return Err(format!("`{host}` is not a host name or address"));
    }
    Ok(Target { user, host, port })
}

fn check_public_key(k: &str) -> Result<(), String> {
    if k.contains(['\n', '\r', '\0']) {
        return Err("an authorized key is one line: this string holds a line break or NUL".into());
    }
    let mut parts = k.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let blob = parts.next().unwrap_or("");
    let kinds = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    if !kinds.contains(&kind) {
        return Err(format!("`{}` is not an SSH public key type", kind));
    }
    if blob.len() < 16
        || !blob
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    {
        return Err("the key's base64 part is missing or damaged".into());
    }
    // The blob starts with its own type as an SSH string (RFC 4253 6.6).
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| "the key's base64 part is not valid base64".to_string())?;
    let inner = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|len| bytes.get(4..4 + len));
    if inner != Some(kind.as_bytes()) {
        return Err(format!(
            "the key's base64 part is not a `{kind}` key (the blob names another type or is damaged)"
        ));
    }
    Ok(())
}
