//! The host's own fields: its name, hardware against system, time zone, NixOS
//! release, tags and zones. Owns only these per-host values; the sections that
//! use zones (firewall, deploy, containers) live in their own files.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::HostCx;
use crate::diag::Diagnostic;
use crate::harden::firewall::parse_net;

impl HostCx<'_> {
    /// The hardware profile fixes the system: an x86 profile cannot build for aarch64.
    pub(super) fn check_system(&mut self) {
        let raw = &self.host.raw;
        if raw.hardware.system() != raw.system.value {
            self.error(
                &raw.hardware.span,
                format!(
                    "hardware `{}` is {}, but system is {}",
                    raw.hardware.as_str(),
                    raw.hardware.system().as_str(),
                    raw.system.as_str()
                ),
                format!("set system = \"{}\"", raw.hardware.system().as_str()),
            );
        }
    }

    pub(super) fn check_name(&mut self) {
        let name = &self.host.name;
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !ok {
            self.diags.push(
                Diagnostic::at(self.loc(&(0..0)), format!("`{name}` is not a valid host name"))
                    .hint("name the file after the host: lowercase letters, digits and '-', at most 63 characters (it becomes networking.hostName)"),
            );
        }
    }

    pub(super) fn timezone(&mut self) -> String {
        let Some(tz) = &self.host.raw.timezone else {
            return "UTC".into();
        };
        let ok = !tz.is_empty()
            && tz.split('/').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
            });
        if !ok {
            self.error(
                &tz.span,
                format!("`{}` is not a time zone name", tz.value),
                "use an IANA name such as \"Europe/Berlin\" or \"UTC\"",
            );
        }
        tz.value.clone()
    }

    pub(super) fn state_version(&mut self) -> String {
        let Some(v) = &self.host.raw.state_version else {
            return "25.11".into();
        };
        let ok = v.split_once('.').is_some_and(|(a, b)| {
            a.len() == 2 && b.len() == 2 && (a.to_owned() + b).chars().all(|c| c.is_ascii_digit())
        });
        if !ok {
            self.error(
                &v.span,
                format!("`{}` is not a NixOS release", v.value),
                "write it as YY.MM, e.g. \"25.11\"",
            );
        }
        v.value.clone()
    }

    pub(super) fn tags(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.host.raw.tags {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                self.error(
                    &t.span,
                    format!("`{}` is not a valid tag", t.value),
                    "tags are lowercase letters, digits and '-'",
                );
            }
            out.push(t.value.clone());
        }
        out
    }

    pub(super) fn zones(&mut self) -> BTreeMap<String, Vec<IpNet>> {
        let mut zones = BTreeMap::new();
        // Zone names were checked when the host file was read (ZoneName).
        for (name, nets) in &self.host.raw.zones {
            let mut parsed = Vec::new();
            for n in nets {
                match parse_net(&n.value) {
                    Some(net) => parsed.push(net),
                    None => self.error(
                        &n.span,
                        format!("`{}` is not a valid CIDR or address", n.value),
                        "write e.g. \"192.168.178.0/24\" (host bits zero) or \"fd00::/64\"",
                    ),
                }
            }
            zones.insert(name.to_string(), parsed);
        }
        zones
    }
}

#[cfg(test)]
mod tests {
    use crate::resolve::testkit::{Fleet, one};

    #[test]
    fn host_name_is_the_file_name_and_must_be_a_hostname() {
        assert_eq!(one("web-01", "").plan().name, "web-01");
        let out = one("Web_01", "");
        let d = out.assert_error("`Web_01` is not a valid host name", "");
        assert_eq!(out.file_of(d), "hosts/Web_01.toml");
        assert!(d.hint.as_deref().unwrap().contains("networking.hostName"));
        // 64 characters is one too many.
        let long = "a".repeat(64);
        one(&long, "").error("is not a valid host name");
        let out = Fleet::default().host("-web", "").resolve();
        out.error("`-web` is not a valid host name");
    }

    #[test]
    fn hardware_fixes_the_system() {
        let ok = one("pi", "system = \"aarch64-linux\"\nhardware = \"lepotato\"");
        assert_eq!(ok.plan().hardware.as_str(), "lepotato");
        let out = one("pi", "hardware = \"lepotato\"");
        let d = out.assert_error(
            "hardware `lepotato` is aarch64-linux, but system is x86_64-linux",
            "\"lepotato\"",
        );
        assert_eq!(d.hint.as_deref(), Some("set system = \"aarch64-linux\""));
    }

    #[test]
    fn memory_is_a_size() {
        assert_eq!(one("h", "memory = \"2048MiB\"").plan().memory_mib, 2048);
        let out = one("h", "memory = \"4 gigs\"");
        let d = out.diags_at("\"4 gigs\"");
        assert!(d.hint.as_deref().unwrap().contains("\"16GiB\""));
    }

    #[test]
    fn timezone_is_an_iana_name() {
        assert_eq!(one("h", "").plan().timezone, "UTC");
        let ok = one("h", "timezone = \"America/Argentina/Buenos_Aires\"");
        assert_eq!(ok.plan().timezone, "America/Argentina/Buenos_Aires");
        for bad in ["Europe/Ber lin", "Europe//Berlin", "../etc", ""] {
            let out = one("h", &format!("timezone = \"{bad}\""));
            out.assert_error(
                &format!("`{bad}` is not a time zone name"),
                &format!("\"{bad}\""),
            );
        }
    }

    #[test]
    fn state_version_is_yy_mm() {
        assert_eq!(one("h", "").plan().state_version, "25.11");
        assert_eq!(
            one("h", "state_version = \"24.05\"").plan().state_version,
            "24.05"
        );
        for bad in ["25.1", "2025.11", "ab.cd", "25"] {
            one("h", &format!("state_version = \"{bad}\"")).assert_error(
                &format!("`{bad}` is not a NixOS release"),
                &format!("\"{bad}\""),
            );
        }
    }

    #[test]
    fn tags_are_lowercase_words() {
        let ok = one("h", "tags = [\"home-lab\", \"edge2\"]");
        assert_eq!(ok.plan().tags, ["home-lab", "edge2"]);
        let out = one("h", "tags = [\"ok\", \"Home\"]");
        out.assert_error("`Home` is not a valid tag", "\"Home\"");
        one("h", "tags = [\"\"]").assert_error("`` is not a valid tag", "\"\"");
    }

    #[test]
    fn zones_are_networks() {
        let ok = one("h", "[zones]\nlan = [\"192.168.1.0/24\", \"fd00::/64\"]");
        assert_eq!(ok.plan().zones["lan"].len(), 2);
        let out = one("h", "[zones]\nlan = [\"192.168.1.1/24\"]");
        out.assert_error(
            "`192.168.1.1/24` is not a valid CIDR or address",
            "\"192.168.1.1/24\"",
        );
    }
}
