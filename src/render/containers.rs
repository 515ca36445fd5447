//! `containers.json`: the host's container stack as data NixOS loads
//! (`modules/containers.nix` turns it into `virtualisation.oci-containers` and
//! the units around it) and the tests hand to a real podman.
//!
//! Owns how a `ServicePlan` becomes engine arguments: networks (one per zone,
//! created before the containers), limits, healthchecks, log limits, the
//! identity host's name for Traefik (`--add-host`; Traefik's routes live in
//! its file-provider config, `edge::traefik`, not in labels), the engine socket, declared
//! capabilities and devices, secrets as env files under /run/potato-secrets,
//! the data mounts each unit requires and the tmpfiles prefixes it applies.

use serde_json::{Map, Value, json};

use crate::catalog::{EnvPart, Socket};
use crate::inventory::schema::Backend;
use crate::plan::{ContainersPlan, HostPlan, ServicePlan};
use crate::render::format::{Refused, envfile, sh, sql, yaml_json};
use crate::render::tmpfiles;
use crate::secrets;

/// The network a zone's containers join.
pub fn network_name(zone: &str) -> String {
    format!("potato-{zone}")
}

/// Where a service's secret-bearing environment is assembled at activation.
pub fn env_file(service: &str) -> String {
    format!("{}/env/{service}.env", secrets::RUNTIME_DIR)
}

/// The spec of one host, or None when it runs no containers. Each container's
/// `tmpfiles` lists the prefixes its unit applies from
/// `containers-tmpfiles.conf` (`render::tmpfiles`, whose paths go through
/// `format::tmpfiles`); every environment name has passed `format::envfile`.
pub fn spec(plan: &HostPlan) -> Option<Result<String, Refused>> {
    let c = plan.containers.as_ref()?;
    let used: std::collections::BTreeSet<&str> = c
        .services
        .iter()
        .flat_map(|s| s.networks.iter().map(String::as_str))
        .collect();
    let networks: Map<String, Value> = c
        .networks
        .iter()
        .filter(|(z, _)| used.contains(z.as_str()))
        .map(|(z, net)| (network_name(z), network(c, z, net)))
        .collect();
    let containers: Map<String, Value> = c
        .services
        .iter()
        .map(|s| (s.name.clone(), container(plan, c, s)))
        .collect();
    for svc in &c.services {
        if let Some(Err(e)) = svc.env.keys().map(|k| envfile::key(k)).find(Result::is_err) {
            return Some(Err(
                e.of(format!("the environment of service {:?}", svc.name))
            ));
        }
    }
    let v = json!({
        "backend": backend_name(c.backend),
        "networks": networks,
        "containers": containers,
        "databases": c.databases,
    });
    Some(yaml_json::json(&v))
}

/// A network's spec: its subnet, and on the proxy network, when Traefik has
/// its fixed address there, the range the engine may hand out by itself
/// (`--ip-range`; podman-network-create(1), docker network create), which
/// leaves that address out. netavark (podman's backend on NixOS) takes free
/// addresses from that range only and a static one anywhere in the subnet
/// (containers/common libnetwork/netavark/ipam.go: `allocIPs` checks a static
/// address against the subnet, `getFreeIPFromBucket` walks the lease range).
/// CNI's host-local would refuse the static address outside the range.
fn network(c: &ContainersPlan, zone: &str, net: &ipnet::IpNet) -> Value {
    let mut v = json!({ "subnet": net.to_string() });
    if zone == PROXY_ZONE
        && c.traefik_address().is_some()
        && let Some(range) = crate::plan::dynamic_range(net)
    {
        v["ipRange"] = json!(range.to_string());
    }
    v
}

/// The zone Traefik routes on.
const PROXY_ZONE: &str = "proxy";

/// The `--network` flags of a container on its own networks. Traefik's on
/// the proxy network carries its fixed address: podman's `NAME:ip=ADDR` form
/// (podman-run(1) v4.3, `--network`: "ip=IPv4: Specify a static ipv4
/// address for this container", usable with several networks, unlike
/// `--ip`); docker takes `--ip` for the network it is created on.
fn network_flags(c: &ContainersPlan, s: &ServicePlan) -> Vec<String> {
    let fixed = (s.name == "traefik").then(|| c.traefik_address()).flatten();
    let mut o = Vec::new();
    for z in &s.networks {
        match fixed {
            Some(ip) if z == PROXY_ZONE && c.backend == Backend::Podman => {
                o.push(format!("--network={}:ip={ip}", network_name(z)));
            }
            Some(ip) if z == PROXY_ZONE => {
                o.push(format!("--network={}", network_name(z)));
                o.push(format!("--ip={ip}"));
            }
            _ => o.push(format!("--network={}", network_name(z))),
        }
    }
    o
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Podman => "podman",
        Backend::Docker => "docker",
    }
}

fn container(plan: &HostPlan, c: &ContainersPlan, s: &ServicePlan) -> Value {
    let literal: Map<String, Value> = s
        .env
        .iter()
        .filter(|(_, parts)| parts.iter().all(|p| matches!(p, EnvPart::Text(_))))
        .map(|(k, parts)| (k.clone(), json!(text_of(parts))))
        .collect();
    let mut volumes: Vec<String> = s
        .volumes
        .iter()
        .map(|v| {
            let ro = if v.read_only { ":ro" } else { "" };
            format!("{}:{}{ro}", v.host, v.container)
        })
        .collect();
    if let Some(sock) = s.socket {
        let host = match c.backend {
            Backend::Podman => "/run/podman/podman.sock",
            Backend::Docker => "/var/run/docker.sock",
        };
        let ro = if sock == Socket::Ro { ":ro" } else { "" };
        volumes.push(format!("{host}:/var/run/docker.sock{ro}"));
    }
    if s.name == "traefik" {
        // The fleet CA's files, read-only (`pki` owns the paths).
        volumes.extend(crate::pki::proxy_volumes(plan));
    }
    let mut o = Map::new();
    o.insert("image".into(), json!(s.image));
    o.insert("cmd".into(), json!(s.cmd));
    o.insert("environment".into(), Value::Object(literal));
    let files: Vec<String> = if s.has_secret_env() {
        vec![env_file(&s.name)]
    } else {
        Vec::new()
    };
    o.insert("environmentFiles".into(), json!(files));
    o.insert(
        "ports".into(),
        json!(s.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
    );
    o.insert("volumes".into(), json!(volumes));
    let mut depends = s.depends.clone();
    depends.sort();
    o.insert("dependsOn".into(), json!(depends));
    o.insert(
        "networks".into(),
        json!(
            s.networks
                .iter()
                .map(|z| network_name(z))
                .collect::<Vec<_>>()
        ),
    );
    o.insert(
        "log-driver".into(),
        json!(match c.backend {
            Backend::Podman => "k8s-file",
            Backend::Docker => "json-file",
        }),
    );
    o.insert("extraOptions".into(), json!(options(plan, c, s)));
    // The namespace owner (gluetun): members restart with it, or they would
    // keep a dead namespace.
    o.insert("sharesNetworkOf".into(), json!(s.network));
    // Volumes on a data disk (mounted nofail): the unit requires and follows
    // those mounts, then creates its paths (tmpfiles) before the engine starts.
    o.insert("requiresMountsFor".into(), json!(mount_paths(plan, s)));
    o.insert("tmpfiles".into(), json!(tmpfiles::prefixes(c, s)));
    Value::Object(o)
}

/// The service's volume host paths that lie on one of the host's extra
/// filesystems ([storage] mounts).
fn mount_paths(plan: &HostPlan, s: &ServicePlan) -> Vec<String> {
    let mut paths: Vec<String> = s
        .volumes
        .iter()
        .map(|v| v.host.clone())
        .filter(|h| {
            plan.storage
                .mounts
                .iter()
                .any(|m| crate::catalog::contract::under(h, &m.point))
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

fn text_of(parts: &[EnvPart]) -> String {
    parts
        .iter()
        .map(|p| match p {
            EnvPart::Text(t) => t.as_str(),
            EnvPart::Secret(_) => "",
        })
        .collect()
}

/// The engine flags beyond what oci-containers has options for, in a fixed order.
fn options(plan: &HostPlan, c: &ContainersPlan, s: &ServicePlan) -> Vec<String> {
    let mut o = Vec::new();
    match &s.network {
        Some(owner) => o.push(format!("--network=container:{owner}")),
        None => {
            o.extend(network_flags(c, s));
            o.push(format!("--network-alias={}", s.name));
        }
    }
    o.push(format!("--memory={}m", s.memory_mib));
    o.push(format!("--cpus={}", s.cpus));
    if let Some(h) = &s.health {
        o.push(format!("--health-cmd={h}"));
        o.push("--health-interval=30s".into());
        o.push("--health-timeout=10s".into());
        o.push("--health-retries=3".into());
        o.push("--health-start-period=60s".into());
    }
    let size = match c.backend {
        Backend::Podman => "10mb",
        Backend::Docker => "10m",
    };
    o.push(format!("--log-opt=max-size={size}"));
    o.push("--security-opt=no-new-privileges".into());
    for cap in &s.caps {
        o.push(format!("--cap-add={cap}"));
    }
    for d in &s.devices {
        o.push(format!("--device={d}"));
    }
    if s.privileged {
        o.push("--privileged".into());
    }
    // Traefik reaches the fleet's identity host by its name
    // (authentik.<its domain>) at the address `edge` chose (its WireGuard
    // address), whatever DNS says: the name its certificate is checked for.
    if s.proxy
        && let Some(l) = plan.edge.as_ref().and_then(|e| e.identity.as_ref())
        && let (Some(name), Some(addr)) = (&l.name, l.address)
    {
        o.push(format!("--add-host={name}:{addr}"));
    }
    o
}

/// `postgres-init.sh`: creates each consumer's role and database in the
/// host's postgres if missing and sets the role's password from its secret.
/// Idempotent, so it runs at every start; passwords reach psql on stdin only.
/// None when the host runs no postgres consumers.
pub fn postgres_init(plan: &HostPlan) -> Option<Result<String, Refused>> {
    let c = plan.containers.as_ref()?;
    if c.databases.is_empty() {
        return None;
    }
    let mut s = format!(
        r#"#!/bin/sh
# Generated by potato from {}: the databases and roles of postgres's consumers.
# Usage: postgres-init.sh ENGINE   (the podman or docker binary)
set -eu
engine=$1
secrets=${{POTATO_SECRETS:-{}}}
for _ in $(seq 90); do
	"$engine" exec postgres pg_isready -U postgres >/dev/null 2>&1 && break
	sleep 2
done
ensure_database() {{ # NAME PASSWORD_SECRET
	pw=$(tr -d '\n' <"$secrets/$2" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")
	{{
		printf '\\set pw '"'"'%s'"'"'\n' "$pw"
		cat <<SQL
SELECT 'CREATE ROLE "$1" LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$1')\gexec
ALTER ROLE "$1" WITH LOGIN PASSWORD :'pw';
SELECT 'CREATE DATABASE "$1" OWNER "$1"' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$1')\gexec
SQL
	}} | "$engine" exec -i postgres psql -U postgres -v ON_ERROR_STOP=1 -q
}}
"#,
        plan.file,
        secrets::RUNTIME_DIR
    );
    for db in &c.databases {
        let line = sql::identifier(&db.name)
            .map_err(|e| e.of("a database name"))
            .and_then(|name| {
                Ok(format!(
                    "ensure_database {} {}\n",
                    sh::word(name)?,
                    sh::word(&db.password_secret)?
                ))
            });
        match line {
            Ok(l) => s.push_str(&l),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(s))
}

/// Lines for secrets.sh that assemble each service's env file from the
/// decrypted secrets (values never leave /run/potato-secrets). Every word is
/// quoted for sh; service names, keys and literal parts are also checked for
/// the env file they end up in (`format::envfile`).
pub fn env_file_script(plan: &HostPlan) -> Result<String, Refused> {
    let Some(c) = &plan.containers else {
        return Ok(String::new());
    };
    let mut s = String::new();
    for svc in c.services.iter().filter(|s| s.has_secret_env()) {
        let name = envfile::file_stem(&svc.name).map_err(|e| e.of("a service name"))?;
        s.push_str(&format!("env_begin {}\n", sh::word(name)?));
        for (key, parts) in svc.env.iter() {
            if parts.iter().all(|p| matches!(p, EnvPart::Text(_))) {
                continue;
            }
            let at = || format!("the environment of service {:?}", svc.name);
            let key = envfile::key(key).map_err(|e| e.of(at()))?;
            let mut line = format!("env_var {}", sh::word(key)?);
            for p in parts {
                match p {
                    EnvPart::Text(t) => {
                        let t = envfile::value(t).map_err(|e| e.of(format!("{} ({key})", at())))?;
                        line.push_str(&format!(" text {}", sh::word(t)?));
                    }
                    EnvPart::Secret(n) => {
                        let n = envfile::file_stem(n).map_err(|e| e.of("a secret's name"))?;
                        line.push_str(&format!(" secret {}", sh::word(n)?));
                    }
                }
            }
            s.push_str(&line);
            s.push('\n');
        }
    }
    Ok(s)
}
