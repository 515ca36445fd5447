//! `[fleet.cache]` as one host writes it: the port, the signing key's secret
//! (it must exist and be encrypted to this host, which decrypts it) and the
//! substituter priority. Who else uses the cache, and over which tunnel, is
//! fleet-wide wiring: `crate::cache::wire`.

use super::HostCx;
use crate::cache::{self, FleetCache};
use crate::inventory::Spanned;

impl HostCx<'_> {
    /// This host's `[fleet.cache]`, resolved into the fleet's `FleetCache`
    /// without its consumers (`cache::wire` adds them) and without the public
    /// key (`cache::attach` reads it). None when the host serves no cache.
    pub(super) fn fleet_cache(&mut self) -> Option<FleetCache> {
        let table = self.host.raw.fleet.as_ref()?.cache.as_ref()?;
        let errors_before = self.diags.len();
        let port = match &table.port {
            Some(p) => self.port(p, "cache port"),
            None => Some(cache::DEFAULT_PORT),
        };
        let priority = match &table.priority {
            Some(p) if (1..=i64::from(u32::MAX)).contains(&p.value) => Some(p.value as u32),
            Some(p) => {
                self.error(
                    &p.span,
                    format!("cache priority {} is out of range", p.value),
                    "Nix tries substituters by ascending priority: use a number from 1 up (cache.nixos.org is 40; the default 30 asks the fleet cache first)",
                );
                None
            }
            None => Some(cache::DEFAULT_PRIORITY),
        };
        let key = table
            .key
            .clone()
            .unwrap_or_else(|| Spanned::new(table.span.clone(), cache::DEFAULT_KEY_REF.into()));
        let key_secret = self.cache_key(&key);
        if self.diags.len() > errors_before {
            return None;
        }
        Some(FleetCache::new(
            &self.host.name,
            port?,
            &key_secret?,
            priority?,
        ))
    }

    /// The signing key's reference: a missing secret gets the command that
    /// makes it (`potato cache init`) rather than the generic one.
    fn cache_key(&mut self, key: &Spanned<String>) -> Option<String> {
        if let Ok(name) = crate::secrets::parse_ref(&key.value)
            && name != crate::pki::CA_KEY_SECRET
            && self.secrets.locate(&self.host.name, name).is_none()
        {
            let host = self.host.name.clone();
            self.references.entry(name.to_string()).or_insert(true);
            self.error(
                &key.span,
                format!("the fleet cache's signing key `{name}` does not exist (looked for secrets/{host}/{name}.age and secrets/shared/{name}.age)"),
                format!("create it with `potato cache init` (it reads the name here and writes secrets/{host}/{name}.age and secrets/fleet-cache.pub), then `potato gen`"),
            );
            return None;
        }
        self.secret(key)
    }
}

#[cfg(test)]
mod tests {
    use crate::resolve::testkit::{Fleet, one};

    #[test]
    fn defaults() {
        let out = Fleet::default()
            .secret("c", "fleet-cache-key")
            .host("c", "[fleet.cache]")
            .resolve();
        let c = out
            .plan()
            .cache
            .as_ref()
            .expect("the cache host has the cache");
        assert_eq!(c.host, "c");
        assert_eq!(c.port, 5080);
        assert_eq!(c.priority, 30);
        assert_eq!(c.key_secret, "fleet-cache-key");
        assert_eq!(c.key_path, "/run/potato-secrets/fleet-cache-key");
        assert_eq!(c.dir, "/var/lib/potato/cache");
        // The host decrypts its signing key like any secret it uses.
        assert!(out.plan().secrets.contains_key("fleet-cache-key"));
        assert!(out.plan().secret_files.contains_key("fleet-cache-key"));
    }

    #[test]
    fn settings_are_read() {
        let out = Fleet::default()
            .secret("shared", "my-key")
            .host(
                "c",
                "[fleet.cache]\nport = 8081\nkey = \"secret:my-key\"\npriority = 10",
            )
            .resolve();
        let c = out.plan().cache.as_ref().unwrap();
        assert_eq!((c.port, c.priority), (8081, 10));
        assert_eq!(c.key_path, "/run/potato-secrets/my-key");
    }

    #[test]
    fn a_host_without_the_table_serves_no_cache() {
        assert!(one("a", "").plan().cache.is_none());
    }

    #[test]
    fn a_bad_key_reference_is_refused() {
        one("c", "[fleet.cache]\nkey = \"fleet-cache-key\"").assert_error(
            "`fleet-cache-key` is not a secret reference",
            "\"fleet-cache-key\"",
        );
        one("c", "[fleet.cache]\nkey = \"secret:Bad Name\"")
            .assert_error("is not a valid secret name", "\"secret:Bad Name\"");
        one("c", "[fleet.cache]\nkey = \"secret:fleet-ca-key\"").assert_error(
            "`fleet-ca-key` is the fleet CA's private key",
            "\"secret:fleet-ca-key\"",
        );
    }

    #[test]
    fn a_missing_key_names_potato_cache_init() {
        let out = one("c", "[fleet.cache]\nport = 5080");
        let d = out.assert_error(
            "the fleet cache's signing key `fleet-cache-key` does not exist",
            "[fleet.cache]",
        );
        assert!(
            d.hint.as_deref().unwrap().contains("`potato cache init`"),
            "{d:?}"
        );
        let out = one("c", "[fleet.cache]\nkey = \"secret:k2\"");
        let d = out.assert_error("signing key `k2` does not exist", "\"secret:k2\"");
        assert!(
            d.hint.as_deref().unwrap().contains("secrets/c/k2.age"),
            "{d:?}"
        );
    }

    #[test]
    fn port_and_priority_ranges() {
        let f = || Fleet::default().secret("c", "fleet-cache-key");
        f().host("c", "[fleet.cache]\nport = 0")
            .resolve()
            .assert_error("cache port 0 is out of range", "0");
        f().host("c", "[fleet.cache]\nport = 70000")
            .resolve()
            .assert_error("cache port 70000 is out of range", "70000");
        f().host("c", "[fleet.cache]\npriority = 0")
            .resolve()
            .assert_error("cache priority 0 is out of range", "0");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let out = Fleet::default()
            .secret("c", "fleet-cache-key")
            .host("c", "[fleet.cache]\nurl = \"http://x\"")
            .resolve();
        out.error("unknown field `url`");
    }
}
