//! ~/.ssh/config for potato's targets: Host, HostName, User, Port, IdentityFile
//! and ProxyJump, parsed by the ssh2-config crate.
//!
//! Owns turning a host file's target ("root@n250", "n250.lan:2222", a Host
//! alias) into where to connect, as whom, with which key and through which jump
//! hosts. Values given on the command line or in the host file win over the
//! config file, as with OpenSSH.

use std::io::BufReader;

use camino::{Utf8Path, Utf8PathBuf};
use ssh2_config::{ParseRule, SshConfig};

use crate::plan::Target;

/// A target with ~/.ssh/config applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub user: String,
    /// The address to connect to (HostName), also the known_hosts name.
    pub host: String,
    pub port: u16,
    pub identity: Option<Utf8PathBuf>,
    /// Jump hosts, outermost first.
    pub jumps: Vec<Target>,
}

/// The parsed config file, or an empty one.
pub struct Config {
    inner: Option<SshConfig>,
}

impl Config {
    /// Reads `file`, or ~/.ssh/config when None; a missing default file is empty.
    pub fn load(file: Option<&Utf8Path>) -> Result<Config, String> {
        let path = match file {
            Some(f) => f.to_path_buf(),
            None => match std::env::var_os("HOME") {
                Some(home) => {
                    Utf8PathBuf::from(home.to_string_lossy().as_ref()).join(".ssh/config")
                }
                None => return Ok(Config { inner: None }),
            },
        };
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.is_none() => {
                return Ok(Config { inner: None });
            }
            Err(e) => return Err(format!("{path}: {e}")),
        };
        let parsed = SshConfig::default()
            .parse(&mut BufReader::new(f), ParseRule::ALLOW_UNKNOWN_FIELDS)
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(Config {
            inner: Some(parsed),
        })
    }

    /// Applies the config to a target. Explicit values (user, port, identity)
    /// win over the file's.
    pub fn resolve(
        &self,
        target: &Target,
        identity: Option<&Utf8Path>,
    ) -> Result<Resolved, String> {
        let params = self.inner.as_ref().map(|c| c.query(&target.host));
        let host = params
            .as_ref()
            .and_then(|p| p.host_name.clone())
            .unwrap_or_else(|| target.host.clone());
        let port = target
            .port
            .or(params.as_ref().and_then(|p| p.port))
            .unwrap_or(22);
        let user = target
            .user
            .clone()
            .or(params.as_ref().and_then(|p| p.user.clone()))
            .unwrap_or_else(|| "root".into());
        let identity = identity.map(Utf8Path::to_path_buf).or_else(|| {
            params
                .as_ref()
                .and_then(|p| p.identity_file.clone())
                .and_then(|files| files.into_iter().find(|f| f.exists()))
                .and_then(|f| Utf8PathBuf::from_path_buf(f).ok())
        });
        let mut jumps = Vec::new();
        for j in params
            .as_ref()
            .and_then(|p| p.proxy_jump.clone())
            .unwrap_or_default()
        {
            if j.eq_ignore_ascii_case("none") {
                continue;
            }
            let t = crate::resolve::parse_target(&j).map_err(|e| format!("ProxyJump {j}: {e}"))?;
            jumps.push(t);
        }
        Ok(Resolved {
            user,
            host,
            port,
            identity,
            jumps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let parsed = SshConfig::default()
            .parse(&mut text.as_bytes(), ParseRule::ALLOW_UNKNOWN_FIELDS)
            .unwrap();
        Config {
            inner: Some(parsed),
        }
    }

    fn target(s: &str) -> Target {
        crate::resolve::parse_target(s).unwrap()
    }

    #[test]
    fn host_alias_expands() {
        let c = config(
            "Host n250\n  HostName 10.213.9.2\n  User deploy\n  Port 2222\n  ProxyJump admin@bastion:22\n",
        );
        let r = c.resolve(&target("n250"), None).unwrap();
        assert_eq!(
            (r.user.as_str(), r.host.as_str(), r.port),
            ("deploy", "10.213.9.2", 2222)
        );
        assert_eq!(r.jumps, vec![target("admin@bastion:22")]);
    }

    #[test]
    fn explicit_values_win() {
        let c = config("Host n250\n  HostName 10.213.9.2\n  User deploy\n  Port 2222\n");
        let r = c
            .resolve(&target("root@n250:22"), Some(Utf8Path::new("/k")))
            .unwrap();
        assert_eq!((r.user.as_str(), r.port), ("root", 22));
        assert_eq!(r.identity.as_deref(), Some(Utf8Path::new("/k")));
    }

    #[test]
    fn no_config_means_defaults() {
        let c = Config { inner: None };
        let r = c.resolve(&target("10.213.9.2"), None).unwrap();
        assert_eq!(
            (r.user.as_str(), r.host.as_str(), r.port, r.jumps.len()),
            ("root", "10.213.9.2", 22, 0)
        );
    }
}
