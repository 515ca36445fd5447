//! The fleet binary cache (issue 17, item 3): one host (`[fleet.cache]`)
//! serves a signed static Nix binary cache with nginx over WireGuard; every
//! other host trusts its public key and substitutes from it.
//!
//! Owns the resolved plan (`FleetCache`, the same on every `HostPlan`), the
//! fleet-wide wiring (`wire`: one cache host, each consumer's URL over a
//! tunnel it shares with the cache host, the cache host's firewall opening),
//! the public key's file and its check (`attach`), and the signing key
//! (`key`: Nix's ed25519 format; `ops`: what `potato cache` does to the
//! repository). Must not touch: pushing or publishing paths (the deploy side,
//! `host`/`deploy`), the secret store's format (`secrets`), the generated Nix
//! (`render`, which reads `FleetCache`).
//!
//! In the repository:
//! - `secrets/fleet-cache.pub`: the public key, "<name>:<base64>" (public);
//! - `secrets/<cache host>/<key secret>.age`: the secret key, encrypted to the
//!   admins and the cache host, decrypted at activation into
//!   /run/potato-secrets/<key secret> (`key_path`).
//!
//! No LAN fallback: a consumer reaches the cache at the cache host's address
//! in a WireGuard tunnel the two share (`HostPlan::shared_tunnel`, the rule
//! monitoring and SSO use). A host of the fleet sharing no tunnel with the
//! cache host is an error, fixable in the host files: give it an address in
//! the cache host's tunnel, or remove `[fleet.cache]`. (A warning and a host
//! silently left without the cache would make a fleet deploy push to it
//! directly, which the deploy side cannot tell from a broken cache.)

pub mod check;
pub mod key;
pub mod ops;
mod wire;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

pub use check::attach;
pub use wire::{check_one_cache_host, wire};

/// `[fleet.cache] port` default: the HTTP port nginx serves the cache on.
pub const DEFAULT_PORT: u16 = 5080;
/// `[fleet.cache] priority` default: below cache.nixos.org's 40, so Nix asks
/// the fleet cache first (Nix: lower priority values are tried first).
pub const DEFAULT_PRIORITY: u32 = 30;
/// The signing key's secret when `[fleet.cache] key` is not given.
pub const DEFAULT_KEY_SECRET: &str = "fleet-cache-key";
/// The same, as a host file writes it.
pub const DEFAULT_KEY_REF: &str = "secret:fleet-cache-key";
/// The key's name (before the colon) `potato cache init` gives by default.
pub const DEFAULT_KEY_NAME: &str = "potato-fleet-cache-1";
/// On the cache host: the static binary cache directory nginx serves and the
/// deploy side publishes into (`nix copy --to file://<dir>?secret-key=...`,
/// which also writes `nix-cache-info`).
pub const CACHE_DIR: &str = "/var/lib/potato/cache";
/// The `nix-cache-info` the cache host starts with (the one line Nix
/// requires of a binary cache; `nix copy --to file://` keeps it).
pub const CACHE_INFO: &str = "StoreDir: /nix/store";
/// The public key in the repository.
pub const PUBLIC_KEY_FILE: &str = "secrets/fleet-cache.pub";
/// Nix's `connect-timeout` on every consumer (seconds, a `mkDefault`): an
/// unreachable cache (its host down, the tunnel dropping packets) costs
/// seconds per attempt, not curl's default five minutes.
pub const CONNECT_TIMEOUT: u32 = 5;
/// Nix's `stalled-download-timeout` on every consumer (seconds, a
/// `mkDefault`; Nix's default is 300): a cache that accepts connections but
/// sends nothing (a hung web server) fails a download after this long. Nix
/// tries a download `download-attempts` (5) times, so such a cache costs a
/// consumer's substitution about 5 × this, not 25 minutes.
/// https://nixos.org/manual/nix/stable/command-ref/conf-file#conf-stalled-download-timeout
/// (15 s is what fedimint's CI settled on for a flaky cache:
/// https://github.com/fedimint/fedimint/pull/4468).
pub const STALLED_DOWNLOAD_TIMEOUT: u32 = 15;

/// The fleet's binary cache as every host's plan carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetCache {
    /// The cache host's name.
    pub host: String,
    pub port: u16,
    /// The signing key's secret name.
    pub key_secret: String,
    /// Where the signing key is on the cache host:
    /// "/run/potato-secrets/<key_secret>".
    pub key_path: String,
    /// The static binary cache directory nginx serves (`CACHE_DIR`).
    pub dir: String,
    /// "<name>:<base64>", as Nix's `trusted-public-keys` wants it ("" until
    /// `attach` read `secrets/fleet-cache.pub`).
    pub public_key: String,
    /// Nix's substituter priority.
    pub priority: u32,
    /// Nix's `connect-timeout` on the consumers (`CONNECT_TIMEOUT`).
    pub connect_timeout: u32,
    /// Nix's `stalled-download-timeout` on the consumers
    /// (`STALLED_DOWNLOAD_TIMEOUT`).
    pub stalled_download_timeout: u32,
    /// Every other host of the fleet, by name: how it reaches the cache.
    pub consumers: BTreeMap<String, Consumer>,
}

/// How one consumer host reaches the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    /// "http://<cache host's tunnel address>:<port>".
    pub url: String,
    /// The consumer's own address in the shared tunnel (what the cache
    /// host's firewall admits).
    pub from: IpAddr,
    /// The cache host's address in that tunnel (where nginx listens).
    pub via: IpAddr,
}

impl FleetCache {
    /// The cache host's settings, before the consumers and the public key.
    pub fn new(host: &str, port: u16, key_secret: &str, priority: u32) -> FleetCache {
        FleetCache {
            host: host.to_string(),
            port,
            key_secret: key_secret.to_string(),
            key_path: crate::secrets::runtime_path(key_secret),
            dir: CACHE_DIR.to_string(),
            public_key: String::new(),
            priority,
            connect_timeout: CONNECT_TIMEOUT,
            stalled_download_timeout: STALLED_DOWNLOAD_TIMEOUT,
            consumers: BTreeMap::new(),
        }
    }

    /// The URL `consumer` substitutes from ("http://10.99.0.10:5080"); None
    /// for the cache host itself and for a host outside the fleet.
    pub fn url_for(&self, consumer: &str) -> Option<String> {
        self.consumers.get(consumer).map(|c| c.url.clone())
    }

    /// The substituter entry of `consumer`'s nix.settings:
    /// "<url>?priority=<p>" (Nix reads `priority` from a store URL's query).
    pub fn substituter_for(&self, consumer: &str) -> Option<String> {
        self.url_for(consumer)
            .map(|u| format!("{u}?priority={}", self.priority))
    }

    /// Whether `host` serves the cache.
    pub fn is_cache_host(&self, host: &str) -> bool {
        self.host == host
    }

    /// The cache host's addresses nginx listens on: every tunnel address a
    /// consumer reaches it at, sorted, once each.
    pub fn listen_addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.consumers.values().map(|c| c.via).collect();
        v.sort();
        v.dedup();
        v
    }

    /// `nix copy --to` destination that publishes into the cache on the
    /// cache host: signs with the key, writes nix-cache-info itself.
    pub fn publish_store_url(&self) -> String {
        format!(
            "file://{}?secret-key={}&compression=zstd",
            self.dir, self.key_path
        )
    }
}

/// The fleet's cache, from any loaded fleet's plans (every plan carries the
/// same one; None: no host has `[fleet.cache]`).
pub fn of_fleet(plans: &[crate::plan::HostPlan]) -> Option<&FleetCache> {
    plans.iter().find_map(|p| p.cache.as_ref())
}
