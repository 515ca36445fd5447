//! Rendering: `HostPlan` → the files under `modules/generated/<host>/`.
//!
//! Owns the embedded tera templates, the `nix` filter (every value reaches Nix
//! through `nix::escape_into`), the list of files a host gets, and comparing them
//! with what is on disk (`gen --check`). Output is a pure function of the plan:
//! sorted maps, no timestamps, no absolute paths.

pub mod containers;
pub mod nix;

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Map, Value, json};
use tera::{Context, Kwargs, State, Tera};

use crate::error::Error;
use crate::harden::baseline::{self, Daemon};
use crate::harden::{exposure, fail2ban, firewall, wireguard};
use crate::plan::{HealthCheck, HostPlan};
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

    /// Every file of one host, in a fixed order.
    pub fn render_host(&self, plan: &HostPlan) -> Result<Vec<GeneratedFile>, Error> {
        let dir = Utf8PathBuf::from(GENERATED_DIR).join(&plan.name);
        let ctx = host_context(plan);
        let default_nix = self
            .tera
            .render(
                "default.nix",
                &Context::from_serialize(&ctx).map_err(|e| render_error(plan, e))?,
            )
            .map_err(|e| render_error(plan, e))?;
        let mut files = vec![
            GeneratedFile {
                path: dir.join("default.nix"),
                content: tidy(&default_nix),
            },
            GeneratedFile {
                path: dir.join("firewall.nft"),
                content: firewall_body(plan),
            },
            GeneratedFile {
                path: dir.join("deploy.json"),
                content: deploy_json(plan),
            },
        ];
        files.push(GeneratedFile {
            path: dir.join("exposure.json"),
            content: serde_json::to_string_pretty(&exposure::table(plan))
                .expect("exposure serializes")
                + "\n",
        });
        if let Some(spec) = containers::spec(plan) {
            files.push(GeneratedFile {
                path: dir.join("containers.json"),
                content: spec,
            });
        }
        if let Some(layout) = crate::bootstrap::layout::disko(plan) {
            files.push(GeneratedFile {
                path: dir.join("disko.nix"),
                content: layout,
            });
        }
        if let Some(script) = containers::postgres_init(plan) {
            files.push(GeneratedFile {
                path: dir.join("postgres-init.sh"),
                content: script,
            });
        }
        let items = baseline::items(plan);
        for daemon in [Daemon::Sshd, Daemon::Sysctl] {
            files.push(GeneratedFile {
                path: dir.join(daemon.file()),
                content: baseline::native(plan.file.as_str(), &items, daemon),
            });
        }
        for w in &plan.wireguard {
            files.push(GeneratedFile {
                path: dir.join(format!("{}.conf", w.name)),
                content: wireguard::native_config(plan.file.as_str(), w),
            });
        }
        for (path, content) in crate::monitoring::native::files(plan) {
            files.push(GeneratedFile {
                path: dir.join(path),
                content,
            });
        }
        if let Some(f) = &plan.fail2ban {
            files.push(GeneratedFile {
                path: dir.join("fail2ban-jails.local"),
                content: fail2ban::jails(plan.file.as_str(), f, plan.ssh.port),
            });
        }
        Ok(files)
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new()
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
fn host_context(plan: &HostPlan) -> Value {
    let file_systems: Map<String, Value> = plan
        .storage
        .mounts
        .iter()
        .map(|m| {
            (
                m.point.clone(),
                json!({ "device": m.device, "fsType": m.fs, "options": m.options }),
            )
        })
        .collect();
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
    json!({
        "sshd_settings": sshd_settings(plan),
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
        "has_secrets": !plan.secret_files.is_empty(),
        "containers_total": plan.containers.as_ref().map(|c| format_mib(c.total_mib())).unwrap_or_default(),
    })
}

/// The SSH baseline as NixOS `services.openssh.settings`: the same keys and
/// values as the native `sshd_config`, typed the way the NixOS options want
/// (booleans where NixOS declares them, lists for algorithms, "Macs" spelt
/// NixOS's way, numbers as numbers).
fn sshd_settings(plan: &HostPlan) -> Value {
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
    Value::Object(o)
}

/// The body of `table inet potato { ... }` (NixOS's nftables module adds the
/// `table` line; `firewall::as_table` does the same for tests and `nft -c`).
fn firewall_body(plan: &HostPlan) -> String {
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
fn deploy_json(plan: &HostPlan) -> String {
    let health: Vec<Value> = plan
        .health
        .iter()
        .map(|h| match h {
            HealthCheck::Unit(u) => json!({ "unit": u }),
            HealthCheck::Tcp(t) => json!({ "tcp": t }),
            HealthCheck::Http(u) => json!({ "http": u }),
        })
        .collect();
    let v = json!({
        "host": plan.name,
        "system": plan.system.as_str(),
        "target": plan.deploy.target.to_string(),
        "ssh_port": plan.ssh.port,
        "mode": plan.deploy.mode.as_str(),
        "magic_rollback": plan.deploy.magic_rollback,
        "confirm_timeout_secs": plan.deploy.confirm_timeout_secs,
        "build_on": match plan.deploy.build_on { crate::inventory::schema::BuildOn::Local => "local", crate::inventory::schema::BuildOn::Target => "target" },
        "tags": plan.tags,
        "health": health,
        "secrets": plan.secrets.iter().map(|(n, p)| json!({ "name": n, "file": p.as_str() })).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values serialize");
    s.push('\n');
    s
}

/// The host's ciphertext (copied next to default.nix, so the generation carries
/// exactly the secrets it was built with) and `secrets.sh`, which decrypts them
/// at activation. Ciphertext may live in the Nix store; plaintext never does.
fn secret_files(plan: &HostPlan, repo: &Utf8Path) -> Result<Vec<GeneratedFile>, Error> {
    if plan.secret_files.is_empty() {
        return Ok(Vec::new());
    }
    let dir = Utf8PathBuf::from(GENERATED_DIR).join(&plan.name);
    let mut files = Vec::new();
    for name in plan.secret_files.keys() {
        let src = repo.join(&plan.secrets[name]);
        let text = std::fs::read_to_string(&src).map_err(|e| Error::io(&src, e))?;
        files.push(GeneratedFile {
            path: dir.join("secrets").join(format!("{name}.age")),
            content: text,
        });
    }
    files.push(GeneratedFile {
        path: dir.join("secrets.sh"),
        content: secrets_script(plan),
    });
    Ok(files)
}

/// The activation-time decryption script (names, owners and modes are validated
/// by `resolve`, so they are safe as shell words).
fn secrets_script(plan: &HostPlan) -> String {
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
        s.push_str(&format!(
            "install_secret {name} {} {} {}\n",
            m.owner, m.group, m.mode
        ));
    }
    let env = containers::env_file_script(plan);
    if !env.is_empty() {
        s.push_str(ENV_FILE_FUNCTIONS);
        s.push_str(&env);
    }
    s.push_str("chmod 0751 \"$new\"\nrm -rf \"$dest.old\"\nif [ -e \"$dest\" ]; then mv \"$dest\" \"$dest.old\"; fi\nmv \"$new\" \"$dest\"\ntrap - EXIT\nrm -rf \"$dest.old\"\n");
    s
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

/// How the generated tree on disk differs from what should be there.
#[derive(Debug, Default)]
pub struct Staleness {
    /// Files missing or different, with a unified diff each.
    pub changed: Vec<(Utf8PathBuf, String)>,
    /// Files under a host's generated dir that potato would not write.
    pub extra: Vec<Utf8PathBuf>,
}

impl Staleness {
    pub fn is_clean(&self) -> bool {
        self.changed.is_empty() && self.extra.is_empty()
    }
}

/// Compares `files` with the repository. `hosts` limits which host directories
/// are checked for extra files.
pub fn check(
    repo: &Utf8Path,
    files: &[GeneratedFile],
    hosts: &[String],
    all_hosts: bool,
) -> Result<Staleness, Error> {
    let mut st = Staleness::default();
    for f in files {
        let abs = repo.join(&f.path);
        let current = match std::fs::read_to_string(&abs) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&abs, e)),
        };
        if current != f.content {
            let diff = similar::TextDiff::from_lines(&current, &f.content)
                .unified_diff()
                .header(&format!("a/{}", f.path), &format!("b/{}", f.path))
                .to_string();
            st.changed.push((f.path.clone(), diff));
        }
    }
    let wanted: std::collections::BTreeSet<&Utf8Path> =
        files.iter().map(|f| f.path.as_path()).collect();
    for dir in generated_dirs(repo, hosts, all_hosts)? {
        for rel in files_under(repo, &dir)? {
            if !wanted.contains(rel.as_path()) {
                st.extra.push(rel);
            }
        }
    }
    st.extra.sort();
    Ok(st)
}

/// Files (not directories) below `dir`, repository-relative.
fn files_under(repo: &Utf8Path, dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(repo.join(&d)).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let rel = d.join(entry.file_name().to_string_lossy().as_ref());
            if entry.file_type().map_err(|e| Error::io(&rel, e))?.is_dir() {
                stack.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    Ok(out)
}

/// Generated host directories to inspect: the selected hosts', or all present
/// ones when every host is selected (so a deleted host's directory shows up).
fn generated_dirs(
    repo: &Utf8Path,
    hosts: &[String],
    all_hosts: bool,
) -> Result<Vec<Utf8PathBuf>, Error> {
    let root = Utf8PathBuf::from(GENERATED_DIR);
    let mut dirs: Vec<Utf8PathBuf> = hosts
        .iter()
        .map(|h| root.join(h))
        .filter(|d| repo.join(d).is_dir())
        .collect();
    if all_hosts && let Ok(entries) = std::fs::read_dir(repo.join(&root)) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                dirs.push(root.join(e.file_name().to_string_lossy().as_ref()));
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Writes files whose content differs and removes extras. Returns what changed.
pub fn write(
    repo: &Utf8Path,
    files: &[GeneratedFile],
    stale: &Staleness,
) -> Result<Vec<Utf8PathBuf>, Error> {
    let mut touched = Vec::new();
    let by_path: BTreeMap<&Utf8Path, &GeneratedFile> =
        files.iter().map(|f| (f.path.as_path(), f)).collect();
    for (path, _) in &stale.changed {
        let f = by_path[path.as_path()];
        let abs = repo.join(&f.path);
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        // Write to a temporary file and rename, so an interrupted gen never leaves
        // a half-written module.
        let tmp = abs.with_extension("potato-tmp");
        std::fs::write(&tmp, &f.content).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &abs).map_err(|e| Error::io(&abs, e))?;
        touched.push(f.path.clone());
    }
    for extra in &stale.extra {
        let abs = repo.join(extra);
        let res = if abs.is_dir() {
            std::fs::remove_dir_all(&abs)
        } else {
            std::fs::remove_file(&abs)
        };
        res.map_err(|e| Error::io(&abs, e))?;
        touched.push(extra.clone());
    }
    // Remove host directories left empty.
    for dir in stale.extra.iter().filter_map(|p| p.parent()) {
        let abs = repo.join(dir);
        if abs.is_dir()
            && std::fs::read_dir(&abs)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
        {
            let _ = std::fs::remove_dir(&abs);
        }
    }
    Ok(touched)
}
