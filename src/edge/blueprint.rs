//! The fleet's single sign-on in authentik: one blueprint, rendered for the
//! identity host, that holds a forward-auth proxy provider and an application
//! for every protected route of every host, and the embedded outpost's list of
//! those providers.
//!
//! Owns which routes are protected fleet-wide (`SsoPlan`, put on the identity
//! host only), the blueprint's entries and where authentik finds the file.
//! Must not touch: Traefik's routers and middlewares (the rest of `edge`), the
//! identity-host validation (`edge::wire`), the firewall.
//!
//! **Per-application providers (`forward_single`), not one domain-level
//! provider (`forward_domain`).** authentik's docs
//! (<https://docs.goauthentik.io/add-secure-apps/providers/proxy/forward_auth/>)
//! describe domain level as one provider whose cookie is set on a parent
//! domain shared by all protected apps, with an authentication URL under that
//! domain. The fleet has no such domain: each host routes its own
//! (n250.home.arpa, lepotato.home.arpa, pve-apps.home.arpa), so one
//! `forward_domain` provider would need a cookie on `home.arpa` itself (sent to
//! every name under the special-use `.home.arpa`, including devices potato does
//! not manage) or one provider and one authentication host per domain, i.e. an
//! authentik route on every host. Single-application mode needs neither: the
//! external host is the app's own `https://<service>.<domain>`, the outpost
//! answers `/outpost.goauthentik.io/` on that same name (the outpost router
//! every host's Traefik gets), and each application can get its own policy
//! bindings, which domain level cannot ("You cannot restrict individual
//! applications to different users"). A user signs in once at authentik;
//! further apps only redirect.
//!
//! Sources (authentik 2025.x):
//! - models and fields: the blueprint schema,
//!   <https://goauthentik.io/blueprints/schema.json>
//!   (`authentik_providers_proxy.proxyprovider`: name, authorization_flow,
//!   invalidation_flow, external_host, mode ∈ proxy|forward_single|forward_domain;
//!   `authentik_core.application`: name, slug, provider;
//!   `authentik_outposts.outpost`: name, type, providers, config).
//!   The invalidation flow is required on providers since 2024.10.
//! - tags: <https://docs.goauthentik.io/customize/blueprints/v1/tags/>:
//!   `!Find [model, [field, value]]` resolves to the found object's primary key
//!   (a flow's is a UUID), `!KeyOf id` to the primary key of the entry with
//!   that `id` (a provider's is an integer) — `authentik/blueprints/v1/common.py`.
//! - the default flows' slugs: `blueprints/default/flow-default-provider-
//!   authorization-implicit-consent.yaml` and `flow-default-provider-
//!   invalidation.yaml` (`default-provider-invalidation-flow`).
//! - the embedded outpost: `authentik/outposts/apps.py` creates it with
//!   `managed = "goauthentik.io/outposts/embedded"` and name
//!   "authentik Embedded Outpost" (the name is reset on every start, so the
//!   entry is identified by `managed`).
//! - discovery: `blueprints_find` in `authentik/blueprints/v1/tasks.py` reads
//!   every `**/*.yaml` under `blueprints_dir` (`/blueprints`), so a file in
//!   `/blueprints/potato/` is found and, without an `instantiate: "false"`
//!   label, applied; the worker re-applies it when the file changes.

use serde::Serialize;
use serde_json::json;

use crate::diag::{Diagnostic, Loc};
use crate::inventory::{HostSource, Inventory};
use crate::plan::HostPlan;
use crate::render::format::Refused;
use crate::render::format::yaml_json::{self, Node, Tag};

/// The blueprint, under the identity host's generated directory.
pub const FILE: &str = "authentik/potato-fleet.yaml";
/// Where the directory holding it is mounted, read-only, in the containers
/// that read blueprints (a subdirectory of authentik's `/blueprints`, so the
/// image's own default/ and system/ blueprints stay visible).
pub const MOUNT: &str = "/blueprints/potato";
/// The containers the directory is mounted into: the server and the worker
/// (which discovers and applies blueprints).
pub const CONSUMERS: [&str; 2] = ["authentik", "authentik-worker"];
/// The embedded outpost, as authentik manages it.
pub const EMBEDDED_OUTPOST_MANAGED: &str = "goauthentik.io/outposts/embedded";
pub const EMBEDDED_OUTPOST_NAME: &str = "authentik Embedded Outpost";
/// The default flows every provider uses.
pub const AUTHORIZATION_FLOW: &str = "default-provider-authorization-implicit-consent";
pub const INVALIDATION_FLOW: &str = "default-provider-invalidation-flow";

/// The fleet's single sign-on, as the identity host serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SsoPlan {
    /// authentik as browsers reach it ("https://authentik.<identity domain>"):
    /// where the embedded outpost sends them to sign in.
    pub authentik_url: String,
    /// Every protected route of the fleet, sorted by name.
    pub routes: Vec<ProtectedRoute>,
}

/// A web UI behind forward-auth: `<service>.<domain>` on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedRoute {
    pub host: String,
    pub service: String,
    /// "<service>.<domain>": the provider's and application's name.
    pub name: String,
    /// "https://<service>.<domain>": the provider's external host.
    pub external_host: String,
}

impl ProtectedRoute {
    /// The application's slug and the base of the entries' ids: the name
    /// with dots as dashes (domains and service names are letters, digits and
    /// dashes, so this fits authentik's slug grammar `[-a-zA-Z0-9_]+`).
    pub fn slug(&self) -> String {
        self.name.replace('.', "-")
    }

    /// The provider entry's `id`, which `!KeyOf` names.
    pub fn provider_id(&self) -> String {
        format!("provider-{}", self.slug())
    }
}

/// The host whose file says `[roles] identity = true` (the first, when several
/// do: `edge::wire` reports the second).
pub fn identity_host(inv: &Inventory) -> Option<&HostSource> {
    inv.hosts.iter().find(|h| {
        h.raw
            .roles
            .as_ref()
            .and_then(|r| r.identity.as_ref())
            .is_some_and(|f| f.value)
    })
}

/// Every protected route of the fleet: each web UI with SSO on a host whose
/// Traefik routes it (it has an `EdgePlan`), sorted by name.
pub fn protected_routes(plans: &[HostPlan]) -> Vec<ProtectedRoute> {
    let mut routes: Vec<ProtectedRoute> = plans
        .iter()
        .filter(|p| p.edge.is_some())
        .filter_map(|p| p.containers.as_ref().map(|c| (p, c)))
        .flat_map(|(p, c)| {
            c.services
                .iter()
                .filter(|s| s.web.is_some() && s.sso)
                .map(move |s| {
                    let name = format!("{}.{}", s.name, c.domain);
                    ProtectedRoute {
                        host: p.name.clone(),
                        service: s.name.clone(),
                        external_host: format!("https://{name}"),
                        name,
                    }
                })
        })
        .collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    routes
}

/// Puts the `SsoPlan` on the identity host, or reports that it cannot serve
/// single sign-on (it does not run authentik and its worker).
pub fn wire(inv: &Inventory, plans: &mut [HostPlan], diags: &mut Vec<Diagnostic>) {
    let Some(src) = identity_host(inv) else {
        return;
    };
    let routes = protected_routes(plans);
    let Some(plan) = plans.iter_mut().find(|p| p.name == src.name) else {
        return;
    };
    let runs = |name: &str| {
        plan.containers
            .as_ref()
            .is_some_and(|c| c.services.iter().any(|s| s.name == name))
    };
    let missing: Vec<&str> = CONSUMERS.iter().copied().filter(|s| !runs(s)).collect();
    if !missing.is_empty() {
        let span = src
            .raw
            .roles
            .as_ref()
            .and_then(|r| r.identity.as_ref())
            .map(|f| f.span.clone())
            .unwrap_or(0..0);
        diags.push(
            Diagnostic::at(
                Loc::new(src.file, span),
                format!(
                    "the identity host {} does not run {}",
                    src.name,
                    missing.join(" and ")
                ),
            )
            .hint(format!(
                "add {} to its [containers] services: the fleet's single sign-on is its authentik",
                missing
                    .iter()
                    .map(|m| format!("\"{m}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
        return;
    }
    let domain = &plan.containers.as_ref().expect("runs authentik").domain;
    plan.sso = Some(SsoPlan {
        authentik_url: format!("https://authentik.{domain}"),
        routes,
    });
}

/// `!Find [authentik_flows.flow, [slug, SLUG]]`.
fn find_flow(slug: &str) -> Result<Node, Refused> {
    Ok(Node::tagged(
        Tag::new("!Find")?,
        Node::Seq(vec![
            Node::str("authentik_flows.flow"),
            Node::Seq(vec![Node::str("slug"), Node::str(slug)]),
        ]),
    ))
}

fn key_of(id: &str) -> Result<Node, Refused> {
    Ok(Node::tagged(Tag::new("!KeyOf")?, Node::str(id)))
}

/// The provider and the application of one route.
fn route_entries(r: &ProtectedRoute) -> Result<[Node; 2], Refused> {
    let provider = Node::map([
        (
            "model",
            Node::str("authentik_providers_proxy.proxyprovider"),
        ),
        ("id", Node::str(r.provider_id())),
        ("identifiers", Node::Plain(json!({ "name": r.name }))),
        (
            "attrs",
            Node::map([
                ("name", Node::str(&r.name)),
                ("mode", Node::str("forward_single")),
                ("external_host", Node::str(&r.external_host)),
                ("authorization_flow", find_flow(AUTHORIZATION_FLOW)?),
                ("invalidation_flow", find_flow(INVALIDATION_FLOW)?),
            ]),
        ),
    ]);
    let application = Node::map([
        ("model", Node::str("authentik_core.application")),
        ("id", Node::str(format!("application-{}", r.slug()))),
        ("identifiers", Node::Plain(json!({ "slug": r.slug() }))),
        (
            "attrs",
            Node::map([
                ("name", Node::str(&r.name)),
                ("slug", Node::str(r.slug())),
                ("provider", key_of(&r.provider_id())?),
                ("meta_launch_url", Node::str(&r.external_host)),
                (
                    "meta_description",
                    Node::str(format!("{} on {}", r.service, r.host)),
                ),
            ]),
        ),
    ]);
    Ok([provider, application])
}

/// The embedded outpost serving exactly the fleet's providers. The list is
/// potato's: providers added by hand are dropped at the next apply.
fn outpost_entry(sso: &SsoPlan) -> Result<Node, Refused> {
    let providers = sso
        .routes
        .iter()
        .map(|r| key_of(&r.provider_id()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Node::map([
        ("model", Node::str("authentik_outposts.outpost")),
        (
            "identifiers",
            Node::Plain(json!({ "managed": EMBEDDED_OUTPOST_MANAGED })),
        ),
        (
            "attrs",
            Node::map([
                ("name", Node::str(EMBEDDED_OUTPOST_NAME)),
                ("type", Node::str("proxy")),
                ("providers", Node::Seq(providers)),
                (
                    "config",
                    Node::Plain(json!({ "authentik_host": sso.authentik_url })),
                ),
            ]),
        ),
    ]))
}

/// The blueprint document of the identity host, or None on every other host.
pub fn render(plan: &HostPlan) -> Option<Result<String, Refused>> {
    let sso = plan.sso.as_ref()?;
    Some(document(plan, sso))
}

fn document(plan: &HostPlan, sso: &SsoPlan) -> Result<String, Refused> {
    let mut entries = Vec::new();
    for r in &sso.routes {
        entries.extend(route_entries(r)?);
    }
    entries.push(outpost_entry(sso)?);
    let doc = Node::map([
        ("version", Node::Plain(json!(1))),
        (
            "metadata",
            Node::Plain(
                json!({ "name": format!("potato: the fleet's single sign-on ({})", plan.name) }),
            ),
        ),
        ("entries", Node::Seq(entries)),
    ]);
    let header = format!(
        "Generated by potato from {} (the fleet's authentik blueprint); do not edit:\nchange the host files and run `potato gen`. authentik reads it from {MOUNT}/.",
        plan.file
    );
    yaml_json::tagged_yaml(&header, &doc)
}
