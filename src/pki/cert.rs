//! Making and reading certificates: the fleet CA and host certificates with
//! rcgen (ECDSA P-256, which every TLS client accepts), and what potato needs
//! to know about an existing one (x509-parser: names, validity, who signed it).
//!
//! Owns the certificates' profile (extensions, lifetimes). Must not touch
//! files or secrets: callers hand in and take out PEM text.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate and its private key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    /// PKCS#8 ("BEGIN PRIVATE KEY"). Plaintext: goes straight into the age
    /// store, never to a file, a log or an error.
    pub key_pem: String,
}

/// What potato reads out of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// keyUsage keyCertSign.
    pub key_cert_sign: bool,
    /// subjectAltName DNS names, in the certificate's order.
    pub dns_names: Vec<String>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, hex with colons (what browsers show).
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("not a PEM certificate: {0}")]
    NotPem(String),
    #[error("not an X.509 certificate: {0}")]
    NotX509(String),
    #[error("cannot make the certificate: {0}")]
    Make(String),
    #[error("the CA key does not fit the CA certificate")]
    KeyMismatch,
}

fn make(e: impl std::fmt::Display) -> CertError {
    CertError::Make(e.to_string())
}

/// A new fleet CA, valid from `now` for `CA_VALIDITY_DAYS`. It may sign only
/// end-entity certificates (pathlen 0).
pub fn new_ca(common_name: &str, now: OffsetDateTime) -> Result<Issued, CertError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(make)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, common_name.to_string());
    p.distinguished_name
        .push(DnType::OrganizationName, "potato fleet");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(super::CA_VALIDITY_DAYS);
    p.serial_number = Some(random_serial());
    let cert = p.self_signed(&key).map_err(make)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A server certificate for `names` (the first is the subject's CN), signed
/// by the CA, valid from `now` for `days` (never past the CA's own expiry),
/// with a new key.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    names: &[String],
    now: OffsetDateTime,
    days: i64,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(make)?;
    let ca_public = public_key_der(ca_cert_pem)?;
    if ca_public != ca_key.public_key_raw() {
        return Err(CertError::KeyMismatch);
    }
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(make)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(make)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    if let Some(first) = names.first() {
        p.distinguished_name
            .push(DnType::CommonName, first.to_string());
    }
    p.subject_alt_names = names
        .iter()
        .map(|n| Ok(SanType::DnsName(n.clone().try_into().map_err(make)?)))
        .collect::<Result<_, CertError>>()?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - Duration::hours(1);
    let ca_end =
        OffsetDateTime::from_unix_timestamp(inspect(ca_cert_pem)?.not_after).map_err(make)?;
    p.not_after = (now + Duration::days(days)).min(ca_end);
    p.serial_number = Some(random_serial());
    let cert = p.signed_by(&key, &issuer).map_err(make)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// 16 random bytes, positive (RFC 5280 §4.1.2.2: at most 20 octets).
fn random_serial() -> SerialNumber {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the OS random source works");
    raw[0] &= 0x7f;
    raw[0] |= 0x01;
    SerialNumber::from_slice(&raw)
}

/// The DER of the first certificate in `pem`.
pub fn der_of(pem: &str) -> Result<Vec<u8>, CertError> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CertError::NotPem(e.to_string()))?;
    if p.label != "CERTIFICATE" {
        return Err(CertError::NotPem(format!(
            "a {} block, not a CERTIFICATE",
            p.label
        )));
    }
    Ok(p.contents)
}

/// One certificate as PEM, written afresh from its DER: 64-character base64
/// lines between the markers, nothing else (whatever else a file held is
/// dropped before it reaches a generated file).
pub fn canonical_pem(pem: &str) -> Result<String, CertError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der_of(pem)?);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    Ok(out)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CertError::NotX509(e.to_string()))
}

/// The raw subject public key (for comparing with a key pair).
fn public_key_der(pem: &str) -> Result<Vec<u8>, CertError> {
    let der = der_of(pem)?;
    let c = parse(&der)?;
    Ok(c.public_key().subject_public_key.data.to_vec())
}

/// Reads a PEM certificate.
pub fn inspect(pem: &str) -> Result<CertInfo, CertError> {
    inspect_der(&der_of(pem)?)
}

fn inspect_der(der: &[u8]) -> Result<CertInfo, CertError> {
    let c = parse(der)?;
    let bad = |e: x509_parser::error::X509Error| CertError::NotX509(e.to_string());
    let is_ca = c
        .basic_constraints()
        .map_err(bad)?
        .is_some_and(|b| b.value.ca);
    let key_cert_sign = c
        .key_usage()
        .map_err(bad)?
        .is_some_and(|k| k.value.key_cert_sign());
    let dns_names = c
        .subject_alternative_name()
        .map_err(bad)?
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    use sha2::Digest;
    let fingerprint = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertInfo {
        subject: c.subject().to_string(),
        is_ca,
        key_cert_sign,
        dns_names,
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        fingerprint,
    })
}

/// Whether `cert_pem`'s signature verifies with the public key of `ca_pem`
/// (and names it as issuer).
pub fn signed_by(cert_pem: &str, ca_pem: &str) -> Result<bool, CertError> {
    let (cert_der, ca_der) = (der_of(cert_pem)?, der_of(ca_pem)?);
    let (cert, ca) = (parse(&cert_der)?, parse(&ca_der)?);
    Ok(cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok())
}

/// Whether the key in `key_pem` is the one `cert_pem` certifies.
pub fn key_matches(cert_pem: &str, key_pem: &str) -> Result<bool, CertError> {
    let key = KeyPair::from_pem(key_pem).map_err(make)?;
    Ok(public_key_der(cert_pem)? == key.public_key_raw())
}

/// The names of `wanted` that `info` does not list (exact DNS names: a
/// wildcard covers only itself here, as the CA issues both on purpose).
pub fn missing_names<'a>(info: &CertInfo, wanted: &'a [String]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|w| !info.dns_names.iter().any(|d| d.eq_ignore_ascii_case(w)))
        .map(String::as_str)
        .collect()
}

/// A Unix time as an RFC 3339 date (UTC), for messages.
pub fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        super::super::names_for("n250.home.arpa")
    }

    #[test]
    fn a_ca_signs_a_host_certificate_for_the_domain_and_wildcard() {
        let now = OffsetDateTime::now_utc();
        let ca = new_ca("potato fleet CA", now).unwrap();
        let info = inspect(&ca.cert_pem).unwrap();
        assert!(info.is_ca && info.key_cert_sign, "{info:?}");
        let host = issue(
            &ca.cert_pem,
            &ca.key_pem,
            &names(),
            now,
            super::super::HOST_VALIDITY_DAYS,
        )
        .unwrap();
        let h = inspect(&host.cert_pem).unwrap();
        assert!(!h.is_ca);
        assert_eq!(h.dns_names, ["n250.home.arpa", "*.n250.home.arpa"]);
        assert!(missing_names(&h, &names()).is_empty());
        assert_eq!(
            missing_names(&h, &super::super::names_for("lepotato.home.arpa")).len(),
            2
        );
        assert!(signed_by(&host.cert_pem, &ca.cert_pem).unwrap());
        assert!(key_matches(&host.cert_pem, &host.key_pem).unwrap());
        assert!(!key_matches(&host.cert_pem, &ca.key_pem).unwrap());
        let days = (h.not_after - now.unix_timestamp()) / 86400;
        assert!((396..=397).contains(&days), "{days}");
    }

    #[test]
    fn another_ca_did_not_sign_it_and_a_foreign_key_cannot_issue() {
        let now = OffsetDateTime::now_utc();
        let (a, b) = (new_ca("a", now).unwrap(), new_ca("b", now).unwrap());
        let host = issue(
            &a.cert_pem,
            &a.key_pem,
            &names(),
            now,
            super::super::HOST_VALIDITY_DAYS,
        )
        .unwrap();
        assert!(!signed_by(&host.cert_pem, &b.cert_pem).unwrap());
        assert!(matches!(
            issue(
                &a.cert_pem,
                &b.key_pem,
                &names(),
                now,
                super::super::HOST_VALIDITY_DAYS
            ),
            Err(CertError::KeyMismatch)
        ));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(inspect("hello"), Err(CertError::NotPem(_))));
        let key = KeyPair::generate().unwrap().serialize_pem();
        assert!(inspect(&key).is_err());
    }
}
