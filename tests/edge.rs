//! The edge (issue 15): Traefik's generated static and file-provider
//! configuration for every example Traefik host, validated against upstream's
//! published JSON Schemas (../shared/reference/schemas, SchemaStore's
//! traefik-v3.json and traefik-v3-file-provider.json), with golden
//! expectations written by hand from the Traefik and authentik documentation;
//! and every validation error of `[proxy]`, `[roles] identity`, routes and
//! middlewares at its file:line:col.
//!
//! Traefik and authentik cannot run here: the schemas and the documented
//! setup are their contract.
//! - authentik's Traefik forward-auth setup (address, trustForwardHeader, the
//!   response headers, the outpost router at priority 15 over the app's 10):
//!   https://docs.goauthentik.io/add-secure-apps/providers/proxy/server_traefik/
//! - Traefik v3: forwardAuth (address, tls.ca)
//!   https://doc.traefik.io/traefik/middlewares/http/forwardauth/, routers
//!   (rule, entryPoints, middlewares, service, tls.certResolver)
//!   https://doc.traefik.io/traefik/routing/routers/, services and servers
//!   transports (rootCAs, passHostHeader)
//!   https://doc.traefik.io/traefik/routing/services/, entry points
//!   (redirections, forwardedHeaders.trustedIPs)
//!   https://doc.traefik.io/traefik/routing/entrypoints/, the file provider
//!   https://doc.traefik.io/traefik/providers/file/, access logs (Common Log
//!   Format) https://doc.traefik.io/traefik/observability/access-logs/, ACME
//!   https://doc.traefik.io/traefik/https/acme/.

mod common;

use std::process::{Command, Stdio};

use common::{Repo, source_root};
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

/// The example hosts that run Traefik (hosts/*.toml, services lists).
const TRAEFIK_HOSTS: [&str; 3] = ["lepotato", "n250", "pve-apps"];

/// A generated YAML file read back by a YAML parser.
fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

fn committed(host: &str, file: &str) -> Value {
    yaml(
        &std::fs::read_to_string(
            source_root()
                .join("modules/generated")
                .join(host)
                .join(file),
        )
        .unwrap_or_else(|e| panic!("{host}/{file}: {e}")),
    )
}

fn in_repo(r: &Repo, host: &str, file: &str) -> Value {
    yaml(&r.read(&format!("modules/generated/{host}/{file}")))
}

/// Schema errors of `doc`, as text.
fn violations(schema: &Value, doc: &Value) -> Vec<String> {
    let v = jsonschema::validator_for(schema).expect("the upstream schema compiles");
    common::schema_violations(&v, doc)
}

/// Inserts `text` before the host file's first `[[health]]` table.
fn insert_before_health(r: &Repo, file: &str, text: &str) {
    let t = r.read(file);
    let at = t.find("[[health]]").expect("a [[health]] table");
    r.write(file, &format!("{}{text}{}", &t[..at], &t[at..]));
}

/// Appends `text` to a host file.
fn append(r: &Repo, file: &str, text: &str) {
    let mut t = r.read(file);
    t.push_str(text);
    r.write(file, &t);
}

/// Every reference in a dynamic configuration that names nothing, checked
/// here independently of potato's own check: router → service (or
/// `@internal`), router → middleware, service → serversTransport, router →
/// certificate resolver of the static configuration.
fn dangling(stat: &Value, dynamic: &Value) -> Vec<String> {
    let http = &dynamic["http"];
    let mut out = Vec::new();
    for (name, r) in http["routers"].as_object().unwrap() {
        let s = r["service"].as_str().unwrap();
        if !s.ends_with("@internal") && http["services"].get(s).is_none() {
            out.push(format!("{name} → service {s}"));
        }
        for m in r["middlewares"].as_array().into_iter().flatten() {
            if http["middlewares"].get(m.as_str().unwrap()).is_none() {
                out.push(format!("{name} → middleware {m}"));
            }
        }
        if let Some(res) = r["tls"]["certResolver"].as_str()
            && stat["certificatesResolvers"].get(res).is_none()
        {
            out.push(format!("{name} → resolver {res}"));
        }
    }
    for (name, s) in http["services"].as_object().unwrap() {
        if let Some(t) = s["loadBalancer"]["serversTransport"].as_str()
            && http["serversTransports"].get(t).is_none()
        {
            out.push(format!("{name} → transport {t}"));
        }
    }
    out
}

/// The router whose rule is exactly `rule`.
fn router_with_rule<'a>(dynamic: &'a Value, rule: &str) -> &'a Value {
    dynamic["http"]["routers"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no router with rule {rule}:\n{dynamic:#}"))
}

/// The server URL of the service a router goes to.
fn service_url<'a>(dynamic: &'a Value, router: &Value) -> &'a str {
    let s = router["service"].as_str().unwrap();
    dynamic["http"]["services"][s]["loadBalancer"]["servers"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("service {s} has no server"))
}

/// authentik's documented response headers (server_traefik page, standalone
/// Traefik), copied by hand.
const AUTHENTIK_HEADERS: [&str; 12] = [
    "X-authentik-username",
    "X-authentik-groups",
    "X-authentik-entitlements",
    "X-authentik-email",
    "X-authentik-name",
    "X-authentik-uid",
    "X-authentik-jwt",
    "X-authentik-meta-jwks",
    "X-authentik-meta-outpost",
    "X-authentik-meta-provider",
    "X-authentik-meta-app",
    "X-authentik-meta-version",
];

// ------------------------------------------------------- schema validation

#[test]
fn every_traefik_hosts_configs_validate_against_the_upstream_schemas() {
    let (Some(stat_schema), Some(dyn_schema)) = (
        common::reference_schema("traefik-v3.json"),
        common::reference_schema("traefik-v3-file-provider.json"),
    ) else {
        return;
    };
    for host in TRAEFIK_HOSTS {
        let stat = committed(host, "traefik/traefik.yml");
        let dynamic = committed(host, "traefik/dynamic.yml");
        let e = violations(&stat_schema, &stat);
        assert!(e.is_empty(), "{host} traefik.yml: {e:#?}");
        let e = violations(&dyn_schema, &dynamic);
        assert!(e.is_empty(), "{host} dynamic.yml: {e:#?}");
        assert!(
            dangling(&stat, &dynamic).is_empty(),
            "{host}: {:?}",
            dangling(&stat, &dynamic)
        );
    }
    // The host without Traefik gets no Traefik files.
    assert!(
        !source_root()
            .join("modules/generated/pve-gateway/traefik")
            .exists()
    );
}

/// The validator is wired: a broken document fails, for each schema.
#[test]
fn a_broken_document_fails_schema_validation() {
    let (Some(stat_schema), Some(dyn_schema)) = (
        common::reference_schema("traefik-v3.json"),
        common::reference_schema("traefik-v3-file-provider.json"),
    ) else {
        return;
    };
    let mut stat = committed("n250", "traefik/traefik.yml");
    stat["entryPoints"]["web"]["address"] = json!(80); // a string in Traefik
    assert!(!violations(&stat_schema, &stat).is_empty());
    let mut dynamic = committed("n250", "traefik/dynamic.yml");
    dynamic["http"]["middlewares"]["authentik"]["forwardAuth"]["trustForwardHeaders"] = json!(true); // misspelt
    assert!(!violations(&dyn_schema, &dynamic).is_empty());
    let mut dynamic = committed("n250", "traefik/dynamic.yml");
    dynamic["http"]["services"]["grafana"]["loadBalancer"]["servers"] = json!([]); // minItems 1
    assert!(!violations(&dyn_schema, &dynamic).is_empty());
}

// ------------------------------------------------------- golden expectations

#[test]
fn static_config_has_the_entry_points_log_metrics_and_file_provider_only() {
    for host in TRAEFIK_HOSTS {
        let s = committed(host, "traefik/traefik.yml");
        let ep = &s["entryPoints"];
        assert_eq!(ep["web"]["address"], ":80", "{host}");
        assert_eq!(
            ep["web"]["http"]["redirections"]["entryPoint"]["to"],
            "websecure"
        );
        assert_eq!(
            ep["web"]["http"]["redirections"]["entryPoint"]["scheme"],
            "https"
        );
        assert_eq!(ep["websecure"]["address"], ":443");
        // monitoring scrapes Traefik on 8082 (the fleet decision).
        assert_eq!(ep["metrics"]["address"], ":8082");
        assert_eq!(s["metrics"]["prometheus"]["entryPoint"], "metrics");
        assert!(
            s.get("ping").is_some(),
            "traefik healthcheck --ping needs ping"
        );
        assert_eq!(s["accessLog"]["filePath"], "/var/log/traefik/access.log");
        assert_eq!(s["accessLog"]["format"], "common");
        // Routes come from the file provider only: no docker provider.
        let providers: Vec<&String> = s["providers"].as_object().unwrap().keys().collect();
        assert_eq!(providers, ["file"], "{host}");
        assert_eq!(
            s["providers"]["file"]["filename"],
            "/etc/traefik/dynamic.yml"
        );
        // home.arpa: the fleet CA, no ACME resolver.
        assert!(s.get("certificatesResolvers").is_none(), "{host}");
    }
    // The identity host keeps the X-Forwarded-* headers of the other hosts'
    // Traefiks (their WireGuard addresses: hosts/n250.toml 10.99.0.10,
    // hosts/lepotato.toml 10.99.0.11), and no one else's.
    let apps = committed("pve-apps", "traefik/traefik.yml");
    assert_eq!(
        common::strs(&apps["entryPoints"]["websecure"]["forwardedHeaders"]["trustedIPs"]),
        ["10.99.0.10", "10.99.0.11"]
    );
    let lp = committed("lepotato", "traefik/traefik.yml");
    assert!(
        lp["entryPoints"]["websecure"]
            .get("forwardedHeaders")
            .is_none()
    );
}

#[test]
fn forward_auth_address_and_headers_follow_authentiks_documentation() {
    // On the identity host: authentik by container name on the proxy network.
    let apps = committed("pve-apps", "traefik/dynamic.yml");
    let fa = &apps["http"]["middlewares"]["authentik"]["forwardAuth"];
    assert_eq!(
        fa["address"],
        "http://authentik:9000/outpost.goauthentik.io/auth/traefik"
    );
    assert_eq!(fa["trustForwardHeader"], true);
    assert_eq!(common::strs(&fa["authResponseHeaders"]), AUTHENTIK_HEADERS);
    assert!(fa.get("tls").is_none(), "plain http on the proxy network");
    // Elsewhere: https://authentik.<pve-apps's domain>, its certificate
    // checked against the fleet CA (src/pki's path in the container).
    for host in ["n250", "lepotato"] {
        let d = committed(host, "traefik/dynamic.yml");
        let fa = &d["http"]["middlewares"]["authentik"]["forwardAuth"];
        assert_eq!(
            fa["address"],
            "https://authentik.pve-apps.home.arpa/outpost.goauthentik.io/auth/traefik",
            "{host}"
        );
        assert_eq!(fa["trustForwardHeader"], true);
        assert_eq!(common::strs(&fa["authResponseHeaders"]), AUTHENTIK_HEADERS);
        assert_eq!(fa["tls"]["ca"], "/certs/fleet-ca.crt");
        assert!(fa["tls"].get("insecureSkipVerify").is_none());
    }
}

#[test]
fn each_protected_host_name_routes_the_outpost_path_to_authentik() {
    // lepotato's web UIs are behind SSO (catalog: not public).
    let lp = committed("lepotato", "traefik/dynamic.yml");
    for app in ["qbittorrent", "kopia", "gitea"] {
        let host = format!("{app}.lepotato.home.arpa");
        let app_router = router_with_rule(&lp, &format!("Host(`{host}`)"));
        let outpost = router_with_rule(
            &lp,
            &format!("Host(`{host}`) && PathPrefix(`/outpost.goauthentik.io/`)"),
        );
        // authentik's documented priorities: the outpost router wins.
        assert_eq!(app_router["priority"], 10);
        assert_eq!(outpost["priority"], 15);
        assert_eq!(common::strs(&outpost["entryPoints"]), ["websecure"]);
        assert!(
            outpost.get("middlewares").is_none(),
            "the outpost path is not behind SSO"
        );
        assert_eq!(
            service_url(&lp, outpost),
            "https://authentik.pve-apps.home.arpa/outpost.goauthentik.io"
        );
        let svc = outpost["service"].as_str().unwrap();
        let lb = &lp["http"]["services"][svc]["loadBalancer"];
        // pve-apps's Traefik routes by Host: authentik's name goes out.
        assert_eq!(lb["passHostHeader"], false);
        let transport = lb["serversTransport"].as_str().unwrap();
        assert_eq!(
            common::strs(&lp["http"]["serversTransports"][transport]["rootCAs"]),
            ["/certs/fleet-ca.crt"]
        );
    }
    // On the identity host, to authentik on the proxy network.
    let apps = committed("pve-apps", "traefik/dynamic.yml");
    let outpost = router_with_rule(
        &apps,
        "Host(`gitea.pve-apps.home.arpa`) && PathPrefix(`/outpost.goauthentik.io/`)",
    );
    assert_eq!(
        service_url(&apps, outpost),
        "http://authentik:9000/outpost.goauthentik.io"
    );
    // A public UI has no outpost router (n250's jellyfin is public in the catalog).
    let n = committed("n250", "traefik/dynamic.yml");
    assert!(
        n["http"]["routers"]
            .as_object()
            .unwrap()
            .values()
            .all(|r| r["rule"]
                != "Host(`jellyfin.n250.home.arpa`) && PathPrefix(`/outpost.goauthentik.io/`)")
    );
}

#[test]
fn middleware_chains_and_service_urls_on_the_proxy_network() {
    let n = committed("n250", "traefik/dynamic.yml");
    // Behind SSO: grafana; public: jellyfin (no middleware at all).
    let grafana = router_with_rule(&n, "Host(`grafana.n250.home.arpa`)");
    assert_eq!(common::strs(&grafana["middlewares"]), ["authentik"]);
    assert_eq!(common::strs(&grafana["entryPoints"]), ["websecure"]);
    assert_eq!(service_url(&n, grafana), "http://grafana:3000");
    let jelly = router_with_rule(&n, "Host(`jellyfin.n250.home.arpa`)");
    assert!(jelly.get("middlewares").is_none());
    assert_eq!(service_url(&n, jelly), "http://jellyfin:8096");
    // Inside gluetun's namespace: reached through gluetun's name.
    let qbt = router_with_rule(&n, "Host(`qbittorrent.n250.home.arpa`)");
    assert_eq!(service_url(&n, qbt), "http://gluetun:8080");
    // home.arpa: the fleet CA's certificate is the default one (src/pki paths).
    assert_eq!(jelly["tls"], json!({}));
    assert_eq!(
        n["tls"]["stores"]["default"]["defaultCertificate"],
        json!({ "certFile": "/certs/host.crt", "keyFile": "/certs/host.key" })
    );
    // A host-file middleware comes before SSO, in the order written.
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.middlewares.lan-only]\nip_allow = [\"lan\", \"10.99.0.0/24\"]\n\n\
         [proxy.middlewares.slow]\nrate_limit = { average = 20, burst = 40 }\n\n\
         [containers.gitea]\nmiddlewares = [\"slow\", \"lan-only\"]\n\n",
    );
    r.potato(&["gen"]).ok();
    let d = in_repo(&r, "pve-apps", "traefik/dynamic.yml");
    let gitea = router_with_rule(&d, "Host(`gitea.pve-apps.home.arpa`)");
    assert_eq!(
        common::strs(&gitea["middlewares"]),
        ["slow", "lan-only", "authentik"]
    );
    // hosts/pve-apps.toml: lan = ["192.168.100.0/24", "192.168.178.0/24"].
    assert_eq!(
        common::strs(&d["http"]["middlewares"]["lan-only"]["ipAllowList"]["sourceRange"]),
        ["192.168.100.0/24", "192.168.178.0/24", "10.99.0.0/24"]
    );
    assert_eq!(
        d["http"]["middlewares"]["slow"]["rateLimit"],
        json!({ "average": 20, "burst": 40 })
    );
    let stat = in_repo(&r, "pve-apps", "traefik/traefik.yml");
    assert!(dangling(&stat, &d).is_empty());
    if let Some(s) = common::reference_schema("traefik-v3-file-provider.json") {
        assert!(violations(&s, &d).is_empty(), "{:?}", violations(&s, &d));
    }
}

#[test]
fn an_extra_route_goes_to_a_container_on_the_proxy_network() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.routes.status]\nservice = \"uptime-kuma\"\npublic = true\n\n",
    );
    r.potato(&["gen"]).ok();
    let d = in_repo(&r, "pve-apps", "traefik/dynamic.yml");
    let route = router_with_rule(&d, "Host(`status.pve-apps.home.arpa`)");
    assert_eq!(service_url(&d, route), "http://uptime-kuma:3001");
    assert!(route.get("middlewares").is_none(), "public");
}

#[test]
fn acme_http_and_dns_challenges() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/lepotato.toml",
        "[proxy]\ntls = \"acme\"\nemail = \"admin@example.net\"\n\n",
    );
    r.potato(&["gen"]).ok();
    let s = in_repo(&r, "lepotato", "traefik/traefik.yml");
    let acme = &s["certificatesResolvers"]["acme"]["acme"];
    assert_eq!(acme["email"], "admin@example.net");
    assert_eq!(acme["httpChallenge"]["entryPoint"], "web");
    assert!(acme["storage"].as_str().unwrap().starts_with("/certs/"));
    let d = in_repo(&r, "lepotato", "traefik/dynamic.yml");
    for rt in d["http"]["routers"].as_object().unwrap().values() {
        assert_eq!(rt["tls"]["certResolver"], "acme");
    }
    assert!(d.get("tls").is_none(), "no fleet-CA certificate with ACME");
    if let (Some(ss), Some(ds)) = (
        common::reference_schema("traefik-v3.json"),
        common::reference_schema("traefik-v3-file-provider.json"),
    ) {
        assert!(violations(&ss, &s).is_empty());
        assert!(violations(&ds, &d).is_empty());
    }
    // DNS-01: the provider's credential is a secret in Traefik's env file.
    set_secret(&r, "cf-token", "lepotato", "tok-123");
    r.edit(
        "hosts/lepotato.toml",
        "email = \"admin@example.net\"\n",
        "email = \"admin@example.net\"\nchallenge = \"dns\"\ndns_provider = \"cloudflare\"\n\
         dns_env = { CF_DNS_API_TOKEN = \"secret:cf-token\" }\n",
    );
    r.potato(&["gen"]).ok();
    let s = in_repo(&r, "lepotato", "traefik/traefik.yml");
    assert_eq!(
        s["certificatesResolvers"]["acme"]["acme"]["dnsChallenge"]["provider"],
        "cloudflare"
    );
    let spec: Value =
        serde_json::from_str(&r.read("modules/generated/lepotato/containers.json")).unwrap();
    assert!(
        spec["containers"]["traefik"]["environment"]
            .get("CF_DNS_API_TOKEN")
            .is_none(),
        "never a literal"
    );
    assert_eq!(
        common::strs(&spec["containers"]["traefik"]["environmentFiles"]),
        ["/run/potato-secrets/env/traefik.env"]
    );
    let sh = r.read("modules/generated/lepotato/secrets.sh");
    assert!(
        sh.contains("env_begin 'traefik'\nenv_var 'CF_DNS_API_TOKEN' secret 'cf-token'\n"),
        "{sh}"
    );
}

fn set_secret(r: &Repo, name: &str, host: &str, value: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_potato"))
        .args(["secrets", "set", name, "--host", host])
        .current_dir(r.path())
        .env("POTATO_AGE_IDENTITY", common::admin_identity())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), value.as_bytes()).unwrap();
    drop(child.stdin.take());
    common::Run::from(child.wait_with_output().unwrap()).ok();
}

#[test]
fn traefik_gets_the_files_read_only_and_no_engine_socket() {
    let nix =
        std::fs::read_to_string(source_root().join("modules/generated/n250/default.nix")).unwrap();
    assert!(
        nix.contains("(import ../../edge.nix { dir = ./traefik; })"),
        "{nix}"
    );
    let module = std::fs::read_to_string(source_root().join("modules/edge.nix")).unwrap();
    assert!(module.contains("containers.traefik.volumes = [ \"${dir}:/etc/traefik:ro\" ];"));
    if common::have_tool("nix-instantiate") {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(source_root().join("modules/edge.nix"))
            .env("NIX_CONF_DIR", source_root().join("tests/nix"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = Repo::examples().potato(&["catalog", "--json"]);
    run.ok();
    let cat: Value = serde_json::from_str(&run.stdout).unwrap();
    let traefik = cat
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "traefik")
        .unwrap();
    assert!(traefik["socket"].is_null(), "{}", traefik["socket"]);
}

// ------------------------------------------------------- validation errors

#[test]
fn two_identity_hosts() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "monitoring = true",
        "monitoring = true\nidentity = true",
    );
    // Host files are read in name order: n250's claim comes first.
    let loc = r.at_in("hosts/pve-apps.toml", "identity = true", "true");
    r.potato(&["check"]).invalid_at(
        &loc,
        "a second identity host: n250 already is the fleet's identity host",
    );
}

#[test]
fn the_identity_host_must_run_authentik_and_traefik() {
    let r = Repo::examples();
    r.edit("hosts/pve-apps.toml", "[roles]\nidentity = true", "");
    r.edit(
        "hosts/pve-gateway.toml",
        "tags = [\"edge\"]",
        "tags = [\"edge\"]\n\n[roles]\nidentity = true",
    );
    let loc = r.at_in("hosts/pve-gateway.toml", "identity = true", "true");
    let run = r.potato(&["check"]);
    run.invalid_at(
        &loc,
        "the identity host pve-gateway does not run authentik, traefik",
    );
    // And pve-apps's authentik is now a second, separate one.
    let loc = r.at_in("hosts/pve-apps.toml", "\"authentik\",", "\"authentik\"");
    run.invalid_at(
        &loc,
        "`authentik` runs on pve-apps, but pve-gateway is the fleet's identity host",
    );
}

#[test]
fn authentik_without_an_identity_host() {
    let r = Repo::examples();
    r.edit("hosts/pve-apps.toml", "[roles]\nidentity = true", "");
    let loc = r.at_in("hosts/pve-apps.toml", "\"authentik\",", "\"authentik\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`authentik` runs on pve-apps, but no host is the fleet's identity host",
    );
}

#[test]
fn a_protected_route_on_a_fleet_without_identity_host() {
    let r = Repo::examples();
    r.edit("hosts/pve-apps.toml", "[roles]\nidentity = true", "");
    r.edit(
        "hosts/pve-apps.toml",
        "\"authentik\", \"authentik-worker\", ",
        "",
    );
    let loc = r.at("hosts/lepotato.toml", "\"qbittorrent\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "web UI `qbittorrent` is behind SSO, but no host of the fleet is the identity host",
    );
    // Made public, it needs no identity host.
    let r2 = Repo::examples();
    r2.edit("hosts/pve-apps.toml", "[roles]\nidentity = true", "");
    r2.edit(
        "hosts/pve-apps.toml",
        "\"authentik\", \"authentik-worker\", ",
        "",
    );
    let run = r2.potato(&["check"]);
    assert!(!run.stderr.contains("web UI `jellyfin`"), "{}", run.stderr);
}

#[test]
fn auth_url_was_removed() {
    let r = Repo::examples();
    r.edit(
        "hosts/lepotato.toml",
        "data = \"/mnt/seconddrive/appdata\"",
        "data = \"/mnt/seconddrive/appdata\"\nauth_url = \"https://auth.example.net\"",
    );
    let loc = r.at("hosts/lepotato.toml", "\"https://auth.example.net\"");
    r.potato(&["check"])
        .invalid_at(&loc, "`auth_url` was removed")
        .invalid_at(&loc, "[roles] identity = true");
}

#[test]
fn proxy_on_a_host_without_traefik() {
    let r = Repo::examples();
    append(
        &r,
        "hosts/pve-gateway.toml",
        "\n[proxy]\ntls = \"internal\"\n",
    );
    let loc = r.at("hosts/pve-gateway.toml", "[proxy]");
    r.potato(&["check"]).invalid_at(
        &loc,
        "[proxy] configures Traefik, but pve-gateway does not run traefik",
    );
}

#[test]
fn acme_without_an_email() {
    let r = Repo::examples();
    append(&r, "hosts/lepotato.toml", "\n[proxy]\ntls = \"acme\"\n");
    let loc = r.at("hosts/lepotato.toml", "\"acme\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "tls = \"acme\", but [proxy] has no `email` for the ACME account",
    );
}

#[test]
fn a_public_domain_defaults_to_acme_and_needs_an_email() {
    let r = Repo::examples();
    r.edit(
        "hosts/lepotato.toml",
        "data = \"/mnt/seconddrive/appdata\"",
        "data = \"/mnt/seconddrive/appdata\"\ndomain = \"potato.example.net\"",
    );
    let loc = r.at("hosts/lepotato.toml", "\"potato.example.net\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "tls defaults to \"acme\" for potato.example.net (not under home.arpa), but [proxy] has no `email`",
    );
}

#[test]
fn an_acme_email_must_be_an_address() {
    let r = Repo::examples();
    append(
        &r,
        "hosts/lepotato.toml",
        "\n[proxy]\ntls = \"acme\"\nemail = \"admin at example\"\n",
    );
    let loc = r.at("hosts/lepotato.toml", "\"admin at example\"");
    r.potato(&["check"])
        .invalid_at(&loc, "`admin at example` is not an e-mail address");
}

#[test]
fn dns_challenge_without_the_providers_credentials() {
    let r = Repo::examples();
    append(
        &r,
        "hosts/lepotato.toml",
        "\n[proxy]\ntls = \"acme\"\nemail = \"a@example.net\"\nchallenge = \"dns\"\ndns_provider = \"cloudflare\"\n",
    );
    let loc = r.at("hosts/lepotato.toml", "\"dns\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "challenge = \"dns\" needs the DNS provider's credentials in `dns_env`",
    );
}

#[test]
fn dns_challenge_without_a_provider() {
    let r = Repo::examples();
    set_secret(&r, "cf-token", "lepotato", "x");
    append(
        &r,
        "hosts/lepotato.toml",
        "\n[proxy]\ntls = \"acme\"\nemail = \"a@example.net\"\nchallenge = \"dns\"\n\
         dns_env = { CF_DNS_API_TOKEN = \"secret:cf-token\" }\n",
    );
    let loc = r.at("hosts/lepotato.toml", "\"dns\"");
    r.potato(&["check"])
        .invalid_at(&loc, "challenge = \"dns\" needs `dns_provider`");
}

#[test]
fn dns_credentials_must_be_secrets() {
    let r = Repo::examples();
    append(
        &r,
        "hosts/lepotato.toml",
        "\n[proxy]\ntls = \"acme\"\nemail = \"a@example.net\"\nchallenge = \"dns\"\n\
         dns_provider = \"cloudflare\"\ndns_env = { CF_DNS_API_TOKEN = \"plain-token\" }\n",
    );
    let loc = r.at("hosts/lepotato.toml", "\"plain-token\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`CF_DNS_API_TOKEN` is a DNS provider credential, but not a secret reference",
    );
}

#[test]
fn acme_settings_with_internal_tls() {
    let r = Repo::examples();
    append(
        &r,
        "hosts/lepotato.toml",
        "\n[proxy]\nemail = \"a@example.net\"\n",
    );
    let loc = r.at("hosts/lepotato.toml", "\"a@example.net\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`email` is an ACME setting, but this host's tls is \"internal\"",
    );
}

#[test]
fn dns_settings_with_the_http_challenge() {
    let r = Repo::examples();
    append(
        &r,
        "hosts/lepotato.toml",
        "\n[proxy]\ntls = \"acme\"\nemail = \"a@example.net\"\ndns_provider = \"cloudflare\"\n",
    );
    let loc = r.at("hosts/lepotato.toml", "\"cloudflare\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`dns_provider` is a DNS-01 setting, but the challenge is \"http\"",
    );
}

#[test]
fn a_route_to_a_service_not_on_the_proxy_network() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.routes.db]\nservice = \"postgres\"\nport = 5432\n\n",
    );
    let loc = r.at_in(
        "hosts/pve-apps.toml",
        "service = \"postgres\"",
        "\"postgres\"",
    );
    r.potato(&["check"]).invalid_at(
        &loc,
        "route `db` goes to `postgres`, which is not on the proxy network (it joins backend)",
    );
}

#[test]
fn a_route_to_a_service_that_is_not_defined() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.routes.media]\nservice = \"jellyfin\"\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "\"jellyfin\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "route `media` goes to service `jellyfin`, which is referenced but not defined on this host",
    );
}

#[test]
fn a_middleware_that_is_referenced_but_not_defined() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[containers.gitea]\nmiddlewares = [\"lan-only\"]\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "\"lan-only\"");
    r.potato(&["check"])
        .invalid_at(&loc, "middleware `lan-only` is referenced but not defined");
    // From a route too.
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.routes.status]\nservice = \"uptime-kuma\"\nmiddlewares = [\"nope\"]\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "\"nope\"");
    r.potato(&["check"])
        .invalid_at(&loc, "middleware `nope` is referenced but not defined");
}

#[test]
fn a_middleware_is_exactly_one_kind() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.middlewares.both]\nip_allow = [\"lan\"]\nrate_limit = { average = 5 }\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "[proxy.middlewares.both]");
    r.potato(&["check"])
        .invalid_at(&loc, "middleware `both` must be exactly one kind");
}

#[test]
fn the_sso_middlewares_name_is_reserved() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.middlewares.authentik]\nip_allow = [\"lan\"]\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "[proxy.middlewares.authentik]");
    r.potato(&["check"])
        .invalid_at(&loc, "`authentik` is the built-in SSO middleware");
}

#[test]
fn ip_allow_takes_zones_and_cidrs() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.middlewares.lan-only]\nip_allow = [\"office\"]\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "\"office\"");
    r.potato(&["check"])
        .invalid_at(&loc, "`office` is neither a zone of this host nor a CIDR");
}

#[test]
fn rate_limit_out_of_range() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.middlewares.slow]\nrate_limit = { average = 0 }\n\n",
    );
    let loc = r.at_in("hosts/pve-apps.toml", "average = 0", "0");
    r.potato(&["check"])
        .invalid_at(&loc, "0 requests per second is out of range");
}

#[test]
fn middlewares_on_a_service_without_a_web_ui() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.middlewares.lan-only]\nip_allow = [\"lan\"]\n\n\
         [containers.redis]\nmiddlewares = [\"lan-only\"]\n\n",
    );
    let loc = r.at_in(
        "hosts/pve-apps.toml",
        "middlewares = [\"lan-only\"]",
        "\"lan-only\"",
    );
    r.potato(&["check"]).invalid_at(
        &loc,
        "`redis` has no web UI, so no route for these middlewares",
    );
}

#[test]
fn a_route_named_like_a_web_ui() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.routes.gitea]\nservice = \"uptime-kuma\"\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "[proxy.routes.gitea]");
    r.potato(&["check"]).invalid_at(
        &loc,
        "route `gitea` is already the route of the web UI `gitea`",
    );
}

#[test]
fn a_route_needs_a_port() {
    let r = Repo::examples();
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.routes.status]\nservice = \"uptime-kuma\"\nport = 70000\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "70000");
    r.potato(&["check"])
        .invalid_at(&loc, "port 70000 is out of range");
}

#[test]
fn a_route_to_a_service_without_a_web_port_needs_a_port() {
    let r = Repo::examples();
    // Traefik's catalog entry has no web UI (src/catalog/services.toml), so a
    // route to it must say which container port it goes to.
    insert_before_health(
        &r,
        "hosts/pve-apps.toml",
        "[proxy.routes.status]\nservice = \"traefik\"\n\n",
    );
    let loc = r.at("hosts/pve-apps.toml", "[proxy.routes.status]");
    r.potato(&["check"])
        .invalid_at(&loc, "route `status`: `traefik` has no web port")
        .invalid_at(&loc, "set port = N");
    // With a port, the same route is accepted.
    let ok = Repo::examples();
    insert_before_health(
        &ok,
        "hosts/pve-apps.toml",
        "[proxy.routes.status]\nservice = \"traefik\"\nport = 8082\n\n",
    );
    ok.potato(&["check"]).ok();
}

#[test]
fn a_protected_route_on_a_host_sharing_no_tunnel_with_the_identity_host() {
    let r = Repo::examples();
    // No monitoring hub (its own "no tunnel" rule would speak first), and
    // lepotato leaves the WireGuard network pve-apps (the identity host) is in.
    r.edit("hosts/n250.toml", "[roles]\nmonitoring = true", "");
    r.edit(
        "hosts/n250.toml",
        "\"prometheus\", \"alertmanager\", \"grafana\", \"loki\",",
        "",
    );
    let t = r.read("hosts/lepotato.toml");
    let (from, to) = (
        t.find("[wireguard.wg0]").unwrap(),
        t.find("[containers]").unwrap(),
    );
    r.write(
        "hosts/lepotato.toml",
        &format!("{}{}", &t[..from], &t[to..]),
    );
    let loc = r.at("hosts/lepotato.toml", "\"qbittorrent\"");
    r.potato(&["check"])
        .invalid_at(
            &loc,
            "`qbittorrent` is behind SSO, but lepotato shares no WireGuard tunnel with the identity host pve-apps",
        )
        .invalid_at(&loc, "forward-auth travels over WireGuard");
}
