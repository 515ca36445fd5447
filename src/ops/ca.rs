//! `ca`'s operations over the repository: the fleet's internal-TLS hosts
//! (from the validated plans) handed to `pki::ops`, which owns the CA and the
//! certificates, and the exported CA certificate written where the operator
//! asked (never through a link). Prints nothing.

use camino::{Utf8Path, Utf8PathBuf};
use time::OffsetDateTime;

use crate::error::Error;
use crate::fsguard::RepoFs;
use crate::pki::ops::{self as pki, CaSummary, HostState};

/// What `ca issue` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct IssueRequest<'a> {
    /// Host names; empty: every host whose [proxy] tls is "internal".
    pub hosts: &'a [String],
    /// The admin's age identity file (default: `secrets::store`'s).
    pub identity: Option<&'a Utf8Path>,
    /// Issue even when the present certificate is current.
    pub force: bool,
    /// Lifetime of new certificates.
    pub days: i64,
}

/// Creates the fleet CA (refused when one exists).
pub fn init(root: &Utf8Path, now: OffsetDateTime) -> Result<CaSummary, Error> {
    Ok(pki::init(root, now)?)
}

/// Issues or renews the requested hosts' certificates; one state per host
/// (none when no host serves internal TLS).
pub fn issue(
    root: &Utf8Path,
    req: &IssueRequest,
    now: OffsetDateTime,
) -> Result<Vec<HostState>, Error> {
    let plans = super::fleet::load_resolved(root)?.plans;
    let targets = pki::select(&plans, req.hosts)?;
    Ok(pki::issue(
        root,
        &targets,
        req.identity,
        req.force,
        req.days,
        now,
    )?)
}

/// The CA and every internal-TLS host's certificate state.
pub fn show(root: &Utf8Path, now: OffsetDateTime) -> Result<(CaSummary, Vec<HostState>), Error> {
    let ca = pki::show_ca(root)?;
    let plans = super::fleet::load_resolved(root)?.plans;
    let states = pki::status(root, &pki::internal_hosts(&plans), now)?;
    Ok((ca, states))
}

/// The CA certificate (PEM).
pub fn export(root: &Utf8Path) -> Result<String, Error> {
    Ok(pki::export(root)?)
}

/// Writes the CA certificate to `path`, never through a link: the file's
/// directory is opened as a `RepoFs` root and the name written atomically.
pub fn export_to(root: &Utf8Path, path: &Utf8Path) -> Result<(), Error> {
    let pem = export(root)?;
    let name = path.file_name().ok_or_else(|| {
        Error::usage(
            format!("{path} is not a file name"),
            "pass --out FILE, e.g. --out fleet-ca.crt",
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_str().is_empty() => p.to_path_buf(),
        _ => Utf8PathBuf::from("."),
    };
    RepoFs::open(&dir)?.write_atomic(Utf8Path::new(name), pem.as_bytes(), 0o644)?;
    Ok(())
}
