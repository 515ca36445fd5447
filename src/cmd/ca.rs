//! `potato ca init|issue|export|show`: the fleet CA. Parses arguments, calls
//! `ops::ca`, prints `report::ca`'s text; owns nothing else.

use camino::Utf8PathBuf;
use clap::Subcommand;

use super::args::Global;
use crate::error::Error;
use crate::{ops, report};

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

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let root = ops::fleet::repo_root(g.repo.as_deref())?;
    let out = g.output();
    let now = time::OffsetDateTime::now_utc();
    match &a.action {
        CaAction::Init => print!("{}", report::ca::init(out, &ops::ca::init(&root, now)?)),
        CaAction::Issue {
            hosts,
            force,
            days,
            age_identity,
        } => {
            let req = ops::ca::IssueRequest {
                hosts,
                identity: age_identity.as_deref(),
                force: *force,
                days: *days,
            };
            let states = ops::ca::issue(&root, &req, now)?;
            if g.json {
                print!("{}", report::ca::issue_json(&states));
                return Ok(());
            }
            for s in &states {
                print!("{}", report::ca::issued(out, s));
                if let Some(w) = &s.warning {
                    eprintln!("warning: {w}");
                }
            }
            print!("{}", report::ca::issue_next(out, &states));
        }
        CaAction::Export { out: None } => print!("{}", ops::ca::export(&root)?),
        CaAction::Export { out: Some(path) } => ops::ca::export_to(&root, path)?,
        CaAction::Show => {
            let (ca, states) = ops::ca::show(&root, now)?;
            print!("{}", report::ca::show(out, &ca, &states));
        }
    }
    Ok(())
}
