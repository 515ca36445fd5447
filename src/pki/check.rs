//! What `potato check` says about the fleet CA, and what each `HostPlan`
//! gets from it (`HostPki`, and the TLS key among the host's secrets).
//!
//! Runs after `resolve` (it needs each host's `EdgePlan`) and reads only
//! public files (the certificates) plus the secret index; it never decrypts.
//! Every problem is a diagnostic at the host's `[proxy]` table, or at its
//! `traefik` service when it has none, with the `potato ca` command that
//! fixes it.

use std::ops::Range;

use camino::Utf8Path;

use super::{CA_CERT_FILE, HostPki, HostTls, cert};
use crate::diag::{Diagnostic, Loc};
use crate::edge::TlsPlan;
use crate::fsguard::RepoFs;
use crate::inventory::{HostSource, Inventory};
use crate::plan::{HostPlan, SecretMode};
use crate::secrets::SecretIndex;

/// Checks the CA and every internal-TLS host's certificate at `now` (Unix
/// seconds), and gives each plan its `pki` (when a CA exists) and, for
/// internal TLS, the key secret (`tls-<host>`), owned as Traefik's image runs.
pub fn attach(
    repo: &Utf8Path,
    inv: &Inventory,
    secrets: &SecretIndex,
    plans: &mut [HostPlan],
) -> Vec<Diagnostic> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    attach_at(repo, inv, secrets, plans, now)
}

/// `attach` at a given time (tests move the clock instead of waiting).
pub fn attach_at(
    repo: &Utf8Path,
    inv: &Inventory,
    secrets: &SecretIndex,
    plans: &mut [HostPlan],
    now: i64,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let ca = match read_public(repo, Utf8Path::new(CA_CERT_FILE)) {
        Ok(Some(pem)) => {
            match cert::inspect(&pem) {
                Ok(info) if info.is_ca => cert::canonical_pem(&pem).ok(),
                Ok(_) => {
                    diags.push(
                    Diagnostic::global(format!("{CA_CERT_FILE} is not a CA certificate"))
                        .hint("restore it from git, or start over: remove it and secrets/shared/fleet-ca-key.age, then `potato ca init` and `potato ca issue`"),
                );
                    None
                }
                Err(e) => {
                    diags.push(Diagnostic::global(format!("{CA_CERT_FILE}: {e}")).hint(
                        "restore it from git (`potato ca export` prints what it should hold)",
                    ));
                    None
                }
            }
        }
        Ok(None) => None,
        Err(e) => {
            diags.push(Diagnostic::global(e));
            None
        }
    };
    for p in plans.iter_mut() {
        let Some(host) = inv.hosts.iter().find(|h| h.name == p.name) else {
            continue;
        };
        let internal = p
            .edge
            .as_ref()
            .is_some_and(|e| matches!(e.tls, TlsPlan::Internal));
        let mut tls = None;
        if internal {
            let at = Loc::new(host.file, place(host));
            let domain = p
                .edge
                .as_ref()
                .map(|e| e.domain.clone())
                .unwrap_or_default();
            match &ca {
                None if diags.iter().any(|d| d.loc.is_none()) => {}
                None => diags.push(
                    Diagnostic::at(at, format!("`{}` serves TLS from the fleet CA ([proxy] tls = \"internal\"), but the fleet has no CA ({CA_CERT_FILE} is missing)", p.name))
                        .label("internal TLS")
                        .hint(format!("create it with `potato ca init`, then `potato ca issue {}`", p.name)),
                ),
                Some(ca) => match host_cert(repo, secrets, p, &domain, ca, now) {
                    Ok(t) => tls = Some(t),
                    Err((message, hint)) => {
                        diags.push(Diagnostic::at(at, message).label("internal TLS").hint(hint))
                    }
                },
            }
        }
        if let Some(ca) = &ca {
            if let Some(t) = &tls {
                add_key_secret(p, t);
            }
            p.pki = Some(HostPki {
                ca_pem: ca.clone(),
                tls,
            });
        }
    }
    diags
}

/// The host's certificate, checked: present, for its names, signed by the
/// current CA, valid now, its key a secret the host can decrypt.
fn host_cert(
    repo: &Utf8Path,
    secrets: &SecretIndex,
    p: &HostPlan,
    domain: &str,
    ca: &str,
    now: i64,
) -> Result<HostTls, (String, String)> {
    let host = p.name.as_str();
    let file = super::host_cert_file(host);
    let reissue = format!("run `potato ca issue {host}`");
    let pem = match read_public(repo, &file) {
        Ok(Some(pem)) => pem,
        Ok(None) => {
            return Err((
                format!("`{host}` has no certificate for {domain} ({file} is missing)"),
                reissue,
            ));
        }
        Err(e) => return Err((e, reissue)),
    };
    let info = cert::inspect(&pem).map_err(|e| (format!("{file}: {e}"), reissue.clone()))?;
    let wanted = super::names_for(domain);
    let missing = cert::missing_names(&info, &wanted);
    if !missing.is_empty() {
        return Err((
            format!(
                "{file} does not cover {} (it is for {})",
                missing.join(" and "),
                if info.dns_names.is_empty() {
                    "no DNS name".to_string()
                } else {
                    info.dns_names.join(", ")
                }
            ),
            format!("the domain changed: {reissue}"),
        ));
    }
    let signed =
        cert::signed_by(&pem, ca).map_err(|e| (format!("{file}: {e}"), reissue.clone()))?;
    if !signed {
        return Err((
            format!("{file} is not signed by the current fleet CA ({CA_CERT_FILE})"),
            format!("the CA was replaced: {reissue}"),
        ));
    }
    if now >= info.not_after {
        return Err((
            format!("{file} expired on {}", cert::date(info.not_after)),
            format!(
                "{reissue} (it renews certificates within {} days of expiry)",
                super::RENEW_WITHIN_DAYS
            ),
        ));
    }
    if now < info.not_before {
        return Err((
            format!("{file} is not valid before {}", cert::date(info.not_before)),
            format!("check this machine's clock, or {reissue}"),
        ));
    }
    let key_secret = super::host_key_secret(host);
    key_decryptable(secrets, host, &key_secret, &reissue)?;
    Ok(HostTls {
        cert_pem: cert::canonical_pem(&pem)
            .map_err(|e| (format!("{file}: {e}"), reissue.clone()))?,
        key_secret,
    })
}

/// The key secret exists in the host's scope and (when the index knows the
/// recipients) is encrypted to the host.
fn key_decryptable(
    secrets: &SecretIndex,
    host: &str,
    name: &str,
    reissue: &str,
) -> Result<(), (String, String)> {
    let path = super::host_key_file(host);
    if secrets.locate(host, name).as_deref() != Some(path.as_path()) {
        return Err((
            format!("`{host}`'s TLS key {path} is missing"),
            reissue.to_string(),
        ));
    }
    let Some(cov) = &secrets.coverage else {
        return Ok(());
    };
    let Some(key) = cov.recipients.hosts.get(host) else {
        return Err((
            format!(
                "`{host}` has no SSH host key in secrets/recipients.toml, so it cannot decrypt its TLS key {path}"
            ),
            format!(
                "add {host} = \"ssh-ed25519 AAAA...\" under [hosts] there, then run `potato secrets rekey`"
            ),
        ));
    };
    let ok = cov
        .recorded
        .get(&path)
        .is_some_and(|r| r.contains(&crate::secrets::store::normalize(key)));
    if !ok {
        return Err((
            format!("`{host}`'s TLS key {path} is not encrypted to {host}"),
            "run `potato secrets rekey`".into(),
        ));
    }
    Ok(())
}

/// The host decrypts its TLS key at activation, owned by the user Traefik's
/// image runs as (its catalog contract), readable by that user only.
fn add_key_secret(p: &mut HostPlan, t: &HostTls) {
    let owner = p
        .containers
        .as_ref()
        .and_then(|c| c.services.iter().find(|s| s.name == "traefik"))
        .map(|s| s.contract.user)
        .unwrap_or(crate::catalog::Owner::ROOT);
    let name_of = |id: u32| {
        if id == 0 {
            "root".to_string()
        } else {
            id.to_string()
        }
    };
    p.secrets
        .insert(t.key_secret.clone(), super::host_key_file(&p.name));
    p.secret_files.insert(
        t.key_secret.clone(),
        SecretMode {
            owner: name_of(owner.uid),
            group: name_of(owner.gid),
            mode: "0400".into(),
        },
    );
}

/// Where a host's TLS problems point: its `[proxy]` table, else its
/// `traefik` service entry, else the top of the file.
fn place(host: &HostSource) -> Range<usize> {
    if let Some(p) = &host.raw.proxy {
        return p.span.clone();
    }
    host.raw
        .containers
        .as_ref()
        .and_then(|c| c.services.iter().find(|s| s.value.as_str() == "traefik"))
        .map(|s| s.span.clone())
        .unwrap_or(0..0)
}

/// A public file of the repository (never through a link). Err is a message.
fn read_public(repo: &Utf8Path, rel: &Utf8Path) -> Result<Option<String>, String> {
    let fs = RepoFs::open(repo).map_err(|e| e.to_string())?;
    fs.read_string(rel).map_err(|e| e.to_string())
}
