//! Rendering: `HostPlan` → the files under `modules/generated/<host>/`.
//!
//! Owns the embedded tera templates, the `nix` filter (every value reaches Nix
//! through `nix::escape_into`), the list of files a host gets, and comparing them
//! with what is on disk (`gen --check`). `disko` writes a host's disk layout
//! and `hardware` a machine's detected facts as Nix, from plain data; render
//! never reaches into the code that builds that data (the install's steps).
//! Output is a pure function of the plan:
//! sorted maps, no timestamps, no absolute paths. `writer` compares them with
//! the tree on disk and writes them, never through a link.

pub mod containers;
pub mod disko;
pub mod format;
pub mod hardware;
pub mod nix;
pub mod tmpfiles;
pub mod writer;

pub use writer::{Staleness, Written, check, write};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Map, Value, json};
use tera::{Context, Kwargs, State, Tera};

use crate::error::Error;
use crate::harden::baseline::{self, Daemon};
use crate::harden::{exposure, fail2ban, firewall, wireguard};
use crate::plan::{HealthCheck, HostPlan, Probe};
use crate::render::format::{Refused, envfile, fstab, sh, sshd, systemd, wgquick, yaml_json};
use crate::secrets;
use crate::units::format_mib;

/// Where generated modules live, relative to the repository.
pub const GENERATED_DIR: &str = "modules/generated";

const DEFAULT_NIX: &str = include_str!("templates/default.nix.tera");

/// One generated file: repository-relative path and exact content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: Utf8PathBuf,
    pub content: String,
}

/// The template engine with potato's filter and escaping installed.
pub struct Renderer {
    tera: Tera,
}

impl Renderer {
    pub fn new() -> Renderer {
        let mut tera = Tera::new();
        tera.set_escape_fn(escape_for_tera);
        tera.autoescape_on(vec![".nix"]);
        tera.register_filter("nix", nix_filter);
        tera.add_raw_template("default.nix", DEFAULT_NIX)
            .expect("embedded template parses (tested)");
        Renderer { tera }
    }

    /// Every file of one host, in a fixed order. A value that a file's format
    /// cannot hold is refused (`Error::Unwritable`), naming the host file,
    /// the setting and the generated file; nothing is written then.
    pub fn render_host(&self, plan: &HostPlan) -> Result<Vec<GeneratedFile>, Error> {
        let dir = Utf8PathBuf::from(GENERATED_DIR).join(&plan.name);
        let file = |name: &str, content: Result<String, Refused>| {
            let path = dir.join(name);
            match content {
                Ok(content) => Ok(GeneratedFile { path, content }),
                Err(refused) => Err(unwritable(plan, path, refused)),
            }
        };
        let ctx = host_context(plan).map_err(|r| unwritable(plan, dir.join("default.nix"), r))?;
        let default_nix = self
            .tera
            .render(
                "default.nix",
                &Context::from_serialize(&ctx).map_err(|e| render_error(plan, e))?,
            )
            .map_err(|e| render_error(plan, e))?;
        let mut files = vec![
            file("default.nix", Ok(tidy(&default_nix)))?,
            file("firewall.nft", firewall_body(plan))?,
            file("deploy.json", deploy_json(plan))?,
            file("exposure.json", yaml_json::json(&exposure::table(plan)))?,
        ];
        if let Some(spec) = containers::spec(plan) {
            files.push(file("containers.json", spec)?);
        }
        if let Some(rules) = tmpfiles::render(plan) {
            files.push(file("containers-tmpfiles.conf", rules)?);
        }
        if let Some(layout) = disko::for_host(plan) {
            files.push(file("disko.nix", layout)?);
        }
        if let Some(script) = containers::postgres_init(plan) {
            files.push(file("postgres-init.sh", script)?);
        }
        let items = baseline::items(plan);
        for daemon in [Daemon::Sshd, Daemon::Sysctl] {
            files.push(file(
                daemon.file(),
                baseline::native(plan.file.as_str(), &items, daemon),
            )?);
        }
        for w in &plan.wireguard {
            files.push(file(
                &format!("{}.conf", w.name),
                wireguard::native_config(plan.file.as_str(), w),
            )?);
        }
        let traefik = crate::edge::traefik::files(plan)
            .map_err(|r| unwritable(plan, dir.join(crate::edge::traefik::FILES[1]), r))?;
        for (path, content) in traefik {
            files.push(GeneratedFile {
                path: dir.join(path),
                content,
            });
        }
        for (path, content) in crate::monitoring::native::files(plan) {
            files.push(GeneratedFile {
                path: dir.join(path),
                content,
            });
        }
        if let Some(blueprint) = crate::edge::blueprint::render(plan) {
            files.push(file(crate::edge::blueprint::FILE, blueprint)?);
        }
        for (path, content) in
            crate::intrusion::files(plan).map_err(|r| unwritable(plan, dir.join("crowdsec"), r))?
        {
            files.push(GeneratedFile {
                path: dir.join(path),
                content,
            });
        }
        if let Some(p) = &plan.pki {
            files.push(file(crate::pki::CA_CERT_GENERATED, Ok(p.ca_pem.clone()))?);
            if let Some(t) = &p.tls {
                files.push(file(
                    crate::pki::HOST_CERT_GENERATED,
                    Ok(t.cert_pem.clone()),
                )?);
            }
        }
        if let Some(f) = &plan.fail2ban {
            files.push(file(
                "fail2ban-jails.local",
                fail2ban::jails(plan.file.as_str(), f, plan.ssh.port),
            )?);
        }
        Ok(files)
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new()
    }
}

fn unwritable(plan: &HostPlan, output: Utf8PathBuf, refused: Refused) -> Error {
    Error::Unwritable {
        file: plan.file.clone(),
        output,
        refused: Box::new(refused),
    }
}

fn render_error(plan: &HostPlan, e: impl std::fmt::Display) -> Error {
    Error::Render {
        host: plan.name.clone(),
        message: e.to_string(),
    }
}

/// tera's autoescape hook: strings interpolated inside "..." in a .nix template.
fn escape_for_tera(input: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut s = String::new();
    nix::escape_into(input, &mut s)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    out.write_all(s.as_bytes())
}

/// `{{ value | nix(indent=N) }}`: any value as a Nix literal.
fn nix_filter(v: tera::Value, kwargs: Kwargs, _: &State) -> tera::TeraResult<tera::Value> {
    let indent: i64 = kwargs.get("indent")?.unwrap_or(0);
    let json = serde_json::to_value(&v).map_err(tera::Error::message)?;
    let text = nix::literal(&json, indent.max(0) as usize).map_err(tera::Error::message)?;
    Ok(tera::Value::safe_string(&text))
}

/// Collapses the blank lines that `{% if %}` blocks leave behind.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.replace("\n\n}\n", "\n}\n")
}

/// The values the template places; complex sections are prepared here as JSON
/// and written by the `nix` filter, so the template stays structure only.
/// Values that NixOS writes on into other formats (authorized_keys, fstab,
/// sshd_config, WireGuard scripts) are checked for those formats here, and
/// every string for Nix.
fn host_context(plan: &HostPlan) -> Result<Value, Refused> {
    for (i, k) in plan.ssh.authorized_keys.iter().enumerate() {
        sshd::authorized_key(k).map_err(|e| e.of(format!("authorized key {}", i + 1)))?;
    }
    let file_systems: Map<String, Value> = plan
        .storage
        .mounts
        .iter()
        .map(|m| {
            let at = |what: &str| format!("{what} of the mount at {:?}", m.point);
            fstab::nixos_field(&m.point).map_err(|e| e.of("a mount point"))?;
            fstab::nixos_field(&m.device).map_err(|e| e.of(at("the device")))?;
            fstab::fs_type(&m.fs).map_err(|e| e.of(at("the filesystem type")))?;
            for o in &m.options {
                fstab::nixos_field(o).map_err(|e| e.of(at("an option")))?;
            }
            Ok((
                m.point.clone(),
                json!({ "device": m.device, "fsType": m.fs, "options": m.options }),
            ))
        })
        .collect::<Result<_, Refused>>()?;
    for w in &plan.wireguard {
        for p in &w.peers {
            let at = |what: &str| format!("{what} of WireGuard peer {:?} on {}", p.name, w.name);
            wgquick::key(&p.public_key).map_err(|e| e.of(at("the public key")))?;
            if let Some(e) = &p.endpoint {
                wgquick::endpoint(e).map_err(|r| r.of(at("the endpoint")))?;
            }
        }
    }
    let wireguard: Map<String, Value> = plan
        .wireguard
        .iter()
        .map(|w| {
            let peers: Vec<Value> = w
                .peers
                .iter()
                .map(|p| {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(p.name));
                    o.insert("publicKey".into(), json!(p.public_key));
                    o.insert(
                        "allowedIPs".into(),
                        json!(
                            p.allowed_ips
                                .iter()
                                .map(|n| n.to_string())
                                .collect::<Vec<_>>()
                        ),
                    );
                    if let Some(e) = &p.endpoint {
                        o.insert("endpoint".into(), json!(e));
                    }
                    if let Some(k) = p.persistent_keepalive {
                        o.insert("persistentKeepalive".into(), json!(k));
                    }
                    Value::Object(o)
                })
                .collect();
            let mut o = Map::new();
            o.insert("ips".into(), json!([w.address.to_string()]));
            if let Some(p) = w.listen_port {
                o.insert("listenPort".into(), json!(p));
            }
            o.insert(
                "privateKeyFile".into(),
                json!(secrets::runtime_path(&w.private_key_secret)),
            );
            o.insert("peers".into(), Value::Array(peers));
            (w.name.clone(), Value::Object(o))
        })
        .collect();
    let fail2ban = plan.fail2ban.as_ref().map(|f| {
        json!({
            "action": fail2ban::ACTION,
            "filter": f.jails.iter().any(|j| j == "traefik-auth").then_some(fail2ban::TRAEFIK_FILTER),
        })
    });
    let pki = plan.pki.as_ref().map(|p| {
        let etc = |path: &str| path.trim_start_matches("/etc/").to_string();
        let traefik_unit = plan.containers.as_ref().and_then(|c| {
            c.services.iter().any(|s| s.name == "traefik").then(|| {
                format!(
                    "{}-traefik",
                    match c.backend {
                        crate::inventory::schema::Backend::Podman => "podman",
                        crate::inventory::schema::Backend::Docker => "docker",
                    }
                )
            })
        });
        json!({
            "certificates": [p.ca_pem],
            "ca_etc": etc(crate::pki::CA_CERT_ON_HOST),
            "ca_file": crate::pki::CA_CERT_GENERATED,
            "host_etc": p.tls.as_ref().map(|_| etc(crate::pki::HOST_CERT_ON_HOST)),
            "host_file": crate::pki::HOST_CERT_GENERATED,
            "traefik_unit": traefik_unit,
        })
    });
    let ctx = json!({
        "cache": cache_context(plan)?,
        "sshd_settings": sshd_settings(plan)?,
        "file": plan.file.as_str(),
        "name": plan.name,
        "hardware": plan.hardware.as_str(),
        "timezone": plan.timezone,
        "state_version": plan.state_version,
        "ssh_port": plan.ssh.port,
        "authorized_keys": plan.ssh.authorized_keys,
        "file_systems": if file_systems.is_empty() { Value::Null } else { Value::Object(file_systems) },
        "wireguard": if wireguard.is_empty() { Value::Null } else { Value::Object(wireguard) },
        "secrets_dir": secrets::RUNTIME_DIR,
        "fail2ban": fail2ban,
        "containers": plan.containers.is_some(),
        "monitoring": plan.monitoring.is_some(),
        "sso": plan.sso.is_some(),
        "edge": plan.edge.is_some(),
        "intrusion": plan.intrusion.is_some(),
        "has_secrets": !plan.secret_files.is_empty(),
        "pki": pki,
        "containers_total": plan.containers.as_ref().map(|c| format_mib(c.total_mib())).unwrap_or_default(),
    });
    nix_strings(&ctx, "")?;
    Ok(ctx)
}

/// The fleet binary cache's part of the host's generation (`cache::FleetCache`):
/// on a consumer, its substituter and the cache's public key; on the cache
/// host, nginx serving the cache directory on its tunnel addresses (and
/// loopback, never the NixOS default of every address) after the tunnels are
/// up, and the directory itself. None: the fleet has no cache.
fn cache_context(plan: &HostPlan) -> Result<Option<Value>, Refused> {
    let Some(c) = plan.cache.as_ref() else {
        return Ok(None);
    };
    let consumer = c.substituter_for(&plan.name).map(|url| {
        json!({
            "substituters": [url],
            "trusted_public_keys": [c.public_key],
            "connect_timeout": c.connect_timeout,
            "stalled_download_timeout": c.stalled_download_timeout,
        })
    });
    // The directory, and a nix-cache-info in it until the first publish
    // writes its own (`f` never overwrites): consumers then see an empty,
    // valid cache instead of disabling it for a missing file.
    let tmpfiles = if c.is_cache_host(&plan.name) {
        let info = crate::render::format::tmpfiles::path(&format!("{}/nix-cache-info", c.dir))?;
        vec![
            crate::render::format::tmpfiles::directory(&c.dir, 0o755)?,
            format!("f {info} 0644 root root - {}", crate::cache::CACHE_INFO),
        ]
    } else {
        Vec::new()
    };
    let server = c.is_cache_host(&plan.name).then(|| {
        let mut listen: Vec<Value> = vec![json!({ "addr": "127.0.0.1", "port": c.port })];
        for a in c.listen_addresses() {
            let addr = match a {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            listen.push(json!({ "addr": addr, "port": c.port }));
        }
        let tunnels: Vec<String> = plan
            .wireguard
            .iter()
            .filter(|w| c.listen_addresses().contains(&w.address.addr()))
            .map(|w| format!("wireguard-{}.service", w.name))
            .collect();
        json!({
            "host": c.host,
            "vhost": { "listen": listen, "root": c.dir },
            "tmpfiles": tmpfiles,
            "after": tunnels,
        })
    });
    Ok(Some(
        json!({ "host": c.host, "consumer": consumer, "server": server }),
    ))
}

/// Checks every string (and attribute name) of `v` for Nix, naming where a
/// refused one sits (`authorized_keys[0]`), so a NUL is blamed on the value,
/// not on the template.
fn nix_strings(v: &Value, at: &str) -> Result<(), Refused> {
    match v {
        Value::String(s) => nix::string(s).map(drop).map_err(|e| e.of(at.to_string())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| nix_strings(x, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            nix::attr_name(k).map_err(|e| e.of(here.clone()))?;
            nix_strings(x, &here)
        }),
        _ => Ok(()),
    }
}

/// The SSH baseline as NixOS `services.openssh.settings`: the same keys and
/// values as the native `sshd_config`, typed the way the NixOS options want
/// (booleans where NixOS declares them, lists for algorithms, "Macs" spelt
/// NixOS's way, numbers as numbers).
fn sshd_settings(plan: &HostPlan) -> Result<Value, Refused> {
    const BOOLEANS: &[&str] = &[
        "PasswordAuthentication",
        "KbdInteractiveAuthentication",
        "X11Forwarding",
    ];
    let mut o = Map::new();
    for i in baseline::items(plan)
        .into_iter()
        .filter(|i| i.daemon == Daemon::Sshd)
    {
        sshd::value(&i.value).map_err(|e| e.of(i.key))?;
        let key = if i.key == "MACs" { "Macs" } else { i.key };
        let v = if BOOLEANS.contains(&i.key) {
            json!(i.value == "yes")
        } else if matches!(i.key, "KexAlgorithms" | "Ciphers" | "MACs") {
            json!(i.value.split(',').collect::<Vec<_>>())
        } else if let Ok(n) = i.value.parse::<u64>() {
            json!(n)
        } else {
            json!(i.value)
        };
        o.insert(key.to_string(), v);
    }
    Ok(Value::Object(o))
}

/// The body of `table inet potato { ... }` (NixOS's nftables module adds the
/// `table` line; `firewall::as_table` does the same for tests and `nft -c`).
fn firewall_body(plan: &HostPlan) -> Result<String, Refused> {
    let mut udp = plan.firewall.wireguard_ports.clone();
    udp.extend(
        plan.wireguard
            .iter()
            .filter_map(|w| w.listen_port.map(|p| (p, format!("WireGuard {}", w.name)))),
    );
    udp.sort();
    udp.dedup();
    let open = firewall::Openings {
        udp,
        containers: plan
            .containers
            .as_ref()
            .is_some_and(|c| !c.services.is_empty()),
        container_zones: plan
            .containers
            .iter()
            .flat_map(|c| {
                let used: std::collections::BTreeSet<&String> =
                    c.services.iter().flat_map(|s| s.networks.iter()).collect();
                c.networks
                    .iter()
                    .filter(move |(z, _)| used.contains(z))
                    .map(|(z, n)| (z.clone(), *n))
            })
            .collect(),
        hub_ifaces: plan
            .wireguard
            .iter()
            .filter(|w| w.routes_between_peers())
            .map(|w| w.name.clone())
            .collect(),
    };
    firewall::compile(&plan.firewall.rules, &plan.firewall.policies, &open)
}

/// What the deploy engine needs that NixOS does not: target, mode, rollback
/// settings, health checks. No secrets.
fn deploy_json(plan: &HostPlan) -> Result<String, Refused> {
    let health: Vec<Value> = plan
        .health
        .iter()
        .map(|h: &HealthCheck| {
            if let Probe::Unit(u) = &h.probe {
                systemd::unit_name(u).map_err(|e| e.of("a health check's unit"))?;
            }
            Ok(json!({
                h.probe.kind(): h.probe.target(),
                "grace_secs": h.grace_secs,
                "interval_secs": h.interval_secs,
                "retries": h.retries,
            }))
        })
        .collect::<Result<_, Refused>>()?;
    let v = json!({
        "host": plan.name,
        "system": plan.system.as_str(),
        "target": plan.deploy.target.to_string(),
        "ssh_port": plan.ssh.port,
        "mode": plan.deploy.mode.as_str(),
        "magic_rollback": plan.deploy.magic_rollback,
        "confirm_timeout_secs": plan.deploy.confirm_timeout_secs,
        "build_on": plan.deploy.build_on.as_str(),
        "tags": plan.tags,
        "health": health,
        "secrets": plan.secrets.iter().map(|(n, p)| json!({ "name": n, "file": p.as_str() })).collect::<Vec<_>>(),
    });
    yaml_json::json(&v)
}

/// The host's ciphertext (copied next to default.nix, so the generation carries
/// exactly the secrets it was built with) and `secrets.sh`, which decrypts them
/// at activation. Ciphertext may live in the Nix store; plaintext never does.
fn secret_files(plan: &HostPlan, repo: &Utf8Path) -> Result<Vec<GeneratedFile>, Error> {
    if plan.secret_files.is_empty() {
        return Ok(Vec::new());
    }
    let dir = Utf8PathBuf::from(GENERATED_DIR).join(&plan.name);
    let fs = crate::fsguard::RepoFs::open(repo)?;
    let mut files = Vec::new();
    for name in plan.secret_files.keys() {
        let src = &plan.secrets[name];
        let text = fs
            .read_string(src)?
            .ok_or_else(|| Error::io(src, std::io::Error::from(std::io::ErrorKind::NotFound)))?;
        files.push(GeneratedFile {
            path: dir.join("secrets").join(format!("{name}.age")),
            content: text,
        });
    }
    let script = secrets_script(plan).map_err(|r| unwritable(plan, dir.join("secrets.sh"), r))?;
    files.push(GeneratedFile {
        path: dir.join("secrets.sh"),
        content: script,
    });
    Ok(files)
}

/// The activation-time decryption script. Every name, owner, group and mode
/// is a quoted shell word (`format::sh`); a secret's name is also a file name.
fn secrets_script(plan: &HostPlan) -> Result<String, Refused> {
    let mut s = format!(
        "#!/bin/sh\n\
         # Generated by potato from {}: decrypts this generation's secrets with the\n\
         # host's SSH host key into {dest} (tmpfs), before services start. Every\n\
         # generation carries and decrypts its own set, so a rollback restores old values.\n\
         # Usage: secrets.sh AGE_BINARY SECRETS_DIR [HOST_KEY]\n\
         set -eu\n\
         age=$1\n\
         src=$2\n\
         key=${{3:-/etc/ssh/ssh_host_ed25519_key}}\n\
         dest={dest}\n\
         umask 077\n\
         new=$(mktemp -d \"$dest.new.XXXXXX\")\n\
         trap 'rm -rf \"$new\"' EXIT\n\
         install_secret() {{ # NAME OWNER GROUP MODE\n\
         \t\"$age\" --decrypt -i \"$key\" -o \"$new/$1\" \"$src/$1.age\"\n\
         \tchown \"$2:$3\" \"$new/$1\"\n\
         \tchmod \"$4\" \"$new/$1\"\n\
         }}\n",
        plan.file,
        dest = secrets::RUNTIME_DIR,
    );
    for (name, m) in &plan.secret_files {
        let at = |what: &str| format!("the {what} of secret {name:?}");
        envfile::file_stem(name).map_err(|e| e.of("a secret's name"))?;
        s.push_str(&format!(
            "install_secret {} {} {} {}\n",
            sh::word(name)?,
            sh::word(&m.owner).map_err(|e| e.of(at("owner")))?,
            sh::word(&m.group).map_err(|e| e.of(at("group")))?,
            sh::word(&m.mode).map_err(|e| e.of(at("mode")))?,
        ));
    }
    let env = containers::env_file_script(plan)?;
    if !env.is_empty() {
        s.push_str(ENV_FILE_FUNCTIONS);
        s.push_str(&env);
    }
    s.push_str("chmod 0751 \"$new\"\nrm -rf \"$dest.old\"\nif [ -e \"$dest\" ]; then mv \"$dest\" \"$dest.old\"; fi\nmv \"$new\" \"$dest\"\ntrap - EXIT\nrm -rf \"$dest.old\"\n");
    Ok(s)
}

/// Shell functions that assemble containers' env files from decrypted secrets.
const ENV_FILE_FUNCTIONS: &str = r#"# Containers' environment files: KEY=value lines, secrets spliced in.
mkdir -m 0700 "$new/env"
env_begin() { # SERVICE
	env_out="$new/env/$1.env"
	: >"$env_out"
	chmod 0400 "$env_out"
}
env_var() { # KEY (text VALUE | secret NAME)...
	key=$1
	shift
	{
		printf '%s=' "$key"
		while [ $# -gt 0 ]; do
			case $1 in
			text) printf '%s' "$2" ;;
			secret) tr -d '
' <"$new/$2" ;;
			esac
			shift 2
		done
		printf '
'
	} >>"$env_out"
}
"#;

/// Renders every plan. Files are returned sorted by path.
pub fn render_all(plans: &[HostPlan], repo: &Utf8Path) -> Result<Vec<GeneratedFile>, Error> {
    let r = Renderer::new();
    let mut files = Vec::new();
    for p in plans {
        files.extend(r.render_host(p)?);
        files.extend(secret_files(p, repo)?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> HostPlan {
        let repo = camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
        let plans = crate::ops::fleet::load_plans(repo).expect("example hosts are valid");
        plans.into_iter().find(|p| p.name == name).unwrap()
    }

    /// Issue 13: a NUL was blamed on the template; now the error names the
    /// host file, the value's place and the generated file, with exit 2.
    #[test]
    fn a_nul_is_blamed_on_the_value_not_the_template() {
        let mut p = plan("n250");
        p.timezone = "Europe/Ber\0lin".into();
        let e = Renderer::new().render_host(&p).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("hosts/n250.toml: timezone: a Nix string cannot hold"),
            "{text}"
        );
        assert!(
            text.contains("modules/generated/n250/default.nix"),
            "{text}"
        );
        assert_eq!(e.exit_code(), crate::error::EXIT_INVALID);
    }

    /// Issue 13: an authorized key with a line break became a second key line
    /// in the host's authorized_keys (NixOS writes one key per line).
    #[test]
    fn an_authorized_key_with_a_line_break_is_refused() {
        let mut p = plan("n250");
        let key = p.ssh.authorized_keys[0].clone();
        p.ssh.authorized_keys[0] = format!(
            "{key}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDaOEAClx5N79Sb9NIDKTTheZgF06M2YOnV+GTcD4pCL evil"
        );
        let e = Renderer::new().render_host(&p).unwrap_err();
        assert!(
            e.to_string()
                .contains("authorized key 1: an authorized_keys line cannot hold"),
            "{e}"
        );
    }

    /// Issue 13: catalog env keys and service names reached secrets.sh as bare
    /// words. Now the key is refused as an env-file name before any script.
    #[test]
    fn a_catalog_env_key_with_shell_syntax_is_refused_in_secrets_sh() {
        let mut p = plan("n250");
        let svc = p
            .containers
            .as_mut()
            .unwrap()
            .services
            .iter_mut()
            .find(|s| s.has_secret_env())
            .unwrap();
        // A value with a secret in it, so the variable goes to secrets.sh.
        let parts = svc
            .env
            .values()
            .find(|v| {
                v.iter()
                    .any(|p| matches!(p, crate::catalog::EnvPart::Secret(_)))
            })
            .unwrap()
            .clone();
        svc.env.insert("X;id>/tmp/f;Y".into(), parts);
        let e = secrets_script(&p).unwrap_err();
        assert!(
            e.to_string()
                .contains("a container environment file cannot hold \"X;id>/tmp/f;Y\""),
            "{e}"
        );
    }

    /// A health check's unit starting with `-` would be a systemctl option.
    #[test]
    fn a_health_unit_that_is_an_option_is_refused() {
        let mut p = plan("pve-gateway");
        p.health = vec![HealthCheck {
            probe: Probe::Unit("-H evil.example".into()),
            grace_secs: 0,
            interval_secs: 2,
            retries: 3,
        }];
        let e = deploy_json(&p).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("a health check's unit: a systemd unit name"),
            "{e}"
        );
    }
}
