//! The fleet CA (issue 15): a certificate authority potato generates, whose
//! key is an age secret, and the certificate it signs for each host's domain
//! and wildcard. Every host trusts the CA; potato exports it for devices.
//!
//! Owns the CA and host certificates and where they live, in the repository
//! and on the host. Must not touch: Traefik's configuration (`edge` reads the
//! paths below), the secret store's format (`secrets`).

/// Inside the Traefik container (its `certs` volume is mounted at /certs):
/// the fleet CA certificate, trusted for cross-host forward-auth.
pub const CA_CERT_IN_PROXY: &str = "/certs/fleet-ca.crt";
/// Inside the Traefik container: the host's certificate (domain + wildcard),
/// the leaf followed by nothing else (the CA is trusted, not sent).
pub const HOST_CERT_IN_PROXY: &str = "/certs/host.crt";
/// Inside the Traefik container: the host certificate's private key.
pub const HOST_KEY_IN_PROXY: &str = "/certs/host.key";
