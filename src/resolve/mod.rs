//! Validation and resolution: `Inventory` (+ catalog, secrets) → `HostPlan`s.
//!
//! Owns every rule about what a valid fleet is. Each check pushes a diagnostic
//! (file, span, message, hint) and carries on, so one run reports every problem.
//! Per-host checks come first, then the fleet-wide ones (duplicates, peers,
//! overlaps). Nothing here writes files or calls Nix.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;

use ipnet::IpNet;

use crate::catalog::{Catalog, Proto};
use crate::diag::{Diagnostic, FileId, Loc, Sources};
use crate::harden::firewall::{self, Policies, Source, parse_net, parse_rule};
use crate::inventory::schema::{BuildOn, Hardware, HostFile, Mode, Policy};
use crate::inventory::{HostSource, Inventory, Spanned};
use crate::plan::*;
use crate::secrets::{self, SecretIndex};
use crate::units::{parse_duration, parse_mib};

mod containers;
mod health;
mod vpn;

/// Default container network subnets by zone.
pub(crate) const DEFAULT_NETWORKS: &[(&str, &str)] = &[
    ("proxy", "10.89.1.0/24"),
    ("backend", "10.89.2.0/24"),
    ("monitoring", "10.89.3.0/24"),
    ("vpn", "10.89.4.0/24"),
];

/// The secrets each host's files reference, found or not, whether or not the
/// fleet is otherwise valid (the secrets commands work on a fleet that still
/// misses the very secret being created): (host, name, used on the host).
pub fn secret_references(
    inv: &Inventory,
    catalog: &Catalog,
    secrets: &SecretIndex,
) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for h in &inv.hosts {
        let mut cx = HostCx::new(h, &inv.sources, catalog, secrets);
        let _ = cx.resolve_host();
        for (name, on_host) in cx.references {
            out.push((h.name.clone(), name, on_host));
        }
    }
    out
}

/// Resolves every host. Ok only when no diagnostic was raised anywhere.
pub fn resolve(
    inv: &Inventory,
    catalog: &Catalog,
    secrets: &SecretIndex,
) -> Result<Vec<HostPlan>, Vec<Diagnostic>> {
    let mut diags = inv.diagnostics.clone();
    let mut plans = Vec::new();
    for h in &inv.hosts {
        let mut cx = HostCx::new(h, &inv.sources, catalog, secrets);
        let plan = cx.resolve_host();
        diags.append(&mut cx.diags);
        plans.push((h, plan));
    }
    fleet_checks(&plans, &inv.sources, &mut diags);
    let mut resolved: Vec<HostPlan> = plans.into_iter().filter_map(|(_, p)| p).collect();
    if diags.is_empty() {
        resolve_wireguard_peers(inv, &mut resolved, &mut diags);
    }
    if diags.is_empty() {
        crate::monitoring::wire(inv, &mut resolved, &mut diags);
    }
    if diags.is_empty() {
        crate::edge::wire(inv, &mut resolved, &mut diags);
    }
    if diags.is_empty() {
        Ok(resolved)
    } else {
        Err(diags)
    }
}

/// Per-host context: where diagnostics go and how spans become locations.
struct HostCx<'a> {
    host: &'a HostSource,
    sources: &'a Sources,
    catalog: &'a Catalog,
    secrets: &'a SecretIndex,
    diags: Vec<Diagnostic>,
    used_secrets: BTreeMap<String, camino::Utf8PathBuf>,
    /// Every secret name referenced, found or not: name → used on the host
    /// (false: only the operator's machine uses it).
    references: BTreeMap<String, bool>,
}

impl<'a> HostCx<'a> {
    fn new(
        host: &'a HostSource,
        sources: &'a Sources,
        catalog: &'a Catalog,
        secrets: &'a SecretIndex,
    ) -> Self {
        HostCx {
            host,
            sources,
            catalog,
            secrets,
            diags: Vec::new(),
            used_secrets: BTreeMap::new(),
            references: BTreeMap::new(),
        }
    }

    fn file(&self) -> FileId {
        self.host.file
    }

    fn loc(&self, span: &Range<usize>) -> Loc {
        Loc::new(self.file(), span.clone())
    }

    fn error(&mut self, span: &Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let d = Diagnostic::at(self.loc(span), message).hint(hint);
        self.diags.push(d);
    }

    /// The span of `range` inside a string value, when the source writes it
    /// without escapes; otherwise the whole value.
    fn inner_span(&self, value: &Spanned<String>, range: &Range<usize>) -> Range<usize> {
        let text = self.sources.text(self.file());
        let start = value.span.start + 1; // after the opening quote
        match text.get(start..start + value.value.len()) {
            Some(raw) if raw == value.value => start + range.start..start + range.end,
            _ => value.span.clone(),
        }
    }

    fn resolve_host(&mut self) -> Option<HostPlan> {
        let raw: &HostFile = &self.host.raw;
        let errors_before = self.diags.len();
        self.check_name();
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
        let memory_mib = self.size(&raw.memory).unwrap_or(0);
        let timezone = self.timezone();
        let state_version = self.state_version();
        let tags = self.tags();
        let zones = self.zones();
        let deploy = self.deploy();
        let ssh = self.ssh();
        let firewall = self.firewall(&zones);
        let fail2ban = self.fail2ban(&zones);
        let storage = self.storage();
        let wireguard = self.wireguard();
        let containers = self.containers(memory_mib, &zones, &wireguard);
        let health = self.health(&health::HealthContext {
            deploy: deploy.as_ref().map(|d| &d.0),
            ssh: ssh.as_ref(),
            containers: containers.as_ref(),
            wireguard: &wireguard,
        });
        let proxmox = self.proxmox();
        let secret_files = self.secret_files();
        if let (Some(d), Some(fw), Some(ssh)) = (&deploy, &firewall, &ssh) {
            self.lockout_guard(d, fw, ssh, &zones);
        }
        if let (Some(c), Some(fw)) = (&containers, &firewall) {
            self.port_claims(c, fw, &wireguard);
        }
        if self.diags.len() > errors_before {
            return None;
        }
        Some(HostPlan {
            name: self.host.name.clone(),
            file: self.host.path.clone(),
            system: raw.system.value,
            hardware: raw.hardware.value,
            memory_mib,
            timezone,
            state_version,
            tags,
            deploy: deploy?.0,
            zones,
            firewall: firewall?,
            ssh: ssh?,
            fail2ban,
            storage,
            wireguard,
            containers,
            health,
            proxmox,
            secrets: std::mem::take(&mut self.used_secrets),
            secret_files,
            monitoring: None,
            edge: None,
        })
    }

    fn check_name(&mut self) {
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

    fn size(&mut self, v: &Spanned<String>) -> Option<u64> {
        match parse_mib(&v.value) {
            Ok(m) => Some(m),
            Err(e) => {
                self.error(&v.span, e, "sizes are written like \"512MiB\" or \"16GiB\"");
                None
            }
        }
    }

    fn duration(&mut self, v: &Spanned<String>) -> Option<u64> {
        match parse_duration(&v.value) {
            Ok(d) => Some(d.as_secs().max(1)),
            Err(e) => {
                self.error(
                    &v.span,
                    e,
                    "durations are written like \"30s\", \"10m\" or \"1h\"",
                );
                None
            }
        }
    }

    fn port(&mut self, v: &Spanned<i64>, what: &str) -> Option<u16> {
        if (1..=65535).contains(&v.value) {
            Some(v.value as u16)
        } else {
            self.error(
                &v.span,
                format!("{what} {} is out of range", v.value),
                "ports are 1 to 65535",
            );
            None
        }
    }

    /// `[secrets.NAME]` tables plus every other use, with owner/group/mode.
    fn secret_files(&mut self) -> BTreeMap<String, SecretMode> {
        let mut out = BTreeMap::new();
        let tables: Vec<(String, Spanned<String>)> = self
            .host
            .raw
            .secrets
            .iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    Spanned::new(t.span.clone(), format!("secret:{n}")),
                )
            })
            .collect();
        for (name, as_ref) in &tables {
            if self.secret(as_ref).is_none() {
                continue;
            }
            let t = &self.host.raw.secrets[name.as_str()];
            let mut m = SecretMode::default();
            for (field, value) in [(&mut m.owner, &t.owner), (&mut m.group, &t.group)] {
                if let Some(v) = value {
                    let ok = !v.is_empty()
                        && v.len() <= 32
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                        && !v.starts_with('-');
                    if !ok {
                        self.error(
                            &v.span,
                            format!("`{}` is not a user or group name", v.value),
                            "use a name like \"root\" or \"grafana\"",
                        );
                    }
                    *field = v.value.clone();
                }
            }
            if let Some(mode) = &t.mode
                && let Err((message, hint)) = check_secret_mode(&mode.value)
            {
                self.error(&mode.span, message, hint);
            }
            if let Some(mode) = &t.mode {
                m.mode = if mode.len() == 3 {
                    format!("0{}", mode.value)
                } else {
                    mode.value.clone()
                };
            }
            out.insert(name.clone(), m);
        }
        for name in self.used_secrets.keys() {
            out.entry(name.clone()).or_default();
        }
        out
    }

    /// A secret the host uses at run time: it must exist and be encrypted to it.
    fn secret(&mut self, v: &Spanned<String>) -> Option<String> {
        self.secret_for(v, true)
    }

    /// A secret only the operator's machine uses (the Proxmox API token): it must
    /// exist, and is never encrypted to the host or shipped with its system.
    fn operator_secret(&mut self, v: &Spanned<String>) -> Option<String> {
        self.secret_for(v, false)
    }

    fn secret_for(&mut self, v: &Spanned<String>, on_host: bool) -> Option<String> {
        let name = match secrets::parse_ref(&v.value) {
            Ok(n) => {
                *self.references.entry(n.to_string()).or_insert(false) |= on_host;
                n.to_string()
            }
            Err(e) => {
                self.error(
                    &v.span,
                    e,
                    "write \"secret:NAME\" and store the value with `potato secrets set NAME`",
                );
                return None;
            }
        };
        match self.secrets.locate(&self.host.name, &name) {
            Some(path) => {
                if on_host {
                    self.check_encrypted_to_host(v, &name, &path);
                    self.used_secrets.insert(name.clone(), path);
                }
                Some(name)
            }
            None => {
                let host = self.host.name.clone();
                self.error(
                    &v.span,
                    format!("secret `{name}` does not exist (looked for secrets/{host}/{name}.age and secrets/shared/{name}.age)"),
                    format!("create it with `potato secrets gen {name}` or `potato secrets set {name}`"),
                );
                None
            }
        }
    }

    /// A host must be able to decrypt what it uses: its SSH host key is in
    /// recipients.toml and among the file's recorded recipients.
    fn check_encrypted_to_host(
        &mut self,
        v: &Spanned<String>,
        name: &str,
        path: &camino::Utf8Path,
    ) {
        let Some(cov) = &self.secrets.coverage else {
            return;
        };
        let host = self.host.name.clone();
        let Some(key) = cov.recipients.hosts.get(&host) else {
            self.error(
                &v.span,
                format!("host `{host}` has no SSH host key in secrets/recipients.toml, so it cannot decrypt secret `{name}`"),
                format!("add {host} = \"ssh-ed25519 AAAA...\" under [hosts] there (ssh-keyscan the host, or potato bootstrap), then run `potato secrets rekey`"),
            );
            return;
        };
        let encrypted_to_host = cov
            .recorded
            .get(path)
            .is_some_and(|r| r.contains(&crate::secrets::store::normalize(key)));
        if !encrypted_to_host {
            self.error(
                &v.span,
                format!("secret `{name}` ({path}) is not encrypted to {host}"),
                "run `potato secrets rekey` to re-encrypt it for every host that uses it",
            );
        }
    }

    fn timezone(&mut self) -> String {
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

    fn state_version(&mut self) -> String {
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

    fn tags(&mut self) -> Vec<String> {
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

    fn zones(&mut self) -> BTreeMap<String, Vec<IpNet>> {
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

    fn deploy(&mut self) -> Option<(DeployPlan, Option<Vec<IpNet>>)> {
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
    fn build_on(&mut self, b: Option<&Spanned<BuildOn>>) -> Option<BuildOn> {
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

    fn ssh(&mut self) -> Option<SshPlan> {
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

    fn firewall(&mut self, zones: &BTreeMap<String, Vec<IpNet>>) -> Option<FirewallPlan> {
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

    fn fail2ban(&mut self, zones: &BTreeMap<String, Vec<IpNet>>) -> Option<Fail2banPlan> {
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

    fn storage(&mut self) -> StoragePlan {
        let Some(s) = &self.host.raw.storage else {
            return StoragePlan::default();
        };
        if let Some(b) = &s.boot_disk
            && !b.value.starts_with("/dev/disk/by-id/")
            && !b.value.starts_with("/dev/disk/by-path/")
        {
            self.error(
                &b.span,
                format!("boot disk `{}` is not a stable device path", b.value),
                "use /dev/disk/by-id/... (device names like /dev/sda can change between boots)",
            );
        }
        let mut mounts = Vec::new();
        // Mount points were checked when the host file was read (AbsPath).
        for (point, m) in &s.mounts {
            if matches!(point.as_str(), "/boot" | "/nix" | "/nix/store") {
                self.error(
                    &m.span,
                    format!("mount point `{point}` belongs to the hardware profile"),
                    "/, /boot and /nix come from the hardware profile; mount data disks elsewhere, e.g. \"/mnt/storage\"",
                );
            }
            let dev = &m.device;
            let dev_ok = [
                "/dev/disk/by-label/",
                "/dev/disk/by-uuid/",
                "/dev/disk/by-id/",
                "/dev/disk/by-partlabel/",
                "LABEL=",
                "UUID=",
            ]
            .iter()
            .any(|p| dev.value.starts_with(p) && dev.value.len() > p.len())
                && fstab_word(&dev.value);
            if !dev_ok {
                self.error(&dev.span, format!("device `{}` is not addressed by label or UUID", dev.value), "use \"/dev/disk/by-label/NAME\" or \"/dev/disk/by-uuid/UUID\" so the mount survives device renaming");
            }
            let fs_ok = [
                "ext4", "xfs", "btrfs", "vfat", "exfat", "ntfs3", "f2fs", "zfs",
            ]
            .contains(&m.fs.value.as_str());
            if !fs_ok {
                self.error(
                    &m.fs.span,
                    format!("unknown filesystem `{}`", m.fs.value),
                    "use ext4, xfs, btrfs, vfat, exfat, ntfs3, f2fs or zfs",
                );
            }
            let device = match dev.value.split_once('=') {
                Some(("LABEL", l)) => format!("/dev/disk/by-label/{l}"),
                Some(("UUID", u)) => format!("/dev/disk/by-uuid/{u}"),
                _ => dev.value.clone(),
            };
            for o in &m.options {
                if o.value.is_empty() || o.value.contains(',') || !fstab_word(&o.value) {
                    self.error(
                        &o.span,
                        format!("`{}` is not a mount option", o.value),
                        "one option per string, e.g. [\"noatime\", \"compress=zstd\"]: letters, digits and = . _ - + : / @",
                    );
                }
            }
            let mut options: Vec<String> = m.options.iter().map(|o| o.value.clone()).collect();
            if options.is_empty() {
                options.push("defaults".into());
            }
            if !options.iter().any(|o| o == "nofail") {
                options.push("nofail".into());
            }
            mounts.push(MountPlan {
                point: point.to_string(),
                device,
                fs: m.fs.value.clone(),
                options,
            });
        }
        StoragePlan {
            boot_disk: s.boot_disk.as_ref().map(|b| b.value.to_string()),
            mounts,
        }
    }

    fn wireguard(&mut self) -> Vec<WgInterface> {
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

    fn proxmox(&mut self) -> Option<ProxmoxPlan> {
        let is_vm = self.host.raw.hardware.value == Hardware::ProxmoxVm;
        let Some(p) = &self.host.raw.proxmox else {
            if is_vm {
                let span = self.host.raw.hardware.span.clone();
                self.error(
                    &span,
                    "a proxmox-vm host needs a [proxmox] table",
                    "add [proxmox] with api, node, vmid, disk, bridge and token",
                );
            }
            return None;
        };
        if !is_vm {
            self.error(
                &p.span,
                "[proxmox] is only for hardware = \"proxmox-vm\"",
                "remove the table, or set hardware = \"proxmox-vm\"",
            );
        }
        if let Err(e) = check_proxmox_api(&p.api.value) {
            self.error(
                &p.api.span,
                e,
                "write https://HOST or https://HOST:PORT, e.g. \"https://192.168.100.2:8006\" (no user, path, query or fragment)",
            );
        }
        if !(100..=999_999_999).contains(&p.vmid.value) {
            self.error(
                &p.vmid.span,
                format!("vmid {} is out of range", p.vmid.value),
                "Proxmox VM ids are 100 to 999999999",
            );
        }
        let cores = match &p.cores {
            Some(c) if (1..=128).contains(&c.value) => c.value as u32,
            Some(c) => {
                self.error(
                    &c.span,
                    format!("{} cores is out of range", c.value),
                    "use 1 to 128",
                );
                1
            }
            None => 1,
        };
        let disk_mib = self.size(&p.disk).unwrap_or(0);
        let token = self.operator_secret(&p.token);
        Some(ProxmoxPlan {
            api: p.api.value.clone(),
            node: p.node.value.to_string(),
            vmid: p.vmid.value.clamp(0, u32::MAX as i64) as u32,
            cores,
            disk_mib,
            bridge: p.bridge.value.to_string(),
            token_secret: token.unwrap_or_default(),
            fingerprint: p.fingerprint.as_ref().map(|f| f.value.clone()),
            image_storage: p
                .image_storage
                .as_ref()
                .map(|s| s.value.to_string())
                .unwrap_or_else(|| "local".into()),
            disk_storage: p
                .disk_storage
                .as_ref()
                .map(|s| s.value.to_string())
                .unwrap_or_else(|| "local-lvm".into()),
        })
    }

    /// The deployer must still reach SSH after this firewall is active.
    fn lockout_guard(
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

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
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

fn check_endpoint(s: &str) -> Result<(), String> {
    match parse_target(s) {
        Ok(t) if t.user.is_none() && t.port.is_some() => Ok(()),
        _ => Err(format!("`{s}` is not \"host:port\"")),
    }
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

/// Secret file modes potato writes: the owner reads, the group may read, no
/// one else; the owner may write; no setuid, setgid or sticky bit.
pub const SECRET_MODES: &[&str] = &["0400", "0440", "0600", "0640"];

fn check_secret_mode(mode: &str) -> Result<(), (String, String)> {
    let hint = format!("use one of {}", SECRET_MODES.join(", "));
    let digits = (3..=4).contains(&mode.len()) && mode.chars().all(|c| ('0'..='7').contains(&c));
    if !digits {
        return Err((
            format!("`{mode}` is not an octal file mode"),
            format!("write e.g. \"0400\" or \"0440\"; {hint}"),
        ));
    }
    let bits = u32::from_str_radix(mode, 8).unwrap_or(0);
    let message = if bits & 0o7000 != 0 {
        format!("mode {mode} sets the setuid, setgid or sticky bit")
    } else if bits & 0o007 != 0 {
        format!("mode {mode} lets every user on the host read the secret")
    } else if bits & 0o400 == 0 {
        format!("mode {mode} does not let the owner read the secret")
    } else if !SECRET_MODES.contains(&format!("{bits:04o}").as_str()) {
        format!("mode {mode} is not a mode for a secret")
    } else {
        return Ok(());
    };
    Err((message, hint))
}

/// One word of an fstab line: no whitespace, no '#', no control character.
fn fstab_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '=' | '.' | '_' | '-' | '+' | ':' | '/' | '@')
        })
}

/// "https://HOST[:PORT]" and nothing else: the API token is sent there.
pub fn check_proxmox_api(url: &str) -> Result<(), String> {
    let Some(authority) = url.strip_prefix("https://") else {
        return Err(format!("`{url}` is not an https URL"));
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains(['@', '/', '?', '#']) {
        return Err(format!(
            "`{url}` has more than a host and port: the API token would be sent with it"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: missing ']'"))?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{h}` is not an IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port {
        crate::catalog::parse_port(p).map_err(|e| format!("`{url}`: {e}"))?;
    }
    let dns_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !(dns_name || host.parse::<IpAddr>().is_ok()) {
        return Err(format!("`{host}` is not a host name or address"));
    }
    Ok(())
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

/// The catalog name closest to a typo, if any is close.
fn closest<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (strsim_distance(word, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

fn strsim_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Checks that span hosts: names unique (case-insensitively), addresses unique,
/// WireGuard addresses unique, Proxmox vmids unique per node.
fn fleet_checks(
    plans: &[(&HostSource, Option<HostPlan>)],
    _sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) {
    let mut names: BTreeMap<String, &HostSource> = BTreeMap::new();
    for (h, _) in plans {
        if let Some(first) = names.insert(h.name.to_lowercase(), h) {
            diags.push(
                Diagnostic::at(
                    Loc::new(h.file, 0..0),
                    format!("host name `{}` is used twice", h.name),
                )
                .related(Loc::new(first.file, 0..0), "other host file")
                .hint(
                    "host names are the file names in hosts/ and must differ (case does not count)",
                ),
            );
        }
    }
    let mut addresses: BTreeMap<(String, u16), &HostSource> = BTreeMap::new();
    let mut wg_addrs: BTreeMap<IpAddr, (&HostSource, String)> = BTreeMap::new();
    let mut vmids: BTreeMap<(String, String, u32), &HostSource> = BTreeMap::new();
    let mut token_apis: BTreeMap<String, (&str, &HostSource)> = BTreeMap::new();
    for (h, plan) in plans {
        let Some(p) = plan else { continue };
        let key = (
            p.deploy.target.host.to_lowercase(),
            p.deploy.target.port.unwrap_or(p.ssh.port),
        );
        if let Some(first) = addresses.insert(key, h) {
            diags.push(
                Diagnostic::at(Loc::new(h.file, h.raw.deploy.target.span.clone()), format!("hosts `{}` and `{}` have the same deploy address", first.name, h.name))
                    .related(Loc::new(first.file, first.raw.deploy.target.span.clone()), "same address")
                    .hint("each host needs its own address; a deploy would otherwise overwrite the other machine"),
            );
        }
        for w in &p.wireguard {
            let span = h
                .raw
                .wireguard
                .get(&w.name)
                .map(|x| x.address.span.clone())
                .unwrap_or(0..0);
            if let Some((first, iface)) = wg_addrs.insert(w.address.addr(), (h, w.name.clone())) {
                let first_span = first
                    .raw
                    .wireguard
                    .get(&iface)
                    .map(|x| x.address.span.clone())
                    .unwrap_or(0..0);
                diags.push(
                    Diagnostic::at(
                        Loc::new(h.file, span),
                        format!(
                            "WireGuard address {} is also used by {} ({iface})",
                            w.address.addr(),
                            first.name
                        ),
                    )
                    .related(Loc::new(first.file, first_span), "first used here")
                    .hint("give every peer its own tunnel address"),
                );
            }
        }
        if let Some(px) = &p.proxmox {
            same_api_per_token(h, px, &mut token_apis, diags);
            let span = h
                .raw
                .proxmox
                .as_ref()
                .map(|x| x.vmid.span.clone())
                .unwrap_or(0..0);
            if let Some(first) = vmids.insert((px.api.clone(), px.node.clone(), px.vmid), h) {
                diags.push(
                    Diagnostic::at(
                        Loc::new(h.file, span),
                        format!(
                            "vmid {} on node {} is also used by {}",
                            px.vmid, px.node, first.name
                        ),
                    )
                    .hint("choose a free vmid"),
                );
            }
        }
    }
}

/// The shared Proxmox token goes wherever `api` points, so one host file cannot
/// point it somewhere else: every host naming the same token names the same API.
fn same_api_per_token<'a>(
    h: &'a HostSource,
    px: &'a ProxmoxPlan,
    seen: &mut BTreeMap<String, (&'a str, &'a HostSource)>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(raw) = &h.raw.proxmox else { return };
    match seen.get(&px.token_secret) {
        None => {
            seen.insert(px.token_secret.clone(), (px.api.as_str(), h));
        }
        Some((api, first)) if *api != px.api => {
            let first_span = first
                .raw
                .proxmox
                .as_ref()
                .map(|x| x.api.span.clone())
                .unwrap_or(0..0);
            diags.push(
                Diagnostic::at(
                    Loc::new(h.file, raw.api.span.clone()),
                    format!(
                        "the Proxmox token `{}` would be sent to {}, but {} sends it to {api}",
                        px.token_secret, px.api, first.name
                    ),
                )
                .related(Loc::new(first.file, first_span), "this host's API")
                .hint("one token belongs to one Proxmox API: use the same api in every host file, or give this API its own token secret"),
            );
        }
        Some(_) => {}
    }
}

/// Fills in each interface's peers: the hosts it names, and the hosts that name it
/// (a hub derives its spokes). Errors: unknown host, no matching interface,
/// missing public key, overlapping AllowedIPs.
///
/// Near-linear in the fleet: every lookup goes through a `WgIndex` built once, and
/// overlapping AllowedIPs are found by sorting, not by comparing every pair.
fn resolve_wireguard_peers(inv: &Inventory, plans: &mut [HostPlan], diags: &mut Vec<Diagnostic>) {
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
mod overlap_tests {
    use super::*;
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
