//! What `potato ca` does to the repository: create the CA, issue or renew
//! host certificates, export the CA certificate, report their state.
//!
//! Private keys exist in plaintext only in memory between rcgen and the age
//! encryption (`secrets::store`); they never reach a file, argv or a message.
//! Every file is written through `fsguard` (atomically, never through a link).

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::{CA_CERT_FILE, CA_KEY_FILE, cert};
use crate::edge::TlsPlan;
use crate::fsguard::{FsError, RepoFs};
use crate::plan::HostPlan;
use crate::secrets::store::{self, Recipients, SecretError};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("the fleet CA exists already ({path}); nothing was changed")]
    Exists { path: Utf8PathBuf },
    #[error("the fleet has no CA ({CA_CERT_FILE} is missing)")]
    NoCa,
    #[error("the fleet CA's key {CA_KEY_FILE} is missing")]
    NoCaKey,
    #[error("`{host}` does not serve the fleet CA's TLS ({why})")]
    NotInternal { host: String, why: String },
    #[error("{path}: {source}")]
    Cert {
        path: Utf8PathBuf,
        source: cert::CertError,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl PkiError {
    /// How to get past it.
    pub fn hint(&self) -> String {
        match self {
            PkiError::Exists { .. } => "the CA is kept for years; to start over, remove secrets/fleet-ca.crt and secrets/shared/fleet-ca-key.age (every host certificate must then be issued again)".into(),
            PkiError::NoCa | PkiError::NoCaKey => "create it with `potato ca init`".into(),
            PkiError::NotInternal { .. } => "set [proxy] tls = \"internal\" in its host file (the default for *.home.arpa), or leave it out".into(),
            PkiError::Cert { .. } => "restore the file from git".into(),
            PkiError::Secret(SecretError::NoIdentity { .. }) | PkiError::Secret(SecretError::Decrypt { .. }) => {
                "the CA key is encrypted to the admins of secrets/recipients.toml: set POTATO_AGE_IDENTITY to an admin's age identity".into()
            }
            PkiError::Secret(_) => "check secrets/recipients.toml".into(),
            PkiError::Fs(_) => "see the path above".into(),
        }
    }
}

/// The CA as `ca init` made it or `ca show` reads it.
#[derive(Debug, Serialize)]
pub struct CaSummary {
    pub certificate: Utf8PathBuf,
    pub key: Utf8PathBuf,
    pub subject: String,
    pub not_after: String,
    pub fingerprint: String,
}

/// One host that serves the fleet CA's TLS.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub host: String,
    pub domain: String,
}

/// Why a host certificate needs issuing (None: it is current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Renewal {
    Missing,
    KeyMissing,
    Unreadable { error: String },
    Names { missing: Vec<String> },
    OtherCa,
    Expiring { not_after: String },
}

impl std::fmt::Display for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Renewal::Missing => write!(f, "no certificate"),
            Renewal::KeyMissing => write!(f, "its key is missing"),
            Renewal::Unreadable { error } => write!(f, "unreadable ({error})"),
            Renewal::Names { missing } => write!(f, "does not cover {}", missing.join(", ")),
            Renewal::OtherCa => write!(f, "signed by another CA"),
            Renewal::Expiring { not_after } => write!(f, "expires {not_after}"),
        }
    }
}

/// A host's certificate state (`ca show`) or what `ca issue` did.
#[derive(Debug, Serialize)]
pub struct HostState {
    pub host: String,
    pub domain: String,
    pub certificate: Utf8PathBuf,
    /// Why it was (or must be) issued; None: current.
    pub renewal: Option<Renewal>,
    pub not_after: Option<String>,
    /// `ca issue`: whether a new certificate was written.
    pub issued: bool,
    /// Set when the host has no key in recipients.toml: its key is then
    /// encrypted to the admins only, and `potato check` says so.
    pub warning: Option<String>,
}

/// The hosts whose Traefik serves the fleet CA's TLS.
pub fn internal_hosts(plans: &[HostPlan]) -> Vec<Target> {
    plans
        .iter()
        .filter_map(|p| {
            let e = p.edge.as_ref()?;
            matches!(e.tls, TlsPlan::Internal).then(|| Target {
                host: p.name.clone(),
                domain: e.domain.clone(),
            })
        })
        .collect()
}

/// Picks `wanted` (host names; empty: all) out of `plans`. A named host that
/// does not serve internal TLS is an error.
pub fn select(plans: &[HostPlan], wanted: &[String]) -> Result<Vec<Target>, PkiError> {
    let all = internal_hosts(plans);
    if wanted.is_empty() {
        return Ok(all);
    }
    wanted
        .iter()
        .map(|w| match all.iter().find(|t| &t.host == w) {
            Some(t) => Ok(t.clone()),
            None => Err(PkiError::NotInternal {
                host: w.clone(),
                why: match plans.iter().find(|p| &p.name == w) {
                    None => "no such host file".into(),
                    Some(p) if p.edge.is_none() => "it runs no traefik".into(),
                    Some(_) => "its [proxy] tls is \"acme\"".into(),
                },
            }),
        })
        .collect()
}

/// Creates the fleet CA: key encrypted to the admins, certificate public.
/// Refuses (changing nothing) when either file exists.
pub fn init(repo: &Utf8Path, now: time::OffsetDateTime) -> Result<CaSummary, PkiError> {
    let fs = RepoFs::open(repo)?;
    for path in [CA_CERT_FILE, CA_KEY_FILE] {
        let path = Utf8Path::new(path);
        if fs.kind(path)?.is_some() {
            return Err(PkiError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    let admins = Recipients::load(repo)?.for_hosts(std::iter::empty());
    let ca = cert::new_ca("potato fleet CA", now).map_err(|source| PkiError::Cert {
        path: CA_CERT_FILE.into(),
        source,
    })?;
    let ciphertext = store::encrypt(ca.key_pem.as_bytes(), &admins)?;
    store::write_secret(repo, Utf8Path::new(CA_KEY_FILE), &ciphertext, &admins)?;
    fs.write_atomic(Utf8Path::new(CA_CERT_FILE), ca.cert_pem.as_bytes(), 0o644)?;
    show_ca(repo)
}

/// The CA certificate (PEM), for the operator's devices.
pub fn export(repo: &Utf8Path) -> Result<String, PkiError> {
    let pem = RepoFs::open(repo)?
        .read_string(Utf8Path::new(CA_CERT_FILE))?
        .ok_or(PkiError::NoCa)?;
    cert::inspect(&pem).map_err(|source| PkiError::Cert {
        path: CA_CERT_FILE.into(),
        source,
    })?;
    Ok(pem)
}

/// What the CA is.
pub fn show_ca(repo: &Utf8Path) -> Result<CaSummary, PkiError> {
    let pem = export(repo)?;
    let info = cert::inspect(&pem).map_err(|source| PkiError::Cert {
        path: CA_CERT_FILE.into(),
        source,
    })?;
    Ok(CaSummary {
        certificate: CA_CERT_FILE.into(),
        key: CA_KEY_FILE.into(),
        subject: info.subject,
        not_after: cert::date(info.not_after),
        fingerprint: info.fingerprint,
    })
}

/// Each target's certificate state at `now`.
pub fn status(
    repo: &Utf8Path,
    targets: &[Target],
    now: time::OffsetDateTime,
) -> Result<Vec<HostState>, PkiError> {
    let ca = export(repo)?;
    let fs = RepoFs::open(repo)?;
    targets
        .iter()
        .map(|t| {
            let (renewal, not_after) = renewal(&fs, &ca, t, now)?;
            Ok(HostState {
                host: t.host.clone(),
                domain: t.domain.clone(),
                certificate: super::host_cert_file(&t.host),
                renewal,
                not_after,
                issued: false,
                warning: None,
            })
        })
        .collect()
}

/// Issues a certificate to every target that needs one (or all, `force`):
/// missing, names changed, another CA, or expiring within 30 days. The CA
/// key is decrypted once, only when something is to be issued.
pub fn issue(
    repo: &Utf8Path,
    targets: &[Target],
    identity: Option<&Utf8Path>,
    force: bool,
    days: i64,
    now: time::OffsetDateTime,
) -> Result<Vec<HostState>, PkiError> {
    let mut states = status(repo, targets, now)?;
    let fs = RepoFs::open(repo)?;
    if fs.kind(Utf8Path::new(CA_KEY_FILE))?.is_none() {
        return Err(PkiError::NoCaKey);
    }
    let ca_pem = export(repo)?;
    let recipients = Recipients::load(repo)?;
    let mut ca_key: Option<String> = None;
    for s in states.iter_mut() {
        if s.renewal.is_none() && !force {
            continue;
        }
        let key = match &ca_key {
            Some(k) => k,
            None => {
                let ids = store::load_identities(identity)?;
                let bytes = store::decrypt(repo, Utf8Path::new(CA_KEY_FILE), &ids)?;
                ca_key.insert(String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        let issued = cert::issue(&ca_pem, key, &super::names_for(&s.domain), now, days).map_err(
            |source| PkiError::Cert {
                path: CA_KEY_FILE.into(),
                source,
            },
        )?;
        let keys: BTreeSet<String> = recipients.for_hosts([s.host.as_str()]);
        if !recipients.hosts.contains_key(&s.host) {
            s.warning = Some(format!(
                "{} has no SSH host key in secrets/recipients.toml: its TLS key is encrypted to the admins only; add the host key and run `potato secrets rekey`",
                s.host
            ));
        }
        let ciphertext = store::encrypt(issued.key_pem.as_bytes(), &keys)?;
        store::write_secret(repo, &super::host_key_file(&s.host), &ciphertext, &keys)?;
        fs.write_atomic(&s.certificate, issued.cert_pem.as_bytes(), 0o644)?;
        let info = cert::inspect(&issued.cert_pem).map_err(|source| PkiError::Cert {
            path: s.certificate.clone(),
            source,
        })?;
        s.not_after = Some(cert::date(info.not_after));
        s.issued = true;
    }
    Ok(states)
}

/// Why `t`'s certificate needs issuing, and when the present one expires.
fn renewal(
    fs: &RepoFs,
    ca: &str,
    t: &Target,
    now: time::OffsetDateTime,
) -> Result<(Option<Renewal>, Option<String>), PkiError> {
    let Some(pem) = fs.read_string(&super::host_cert_file(&t.host))? else {
        return Ok((Some(Renewal::Missing), None));
    };
    let info = match cert::inspect(&pem) {
        Ok(i) => i,
        Err(e) => {
            return Ok((
                Some(Renewal::Unreadable {
                    error: e.to_string(),
                }),
                None,
            ));
        }
    };
    let not_after = Some(cert::date(info.not_after));
    let wanted = super::names_for(&t.domain);
    let missing = cert::missing_names(&info, &wanted);
    let why = if !missing.is_empty() {
        Some(Renewal::Names {
            missing: missing.iter().map(|s| s.to_string()).collect(),
        })
    } else if !cert::signed_by(&pem, ca).unwrap_or(false) {
        Some(Renewal::OtherCa)
    } else if info.not_after - now.unix_timestamp() < super::RENEW_WITHIN_DAYS * 86400 {
        Some(Renewal::Expiring {
            not_after: cert::date(info.not_after),
        })
    } else if fs.kind(&super::host_key_file(&t.host))?.is_none() {
        Some(Renewal::KeyMissing)
    } else {
        None
    };
    Ok((why, not_after))
}
