//! The container catalog: services a host file may name, with their defaults.
//!
//! Owns the embedded `services.toml`, its shape, and looking a service up. It does
//! not decide what a host may run (that is `resolve`) nor how a service is rendered.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::units::parse_mib;

const EMBEDDED: &str = include_str!("services.toml");

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// A port published on the host: "HOST:CONTAINER/PROTO".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Publish {
    pub host: u16,
    pub container: u16,
    pub proto: Proto,
}

impl Publish {
    pub fn parse(s: &str) -> Result<Publish, String> {
        let (ports, proto) = match s.split_once('/') {
            Some((p, proto)) => (
                p,
                Proto::parse(proto).ok_or_else(|| {
                    format!("unknown protocol `{proto}` in `{s}`: use tcp or udp")
                })?,
            ),
            None => (s, Proto::Tcp),
        };
        let (host, container) = ports.split_once(':').ok_or_else(|| {
            format!(
                "`{s}` is not a port mapping: write \"HOST:CONTAINER\" or \"HOST:CONTAINER/udp\""
            )
        })?;
        Ok(Publish {
            host: parse_port(host)?,
            container: parse_port(container)?,
            proto,
        })
    }
}

impl std::fmt::Display for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{}",
            self.host,
            self.container,
            self.proto.as_str()
        )
    }
}

/// A port number 1..=65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range: ports are 1 to 65535")),
        Err(_) => Err(format!("`{s}` is not a port number")),
    }
}

/// One catalog entry as written in services.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    description: String,
    image: String,
    arch: Vec<String>,
    memory: String,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    web: Option<u16>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    depends: Vec<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// A catalog service with its values parsed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Service {
    pub name: String,
    pub description: String,
    pub image: String,
    pub arch: Vec<String>,
    pub memory_mib: u64,
    /// Container network zone (proxy, backend, monitoring, vpn); None inside another's namespace.
    pub zone: Option<String>,
    /// Name of the service whose network namespace this one joins.
    pub network: Option<String>,
    pub ports: Vec<Publish>,
    pub web: Option<u16>,
    pub public: bool,
    pub depends: Vec<String>,
    pub database: bool,
}

impl Service {
    pub fn supports(&self, arch: &str) -> bool {
        self.arch.iter().any(|a| a == arch)
    }
}

#[derive(Debug)]
pub struct Catalog {
    services: BTreeMap<String, Service>,
}

impl Catalog {
    /// The catalog compiled into potato. Its validity is a unit test, so this
    /// cannot fail at run time.
    pub fn builtin() -> Catalog {
        Catalog::parse(EMBEDDED).expect("embedded catalog is valid (tested)")
    }

    pub fn parse(text: &str) -> Result<Catalog, String> {
        let raw: BTreeMap<String, RawEntry> = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut services = BTreeMap::new();
        for (name, r) in raw {
            let ctx = |e: String| format!("catalog service `{name}`: {e}");
            let ports = r
                .ports
                .iter()
                .map(|p| Publish::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ctx)?;
            let memory_mib = parse_mib(&r.memory).map_err(ctx)?;
            if r.zone.is_none() == r.network.is_none() {
                return Err(ctx("needs exactly one of `zone` and `network`".into()));
            }
            services.insert(
                name.clone(),
                Service {
                    name,
                    description: r.description,
                    image: r.image,
                    arch: r.arch,
                    memory_mib,
                    zone: r.zone,
                    network: r.network,
                    ports,
                    web: r.web,
                    public: r.public,
                    depends: r.depends,
                    database: r.kind.as_deref() == Some("database"),
                },
            );
        }
        let cat = Catalog { services };
        cat.check_references()?;
        Ok(cat)
    }

    fn check_references(&self) -> Result<(), String> {
        for s in self.services.values() {
            for d in s.depends.iter().chain(s.network.iter()) {
                if !self.services.contains_key(d) {
                    return Err(format!(
                        "catalog service `{}` refers to unknown service `{d}`",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_references_resolve() {
        let c = Catalog::parse(EMBEDDED).unwrap();
        for name in [
            "traefik",
            "postgres",
            "gluetun",
            "qbittorrent",
            "jellyfin",
            "kopia",
            "autoheal",
        ] {
            assert!(c.get(name).is_some(), "{name} missing");
        }
        assert!(c.get("postgres").unwrap().database);
        assert_eq!(
            c.get("qbittorrent").unwrap().network.as_deref(),
            Some("gluetun")
        );
    }

    #[test]
    fn every_image_is_pinned() {
        let c = Catalog::builtin();
        for s in c.services.values() {
            let tag = s.image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest",
                "{} is not pinned: {}",
                s.name,
                s.image
            );
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        let bad_ref = "[a]\ndescription='x'\nimage='i:1'\narch=['x86_64']\nmemory='1MiB'\nzone='proxy'\ndepends=['nope']\n";
        assert!(
            Catalog::parse(bad_ref)
                .unwrap_err()
                .contains("unknown service `nope`")
        );
        let bad_port = "[a]\ndescription='x'\nimage='i:1'\narch=['x86_64']\nmemory='1MiB'\nzone='proxy'\nports=['0:80']\n";
        assert!(
            Catalog::parse(bad_port)
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn publish_parses() {
        assert_eq!(
            Publish::parse("22000:22000/udp").unwrap(),
            Publish {
                host: 22000,
                container: 22000,
                proto: Proto::Udp
            }
        );
        assert!(Publish::parse("80").is_err());
        assert!(Publish::parse("80:80/sctp").is_err());
    }
}
