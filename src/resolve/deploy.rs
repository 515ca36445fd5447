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
                build_on: self.build_on(d.build_on.as_ref())?,
            },
            from,
        ))
    }

    /// `build_on`: local, target, or a builder's name (an inventory host or a
    /// Nix remote builder; which one is decided against the fleet and the
    /// deployer's Nix by `deploy::build_on`). The name reaches a command line
    /// only as a host name, so it must be one.
    fn build_on(&mut self, b: Option<&crate::inventory::Spanned<BuildOn>>) -> Option<BuildOn> {
        let Some(b) = b else {
            return Some(BuildOn::Local);
        };
        if let BuildOn::Host(name) = &b.value
            && let Err(why) = crate::deploy::build_on::check_builder_name(name)
        {
            self.error(
                &b.span,
                format!("build_on = {name:?}: {why}"),
                "write \"local\", \"target\", or the name of a host file or of a builder in the deployer's nix.conf `builders`",
            );
            return None;
        }
        Some(b.value.clone())
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

#[cfg(test)]
mod tests {
    use super::parse_target;
    use crate::resolve::testkit::one;

    #[test]
    fn targets_in_every_written_form() {
        let t = parse_target("root@192.0.2.1:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("root"), "192.0.2.1", Some(2222))
        );
        let t = parse_target("[fd00::1]:22").unwrap();
        assert_eq!(
            (t.user, t.host.as_str(), t.port),
            (None, "fd00::1", Some(22))
        );
        let t = parse_target("gateway").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("gateway", None));
        for (bad, why) in [
            ("ro ot@h", "`ro ot` is not a user name"),
            ("@h", "`` is not a user name"),
            ("[fd00::1", "missing ']'"),
            ("[nope]:22", "`nope` is not an IPv6 address"),
            ("[fd00::1]x", "unexpected `x`"),
            ("fd00::1", "write IPv6 addresses in brackets"),
            ("h;rm -rf", "is not a host name or address"),
            ("h:99999", "99999"),
        ] {
            let e = parse_target(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bad_target_points_at_itself() {
        let ok = one("h", "[deploy]\ntarget = \"admin@192.0.2.20:2200\"");
        assert_eq!(ok.plan().deploy.target.port, Some(2200));
        one("h", "[deploy]\ntarget = \"root@host name\"")
            .assert_error("is not a host name or address", "\"root@host name\"");
    }

    #[test]
    fn deploy_from_is_a_source() {
        let ok = one(
            "h",
            "[zones]\nlan = [\"192.0.2.0/24\"]\n[deploy]\ntarget = \"root@192.0.2.10\"\nfrom = \"lan\"",
        );
        ok.plan();
        let out = one(
            "h",
            "[deploy]\ntarget = \"root@192.0.2.10\"\nfrom = \"office\"",
        );
        let d = out.diags_at("\"office\"");
        assert!(d.message.contains("office"), "{}", d.message);
    }

    #[test]
    fn confirm_timeout_is_a_duration() {
        let ok = one(
            "h",
            "[deploy]\ntarget = \"root@192.0.2.10\"\nconfirm_timeout = \"2m\"",
        );
        assert_eq!(ok.plan().deploy.confirm_timeout_secs, 120);
        assert_eq!(one("h", "").plan().deploy.confirm_timeout_secs, 30);
        let out = one(
            "h",
            "[deploy]\ntarget = \"root@192.0.2.10\"\nconfirm_timeout = \"soon\"",
        );
        let d = out.diags_at("\"soon\"");
        assert!(d.hint.as_deref().unwrap().contains("\"30s\""));
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp me";

    fn ssh(extra: &str) -> String {
        format!("[ssh]\nauthorized_keys = [\"{KEY}\"]\n{extra}")
    }

    #[test]
    fn ssh_port_in_range() {
        let ok = one(
            "h",
            &format!(
                "{}\n[firewall]\nrules = [\"allow 2222/tcp\"]",
                ssh("port = 2222")
            ),
        );
        assert_eq!(ok.plan().ssh.port, 2222);
        for bad in ["0", "65536"] {
            one("h", &ssh(&format!("port = {bad}")))
                .assert_error(&format!("ssh port {bad} is out of range"), bad);
        }
    }

    #[test]
    fn authorized_keys_are_real_public_keys() {
        assert_eq!(one("h", &ssh("")).plan().ssh.authorized_keys, [KEY]);
        for (bad, why) in [
            (
                "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
                "`ssh-dss` is not an SSH public key type",
            ),
            (
                "ssh-ed25519 AAAA",
                "the key's base64 part is missing or damaged",
            ),
            (
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp",
                "is not a `ssh-rsa` key",
            ),
        ] {
            let out = one("h", &format!("[ssh]\nauthorized_keys = [\"{bad}\"]"));
            out.assert_error(why, &format!("\"{bad}\""));
        }
    }

    #[test]
    fn a_key_with_a_line_break_is_refused_even_past_the_reader() {
        // The host-file reader refuses control characters first; the key check
        // holds on its own for keys that reach it another way.
        let e = super::check_public_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\nIMKX").unwrap_err();
        assert!(e.contains("one line"), "{e}");
    }

    #[test]
    fn without_keys_nobody_could_deploy() {
        let out = one("h", "[ssh]\nauthorized_keys = []");
        out.assert_error("no [ssh] authorized_keys", "\"root@192.0.2.10\"");
    }

    #[test]
    fn ssh_limits_in_range() {
        let ok = one("h", &ssh("max_auth_tries = 6\nlogin_grace_time = \"1m\""));
        assert_eq!(
            (ok.plan().ssh.max_auth_tries, ok.plan().ssh.login_grace_secs),
            (6, 60)
        );
        one("h", &ssh("max_auth_tries = 7")).assert_error("max_auth_tries 7 is out of range", "7");
        one("h", &ssh("login_grace_time = \"a while\"")).diags_at("\"a while\"");
    }

    #[test]
    fn the_firewall_must_not_lock_the_deployer_out() {
        // Admitted from the target's zone: fine.
        one(
            "h",
            "[zones]\nlan = [\"192.0.2.0/24\"]\n[firewall]\nrules = [\"limit 22/tcp from lan\"]",
        )
        .plan();
        // Only another zone may reach SSH: the deployer (in lan) is refused by the policy.
        let out = one(
            "h",
            "[zones]\nlan = [\"192.0.2.0/24\"]\nwg = [\"10.99.0.0/24\"]\n[firewall]\nrules = [\"allow 22/tcp from wg\"]",
        );
        let d = out.assert_error(
            "the firewall would lock the deployer out: SSH (22/tcp) from 192.0.2.0/24 is refused",
            "\"root@192.0.2.10\"",
        );
        assert_eq!(
            d.label,
            "deployer connects from zone `lan`, which holds the target address"
        );
        assert_eq!(d.related[0].1, "refused by the default incoming policy");
        assert!(d.hint.as_deref().unwrap().contains("limit 22/tcp from lan"));
        // A rule that refuses it is named.
        let out = one(
            "h",
            "[firewall]\nrules = [\"deny 22/tcp from 192.0.2.0/24\", \"allow 22/tcp\"]",
        );
        let d = out.error("would lock the deployer out");
        assert_eq!(d.related[0].1, "refused by this rule");
        assert_eq!(
            out.inv.sources.text(d.related[0].0.file)[d.related[0].0.span.clone()].to_string(),
            "\"deny 22/tcp from 192.0.2.0/24\""
        );
        // deploy.from narrows where the deployer is.
        one(
            "h",
            "[deploy]\ntarget = \"root@192.0.2.10\"\nfrom = \"10.1.0.0/16\"\n[firewall]\nrules = [\"allow 22/tcp from 10.1.0.0/16\"]",
        )
        .plan();
        one(
            "h",
            "[deploy]\ntarget = \"root@192.0.2.10\"\nfrom = \"10.2.0.0/16\"\n[firewall]\nrules = [\"allow 22/tcp from 10.1.0.0/16\"]",
        )
        .assert_error("SSH (22/tcp) from 10.2.0.0/16 is refused", "\"root@192.0.2.10\"");
    }
}
