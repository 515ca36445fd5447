//! `HostPlan`: everything about one host, resolved and checked.
//!
//! These are the types `resolve` produces and `render`, `plan` and (later) deploy
//! consume. They hold parsed values (networks, ports, MiB), never raw strings
//! that still need checking, and never a secret's value (only its name).

use std::collections::BTreeMap;

use camino::Utf8PathBuf;
use ipnet::IpNet;
use serde::Serialize;

use crate::catalog::{EnvPart, Publish, Socket};
use crate::harden::firewall::{Policies, Rule};
use crate::inventory::schema::{Backend, BuildOn, Hardware, Mode, System};

#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub name: String,
    /// Repository-relative host file.
    pub file: Utf8PathBuf,
    pub system: System,
    pub hardware: Hardware,
    pub memory_mib: u64,
    pub timezone: String,
    pub state_version: String,
    pub tags: Vec<String>,
    pub deploy: DeployPlan,
    pub zones: BTreeMap<String, Vec<IpNet>>,
    pub firewall: FirewallPlan,
    pub ssh: SshPlan,
    pub fail2ban: Option<Fail2banPlan>,
    pub storage: StoragePlan,
    pub wireguard: Vec<WgInterface>,
    pub containers: Option<ContainersPlan>,
    pub health: Vec<HealthCheck>,
    pub proxmox: Option<ProxmoxPlan>,
    /// Secrets this host uses, by name, with the file each resolves to.
    pub secrets: BTreeMap<String, Utf8PathBuf>,
    /// How each used secret appears under /run/potato-secrets.
    pub secret_files: BTreeMap<String, SecretMode>,
    /// The host's part in the fleet's monitoring (None: the fleet has no hub).
    pub monitoring: Option<crate::monitoring::MonitoringPlan>,
    /// The host's part in the fleet's edge: its Traefik's TLS and where its
    /// protected routes forward-auth (None: the host runs no Traefik).
    pub edge: Option<crate::edge::EdgePlan>,
    /// The fleet's single sign-on: on the identity host only, every protected
    /// route of the fleet (its authentik blueprint is rendered from it).
    pub sso: Option<crate::edge::blueprint::SsoPlan>,
    /// CrowdSec's acquisition and the host's firewall bouncer (None: the
    /// host runs no CrowdSec).
    pub intrusion: Option<crate::intrusion::IntrusionPlan>,
    /// What the host gets from the fleet CA: the CA certificate to trust and,
    /// for internal TLS, its own certificate (None: the fleet has no CA).
    pub pki: Option<crate::pki::HostPki>,
    /// The fleet's binary cache (`[fleet.cache]` on one host), the same on
    /// every host: who serves it, where, and each consumer's URL (None: the
    /// fleet has no cache). `public_key` is filled by `cache::attach`.
    pub cache: Option<crate::cache::FleetCache>,
}

impl HostPlan {
    /// The WireGuard tunnel this host shares with `other`, if any: the first
    /// of this host's interfaces whose address lies in one of `other`'s
    /// tunnel subnets, as (this host's address, `other`'s address there).
    /// The one rule every fleet link over WireGuard uses (monitoring, SSO,
    /// the binary cache): no LAN fallback.
    pub fn shared_tunnel(&self, other: &HostPlan) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
        self.wireguard.iter().find_map(|w| {
            other
                .wireguard
                .iter()
                .find(|o| o.address.trunc().contains(&w.address.addr()))
                .map(|o| (w.address.addr(), o.address.addr()))
        })
    }
}

/// Owner, group and mode of a decrypted secret on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMode {
    pub owner: String,
    pub group: String,
    pub mode: String,
}

impl Default for SecretMode {
    fn default() -> Self {
        SecretMode {
            owner: "root".into(),
            group: "root".into(),
            mode: "0400".into(),
        }
    }
}

/// An SSH destination: `user@host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployPlan {
    pub target: Target,
    pub mode: Mode,
    pub magic_rollback: bool,
    pub confirm_timeout_secs: u64,
    pub build_on: BuildOn,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirewallPlan {
    pub policies: Policies,
    pub rules: Vec<Rule>,
    /// UDP ports opened because a WireGuard interface listens on them.
    pub wireguard_ports: Vec<(u16, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SshPlan {
    pub port: u16,
    pub authorized_keys: Vec<String>,
    pub allow_tcp_forwarding: bool,
    pub allow_agent_forwarding: bool,
    pub max_auth_tries: u32,
    pub login_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fail2banPlan {
    pub jails: Vec<String>,
    pub bantime_secs: u64,
    pub findtime_secs: u64,
    pub maxretry: u32,
    /// Ban time grows for repeat offenders, up to `maxtime_secs`.
    pub increment: bool,
    pub maxtime_secs: u64,
    pub ignore: Vec<IpNet>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoragePlan {
    pub boot_disk: Option<String>,
    pub mounts: Vec<MountPlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MountPlan {
    pub point: String,
    pub device: String,
    pub fs: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WgInterface {
    pub name: String,
    /// This host's address with the tunnel's prefix, e.g. 10.99.0.10/24.
    pub address: IpNet,
    pub listen_port: Option<u16>,
    pub private_key_secret: String,
    pub public_key: Option<String>,
    pub peers: Vec<WgPeer>,
}

impl WgInterface {
    /// A hub (it listens and has several peers) forwards between them: its
    /// spokes route the whole tunnel subnet through it.
    pub fn routes_between_peers(&self) -> bool {
        self.listen_port.is_some() && self.peers.len() > 1
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WgPeer {
    /// A potato host name, or an external peer's name.
    pub name: String,
    pub public_key: String,
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<String>,
    pub persistent_keepalive: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainersPlan {
    pub backend: Backend,
    /// Host directory under which each service's volumes live.
    pub data: String,
    /// Traefik routes web UIs as <service>.<domain>.
    pub domain: String,
    /// Databases (and roles) created idempotently in postgres for its consumers.
    pub databases: Vec<DatabasePlan>,
    pub os_reserve_mib: u64,
    pub networks: BTreeMap<String, IpNet>,
    pub services: Vec<ServicePlan>,
    /// Host agents named in `services`: NixOS services on the host, not containers.
    pub agents: Vec<crate::catalog::HostAgent>,
}

impl ContainersPlan {
    pub fn total_mib(&self) -> u64 {
        self.services.iter().map(|s| s.memory_mib).sum()
    }

    /// Traefik's fixed address on the proxy network (when the host runs it):
    /// the one source Grafana's auth proxy trusts the user header from.
    pub fn traefik_address(&self) -> Option<std::net::IpAddr> {
        if !self.services.iter().any(|s| s.name == "traefik") {
            return None;
        }
        fixed_address(self.networks.get("proxy")?)
    }
}

/// The fixed address of a container network: its last host address
/// (10.89.1.254 in 10.89.1.0/24), in the half `dynamic_range` leaves out.
pub fn fixed_address(net: &IpNet) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    let last = match net.broadcast() {
        IpAddr::V4(b) => IpAddr::V4(u32::from(b).checked_sub(1)?.into()),
        IpAddr::V6(b) => IpAddr::V6(u128::from(b).checked_sub(1)?.into()),
    };
    (net.prefix_len() + 2 < net.max_prefix_len() && net.contains(&last)).then_some(last)
}

/// The lower half of a container network: the only addresses the engine hands
/// out by itself (`network create --ip-range`), so a fixed address in the
/// upper half is never given to another container first.
pub fn dynamic_range(net: &IpNet) -> Option<IpNet> {
    IpNet::new(net.network(), net.prefix_len() + 1).ok()
}

#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub image: String,
    pub memory_mib: u64,
    pub cpus: f64,
    /// The service's own zone (None inside another's namespace).
    pub zone: Option<String>,
    /// The service whose network namespace this one shares (gluetun).
    pub network: Option<String>,
    /// Zones whose networks the container joins: its own, "proxy" for a web UI,
    /// and those of what it depends on. Empty inside another's namespace.
    pub networks: Vec<String>,
    pub ports: Vec<Publish>,
    pub devices: Vec<String>,
    pub web: Option<u16>,
    pub public: bool,
    /// Traefik puts the Authentik forward-auth middleware in front.
    pub sso: bool,
    pub proxy: bool,
    pub database: bool,
    pub depends: Vec<String>,
    pub volumes: Vec<VolumePlan>,
    /// Environment: literal parts and secrets spliced in at activation.
    pub env: BTreeMap<String, Vec<EnvPart>>,
    pub health: Option<String>,
    pub cmd: Vec<String>,
    pub socket: Option<Socket>,
    pub caps: Vec<String>,
    pub privileged: bool,
    /// The image's contract (catalog), from which directories are derived.
    pub contract: crate::catalog::Contract,
    /// The host file's owner for the service's own directories, if it sets one.
    pub owner: Option<crate::catalog::Owner>,
    /// The host file's mode for the service's own directories, if it sets one.
    pub mode: Option<u32>,
}

impl ServicePlan {
    /// Whether any environment value needs a secret (so an env file).
    pub fn has_secret_env(&self) -> bool {
        self.env
            .values()
            .flatten()
            .any(|p| matches!(p, EnvPart::Secret(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumePlan {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

/// A database potato creates in the host's postgres for one consuming app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabasePlan {
    /// Database and role name.
    pub name: String,
    /// The secret holding the role's password.
    pub password_secret: String,
}

/// A check that must pass before a deploy is confirmed, and how long it may take.
///
/// The deployer tries it every `interval_secs` from the start of the confirm
/// phase; a pass ends it at once. Failures in the first `grace_secs` do not
/// count; after that, `retries` failed attempts fail it (and the deploy rolls
/// back). So a check takes at most `grace_secs + retries * interval_secs`,
/// which `resolve` keeps inside the confirm timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub probe: Probe,
    pub grace_secs: u64,
    pub interval_secs: u64,
    pub retries: u32,
}

impl HealthCheck {
    /// The longest this check can run before it counts as failed.
    pub fn budget_secs(&self) -> u64 {
        self.grace_secs + u64::from(self.retries) * self.interval_secs
    }
}

/// What a health check probes, on the host (through the agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "target", rename_all = "lowercase")]
pub enum Probe {
    /// A systemd unit that must be active.
    Unit(String),
    /// "address:port" that must accept a TCP connection.
    Tcp(String),
    /// A URL that must answer 2xx/3xx.
    Http(String),
    /// A container the host runs: healthy, or running when it has no health check.
    Container { name: String, engine: Backend },
}

impl Probe {
    /// The host-file key of this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Unit(_) => "unit",
            Probe::Tcp(_) => "tcp",
            Probe::Http(_) => "http",
            Probe::Container { .. } => "container",
        }
    }

    /// What it probes, as written in the host file.
    pub fn target(&self) -> &str {
        match self {
            Probe::Unit(s) | Probe::Tcp(s) | Probe::Http(s) => s,
            Probe::Container { name, .. } => name,
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.target())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxmoxPlan {
    pub api: String,
    pub node: String,
    pub vmid: u32,
    pub cores: u32,
    pub disk_mib: u64,
    pub bridge: String,
    pub token_secret: String,
    pub fingerprint: Option<String>,
    pub image_storage: String,
    pub disk_storage: String,
}
