//! The deployer's Nix as it is configured: the version (`nix --version`), the
//! effective settings (`nix show-config`, `nix config show` from Nix 2.20 on,
//! where it was renamed), and the `builders` setting parsed the way Nix parses
//! it (libstore's machines.cc: entries split at newlines and `;`, `#` starts a
//! comment, `@FILE` reads more entries from a file, a schemeless URI means
//! `ssh://`). Reads only; whether substituters and builders answer is
//! `doctor`'s business.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use super::NixError;
use crate::tools::{self, Program};

/// `nix --version`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The whole line, e.g. "nix (Nix) 2.8.0".
    pub text: String,
    pub major: u32,
    pub minor: u32,
}

/// `key = value` settings as `nix show-config` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(BTreeMap<String, String>);

/// The effective configuration and how it was read.
#[derive(Debug, Clone)]
pub struct Effective {
    pub version: Version,
    /// The subcommand that printed it ("show-config" or "config show").
    pub shown_by: String,
    /// Whether nix.conf enables `nix-command` (when it does not, the settings
    /// were read with `--extra-experimental-features nix-command`).
    pub nix_command: bool,
    pub settings: Settings,
}

/// One remote build machine (a line of the builders setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The store URI, with `ssh://` put before a schemeless host as Nix does.
    pub uri: String,
    /// System types it builds (default: the deployer's `system`).
    pub systems: Vec<String>,
    pub ssh_key: Option<String>,
    pub max_jobs: u32,
    /// The builder's SSH host key, base64 of a known_hosts key ("ssh-ed25519
    /// AAAA..."), the line's 8th field.
    pub host_key: Option<String>,
}

/// The builders setting, expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Builders {
    pub machines: Vec<Machine>,
    /// `@FILE`s named, and whether each could be read (Nix takes a missing
    /// file as no builders).
    pub files: Vec<(String, bool)>,
    /// Lines Nix would refuse, with why.
    pub errors: Vec<String>,
}

/// Where an `ssh://` or `ssh-ng://` store URI connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshEndpoint {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Version {
    /// "nix (Nix) 2.8.0" → 2.8 (the last number on the line: Nix's own
    /// version comes last in vendors' builds too); None without one.
    pub fn parse(text: &str) -> Option<Version> {
        let line = text.lines().next()?.trim();
        let number = line
            .split_whitespace()
            .rfind(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
        let mut parts = number.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version {
            text: line.to_string(),
            major,
            minor,
        })
    }

    /// The subcommand that prints the configuration on this version.
    pub fn config_show(&self) -> &'static [&'static str] {
        if (self.major, self.minor) >= (2, 20) {
            &["config", "show"]
        } else {
            &["show-config"]
        }
    }
}

impl Settings {
    /// Parses `name = value` lines; a value may be empty or hold spaces.
    pub fn parse(text: &str) -> Settings {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(" =") {
                let k = k.trim();
                if !k.is_empty() && !k.contains(char::is_whitespace) {
                    map.insert(k.to_string(), v.trim().to_string());
                }
            }
        }
        Settings(map)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A whitespace-separated list setting; empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// Runs `nix --version` and prints the configuration with the subcommand that
/// version has. A nix.conf without `nix-command` is read once more with it
/// enabled for that call only, and reported as not enabled.
pub fn effective() -> Result<Effective, NixError> {
    let nix = tools::find(Program::Nix)?;
    let version_text = output(Command::new(&nix).arg("--version"))?;
    let version = Version::parse(&version_text).ok_or_else(|| NixError::Output {
        command: "nix --version".into(),
        detail: format!("no version number in {:?}", version_text.trim()),
    })?;
    let show = version.config_show();
    let (text, nix_command) = match output(Command::new(&nix).args(show)) {
        Ok(text) => (text, true),
        Err(NixError::Failed { stderr, .. }) if stderr.contains("'nix-command' is disabled") => {
            let text = output(
                Command::new(&nix)
                    .args(["--extra-experimental-features", "nix-command"])
                    .args(show),
            )?;
            (text, false)
        }
        Err(e) => return Err(e),
    };
    let settings = Settings::parse(&text);
    let nix_command = nix_command
        && settings
            .list("experimental-features")
            .iter()
            .any(|f| f == "nix-command");
    Ok(Effective {
        version,
        shown_by: show.join(" "),
        nix_command,
        settings,
    })
}

fn output(cmd: &mut Command) -> Result<String, NixError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NixError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NixError::Failed {
            command: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Builders {
    /// Expands the builders setting; `this_system` is the default system type,
    /// `read` reads an `@FILE` (None when it cannot be read).
    pub fn parse(
        setting: &str,
        this_system: &str,
        read: &mut dyn FnMut(&Path) -> Option<String>,
    ) -> Builders {
        let mut b = Builders::default();
        b.expand(setting, this_system, read, 0);
        b
    }

    /// Reads `@FILE`s from the file system.
    pub fn parse_with_files(setting: &str, this_system: &str) -> Builders {
        Builders::parse(setting, this_system, &mut |p| {
            std::fs::read_to_string(p).ok()
        })
    }

    fn expand(
        &mut self,
        text: &str,
        this_system: &str,
        read: &mut dyn FnMut(&Path) -> Option<String>,
        depth: usize,
    ) {
        for entry in text.split(['\n', ';']) {
            let entry = entry.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            if let Some(file) = entry.strip_prefix('@') {
                let file = file.trim();
                let content = if depth < 8 {
                    read(Path::new(file))
                } else {
                    None
                };
                self.files.push((file.to_string(), content.is_some()));
                if let Some(content) = content {
                    self.expand(&content, this_system, read, depth + 1);
                }
                continue;
            }
            match Machine::parse(entry, this_system) {
                Ok(m) => self.machines.push(m),
                Err(e) => self.errors.push(e),
            }
        }
    }
}

impl Machine {
    /// One machine line: URI, systems, SSH key, max jobs, speed factor,
    /// supported features, mandatory features, base64 host key (Nix's manual,
    /// "Remote Builds"; potato does not use the speed factor and features).
    /// `-` means unset.
    pub fn parse(line: &str, this_system: &str) -> Result<Machine, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |i: usize| fields.get(i).copied().filter(|f| *f != "-");
        let uri = field(0).ok_or_else(|| format!("no store URI in {line:?}"))?;
        let uri = if uri.contains("://")
            || uri.contains('/')
            || ["auto", "daemon", "local"].contains(&uri)
            || ["auto?", "daemon?", "local?", "?"]
                .iter()
                .any(|p| uri.starts_with(p))
        {
            uri.to_string()
        } else {
            format!("ssh://{uri}")
        };
        let systems = match field(1) {
            Some(s) => s
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => vec![this_system.to_string()],
        };
        let max_jobs = match field(3) {
            Some(n) => n
                .parse()
                .map_err(|_| format!("max jobs {n:?} is not a number in {line:?}"))?,
            None => 1,
        };
        Ok(Machine {
            uri,
            systems,
            ssh_key: field(2).map(String::from),
            max_jobs,
            host_key: field(7).map(String::from),
        })
    }

    /// The store URI Nix itself opens for this machine: an `ssh://` or
    /// `ssh-ng://` URI gets the line's SSH key and host key as the store
    /// settings `ssh-key` and `base64-ssh-public-host-key`, as libstore's
    /// `Machine::openStore` does (NixOS/nix src/libstore/machines.cc; the
    /// settings are CommonSSHStoreConfig's, src/libstore/ssh-store-config.hh).
    /// Values are percent-encoded (Nix percent-decodes query values).
    pub fn store_uri(&self) -> String {
        let ssh = self.uri.starts_with("ssh://") || self.uri.starts_with("ssh-ng://");
        let mut params = Vec::new();
        // A setting already in the URI is the user's; it is not repeated.
        if ssh {
            if let Some(k) = self
                .ssh_key
                .as_ref()
                .filter(|_| !self.uri.contains("ssh-key="))
            {
                params.push(format!("ssh-key={}", percent_encode(k)));
            }
            if let Some(k) = self
                .host_key
                .as_ref()
                .filter(|_| !self.uri.contains("base64-ssh-public-host-key="))
            {
                params.push(format!("base64-ssh-public-host-key={}", percent_encode(k)));
            }
        }
        if params.is_empty() {
            return self.uri.clone();
        }
        let sep = if self.uri.contains('?') { '&' } else { '?' };
        format!("{}{sep}{}", self.uri, params.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters and '/'.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The user, host and port of an `ssh://` or `ssh-ng://` URI (None for other
/// schemes or a malformed authority).
pub fn ssh_endpoint(uri: &str) -> Option<SshEndpoint> {
    let rest = uri
        .strip_prefix("ssh://")
        .or_else(|| uri.strip_prefix("ssh-ng://"))?;
    let authority = rest.split(['?', '/']).next().unwrap_or("");
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(SshEndpoint { user, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An excerpt of `nix show-config` from Nix 2.8.0 (Debian 12's nix-bin),
    /// with an empty value and a value holding spaces.
    const SHOW_CONFIG: &str = "\
accept-flake-config = false
builders = @/etc/nix/machines
builders-use-substitutes = false
experimental-features = flakes nix-command
extra-platforms = i686-linux x86_64-v1-linux x86_64-v2-linux
substituters = https://cache.nixos.org/ file:///srv/cache?priority=10
system = x86_64-linux
trusted-substituters = 
";

    #[test]
    fn show_config_lines_become_settings() {
        let s = Settings::parse(SHOW_CONFIG);
        assert_eq!(s.get("system"), Some("x86_64-linux"));
        assert_eq!(s.get("builders"), Some("@/etc/nix/machines"));
        assert_eq!(s.get("trusted-substituters"), Some(""));
        assert_eq!(s.list("experimental-features"), ["flakes", "nix-command"]);
        assert_eq!(
            s.list("substituters"),
            ["https://cache.nixos.org/", "file:///srv/cache?priority=10"]
        );
        assert_eq!(s.list("extra-platforms").len(), 3);
        assert_eq!(s.get("sandbox"), None);
        assert!(s.list("sandbox").is_empty());
    }

    #[test]
    fn versions_choose_the_config_subcommand() {
        let v = Version::parse("nix (Nix) 2.8.0\n").unwrap();
        assert_eq!((v.major, v.minor), (2, 8));
        assert_eq!(v.text, "nix (Nix) 2.8.0");
        assert_eq!(v.config_show(), ["show-config"]);
        let v = Version::parse("nix (Nix) 2.24.9").unwrap();
        assert_eq!(v.config_show(), ["config", "show"]);
        let v = Version::parse("nix (Determinate Nix 3.6.2) 2.29.0").unwrap();
        assert_eq!((v.major, v.minor), (2, 29));
        assert_eq!(v.config_show(), ["config", "show"]);
        assert_eq!(Version::parse("nix (Nix) unknown"), None);
        assert_eq!(Version::parse(""), None);
    }

    #[test]
    fn builders_split_at_semicolons_and_newlines_and_default_the_system() {
        let b = Builders::parse(
            "builder1 aarch64-linux,armv7l-linux /root/.ssh/k 4 ; ssh-ng://nix@b2:2222 - - - # comment\n\n",
            "x86_64-linux",
            &mut |_| panic!("no files"),
        );
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        assert_eq!(
            b.machines,
            vec![
                Machine {
                    uri: "ssh://builder1".into(),
                    systems: vec!["aarch64-linux".into(), "armv7l-linux".into()],
                    ssh_key: Some("/root/.ssh/k".into()),
                    max_jobs: 4,
                    host_key: None,
                },
                Machine {
                    uri: "ssh-ng://nix@b2:2222".into(),
                    systems: vec!["x86_64-linux".into()],
                    ssh_key: None,
                    max_jobs: 1,
                    host_key: None,
                },
            ]
        );
    }

    #[test]
    fn builders_files_are_read_and_a_missing_one_means_none() {
        let mut asked = Vec::new();
        let b = Builders::parse("@/etc/nix/machines; @/nowhere", "x86_64-linux", &mut |p| {
            asked.push(p.display().to_string());
            (p == Path::new("/etc/nix/machines"))
                .then(|| "# builders\nmac x86_64-darwin\n@/etc/nix/more\n".to_string())
        });
        assert_eq!(asked, ["/etc/nix/machines", "/etc/nix/more", "/nowhere"]);
        assert_eq!(
            b.files,
            [
                ("/etc/nix/machines".to_string(), true),
                ("/etc/nix/more".to_string(), false),
                ("/nowhere".to_string(), false)
            ]
        );
        assert_eq!(b.machines.len(), 1);
        assert_eq!(b.machines[0].uri, "ssh://mac");
        assert_eq!(b.machines[0].systems, ["x86_64-darwin"]);
    }

    #[test]
    fn a_machines_file_that_names_itself_stops() {
        let b = Builders::parse("@/loop", "x86_64-linux", &mut |_| {
            Some("@/loop\n".to_string())
        });
        assert!(b.machines.is_empty());
        assert_eq!(b.files.len(), 9);
        assert!(!b.files[8].1);
    }

    #[test]
    fn bad_machine_lines_are_reported() {
        let b = Builders::parse("host x86_64-linux - many", "x86_64-linux", &mut |_| None);
        assert!(b.machines.is_empty());
        assert!(b.errors[0].contains("\"many\""), "{:?}", b.errors);
        // Special store words and paths keep their form.
        let b = Builders::parse("local ; /tmp/store", "x86_64-linux", &mut |_| None);
        let uris: Vec<&str> = b.machines.iter().map(|m| m.uri.as_str()).collect();
        assert_eq!(uris, ["local", "/tmp/store"]);
    }

    #[test]
    fn a_machine_line_keeps_its_keys_and_its_store_uri_carries_them() {
        let m = Machine::parse(
            "ssh-ng://root@b1 x86_64-linux /k/id+1 2 1 kvm - c3NoLWVkMjU1MTkgQUFBQQ==",
            "x86_64-linux",
        )
        .unwrap();
        assert_eq!(m.host_key.as_deref(), Some("c3NoLWVkMjU1MTkgQUFBQQ=="));
        assert_eq!(
            m.store_uri(),
            "ssh-ng://root@b1?ssh-key=/k/id%2B1&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQQ%3D%3D"
        );
        let m = Machine::parse("ssh://b2?compress=true - /k", "x86_64-linux").unwrap();
        assert_eq!(m.store_uri(), "ssh://b2?compress=true&ssh-key=/k");
        let m = Machine::parse("ssh://b2?ssh-key=/mine - /k", "x86_64-linux").unwrap();
        assert_eq!(m.store_uri(), "ssh://b2?ssh-key=/mine");
        // Not an SSH store: the URI as written.
        let m = Machine::parse("/tmp/store x86_64-linux /k", "x86_64-linux").unwrap();
        assert_eq!(m.store_uri(), "/tmp/store");
        assert_eq!(
            Machine::parse("b3", "x86_64-linux").unwrap().store_uri(),
            "ssh://b3"
        );
    }

    #[test]
    fn ssh_endpoints() {
        assert_eq!(
            ssh_endpoint("ssh://nix@builder:2222?ssh-key=/k"),
            Some(SshEndpoint {
                user: Some("nix".into()),
                host: "builder".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            ssh_endpoint("ssh-ng://[::1]:22"),
            Some(SshEndpoint {
                user: None,
                host: "::1".into(),
                port: Some(22)
            })
        );
        assert_eq!(ssh_endpoint("ssh://mac").unwrap().port, None);
        assert_eq!(ssh_endpoint("https://cache.nixos.org"), None);
        assert_eq!(ssh_endpoint("ssh://host:notaport"), None);
        assert_eq!(ssh_endpoint("ssh://"), None);
    }
}
