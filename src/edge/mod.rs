//! The fleet's edge (issue 15): each host's Traefik, its TLS, and where its
//! protected routes forward-auth.
//!
//! Owns the `[proxy]` table and the `[roles] identity` rule, and the
//! `EdgePlan` it puts on every host that runs Traefik: the TLS mode, the link
//! to the fleet's identity host, the routes (one per web UI and per
//! `[proxy.routes]` entry, each to a container on the proxy network) and the
//! middlewares they name. `traefik` renders Traefik's static and file-provider
//! configuration from it. Runs after every host resolved and the WireGuard
//! peers are known; it never reads files or calls programs.
//! Must not touch: the fleet CA's keys and certificates (`pki`), the firewall
//! (`harden`), the monitoring hub (`monitoring`), the authentik blueprint.

pub mod traefik;

pub mod blueprint;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;

use ipnet::IpNet;

use serde::Serialize;

use crate::diag::{Diagnostic, Loc};
use crate::harden::firewall::parse_net;
use crate::inventory::schema::{AcmeChallenge, TlsMode};
use crate::inventory::{HostSource, Inventory, Spanned};
use crate::plan::{HostPlan, ServicePlan};

/// One host's part in the edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgePlan {
    /// Traefik routes web UIs as <service>.<domain>.
    pub domain: String,
    pub tls: TlsPlan,
    /// Where this host's protected routes forward-auth (None: no identity
    /// host in the fleet, and then no route of this host is protected).
    pub identity: Option<IdentityLink>,
    /// Every route Traefik serves, sorted by name.
    pub routes: Vec<Route>,
    /// The `[proxy.middlewares]` definitions, sorted by name (the SSO
    /// middleware is not among them: it follows from `identity`).
    pub middlewares: Vec<Middleware>,
    /// On the identity host: the other Traefiks' addresses, whose
    /// X-Forwarded-* headers (the original host and URI of a forward-auth or
    /// outpost request) its websecure entry point keeps. Empty elsewhere.
    pub trusted_proxies: Vec<IpAddr>,
}

/// The built-in forward-auth middleware's name in the dynamic configuration.
pub const SSO_MIDDLEWARE: &str = "authentik";
/// authentik's port in its container (the image's default listener).
pub const AUTHENTIK_PORT: u16 = 9000;
/// The path prefix of authentik's outpost, which every protected host name
/// must route to authentik (https://docs.goauthentik.io/add-secure-apps/providers/proxy/server_traefik/).
pub const OUTPOST_PREFIX: &str = "/outpost.goauthentik.io/";

/// `https://<host>` → a container on the proxy network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The router's and service's name: the web UI's service name, or the
    /// `[proxy.routes]` key.
    pub name: String,
    /// The host name Traefik matches: `<name>.<domain>`.
    pub host: String,
    /// The container Traefik dials (a VPN-namespace member's owner).
    pub container: String,
    pub port: u16,
    /// Middlewares in order: the host file's, then the SSO middleware when
    /// protected.
    pub middlewares: Vec<String>,
    /// Behind the identity host's authentik.
    pub protected: bool,
}

impl Route {
    /// The backend URL, by container DNS name on the proxy network.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.container, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Middleware {
    pub name: String,
    pub kind: MiddlewareKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MiddlewareKind {
    /// Traefik's ipAllowList.
    IpAllow(Vec<IpNet>),
    /// Traefik's rateLimit.
    RateLimit { average: u64, burst: u64 },
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
    /// The name `url` carries ("authentik.<its domain>"), which Traefik's
    /// container resolves to `address` (an --add-host entry); None on the
    /// identity host itself.
    pub name: Option<String>,
    /// The identity host's Traefik serves a fleet-CA certificate (tls =
    /// "internal"): cross-host requests verify it against the fleet CA rather
    /// than the public roots.
    pub fleet_ca: bool,
}

/// The identity claim: which host, where in its file.
struct Identity<'a> {
    src: &'a HostSource,
    span: Range<usize>,
}

/// Puts an `EdgePlan` on every host that runs Traefik, or adds diagnostics
/// and changes nothing.
pub fn wire(inv: &Inventory, plans: &mut [HostPlan], diags: &mut Vec<Diagnostic>) {
    let before = diags.len();
    proxy_placement(inv, plans, diags);
    let identity = find_identity(inv, diags);
    if diags.len() > before {
        return;
    }
    identity_placement(inv, identity.as_ref(), diags);
    let mut edges: BTreeMap<String, EdgePlan> = BTreeMap::new();
    // The other Traefiks' addresses as the identity host sees them.
    let mut trusted: Vec<IpAddr> = Vec::new();
    for p in plans.iter() {
        let Some(src) = inv.hosts.iter().find(|h| h.name == p.name) else {
            continue;
        };
        let Some(c) = &p.containers else { continue };
        if !runs(p, "traefik") {
            continue;
        }
        let tls = tls_plan(src, &c.domain, diags);
        let middlewares = middlewares(src, p, diags);
        let routes = routes(src, p, &middlewares, identity.is_some(), diags);
        let link = identity
            .as_ref()
            .and_then(|id| identity_link(src, p, id, plans, &routes, diags));
        if let Some((_, Some(from))) = &link {
            trusted.push(*from);
        }
        let identity = link.map(|(l, _)| l);
        if let Some(tls) = tls {
            edges.insert(
                p.name.clone(),
                EdgePlan {
                    domain: c.domain.clone(),
                    tls,
                    identity,
                    routes,
                    middlewares,
                    trusted_proxies: Vec::new(),
                },
            );
        }
    }
    if diags.len() > before {
        return;
    }
    if let Some(e) = identity.as_ref().and_then(|id| edges.get_mut(&id.src.name)) {
        trusted.sort();
        trusted.dedup();
        e.trusted_proxies = trusted;
    }
    for p in plans.iter_mut() {
        p.edge = edges.remove(&p.name);
    }
}

fn runs(p: &HostPlan, service: &str) -> bool {
    p.containers
        .as_ref()
        .is_some_and(|c| c.services.iter().any(|s| s.name == service))
}

/// The span of `service` in the host file's `services` list.
fn service_span(src: &HostSource, service: &str) -> Range<usize> {
    src.raw
        .containers
        .as_ref()
        .and_then(|c| c.services.iter().find(|s| s.value.as_str() == service))
        .map(|s| s.span.clone())
        .unwrap_or(0..0)
}

/// `[proxy]` configures Traefik: on a host without it, it would configure nothing.
fn proxy_placement(inv: &Inventory, plans: &[HostPlan], diags: &mut Vec<Diagnostic>) {
    for h in &inv.hosts {
        let Some(proxy) = &h.raw.proxy else { continue };
        let has = plans.iter().any(|p| p.name == h.name && runs(p, "traefik"));
        if !has {
            diags.push(
                Diagnostic::at(
                    Loc::new(h.file, proxy.span.clone()),
                    format!(
                        "[proxy] configures Traefik, but {} does not run traefik",
                        h.name
                    ),
                )
                .hint("add \"traefik\" to [containers] services, or remove the [proxy] table"),
            );
        }
    }
}

/// The host whose file says `[roles] identity = true`; a second is an error
/// naming both places.
fn find_identity<'a>(inv: &'a Inventory, diags: &mut Vec<Diagnostic>) -> Option<Identity<'a>> {
    let mut found: Option<Identity> = None;
    for h in &inv.hosts {
        let Some(flag) = h.raw.roles.as_ref().and_then(|r| r.identity.as_ref()) else {
            continue;
        };
        if !flag.value {
            continue;
        }
        match &found {
            Some(first) => diags.push(
                Diagnostic::at(
                    Loc::new(h.file, flag.span.clone()),
                    format!(
                        "a second identity host: {} already is the fleet's identity host",
                        first.src.name
                    ),
                )
                .label("second identity host")
                .related(Loc::new(first.src.file, first.span.clone()), "first identity host")
                .hint("one authentik signs in the whole fleet: keep `identity = true` on one of the two"),
            ),
            None => {
                found = Some(Identity {
                    src: h,
                    span: flag.span.clone(),
                })
            }
        }
    }
    found
}

/// The identity host runs authentik and Traefik (the others reach authentik
/// through it); no other host runs authentik, whose users would be separate.
fn identity_placement(inv: &Inventory, id: Option<&Identity>, diags: &mut Vec<Diagnostic>) {
    let services = |h: &HostSource| -> Vec<String> {
        h.raw
            .containers
            .as_ref()
            .map(|c| c.services.iter().map(|s| s.value.to_string()).collect())
            .unwrap_or_default()
    };
    if let Some(id) = id {
        let has = services(id.src);
        let missing: Vec<&str> = ["authentik", "traefik"]
            .into_iter()
            .filter(|s| !has.iter().any(|h| h == s))
            .collect();
        if !missing.is_empty() {
            diags.push(
                Diagnostic::at(
                    Loc::new(id.src.file, id.span.clone()),
                    format!(
                        "the identity host {} does not run {}",
                        id.src.name,
                        missing.join(", ")
                    ),
                )
                .hint(format!(
                    "add {} to its [containers] services (the other hosts reach authentik through its Traefik)",
                    missing
                        .iter()
                        .map(|m| format!("\"{m}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
    }
    for h in &inv.hosts {
        if id.is_some_and(|id| id.src.name == h.name)
            || !services(h).iter().any(|s| s == "authentik")
        {
            continue;
        }
        let span = service_span(h, "authentik");
        let d = match id {
            Some(id) => Diagnostic::at(
                Loc::new(h.file, span),
                format!(
                    "`authentik` runs on {}, but {} is the fleet's identity host",
                    h.name, id.src.name
                ),
            )
            .related(Loc::new(id.src.file, id.span.clone()), "the identity host")
            .hint(format!(
                "remove authentik (and authentik-worker) from {}: its protected routes sign in at {}'s; a second authentik would have separate users",
                h.path, id.src.name
            )),
            None => Diagnostic::at(
                Loc::new(h.file, span),
                format!(
                    "`authentik` runs on {}, but no host is the fleet's identity host",
                    h.name
                ),
            )
            .hint(format!(
                "add `[roles]` with `identity = true` to {} (every host's protected routes then sign in there), or remove authentik",
                h.path
            )),
        };
        diags.push(d);
    }
}

/// `[proxy] tls`: "internal" by default under home.arpa, else "acme"; ACME
/// needs an e-mail, DNS-01 a provider and its credentials (as secrets; the
/// resolver put them into Traefik's environment).
fn tls_plan(src: &HostSource, domain: &str, diags: &mut Vec<Diagnostic>) -> Option<TlsPlan> {
    let file = src.file;
    let proxy = src.raw.proxy.as_ref();
    let raw = proxy.map(|p| &p.value);
    let home = domain == "home.arpa" || domain.ends_with(".home.arpa");
    let mode = match raw.and_then(|r| r.tls.as_ref()) {
        Some(t) => t.value,
        None if home => TlsMode::Internal,
        None => TlsMode::Acme,
    };
    // Where an error about the mode points: the `tls` value, the [proxy]
    // table, or the domain that made "acme" the default.
    let mode_span = raw
        .and_then(|r| r.tls.as_ref().map(|t| t.span.clone()))
        .or_else(|| proxy.map(|p| p.span.clone()))
        .or_else(|| {
            src.raw
                .containers
                .as_ref()
                .and_then(|c| c.domain.as_ref())
                .map(|d| d.span.clone())
        })
        .unwrap_or(0..0);
    let before = diags.len();
    let mut err = |span: &Range<usize>, msg: String, hint: &str| {
        diags.push(Diagnostic::at(Loc::new(file, span.clone()), msg).hint(hint.to_string()));
    };
    if mode == TlsMode::Internal {
        let acme_only = raw.into_iter().flat_map(|r| {
            [
                r.email.as_ref().map(|e| ("email", e.span.clone())),
                r.challenge.as_ref().map(|c| ("challenge", c.span.clone())),
                r.dns_provider
                    .as_ref()
                    .map(|d| ("dns_provider", d.span.clone())),
                r.dns_env
                    .values()
                    .next()
                    .map(|v| ("dns_env", v.span.clone())),
            ]
            .into_iter()
            .flatten()
        });
        for (key, span) in acme_only.collect::<Vec<_>>() {
            err(
                &span,
                format!("`{key}` is an ACME setting, but this host's tls is \"internal\""),
                "remove it, or set tls = \"acme\" in [proxy]",
            );
        }
        return (diags.len() == before).then_some(TlsPlan::Internal);
    }
    let email = match raw.and_then(|r| r.email.as_ref()) {
        Some(e) if valid_email(&e.value) => Some(e.value.clone()),
        Some(e) => {
            err(
                &e.span,
                format!("`{}` is not an e-mail address", e.value),
                "write the ACME account's contact, e.g. \"admin@example.net\"",
            );
            None
        }
        None => {
            let why = if raw.and_then(|r| r.tls.as_ref()).is_some() {
                "tls = \"acme\"".to_string()
            } else {
                format!("tls defaults to \"acme\" for {domain} (not under home.arpa)")
            };
            err(
                &mode_span,
                format!("{why}, but [proxy] has no `email` for the ACME account"),
                "add email = \"admin@example.net\" to [proxy] (Let's Encrypt's account contact), or set tls = \"internal\"",
            );
            None
        }
    };
    let challenge = raw
        .and_then(|r| r.challenge.as_ref())
        .map(|c| c.value)
        .unwrap_or(AcmeChallenge::Http);
    let mut dns_provider = None;
    let mut dns_env = BTreeMap::new();
    if let Some(r) = raw {
        match challenge {
            AcmeChallenge::Http => {
                let dns_only = r
                    .dns_provider
                    .as_ref()
                    .map(|d| ("dns_provider", d.span.clone()))
                    .or_else(|| {
                        r.dns_env
                            .values()
                            .next()
                            .map(|v| ("dns_env", v.span.clone()))
                    });
                if let Some((key, span)) = dns_only {
                    err(
                        &span,
                        format!("`{key}` is a DNS-01 setting, but the challenge is \"http\""),
                        "set challenge = \"dns\" in [proxy], or remove it",
                    );
                }
            }
            AcmeChallenge::Dns => {
                let span = r
                    .challenge
                    .as_ref()
                    .map(|c| c.span.clone())
                    .unwrap_or(mode_span.clone());
                match &r.dns_provider {
                    Some(d) if valid_provider(&d.value) => dns_provider = Some(d.value.clone()),
                    Some(d) => err(
                        &d.span,
                        format!("`{}` is not a DNS provider name", d.value),
                        "write lego's provider code, e.g. \"cloudflare\" (https://go-acme.github.io/lego/dns/)",
                    ),
                    None => err(
                        &span,
                        "challenge = \"dns\" needs `dns_provider` (lego's provider code)".into(),
                        "add e.g. dns_provider = \"cloudflare\" to [proxy]",
                    ),
                }
                if r.dns_env.is_empty() {
                    err(
                        &span,
                        "challenge = \"dns\" needs the DNS provider's credentials in `dns_env`"
                            .into(),
                        "add them as secrets, e.g. dns_env = { CF_DNS_API_TOKEN = \"secret:cloudflare-token\" } (names from lego's page for the provider)",
                    );
                }
                for (k, v) in &r.dns_env {
                    // The resolver checked each value is a secret reference.
                    if let Ok(name) = crate::secrets::parse_ref(&v.value) {
                        dns_env.insert(k.to_string(), name.to_string());
                    }
                }
            }
        }
    }
    if diags.len() > before {
        return None;
    }
    Some(TlsPlan::Acme {
        email: email?,
        challenge,
        dns_provider,
        dns_env,
    })
}

/// One "@", something on either side, no spaces or controls (what an ACME
/// server accepts as a mailto: contact).
fn valid_email(s: &str) -> bool {
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '<' | '>' | ','))
}

/// lego's provider codes: lowercase letters, digits, '-' and '.'.
fn valid_provider(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
}

/// `[proxy.middlewares]`: each of exactly one kind, its values checked.
fn middlewares(src: &HostSource, p: &HostPlan, diags: &mut Vec<Diagnostic>) -> Vec<Middleware> {
    let file = src.file;
    let Some(proxy) = &src.raw.proxy else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, def) in &proxy.value.middlewares {
        let at = |span: &Range<usize>| Loc::new(file, span.clone());
        if name.as_str() == SSO_MIDDLEWARE {
            diags.push(
                Diagnostic::at(
                    at(&def.span),
                    format!("`{SSO_MIDDLEWARE}` is the built-in SSO middleware"),
                )
                .hint("give this middleware another name; potato adds the SSO middleware to every protected route itself"),
            );
            continue;
        }
        let kind = match (&def.value.ip_allow, &def.value.rate_limit) {
            (Some(list), None) => ip_allow(src, p, list, diags).map(MiddlewareKind::IpAllow),
            (None, Some(r)) => rate_limit(file, r, diags),
            _ => {
                diags.push(
                    Diagnostic::at(
                        at(&def.span),
                        format!("middleware `{name}` must be exactly one kind"),
                    )
                    .hint("set one of ip_allow = [\"lan\"] or rate_limit = { average = 50, burst = 100 }"),
                );
                None
            }
        };
        if let Some(kind) = kind {
            out.push(Middleware {
                name: name.to_string(),
                kind,
            });
        }
    }
    out
}

fn ip_allow(
    src: &HostSource,
    p: &HostPlan,
    list: &Spanned<Vec<Spanned<String>>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<IpNet>> {
    if list.value.is_empty() {
        diags.push(
            Diagnostic::at(
                Loc::new(src.file, list.span.clone()),
                "ip_allow lists no source",
            )
            .hint("name zones or CIDRs, e.g. [\"lan\", \"wg\"]"),
        );
        return None;
    }
    let mut nets = Vec::new();
    for item in &list.value {
        if let Some(zone) = p.zones.get(&item.value) {
            nets.extend(zone.iter().copied());
        } else if let Some(net) = parse_net(&item.value) {
            nets.push(net);
        } else {
            diags.push(
                Diagnostic::at(
                    Loc::new(src.file, item.span.clone()),
                    format!("`{}` is neither a zone of this host nor a CIDR", item.value),
                )
                .hint("name a zone from [zones] or write a CIDR, e.g. \"192.168.178.0/24\""),
            );
            return None;
        }
    }
    Some(nets)
}

fn rate_limit(
    file: usize,
    r: &Spanned<crate::inventory::schema::RateLimit>,
    diags: &mut Vec<Diagnostic>,
) -> Option<MiddlewareKind> {
    let check = |v: &Spanned<i64>, diags: &mut Vec<Diagnostic>| -> Option<u64> {
        if (1..=1_000_000).contains(&v.value) {
            Some(v.value as u64)
        } else {
            diags.push(
                Diagnostic::at(
                    Loc::new(file, v.span.clone()),
                    format!("{} requests per second is out of range", v.value),
                )
                .hint("give a whole number from 1 to 1000000"),
            );
            None
        }
    };
    let average = check(&r.value.average, diags)?;
    let burst = match &r.value.burst {
        Some(b) => check(b, diags)?,
        None => average,
    };
    Some(MiddlewareKind::RateLimit { average, burst })
}

/// A middleware name a route uses must be defined in `[proxy.middlewares]`.
fn referenced(
    src: &HostSource,
    names: &[Spanned<crate::inventory::ident::ProxyName>],
    defined: &[Middleware],
    diags: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        if defined.iter().any(|m| m.name == n.value.as_str()) {
            out.push(n.value.to_string());
            continue;
        }
        let known: Vec<String> = defined.iter().map(|m| format!("`{}`", m.name)).collect();
        let hint = if known.is_empty() {
            format!(
                "define it as [proxy.middlewares.{}] with ip_allow or rate_limit",
                n.value
            )
        } else {
            format!(
                "define it as [proxy.middlewares.{}], or use one of {}",
                n.value,
                known.join(", ")
            )
        };
        diags.push(
            Diagnostic::at(
                Loc::new(src.file, n.span.clone()),
                format!("middleware `{}` is referenced but not defined", n.value),
            )
            .hint(hint),
        );
    }
    out
}

/// The routes: every web UI as `<service>.<domain>`, then `[proxy.routes]`.
/// A protected route needs the fleet's identity host.
fn routes(
    src: &HostSource,
    p: &HostPlan,
    defined: &[Middleware],
    has_identity: bool,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Route> {
    let Some(c) = &p.containers else {
        return Vec::new();
    };
    let overrides = src.raw.containers.as_ref().map(|c| &c.overrides);
    let mut out: Vec<Route> = Vec::new();
    for s in &c.services {
        let Some(port) = s.web else {
            if let Some(o) = overrides.and_then(|o| o.get(s.name.as_str()))
                && let Some(first) = o.value.middlewares.first()
            {
                diags.push(
                    Diagnostic::at(
                        Loc::new(src.file, first.span.clone()),
                        format!("`{}` has no web UI, so no route for these middlewares", s.name),
                    )
                    .hint(format!(
                        "remove `middlewares` from [containers.{}], or add a [proxy.routes.NAME] to it",
                        s.name
                    )),
                );
            }
            continue;
        };
        if s.proxy {
            continue;
        }
        let names = overrides
            .and_then(|o| o.get(s.name.as_str()))
            .map(|o| o.value.middlewares.as_slice())
            .unwrap_or(&[]);
        let mut mw = referenced(src, names, defined, diags);
        if s.sso {
            if !has_identity {
                diags.push(no_identity(src, &service_span(src, &s.name), &s.name, true));
            }
            mw.push(SSO_MIDDLEWARE.into());
        }
        out.push(Route {
            name: s.name.clone(),
            host: format!("{}.{}", s.name, c.domain),
            container: reached_as(s),
            port,
            middlewares: mw,
            protected: s.sso,
        });
    }
    let Some(proxy) = &src.raw.proxy else {
        return out;
    };
    for (name, r) in &proxy.value.routes {
        let at = Loc::new(src.file, r.span.clone());
        if out.iter().any(|x| x.name == name.as_str()) {
            diags.push(
                Diagnostic::at(
                    at,
                    format!("route `{name}` is already the route of the web UI `{name}`"),
                )
                .hint("give the route another name (it becomes <name>.<domain>)"),
            );
            continue;
        }
        let target = &r.value.service;
        let Some(s) = c.services.iter().find(|s| s.name == target.value.as_str()) else {
            diags.push(
                Diagnostic::at(
                    Loc::new(src.file, target.span.clone()),
                    format!(
                        "route `{name}` goes to service `{}`, which is referenced but not defined on this host",
                        target.value
                    ),
                )
                .hint(format!(
                    "add \"{}\" to [containers] services, or route to a container this host runs",
                    target.value
                )),
            );
            continue;
        };
        let holder = s.network.as_deref().unwrap_or(&s.name);
        let holder_nets = c
            .services
            .iter()
            .find(|x| x.name == holder)
            .map(|x| x.networks.clone())
            .unwrap_or_default();
        if !holder_nets.iter().any(|n| n == "proxy") {
            diags.push(
                Diagnostic::at(
                    Loc::new(src.file, target.span.clone()),
                    format!(
                        "route `{name}` goes to `{}`, which is not on the proxy network (it joins {})",
                        s.name,
                        if holder_nets.is_empty() { "none".to_string() } else { holder_nets.join(", ") }
                    ),
                )
                .hint("Traefik reaches containers on the proxy network only: route to a web UI, or remove the route"),
            );
            continue;
        }
        let port = match (&r.value.port, s.web) {
            (Some(pt), _) if (1..=65535).contains(&pt.value) => pt.value as u16,
            (Some(pt), _) => {
                diags.push(
                    Diagnostic::at(
                        Loc::new(src.file, pt.span.clone()),
                        format!("port {} is out of range", pt.value),
                    )
                    .hint("give the container's port, 1-65535"),
                );
                continue;
            }
            (None, Some(w)) => w,
            (None, None) => {
                diags.push(
                    Diagnostic::at(at, format!("route `{name}`: `{}` has no web port", s.name))
                        .hint("set port = N to the container port the route goes to"),
                );
                continue;
            }
        };
        let protected = !r.value.public.unwrap_or(false);
        let mut mw = referenced(src, &r.value.middlewares, defined, diags);
        if protected {
            if !has_identity {
                diags.push(no_identity(src, &r.span, name.as_str(), false));
            }
            mw.push(SSO_MIDDLEWARE.into());
        }
        out.push(Route {
            name: name.to_string(),
            host: format!("{name}.{}", c.domain),
            container: reached_as(s),
            port,
            middlewares: mw,
            protected,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The container name Traefik dials for a service: a VPN-namespace member is
/// reached through its owner (gluetun), which holds its ports.
fn reached_as(s: &ServicePlan) -> String {
    s.network.clone().unwrap_or_else(|| s.name.clone())
}

fn no_identity(src: &HostSource, span: &Range<usize>, name: &str, web_ui: bool) -> Diagnostic {
    let what = if web_ui { "web UI" } else { "route" };
    let public = if web_ui {
        format!("[containers.{name}] public = true")
    } else {
        format!("public = true in [proxy.routes.{name}]")
    };
    Diagnostic::at(
        Loc::new(src.file, span.clone()),
        format!("{what} `{name}` is behind SSO, but no host of the fleet is the identity host"),
    )
    .hint(format!(
        "add `[roles]` with `identity = true` to the host file of the host that runs authentik, or make it reachable without SSO with {public}"
    ))
}

/// How this host reaches the identity host's authentik: on the identity host
/// itself, by container name on the proxy network; elsewhere at
/// `https://authentik.<its domain>`, resolved to its WireGuard address in a
/// tunnel the two share. With no shared tunnel, a host with protected routes
/// is an error: forward-auth carries session cookies and travels over
/// WireGuard only (no LAN fallback: the LAN address of a host is not known to
/// be stable or private). Also returns this host's own address in that
/// tunnel, where the identity host sees its requests come from.
fn identity_link(
    src: &HostSource,
    p: &HostPlan,
    id: &Identity,
    plans: &[HostPlan],
    routes: &[Route],
    diags: &mut Vec<Diagnostic>,
) -> Option<(IdentityLink, Option<IpAddr>)> {
    if p.name == id.src.name {
        return Some((
            IdentityLink {
                host: p.name.clone(),
                local: true,
                url: format!("http://authentik:{AUTHENTIK_PORT}"),
                address: None,
                name: None,
                fleet_ca: false,
            },
            None,
        ));
    }
    let id_plan = plans.iter().find(|x| x.name == id.src.name)?;
    let id_domain = &id_plan.containers.as_ref()?.domain;
    let id_internal = tls_mode_of(id.src, id_domain) == TlsMode::Internal;
    let name = format!("authentik.{id_domain}");
    let shared = p
        .shared_tunnel(id_plan)
        .map(|(from, address)| (address, from));
    match shared {
        Some((address, from)) => Some((
            IdentityLink {
                host: id_plan.name.clone(),
                local: false,
                url: format!("https://{name}"),
                address: Some(address),
                name: Some(name),
                fleet_ca: id_internal,
            },
            Some(from),
        )),
        None => {
            if let Some(r) = routes.iter().find(|r| r.protected) {
                let span = {
                    let s = service_span(src, &r.name);
                    if s == (0..0) {
                        src.raw
                            .proxy
                            .as_ref()
                            .and_then(|x| x.value.routes.iter().find(|(k, _)| k.as_str() == r.name))
                            .map(|(_, v)| v.span.clone())
                            .unwrap_or(0..0)
                    } else {
                        s
                    }
                };
                diags.push(
                    Diagnostic::at(
                        Loc::new(src.file, span),
                        format!(
                            "`{}` is behind SSO, but {} shares no WireGuard tunnel with the identity host {}",
                            r.name, p.name, id_plan.name
                        ),
                    )
                    .related(Loc::new(id.src.file, id.span.clone()), "the identity host")
                    .hint("forward-auth travels over WireGuard: give this host a [wireguard.wg0] address in the identity host's tunnel subnet, or make the route public"),
                );
            }
            None
        }
    }
}

/// The TLS mode a host resolves to (for the identity host as others see it).
fn tls_mode_of(src: &HostSource, domain: &str) -> TlsMode {
    match src.raw.proxy.as_ref().and_then(|p| p.value.tls.as_ref()) {
        Some(t) => t.value,
        None if domain == "home.arpa" || domain.ends_with(".home.arpa") => TlsMode::Internal,
        None => TlsMode::Acme,
    }
}
