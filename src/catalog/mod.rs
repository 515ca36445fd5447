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

use crate::diag::{Diagnostic, Loc, Report, Sources};
use crate::inventory::ident::{self, DevicePath, EnvKey, ServiceName, shown};
use crate::inventory::schema::SString;
use crate::inventory::spanned::Spanned;
use crate::inventory::text::control_characters;
use crate::inventory::toml_diagnostic;
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

/// One catalog entry as written in services.toml, with the spans of the values
/// a check may blame. Names, env keys and devices are checked as they are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    description: SString,
    /// `image`, `arch` and `memory` are required of a container entry (not of
    /// a host agent); `parse_entry` says so at the entry.
    #[serde(default)]
    image: Option<SString>,
    #[serde(default)]
    arch: Vec<SString>,
    #[serde(default)]
    memory: Option<SString>,
    #[serde(default)]
    cpus: Option<SString>,
    #[serde(default)]
    zone: Option<SString>,
    #[serde(default)]
    network: Option<Spanned<ServiceName>>,
    #[serde(default)]
    ports: Vec<SString>,
    #[serde(default)]
    web: Option<u16>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    proxy: bool,
    #[serde(default)]
    depends: Vec<Spanned<ServiceName>>,
    #[serde(default)]
    kind: Option<SString>,
    #[serde(default)]
    volumes: Vec<SString>,
    #[serde(default)]
    env: BTreeMap<EnvKey, SString>,
    #[serde(default)]
    health: Option<SString>,
    #[serde(default)]
    cmd: Vec<SString>,
    #[serde(default)]
    socket: Option<SString>,
    #[serde(default)]
    caps: Vec<SString>,
    #[serde(default)]
    devices: Vec<Spanned<DevicePath>>,
    #[serde(default)]
    privileged: Option<Spanned<bool>>,
    #[serde(default)]
    why: Option<SString>,
    #[serde(default)]
    expose: Option<SString>,
    /// Why the entry has no health check (instead of `health`).
    #[serde(default)]
    health_none: Option<SString>,
    /// Runs on the host as this NixOS service instead of as a container.
    #[serde(default)]
    host_agent: Option<HostAgent>,
    contract: Spanned<contract::RawContract>,
}

/// A host agent: a service that measures or protects the host itself, so it
/// runs as a NixOS service on the host instead of as a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostAgent {
    /// `services.prometheus.exporters.node`: reads the host's /proc, /sys and /.
    NodeExporter,
}

/// Container network zones a catalog entry may name: the zones
/// `[containers.networks]` may set (resolve's default networks).
pub const ZONES: &[&str] = &["proxy", "backend", "monitoring", "vpn"];

/// Host paths of the container engines' API sockets. Mounting one (or
/// something under it) is the `socket` privilege and must be declared so.
const ENGINE_SOCKETS: &[&str] = &[
    "/run/podman/podman.sock",
    "/var/run/podman/podman.sock",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
];

/// Host trees that give a container root's power over the host, by mount.
const PRIVILEGED_TREES: &[&str] = &[
    "/etc",
    "/root",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/var/lib/containers",
    "/var/lib/docker",
];

/// What mounting a host path grants, when it grants more than data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPrivilege {
    /// The engine socket itself (or a path under it).
    EngineSocket,
    /// A tree that holds the engine socket or host control files.
    HostControl(String),
}

/// A path with "//", "/./" and a trailing '/' removed and ".." applied, so
/// that spellings of one path compare equal.
pub fn normalize_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn is_under(path: &str, tree: &str) -> bool {
    tree == "/"
        || path == tree
        || path
            .strip_prefix(tree)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The privilege a volume whose host side is `host` grants, if any: the engine
/// socket; "/", /etc, /root, /proc, /sys, /dev, /boot, the engines' state, or
/// any directory that holds an engine socket (/run, /var/run, /var, ...).
pub fn mount_privilege(host: &str) -> Option<MountPrivilege> {
    let p = normalize_path(host);
    if ENGINE_SOCKETS.iter().any(|s| is_under(&p, s)) {
        return Some(MountPrivilege::EngineSocket);
    }
    if p == "/" || ENGINE_SOCKETS.iter().any(|s| is_under(s, &p)) {
        return Some(MountPrivilege::HostControl(p));
    }
    PRIVILEGED_TREES
        .iter()
        .find(|t| is_under(&p, t))
        .map(|t| MountPrivilege::HostControl(t.to_string()))
}

/// Container-side paths where a client looks for the engine socket.
fn is_socket_target(target: &str) -> bool {
    let t = normalize_path(target);
    ENGINE_SOCKETS.iter().any(|s| is_under(&t, s))
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
        if let Err(e) = ident::check_abs_path(target) {
            return Err(format!("volume `{s}`: {}", e.message));
        }
        // No "..", no empty component, and only the characters of a clean path.
        let clean = |p: &str| {
            !p.is_empty()
                && !p.split('/').any(|c| c == ".." || c.is_empty())
                && ident::check_abs_path(&format!("/{p}")).is_ok()
        };
        let source = if src == "/" {
            // The host's root: valid, and a privilege `mount_privilege` reports.
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
    ident::check_secret_name(name)
        .map(|()| name.to_string())
        .map_err(|e| e.message)
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
    /// Where the entry is written (for diagnostics).
    #[serde(skip)]
    pub loc: Option<Loc>,
}

/// A problem in one catalog entry: where, what, how to fix it.
#[derive(Debug)]
struct Problem {
    span: Range<usize>,
    message: String,
    hint: String,
}

fn problem(span: &Range<usize>, message: impl Into<String>, hint: impl Into<String>) -> Problem {
    Problem {
        span: span.clone(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// A container image reference: registry/name:tag[@digest], no whitespace or
/// shell or Nix metacharacters.
fn check_image(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 255
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
        && !image.starts_with(['-', '/', ':'])
}

/// A Linux capability as podman's --cap-add takes it, e.g. "NET_ADMIN".
fn check_cap(cap: &str) -> bool {
    !cap.is_empty()
        && cap.len() <= 32
        && cap
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && cap.starts_with(|c: char| c.is_ascii_uppercase())
}

fn parse_entry(name: &ServiceName, entry: &Spanned<RawEntry>) -> Result<Service, Problem> {
    let r = &entry.value;
    let at_entry = &entry.span;
    let contract = r.contract.value.clone().parse().map_err(|m| {
        problem(
            &r.contract.span,
            m,
            "the contract's fields are described at the top of src/catalog/services.toml",
        )
    })?;
    if let Some(agent) = r.host_agent {
        return Ok(host_agent_entry(name, r, agent, contract));
    }
    let (Some(image), Some(memory)) = (&r.image, &r.memory) else {
        return Err(needs_container_fields(at_entry));
    };
    if r.arch.is_empty() {
        return Err(needs_container_fields(at_entry));
    }
    if r.health.is_some() == r.health_none.is_some() {
        return Err(problem(
            r.health.as_ref().map_or(at_entry, |h| &h.span),
            "needs exactly one of `health` (a check the image can run) and `health_none` (why there is none)",
            "keep `health` if the image can run it, else say why in `health_none`",
        ));
    }
    let mut ports = Vec::new();
    for p in &r.ports {
        ports.push(
            Publish::parse(p).map_err(|e| problem(&p.span, e, "write \"HOST:CONTAINER/PROTO\""))?,
        );
    }
    let memory_mib =
        parse_mib(memory).map_err(|e| problem(&memory.span, e, "write e.g. \"256MiB\""))?;
    if !check_image(image) {
        return Err(problem(
            &image.span,
            format!("`{}` is not a container image reference", shown(image)),
            "write e.g. \"docker.io/library/traefik:v3.4.1\"",
        ));
    }
    for a in &r.arch {
        if !matches!(a.as_str(), "x86_64" | "aarch64") {
            return Err(problem(
                &a.span,
                format!("unknown architecture `{}`", shown(a)),
                "use \"x86_64\" and/or \"aarch64\"",
            ));
        }
    }
    if r.zone.is_none() == r.network.is_none() {
        return Err(problem(
            at_entry,
            "needs exactly one of `zone` and `network`",
            "give the container network zone, or the service whose namespace it joins",
        ));
    }
    if let Some(z) = &r.zone
        && !ZONES.contains(&z.as_str())
    {
        return Err(problem(
            &z.span,
            format!("unknown container zone `{}`", shown(z)),
            format!("container zones are {}", ZONES.join(", ")),
        ));
    }
    let cpus = match &r.cpus {
        Some(c) => c
            .parse::<f64>()
            .ok()
            .filter(|c| *c > 0.0 && *c <= 64.0)
            .ok_or_else(|| {
                problem(
                    &c.span,
                    format!("cpus `{}` is not a number of cores", shown(c)),
                    "write e.g. \"0.5\"",
                )
            })?,
        None => 1.0,
    };
    let mut volumes = Vec::new();
    let mut privileged_mount = None;
    for v in &r.volumes {
        let vol = Volume::parse(v).map_err(|e| {
            problem(
                &v.span,
                e,
                "write \"NAME:/path\", \"shared/NAME:/path\" or \"/host/path:/path\", with \":ro\" to mount read-only",
            )
        })?;
        if let VolumeSource::Host(host) = &vol.source
            && let Some(p) = mount_privilege(host)
        {
            if p == MountPrivilege::EngineSocket {
                return Err(problem(
                    &v.span,
                    format!("volume `{}` mounts the container engine socket", v.value),
                    "declare socket = \"ro\" or \"rw\" with `why` instead of mounting the socket",
                ));
            }
            privileged_mount.get_or_insert((v.span.clone(), host.clone()));
        }
        if is_socket_target(&vol.target) {
            return Err(problem(
                &v.span,
                format!(
                    "volume `{}` mounts over the engine socket's path in the container",
                    v.value
                ),
                "declare socket = \"ro\" or \"rw\" with `why` instead",
            ));
        }
        volumes.push(vol);
    }
    let targets: Vec<String> = volumes.iter().map(|v| v.target.clone()).collect();
    if let Some(p) =
        contract::check_entry(&contract, r.health.as_deref().map(String::as_str), &targets)
            .into_iter()
            .next()
    {
        return Err(problem(contract_key_span(r, &p.key), p.message, p.hint));
    }
    let mut env = BTreeMap::new();
    for (k, v) in &r.env {
        let parts = parse_env(v).map_err(|e| {
            problem(
                &v.span,
                e,
                "write a literal, \"secret:NAME\", or text with \"{secret:NAME}\" inside",
            )
        })?;
        env.insert(k.to_string(), parts);
    }
    let socket = match &r.socket {
        None => None,
        Some(s) if s.value == "ro" => Some(Socket::Ro),
        Some(s) if s.value == "rw" => Some(Socket::Rw),
        Some(s) => {
            return Err(problem(
                &s.span,
                format!("socket `{}` is not \"ro\" or \"rw\"", shown(s)),
                "use \"ro\" or \"rw\"",
            ));
        }
    };
    for c in &r.caps {
        if !check_cap(c) {
            return Err(problem(
                &c.span,
                format!("`{}` is not a capability name", shown(c)),
                "write e.g. \"NET_ADMIN\"",
            ));
        }
    }
    let privileged = r.privileged.as_ref().is_some_and(|p| p.value);
    let declared = [
        r.socket
            .as_ref()
            .map(|s| (s.span.clone(), "the engine socket".to_string())),
        r.caps
            .first()
            .map(|c| (c.span.clone(), "capabilities".to_string())),
        r.devices
            .first()
            .map(|d| (d.span.clone(), "devices".to_string())),
        r.privileged
            .as_ref()
            .filter(|p| p.value)
            .map(|p| (p.span.clone(), "privileged mode".to_string())),
        privileged_mount.map(|(span, host)| (span, format!("a mount of the host's {host}"))),
    ];
    if let Some((span, what)) = declared.into_iter().flatten().next()
        && r.why.as_ref().is_none_or(|w| w.value.trim().is_empty())
    {
        return Err(problem(
            &span,
            format!("service `{name}` is given {what} without `why`"),
            "privilege is declared and justified: add why = \"...\" saying what it is needed for",
        ));
    }
    let database = r.kind.as_ref().is_some_and(|k| k.value == "database");
    if !ports.is_empty() && !r.proxy && r.expose.is_none() {
        return Err(problem(
            &r.ports[0].span,
            "publishes ports without `expose` saying why (only the proxy publishes by default)",
            "add expose = \"...\" or remove `ports`",
        ));
    }
    if database && !ports.is_empty() {
        return Err(problem(
            &r.ports[0].span,
            "a database never publishes ports",
            "remove `ports`",
        ));
    }
    if r.network.is_some() && !ports.is_empty() {
        return Err(problem(
            &r.ports[0].span,
            "shares another's network namespace, so it cannot publish ports",
            "publish on the namespace's owner",
        ));
    }
    let text = |v: &SString| v.value.clone();
    Ok(Service {
        name: name.to_string(),
        description: text(&r.description),
        image: text(image),
        arch: r.arch.iter().map(text).collect(),
        memory_mib,
        cpus,
        zone: r.zone.as_ref().map(text),
        network: r.network.as_ref().map(|n| n.value.to_string()),
        ports,
        web: r.web,
        public: r.public,
        proxy: r.proxy,
        depends: r.depends.iter().map(|d| d.value.to_string()).collect(),
        database,
        volumes,
        env,
        health: r.health.as_ref().map(text),
        cmd: r.cmd.iter().map(text).collect(),
        socket,
        caps: r.caps.iter().map(text).collect(),
        devices: r.devices.iter().map(|d| d.value.to_string()).collect(),
        privileged,
        why: r.why.as_ref().map(text),
        expose: r.expose.as_ref().map(text),
        health_none: r.health_none.as_ref().map(text),
        host_agent: None,
        contract,
        loc: None,
    })
}

fn needs_container_fields(at_entry: &Range<usize>) -> Problem {
    problem(
        at_entry,
        "a container entry needs `image`, `arch` and `memory`",
        "add them, or mark a service that runs on the host with host_agent = \"...\"",
    )
}

/// Where in the entry a contract problem's key (`["health"]`,
/// `["volumes", "1"]`) is written; the contract table otherwise.
fn contract_key_span<'a>(r: &'a RawEntry, key: &[String]) -> &'a Range<usize> {
    let keys: Vec<&str> = key.iter().map(String::as_str).collect();
    match keys.as_slice() {
        ["health", ..] => r.health.as_ref().map(|h| &h.span),
        ["volumes", i, ..] => i
            .parse::<usize>()
            .ok()
            .and_then(|i| r.volumes.get(i))
            .map(|v| &v.span),
        _ => None,
    }
    .unwrap_or(&r.contract.span)
}

/// A host agent's entry: a NixOS service on the host, so none of a
/// container's fields apply.
fn host_agent_entry(
    name: &ServiceName,
    r: &RawEntry,
    agent: HostAgent,
    contract: Contract,
) -> Service {
    Service {
        name: name.to_string(),
        description: r.description.value.clone(),
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
        why: r.why.as_ref().map(|w| w.value.clone()),
        expose: None,
        health_none: r.health_none.as_ref().map(|h| h.value.clone()),
        host_agent: Some(agent),
        contract,
        loc: None,
    }
}

impl Service {
    pub fn supports(&self, arch: &str) -> bool {
        self.arch.iter().any(|a| a == arch)
    }
}

/// Where the catalog's entries come from, for diagnostics.
const BUILTIN_NAME: &str = "src/catalog/services.toml (built in)";

#[derive(Debug)]
pub struct Catalog {
    services: BTreeMap<String, Service>,
    /// Built-in entries an operator file replaced: name → that file.
    replaced: BTreeMap<String, Utf8PathBuf>,
    /// Which operator file defined each operator entry.
    operator: BTreeMap<String, Utf8PathBuf>,
}

impl Catalog {
    /// The catalog compiled into potato. Its validity is a unit test, so this
    /// cannot fail at run time.
    pub fn builtin() -> Catalog {
        Catalog::parse(EMBEDDED).expect("embedded catalog is valid (tested)")
    }

    /// A catalog from one text; problems rendered as one message (tests).
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let mut sources = Sources::default();
        let mut cat = Catalog::empty();
        let mut diags = cat.merge(&mut sources, Utf8Path::new(BUILTIN_NAME), text, false);
        if diags.is_empty() {
            diags = cat.check_references();
        }
        if diags.is_empty() {
            Ok(cat)
        } else {
            Err(diags
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; "))
        }
    }

    fn empty() -> Catalog {
        Catalog {
            services: BTreeMap::new(),
            replaced: BTreeMap::new(),
            operator: BTreeMap::new(),
        }
    }

    /// The built-in catalog plus the operator's `modules/catalog/*.toml` (same
    /// schema; an entry with a built-in's name replaces it, and `replaced`
    /// says so). Problems point into the file that has them. Files are read
    /// through `fsguard`: a linked catalog file is refused before it is parsed.
    pub fn for_repo(repo: &camino::Utf8Path) -> Result<Catalog, Report> {
        let mut sources = Sources::default();
        let mut cat = Catalog::empty();
        let mut diags = cat.merge(&mut sources, Utf8Path::new(BUILTIN_NAME), EMBEDDED, false);
        match operator_files(repo) {
            Ok(files) => {
                for (rel, text) in files {
                    diags.extend(cat.merge(&mut sources, &rel, &text, true));
                }
            }
            Err(e) => diags.push(Diagnostic::global(e)),
        }
        if diags.is_empty() {
            diags = cat.check_references();
        }
        if diags.is_empty() {
            Ok(cat)
        } else {
            Err(Report {
                sources,
                diagnostics: diags,
            })
        }
    }

    /// Adds one file's entries; returns its problems (nothing is added from a
    /// file with problems).
    fn merge(
        &mut self,
        sources: &mut Sources,
        path: &Utf8Path,
        text: &str,
        operator: bool,
    ) -> Vec<Diagnostic> {
        let file = sources.add(path, text.to_string());
        let control = control_characters(file, text);
        if !control.is_empty() {
            return control;
        }
        let raw: BTreeMap<ServiceName, Spanned<RawEntry>> = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => return vec![toml_diagnostic(file, &e)],
        };
        let mut diags = Vec::new();
        for (name, entry) in &raw {
            let loc = Loc::new(file, entry.span.clone());
            let mut s = match parse_entry(name, entry) {
                Ok(s) => s,
                Err(p) => {
                    diags.push(
                        Diagnostic::at(
                            Loc::new(file, p.span),
                            format!("catalog service `{name}`: {}", p.message),
                        )
                        .hint(p.hint),
                    );
                    continue;
                }
            };
            s.loc = Some(loc.clone());
            if operator {
                if let Some(first) = self.operator.get(name.as_str()) {
                    let first_loc = self.services[name.as_str()].loc.clone();
                    let mut d = Diagnostic::at(
                        loc,
                        format!("catalog service `{name}` is also defined in {first}"),
                    )
                    .hint("define each operator entry once");
                    if let Some(fl) = first_loc {
                        d = d.related(fl, "first defined here");
                    }
                    diags.push(d);
                    continue;
                }
                if self.services.contains_key(name.as_str()) {
                    self.replaced.insert(name.to_string(), path.to_path_buf());
                }
                self.operator.insert(name.to_string(), path.to_path_buf());
            }
            self.services.insert(name.to_string(), s);
        }
        diags
    }

    fn check_references(&self) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        for s in self.services.values() {
            for d in s.depends.iter().chain(s.network.iter()) {
                if !self.services.contains_key(d) {
                    let message = format!(
                        "catalog service `{}` refers to unknown service `{d}`",
                        s.name
                    );
                    let d = match &s.loc {
                        Some(loc) => Diagnostic::at(loc.clone(), message),
                        None => Diagnostic::global(message),
                    };
                    diags.push(d.hint("`potato catalog` lists every service"));
                }
            }
        }
        diags
    }

    pub fn get(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// The operator file that replaced the built-in entry `name`, if one did.
    pub fn replaced_by(&self, name: &str) -> Option<&Utf8Path> {
        self.replaced.get(name).map(Utf8PathBuf::as_path)
    }

    /// Every built-in entry an operator file replaced, with that file.
    pub fn replaced(&self) -> impl Iterator<Item = (&str, &Utf8Path)> {
        self.replaced.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }

    /// One line per built-in entry among `names` that an operator file replaced:
    /// "traefik: operator entry modules/catalog/x.toml replaces the built-in".
    pub fn replaced_lines<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<String> {
        names
            .filter_map(|n| {
                self.replaced_by(n)
                    .map(|f| format!("{n}: operator entry {f} replaces the built-in"))
            })
            .collect()
    }
}

/// The operator's `modules/catalog/*.toml`, sorted by name, read through
/// `fsguard` (no link is followed).
fn operator_files(repo: &Utf8Path) -> Result<Vec<(camino::Utf8PathBuf, String)>, String> {
    let fs = crate::fsguard::RepoFs::open(repo).map_err(|e| e.to_string())?;
    let dir = Utf8Path::new("modules/catalog");
    let mut entries = fs.list(dir).map_err(|e| e.to_string())?.unwrap_or_default();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (name, _) in entries {
        let rel = dir.join(&name);
        if rel.extension() != Some("toml") {
            continue;
        }
        if let Some(text) = fs.read_string(&rel).map_err(|e| e.to_string())? {
            out.push((rel, text));
        }
    }
    Ok(out)
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
    fn mount_privilege_by_what_is_mounted() {
        for sock in [
            "/run/podman/podman.sock",
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/run//podman/./podman.sock/",
            "/var/run/docker.sock/x",
        ] {
            assert_eq!(
                mount_privilege(sock),
                Some(MountPrivilege::EngineSocket),
                "{sock}"
            );
        }
        for tree in [
            "/",
            "/etc",
            "/etc/ssh",
            "/root",
            "/proc",
            "/sys",
            "/dev",
            "/dev/kmsg",
            "/run",
            "/var/run",
            "/var",
            "/run/podman",
            "//etc/",
            "/x/../etc",
        ] {
            assert!(
                matches!(mount_privilege(tree), Some(MountPrivilege::HostControl(_))),
                "{tree}"
            );
        }
        for data in [
            "/var/log",
            "/var/log/traefik",
            "/mnt/ssd",
            "/etcetera",
            "/srv/run",
        ] {
            assert_eq!(mount_privilege(data), None, "{data}");
        }
    }

    #[test]
    fn paths_normalize() {
        assert_eq!(normalize_path("//etc/./ssh/"), "/etc/ssh");
        assert_eq!(normalize_path("/a/../../etc"), "/etc");
        assert_eq!(normalize_path("/"), "/");
    }

    /// A catalog zone names a network resolve creates.
    #[test]
    fn catalog_zones_are_the_container_networks() {
        let nets: Vec<&str> = crate::resolve::DEFAULT_NETWORKS
            .iter()
            .map(|(z, _)| *z)
            .collect();
        assert_eq!(nets, ZONES);
        for s in Catalog::builtin().services.values() {
            if let Some(z) = &s.zone {
                assert!(ZONES.contains(&z.as_str()), "{}: {z}", s.name);
            }
        }
    }

    #[test]
    fn operator_problems_point_into_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = camino::Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("modules/catalog")).unwrap();
        let text = "[x]\ndescription='x'\nimage='i:1'\narch=['x86_64']\nmemory='1MiB'\nzone='backend'\nenv = { 'A B' = '1' }\nhealth_none='x'\n[x.contract]\nsource='unverified'\n";
        std::fs::write(root.join("modules/catalog/a.toml"), text).unwrap();
        let report = Catalog::for_repo(root).unwrap_err();
        let json = report.to_json();
        assert_eq!(json.len(), 1);
        assert_eq!(json[0].file.as_deref(), Some("modules/catalog/a.toml"));
        assert_eq!((json[0].line, json[0].column), (Some(7), Some(9)));
        assert!(
            json[0]
                .message
                .contains("`A B` is not an environment variable name")
        );
    }

    #[test]
    fn replacing_a_builtin_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root = camino::Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("modules/catalog")).unwrap();
        let text = "[redis]\ndescription='x'\nimage='i:1'\narch=['x86_64']\nmemory='1MiB'\nzone='backend'\nhealth_none='x'\n[redis.contract]\nsource='unverified'\n[mine]\ndescription='x'\nimage='i:1'\narch=['x86_64']\nmemory='1MiB'\nzone='backend'\nhealth_none='x'\n[mine.contract]\nsource='unverified'\n";
        std::fs::write(root.join("modules/catalog/x.toml"), text).unwrap();
        let cat = Catalog::for_repo(root).unwrap();
        let replaced: Vec<_> = cat.replaced().collect();
        assert_eq!(
            replaced,
            vec![("redis", camino::Utf8Path::new("modules/catalog/x.toml"))]
        );
        assert_eq!(cat.get("redis").unwrap().image, "i:1");
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
