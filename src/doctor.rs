//! What this machine has for potato, as one report: the external programs
//! (`tools`) and the commands that need them, the Nix version and its
//! effective configuration (`nix::config`), whether each configured
//! substituter and remote builder answers, and which of the fleet's systems it
//! can build. Collects only; `report::doctor` formats it. Network checks are single
//! short probes (a GET of `nix-cache-info`, a TCP connect), never a login.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::nix::config::{self, Builders, Effective};
use crate::tools::{self, Presence};

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Report {
    /// False when a program some command needs is missing (exit 1).
    pub ok: bool,
    pub programs: Vec<Presence>,
    pub commands: Vec<CommandNeeds>,
    pub nix: NixReport,
    /// The fleet's host systems and who builds them (empty outside a repo).
    pub fleet: Vec<HostSystem>,
}

/// A potato command and the programs it runs.
#[derive(Debug, Serialize)]
pub struct CommandNeeds {
    pub command: String,
    pub programs: Vec<&'static str>,
    pub missing: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct NixReport {
    /// "nix (Nix) 2.8.0"; None when nix is missing or did not answer.
    pub version: Option<String>,
    /// Why the configuration could not be read.
    pub error: Option<String>,
    /// `nix show-config` or `nix config show`.
    pub config_command: Option<String>,
    pub nix_command: bool,
    pub flakes: bool,
    pub system: Option<String>,
    pub extra_platforms: Vec<String>,
    pub substituters: Vec<Probe>,
    /// The builders setting as configured, e.g. "@/etc/nix/machines".
    pub builders_setting: Option<String>,
    /// `@FILE`s it names and whether each exists.
    pub builder_files: Vec<BuilderFile>,
    pub builders: Vec<Probe>,
    /// Machine lines Nix would refuse.
    pub builder_errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BuilderFile {
    pub path: String,
    pub exists: bool,
}

/// One substituter or builder and what the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub uri: String,
    /// A builder's system types (empty for substituters).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub systems: Vec<String>,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Answers,
    NoAnswer,
    NotChecked,
}

/// A host's system and what can build it here.
#[derive(Debug, Serialize)]
pub struct HostSystem {
    pub host: String,
    pub system: String,
    /// "this machine", a builder's URI, or None.
    pub built_by: Option<String>,
}

/// Collects the whole report. `commands` are every potato command (from the
/// command line definition); `hosts` the fleet's (host, system) pairs.
pub fn examine(commands: &[String], hosts: &[(String, String)]) -> Report {
    let programs = tools::survey();
    let commands: Vec<CommandNeeds> = commands.iter().map(|c| needs(c, &programs)).collect();
    let ok = commands.iter().all(|c| c.missing.is_empty());
    let nix = match programs.iter().find(|p| p.program == tools::Program::Nix) {
        Some(p) if p.path.is_some() => nix_report(),
        _ => NixReport::unavailable("nix is not installed".into()),
    };
    let fleet = hosts
        .iter()
        .map(|(host, system)| HostSystem {
            host: host.clone(),
            system: system.clone(),
            built_by: builder_for(&nix, system),
        })
        .collect();
    Report {
        ok,
        programs,
        commands,
        nix,
        fleet,
    }
}

impl Report {
    /// The programs some command needs that are not on PATH (exit 1 when any).
    pub fn missing_programs(&self) -> Vec<String> {
        self.programs
            .iter()
            .filter(|p| p.path.is_none() && !p.info.needed_by.is_empty())
            .map(|p| p.info.name.to_string())
            .collect()
    }
}

fn needs(command: &str, programs: &[Presence]) -> CommandNeeds {
    let used: Vec<&Presence> = programs
        .iter()
        .filter(|p| p.info.needed_by.contains(&command))
        .collect();
    CommandNeeds {
        command: command.to_string(),
        programs: used.iter().map(|p| p.info.name).collect(),
        missing: used
            .iter()
            .filter(|p| p.path.is_none())
            .map(|p| p.info.name)
            .collect(),
    }
}

impl NixReport {
    fn unavailable(error: String) -> NixReport {
        NixReport {
            version: None,
            error: Some(error),
            config_command: None,
            nix_command: false,
            flakes: false,
            system: None,
            extra_platforms: Vec::new(),
            substituters: Vec::new(),
            builders_setting: None,
            builder_files: Vec::new(),
            builders: Vec::new(),
            builder_errors: Vec::new(),
        }
    }
}

fn nix_report() -> NixReport {
    let eff: Effective = match config::effective() {
        Ok(e) => e,
        Err(e) => return NixReport::unavailable(e.to_string()),
    };
    let s = &eff.settings;
    let system = s.get("system").map(str::to_string);
    let builders_setting = s.get("builders").map(str::to_string);
    let builders = Builders::parse_with_files(
        builders_setting.as_deref().unwrap_or(""),
        system.as_deref().unwrap_or(""),
    );
    // Every probe at once: each waits at most PROBE_TIMEOUT.
    let (substituters, machines) = std::thread::scope(|scope| {
        let subs: Vec<_> = s
            .list("substituters")
            .into_iter()
            .map(|uri| scope.spawn(move || probe_substituter(&uri)))
            .collect();
        let machines: Vec<_> = builders
            .machines
            .iter()
            .map(|m| scope.spawn(move || probe_builder(&m.uri, &m.systems)))
            .collect();
        (
            subs.into_iter()
                .map(|h| h.join().expect("probe thread"))
                .collect::<Vec<_>>(),
            machines
                .into_iter()
                .map(|h| h.join().expect("probe thread"))
                .collect::<Vec<_>>(),
        )
    });
    NixReport {
        version: Some(eff.version.text.clone()),
        error: None,
        config_command: Some(format!("nix {}", eff.shown_by)),
        nix_command: eff.nix_command,
        flakes: s
            .list("experimental-features")
            .iter()
            .any(|f| f == "flakes"),
        system,
        extra_platforms: s.list("extra-platforms"),
        substituters,
        builders_setting,
        builder_files: builders
            .files
            .iter()
            .map(|(path, exists)| BuilderFile {
                path: path.clone(),
                exists: *exists,
            })
            .collect(),
        builders: machines,
        builder_errors: builders.errors.clone(),
    }
}

/// file:// → a directory holding nix-cache-info; http(s):// → GET
/// URL/nix-cache-info; ssh:// → its SSH port accepts a connection.
pub fn probe_substituter(uri: &str) -> Probe {
    let (status, detail) = if let Some(path) = uri.strip_prefix("file://") {
        probe_file_cache(Path::new(path.split('?').next().unwrap_or("")))
    } else if uri.starts_with("http://") || uri.starts_with("https://") {
        probe_http_cache(uri)
    } else if config::ssh_endpoint(uri).is_some() {
        probe_ssh(uri)
    } else {
        (
            Status::NotChecked,
            "not checked: only file://, http(s):// and ssh:// stores are probed".into(),
        )
    };
    Probe {
        uri: uri.to_string(),
        systems: Vec::new(),
        status,
        detail,
    }
}

/// A builder answers when its SSH port accepts a TCP connection (potato does
/// not log in: Nix does that with its own user and key).
pub fn probe_builder(uri: &str, systems: &[String]) -> Probe {
    let (status, detail) = if config::ssh_endpoint(uri).is_some() {
        probe_ssh(uri)
    } else {
        (
            Status::NotChecked,
            "not checked: not an ssh:// or ssh-ng:// builder".into(),
        )
    };
    Probe {
        uri: uri.to_string(),
        systems: systems.to_vec(),
        status,
        detail,
    }
}

/// A binary cache's nix-cache-info names its store directory.
fn is_cache_info(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("StoreDir:"))
}

fn probe_file_cache(dir: &Path) -> (Status, String) {
    let info = dir.join("nix-cache-info");
    match std::fs::read_to_string(&info) {
        Ok(text) if is_cache_info(&text) => (Status::Answers, format!("{} found", info.display())),
        Ok(_) => (
            Status::NoAnswer,
            format!("{} has no StoreDir line", info.display()),
        ),
        Err(e) => (Status::NoAnswer, format!("{}: {e}", info.display())),
    }
}

fn probe_http_cache(uri: &str) -> (Status, String) {
    let base = uri.split('?').next().unwrap_or(uri).trim_end_matches('/');
    let url = format!("{base}/nix-cache-info");
    let agent = ureq::AgentBuilder::new().timeout(PROBE_TIMEOUT).build();
    match agent.get(&url).call() {
        Ok(resp) => {
            let code = resp.status();
            match resp.into_string() {
                Ok(body) if is_cache_info(&body) => (Status::Answers, format!("GET {url}: {code}")),
                Ok(_) => (
                    Status::NoAnswer,
                    format!("GET {url}: {code}, but not a nix-cache-info (no StoreDir line)"),
                ),
                Err(e) => (Status::NoAnswer, format!("GET {url}: {e}")),
            }
        }
        Err(ureq::Error::Status(code, _)) => (Status::NoAnswer, format!("GET {url}: HTTP {code}")),
        Err(e) => (Status::NoAnswer, format!("GET {url}: {e}")),
    }
}

/// TCP to the SSH port, with ~/.ssh/config's HostName and Port applied (as
/// for this user; a Nix daemon connects as root).
fn probe_ssh(uri: &str) -> (Status, String) {
    let Some(ep) = config::ssh_endpoint(uri) else {
        return (Status::NotChecked, "not checked: no host in the URI".into());
    };
    let target = crate::plan::Target {
        user: ep.user.clone(),
        host: ep.host.clone(),
        port: ep.port,
    };
    let resolved = crate::ssh::config::Config::load(None).and_then(|c| c.resolve(&target, None));
    let (host, port) = match resolved {
        Ok(r) if !r.jumps.is_empty() => {
            return (
                Status::NotChecked,
                format!(
                    "not checked: ~/.ssh/config reaches {} through ProxyJump",
                    ep.host
                ),
            );
        }
        Ok(r) => (r.host, r.port),
        Err(_) => (ep.host.clone(), ep.port.unwrap_or(22)),
    };
    tcp_answers(&host, port)
}

/// Whether `host:port` accepts a TCP connection within the probe timeout.
pub fn tcp_answers(host: &str, port: u16) -> (Status, String) {
    let addrs = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return (Status::NoAnswer, format!("{host}: does not resolve ({e})")),
    };
    let mut last = format!("{host}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(_) => return (Status::Answers, format!("TCP {addr} accepts connections")),
            Err(e) => last = format!("TCP {addr}: {e}"),
        }
    }
    (Status::NoAnswer, last)
}

/// Who builds `system`: this machine (its system or extra-platforms), else the
/// first builder that lists it.
fn builder_for(nix: &NixReport, system: &str) -> Option<String> {
    if nix.system.as_deref() == Some(system) || nix.extra_platforms.iter().any(|p| p == system) {
        return Some("this machine".into());
    }
    nix.builders
        .iter()
        .find(|b| b.systems.iter().any(|s| s == system))
        .map(|b| b.uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_port_that_listens_answers_and_a_closed_one_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(tcp_answers("127.0.0.1", port).0, Status::Answers);
        drop(listener);
        let (status, detail) = tcp_answers("127.0.0.1", port);
        assert_eq!(status, Status::NoAnswer, "{detail}");
    }

    #[test]
    fn a_builder_over_ssh_is_probed_at_its_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = probe_builder(
            &format!("ssh://nix@127.0.0.1:{port}"),
            &["aarch64-linux".into()],
        );
        assert_eq!(p.status, Status::Answers, "{}", p.detail);
        let p = probe_builder("local", &[]);
        assert_eq!(p.status, Status::NotChecked);
    }

    #[test]
    fn systems_are_built_here_or_by_a_builder_that_lists_them() {
        let mut nix = NixReport::unavailable(String::new());
        nix.system = Some("x86_64-linux".into());
        nix.extra_platforms = vec!["i686-linux".into()];
        nix.builders = vec![Probe {
            uri: "ssh://arm".into(),
            systems: vec!["aarch64-linux".into()],
            status: Status::NoAnswer,
            detail: String::new(),
        }];
        assert_eq!(
            builder_for(&nix, "x86_64-linux").as_deref(),
            Some("this machine")
        );
        assert_eq!(
            builder_for(&nix, "i686-linux").as_deref(),
            Some("this machine")
        );
        assert_eq!(
            builder_for(&nix, "aarch64-linux").as_deref(),
            Some("ssh://arm")
        );
        assert_eq!(builder_for(&nix, "riscv64-linux"), None);
    }
}
