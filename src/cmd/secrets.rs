//! `potato secrets list|set|gen|rekey|hostkey|edit`: the age-encrypted store
//! (`ops::secrets`). Values never reach stdout, stderr, argv or a log; `gen`
//! prints only public keys.

use std::io::Read;

use camino::Utf8Path;
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::args::Global;
use crate::error::Error;
use crate::fsguard::RepoFs;
use crate::ops::secrets::{self, Context, Edited, Kind, Scope, scratch};
use crate::repo;

/// Age-encrypted secrets under secrets/.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Decrypt, open $EDITOR, re-encrypt (refused if the editor fails).
    Edit {
        name: String,
        #[command(flatten)]
        scope: SecretScope,
    },
    /// Store a value read from stdin.
    Set {
        name: String,
        #[command(flatten)]
        scope: SecretScope,
    },
    /// Generate a value without printing it (a WireGuard key prints its public key).
    Gen {
        name: String,
        #[arg(long, value_enum)]
        kind: SecretKind,
        #[command(flatten)]
        scope: SecretScope,
    },
    /// Re-encrypt secrets whose recipients changed (admins, host keys, users).
    Rekey,
    /// Pre-generate a host's SSH host key (before bootstrap or an image): the
    /// private key is stored encrypted as secrets/HOST/ssh_host_ed25519_key.age,
    /// the public key recorded in secrets/recipients.toml, and secrets are
    /// rekeyed so the host decrypts them on first boot.
    Hostkey {
        host: String,
        /// Replace a key the host already has (it must then get the new key).
        #[arg(long)]
        force: bool,
    },
    /// List secrets, the hosts that use them, and whether they need a rekey.
    List,
}

/// Which file a secret name means.
#[derive(Debug, clap::Args)]
pub struct SecretScope {
    /// The host's own secret: secrets/HOST/NAME.age.
    #[arg(long, conflicts_with = "shared")]
    pub host: Option<String>,
    /// A secret shared between hosts: secrets/shared/NAME.age.
    #[arg(long)]
    pub shared: bool,
    /// Replace an existing value (gen).
    #[arg(long)]
    pub force: bool,
}

impl SecretScope {
    fn scope(&self) -> Scope {
        Scope {
            host: self.host.clone(),
            shared: self.shared,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SecretKind {
    /// A WireGuard private key (its public key is printed for the host file).
    Wireguard,
    /// 32 characters from an unambiguous alphabet.
    Password,
    /// 32 random bytes, hex.
    Token,
}

impl SecretKind {
    fn kind(self) -> Kind {
        match self {
            SecretKind::Wireguard => Kind::Wireguard,
            SecretKind::Password => Kind::Password,
            SecretKind::Token => Kind::Token,
        }
    }
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let root = crate::ops::fleet::repo_root(g.repo.as_deref())?;
    for path in scratch::remove_stale() {
        eprintln!(
            "removed a plaintext copy left by an interrupted `secrets edit`: {}",
            path.display()
        );
    }
    let ctx = Context::load(&root)?;
    match &a.action {
        Action::List => list(g, &ctx),
        Action::Set { name, scope } => {
            let mut value = Vec::new();
            std::io::stdin()
                .read_to_end(&mut value)
                .map_err(|e| Error::io(Utf8Path::new("<stdin>"), e))?;
            let file = ctx.file_for(name, &scope.scope())?;
            ctx.store(&file, &value)?;
            wrote(g, &file, None);
            Ok(())
        }
        Action::Gen { name, kind, scope } => {
            let file = ctx.file_for(name, &scope.scope())?;
            if RepoFs::open(&root)?.kind(&file)?.is_some() && !scope.force {
                return Err(Error::usage(
                    format!("{file} exists"),
                    "pass --force to replace it (the old value is lost)",
                ));
            }
            let (value, public) = secrets::generate(kind.kind());
            ctx.store(&file, &value)?;
            wrote(g, &file, public.as_deref());
            Ok(())
        }
        Action::Rekey => {
            let rekeyed = ctx.rekey()?;
            rekeyed_report(g, &rekeyed);
            Ok(())
        }
        Action::Hostkey { host, force } => {
            let made = secrets::host_key(&root, repo::check_host_name(host)?, *force)?;
            if g.json {
                println!("{}", json!({ "host": host, "public_key": made.public }));
            } else {
                rekeyed_report(g, &made.rekeyed);
                println!(
                    "{host} = \"{}\" recorded in secrets/recipients.toml",
                    made.public
                );
            }
            Ok(())
        }
        Action::Edit { name, scope } => {
            let file = ctx.file_for(name, &scope.scope())?;
            match ctx.edit(&file)? {
                Edited::Unchanged if !g.quiet => println!("{file} unchanged"),
                Edited::Unchanged => {}
                Edited::Stored => wrote(g, &file, None),
            }
            Ok(())
        }
    }
}

fn wrote(g: &Global, file: &Utf8Path, public: Option<&str>) {
    if g.json {
        println!("{}", json!({ "file": file, "public_key": public }));
        return;
    }
    println!("wrote {file}");
    if let Some(p) = public {
        println!("public_key = \"{p}\"");
    }
}

fn rekeyed_report(g: &Global, rewritten: &[camino::Utf8PathBuf]) {
    if g.json {
        println!("{}", json!({ "rekeyed": rewritten }));
    } else if !g.quiet {
        for f in rewritten {
            println!("rekeyed {f}");
        }
        println!(
            "{} secret{} rekeyed",
            rewritten.len(),
            if rewritten.len() == 1 { "" } else { "s" }
        );
    }
}

fn list(g: &Global, ctx: &Context) -> Result<(), Error> {
    let rows = ctx.list()?;
    if g.json {
        println!("{}", json!({ "secrets": rows }));
        return Ok(());
    }
    println!(
        "{:<36} {:<28} {:>10}  state",
        "file", "used by", "recipients"
    );
    for r in &rows {
        println!(
            "{:<36} {:<28} {:>10}  {}",
            r.file,
            if r.used_by.is_empty() {
                "(unused)".into()
            } else {
                r.used_by.join(",")
            },
            r.recipients,
            if r.up_to_date { "ok" } else { "needs rekey" }
        );
    }
    Ok(())
}
