//! The container catalog: services a host file may name, with their defaults.
//!
//! Owns the embedded `services.toml`, its shape, and looking a service up. It does
//! not decide what a host may run (that is `resolve`) nor how a service is rendered.
//! Each entry carries its image's contract (`contract`), checked here against
//! the entry's own health check and volumes.

pub mod contract;

use std::collections::BTreeMap;
use std::ops::Range;

use camino::{Utf8Path, Utf8PathBuf};

use serde::Deserialize;

use crate::units::parse_mib;
pub use contract::{Contract, Needed, Owner};

const EMBEDDED: &str = include_str!("services.toml");

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// A port published on the host: "HOST:CONTAINER/PROTO".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Publish {
    pub host: u16,
    pub container: u16,
    pub proto: Proto,
}

impl Publish {
    pub fn parse(s: &str) -> Result<Publish, String> {
        let (ports, proto) = match s.split_once('/') {
            Some((p, proto)) => (
                p,
                Proto::parse(proto).ok_or_else(|| {
                    format!("unknown protocol `{proto}` in `{s}`: use tcp or udp")
                })?,
            ),
            None => (s, Proto::Tcp),
        };
        let (host, container) = ports.split_once(':').ok_or_else(|| {
            format!(
                "`{s}` is not a port mapping: write \"HOST:CONTAINER\" or \"HOST:CONTAINER/udp\""
            )
        })?;
        Ok(Publish {
            host: parse_port(host)?,
            container: parse_port(container)?,
            proto,
        })
    }
}

impl std::fmt::Display for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{}",
            self.host,
            self.container,
            self.proto.as_str()
        )
    }
}

/// A port number 1..=65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range: ports are 1 to 65535")),
        Err(_) => Err(format!("`{s}` is not a port number")),
    }
}

/// One catalog entry as written in services.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    description: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    arch: Vec<String>,
    #[serde(default)]
    memory: String,
    #[serde(default)]
    cpus: Option<String>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    web: Option<u16>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    proxy: bool,
    #[serde(default)]
    depends: Vec<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    health: Option<String>,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    socket: Option<String>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    privileged: bool,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    expose: Option<String>,
    /// Why the entry has no health check (instead of `health`).
    #[serde(default)]
    health_none: Option<String>,
    /// Runs on the host as this NixOS service instead of as a container.
    #[serde(default)]
    host_agent: Option<HostAgent>,
    contract: contract::RawContract,
}

/// A host agent: a service that measures or protects the host itself, so it
/// runs as a NixOS service on the host instead of as a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostAgent {
    /// `services.prometheus.exporters.node`: reads the host's /proc, /sys and /.
    NodeExporter,
}

/// Where a volume's host side lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "lowercase")]
pub enum VolumeSource {
    /// The service's own directory: DATA/<service>/<name>.
    Own(String),
    /// A directory several services mount: DATA/shared/<name>.
    Shared(String),
    /// A host path as written.
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

impl Volume {
    pub fn parse(s: &str) -> Result<Volume, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, target, ro) = match parts.as_slice() {
            [a, b] => (*a, *b, false),
            [a, b, "ro"] => (*a, *b, true),
            [a, b, "rw"] => (*a, *b, false),
            _ => {
                return Err(format!(
                    "`{s}` is not a volume: write \"SOURCE:/path\" or \"SOURCE:/path:ro\""
                ));
            }
        };
        if !target.starts_with('/') {
            return Err(format!("volume `{s}`: the container path must be absolute"));
        }
        let clean = |p: &str| !p.is_empty() && !p.split('/').any(|c| c == ".." || c.is_empty());
        let source = if src == "/" {
            // The host's root, read-only by the few agents that inspect it.
            VolumeSource::Host(src.to_string())
        } else if let Some(abs) = src.strip_prefix('/') {
            if !clean(abs) {
                return Err(format!(
                    "volume `{s}`: `{src}` is not a clean absolute path"
                ));
            }
            VolumeSource::Host(src.to_string())
        } else if let Some(name) = src.strip_prefix("shared/") {
            if !clean(name) {
                return Err(format!(
                    "volume `{s}`: `{src}` is not a clean relative path"
                ));
            }
            VolumeSource::Shared(name.to_string())
        } else if src == "shared" {
            VolumeSource::Shared(String::new())
        } else {
            if !clean(src) {
                return Err(format!(
                    "volume `{s}`: `{src}` is not a clean relative path"
                ));
            }
            VolumeSource::Own(src.to_string())
        };
        Ok(Volume {
            source,
            target: target.to_string(),
            read_only: ro,
        })
    }
}

/// An environment value: literal text with secrets spliced in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum EnvPart {
    Text(String),
    Secret(String),
}

/// Parses "secret:NAME" (the whole value) or text with "{secret:NAME}" inside.
pub fn parse_env(value: &str) -> Result<Vec<EnvPart>, String> {
    if let Some(name) = value.strip_prefix("secret:") {
        return Ok(vec![EnvPart::Secret(check_secret_name(name)?)]);
    }
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("{secret:") {
        if at > 0 {
            parts.push(EnvPart::Text(rest[..at].to_string()));
        }
        let after = &rest[at + 8..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{value}`: `{{secret:` is not closed with `}}`"))?;
        parts.push(EnvPart::Secret(check_secret_name(&after[..end])?));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(EnvPart::Text(rest.to_string()));
    }
    if parts
        .iter()
        .any(|p| matches!(p, EnvPart::Text(t) if t.contains('\n')))
    {
        return Err(format!("`{value}`: environment values are one line"));
    }
    Ok(parts)
}

fn check_secret_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!("`{name}` is not a secret name"))
    }
}

/// Engine socket access a service declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Socket {
    Ro,
    Rw,
}

/// A catalog service with its values parsed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Service {
    pub name: String,
    pub description: String,
    pub image: String,
    pub arch: Vec<String>,
    pub memory_mib: u64,
    /// CPU limit in cores.
    pub cpus: f64,
    /// Container network zone (proxy, backend, monitoring, vpn); None inside another's namespace.
    pub zone: Option<String>,
    /// Name of the service whose network namespace this one joins.
    pub network: Option<String>,
    pub ports: Vec<Publish>,
    pub web: Option<u16>,
    pub public: bool,
    /// The reverse proxy: the one service that publishes 80/443 by design.
    pub proxy: bool,
    pub depends: Vec<String>,
    pub database: bool,
    pub volumes: Vec<Volume>,
    pub env: BTreeMap<String, Vec<EnvPart>>,
    pub health: Option<String>,
    pub cmd: Vec<String>,
    pub socket: Option<Socket>,
    pub caps: Vec<String>,
    pub devices: Vec<String>,
    pub privileged: bool,
    /// Why the privileges above are needed.
    pub why: Option<String>,
    /// Why this (non-proxy) service publishes ports directly.
    pub expose: Option<String>,
    /// Why there is no health check.
    pub health_none: Option<String>,
    pub host_agent: Option<HostAgent>,
    /// The image's contract with the host, from its upstream sources.
    pub contract: Contract,
}

/// What is wrong with one catalog entry: the key inside the entry it is about
/// (for the location in an operator's file), the message and a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryError {
    key: Vec<String>,
    message: String,
    hint: Option<String>,
}

impl From<String> for EntryError {
    fn from(message: String) -> Self {
        EntryError {
            key: Vec::new(),
            message,
            hint: None,
        }
    }
}

impl From<&str> for EntryError {
    fn from(message: &str) -> Self {
        EntryError::from(message.to_string())
    }
}

/// A catalog that cannot be used: where (an operator's file, with the byte
/// range of the offending value) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    /// Repository-relative file, None for the built-in catalog.
    pub file: Option<Utf8PathBuf>,
    /// The file's text, to turn `span` into line and column.
    pub text: Option<String>,
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let (Some(text), Some(span)) = (&self.text, &self.span) {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                write!(f, ":{line}:{col}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl From<CatalogError> for String {
    fn from(e: CatalogError) -> String {
        e.to_string()
    }
}

impl CatalogError {
    fn plain(message: String) -> CatalogError {
        CatalogError {
            file: None,
            text: None,
            span: None,
            message,
            hint: None,
        }
    }
}

/// The byte range of `[entry] key...` in a catalog file's text.
fn span_of_key(text: &str, entry: &str, key: &[String]) -> Option<Range<usize>> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut item = doc.as_table().get(entry)?;
    let mut span = item.span();
    for k in key {
        let next = match k.parse::<usize>() {
            Ok(i) => item
                .as_array()
                .and_then(|a| a.get(i))
                .map(|v| (v.span(), None)),
            Err(_) => item
                .as_table_like()
                .and_then(|t| t.get(k))
                .map(|i| (i.span(), Some(i))),
        };
        match next {
            Some((s, Some(i))) => {
                span = s.or(span);
                item = i;
            }
            Some((s, None)) => {
                span = s.or(span);
                break;
            }
            None => break,
        }
    }
    span
}

fn parse_entry(name: &str, r: RawEntry) -> Result<Service, EntryError> {
    let contract = r.contract.clone().parse().map_err(|m| EntryError {
        key: vec!["contract".into()],
        message: m,
        hint: None,
    })?;
    if r.host_agent.is_none() && (r.image.is_empty() || r.arch.is_empty() || r.memory.is_empty()) {
        return Err("a container entry needs `image`, `arch` and `memory`".into());
    }
    if r.host_agent.is_some() {
        return Ok(host_agent_entry(name, r, contract));
    }
    if r.health.is_some() == r.health_none.is_some() {
        return Err(EntryError {
            key: vec!["health".into()],
            message: "needs exactly one of `health` (a check the image can run) and `health_none` (why there is none)".into(),
            hint: None,
        });
    }
    let targets: Vec<String> = r
        .volumes
        .iter()
        .map(|v| Volume::parse(v).map(|v| v.target))
        .collect::<Result<_, _>>()?;
    if let Some(p) = contract::check_entry(&contract, r.health.as_deref(), &targets)
        .into_iter()
        .next()
    {
        return Err(EntryError {
            key: p.key,
            message: p.message,
            hint: Some(p.hint),
        });
    }
    let ports = r
        .ports
        .iter()
        .map(|p| Publish::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let memory_mib = parse_mib(&r.memory)?;
    if r.zone.is_none() == r.network.is_none() {
        return Err("needs exactly one of `zone` and `network`".into());
    }
    let cpus = match &r.cpus {
        Some(c) => c
            .parse::<f64>()
            .ok()
            .filter(|c| *c > 0.0 && *c <= 64.0)
            .ok_or_else(|| format!("cpus `{c}` is not a number of cores"))?,
        None => 1.0,
    };
    let volumes = r
        .volumes
        .iter()
        .map(|v| Volume::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env = BTreeMap::new();
    for (k, v) in &r.env {
        env.insert(k.clone(), parse_env(v)?);
    }
    let socket = match r.socket.as_deref() {
        None => None,
        Some("ro") => Some(Socket::Ro),
        Some("rw") => Some(Socket::Rw),
        Some(o) => return Err(format!("socket `{o}`: use \"ro\" or \"rw\"").into()),
    };
    let privileged_in_any_way =
        socket.is_some() || !r.caps.is_empty() || !r.devices.is_empty() || r.privileged;
    if privileged_in_any_way && r.why.as_deref().is_none_or(str::is_empty) {
        return Err("declares socket, caps, devices or privileged without `why`".into());
    }
    let database = r.kind.as_deref() == Some("database");
    if !ports.is_empty() && !r.proxy && r.expose.is_none() {
        return Err(
            "publishes ports without `expose` saying why (only the proxy publishes by default)"
                .into(),
        );
    }
    if database && !ports.is_empty() {
        return Err("a database never publishes ports".into());
    }
    if r.network.is_some() && !ports.is_empty() {
        return Err("shares another's network namespace, so it cannot publish ports".into());
    }
    Ok(Service {
        name: name.to_string(),
        description: r.description,
        image: r.image,
        arch: r.arch,
        memory_mib,
        cpus,
        zone: r.zone,
        network: r.network,
        ports,
        web: r.web,
        public: r.public,
        proxy: r.proxy,
        depends: r.depends,
        database,
        volumes,
        env,
        health: r.health,
        cmd: r.cmd,
        socket,
        caps: r.caps,
        devices: r.devices,
        privileged: r.privileged,
        why: r.why,
        expose: r.expose,
        health_none: r.health_none,
        host_agent: None,
        contract,
    })
}

fn host_agent_entry(name: &str, r: RawEntry, contract: Contract) -> Service {
    Service {
        name: name.to_string(),
        description: r.description,
        image: String::new(),
        arch: vec!["x86_64".into(), "aarch64".into()],
        memory_mib: 0,
        cpus: 0.0,
        zone: None,
        network: None,
        ports: Vec::new(),
        web: None,
        public: false,
        proxy: false,
        depends: Vec::new(),
        database: false,
        volumes: Vec::new(),
        env: BTreeMap::new(),
        health: None,
        cmd: Vec::new(),
        socket: None,
        caps: Vec::new(),
        devices: Vec::new(),
        privileged: false,
        why: r.why,
        expose: None,
        health_none: r.health_none,
        host_agent: r.host_agent,
        contract,
    }
}

impl Service {
    pub fn supports(&self, arch: &str) -> bool {
        self.arch.iter().any(|a| a == arch)
    }
}

#[derive(Debug)]
pub struct Catalog {
    services: BTreeMap<String, Service>,
}

impl Catalog {
    /// The catalog compiled into potato. Its validity is a unit test, so this
    /// cannot fail at run time.
    pub fn builtin() -> Catalog {
        Catalog::parse(EMBEDDED).expect("embedded catalog is valid (tested)")
    }

    pub fn parse(text: &str) -> Result<Catalog, String> {
        let mut cat = Catalog {
            services: BTreeMap::new(),
        };
        cat.merge(text, None)?;
        cat.check_references()?;
        Ok(cat)
    }

    /// The built-in catalog plus the operator's `modules/catalog/*.toml` (same
    /// schema; an entry with a built-in's name replaces it). An operator entry's
    /// error carries its file and the location of the offending value.
    pub fn for_repo(repo: &Utf8Path) -> Result<Catalog, CatalogError> {
        let mut cat = Catalog::builtin();
        let dir = repo.join("modules/catalog");
        let mut files: Vec<Utf8PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| Utf8PathBuf::from_path_buf(e.path()).ok())
                .filter(|p| p.extension() == Some("toml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| CatalogError::plain(format!("{f}: {e}")))?;
            let rel = f.strip_prefix(repo).unwrap_or(&f).to_path_buf();
            cat.merge(&text, Some(&rel))?;
        }
        cat.check_references().map_err(CatalogError::plain)?;
        Ok(cat)
    }

    fn merge(&mut self, text: &str, file: Option<&Utf8Path>) -> Result<(), CatalogError> {
        let located =
            |span: Option<Range<usize>>, message: String, hint: Option<String>| CatalogError {
                file: file.map(Utf8Path::to_path_buf),
                text: file.map(|_| text.to_string()),
                span,
                message,
                hint,
            };
        let raw: BTreeMap<String, RawEntry> =
            toml::from_str(text).map_err(|e| located(e.span(), e.message().to_string(), None))?;
        for (name, r) in raw {
            match parse_entry(&name, r) {
                Ok(s) => {
                    self.services.insert(name, s);
                }
                Err(e) => {
                    let span = span_of_key(text, &name, &e.key);
                    return Err(located(
                        span,
                        format!("catalog service `{name}`: {}", e.message),
                        e.hint,
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_references(&self) -> Result<(), String> {
        for s in self.services.values() {
            for d in s.depends.iter().chain(s.network.iter()) {
                if !self.services.contains_key(d) {
                    return Err(format!(
                        "catalog service `{}` refers to unknown service `{d}`",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_references_resolve() {
        let c = Catalog::parse(EMBEDDED).unwrap();
        for name in [
            "traefik",
            "postgres",
            "gluetun",
            "qbittorrent",
            "jellyfin",
            "kopia",
            "autoheal",
        ] {
            assert!(c.get(name).is_some(), "{name} missing");
        }
        assert!(c.get("postgres").unwrap().database);
        assert_eq!(
            c.get("qbittorrent").unwrap().network.as_deref(),
            Some("gluetun")
        );
    }

    /// The services the container issue names, each with the fields it asks for.
    #[test]
    fn the_required_services_are_complete() {
        let c = Catalog::builtin();
        for name in [
            "traefik",
            "crowdsec",
            "authentik",
            "authentik-worker",
            "postgres",
            "redis",
            "mongodb",
            "gluetun",
            "qbittorrent",
            "prowlarr",
            "sonarr",
            "radarr",
            "lidarr",
            "bazarr",
            "jellyfin",
            "jellyseerr",
            "audiobookshelf",
            "syncthing",
            "filebrowser",
            "vaultwarden",
            "gitea",
            "miniflux",
            "ntfy",
            "homepage",
            "prometheus",
            "alertmanager",
            "grafana",
            "loki",
            "alloy",
            "node-exporter",
            "cadvisor",
            "uptime-kuma",
            "kopia",
            "diun",
            "autoheal",
        ] {
            let s = c.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(
                s.health.is_some() || s.health_none.is_some(),
                "{name} has no healthcheck and no reason"
            );
            assert!(
                !s.contract.source.is_empty(),
                "{name} has no contract source"
            );
            if s.host_agent.is_some() {
                continue;
            }
            assert!(
                !s.arch.is_empty() && s.memory_mib > 0 && s.cpus > 0.0,
                "{name}"
            );
            assert!(
                s.zone.is_some() || s.network.is_some(),
                "{name} has no network zone"
            );
        }
        // Only the proxy publishes without a stated reason; databases never.
        for s in c.services.values() {
            if !s.ports.is_empty() {
                assert!(s.proxy || s.expose.is_some(), "{}", s.name);
                assert!(!s.database, "{}", s.name);
            }
        }
    }

    #[test]
    fn volumes_and_env_parse() {
        assert_eq!(
            Volume::parse("shared/media:/media:ro").unwrap(),
            Volume {
                source: VolumeSource::Shared("media".into()),
                target: "/media".into(),
                read_only: true
            }
        );
        assert!(Volume::parse("../etc:/x").is_err());
        assert!(Volume::parse("data:relative").is_err());
        assert_eq!(
            parse_env("postgres://u:{secret:db-u}@db/u").unwrap(),
            vec![
                EnvPart::Text("postgres://u:".into()),
                EnvPart::Secret("db-u".into()),
                EnvPart::Text("@db/u".into())
            ]
        );
        assert!(parse_env("x{secret:open").is_err());
        assert!(parse_env("secret:../etc").is_err());
    }

    #[test]
    fn every_image_is_pinned() {
        let c = Catalog::builtin();
        for s in c.services.values().filter(|s| s.host_agent.is_none()) {
            let tag = s.image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest",
                "{} is not pinned: {}",
                s.name,
                s.image
            );
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        let bad_ref = "[a]\ndescription='x'\nimage='i:1'\narch=['x86_64']\nmemory='1MiB'\nzone='proxy'\ndepends=['nope']\nhealth_none='x'\n[a.contract]\nsource='unverified'\n";
        assert!(
            Catalog::parse(bad_ref)
                .unwrap_err()
                .contains("unknown service `nope`")
        );
        let bad_port = "[a]\ndescription='x'\nimage='i:1'\narch=['x86_64']\nmemory='1MiB'\nzone='proxy'\nports=['0:80']\nhealth_none='x'\n[a.contract]\nsource='unverified'\n";
        assert!(
            Catalog::parse(bad_port)
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn publish_parses() {
        assert_eq!(
            Publish::parse("22000:22000/udp").unwrap(),
            Publish {
                host: 22000,
                container: 22000,
                proto: Proto::Udp
            }
        );
        assert!(Publish::parse("80").is_err());
        assert!(Publish::parse("80:80/sctp").is_err());
    }
}
