//! Talking to running hosts outside a deploy: a host's generations, rolling
//! back to one, the fleet's status (running vs. what the repository builds),
//! running a command on hosts in parallel, and pinning a host's SSH key.
//! Each returns its result as data; the commands print it.

use serde::Serialize;

use super::fleet::Fleet;
use crate::error::Error;
use crate::host::{HostError, HostState, Remote, paths, runner};
use crate::nix::StorePath;
use crate::plan::{HostPlan, Target};
use crate::repo;
use crate::ssh::{self, HostKey};
use crate::ui::Reporter;

/// One line of `nix-env --list-generations`, with its store path.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub number: u32,
    pub date: String,
    pub current: bool,
    pub store_path: Option<StorePath>,
}

/// What `rollback` did: the generation current before and after, and the
/// activation's output.
#[derive(Debug, Clone)]
pub struct RolledBack {
    pub from: Option<u32>,
    pub to: u32,
    pub output: String,
}

/// One host's row in `potato status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub host: String,
    /// "in sync", "drifted" or "unreachable".
    pub state: &'static str,
    pub running: Option<String>,
    pub repo: StorePath,
    pub detail: String,
    /// The bootstrap record (date, commit, system), when potato bootstrapped it.
    pub bootstrapped: serde_json::Value,
}

/// One host's result of `exec`: its output, or why it could not run.
pub type ExecResult = (String, Result<ssh::Output, String>);

/// What `trust` did with the key a host presented.
#[derive(Debug, Clone)]
pub struct Trusted {
    pub label: String,
    /// ADDR or [ADDR]:PORT, as known_hosts names it.
    pub known_hosts_name: String,
    pub key: HostKey,
    /// "unchanged", "recorded" or "replaced".
    pub action: &'static str,
    /// The keys replaced ("TYPE FINGERPRINT").
    pub previous: Vec<String>,
    pub file: camino::Utf8PathBuf,
}

/// An SSH failure reaching `host` (exit 1), its typed error kept.
fn host_error(host: &str) -> impl Fn(ssh::SshError) -> Error + '_ {
    move |e| Error::remote(host, crate::host::HostError::Ssh(e))
}

fn parse_generations(text: &str) -> Vec<Generation> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some(Generation {
                number: f[0].parse().ok()?,
                date: format!("{} {}", f[1], f[2]),
                current: f[3] == "current",
                store_path: f.get(4).and_then(|p| StorePath::parse(p).ok()),
            })
        })
        .collect()
}

fn list(remote: &Remote, host: &str) -> Result<Vec<Generation>, Error> {
    let text = remote.generations().map_err(|e| Error::remote(host, e))?;
    Ok(parse_generations(&text))
}

/// The host's generations.
pub fn generations(fleet: &Fleet, name: &str) -> Result<(HostPlan, Vec<Generation>), Error> {
    let (plan, target) = fleet.one(name)?;
    let remote = fleet.connect(&plan.name, &target)?;
    let gens = list(&remote, &plan.name)?;
    Ok((plan, gens))
}

/// Switches the host to generation `to` (default: the one before the current).
pub fn rollback(fleet: &Fleet, name: &str, to: Option<u32>) -> Result<RolledBack, Error> {
    let (plan, target) = fleet.one(name)?;
    let mut remote = fleet.connect(&plan.name, &target)?;
    let holder = format!("potato rollback (pid {})", std::process::id());
    let fail = |message: String| Error::Host {
        host: plan.name.clone(),
        message,
    };
    remote
        .lock(&plan.name, &holder)
        .map_err(|e| Error::remote(&plan.name, e))?;
    let gens = list(&remote, &plan.name)?;
    let current = gens.iter().find(|x| x.current).map(|x| x.number);
    let wanted = match to {
        Some(n) => n,
        None => {
            let cur = current.ok_or_else(|| fail("no current generation".into()))?;
            gens.iter()
                .map(|x| x.number)
                .filter(|n| *n < cur)
                .max()
                .ok_or_else(|| {
                    fail(format!(
                        "generation {cur} is the oldest; nothing to roll back to"
                    ))
                })?
        }
    };
    if !gens.iter().any(|x| x.number == wanted) {
        let have: Vec<String> = gens.iter().map(|x| x.number.to_string()).collect();
        return Err(Error::usage(
            format!("{} has no generation {wanted}", plan.name),
            format!("it has: {}", have.join(", ")),
        ));
    }
    let out = remote
        .switch_generation(wanted)
        .map_err(|e| Error::remote(&plan.name, e))?;
    Ok(RolledBack {
        from: current,
        to: wanted,
        output: out.stdout,
    })
}

/// Each selected host's running system against what the repository builds.
pub fn status(
    fleet: &Fleet,
    selectors: &[String],
    report: &Reporter,
) -> Result<Vec<Status>, Error> {
    let selected = fleet.select(selectors)?;
    let tops = super::deploy::build(fleet, &selected.names(), &mut |l| report.warn(l))?;
    let base = fleet.ssh_options()?;
    let target_text = fleet.connect_settings().target.clone();
    // Every host at once: status only reads (nothing is written on a host).
    let parallel = selected.plans.len();
    let plans: Vec<&HostPlan> = selected.plans.iter().collect();
    let rows = runner::for_each(plans, parallel, |p: &HostPlan| {
        let t = selected.target(p);
        let mut opts = base.clone();
        opts.host_name = Some(ssh::trust_hint(&p.name, target_text.clone()));
        let (state, running, detail, bootstrapped) = match host_status(&t, &opts) {
            Ok((st, bootstrapped)) => {
                let in_sync = st.current.as_ref() == Some(&tops[&p.name]);
                (
                    if in_sync { "in sync" } else { "drifted" },
                    st.current.map(|c| c.to_string()),
                    st.generation
                        .map(|n| format!("generation {n}"))
                        .unwrap_or_default(),
                    bootstrapped,
                )
            }
            Err(e) => ("unreachable", None, e.to_string(), serde_json::Value::Null),
        };
        Status {
            host: p.name.clone(),
            state,
            running,
            repo: tops[&p.name].clone(),
            detail,
            bootstrapped,
        }
    });
    Ok(rows)
}

/// What one host runs and its bootstrap record (JSON, or null), read without
/// writing anything there.
fn host_status(
    target: &Target,
    opts: &ssh::SshOptions,
) -> Result<(HostState, serde_json::Value), HostError> {
    let remote = Remote::connect(target, opts)?;
    let bootstrapped = remote
        .read_file(paths::BOOTSTRAP_MARKER)?
        .and_then(|text| serde_json::from_str(text.trim()).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok((remote.state()?, bootstrapped))
}

/// Runs `command` (words, quoted for the remote shell) on the selected
/// hosts, at most `parallel` at once; results in host order.
pub fn exec(
    fleet: &Fleet,
    selectors: &[String],
    parallel: usize,
    command: &[String],
) -> Result<Vec<ExecResult>, Error> {
    let selected = fleet.select(selectors)?;
    let base = fleet.ssh_options()?;
    let line = crate::render::format::sh::words(command.iter().map(String::as_str))
        .map_err(|e| Error::usage(format!("the command: {e}"), "a command cannot hold NUL"))?;
    let target_text = fleet.connect_settings().target.clone();
    let plans: Vec<&HostPlan> = selected.plans.iter().collect();
    Ok(runner::for_each(plans, parallel, |p: &HostPlan| {
        let t = selected.target(p);
        let mut opts = base.clone();
        opts.host_name = Some(ssh::trust_hint(&p.name, target_text.clone()));
        let out = Remote::connect(&t, &opts)
            .and_then(|r| r.run(&line))
            .map_err(|e| e.to_string());
        (p.name.clone(), out)
    }))
}

/// What `potato trust ARG` reaches: a host file's host (by name, or by its
/// target address), or an address outside the inventory (a jump host, a
/// Proxmox node). Returns a label and the target.
fn trust_target(fleet: &Fleet, arg: &str) -> Result<(String, Target), Error> {
    let over = fleet.target_override(1)?;
    if let Some(p) = fleet.plans.iter().find(|p| p.name == arg) {
        return Ok((p.name.clone(), over.unwrap_or(p.deploy.target.clone())));
    }
    if let Ok(t) = crate::resolve::parse_target(arg) {
        let same = |p: &&HostPlan| {
            p.deploy.target.host == t.host
                && p.deploy.target.port.unwrap_or(22) == t.port.unwrap_or(22)
        };
        if let Some(p) = fleet.plans.iter().find(same) {
            return Ok((p.name.clone(), over.unwrap_or(p.deploy.target.clone())));
        }
        let looks_like_address =
            t.host.contains('.') || t.host.contains(':') || t.port.is_some() || t.user.is_some();
        if looks_like_address {
            return Ok((arg.to_string(), over.unwrap_or(t)));
        }
    }
    // Neither: the inventory's own error lists the hosts there are.
    repo::select(&fleet.plans, &[arg.to_string()])?;
    Err(Error::usage(
        format!("`{arg}` is not one host"),
        "name one host file's host, or an address: potato trust HOST | ADDR[:PORT]",
    ))
}

/// Fetches the key `arg` presents and pins it in the trust file (replacing
/// a different pinned key only with `replace`).
pub fn trust(fleet: &Fleet, arg: &str, replace: bool) -> Result<Trusted, Error> {
    let (label, target) = trust_target(fleet, arg)?;
    let opts = fleet.ssh_options()?;
    let host_err = host_error(&label);
    let (host, port, key) = ssh::fetch_host_key(&target, &opts).map_err(&host_err)?;
    let kh_name = ssh::known_hosts_name(&host, port);
    let presented = format!("{} {}", key.key_type, key.fingerprint);
    let (action, previous) = match ssh::check_pin(&opts, &host, port, &key).map_err(&host_err)? {
        ssh::PinCheck::Revoked(at) => {
            return Err(Error::Host {
                host: label.clone(),
                message: format!(
                    "{kh_name} presents {presented}, which {at} marks @revoked; potato will not trust it"
                ),
            });
        }
        ssh::PinCheck::Pinned => ("unchanged", Vec::new()),
        ssh::PinCheck::New => {
            ssh::pin_host_key(&opts.trust_file, &host, port, &key, false).map_err(&host_err)?;
            ("recorded", Vec::new())
        }
        ssh::PinCheck::Differs(old) if !replace => {
            let old: Vec<String> = old
                .iter()
                .map(|k| format!("{} {}", k.key_type, k.fingerprint))
                .collect();
            return Err(Error::usage(
                format!(
                    "{label} ({kh_name}) now presents {presented}\n  but {} pins {}\n  nothing was changed",
                    opts.trust_file,
                    old.join(" and ")
                ),
                format!(
                    "if the host was reinstalled and the new fingerprint is right: potato trust {arg} --replace"
                ),
            ));
        }
        ssh::PinCheck::Differs(old) => {
            ssh::pin_host_key(&opts.trust_file, &host, port, &key, true).map_err(&host_err)?;
            ("replaced", old)
        }
    };
    let previous = previous
        .iter()
        .map(|k| format!("{} {}", k.key_type, k.fingerprint))
        .collect();
    Ok(Trusted {
        label: label.clone(),
        known_hosts_name: kh_name,
        key,
        action,
        previous,
        file: opts.trust_file,
    })
}
