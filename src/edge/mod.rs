//! The fleet's edge (issue 15): each host's Traefik, its TLS, and where its
//! protected routes forward-auth.
//!
//! Owns the `[proxy]` table and the `[roles] identity` rule, and the
//! `EdgePlan` it puts on every host that runs Traefik. Renders Traefik's static
//! and file-provider configuration and the authentik blueprint (submodules).
//! Must not touch: the fleet CA's keys and certificates (`pki`), the firewall
//! (`harden`), the monitoring hub (`monitoring`).

pub mod blueprint;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::diag::Diagnostic;
use crate::inventory::Inventory;
use crate::inventory::schema::{AcmeChallenge, TlsMode};
use crate::plan::HostPlan;

/// One host's part in the edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgePlan {
    /// Traefik routes web UIs as <service>.<domain>.
    pub domain: String,
    pub tls: TlsPlan,
    /// Where this host's protected routes forward-auth (None: no identity
    /// host in the fleet, and then no route of this host is protected).
    pub identity: Option<IdentityLink>,
}

/// How Traefik gets its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum TlsPlan {
    /// A public CA through ACME (Traefik's certificate resolver).
    Acme {
        email: String,
        challenge: AcmeChallenge,
        /// DNS-01: lego's provider name.
        dns_provider: Option<String>,
        /// DNS-01: environment variable → secret name.
        dns_env: BTreeMap<String, String>,
    },
    /// The fleet CA: a certificate for <domain> and *.<domain>, signed by it
    /// (files from `pki`).
    Internal,
}

impl TlsPlan {
    pub fn mode(&self) -> TlsMode {
        match self {
            TlsPlan::Acme { .. } => TlsMode::Acme,
            TlsPlan::Internal => TlsMode::Internal,
        }
    }
}

/// The fleet's identity host as one host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityLink {
    /// The identity host's name.
    pub host: String,
    /// True on the identity host itself (forward-auth stays on the proxy network).
    pub local: bool,
    /// Base URL of authentik: "http://authentik:9000" on the identity host,
    /// "https://authentik.<its domain>" elsewhere.
    pub url: String,
    /// The address the name resolves to from this host (its WireGuard or LAN
    /// address), for hosts other than the identity host.
    pub address: Option<IpAddr>,
}

/// Puts an `EdgePlan` on every host that runs Traefik, or adds diagnostics.
pub fn wire(_inv: &Inventory, plans: &mut [HostPlan], _diags: &mut Vec<Diagnostic>) {
    for p in plans.iter_mut() {
        let Some(c) = &p.containers else { continue };
        if !c.services.iter().any(|s| s.name == "traefik") {
            continue;
        }
        p.edge = Some(EdgePlan {
            domain: c.domain.clone(),
            tls: TlsPlan::Internal,
            identity: None,
        });
    }
}
