//! The host file as written: `hosts/<name>.toml`, deserialized with spans.
//!
//! These types mirror the TOML one to one (unknown keys are rejected) and carry no
//! policy: values that need parsing (CIDRs, rules, sizes, durations, addresses) stay
//! spanned strings here and are checked in `resolve`, so that one run reports every
//! problem at once. Identifiers and paths that reach native files (service names,
//! env keys, zones, peer and host names, unit and secret names, mount points, the
//! data root, devices, Proxmox ids) are `ident` newtypes, checked as they are read.
//! Doc comments become the JSON Schema's descriptions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::ident::{
    AbsPath, DevicePath, EnvKey, HostName, PeerName, ProxyName, PveBridge, PveNode, PveStorageId,
    SecretName, ServiceName, UnitName, ZoneName,
};
use super::spanned::Spanned;

pub type SString = Spanned<String>;

/// One machine of the fleet. The host's name is the file's stem.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// Nix system double of the machine.
    pub system: Spanned<System>,
    /// Hardware profile: which `modules/hardware/<profile>.nix` the host imports.
    pub hardware: Spanned<Hardware>,
    /// Physical RAM, e.g. "16GiB" or "2048MiB". Container memory limits are checked against it.
    pub memory: SString,
    /// IANA time zone, e.g. "Europe/Berlin".
    #[serde(default)]
    pub timezone: Option<SString>,
    /// NixOS `system.stateVersion` of the first install (never change it later).
    #[serde(default)]
    pub state_version: Option<SString>,
    /// Free-form tags, for `potato deploy @tag`.
    #[serde(default)]
    pub tags: Vec<SString>,
    /// How potato reaches and activates the host.
    pub deploy: Deploy,
    /// Named groups of source addresses, used by firewall rules and fail2ban ignores.
    #[serde(default)]
    pub zones: BTreeMap<ZoneName, Vec<SString>>,
    /// UFW-style packet filter.
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default)]
    pub ssh: Ssh,
    #[serde(default)]
    pub fail2ban: Option<Fail2ban>,
    #[serde(default)]
    pub storage: Option<Storage>,
    /// WireGuard interfaces by interface name (e.g. wg0).
    #[serde(default)]
    pub wireguard: BTreeMap<String, Spanned<WireGuard>>,
    #[serde(default)]
    pub containers: Option<Containers>,
    /// gluetun's VPN (WireGuard), rendered to the environment gluetun documents.
    #[serde(default)]
    pub vpn: Option<Spanned<Vpn>>,
    /// Checks that must pass before a deploy is confirmed.
    #[serde(default)]
    pub health: Vec<Spanned<Health>>,
    /// For Proxmox VM hosts: where and how the VM is created.
    #[serde(default)]
    pub proxmox: Option<Spanned<Proxmox>>,
    /// Secrets decrypted on the host into /run/potato-secrets/NAME, with their
    /// owner and mode. Secrets referenced elsewhere ("secret:NAME") are included
    /// with the defaults (root, root, 0400).
    #[serde(default)]
    pub secrets: BTreeMap<SecretName, Spanned<SecretFile>>,
    /// Fleet roles this host serves; one host per role in the fleet.
    #[serde(default)]
    pub roles: Option<Roles>,
    /// Settings of the monitoring hub (only on the host with `[roles] monitoring = true`).
    #[serde(default)]
    pub monitoring: Option<Spanned<Monitoring>>,
    /// How this host's Traefik gets its certificates (only with "traefik" in services).
    #[serde(default)]
    pub proxy: Option<Spanned<Proxy>>,
    /// Services this host provides to the whole fleet (`[fleet.cache]`).
    #[serde(default)]
    pub fleet: Option<FleetServices>,
}

/// `[fleet]`: what this host serves for every other host of the fleet.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetServices {
    /// The fleet's binary cache: this host serves a signed static Nix binary
    /// cache (nginx) over WireGuard, and every other host of the fleet uses it
    /// as a substituter. At most one host of the fleet has this table.
    #[serde(default)]
    pub cache: Option<Spanned<FleetCacheSettings>>,
}

/// `[fleet.cache]`: the binary cache this host serves to the fleet.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetCacheSettings {
    /// The HTTP port the cache is served on, on this host's tunnel addresses
    /// (default 5080). Only the other hosts' tunnel addresses may connect.
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// The cache's signing key, "secret:NAME" (default "secret:fleet-cache-key",
    /// which `potato cache init` creates). Decrypted on this host only, into
    /// /run/potato-secrets/NAME.
    #[serde(default)]
    pub key: Option<SString>,
    /// Nix's substituter priority (`?priority=`; default 30). Lower is tried
    /// first: cache.nixos.org is 40, so the fleet cache is asked before it.
    #[serde(default)]
    pub priority: Option<Spanned<i64>>,
}

/// `[roles]`: what this host serves for the whole fleet.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// The monitoring hub: its Prometheus scrapes every host's node-exporter over
    /// WireGuard, its Alertmanager sends to ntfy, its Loki receives every host's
    /// logs and its Grafana shows both. It runs prometheus, alertmanager, grafana
    /// and loki; no other host does.
    #[serde(default)]
    pub monitoring: Option<Spanned<bool>>,
    /// The identity host: its authentik is the fleet's single sign-on; every
    /// other host's protected routes forward-auth to it over the LAN or WireGuard.
    #[serde(default)]
    pub identity: Option<Spanned<bool>>,
}

/// `[proxy]`: the TLS of this host's Traefik.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// "acme" (a public CA, Let's Encrypt) or "internal" (the fleet CA potato
    /// keeps). Default: "internal" for domains under home.arpa, else "acme".
    #[serde(default)]
    pub tls: Option<Spanned<TlsMode>>,
    /// The ACME account's e-mail (required with tls = "acme").
    #[serde(default)]
    pub email: Option<SString>,
    /// The ACME challenge: "http" (HTTP-01 on port 80, the default) or "dns" (DNS-01).
    #[serde(default)]
    pub challenge: Option<Spanned<AcmeChallenge>>,
    /// DNS-01: the lego provider name, e.g. "cloudflare".
    #[serde(default)]
    pub dns_provider: Option<SString>,
    /// DNS-01: the provider's credentials, as lego reads them from the environment,
    /// each "secret:NAME", e.g. { CF_DNS_API_TOKEN = "secret:cloudflare-token" }.
    #[serde(default)]
    pub dns_env: BTreeMap<EnvKey, SString>,
    /// Middlewares routes can name (`[containers.NAME] middlewares`,
    /// `[proxy.routes.NAME] middlewares`), each of one kind. The SSO
    /// middleware ("authentik") is built in and comes last in a chain.
    #[serde(default)]
    pub middlewares: BTreeMap<ProxyName, Spanned<ProxyMiddleware>>,
    /// Extra routes: `https://<name>.<domain>` to a container of this host on
    /// the proxy network (web UIs get theirs without this).
    #[serde(default)]
    pub routes: BTreeMap<ProxyName, Spanned<ProxyRoute>>,
}

/// `[proxy.middlewares.NAME]`: exactly one of the kinds below.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyMiddleware {
    /// Only these sources reach the route: zone names or CIDRs, e.g. ["lan", "wg"]
    /// (Traefik's ipAllowList).
    #[serde(default)]
    pub ip_allow: Option<Spanned<Vec<SString>>>,
    /// Requests per second per source, on average, and the burst above it
    /// (Traefik's rateLimit), e.g. { average = 50, burst = 100 }.
    #[serde(default)]
    pub rate_limit: Option<Spanned<RateLimit>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub average: Spanned<i64>,
    #[serde(default)]
    pub burst: Option<Spanned<i64>>,
}

/// `[proxy.routes.NAME]`: `https://<NAME>.<domain>` to a container.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    /// The container (a service in [containers] services) the route goes to.
    pub service: Spanned<ServiceName>,
    /// Its port (default: the service's web port).
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// Middlewares from [proxy.middlewares], in order.
    #[serde(default)]
    pub middlewares: Vec<Spanned<ProxyName>>,
    /// Reachable without SSO (default false: behind the identity host's authentik).
    #[serde(default)]
    pub public: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Acme,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AcmeChallenge {
    Http,
    Dns,
}

/// `[monitoring]` on the hub: how often, how soon, and where alerts go.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    /// How often Prometheus scrapes and evaluates rules (default "30s").
    #[serde(default)]
    pub scrape_interval: Option<SString>,
    /// How long a host's exporter must be unreachable before HostDown fires (default "2m").
    #[serde(default)]
    pub host_down_after: Option<SString>,
    /// The ntfy topic URL alerts are posted to, e.g. "https://ntfy.example.net/alerts".
    /// Default: https://ntfy.<domain>/<ntfy_topic> of the host that runs ntfy.
    #[serde(default)]
    pub ntfy_url: Option<SString>,
    /// The topic on the fleet's ntfy when `ntfy_url` is not given (default "alerts").
    #[serde(default)]
    pub ntfy_topic: Option<SString>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    /// Owning user (default root).
    #[serde(default)]
    pub owner: Option<SString>,
    /// Owning group (default root).
    #[serde(default)]
    pub group: Option<SString>,
    /// Octal mode: "0400" (the default), "0440", "0600" or "0640". No setuid,
    /// setgid or sticky bit, never readable by others, always readable by the owner.
    #[serde(default)]
    pub mode: Option<SString>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum System {
    #[serde(rename = "x86_64-linux")]
    X86_64Linux,
    #[serde(rename = "aarch64-linux")]
    Aarch64Linux,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::X86_64Linux => "x86_64-linux",
            System::Aarch64Linux => "aarch64-linux",
        }
    }
    pub fn arch(self) -> &'static str {
        match self {
            System::X86_64Linux => "x86_64",
            System::Aarch64Linux => "aarch64",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Hardware {
    /// Intel N250 mini PC (x86_64, UEFI).
    N250,
    /// Libre Computer AML-S905X-CC "Le Potato" (aarch64, u-boot + extlinux).
    Lepotato,
    /// QEMU/KVM guest on Proxmox VE.
    ProxmoxVm,
}

impl Hardware {
    pub fn as_str(self) -> &'static str {
        match self {
            Hardware::N250 => "n250",
            Hardware::Lepotato => "lepotato",
            Hardware::ProxmoxVm => "proxmox-vm",
        }
    }
    /// The only system the profile can run on.
    pub fn system(self) -> System {
        match self {
            Hardware::N250 | Hardware::ProxmoxVm => System::X86_64Linux,
            Hardware::Lepotato => System::Aarch64Linux,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// SSH target: "user@address[:port]", "address", or a Host alias from ~/.ssh/config.
    pub target: SString,
    /// Zone or CIDR the deployer connects from; the firewall must let SSH in from it.
    /// Default: the zone that contains the target's address, else any.
    #[serde(default)]
    pub from: Option<SString>,
    /// Default activation mode.
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Roll back by itself unless the deployer confirms over a new SSH connection.
    #[serde(default)]
    pub magic_rollback: Option<bool>,
    /// How long the host waits for that confirmation, e.g. "30s".
    #[serde(default)]
    pub confirm_timeout: Option<SString>,
    /// Where the system is built.
    #[serde(default)]
    pub build_on: Option<Spanned<BuildOn>>,
}

// An activation mode: the host file's `mode`, and `potato deploy --mode`
// (clap spells the values as serde does: kebab-case). A plain comment: a doc
// comment would change the published JSON schema.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Switch,
    Boot,
    Test,
    DryActivate,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Switch => "switch",
            Mode::Boot => "boot",
            Mode::Test => "test",
            Mode::DryActivate => "dry-activate",
        }
    }
}

/// Where a host's system is built: "local" (the deployer), "target" (the host
/// itself), or the name of another inventory host or of a Nix remote builder
/// the deployer has configured (`builders` in nix.conf, matched by its URI's
/// host: "arm-builder" for `ssh-ng://nix@arm-builder:2222`). An inventory host
/// wins over a builder of the same name. A builder builds through Nix's own
/// SSH store, with its line's SSH key and host key; the output is relayed to
/// the target and never enters the deployer's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "String", into = "String")]
#[schemars(with = "String")]
pub enum BuildOn {
    Local,
    Target,
    Host(String),
}

impl BuildOn {
    pub fn as_str(&self) -> &str {
        match self {
            BuildOn::Local => "local",
            BuildOn::Target => "target",
            BuildOn::Host(h) => h,
        }
    }
}

impl From<String> for BuildOn {
    fn from(s: String) -> BuildOn {
        match s.as_str() {
            "local" => BuildOn::Local,
            "target" => BuildOn::Target,
            _ => BuildOn::Host(s),
        }
    }
}

impl From<BuildOn> for String {
    fn from(b: BuildOn) -> String {
        b.as_str().to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    Allow,
    Deny,
    Reject,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// Default for new incoming connections (default "deny").
    #[serde(default)]
    pub incoming: Option<Spanned<Policy>>,
    /// Default for outgoing connections (default "allow").
    #[serde(default)]
    pub outgoing: Option<Spanned<Policy>>,
    /// Default for routed (forwarded) traffic (default "deny").
    #[serde(default)]
    pub routed: Option<Spanned<Policy>>,
    /// Ordered rules, first match wins: "ACTION PORTS[/PROTO] [from SOURCE] [on IFACE]".
    /// ACTION allow|deny|reject|limit; PORTS N, N-M or N,M,...; PROTO tcp|udp (both if
    /// absent); SOURCE a zone name, CIDR, address or "any".
    #[serde(default)]
    pub rules: Vec<SString>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// Port sshd listens on (default 22).
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// Public keys allowed to log in as the deploy user.
    #[serde(default)]
    pub authorized_keys: Vec<SString>,
    /// Allow TCP forwarding (needed on a host others use as ProxyJump; default false).
    #[serde(default)]
    pub allow_tcp_forwarding: Option<bool>,
    /// Allow agent forwarding (default false).
    #[serde(default)]
    pub allow_agent_forwarding: Option<bool>,
    /// Authentication attempts per connection (1-6, default 3).
    #[serde(default)]
    pub max_auth_tries: Option<Spanned<i64>>,
    /// Time to log in before the connection is dropped (default "30s").
    #[serde(default)]
    pub login_grace_time: Option<SString>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fail2ban {
    /// Jails to enable: "sshd", "traefik-auth".
    #[serde(default)]
    pub jails: Vec<SString>,
    /// First ban's duration, e.g. "1h" (default "1h").
    #[serde(default)]
    pub bantime: Option<SString>,
    /// Window in which maxretry failures cause a ban (default "10m").
    #[serde(default)]
    pub findtime: Option<SString>,
    /// Failures within findtime before a ban (default 5).
    #[serde(default)]
    pub maxretry: Option<Spanned<i64>>,
    /// Repeat offenders are banned longer: each ban doubles, up to maxtime (default true).
    #[serde(default)]
    pub increment: Option<Spanned<bool>>,
    /// Longest ban when increment is on (default "1w").
    #[serde(default)]
    pub maxtime: Option<SString>,
    /// Zones or CIDRs never banned (default: the zones "lan" and "wg" where
    /// defined, and this host's WireGuard subnets). Loopback is always ignored.
    #[serde(default)]
    pub ignore: Option<Vec<SString>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Disk that holds /boot and / (a /dev/disk/by-id path).
    #[serde(default)]
    pub boot_disk: Option<Spanned<DevicePath>>,
    /// Extra filesystems by mount point.
    #[serde(default)]
    pub mounts: BTreeMap<AbsPath, Spanned<Mount>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// "/dev/disk/by-label/NAME", "/dev/disk/by-uuid/UUID", "LABEL=NAME" or "UUID=UUID".
    pub device: SString,
    /// Filesystem type: ext4, xfs, btrfs, vfat, ...
    pub fs: SString,
    /// Mount options (default ["defaults"]; "nofail" is always added for data disks).
    #[serde(default)]
    pub options: Vec<SString>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WireGuard {
    /// This host's address on the tunnel with its prefix, e.g. "10.99.0.10/24".
    pub address: SString,
    /// UDP port to listen on (hubs). Opened in the firewall automatically.
    #[serde(default)]
    pub listen_port: Option<Spanned<i64>>,
    /// "host:port" other peers use to reach this one (hubs).
    #[serde(default)]
    pub endpoint: Option<SString>,
    /// Secret reference: "secret:NAME".
    pub private_key: SString,
    /// Base64 public key (from `potato secrets gen NAME --kind wireguard`).
    #[serde(default)]
    pub public_key: Option<SString>,
    /// Other potato hosts to peer with, by host name (a spoke names its hub).
    #[serde(default)]
    pub peers: Vec<Spanned<HostName>>,
    /// Peers that are not potato hosts (phones, laptops).
    #[serde(default)]
    pub external_peers: Vec<Spanned<ExternalPeer>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalPeer {
    /// A name for humans, shown in plans and comments: one word of letters,
    /// digits, '-', '_', '.' and '@'.
    pub name: Spanned<PeerName>,
    pub public_key: SString,
    /// Addresses routed to this peer, e.g. ["10.99.0.50/32"].
    pub allowed_ips: Vec<SString>,
    #[serde(default)]
    pub endpoint: Option<SString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Podman,
    Docker,
}

/// `[containers]`: the backend, the services, and per-service override tables
/// (`[containers.jellyfin]`) side by side.
#[derive(Debug, Default)]
pub struct Containers {
    pub backend: Option<Spanned<Backend>>,
    pub services: Vec<Spanned<ServiceName>>,
    /// Memory kept for the OS and non-container services, e.g. "512MiB".
    /// Default: a quarter of RAM, at least 384 MiB and at most 2 GiB.
    pub os_reserve: Option<SString>,
    /// Subnets of the container networks, by zone (proxy, backend, monitoring, vpn).
    pub networks: BTreeMap<String, SString>,
    /// Where container data lives on the host: each service gets DATA/<service>/...,
    /// shared directories DATA/shared/... (default "/var/lib/potato").
    pub data: Option<Spanned<AbsPath>>,
    /// Domain under which Traefik routes web UIs: <service>.<domain>
    /// (default "<host>.home.arpa").
    pub domain: Option<SString>,
    /// Removed: forward-auth goes to the fleet's identity host (`[roles]
    /// identity = true`). Still read, so that a host file that has it gets an
    /// error saying so instead of "unknown service".
    pub auth_url: Option<SString>,
    pub overrides: BTreeMap<ServiceName, Spanned<ServiceOverride>>,
}

/// Per-host changes to a catalog service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceOverride {
    /// Memory limit, e.g. "2GiB".
    #[serde(default)]
    pub memory: Option<SString>,
    /// Device nodes passed through, e.g. ["/dev/dri"]. A device is a privilege:
    /// it needs `why`.
    #[serde(default)]
    pub devices: Vec<Spanned<DevicePath>>,
    /// Why the privileges this table adds (devices) are needed.
    #[serde(default)]
    pub why: Option<SString>,
    /// Extra or replaced host ports: "HOST:CONTAINER[/PROTO]".
    #[serde(default)]
    pub ports: Option<Vec<SString>>,
    /// Reachable without SSO (web UIs default to behind Authentik).
    #[serde(default)]
    pub public: Option<bool>,
    /// CPU limit in cores, e.g. 1.5.
    #[serde(default)]
    pub cpus: Option<Spanned<f64>>,
    /// Extra or replaced environment: literal values, "secret:NAME", or "{secret:NAME}" inside a value.
    #[serde(default)]
    pub env: BTreeMap<EnvKey, SString>,
    /// Turn the Authentik SSO middleware off for this web UI (only with public = true).
    #[serde(default)]
    pub sso: Option<Spanned<bool>>,
    /// Middlewares from [proxy.middlewares] in front of this web UI, in order
    /// (before the SSO middleware).
    #[serde(default)]
    pub middlewares: Vec<Spanned<ProxyName>>,
    /// Owner of the service's own volume directories, numeric "UID:GID"
    /// (default: the user the image runs as, from its catalog contract).
    #[serde(default)]
    pub owner: Option<SString>,
    /// Mode of the service's own volume directories, octal, e.g. "0750" (the default).
    #[serde(default)]
    pub mode: Option<SString>,
}

/// The VPN that gluetun connects (WireGuard): the services with
/// `network = "gluetun"` reach the internet only through it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vpn {
    /// "custom" for a WireGuard server of your own, or the name of a provider
    /// gluetun knows (e.g. "mullvad", "protonvpn", "airvpn").
    pub provider: SString,
    /// The tunnel's WireGuard private key: "secret:NAME".
    pub private_key: SString,
    /// The tunnel interface's addresses, e.g. ["10.64.0.2/32"].
    pub addresses: Vec<SString>,
    /// custom only: the server as "IP:PORT" (gluetun needs an address, not a name).
    #[serde(default)]
    pub endpoint: Option<SString>,
    /// custom only: the server's WireGuard public key.
    #[serde(default)]
    pub server_public_key: Option<SString>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// A systemd unit that must be active (its full name, e.g. "podman-traefik.service").
    #[serde(default)]
    pub unit: Option<Spanned<UnitName>>,
    /// "address:port" that must accept a TCP connection (probed on the host).
    #[serde(default)]
    pub tcp: Option<SString>,
    /// URL that must answer 2xx/3xx (probed on the host).
    #[serde(default)]
    pub http: Option<SString>,
    /// A container this host runs (a service in [containers]): passes when the
    /// engine reports it healthy, or running when it has no health check.
    #[serde(default)]
    pub container: Option<SString>,
    /// Failures in this first period (from the confirm phase's start) do not
    /// count, e.g. "20s". Default: as long as the confirm timeout allows, at
    /// most 20s.
    #[serde(default)]
    pub grace: Option<SString>,
    /// Failed attempts after the grace period before the check fails (default 3).
    #[serde(default)]
    pub retries: Option<Spanned<i64>>,
    /// Time between attempts, and each attempt's time limit, e.g. "2s" (default 2s).
    #[serde(default)]
    pub interval: Option<SString>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxmox {
    /// API base URL, e.g. "https://192.168.100.2:8006": https, a host and an
    /// optional port, nothing else. Every host file naming the same token must
    /// name the same API (the token goes where this points).
    pub api: SString,
    /// Proxmox node name.
    pub node: Spanned<PveNode>,
    pub vmid: Spanned<i64>,
    #[serde(default)]
    pub cores: Option<Spanned<i64>>,
    /// Disk size, e.g. "16GiB".
    pub disk: SString,
    /// Network bridge, e.g. "vmbr0".
    pub bridge: Spanned<PveBridge>,
    /// Secret reference to the API token: "secret:NAME"; the secret reads
    /// USER@REALM!TOKENID=SECRET.
    pub token: SString,
    /// SHA-256 of the API's TLS certificate (Proxmox's is self-signed; the UI
    /// shows it under Certificates), e.g. "AB:CD:...". Without it, web roots.
    #[serde(default)]
    pub fingerprint: Option<SString>,
    /// Storage for the uploaded image (content=import; default "local").
    #[serde(default)]
    pub image_storage: Option<Spanned<PveStorageId>>,
    /// Storage for the VM's disks (default "local-lvm").
    #[serde(default)]
    pub disk_storage: Option<Spanned<PveStorageId>>,
}

// `[containers]` mixes fixed keys with one table per service, which serde's
// `flatten` cannot combine with `deny_unknown_fields` or spans; so it is read by hand.
impl<'de> Deserialize<'de> for Containers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Containers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table with backend, services and per-service tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Containers, A::Error> {
                let mut c = Containers::default();
                while let Some(ContainersKey(key)) = map.next_key::<ContainersKey>()? {
                    match key.as_str() {
                        "backend" => c.backend = Some(map.next_value()?),
                        "services" => c.services = map.next_value()?,
                        "os_reserve" => c.os_reserve = Some(map.next_value()?),
                        "networks" => c.networks = map.next_value()?,
                        "data" => c.data = Some(map.next_value()?),
                        "domain" => c.domain = Some(map.next_value()?),
                        "auth_url" => c.auth_url = Some(map.next_value()?),
                        name => {
                            if c.overrides.contains_key(name) {
                                return Err(de::Error::custom(format!("duplicate table `{name}`")));
                            }
                            let name = ServiceName::parse(name).map_err(de::Error::custom)?;
                            c.overrides.insert(name, map.next_value()?);
                        }
                    }
                }
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

/// The fixed keys of `[containers]`; any other key names a service.
const CONTAINERS_KEYS: &[&str] = &[
    "backend",
    "services",
    "os_reserve",
    "networks",
    "data",
    "domain",
    "auth_url",
];

/// A key of `[containers]`: a fixed key, or a valid service name (checked here,
/// so the error points at the key).
struct ContainersKey(String);

impl<'de> Deserialize<'de> for ContainersKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        if !CONTAINERS_KEYS.contains(&key.as_str()) {
            ServiceName::parse(&key).map_err(de::Error::custom)?;
        }
        Ok(ContainersKey(key))
    }
}

impl JsonSchema for Containers {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Containers".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let backend = g.subschema_for::<Backend>();
        let services = g.subschema_for::<Vec<String>>();
        let string = g.subschema_for::<String>();
        let networks = g.subschema_for::<BTreeMap<String, String>>();
        let over = g.subschema_for::<ServiceOverride>();
        schemars::json_schema!({
            "type": "object",
            "description": "Container services by name from the catalog, with per-service override tables.",
            "properties": {
                "backend": backend,
                "services": services,
                "os_reserve": string,
                "networks": networks,
                "data": string,
                "domain": string,
            },
            "additionalProperties": over,
        })
    }
}
