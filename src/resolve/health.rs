//! `[[health]]` tables → `HealthCheck`s: one probe each (unit, tcp, http or
//! container), its timing (grace, retries, interval) and the rules that make a
//! check able to pass at all: a unit name systemctl reads as a unit, a port that
//! something on the host listens on or publishes, a container the host runs, and
//! a worst case that fits inside the confirm timeout.
//!
//! Owns only the health checks; the listeners it knows come from the resolved
//! SSH and container plans. It does not run anything (the deploy engine does).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;

use super::HostCx;
use crate::catalog::Proto;
use crate::inventory::Spanned;
use crate::inventory::schema::Health;
use crate::plan::*;

/// Seconds of the confirm timeout kept for the new SSH connection and the
/// confirmation itself; the checks get the rest.
pub const CONFIRM_RESERVE_SECS: u64 = 3;
/// Default time between attempts (also each attempt's time limit).
pub const DEFAULT_INTERVAL_SECS: u64 = 2;
/// Default failed attempts after the grace period before a check fails.
pub const DEFAULT_RETRIES: u32 = 3;
/// The longest default grace period. Activation returns once systemd has
/// started the units; a container's app then needs from under a second
/// (traefik, redis) to tens of seconds (postgres' first initdb, authentik's
/// migrations). A pass ends a check at once, so a long grace costs time only
/// when the check is really failing.
pub const MAX_DEFAULT_GRACE_SECS: u64 = 20;

/// What the host-file checks are resolved against.
pub(super) struct HealthContext<'p> {
    pub deploy: Option<&'p DeployPlan>,
    pub ssh: Option<&'p SshPlan>,
    pub containers: Option<&'p ContainersPlan>,
    pub wireguard: &'p [WgInterface],
}

impl HostCx<'_> {
    pub(super) fn health(&mut self, cx: &HealthContext) -> Vec<HealthCheck> {
        let mut out = Vec::new();
        for h in &self.host.raw.health {
            if let Some(check) = self.health_check(h, cx) {
                out.push(check);
            }
        }
        out
    }

    fn health_check(&mut self, h: &Spanned<Health>, cx: &HealthContext) -> Option<HealthCheck> {
        let given = [
            h.unit.is_some(),
            h.tcp.is_some(),
            h.http.is_some(),
            h.container.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            self.error(
                &h.span,
                "a health check needs exactly one of unit, tcp, http, container",
                "split it into one [[health]] table per check",
            );
            return None;
        }
        let probe = if let Some(u) = &h.unit {
            self.unit_probe(u)
        } else if let Some(t) = &h.tcp {
            self.tcp_probe(t, cx)
        } else if let Some(u) = &h.http {
            self.http_probe(u, cx)
        } else {
            self.container_probe(h.container.as_ref()?, cx)
        };
        let timing = self.health_timing(h, cx);
        Some(HealthCheck {
            probe: probe?,
            grace_secs: timing.0,
            interval_secs: timing.1,
            retries: timing.2,
        })
    }

    fn unit_probe(&mut self, u: &Spanned<crate::inventory::ident::UnitName>) -> Option<Probe> {
        // The grammar (systemd's characters, a known suffix, no leading '-')
        // was checked when the host file was read: `inventory::ident`.
        Some(Probe::Unit(u.value.to_string()))
    }

    fn tcp_probe(&mut self, t: &Spanned<String>, cx: &HealthContext) -> Option<Probe> {
        let target = match super::parse_target(&t.value) {
            Ok(tg) if tg.user.is_none() && tg.port.is_some() => tg,
            _ => {
                self.error(
                    &t.span,
                    format!("`{}` is not \"host:port\"", t.value),
                    "write \"address:port\", e.g. \"127.0.0.1:443\"",
                );
                return None;
            }
        };
        self.check_listened(t, &target.host, target.port?, cx)
            .then(|| Probe::Tcp(t.value.clone()))
    }

    fn http_probe(&mut self, u: &Spanned<String>, cx: &HealthContext) -> Option<Probe> {
        let parsed = url::Url::parse(&u.value).ok().filter(|p| {
            matches!(p.scheme(), "http" | "https")
                && p.host_str().is_some()
                && !u.value.contains(char::is_whitespace)
        });
        let Some(url) = parsed else {
            self.error(
                &u.span,
                format!("`{}` is not an http(s) URL", u.value),
                "write e.g. \"http://127.0.0.1:8080/health\"",
            );
            return None;
        };
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        self.check_listened(u, &host, port, cx)
            .then(|| Probe::Http(u.value.clone()))
    }

    fn container_probe(&mut self, c: &Spanned<String>, cx: &HealthContext) -> Option<Probe> {
        let Some(plan) = cx.containers else {
            if self.host.raw.containers.is_none() {
                self.error(
                    &c.span,
                    format!("container `{}`: this host runs no containers", c.value),
                    "add the service to [containers] services, or check a unit, port or URL",
                );
            }
            return None;
        };
        if !plan.services.iter().any(|s| s.name == c.value) {
            let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
            let hint = match super::closest(&c.value, names.iter().copied()) {
                Some(n) => format!("did you mean \"{n}\"?"),
                None => format!("this host runs: {}", names.join(", ")),
            };
            self.error(
                &c.span,
                format!("container `{}` is not a service this host runs", c.value),
                hint,
            );
            return None;
        }
        Some(Probe::Container {
            name: c.value.clone(),
            engine: plan.backend,
        })
    }

    /// Whether `host:port` is this host and something there listens on the
    /// TCP port; reports at `at` and returns false when not.
    fn check_listened(
        &mut self,
        at: &Spanned<String>,
        host: &str,
        port: u16,
        cx: &HealthContext,
    ) -> bool {
        if !is_this_host(host, cx) {
            self.error(
                &at.span,
                format!(
                    "`{host}` is not an address of this host: health checks run on the host itself"
                ),
                "use 127.0.0.1 (or the name Traefik routes, <service>.<domain>) with a port this host listens on",
            );
            return false;
        }
        let listeners = tcp_listeners(cx);
        if listeners.contains_key(&port) {
            return true;
        }
        let known: Vec<String> = listeners
            .iter()
            .map(|(p, who)| format!("{p} ({who})"))
            .collect();
        self.error(
            &at.span,
            format!(
                "nothing on {} listens on tcp port {port}, so `{}` can never pass",
                self.host.name, at.value
            ),
            format!(
                "tcp ports this host listens on: {}. A container's own port is reachable only when published ([containers.NAME] ports); to check a container, write container = \"NAME\"",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        );
        false
    }

    /// (grace, interval, retries), validated; the worst case must fit inside the
    /// confirm timeout.
    fn health_timing(&mut self, h: &Spanned<Health>, cx: &HealthContext) -> (u64, u64, u32) {
        let interval = match &h.interval {
            Some(v) => self.bounded_secs(v, 1, 60, "interval").unwrap_or(1),
            None => DEFAULT_INTERVAL_SECS,
        };
        let retries = match &h.retries {
            Some(r) if (1..=20).contains(&r.value) => r.value as u32,
            Some(r) => {
                self.error(
                    &r.span,
                    format!("retries = {} is out of range", r.value),
                    "use 1 to 20 failed attempts after the grace period",
                );
                1
            }
            None => DEFAULT_RETRIES,
        };
        let confirm = cx
            .deploy
            .filter(|d| d.magic_rollback)
            .map(|d| d.confirm_timeout_secs);
        let room = confirm.map(|c| c.saturating_sub(CONFIRM_RESERVE_SECS));
        let grace = match &h.grace {
            Some(v) => self.grace_secs(v).unwrap_or(0),
            None => {
                let left = room.unwrap_or(u64::MAX);
                MAX_DEFAULT_GRACE_SECS.min(left.saturating_sub(u64::from(retries) * interval))
            }
        };
        let worst = grace + u64::from(retries) * interval;
        if let (Some(confirm), Some(room)) = (confirm, room)
            && worst > room
        {
            let span = h
                .grace
                .as_ref()
                .map(|g| g.span.clone())
                .or_else(|| h.retries.as_ref().map(|r| r.span.clone()))
                .or_else(|| h.interval.as_ref().map(|i| i.span.clone()))
                .unwrap_or_else(|| h.span.clone());
            self.timing_error(&span, (grace, interval, retries), confirm);
        }
        (grace, interval, retries)
    }

    fn timing_error(&mut self, span: &Range<usize>, t: (u64, u64, u32), confirm: u64) {
        let (grace, interval, retries) = t;
        let worst = grace + u64::from(retries) * interval;
        self.error(
            span,
            format!(
                "this check can take {grace}s grace + {retries} retries × {interval}s = {worst}s, more than the {}s the confirm timeout ({confirm}s) leaves for health checks",
                confirm.saturating_sub(CONFIRM_RESERVE_SECS)
            ),
            format!(
                "shorten grace, retries or interval, or set [deploy] confirm_timeout = \"{}s\" or more ({CONFIRM_RESERVE_SECS}s of it are kept for the new SSH connection and the confirmation)",
                worst + CONFIRM_RESERVE_SECS
            ),
        );
    }

    fn bounded_secs(&mut self, v: &Spanned<String>, min: u64, max: u64, what: &str) -> Option<u64> {
        let secs = self.duration(v)?;
        if !(min..=max).contains(&secs) {
            self.error(
                &v.span,
                format!("{what} {} is out of range", v.value),
                format!("use {min}s to {max}s"),
            );
            return None;
        }
        Some(secs)
    }

    fn grace_secs(&mut self, v: &Spanned<String>) -> Option<u64> {
        if matches!(v.value.trim(), "0" | "0s") {
            return Some(0);
        }
        self.bounded_secs(v, 0, 3600, "grace")
    }
}

/// TCP ports something on the host listens on, with who: sshd, and every port
/// a container publishes (Traefik's 80/443 among them when the proxy runs).
/// Native services that listen go here as potato starts configuring them.
fn tcp_listeners(cx: &HealthContext) -> BTreeMap<u16, String> {
    let mut out = BTreeMap::new();
    if let Some(ssh) = cx.ssh {
        out.insert(ssh.port, "sshd".to_string());
    }
    for s in cx.containers.iter().flat_map(|c| c.services.iter()) {
        for p in s.ports.iter().filter(|p| p.proto == Proto::Tcp) {
            out.entry(p.host).or_insert_with(|| s.name.clone());
        }
    }
    out
}

/// Whether a check's address is this host: loopback, `localhost`, the deploy
/// target, a WireGuard address, or a name under the containers' domain (which
/// Traefik on this host answers).
fn is_this_host(host: &str, cx: &HealthContext) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback()
            || cx.wireguard.iter().any(|w| w.address.addr() == ip)
            || cx
                .deploy
                .is_some_and(|d| d.target.host.parse::<IpAddr>() == Ok(ip));
    }
    cx.deploy
        .is_some_and(|d| d.target.host.eq_ignore_ascii_case(&host))
        || cx
            .containers
            .is_some_and(|c| host == c.domain || host.ends_with(&format!(".{}", c.domain)))
}

#[cfg(test)]
mod tests {
    use crate::plan::Probe;
    use crate::resolve::testkit::{Outcome, one};

    fn check(table: &str) -> Outcome {
        one("h", &format!("[[health]]\n{table}"))
    }

    /// A host running Traefik (publishes 80 and 443) with one health check.
    fn with_traefik(table: &str) -> Outcome {
        one(
            "h",
            &format!(
                "[firewall]\nrules = [\"allow 22/tcp\", \"allow 80,443/tcp\"]\n[containers]\nservices = [\"traefik\"]\n[[health]]\n{table}"
            ),
        )
    }

    #[test]
    fn default_timing_fits_the_default_confirm_timeout() {
        let out = check("unit = \"sshd.service\"");
        let h = &out.plan().health[0];
        assert_eq!(h.probe, Probe::Unit("sshd.service".into()));
        // 30s confirm - 3s reserve - 3 retries × 2s = 21s left; the default grace is at most 20s.
        assert_eq!((h.grace_secs, h.interval_secs, h.retries), (20, 2, 3));
    }

    #[test]
    fn exactly_one_probe_per_check() {
        let out = check("unit = \"sshd.service\"\ntcp = \"127.0.0.1:22\"");
        let d = out.error("a health check needs exactly one of unit, tcp, http, container");
        assert_eq!(out.span_of(d), "[[health]]");
        check("grace = \"1s\"").error("needs exactly one of");
    }

    #[test]
    fn tcp_checks_a_port_this_host_listens_on() {
        let out = check("tcp = \"127.0.0.1:22\"");
        assert_eq!(
            out.plan().health[0].probe,
            Probe::Tcp("127.0.0.1:22".into())
        );
        check("tcp = \"192.0.2.10:22\"").plan();
        check("tcp = \"localhost\"")
            .assert_error("`localhost` is not \"host:port\"", "\"localhost\"");
        check("tcp = \"192.0.2.99:22\"").assert_error(
            "`192.0.2.99` is not an address of this host",
            "\"192.0.2.99:22\"",
        );
        let out = check("tcp = \"127.0.0.1:5432\"");
        let d = out.assert_error(
            "nothing on h listens on tcp port 5432, so `127.0.0.1:5432` can never pass",
            "\"127.0.0.1:5432\"",
        );
        assert!(d.hint.as_deref().unwrap().contains("22 (sshd)"));
    }

    #[test]
    fn http_checks_a_url_on_this_host() {
        let out = with_traefik("http = \"http://127.0.0.1/ping\"");
        assert_eq!(
            out.plan().health[0].probe,
            Probe::Http("http://127.0.0.1/ping".into())
        );
        for bad in ["ftp://127.0.0.1/", "127.0.0.1:80", "http://127.0.0.1/a b"] {
            check(&format!("http = \"{bad}\"")).assert_error(
                &format!("`{bad}` is not an http(s) URL"),
                &format!("\"{bad}\""),
            );
        }
        check("http = \"http://127.0.0.1:8080/\"")
            .assert_error("listens on tcp port 8080", "\"http://127.0.0.1:8080/\"");
    }

    #[test]
    fn container_checks_name_a_service_this_host_runs() {
        let out = with_traefik("container = \"traefik\"");
        assert!(matches!(
            &out.plan().health[0].probe,
            Probe::Container { name, .. } if name == "traefik"
        ));
        let out = with_traefik("container = \"treafik\"");
        let d = out.assert_error(
            "container `treafik` is not a service this host runs",
            "\"treafik\"",
        );
        assert_eq!(d.hint.as_deref(), Some("did you mean \"traefik\"?"));
        check("container = \"traefik\"").assert_error(
            "container `traefik`: this host runs no containers",
            "\"traefik\"",
        );
    }

    #[test]
    fn timing_in_range() {
        let unit = "unit = \"sshd.service\"";
        check(&format!("{unit}\nretries = 21")).assert_error("retries = 21 is out of range", "21");
        check(&format!("{unit}\ninterval = \"2m\""))
            .assert_error("interval 2m is out of range", "\"2m\"");
        check(&format!("{unit}\ngrace = \"2h\""))
            .assert_error("grace 2h is out of range", "\"2h\"");
        let ok = check(&format!(
            "{unit}\ngrace = \"0\"\nretries = 1\ninterval = \"1s\""
        ));
        let h = &ok.plan().health[0];
        assert_eq!((h.grace_secs, h.interval_secs, h.retries), (0, 1, 1));
    }

    #[test]
    fn the_worst_case_fits_the_confirm_timeout() {
        let out = check("unit = \"sshd.service\"\ngrace = \"25s\"");
        let d = out.assert_error(
            "this check can take 25s grace + 3 retries × 2s = 31s, more than the 27s the confirm timeout (30s) leaves for health checks",
            "\"25s\"",
        );
        assert!(
            d.hint
                .as_deref()
                .unwrap()
                .contains("confirm_timeout = \"34s\"")
        );
        // Without magic rollback nothing waits for the checks.
        one(
            "h",
            "[deploy]\ntarget = \"root@192.0.2.10\"\nmagic_rollback = false\n[[health]]\nunit = \"sshd.service\"\ngrace = \"25s\"",
        )
        .plan();
    }

    fn check_unit_name(s: &str) -> Result<(), String> {
        crate::inventory::ident::check_unit_name(s).map_err(|e| e.message)
    }

    #[test]
    fn unit_names() {
        for ok in [
            "podman-traefik.service",
            "wireguard-wg0.service",
            "getty@tty1.service",
            "mnt-ssd.mount",
            "systemd-fsck@dev-disk-by\\x2dlabel-ssd.service",
        ] {
            assert!(check_unit_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-H.service",
            "--help.service",
            "traefik",
            "traefik.exe",
            ".service",
            "a b.service",
            "a;reboot.service",
            "a$(x).service",
        ] {
            assert!(check_unit_name(bad).is_err(), "{bad}");
        }
        assert!(
            check_unit_name("-Hroot@evil.service")
                .unwrap_err()
                .contains("starts with '-'")
        );
    }
}
