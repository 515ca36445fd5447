//! Container resolution: the host's `[containers]` against the catalog →
//! `ContainersPlan`. Owns which networks each service joins, where its volumes
//! live, which secrets its environment needs, the databases postgres creates,
//! dependency order (cycles are errors), the memory budget, and exposure by
//! intent: only the proxy publishes by default; a database or a VPN-namespace
//! member never publishes; a web UI is behind SSO unless marked public.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use ipnet::IpNet;

use super::{DEFAULT_NETWORKS, HostCx, closest, overlaps};
use crate::catalog::{EnvPart, Owner, Proto, Publish, Service, VolumeSource, parse_env};
use crate::diag::Diagnostic;
use crate::harden::firewall::parse_net;
use crate::inventory::Spanned;
use crate::inventory::schema;
use crate::plan::*;
use crate::units::format_mib;

/// Where container data lives unless the host file says otherwise.
const DEFAULT_DATA: &str = "/var/lib/potato";

impl HostCx<'_> {
    pub(super) fn containers(
        &mut self,
        memory_mib: u64,
        zones: &BTreeMap<String, Vec<IpNet>>,
        wg: &[WgInterface],
    ) -> Option<ContainersPlan> {
        let c = self.host.raw.containers.as_ref()?;
        let data = self.data_dir(c);
        let domain = self.domain(c);
        let mut services = Vec::new();
        let mut agents = Vec::new();
        let mut seen = BTreeSet::new();
        for s in &c.services {
            if !seen.insert(s.value.to_string()) {
                self.error(
                    &s.span,
                    format!("service `{}` is listed twice", s.value),
                    "remove the second entry",
                );
                continue;
            }
            let Some(entry) = self.catalog.get(&s.value).cloned() else {
                let near = closest(&s.value, self.catalog.names());
                let hint = match near {
                    Some(n) => format!("did you mean `{n}`? `potato catalog` lists every service"),
                    None => "`potato catalog` lists every service".to_string(),
                };
                self.error(&s.span, format!("unknown service `{}`", s.value), hint);
                continue;
            };
            if let Some(agent) = entry.host_agent {
                agents.push(agent);
                if c.overrides.contains_key(&s.value) {
                    let o = &c.overrides[&s.value];
                    self.error(
                        &o.span,
                        format!(
                            "`{}` runs on the host, not as a container: it has nothing to override",
                            s.value
                        ),
                        format!("remove [containers.{}]", s.value),
                    );
                }
                continue;
            }
            self.check_arch(&entry, &s.span);
            let plan = self.service_plan(&entry, c, &data, &s.span);
            services.push(plan);
        }
        self.vpn(&mut services, zones);
        self.required_env(c, &services);
        for (name, o) in &c.overrides {
            if !seen.contains(name.as_str()) {
                self.error(
                    &o.span,
                    format!("[containers.{name}] overrides a service that is not in `services`"),
                    format!("add \"{name}\" to [containers] services, or remove the table"),
                );
            }
        }
        self.missing_dependencies(c, &services, &seen);
        self.dependency_cycles(c, &services);
        join_networks(&mut services);
        let databases = databases(&services);
        self.removed_auth_url(c);
        self.proxy_credentials(&mut services);
        let os_reserve_mib = match &c.os_reserve {
            Some(r) => self.size(r).unwrap_or(0),
            None => (memory_mib / 4).clamp(384, 2048),
        };
        let networks = self.container_networks(c, zones, wg);
        let plan = ContainersPlan {
            backend: c
                .backend
                .as_ref()
                .map(|b| b.value)
                .unwrap_or(schema::Backend::Podman),
            data,
            domain,
            databases,
            os_reserve_mib,
            networks,
            services,
            agents,
        };
        self.memory_budget(&plan, memory_mib, c);
        Some(plan)
    }

    fn data_dir(&mut self, c: &schema::Containers) -> String {
        let Some(d) = &c.data else {
            return DEFAULT_DATA.into();
        };
        // The path's grammar was checked when the host file was read (AbsPath).
        d.value.to_string()
    }

    fn domain(&mut self, c: &schema::Containers) -> String {
        let Some(d) = &c.domain else {
            return format!("{}.home.arpa", self.host.name);
        };
        let ok = d.value.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        });
        if !ok {
            self.error(
                &d.span,
                format!("`{}` is not a domain name", d.value),
                "write e.g. \"home.example.net\"",
            );
        }
        d.value.clone()
    }

    /// `auth_url` is gone: forward-auth goes to the fleet's identity host
    /// (`edge::wire`), so a host file that still sets it is told so.
    fn removed_auth_url(&mut self, c: &schema::Containers) {
        if let Some(u) = &c.auth_url {
            self.error(
                &u.span,
                "`auth_url` was removed: every host's protected routes forward-auth to the fleet's identity host",
                "delete this line, and set [roles] identity = true in the host file of the host that runs authentik",
            );
        }
    }

    /// DNS-01 credentials from `[proxy] dns_env` reach Traefik's environment
    /// as secrets (its env file), the way other secret env vars do. Each
    /// value must be "secret:NAME"; `edge::wire` checks the rest of [proxy].
    fn proxy_credentials(&mut self, services: &mut [ServicePlan]) {
        let Some(proxy) = &self.host.raw.proxy else {
            return;
        };
        let Some(traefik) = services.iter().position(|s| s.name == "traefik") else {
            return; // edge::wire reports [proxy] on a host without Traefik
        };
        for (key, value) in &proxy.value.dns_env {
            if crate::secrets::parse_ref(&value.value).is_err() {
                self.error(
                    &value.span,
                    format!("`{key}` is a DNS provider credential, but not a secret reference"),
                    format!(
                        "store it with `potato secrets set NAME --host {}` and write \"secret:NAME\"",
                        self.host.name
                    ),
                );
                continue;
            }
            if let Some(name) = self.secret(value) {
                services[traefik]
                    .env
                    .insert(key.to_string(), vec![EnvPart::Secret(name)]);
            }
        }
    }

    fn check_arch(&mut self, entry: &Service, span: &Range<usize>) {
        let arch = self.host.raw.system.arch();
        if !entry.supports(arch) {
            self.error(
                span,
                format!(
                    "service `{}` has no {arch} image ({} runs on {})",
                    entry.name,
                    entry.image,
                    entry.arch.join(", ")
                ),
                format!(
                    "remove it from this {} host, or run it on an {} host",
                    arch,
                    entry.arch.join("/")
                ),
            );
        }
    }

    /// One service: the catalog entry, the host's overrides, resolved paths
    /// and secrets, and the exposure-by-intent checks on what the host changed.
    fn service_plan(
        &mut self,
        entry: &Service,
        c: &schema::Containers,
        data: &str,
        span: &Range<usize>,
    ) -> ServicePlan {
        let mut plan = ServicePlan {
            name: entry.name.clone(),
            image: entry.image.clone(),
            memory_mib: entry.memory_mib,
            cpus: entry.cpus,
            zone: entry.zone.clone(),
            network: entry.network.clone(),
            networks: Vec::new(),
            ports: entry.ports.clone(),
            devices: entry.devices.clone(),
            web: entry.web,
            public: entry.public,
            sso: entry.web.is_some() && !entry.public,
            proxy: entry.proxy,
            database: entry.database,
            depends: entry.depends.clone(),
            volumes: entry
                .volumes
                .iter()
                .map(|v| VolumePlan {
                    host: match &v.source {
                        VolumeSource::Own(n) => format!("{data}/{}/{n}", entry.name),
                        VolumeSource::Shared(n) if n.is_empty() => format!("{data}/shared"),
                        VolumeSource::Shared(n) => format!("{data}/shared/{n}"),
                        VolumeSource::Host(p) => p.clone(),
                    },
                    container: v.target.clone(),
                    read_only: v.read_only,
                })
                .collect(),
            env: entry.env.clone(),
            health: entry.health.clone(),
            cmd: entry.cmd.clone(),
            socket: entry.socket,
            caps: entry.caps.clone(),
            privileged: entry.privileged,
            contract: entry.contract.clone(),
            owner: None,
            mode: None,
        };
        let tz = self
            .host
            .raw
            .timezone
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_else(|| "UTC".into());
        plan.env
            .entry("TZ".into())
            .or_insert_with(|| vec![EnvPart::Text(tz)]);
        // Secrets named by the catalog's environment: the host must have them.
        let catalog_secrets: BTreeSet<String> = plan
            .env
            .values()
            .flatten()
            .filter_map(|p| match p {
                EnvPart::Secret(s) => Some(s.clone()),
                EnvPart::Text(_) => None,
            })
            .collect();
        for name in catalog_secrets {
            let reference = Spanned::new(span.clone(), format!("secret:{name}"));
            self.secret(&reference);
        }
        if let Some(o) = c.overrides.get(entry.name.as_str()) {
            self.apply_override(&mut plan, o);
        }
        plan
    }

    fn apply_override(&mut self, plan: &mut ServicePlan, o: &Spanned<schema::ServiceOverride>) {
        let o_span = o.span.clone();
        let o = &o.value;
        if let Some(m) = &o.memory {
            plan.memory_mib = self.size(m).unwrap_or(plan.memory_mib);
        }
        if let Some(cpus) = &o.cpus {
            if cpus.value > 0.0 && cpus.value <= 64.0 {
                plan.cpus = cpus.value;
            } else {
                self.error(
                    &cpus.span,
                    format!("cpus {} is out of range", cpus.value),
                    "give a number of cores, e.g. 0.5 or 2",
                );
            }
        }
        // Device paths and env keys were checked when the host file was read.
        for d in &o.devices {
            plan.devices.push(d.value.to_string());
        }
        if let Some(first) = o.devices.first()
            && o.why.as_ref().is_none_or(|w| w.value.trim().is_empty())
        {
            self.error(
                &first.span,
                format!(
                    "[containers.{}] passes a device into the container without `why`",
                    plan.name
                ),
                format!(
                    "a device is a privilege: say why it is needed, e.g. why = \"hardware transcoding\" in [containers.{}]",
                    plan.name
                ),
            );
        }
        for (key, value) in &o.env {
            match parse_env(&value.value) {
                Ok(parts) => {
                    for p in &parts {
                        if let EnvPart::Secret(name) = p {
                            self.secret(&Spanned::new(
                                value.span.clone(),
                                format!("secret:{name}"),
                            ));
                        }
                    }
                    plan.env.insert(key.to_string(), parts);
                }
                Err(e) => self.error(
                    &value.span,
                    e,
                    "write a literal, \"secret:NAME\", or text with \"{secret:NAME}\" inside",
                ),
            }
        }
        if let Some(ports) = &o.ports {
            plan.ports.clear();
            for p in ports {
                match Publish::parse(&p.value) {
                    Ok(x) => plan.ports.push(x),
                    Err(e) => self.error(
                        &p.span,
                        e,
                        "write \"HOST:CONTAINER\" or \"HOST:CONTAINER/udp\"",
                    ),
                }
            }
            let first = ports
                .first()
                .map(|p| p.span.clone())
                .unwrap_or(o_span.clone());
            if plan.database && !plan.ports.is_empty() {
                self.error(
                    &first,
                    format!("database `{}` would be published on the host", plan.name),
                    "databases are reached by their consumers on the backend network only; remove `ports`",
                );
            }
            if let Some(owner) = &plan.network
                && !plan.ports.is_empty()
            {
                self.error(
                    &first,
                    format!(
                        "`{}` shares {owner}'s network namespace and cannot publish its own ports",
                        plan.name
                    ),
                    format!(
                        "publish on {owner} instead: [containers.{owner}] ports = [\"HOST:{}\"]",
                        plan.web.unwrap_or(8080)
                    ),
                );
            }
        }
        if let Some(owner) = &o.owner {
            match Owner::parse(&owner.value) {
                Ok(x) => plan.owner = Some(x),
                Err(e) => self.error(
                    &owner.span,
                    e,
                    "write the numeric owner, e.g. \"1000:1000\"",
                ),
            }
        }
        if let Some(mode) = &o.mode {
            match u32::from_str_radix(&mode.value, 8) {
                Ok(m) if mode.value.len() == 4 && m <= 0o7777 => plan.mode = Some(m),
                _ => self.error(
                    &mode.span,
                    format!("`{}` is not an octal mode", mode.value),
                    "write four octal digits, e.g. \"0750\"",
                ),
            }
        }
        if let Some(p) = o.public {
            plan.public = p;
            plan.sso = plan.web.is_some() && !p;
        }
        if let Some(sso) = &o.sso {
            if !sso.value && !plan.public && plan.web.is_some() {
                self.error(
                    &sso.span,
                    format!("web UI `{}` would be reachable without SSO", plan.name),
                    format!(
                        "say so explicitly with [containers.{}] public = true, or keep sso",
                        plan.name
                    ),
                );
            }
            plan.sso = sso.value && plan.web.is_some();
        }
    }

    /// Every variable the image's contract requires must be set, by the catalog
    /// entry, the host file's [containers.NAME] env, or (gluetun) its [vpn].
    fn required_env(&mut self, c: &schema::Containers, services: &[ServicePlan]) {
        for s in services {
            let value = |k: &str| {
                s.env.get(k).map(|parts| {
                    parts
                        .iter()
                        .map(|p| match p {
                            EnvPart::Text(t) => t.as_str(),
                            EnvPart::Secret(_) => "",
                        })
                        .collect::<String>()
                })
            };
            let missing: Vec<String> = s
                .contract
                .missing_env(|k| s.env.contains_key(k), value)
                .iter()
                .map(|r| match &r.when {
                    Some((var, val)) => format!("{} (needed when {var}={val})", r.name),
                    None => r.name.clone(),
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            let span = c
                .overrides
                .get(s.name.as_str())
                .map(|o| o.span.clone())
                .unwrap_or_else(|| span_of(c, &s.name));
            let hint = if s.name == "gluetun" {
                "add a [vpn] section: provider, private_key = \"secret:NAME\", addresses, and for provider \"custom\" endpoint and server_public_key".to_string()
            } else {
                format!("set them in [containers.{}] env", s.name)
            };
            self.error(
                &span,
                format!(
                    "`{}` cannot start: its image requires {} (image contract: {})",
                    s.name,
                    missing.join(", "),
                    s.contract.source.split_whitespace().next().unwrap_or("")
                ),
                hint,
            );
        }
    }

    /// Dependencies (and a namespace owner) must run on the host too.
    fn missing_dependencies(
        &mut self,
        c: &schema::Containers,
        services: &[ServicePlan],
        seen: &BTreeSet<String>,
    ) {
        for s in services {
            for d in s.depends.iter().chain(s.network.iter()) {
                if !seen.contains(d) {
                    let span = span_of(c, &s.name);
                    self.error(
                        &span,
                        format!(
                            "service `{}` needs `{d}`, which this host does not run",
                            s.name
                        ),
                        format!("add \"{d}\" to services"),
                    );
                }
            }
        }
    }

    /// A cycle in `depends` (or namespace sharing) cannot be started in order.
    fn dependency_cycles(&mut self, c: &schema::Containers, services: &[ServicePlan]) {
        let edges: BTreeMap<&str, Vec<&str>> = services
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.depends
                        .iter()
                        .chain(s.network.iter())
                        .map(String::as_str)
                        .collect(),
                )
            })
            .collect();
        let mut reported = BTreeSet::new();
        for start in edges.keys() {
            if let Some(cycle) = find_cycle(&edges, start)
                && reported.insert(cycle.iter().min().copied().unwrap_or(start).to_string())
            {
                let span = span_of(c, cycle[0]);
                self.error(
                    &span,
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                    "containers start in dependency order; remove one of these `depends`",
                );
            }
        }
    }

    fn container_networks(
        &mut self,
        c: &schema::Containers,
        zones: &BTreeMap<String, Vec<IpNet>>,
        wg: &[WgInterface],
    ) -> BTreeMap<String, IpNet> {
        let mut nets: BTreeMap<String, (IpNet, Option<Range<usize>>)> = DEFAULT_NETWORKS
            .iter()
            .map(|(z, n)| (z.to_string(), (n.parse().unwrap(), None)))
            .collect();
        for (zone, text) in &c.networks {
            if !DEFAULT_NETWORKS.iter().any(|(z, _)| z == zone) {
                self.error(
                    &text.span,
                    format!("unknown container zone `{zone}`"),
                    "container zones are proxy, backend, monitoring and vpn",
                );
                continue;
            }
            match parse_net(&text.value) {
                Some(n) if n.prefix_len() < n.max_prefix_len() - 2 => {
                    nets.insert(zone.clone(), (n, Some(text.span.clone())));
                }
                _ => self.error(
                    &text.span,
                    format!("`{}` is not a usable subnet", text.value),
                    "write a CIDR with room for containers, e.g. \"10.89.1.0/24\"",
                ),
            }
        }
        let list: Vec<_> = nets
            .iter()
            .map(|(z, (n, s))| (z.clone(), *n, s.clone()))
            .collect();
        let fallback = c.services.first().map(|s| s.span.clone()).unwrap_or(0..0);
        for (i, (za, na, sa)) in list.iter().enumerate() {
            let span = sa.clone().unwrap_or_else(|| fallback.clone());
            for (zb, nb, _) in &list[..i] {
                if overlaps(na, nb) {
                    self.error(
                        &span,
                        format!("container network {za} ({na}) overlaps {zb} ({nb})"),
                        "give each container zone its own subnet under [containers.networks]",
                    );
                }
            }
            for w in wg {
                if overlaps(na, &w.address.trunc()) {
                    self.error(
                        &span,
                        format!(
                            "container network {za} ({na}) overlaps WireGuard {} ({})",
                            w.name,
                            w.address.trunc()
                        ),
                        "move the container network under [containers.networks]",
                    );
                }
            }
            for (zn, znets) in zones {
                for zn_net in znets {
                    if zn_net.prefix_len() > 0 && overlaps(na, zn_net) {
                        self.error(&span, format!("container network {za} ({na}) overlaps zone {zn} ({zn_net})"), "container subnets must not collide with real networks; move it under [containers.networks]");
                    }
                }
            }
        }
        nets.into_iter().map(|(z, (n, _))| (z, n)).collect()
    }

    fn memory_budget(&mut self, c: &ContainersPlan, memory_mib: u64, raw: &schema::Containers) {
        let total = c.total_mib() + c.os_reserve_mib;
        if memory_mib == 0 || total <= memory_mib {
            return;
        }
        let mut biggest: Vec<&ServicePlan> = c.services.iter().collect();
        biggest.sort_by(|a, b| b.memory_mib.cmp(&a.memory_mib).then(a.name.cmp(&b.name)));
        let top: Vec<String> = biggest
            .iter()
            .take(5)
            .map(|s| format!("{} {}", s.name, format_mib(s.memory_mib)))
            .collect();
        let span = raw
            .services
            .first()
            .map(|s| s.span.start..raw.services.last().unwrap().span.end)
            .unwrap_or_else(|| self.host.raw.memory.span.clone());
        let d = Diagnostic::at(
            self.loc(&span),
            format!(
                "containers need {} + {} OS reserve = {}, but the host has {}",
                format_mib(c.total_mib()),
                format_mib(c.os_reserve_mib),
                format_mib(total),
                format_mib(memory_mib)
            ),
        )
        .label(format!("over by {}", format_mib(total - memory_mib)))
        .related(self.loc(&self.host.raw.memory.span), "host memory")
        .hint(format!(
            "biggest consumers: {}; drop services or lower their memory in [containers.NAME]",
            top.join(", ")
        ));
        self.diags.push(d);
    }

    /// No two services (or a service and WireGuard) may publish the same host port.
    pub(super) fn port_claims(
        &mut self,
        c: &ContainersPlan,
        _fw: &FirewallPlan,
        wg: &[WgInterface],
    ) {
        let raw_services = &self.host.raw.containers.as_ref().map(|c| &c.services);
        let span_of = |name: &str| {
            raw_services
                .and_then(|v| v.iter().find(|s| s.value.as_str() == name))
                .map(|s| s.span.clone())
                .unwrap_or(0..0)
        };
        let mut claims: BTreeMap<(u16, Proto), String> = BTreeMap::new();
        for w in wg {
            if let Some(p) = w.listen_port {
                claims.insert((p, Proto::Udp), format!("WireGuard {}", w.name));
            }
        }
        // Services whose ports the host file overrides are checked last, so the
        // error lands on the user's change rather than on a catalog default.
        let overrides = self.host.raw.containers.as_ref().map(|c| &c.overrides);
        let override_span = |name: &str| {
            overrides
                .and_then(|o| o.get(name))
                .and_then(|o| o.ports.as_ref())
                .and_then(|p| p.first())
                .map(|p| p.span.clone())
        };
        let mut ordered: Vec<&ServicePlan> = c.services.iter().collect();
        ordered.sort_by_key(|s| override_span(&s.name).is_some());
        for s in ordered {
            for p in &s.ports {
                let key = (p.host, p.proto);
                if let Some(first) = claims.get(&key) {
                    let first_span = first.strip_prefix("service ").map(span_of);
                    let here = override_span(&s.name).unwrap_or_else(|| span_of(&s.name));
                    let mut d = Diagnostic::at(
                        self.loc(&here),
                        format!(
                            "service `{}` publishes {}/{}, already claimed by {first}",
                            s.name,
                            p.host,
                            p.proto.as_str()
                        ),
                    )
                    .hint(format!(
                        "change the host port in [containers.{}] ports = [\"OTHER:{}/{}\"]",
                        s.name,
                        p.container,
                        p.proto.as_str()
                    ));
                    if let Some(fs) = first_span {
                        d = d.related(self.loc(&fs), "first claimed here");
                    }
                    self.diags.push(d);
                } else {
                    claims.insert(key, format!("service {}", s.name));
                }
            }
        }
    }
}

/// A path from `start` back to itself, if there is one.
fn find_cycle<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>, start: &'a str) -> Option<Vec<&'a str>> {
    fn walk<'a>(
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        start: &'a str,
        at: &'a str,
        path: &mut Vec<&'a str>,
        seen: &mut BTreeSet<&'a str>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if *next == start {
                path.push(next);
                return true;
            }
            if seen.insert(next) {
                path.push(next);
                if walk(edges, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let mut seen = BTreeSet::new();
    walk(edges, start, start, &mut path, &mut seen).then_some(path)
}

fn span_of(c: &schema::Containers, name: &str) -> Range<usize> {
    c.services
        .iter()
        .find(|x| x.value.as_str() == name)
        .map(|x| x.span.clone())
        .unwrap_or(0..0)
}

/// Which zone networks each container joins: its own zone, "proxy" when Traefik
/// must reach its web UI, and the zones of what it depends on. A namespace
/// member joins none (it has no network of its own); its owner joins "proxy"
/// for the member's web UI and the members' dependencies' zones.
fn join_networks(services: &mut [ServicePlan]) {
    let zone_of: BTreeMap<String, Option<String>> = services
        .iter()
        .map(|s| (s.name.clone(), s.zone.clone()))
        .collect();
    let owner_of: BTreeMap<String, String> = services
        .iter()
        .filter_map(|s| s.network.clone().map(|o| (s.name.clone(), o)))
        .collect();
    // The zone a dependency is reached in (a member is reached via its owner).
    let reach_zone = |dep: &str| -> Option<String> {
        let owner = owner_of.get(dep).map(String::as_str).unwrap_or(dep);
        zone_of.get(owner).cloned().flatten()
    };
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in services.iter() {
        let holder = s.network.clone().unwrap_or_else(|| s.name.clone());
        let set = wanted.entry(holder).or_default();
        if let Some(z) = &s.zone {
            set.insert(z.clone());
        }
        if s.web.is_some() && !s.proxy {
            set.insert("proxy".into());
        }
        for d in &s.depends {
            if owner_of.get(&s.name) == Some(d) {
                continue;
            }
            if let Some(z) = reach_zone(d) {
                set.insert(z);
            }
        }
    }
    for s in services.iter_mut() {
        s.networks = if s.network.is_some() {
            Vec::new()
        } else {
            let mut v: Vec<String> = wanted
                .remove(&s.name)
                .unwrap_or_default()
                .into_iter()
                .collect();
            // The own zone first: it is the container's primary network.
            if let Some(z) = &s.zone
                && let Some(i) = v.iter().position(|x| x == z)
            {
                let own = v.remove(i);
                v.insert(0, own);
            }
            v
        };
    }
}

/// One database per consuming app: every "db-NAME" secret that a service's
/// environment uses, on a host that runs postgres.
fn databases(services: &[ServicePlan]) -> Vec<DatabasePlan> {
    if !services.iter().any(|s| s.name == "postgres") {
        return Vec::new();
    }
    let mut out = BTreeSet::new();
    for s in services
        .iter()
        .filter(|s| s.depends.iter().any(|d| d == "postgres"))
    {
        for p in s.env.values().flatten() {
            if let EnvPart::Secret(name) = p
                && let Some(db) = name.strip_prefix("db-")
            {
                out.insert(db.to_string());
            }
        }
    }
    out.into_iter()
        .map(|name| DatabasePlan {
            password_secret: format!("db-{name}"),
            name,
        })
        .collect()
}
