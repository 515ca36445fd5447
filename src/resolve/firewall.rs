//! `[firewall]` rules and policies (parsed by `harden::firewall`, shadowed rules
//! refused) and `[fail2ban]` (jails, ban times, the never-ban list). Owns only
//! these rules; the compiled ruleset is `harden::firewall`'s.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::HostCx;
use crate::diag::Diagnostic;
use crate::harden::firewall::{self, Policies, Source, parse_rule};
use crate::inventory::Spanned;
use crate::inventory::schema::Policy;
use crate::plan::*;

impl HostCx<'_> {
    pub(super) fn firewall(
        &mut self,
        zones: &BTreeMap<String, Vec<IpNet>>,
    ) -> Option<FirewallPlan> {
        let fw = &self.host.raw.firewall;
        let lookup = |z: &str| zones.get(z).cloned();
        let mut rules: Vec<(firewall::Rule, &Spanned<String>)> = Vec::new();
        let mut ok = true;
        for text in &fw.rules {
            match parse_rule(&text.value, &lookup) {
                Ok(rule) => rules.push((rule, text)),
                Err(e) => {
                    ok = false;
                    let span = self.inner_span(text, &e.range);
                    self.error(&span, e.message, e.hint);
                }
            }
        }
        for i in 0..rules.len() {
            if let Some(j) = (0..i).find(|&j| rules[i].0.is_shadowed_by(&rules[j].0)) {
                let (later, earlier) = (&rules[i], &rules[j]);
                let what = if later.0.action == earlier.0.action {
                    "repeats"
                } else {
                    "contradicts"
                };
                let d = Diagnostic::at(self.loc(&later.1.span), format!("rule `{}` never matches: it {what} the earlier rule `{}`", later.0.text, earlier.0.text))
                    .label("shadowed")
                    .related(self.loc(&earlier.1.span), "this rule matches first")
                    .hint("rules are checked in order and the first match wins: remove this rule or move it above the earlier one");
                self.diags.push(d);
                ok = false;
            }
        }
        let pol = |p: &Option<Spanned<Policy>>, d: Policy| p.as_ref().map(|p| p.value).unwrap_or(d);
        ok.then(|| FirewallPlan {
            policies: Policies {
                incoming: pol(&fw.incoming, Policy::Deny),
                outgoing: pol(&fw.outgoing, Policy::Allow),
                routed: pol(&fw.routed, Policy::Deny),
            },
            rules: rules.into_iter().map(|(r, _)| r).collect(),
            wireguard_ports: Vec::new(),
        })
    }

    pub(super) fn fail2ban(
        &mut self,
        zones: &BTreeMap<String, Vec<IpNet>>,
    ) -> Option<Fail2banPlan> {
        let f = self.host.raw.fail2ban.as_ref()?;
        let mut jails = Vec::new();
        for j in &f.jails {
            match j.value.as_str() {
                "sshd" | "traefik-auth" => jails.push(j.value.clone()),
                other => self.error(
                    &j.span,
                    format!("unknown fail2ban jail `{other}`"),
                    "potato ships the jails \"sshd\" and \"traefik-auth\"",
                ),
            }
        }
        let mut secs = |v: &Option<Spanned<String>>, default: u64| match v {
            Some(b) => self.duration(b).unwrap_or(0),
            None => default,
        };
        let bantime_secs = secs(&f.bantime, 3600);
        let findtime_secs = secs(&f.findtime, 600);
        let maxtime_secs = secs(&f.maxtime, 7 * 24 * 3600);
        if let Some(m) = &f.maxtime
            && maxtime_secs < bantime_secs
        {
            self.error(
                &m.span,
                "maxtime is shorter than bantime",
                "maxtime caps the growing ban time: make it at least bantime",
            );
        }
        let maxretry = match &f.maxretry {
            Some(m) if (1..=100).contains(&m.value) => m.value as u32,
            Some(m) => {
                self.error(
                    &m.span,
                    format!("maxretry {} is out of range", m.value),
                    "use 1 to 100",
                );
                0
            }
            None => 5,
        };
        let mut ignore = Vec::new();
        match &f.ignore {
            Some(list) => {
                for i in list {
                    let lookup = |z: &str| zones.get(z).cloned();
                    match firewall::parse_source(&i.value, &lookup) {
                        Ok(Source::Nets { nets, .. }) => ignore.extend(nets),
                        Ok(Source::Any) => self.error(
                            &i.span,
                            "ignoring \"any\" would disable fail2ban",
                            "list the zones or CIDRs never to ban",
                        ),
                        Err((m, h)) => self.error(&i.span, m, h),
                    }
                }
            }
            None => {
                for z in ["lan", "wg"] {
                    ignore.extend(zones.get(z).into_iter().flatten().cloned());
                }
                for w in self.host.raw.wireguard.values() {
                    if let Ok(a) = w.address.value.parse::<IpNet>() {
                        ignore.push(a.trunc());
                    }
                }
            }
        }
        let mut seen = Vec::new();
        ignore.retain(|n| {
            let new = !seen.contains(n);
            seen.push(*n);
            new
        });
        Some(Fail2banPlan {
            jails,
            bantime_secs,
            findtime_secs,
            maxretry,
            increment: f.increment.as_ref().map(|i| i.value).unwrap_or(true),
            maxtime_secs,
            ignore,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::schema::Policy;
    use crate::resolve::testkit::one;

    #[test]
    fn rules_parse_and_a_bad_word_is_pointed_at() {
        let ok = one(
            "h",
            "[zones]\nlan = [\"192.0.2.0/24\"]\n[firewall]\nincoming = \"deny\"\nrules = [\"limit 22/tcp from lan\", \"allow 80,443/tcp\"]",
        );
        let fw = &ok.plan().firewall;
        assert_eq!(fw.rules.len(), 2);
        assert_eq!(fw.policies.incoming, Policy::Deny);
        assert_eq!(fw.policies.outgoing, Policy::Allow);
        // The error's span is the bad word inside the string, not the whole rule.
        let out = one(
            "h",
            "[firewall]\nrules = [\"allow 22/tcp\", \"permit 80/tcp\"]",
        );
        out.assert_error("unknown action `permit`", "permit");
        let out = one(
            "h",
            "[firewall]\nrules = [\"allow 22/tcp\", \"allow 80/tcp from office\"]",
        );
        let d = out.diags_at("office");
        assert!(d.message.contains("office"), "{}", d.message);
    }

    #[test]
    fn a_rule_after_one_that_matches_first_never_matches() {
        let out = one(
            "h",
            "[firewall]\nrules = [\"allow 22/tcp\", \"deny 22/tcp from 10.0.0.0/8\"]",
        );
        let d = out.assert_error(
            "rule `deny 22/tcp from 10.0.0.0/8` never matches: it contradicts the earlier rule `allow 22/tcp`",
            "\"deny 22/tcp from 10.0.0.0/8\"",
        );
        assert_eq!(d.related[0].1, "this rule matches first");
        let out = one(
            "h",
            "[firewall]\nrules = [\"allow 22/tcp\", \"allow 22/tcp from 10.0.0.0/8\"]",
        );
        out.error("it repeats the earlier rule `allow 22/tcp`");
        // The narrower rule first is fine.
        one(
            "h",
            "[firewall]\nrules = [\"deny 22/tcp from 10.0.0.0/8\", \"allow 22/tcp\"]",
        )
        .plan();
    }

    fn f2b(body: &str) -> String {
        format!("[zones]\nlan = [\"192.0.2.0/24\"]\n[fail2ban]\njails = [\"sshd\"]\n{body}")
    }

    #[test]
    fn fail2ban_defaults_and_jails() {
        let ok = one("h", &f2b(""));
        let f = ok.plan().fail2ban.as_ref().unwrap();
        assert_eq!(
            (f.bantime_secs, f.findtime_secs, f.maxretry, f.maxtime_secs),
            (3600, 600, 5, 7 * 24 * 3600)
        );
        // Without `ignore`, the lan zone is never banned.
        assert_eq!(f.ignore, ["192.0.2.0/24".parse::<ipnet::IpNet>().unwrap()]);
        one("h", "[fail2ban]\njails = [\"sshd\", \"nginx\"]")
            .assert_error("unknown fail2ban jail `nginx`", "\"nginx\"");
    }

    #[test]
    fn fail2ban_times_and_retries() {
        let ok = one(
            "h",
            &f2b("bantime = \"10m\"\nmaxtime = \"10m\"\nmaxretry = 100"),
        );
        assert_eq!(ok.plan().fail2ban.as_ref().unwrap().maxretry, 100);
        one("h", &f2b("bantime = \"2h\"\nmaxtime = \"1h\""))
            .assert_error("maxtime is shorter than bantime", "\"1h\"");
        one("h", &f2b("maxretry = 0")).assert_error("maxretry 0 is out of range", "0");
        one("h", &f2b("findtime = \"forever\"")).diags_at("\"forever\"");
    }

    #[test]
    fn fail2ban_ignore_is_zones_or_networks_never_any() {
        let ok = one("h", &f2b("ignore = [\"lan\", \"10.9.0.0/16\", \"lan\"]"));
        assert_eq!(ok.plan().fail2ban.as_ref().unwrap().ignore.len(), 2);
        one("h", &f2b("ignore = [\"any\"]"))
            .assert_error("ignoring \"any\" would disable fail2ban", "\"any\"");
        let out = one("h", &f2b("ignore = [\"office\"]"));
        out.diags_at("\"office\"");
    }
}
