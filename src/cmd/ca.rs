//! `potato ca init|issue|export|show`: the fleet CA. Parses arguments, calls
//! `pki::ops`, prints the result; owns nothing else.

use camino::{Utf8Path, Utf8PathBuf};
use clap::Subcommand;
use serde_json::json;

use super::args::Global;
use crate::error::Error;
use crate::fsguard::RepoFs;
use crate::pki::ops::{self, PkiError};
use crate::secrets::store::SecretError;

/// `potato ca --help`: what the CA is and the order of the commands.
pub const LONG_ABOUT: &str =
    "The fleet CA, for hosts whose Traefik serves `[proxy] tls = \"internal\"`
(the default for *.home.arpa, which no public CA can certify).

potato keeps one certificate authority for the fleet. Its private key is an
age secret only the admins can decrypt (secrets/shared/fleet-ca-key.age);
its certificate is public (secrets/fleet-ca.crt). Each internal-TLS host gets
a certificate for <domain> and *.<domain> signed by it
(secrets/<host>/tls-<host>.crt), whose key is a secret for that host
(tls-<host>, decrypted at activation into /run/potato-secrets). Every host
trusts the CA (security.pki.certificates), and Traefik verifies cross-host
forward-auth against it. Certificates change only through these commands,
never through `potato gen`; `potato check` says when one is missing, for
the wrong names, from another CA or expired.

Typical use:
  potato ca init                  once: create the CA
  potato ca issue                 certificates for every internal-TLS host
  potato gen                      place them in the hosts' generations
  potato ca export --out ca.crt   install ca.crt on your laptop and phone
  potato ca issue                 again from time to time: renews what
                                  expires within 30 days";

/// The fleet CA: TLS certificates for hosts with [proxy] tls = "internal".
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    #[command(subcommand)]
    pub action: CaAction,
}

/// The `potato ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaAction {
    /// Create the fleet CA (ECDSA P-256, ten years). Refuses when one exists.
    ///
    /// The key is encrypted to the admins of secrets/recipients.toml only; no
    /// host ever gets it. Commit both files.
    Init,
    /// Issue or renew host certificates (HOSTS: host names; default: every host
    /// whose [proxy] tls is "internal").
    ///
    /// A certificate is issued when it is missing, does not cover the host's
    /// current domain and wildcard, was signed by another CA, its key is
    /// missing, or it expires within 30 days; the others are left alone
    /// (--force issues anyway). Decrypts the CA key with the admin's age
    /// identity ($POTATO_AGE_IDENTITY, ~/.config/potato/age.key or
    /// ~/.ssh/id_ed25519). Then run `potato gen` and deploy.
    Issue {
        hosts: Vec<String>,
        /// Issue new certificates even when the present ones are current.
        #[arg(long)]
        force: bool,
        /// Lifetime of the new certificates in days (at most the CA's). Browsers
        /// and Apple devices refuse server certificates valid for more than 397.
        #[arg(long, default_value_t = crate::pki::HOST_VALIDITY_DAYS, value_parser = clap::value_parser!(i64).range(31..=3650))]
        days: i64,
        /// The admin's age identity file (default: as above).
        #[arg(long, value_name = "FILE")]
        age_identity: Option<Utf8PathBuf>,
    },
    /// Print the CA certificate (PEM), or write it to FILE, for the operator's
    /// devices: browsers and phones then trust every internal-TLS host.
    Export {
        /// Write here instead of stdout (a new file, or one that is not a link).
        #[arg(long, value_name = "FILE")]
        out: Option<Utf8PathBuf>,
    },
    /// The CA (subject, expiry, SHA-256 fingerprint) and each internal-TLS
    /// host's certificate: current, or why `ca issue` would renew it.
    Show,
}

/// A fleet CA error: file access as `fsguard` sorts it (I/O exit 1), a key
/// that does not decrypt exit 1 (`Decrypt`, with the CA's hint); the rest
/// (a CA that exists or is missing, a host without internal TLS, a damaged
/// certificate in the repository, a bad recipient) is input to fix, exit 2.
impl From<PkiError> for Error {
    fn from(e: PkiError) -> Error {
        let hint = e.hint();
        match e {
            PkiError::Fs(e) | PkiError::Secret(SecretError::Fs(e)) => e.into(),
            PkiError::Secret(source @ SecretError::Decrypt { .. }) => Error::Decrypt {
                source,
                hint: Some(hint),
            },
            e => Error::usage(e.to_string(), hint),
        }
    }
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let root = crate::ops::fleet::repo_root(g.repo.as_deref())?;
    let action = &a.action;
    let now = time::OffsetDateTime::now_utc();
    match action {
        CaAction::Init => {
            let ca = ops::init(&root, now)?;
            if g.json {
                println!("{}", json!({ "ca": ca }));
            } else if !g.quiet {
                println!("wrote {} and {}", ca.certificate, ca.key);
                println!("{}, valid until {}", ca.subject, ca.not_after);
                println!("SHA-256 {}", ca.fingerprint);
                println!("next: `potato ca issue`, then `potato gen`");
            }
            Ok(())
        }
        CaAction::Issue {
            hosts,
            force,
            days,
            age_identity,
        } => {
            let plans = crate::ops::fleet::load_resolved(&root)?.plans;
            let targets = ops::select(&plans, hosts)?;
            let states = ops::issue(&root, &targets, age_identity.as_deref(), *force, *days, now)?;
            if g.json {
                println!("{}", json!({ "hosts": states }));
                return Ok(());
            }
            for s in &states {
                match (&s.renewal, s.issued) {
                    (Some(why), true) => println!(
                        "issued  {:<14} {} ({why}), valid until {}",
                        s.host,
                        s.certificate,
                        s.not_after.as_deref().unwrap_or("?")
                    ),
                    (None, true) => println!("issued  {:<14} {} (--force)", s.host, s.certificate),
                    (_, false) if !g.quiet => println!(
                        "current {:<14} {} until {}",
                        s.host,
                        s.certificate,
                        s.not_after.as_deref().unwrap_or("?")
                    ),
                    _ => {}
                }
                if let Some(w) = &s.warning {
                    eprintln!("warning: {w}");
                }
            }
            if targets.is_empty() && !g.quiet {
                println!("no host serves internal TLS; nothing to issue");
            } else if states.iter().any(|s| s.issued) && !g.quiet {
                println!("next: `potato gen` (the certificates go into the hosts' generations)");
            }
            Ok(())
        }
        CaAction::Export { out } => {
            let pem = ops::export(&root)?;
            match out {
                None => print!("{pem}"),
                Some(path) => write_out(path, &pem)?,
            }
            Ok(())
        }
        CaAction::Show => {
            let ca = ops::show_ca(&root)?;
            let plans = crate::ops::fleet::load_resolved(&root)?.plans;
            let states = ops::status(&root, &ops::internal_hosts(&plans), now)?;
            if g.json {
                println!("{}", json!({ "ca": ca, "hosts": states }));
                return Ok(());
            }
            println!("CA      {} ({})", ca.subject, ca.certificate);
            println!("        valid until {}", ca.not_after);
            println!("        SHA-256 {}", ca.fingerprint);
            for s in &states {
                let state = match &s.renewal {
                    None => "current".to_string(),
                    Some(why) => format!("needs `potato ca issue {}`: {why}", s.host),
                };
                println!(
                    "{:<14} {:<24} until {:<20} {state}",
                    s.host,
                    s.domain,
                    s.not_after.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}

/// Writes the exported certificate, never through a link: the file's
/// directory is opened as a `RepoFs` root and the name written atomically.
fn write_out(path: &Utf8Path, pem: &str) -> Result<(), Error> {
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
