//! Image contracts: what a catalog entry's image expects of the host, read from
//! its upstream Dockerfile, entrypoint or documentation (`source`).
//!
//! Owns the contract's shape (`Contract`), parsing it from a catalog entry's
//! `[NAME.contract]` table, and the checks of an entry against its own contract
//! (health-check binaries, volumes over the image's only config). It does not
//! decide where host paths live (that is `resolve`) nor write tmpfiles rules
//! (that is `render::tmpfiles`).
//!
//! Consumers (the render code, and test doubles built from the catalog) read:
//! - `user`: uid:gid the process writes files as; with `drops_privileges` the
//!   image starts as root and its entrypoint chowns and drops to that user (the
//!   PUID/PGID images, postgres, redis, syncthing).
//! - `needs`: container paths that must exist before start; a trailing `/`
//!   marks a directory, otherwise a file (e.g. a log file another program tails).
//! - `writes`: container paths (directories) the process writes to.
//! - `binaries`: programs in the image a health check may run (`sh` included
//!   when there is a shell; a string health check needs it).
//! - `required_env`: variables the image refuses to start without, each
//!   optionally conditional: "NAME if OTHER=VALUE".
//! - `config`: the file the command reads its configuration from; with
//!   `ships_config` the image carries its only copy there, so a volume over its
//!   directory hides it.
//! - `source`: where these facts come from, or "unverified" with `notes`.

use serde::{Deserialize, Serialize};

/// A uid:gid pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };

    /// Parses "UID:GID" (numbers only: names differ between image and host).
    pub fn parse(s: &str) -> Result<Owner, String> {
        let (u, g) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not UID:GID, e.g. \"1000:1000\""))?;
        let num = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| format!("`{x}` in `{s}` is not a number: write numeric UID:GID"))
        };
        Ok(Owner {
            uid: num(u)?,
            gid: num(g)?,
        })
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// A path the image needs before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "lowercase")]
pub enum Needed {
    Dir(String),
    File(String),
}

impl Needed {
    pub fn path(&self) -> &str {
        match self {
            Needed::Dir(p) | Needed::File(p) => p,
        }
    }
}

/// A variable the image requires, possibly only when another has a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequiredEnv {
    pub name: String,
    /// (variable, value): required only when that variable has that value.
    pub when: Option<(String, String)>,
}

/// The image's contract with the host (see the module comment for each field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    pub user: Owner,
    pub drops_privileges: bool,
    pub needs: Vec<Needed>,
    pub writes: Vec<String>,
    pub binaries: Vec<String>,
    pub required_env: Vec<RequiredEnv>,
    pub config: Option<String>,
    pub ships_config: bool,
    pub source: String,
    pub notes: Option<String>,
}

/// `[NAME.contract]` as written in a catalog file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContract {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    drops_privileges: bool,
    #[serde(default)]
    needs: Vec<String>,
    #[serde(default)]
    writes: Vec<String>,
    #[serde(default)]
    binaries: Vec<String>,
    #[serde(default)]
    required_env: Vec<String>,
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    ships_config: bool,
    source: String,
    #[serde(default)]
    notes: Option<String>,
}

/// One problem of an entry with its contract: which key it is about (for the
/// location in an operator's file), what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path inside the entry, e.g. ["health"] or ["volumes", "1"].
    pub key: Vec<String>,
    pub message: String,
    pub hint: String,
}

impl RawContract {
    pub(super) fn parse(self) -> Result<Contract, String> {
        let user = match &self.user {
            Some(u) => Owner::parse(u)?,
            None => Owner::ROOT,
        };
        let needs = self
            .needs
            .iter()
            .map(|p| {
                check_abs(p, "needs")?;
                Ok(match p.strip_suffix('/') {
                    Some(dir) if !dir.is_empty() => Needed::Dir(dir.to_string()),
                    _ => Needed::File(p.clone()),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut writes = Vec::new();
        for w in &self.writes {
            check_abs(w, "writes")?;
            writes.push(w.trim_end_matches('/').to_string());
        }
        for b in &self.binaries {
            if b.is_empty() || b.contains(char::is_whitespace) {
                return Err(format!("contract binary `{b}` is not a program name"));
            }
        }
        let required_env = self
            .required_env
            .iter()
            .map(|r| parse_required(r))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(c) = &self.config {
            check_abs(c, "config")?;
        }
        if self.ships_config && self.config.is_none() {
            return Err("contract says `ships_config` but names no `config`".into());
        }
        if self.source.trim().is_empty() {
            return Err(
                "contract `source` is empty: give the upstream URL, or \"unverified\" with `notes`"
                    .into(),
            );
        }
        Ok(Contract {
            user,
            drops_privileges: self.drops_privileges,
            needs,
            writes,
            binaries: self.binaries,
            required_env,
            config: self.config,
            ships_config: self.ships_config,
            source: self.source,
            notes: self.notes,
        })
    }
}

fn check_abs(p: &str, key: &str) -> Result<(), String> {
    let clean =
        p.starts_with('/') && !p.contains(char::is_whitespace) && !p.split('/').any(|c| c == "..");
    if clean {
        Ok(())
    } else {
        Err(format!(
            "contract {key} `{p}` is not a clean absolute container path"
        ))
    }
}

fn parse_required(r: &str) -> Result<RequiredEnv, String> {
    let valid = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let (name, when) = match r.split_once(" if ") {
        Some((n, cond)) => {
            let (var, value) = cond.split_once('=').ok_or_else(|| {
                format!("required_env `{r}`: write \"NAME\" or \"NAME if OTHER=VALUE\"")
            })?;
            if !valid(var.trim()) {
                return Err(format!(
                    "required_env `{r}`: `{var}` is not a variable name"
                ));
            }
            (
                n.trim(),
                Some((var.trim().to_string(), value.trim().to_string())),
            )
        }
        None => (r.trim(), None),
    };
    if !valid(name) {
        return Err(format!(
            "required_env `{r}`: `{name}` is not a variable name"
        ));
    }
    Ok(RequiredEnv {
        name: name.to_string(),
        when,
    })
}

impl Contract {
    pub fn has_binary(&self, b: &str) -> bool {
        let base = b.rsplit('/').next().unwrap_or(b);
        self.binaries.iter().any(|x| x == b || x == base)
    }

    /// Whether `container_path` lies at or under a path the process writes.
    pub fn writes_to(&self, container_path: &str) -> bool {
        self.writes.iter().any(|w| under(container_path, w))
    }

    /// Whether the image needs `container_path` (or something below it).
    pub fn needs_under(&self, container_path: &str) -> bool {
        self.needs.iter().any(|n| under(n.path(), container_path))
    }

    /// Required variables missing from `has` (given the values of `value`).
    pub fn missing_env(
        &self,
        has: impl Fn(&str) -> bool,
        value: impl Fn(&str) -> Option<String>,
    ) -> Vec<&RequiredEnv> {
        self.required_env
            .iter()
            .filter(|r| match &r.when {
                None => true,
                Some((var, val)) => value(var).as_deref() == Some(val.as_str()),
            })
            .filter(|r| !has(&r.name))
            .collect()
    }
}

/// True when `path` is `base` or lies below it.
pub fn under(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    path == base
        || (path.starts_with(base) && path[base.len()..].starts_with('/'))
        || base.is_empty()
}

/// The programs a shell health command runs: the first word of each simple
/// command (split at `|`, `&&`, `||`, `;`), skipping variable assignments.
/// A string command runs under `/bin/sh -c`, so `sh` is always one of them.
pub fn health_binaries(cmd: &str) -> Vec<String> {
    let mut out = vec!["sh".to_string()];
    let normalized = cmd.replace("&&", ";").replace("||", ";").replace('|', ";");
    for part in normalized.split(';') {
        let first = part
            .split_whitespace()
            .find(|w| !w.contains('=') || w.starts_with('-'));
        if let Some(w) = first {
            let w = w.trim_matches(|c| c == '(' || c == ')');
            if !w.is_empty()
                && !matches!(w, "exit" | "true" | "false" | "test" | "[")
                && !out.iter().any(|x| x == w)
            {
                out.push(w.to_string());
            }
        }
    }
    out
}

/// Checks an entry's own values against its contract.
pub fn check_entry(
    contract: &Contract,
    health: Option<&str>,
    volume_targets: &[String],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(h) = health {
        for b in health_binaries(h) {
            if !contract.has_binary(&b) {
                problems.push(Problem {
                    key: vec!["health".into()],
                    message: format!(
                        "the health check runs `{b}`, which the image does not have (it has {})",
                        if contract.binaries.is_empty() {
                            "no programs listed".to_string()
                        } else {
                            contract.binaries.join(", ")
                        }
                    ),
                    hint: if b == "sh" {
                        "the image has no shell: remove `health` and say why in `health_none`"
                            .into()
                    } else {
                        format!(
                            "use a program the image has ({}), or remove `health` and say why in `health_none`",
                            contract.binaries.join(", ")
                        )
                    },
                });
                break;
            }
        }
    }
    if contract.ships_config
        && let Some(config) = &contract.config
    {
        let dir = config.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        for (i, target) in volume_targets.iter().enumerate() {
            if target != "/" && (under(dir, target) || target == config) {
                problems.push(Problem {
                    key: vec!["volumes".into(), i.to_string()],
                    message: format!(
                        "volume over `{target}` hides `{config}`, the only config the image ships"
                    ),
                    hint: "do not mount over the config directory; mount a config file of your own at the config path instead".into(),
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_binaries_are_the_commands_of_the_pipeline() {
        assert_eq!(
            health_binaries("redis-cli ping | grep -q PONG"),
            vec!["sh", "redis-cli", "grep"]
        );
        assert_eq!(
            health_binaries("curl -fsS http://x/ >/dev/null || exit 1"),
            vec!["sh", "curl"]
        );
        assert_eq!(
            health_binaries("/gluetun-entrypoint healthcheck"),
            vec!["sh", "/gluetun-entrypoint"]
        );
    }

    #[test]
    fn owner_and_required_env_parse() {
        assert_eq!(Owner::parse("472:0").unwrap(), Owner { uid: 472, gid: 0 });
        assert!(Owner::parse("grafana:0").is_err());
        let r = parse_required("WIREGUARD_PUBLIC_KEY if VPN_SERVICE_PROVIDER=custom").unwrap();
        assert_eq!(r.name, "WIREGUARD_PUBLIC_KEY");
        assert_eq!(
            r.when,
            Some(("VPN_SERVICE_PROVIDER".into(), "custom".into()))
        );
        assert!(parse_required("1BAD").is_err());
    }

    #[test]
    fn under_is_path_wise() {
        assert!(under("/etc/prometheus/prometheus.yml", "/etc/prometheus"));
        assert!(under("/etc/prometheus", "/etc/prometheus/"));
        assert!(!under("/etc/prometheus2", "/etc/prometheus"));
    }
}
