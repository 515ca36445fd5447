//! `potato secrets list|set|gen|rekey|hostkey|edit`: the age-encrypted store
//! (`ops::secrets`), printed by `report::secrets`. Values never reach stdout,
//! stderr, argv or a log; `gen` prints only public keys.

use std::io::Read;

use camino::Utf8Path;
use clap::{Subcommand, ValueEnum};

use super::args::Global;
use crate::error::Error;
use crate::ops::secrets::{self, Context, Edited, Kind, Scope, scratch};
use crate::{repo, report};

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
    let out = g.output();
    let ctx = Context::load(&root)?;
    let text = match &a.action {
        Action::List => report::secrets::list(out, &ctx.list()?),
        Action::Set { name, scope } => {
            let mut value = Vec::new();
            std::io::stdin()
                .read_to_end(&mut value)
                .map_err(|e| Error::io(Utf8Path::new("<stdin>"), e))?;
            let file = ctx.file_for(name, &scope.scope())?;
            ctx.store(&file, &value)?;
            report::secrets::wrote(out, &file, None)
        }
        Action::Gen { name, kind, scope } => {
            let file = ctx.file_for(name, &scope.scope())?;
            let public = ctx.generate_into(&file, kind.kind(), scope.force)?;
            report::secrets::wrote(out, &file, public.as_deref())
        }
        Action::Rekey => report::secrets::rekeyed(out, &ctx.rekey()?),
        Action::Hostkey { host, force } => {
            let made = secrets::host_key(&root, repo::check_host_name(host)?, *force)?;
            report::secrets::host_key(out, host, &made.public, &made.rekeyed)
        }
        Action::Edit { name, scope } => {
            let file = ctx.file_for(name, &scope.scope())?;
            match ctx.edit(&file)? {
                Edited::Unchanged => report::secrets::unchanged(out, &file),
                Edited::Stored => report::secrets::wrote(out, &file, None),
            }
        }
    };
    print!("{text}");
    Ok(())
}
