//! The fleet's single sign-on and who talks to whom:
//! - the authentik blueprint potato renders on the identity host, validated
//!   against authentik's published blueprint schema (after resolving its YAML
//!   tags the way authentik does), and checked against expectations written
//!   by hand from authentik's documentation and from the host files;
//! - its read-only mount into authentik's server and worker;
//! - Grafana's auth proxy trusting Traefik's fixed address alone;
//! - `potato plan`'s fleet roles and links.
//!
//! TEST DOUBLE: authentik cannot run here. `resolve_tags` stands in for its
//! blueprint importer's tag resolution (authentik/blueprints/v1/common.py,
//! <https://docs.goauthentik.io/customize/blueprints/v1/tags/>): `!Find`
//! resolves to the primary key of the object found, `!KeyOf` to that of an
//! entry applied earlier in the same blueprint. The schema describes the
//! resolved values, so each tag becomes a value of its primary key's type: a
//! flow's key is a UUID (`Flow.flow_uuid`, authentik/flows/models.py), a
//! provider's an integer (`Provider` keeps Django's auto id; the schema's
//! `application.provider` and `outpost.providers` are integers).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Repo;
use serde_json::{Value as Json, json};
use serde_norway::Value as Yaml;

/// Web UIs of the built-in catalog behind SSO by default (`web` set, not
/// `public`), read by hand from src/catalog/services.toml.
const WEB_SSO: &[&str] = &[
    "qbittorrent",
    "prowlarr",
    "sonarr",
    "radarr",
    "lidarr",
    "bazarr",
    "jellyseerr",
    "audiobookshelf",
    "syncthing",
    "filebrowser",
    "gitea",
    "miniflux",
    "homepage",
    "prometheus",
    "alertmanager",
    "grafana",
    "uptime-kuma",
    "kopia",
];
/// Web UIs the catalog marks public (never in the blueprint).
const WEB_PUBLIC: &[&str] = &["authentik", "jellyfin", "vaultwarden", "ntfy"];

const BLUEPRINT: &str = "modules/generated/pve-apps/authentik/potato-fleet.yaml";

/// The example fleet with pve-apps as its identity host (the decision of
/// issue 15; added here when the example host file does not say it yet).
fn fleet() -> Repo {
    let r = Repo::examples();
    let apps = r.read("hosts/pve-apps.toml");
    if !apps.contains("identity = true") {
        r.write(
            "hosts/pve-apps.toml",
            &format!("{apps}\n[roles]\nidentity = true\n"),
        );
    }
    r
}

fn read_blueprint(r: &Repo) -> Yaml {
    r.potato(&["gen"]).ok();
    let text = r.read(BLUEPRINT);
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{BLUEPRINT}: {e}\n{text}"))
}

/// The protected routes the host files ask for, derived from the host files
/// themselves: every host running traefik, each service of `WEB_SSO` it runs
/// (unless its override says `public = true` or `sso = false`), named
/// `<service>.<domain>` with the domain `[containers] domain` or
/// `<host>.home.arpa`.
fn expected_routes(r: &Repo) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(r.path().join("hosts")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let host = path.file_stem().unwrap().to_str().unwrap().to_string();
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(c) = doc.get("containers") else {
            continue;
        };
        let services: Vec<&str> = c["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        if !services.contains(&"traefik") {
            continue;
        }
        let domain = c
            .get("domain")
            .and_then(|d| d.as_str())
            .map(str::to_string)
            .unwrap_or(format!("{host}.home.arpa"));
        for s in services {
            let o = c.get(s);
            let flag = |k: &str| o.and_then(|o| o.get(k)).and_then(|v| v.as_bool());
            let sso = match (flag("public"), flag("sso")) {
                (Some(true), _) | (_, Some(false)) => false,
                (Some(false), _) => WEB_SSO.contains(&s) || WEB_PUBLIC.contains(&s),
                _ => WEB_SSO.contains(&s),
            };
            if sso {
                out.insert(format!("{s}.{domain}"), host.clone());
            }
        }
    }
    out
}

fn entries(doc: &Yaml) -> &Vec<Yaml> {
    doc["entries"].as_sequence().expect("entries is a list")
}

fn model(e: &Yaml) -> &str {
    e["model"].as_str().unwrap()
}

fn tagged<'a>(v: &'a Yaml, tag: &str) -> &'a Yaml {
    match v {
        Yaml::Tagged(t) if t.tag == tag => &t.value,
        other => panic!("expected a {tag} node, found {other:?}"),
    }
}

/// `!Find [authentik_flows.flow, [slug, SLUG]]` → SLUG.
fn found_flow(v: &Yaml) -> String {
    let args = tagged(v, "!Find").as_sequence().unwrap();
    assert_eq!(args[0].as_str(), Some("authentik_flows.flow"));
    let cond = args[1].as_sequence().unwrap();
    assert_eq!(cond[0].as_str(), Some("slug"));
    assert_eq!(args.len(), 2, "one condition");
    cond[1].as_str().unwrap().to_string()
}

fn key_of(v: &Yaml) -> String {
    tagged(v, "!KeyOf").as_str().unwrap().to_string()
}

/// TEST DOUBLE of authentik's tag resolution (see the module comment):
/// the document as the schema sees it. Panics where authentik's importer
/// fails: `!KeyOf` naming no entry applied before this one, `!Find` on a
/// model whose key type is not modelled here.
fn resolve_tags(doc: &Yaml) -> Json {
    let mut models: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, e) in entries(doc).iter().enumerate() {
        if let Some(id) = e.get("id").and_then(|v| v.as_str()) {
            models.insert(id.to_string(), (i, model(e).to_string()));
        }
    }
    // The entries (where the tags are) are replaced below.
    let mut out = to_json(doc, &|_, _| Json::Null);
    let entries_out: Vec<Json> = entries(doc)
        .iter()
        .enumerate()
        .map(|(i, e)| {
            to_json(e, &|tag: &str, value: &Yaml| match tag {
                "!Find" => {
                    let args = value.as_sequence().unwrap();
                    match args[0].as_str() {
                        Some("authentik_flows.flow") => {
                            json!("6d7a1c0e-7f1b-4c1a-9b0e-3f2d5a4b8c91")
                        }
                        other => panic!("!Find on {other:?}: key type not modelled"),
                    }
                }
                "!KeyOf" => {
                    let id = value.as_str().unwrap();
                    let (at, m) = models.get(id).unwrap_or_else(|| {
                        panic!("KeyOf: failed to find entry with `id` of `{id}`")
                    });
                    assert!(
                        *at < i,
                        "KeyOf {id}: its entry comes later, so it has no instance yet"
                    );
                    match m.as_str() {
                        "authentik_providers_proxy.proxyprovider" => json!(i as u64 + 1),
                        other => panic!("!KeyOf to {other}: key type not modelled"),
                    }
                }
                other => panic!("unexpected tag {other}"),
            })
        })
        .collect();
    out["entries"] = Json::Array(entries_out);
    out
}

fn to_json(v: &Yaml, tags: &dyn Fn(&str, &Yaml) -> Json) -> Json {
    match v {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => json!(b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap(),
        Yaml::String(s) => json!(s),
        Yaml::Sequence(items) => Json::Array(items.iter().map(|x| to_json(x, tags)).collect()),
        Yaml::Mapping(m) => Json::Object(
            m.iter()
                .map(|(k, x)| (k.as_str().unwrap().to_string(), to_json(x, tags)))
                .collect(),
        ),
        Yaml::Tagged(t) => tags(&t.tag.to_string(), &t.value),
    }
}

/// authentik's published blueprint schema, or None (said why) when the
/// reference directory is absent locally; in CI it must be there.
fn schema() -> Option<jsonschema::Validator> {
    let schema = common::reference_schema("authentik-blueprint.json")?;
    Some(
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("authentik's schema compiles"),
    )
}

#[test]
fn the_blueprint_validates_against_authentiks_schema() {
    let r = fleet();
    let doc = read_blueprint(&r);
    let resolved = resolve_tags(&doc);
    let Some(v) = schema() else { return };
    let errs = common::schema_violations(&v, &resolved);
    assert!(errs.is_empty(), "{errs:#?}\n{resolved:#}");
}

#[test]
fn a_broken_blueprint_fails_the_schema() {
    let r = fleet();
    let resolved = resolve_tags(&read_blueprint(&r));
    let Some(v) = schema() else { return };
    assert!(common::schema_violations(&v, &resolved).is_empty());
    let first = |m: &str, doc: &Json| {
        doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e["model"] == m)
            .unwrap()
    };
    let p = first("authentik_providers_proxy.proxyprovider", &resolved);
    let a = first("authentik_core.application", &resolved);
    let o = first("authentik_outposts.outpost", &resolved);
    // (The schema is draft-07, where `format: uuid` is not a defined format,
    // so a flow's key is checked as a string only.)
    type Break = Box<dyn Fn(&mut Json)>;
    let breaks: [(&str, Break); 6] = [
        (
            "an unknown mode",
            Box::new(move |d| d["entries"][p]["attrs"]["mode"] = json!("forward_everything")),
        ),
        (
            "a flow given as a number",
            Box::new(move |d| d["entries"][p]["attrs"]["authorization_flow"] = json!(7)),
        ),
        (
            "a provider without its external host",
            Box::new(move |d| d["entries"][p]["attrs"]["external_host"] = json!("")),
        ),
        (
            "a provider named by a string",
            Box::new(move |d| d["entries"][a]["attrs"]["provider"] = json!("provider-x")),
        ),
        (
            "an outpost of an unknown type",
            Box::new(move |d| d["entries"][o]["attrs"]["type"] = json!("forward")),
        ),
        (
            "no version",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("version");
            }),
        ),
    ];
    for (what, f) in breaks {
        let mut broken = resolved.clone();
        f(&mut broken);
        assert!(
            !common::schema_violations(&v, &broken).is_empty(),
            "{what} passed the schema"
        );
    }
}

#[test]
#[should_panic(expected = "KeyOf: failed to find entry")]
fn a_key_of_naming_no_entry_fails_resolution() {
    let r = fleet();
    let text = r.read_after_gen();
    let broken = text.replacen("!KeyOf \"provider-", "!KeyOf \"nothing-", 1);
    assert_ne!(broken, text);
    resolve_tags(&serde_norway::from_str(&broken).unwrap());
}

trait AfterGen {
    fn read_after_gen(&self) -> String;
}

impl AfterGen for Repo {
    fn read_after_gen(&self) -> String {
        self.potato(&["gen"]).ok();
        self.read(BLUEPRINT)
    }
}

/// Golden expectations from authentik's docs:
/// - forward auth, single application: "Set External host to the
///   application URL" (<https://docs.goauthentik.io/add-secure-apps/providers/proxy/forward_auth/>),
///   mode `forward_single` (schema enum), with the default authorization
///   flow (implicit consent) and, since 2024.10, the invalidation flow
///   (<https://docs.goauthentik.io/add-secure-apps/providers/proxy/create-proxy-provider/>);
/// - an application per provider, pointing at it (`provider`);
/// - the embedded outpost ("authentik Embedded Outpost",
///   <https://docs.goauthentik.io/outposts/embedded/>) lists the providers it serves.
#[test]
fn one_provider_and_application_per_protected_route_and_the_outpost_lists_exactly_them() {
    let r = fleet();
    let doc = read_blueprint(&r);
    let want = expected_routes(&r);
    // Hand-checked against the example host files: a few routes each host asks for.
    for name in [
        "grafana.n250.home.arpa",
        "sonarr.n250.home.arpa",
        "qbittorrent.lepotato.home.arpa",
        "gitea.lepotato.home.arpa",
        "uptime-kuma.pve-apps.home.arpa",
        "miniflux.pve-apps.home.arpa",
    ] {
        assert!(
            want.contains_key(name),
            "{name} not derived from the host files"
        );
    }
    assert_eq!(doc["version"].as_u64(), Some(1));

    let mut providers: BTreeMap<String, String> = BTreeMap::new(); // id → name
    let mut apps: BTreeMap<String, String> = BTreeMap::new(); // name → provider id
    let mut outposts = Vec::new();
    for e in entries(&doc) {
        let attrs = &e["attrs"];
        match model(e) {
            "authentik_providers_proxy.proxyprovider" => {
                let name = attrs["name"].as_str().unwrap().to_string();
                assert_eq!(e["identifiers"]["name"].as_str(), Some(name.as_str()));
                assert_eq!(attrs["mode"].as_str(), Some("forward_single"), "{name}");
                assert_eq!(
                    attrs["external_host"].as_str(),
                    Some(format!("https://{name}").as_str()),
                    "{name}"
                );
                assert!(
                    attrs.get("internal_host").is_none(),
                    "forward auth has no upstream"
                );
                assert_eq!(
                    found_flow(&attrs["authorization_flow"]),
                    "default-provider-authorization-implicit-consent"
                );
                assert_eq!(
                    found_flow(&attrs["invalidation_flow"]),
                    "default-provider-invalidation-flow"
                );
                let id = e["id"].as_str().unwrap().to_string();
                assert!(
                    providers.insert(id, name).is_none(),
                    "duplicate provider id"
                );
            }
            "authentik_core.application" => {
                let name = attrs["name"].as_str().unwrap().to_string();
                let slug = attrs["slug"].as_str().unwrap();
                assert_eq!(e["identifiers"]["slug"].as_str(), Some(slug));
                assert!(
                    slug.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                    "{slug} is not an authentik slug"
                );
                assert_eq!(
                    attrs["meta_launch_url"].as_str(),
                    Some(format!("https://{name}").as_str())
                );
                assert!(
                    apps.insert(name, key_of(&attrs["provider"])).is_none(),
                    "duplicate application"
                );
            }
            "authentik_outposts.outpost" => outposts.push(e.clone()),
            other => panic!("unexpected model {other}"),
        }
    }

    let provider_names: BTreeSet<&String> = providers.values().collect();
    let wanted: BTreeSet<&String> = want.keys().collect();
    assert_eq!(
        provider_names, wanted,
        "providers: one per protected route, none extra"
    );
    let app_names: BTreeSet<&String> = apps.keys().collect();
    assert_eq!(app_names, wanted, "applications: one per protected route");
    for (name, pid) in &apps {
        assert_eq!(
            providers.get(pid),
            Some(name),
            "{name}'s application uses another provider"
        );
    }
    for public in WEB_PUBLIC {
        assert!(
            !providers
                .values()
                .any(|n| n.starts_with(&format!("{public}."))),
            "public {public} is behind SSO"
        );
    }

    assert_eq!(outposts.len(), 1, "one outpost entry");
    let o = &outposts[0];
    assert_eq!(
        o["identifiers"]["managed"].as_str(),
        Some("goauthentik.io/outposts/embedded")
    );
    assert_eq!(
        o["attrs"]["name"].as_str(),
        Some("authentik Embedded Outpost")
    );
    assert_eq!(o["attrs"]["type"].as_str(), Some("proxy"));
    assert_eq!(
        o["attrs"]["config"]["authentik_host"].as_str(),
        Some("https://authentik.pve-apps.home.arpa")
    );
    let listed: Vec<String> = o["attrs"]["providers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(key_of)
        .collect();
    let listed_set: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(listed.len(), listed_set.len(), "a provider listed twice");
    let ids: BTreeSet<&String> = providers.keys().collect();
    assert_eq!(listed_set, ids, "the outpost lists exactly the providers");
}

#[test]
fn no_identity_host_no_blueprint_and_an_identity_host_without_authentik_is_an_error() {
    // The identity host must run authentik (the edge's rule, checked first).
    let r = fleet();
    r.edit(
        "hosts/pve-apps.toml",
        "[containers]\nservices = [\"traefik\", \"authentik\", \"authentik-worker\", ",
        "[containers]\nservices = [\"traefik\", ",
    );
    let at = r.at_in("hosts/pve-apps.toml", "identity = true", "true");
    r.potato(&["check"])
        .invalid_at(&at, "the identity host pve-apps does not run authentik");
    // (Without authentik-worker, authentik's own `depends` speaks first.)
}

#[test]
fn the_blueprint_follows_the_identity_role() {
    let r = fleet();
    r.potato(&["gen"]).ok();
    assert!(r.path().join(BLUEPRINT).is_file());
    // The role moves to n250 (which runs authentik and its worker): the
    // blueprint moves with it and pve-apps' copy is removed, with its import.
    let apps = r.read("hosts/pve-apps.toml");
    r.write(
        "hosts/pve-apps.toml",
        &apps.replacen("identity = true", "identity = false", 1),
    );
    // One authentik per fleet: pve-apps gives up its own; n250 gains
    // authentik, its worker and their postgres and redis (n250's secrets
    // for them are in secrets/n250/).
    r.edit(
        "hosts/pve-apps.toml",
        "\"authentik\", \"authentik-worker\", ",
        "",
    );
    let mut n250 = r.read("hosts/n250.toml");
    if !n250.contains("\"authentik\"") {
        n250 = n250.replacen(
            "services = [\"traefik\", ",
            "services = [\"traefik\", \"authentik\", \"authentik-worker\", \"postgres\", \"redis\", ",
            1,
        );
    }
    r.write(
        "hosts/n250.toml",
        &n250.replacen("[roles]\n", "[roles]\nidentity = true\n", 1),
    );
    r.potato(&["gen"]).ok();
    assert!(
        !r.path().join(BLUEPRINT).exists(),
        "the old blueprint stays"
    );
    assert!(
        !r.read("modules/generated/pve-apps/default.nix")
            .contains("sso.nix")
    );
    let moved = r.read("modules/generated/n250/authentik/potato-fleet.yaml");
    assert!(moved.contains("\"authentik_host\": \"https://authentik.n250.home.arpa\""));
}

#[test]
fn the_blueprint_directory_is_mounted_read_only_into_authentiks_server_and_worker() {
    let r = fleet();
    r.potato(&["gen"]).ok();
    let apps = r.read("modules/generated/pve-apps/default.nix");
    assert!(
        apps.contains("(import ../../sso.nix { dir = ./authentik; })"),
        "{apps}"
    );
    let n250 = r.read("modules/generated/n250/default.nix");
    assert!(
        !n250.contains("sso.nix"),
        "only the identity host mounts it"
    );
    if !common::have_tool("nix-instantiate") {
        return;
    }
    // Evaluate modules/sso.nix as default.nix calls it (read-only: the
    // directory's store path is computed, not copied).
    let expr = format!(
        "builtins.mapAttrs (n: c: c.volumes) (import {}/modules/sso.nix {{ dir = {}/modules/generated/pve-apps/authentik; }} {{}}).virtualisation.oci-containers.containers",
        r.path().display(),
        r.path().display()
    );
    let out = std::process::Command::new("nix-instantiate")
        .args([
            "--eval",
            "--strict",
            "--json",
            "--readonly-mode",
            "-E",
            &expr,
        ])
        .env("NIX_CONF_DIR", common::source_root().join("tests/nix"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Json = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeSet<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["authentik".to_string(), "authentik-worker".to_string()]
            .iter()
            .collect()
    );
    for (name, vols) in v.as_object().unwrap() {
        let vols = vols.as_array().unwrap();
        assert_eq!(vols.len(), 1, "{name}");
        let vol = vols[0].as_str().unwrap();
        let (host, rest) = vol.split_once(':').unwrap();
        assert!(
            host.starts_with("/nix/store/") && host.ends_with("-authentik"),
            "{vol}"
        );
        // authentik reads every **/*.yaml under /blueprints (blueprints_find).
        assert_eq!(rest, "/blueprints/potato:ro", "{name}");
    }
}

/// n250's proxy network is the default 10.89.1.0/24 (n250.toml sets no
/// [containers.networks]); Traefik's fixed address is its last host address.
const N250_TRAEFIK: &str = "10.89.1.254";

fn containers_json(r: &Repo, host: &str) -> Json {
    serde_json::from_str(&r.read(&format!("modules/generated/{host}/containers.json"))).unwrap()
}

#[test]
fn grafana_trusts_the_user_header_from_traefiks_fixed_address_only() {
    let r = fleet();
    r.potato(&["gen"]).ok();
    let spec = containers_json(&r, "n250");
    let env = &spec["containers"]["grafana"]["environment"];
    assert_eq!(env["GF_AUTH_PROXY_ENABLED"], "true");
    assert_eq!(env["GF_AUTH_PROXY_HEADER_NAME"], "X-authentik-username");
    assert_eq!(env["GF_AUTH_PROXY_AUTO_SIGN_UP"], "true");
    // Exactly Traefik's address: no subnet, no second entry.
    assert_eq!(env["GF_AUTH_PROXY_WHITELIST"], N250_TRAEFIK);
    // Traefik has that address on the proxy network, and the engine hands
    // out only the lower half of it to everyone else.
    let opts: Vec<&str> = spec["containers"]["traefik"]["extraOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert!(
        opts.contains(&format!("--network=potato-proxy:ip={N250_TRAEFIK}").as_str()),
        "{opts:?}"
    );
    let net = &spec["networks"]["potato-proxy"];
    assert_eq!(net["subnet"], "10.89.1.0/24");
    assert_eq!(net["ipRange"], "10.89.1.0/25");
    // Nobody else asks for a fixed address.
    for (name, c) in spec["containers"].as_object().unwrap() {
        if name == "traefik" {
            continue;
        }
        for o in c["extraOptions"].as_array().unwrap() {
            let o = o.as_str().unwrap();
            assert!(
                !o.contains(":ip=") && !o.starts_with("--ip="),
                "{name}: {o}"
            );
        }
    }
}

#[test]
fn grafana_without_forward_auth_turns_the_auth_proxy_off() {
    let r = fleet();
    r.edit(
        "hosts/n250.toml",
        "[containers.jellyfin]",
        "[containers.grafana]\npublic = true\n\n[containers.jellyfin]",
    );
    r.potato(&["gen"]).ok();
    let env = &containers_json(&r, "n250")["containers"]["grafana"]["environment"];
    assert_eq!(env["GF_AUTH_PROXY_ENABLED"], "false");
    assert!(env.get("GF_AUTH_PROXY_WHITELIST").is_none(), "{env}");
    assert!(env.get("GF_AUTH_PROXY_HEADER_NAME").is_none(), "{env}");
}

fn plan_json(r: &Repo, host: &str) -> Json {
    let run = r.potato(&["plan", host, "--json"]);
    run.ok();
    serde_json::from_str::<Json>(&run.stdout).unwrap()["fleet_wiring"].clone()
}

fn links(v: &Json, list: &str) -> BTreeSet<(String, String)> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {v}"))
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["peer"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Expectations read from the example host files: pve-apps is the identity
/// host, n250 the monitoring hub (`[roles] monitoring = true`); every host
/// names pve-gateway as its WireGuard peer, and pve-gateway (the listener)
/// has the three others; lepotato (10.99.0.11) runs traefik, so the hub
/// scrapes its node-exporter and Traefik's metrics; its SSO routes are its
/// web UIs that are not public. n250 also serves the fleet's binary cache
/// (`[fleet.cache]`), which every other host substitutes from.
#[test]
fn plan_shows_who_serves_what_and_each_hosts_links() {
    let r = fleet();
    let lepotato = plan_json(&r, "lepotato");
    assert_eq!(lepotato["identity"], "pve-apps");
    assert_eq!(
        lepotato["authentik_url"],
        "https://authentik.pve-apps.home.arpa"
    );
    assert_eq!(lepotato["protected_routes"], expected_routes(&r).len());
    assert_eq!(lepotato["monitoring"], "n250");
    assert_eq!(lepotato["logs"], "n250");
    assert_eq!(
        links(&lepotato, "sends"),
        set(&[
            ("forward-auth", "pve-apps"),
            ("metrics", "n250"),
            ("logs", "n250"),
            ("cache", "n250"),
        ])
    );
    assert_eq!(links(&lepotato, "receives"), set(&[]));
    assert_eq!(
        links(&lepotato, "wireguard_peers"),
        set(&[("wireguard", "pve-gateway")])
    );
    let detail = |v: &Json, kind: &str| -> String {
        v["sends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["kind"] == kind)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let fa = detail(&lepotato, "forward-auth");
    let routes: Vec<String> = expected_routes(&r)
        .into_iter()
        .filter(|(_, h)| h == "lepotato")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        fa,
        format!(
            "{} via https://authentik.pve-apps.home.arpa",
            routes.join(", ")
        )
    );
    assert!(fa.contains("qbittorrent.lepotato.home.arpa"), "{fa}");
    assert_eq!(
        detail(&lepotato, "metrics"),
        "node 10.99.0.11:9100, traefik 10.99.0.11:8082"
    );
    assert_eq!(
        detail(&lepotato, "logs"),
        "http://10.99.0.10:3100/loki/api/v1/push"
    );

    let apps = plan_json(&r, "pve-apps");
    assert_eq!(
        links(&apps, "receives"),
        set(&[("forward-auth", "lepotato"), ("forward-auth", "n250")])
    );
    assert_eq!(
        links(&apps, "sends"),
        set(&[("metrics", "n250"), ("logs", "n250"), ("cache", "n250")])
    );

    let hub = plan_json(&r, "n250");
    assert_eq!(
        links(&hub, "receives"),
        set(&[
            ("metrics", "lepotato"),
            ("metrics", "pve-apps"),
            ("metrics", "pve-gateway"),
            ("logs", "lepotato"),
            ("logs", "pve-apps"),
            ("logs", "pve-gateway"),
            ("cache", "lepotato"),
            ("cache", "pve-apps"),
            ("cache", "pve-gateway"),
        ])
    );
    assert_eq!(links(&hub, "sends"), set(&[("forward-auth", "pve-apps")]));

    let gw = plan_json(&r, "pve-gateway");
    assert_eq!(
        links(&gw, "wireguard_peers"),
        set(&[
            ("wireguard", "lepotato"),
            ("wireguard", "n250"),
            ("wireguard", "pve-apps"),
        ])
    );
    assert_eq!(
        links(&gw, "sends"),
        set(&[("metrics", "n250"), ("logs", "n250"), ("cache", "n250")])
    );
    assert_eq!(gw["cache"], "n250");
    assert_eq!(gw["substituter"], "http://10.99.0.10:5080?priority=30");
    assert_eq!(
        hub["substituter"],
        Json::Null,
        "the cache host uses no cache of its own"
    );

    // The human view says the same.
    let run = r.potato(&["plan", "pve-apps"]);
    run.ok();
    let out = &run.stdout;
    for line in [
        "identity    pve-apps (this host): authentik at https://authentik.pve-apps.home.arpa,",
        "monitoring  n250",
        "logs        n250",
        "cache       n250",
    ] {
        assert!(out.contains(line), "{line:?} missing in:\n{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("receives from lepotato")
                && l.contains("forward-auth")),
        "{out}"
    );
}

/// authentik reads blueprints with PyYAML (`yaml.load(text, BlueprintLoader)`,
/// a SafeLoader subclass; authentik/blueprints/v1/common.py), whose tag
/// constructors take `!KeyOf` from a ScalarNode and `!Find` from a
/// SequenceNode of a model name and [key, value] sequences. The real PyYAML,
/// with constructors that insist on those node kinds, reads the same document
/// serde_norway reads.
#[test]
fn pyyaml_reads_the_tags_as_authentiks_loader_expects() {
    if !common::have_tool("python3") {
        return;
    }
    let r = fleet();
    let doc = read_blueprint(&r);
    let script = r#"
import json, sys, yaml
class Loader(yaml.SafeLoader):
    pass
def key_of(loader, node):
    assert isinstance(node, yaml.ScalarNode), node
    return ["!KeyOf", node.value]
def find(loader, node):
    assert isinstance(node, yaml.SequenceNode), node
    assert all(isinstance(c, yaml.SequenceNode) for c in node.value[1:]), node
    return ["!Find", [loader.construct_object(node.value[0])] + [[loader.construct_object(x) for x in c.value] for c in node.value[1:]]]
Loader.add_constructor("!KeyOf", key_of)
Loader.add_constructor("!Find", find)
print(json.dumps(yaml.load(open(sys.argv[1], encoding="utf-8").read(), Loader)))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(r.path().join(BLUEPRINT))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Json = serde_json::from_slice(&out.stdout).unwrap();
    let ours = to_json(&doc, &|tag, v| {
        json!([tag, to_json(v, &|_, _| unreachable!())])
    });
    assert_eq!(py, ours);
}
