//! Commands that talk to running hosts outside a deploy: `generations`,
//! `rollback`, `status`, `exec`, `trust`.

use serde::Serialize;
use serde_json::json;

use super::deploy::{build, ssh_options, target_override};
use crate::cli::{Connection, Global, NixArgs};
use crate::error::Error;
use crate::host::{Remote, paths, runner};
use crate::nix::StorePath;
use crate::plan::{HostPlan, Target};
use crate::repo;
use crate::ssh;

pub(super) fn one_host(
    g: &Global,
    name: &str,
    conn: &Connection,
) -> Result<(camino::Utf8PathBuf, HostPlan, Target), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = repo::select(&plans, &[name.to_string()])?[0].clone();
    let target = target_override(conn, 1)?.unwrap_or_else(|| plan.deploy.target.clone());
    Ok((root, plan, target))
}

pub(super) fn connect(
    root: &camino::Utf8Path,
    g: &Global,
    host: &str,
    target: &Target,
    conn: &Connection,
) -> Result<Remote, Error> {
    let mut opts = ssh_options(g, root, conn)?;
    opts.host_name = Some(ssh::trust_hint(host, conn.target.clone()));
    Remote::connect(target, &opts).map_err(|e| Error::remote(host, e))
}

/// One line of `nix-env --list-generations`, with its store path.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub number: u32,
    pub date: String,
    pub current: bool,
    pub store_path: Option<StorePath>,
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

pub fn generations(g: &Global, name: &str, conn: &Connection) -> Result<(), Error> {
    let (root, plan, target) = one_host(g, name, conn)?;
    let remote = connect(&root, g, &plan.name, &target, conn)?;
    let gens = list(&remote, &plan.name)?;
    if g.json {
        println!("{}", json!({ "host": plan.name, "generations": gens }));
    } else {
        for item in &gens {
            println!(
                "{:>4} {} {:<9} {}",
                item.number,
                item.date,
                if item.current { "(current)" } else { "" },
                item.store_path.as_ref().map(|p| p.as_str()).unwrap_or("?")
            );
        }
    }
    Ok(())
}

pub fn rollback(g: &Global, name: &str, to: Option<u32>, conn: &Connection) -> Result<(), Error> {
    let (root, plan, target) = one_host(g, name, conn)?;
    let mut remote = connect(&root, g, &plan.name, &target, conn)?;
    let holder = format!("potato rollback (pid {})", std::process::id());
    remote
        .lock(&plan.name, &holder)
        .map_err(|e| Error::remote(&plan.name, e))?;
    let gens = list(&remote, &plan.name)?;
    let current = gens.iter().find(|x| x.current).map(|x| x.number);
    let wanted = match to {
        Some(n) => n,
        None => {
            let cur = current.ok_or_else(|| Error::Host {
                host: plan.name.clone(),
                message: "no current generation".into(),
            })?;
            gens.iter()
                .map(|x| x.number)
                .filter(|n| *n < cur)
                .max()
                .ok_or_else(|| Error::Host {
                    host: plan.name.clone(),
                    message: format!("generation {cur} is the oldest; nothing to roll back to"),
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
    if g.verbose > 0 {
        eprint!("{}", out.stdout);
    }
    if g.json {
        println!(
            "{}",
            json!({ "host": plan.name, "from": current, "to": wanted })
        );
    } else if !g.quiet {
        println!(
            "{}: generation {} is current (was {})",
            plan.name,
            wanted,
            current.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

pub fn status(
    g: &Global,
    hosts: &[String],
    conn: &Connection,
    nix_args: &NixArgs,
) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let selected: Vec<HostPlan> = repo::select(&plans, hosts)?.into_iter().cloned().collect();
    let target = target_override(conn, selected.len())?;
    let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
    let tops = build(&root, nix_args, &names)?;
    let opts = ssh_options(g, &root, conn)?;
    // Every host at once (reading only: nothing is written on a host).
    let parallel = selected.len();
    let rows = runner::for_each(selected, parallel, |p: HostPlan| {
        let t = target.clone().unwrap_or_else(|| p.deploy.target.clone());
        let mut opts = opts.clone();
        opts.host_name = Some(ssh::trust_hint(&p.name, conn.target.clone()));
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
        json!({ "host": p.name, "state": state, "running": running, "repo": tops[&p.name], "detail": detail, "bootstrapped": bootstrapped })
    });
    if g.json {
        println!("{}", json!({ "hosts": rows }));
    } else {
        for r in &rows {
            let boot = match &r["bootstrapped"] {
                serde_json::Value::Null => "not bootstrapped by potato".to_string(),
                b => format!(
                    "bootstrapped {} from {}",
                    ssh::output::clean(b["date"].as_str().unwrap_or("?").as_bytes()),
                    ssh::output::clean(b["commit"].as_str().unwrap_or("?").as_bytes())
                ),
            };
            println!(
                "{:<16} {:<12} {}; {boot}",
                r["host"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
                r["detail"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
    }
    Ok(())
}

/// What one host runs and its bootstrap record (JSON, or null), read without
/// writing anything there.
fn host_status(
    target: &Target,
    opts: &ssh::SshOptions,
) -> Result<(crate::host::HostState, serde_json::Value), crate::host::HostError> {
    let remote = Remote::connect(target, opts)?;
    let bootstrapped = remote
        .read_file(paths::BOOTSTRAP_MARKER)?
        .and_then(|text| serde_json::from_str(text.trim()).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok((remote.state()?, bootstrapped))
}

pub fn exec(
    g: &Global,
    hosts: &[String],
    conn: &Connection,
    parallel: usize,
    command: &[String],
) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let selected: Vec<HostPlan> = repo::select(&plans, hosts)?.into_iter().cloned().collect();
    let target = target_override(conn, selected.len())?;
    let opts = ssh_options(g, &root, conn)?;
    let line = crate::render::format::sh::words(command.iter().map(String::as_str))
        .map_err(|e| Error::usage(format!("the command: {e}"), "a command cannot hold NUL"))?;
    let width = selected.iter().map(|p| p.name.len()).max().unwrap_or(4);
    let results: Vec<(String, Result<ssh::Output, String>)> =
        runner::for_each(selected, parallel, |p: HostPlan| {
            let t = target.clone().unwrap_or_else(|| p.deploy.target.clone());
            let mut opts = opts.clone();
            opts.host_name = Some(ssh::trust_hint(&p.name, conn.target.clone()));
            let out = Remote::connect(&t, &opts)
                .and_then(|r| r.run(&line))
                .map_err(|e| e.to_string());
            (p.name, out)
        });
    let mut failed = 0;
    for (host, r) in &results {
        match r {
            Ok(out) => {
                if !g.json {
                    for l in out.stdout.lines() {
                        println!("{host:>width$} | {l}");
                    }
                    for l in out.stderr.lines() {
                        eprintln!("{host:>width$} ! {l}");
                    }
                }
                if !out.success() {
                    failed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                if !g.json {
                    eprintln!("{host:>width$} ! {e}");
                }
            }
        }
    }
    if g.json {
        let v: Vec<_> = results
            .iter()
            .map(|(h, r)| match r {
                Ok(o) => {
                    json!({ "host": h, "exit": o.code, "stdout": o.stdout, "stderr": o.stderr })
                }
                Err(e) => json!({ "host": h, "error": e }),
            })
            .collect();
        println!("{}", json!({ "hosts": v }));
    }
    if failed > 0 {
        return Err(Error::HostsFailed {
            failed,
            total: results.len(),
        });
    }
    Ok(())
}

/// What `potato trust ARG` reaches: a host file's host (by name, or by its
/// target address), or an address outside the inventory (a jump host, a
/// Proxmox node). Returns the repository, a label and the target.
fn trust_target(
    g: &Global,
    arg: &str,
    conn: &Connection,
) -> Result<(camino::Utf8PathBuf, String, Target), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let over = target_override(conn, 1)?;
    if let Some(p) = plans.iter().find(|p| p.name == arg) {
        return Ok((
            root,
            p.name.clone(),
            over.unwrap_or(p.deploy.target.clone()),
        ));
    }
    if let Ok(t) = crate::resolve::parse_target(arg) {
        let same = |p: &&HostPlan| {
            p.deploy.target.host == t.host
                && p.deploy.target.port.unwrap_or(22) == t.port.unwrap_or(22)
        };
        if let Some(p) = plans.iter().find(same) {
            return Ok((
                root,
                p.name.clone(),
                over.unwrap_or(p.deploy.target.clone()),
            ));
        }
        let looks_like_address =
            t.host.contains('.') || t.host.contains(':') || t.port.is_some() || t.user.is_some();
        if looks_like_address {
            return Ok((root, arg.to_string(), over.unwrap_or(t)));
        }
    }
    // Neither: the inventory's own error lists the hosts there are.
    repo::select(&plans, &[arg.to_string()])?;
    Err(Error::usage(
        format!("`{arg}` is not one host"),
        "name one host file's host, or an address: potato trust HOST | ADDR[:PORT]",
    ))
}

pub fn trust(g: &Global, name: &str, replace: bool, conn: &Connection) -> Result<(), Error> {
    let (root, label, target) = trust_target(g, name, conn)?;
    let opts = ssh_options(g, &root, conn)?;
    let host_err = |e: ssh::SshError| Error::Host {
        host: label.clone(),
        message: e.to_string(),
    };
    let (host, port, key) = ssh::fetch_host_key(&target, &opts).map_err(host_err)?;
    let kh_name = ssh::known_hosts_name(&host, port);
    let presented = format!("{} {}", key.key_type, key.fingerprint);
    let (action, previous) = match ssh::check_pin(&opts, &host, port, &key).map_err(host_err)? {
        ssh::PinCheck::Revoked(at) => {
            return Err(Error::Host {
                host: label,
                message: format!(
                    "{kh_name} presents {presented}, which {at} marks @revoked; potato will not trust it"
                ),
            });
        }
        ssh::PinCheck::Pinned => ("unchanged", Vec::new()),
        ssh::PinCheck::New => {
            ssh::pin_host_key(&opts.trust_file, &host, port, &key, false).map_err(host_err)?;
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
                    "if the host was reinstalled and the new fingerprint is right: potato trust {name} --replace"
                ),
            ));
        }
        ssh::PinCheck::Differs(old) => {
            ssh::pin_host_key(&opts.trust_file, &host, port, &key, true).map_err(host_err)?;
            ("replaced", old)
        }
    };
    let previous: Vec<String> = previous
        .iter()
        .map(|k| format!("{} {}", k.key_type, k.fingerprint))
        .collect();
    if g.json {
        println!(
            "{}",
            json!({ "host": label, "key_type": key.key_type, "fingerprint": key.fingerprint, "file": opts.trust_file, "action": action, "previous": previous })
        );
    } else {
        println!("{label} ({kh_name}) presents {presented}");
        match action {
            "unchanged" => println!("already pinned in {}", opts.trust_file),
            "replaced" => println!(
                "replaced {} with it in {}",
                previous.join(" and "),
                opts.trust_file
            ),
            _ => println!("recorded in {}", opts.trust_file),
        }
    }
    Ok(())
}
