//! The fleet CA (issue 15): a certificate authority potato generates, whose
//! key is an age secret, and the certificate it signs for each host's domain
//! and wildcard. Every host trusts the CA; potato exports it for devices.
//!
//! Owns the CA and host certificates and where they live, in the repository
//! and on the host: `cert` makes and reads certificates (rcgen, x509-parser),
//! `ops` is what `potato ca` does to the repository (through the secret
//! store's encryption), `check` is what `potato check` says about them and
//! what every `HostPlan` gets (`HostPki`). Must not touch: Traefik's
//! configuration (`edge` reads the in-container paths below), the secret
//! store's format (`secrets`).
//!
//! In the repository (public halves in git, private halves age-encrypted):
//! - `secrets/fleet-ca.crt`: the CA certificate (public, exported to devices);
//! - `secrets/shared/fleet-ca-key.age`: its key, encrypted to the admins only
//!   (no host file may use it: `resolve` refuses a reference, so `secrets
//!   rekey` never encrypts it to a host);
//! - `secrets/<host>/tls-<host>.crt`: the host's certificate for `<domain>`
//!   and `*.<domain>`, signed by the CA;
//! - `secrets/<host>/tls-<host>.age`: its key, encrypted to the admins and the
//!   host, decrypted at activation into /run/potato-secrets/tls-<host>.
//!
//! Certificates are made by `potato ca init|issue`, never by `potato gen`:
//! generated output stays a pure function of the repository.

pub mod cert;
pub mod check;
pub mod ops;

use camino::Utf8PathBuf;
use serde::Serialize;

pub use check::attach;

/// Inside the Traefik container (its `certs` volume is mounted at /certs):
/// the fleet CA certificate, trusted for cross-host forward-auth.
pub const CA_CERT_IN_PROXY: &str = "/certs/fleet-ca.crt";
/// Inside the Traefik container: the host's certificate (domain + wildcard),
/// the leaf followed by nothing else (the CA is trusted, not sent).
pub const HOST_CERT_IN_PROXY: &str = "/certs/host.crt";
/// Inside the Traefik container: the host certificate's private key.
pub const HOST_KEY_IN_PROXY: &str = "/certs/host.key";

/// The CA certificate in the repository (public).
pub const CA_CERT_FILE: &str = "secrets/fleet-ca.crt";
/// The secret holding the CA's private key (admins only).
pub const CA_KEY_SECRET: &str = "fleet-ca-key";
/// Its file in the repository.
pub const CA_KEY_FILE: &str = "secrets/shared/fleet-ca-key.age";

/// On the host: where the generation places the public certificates
/// (`environment.etc`), the sources of the Traefik container's mounts.
pub const CA_CERT_ON_HOST: &str = "/etc/potato/pki/fleet-ca.crt";
pub const HOST_CERT_ON_HOST: &str = "/etc/potato/pki/host.crt";
/// Next to default.nix: the native files the generation places there.
pub const CA_CERT_GENERATED: &str = "pki/fleet-ca.crt";
pub const HOST_CERT_GENERATED: &str = "pki/host.crt";

/// A host certificate is renewed by `potato ca issue` this long before it
/// expires.
pub const RENEW_WITHIN_DAYS: i64 = 30;
/// The CA's lifetime.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// A host certificate's lifetime: under 398 days, the most Apple's and
/// browsers' clients accept for a TLS server certificate
/// (https://support.apple.com/en-us/102028).
pub const HOST_VALIDITY_DAYS: i64 = 397;

/// What one host's generation gets from the fleet CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPki {
    /// The CA certificate (PEM): trusted system-wide
    /// (`security.pki.certificates`) and mounted into Traefik.
    pub ca_pem: String,
    /// This host's own certificate, when its Traefik serves the fleet CA's
    /// TLS (`[proxy] tls = "internal"`).
    pub tls: Option<HostTls>,
}

/// The host's certificate and the secret holding its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostTls {
    pub cert_pem: String,
    /// The secret name (`tls-<host>`), decrypted into /run/potato-secrets.
    pub key_secret: String,
}

/// The secret holding `host`'s TLS key.
pub fn host_key_secret(host: &str) -> String {
    format!("tls-{host}")
}

/// `host`'s TLS key in the repository.
pub fn host_key_file(host: &str) -> Utf8PathBuf {
    format!("secrets/{host}/tls-{host}.age").into()
}

/// `host`'s certificate in the repository.
pub fn host_cert_file(host: &str) -> Utf8PathBuf {
    format!("secrets/{host}/tls-{host}.crt").into()
}

/// The names a host certificate must cover: the domain and its wildcard.
pub fn names_for(domain: &str) -> Vec<String> {
    vec![domain.to_string(), format!("*.{domain}")]
}

/// The bind mounts of a Traefik container: the CA everywhere (cross-host
/// forward-auth verifies against it), the host's certificate and key where
/// its TLS is internal. "HOST:CONTAINER:ro", in a fixed order.
pub fn proxy_volumes(plan: &crate::plan::HostPlan) -> Vec<String> {
    let Some(p) = &plan.pki else {
        return Vec::new();
    };
    let mut v = vec![format!("{CA_CERT_ON_HOST}:{CA_CERT_IN_PROXY}:ro")];
    if let Some(t) = &p.tls {
        v.push(format!("{HOST_CERT_ON_HOST}:{HOST_CERT_IN_PROXY}:ro"));
        v.push(format!(
            "{}:{HOST_KEY_IN_PROXY}:ro",
            crate::secrets::runtime_path(&t.key_secret)
        ));
    }
    v
}

/// The fleet CA's secrets present in `index`, with who uses them (for
/// `potato secrets list`): the CA key "operator" (never a host), each
/// `secrets/<host>/tls-<host>.age` its host.
pub fn secret_users(index: &crate::secrets::SecretIndex) -> Vec<(Utf8PathBuf, String)> {
    index
        .files()
        .filter_map(|(scope, name)| {
            if scope == "shared" && name == CA_KEY_SECRET {
                Some((CA_KEY_FILE.into(), "operator".to_string()))
            } else if *name == host_key_secret(scope) {
                Some((host_key_file(scope), scope.clone()))
            } else {
                None
            }
        })
        .collect()
}
