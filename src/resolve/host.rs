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
