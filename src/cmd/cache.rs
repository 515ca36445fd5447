//! `potato cache init|show`: the fleet binary cache's signing key and where
//! the cache is. Parses arguments, calls `ops::cache`, prints
//! `report::cache`'s text; owns nothing else.

use clap::Subcommand;

use super::args::Global;
use crate::error::Error;
use crate::{ops, report};

/// `potato cache --help`: what the cache is and the order of the commands.
pub const LONG_ABOUT: &str = "The fleet binary cache, served by the host with [fleet.cache].

That host serves a signed static Nix binary cache (nginx, on its WireGuard
addresses); every other host of the fleet trusts its public key and
substitutes from it (nix.settings.substituters, next to cache.nixos.org).
The signing key is a secret for the admins and the cache host
(secrets/<host>/fleet-cache-key.age, decrypted at activation into
/run/potato-secrets); its public key is secrets/fleet-cache.pub.

Typical use:
  potato cache init     once: create the signing key
  potato gen            every host trusts it; the cache host serves it
  potato cache show     the cache host, each host's URL, the public key";

/// The fleet binary cache: its signing key and where hosts reach it.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    #[command(subcommand)]
    pub action: CacheAction,
}

/// The `potato cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Create the cache's Ed25519 signing key in Nix's format. Refuses when
    /// one exists, unless --force.
    ///
    /// The secret key is encrypted to the admins and the cache host; the
    /// public key goes to secrets/fleet-cache.pub. Commit both, then run
    /// `potato gen`.
    Init {
        /// The key's name, before the colon (Nix looks keys up by it).
        #[arg(long, default_value = crate::cache::DEFAULT_KEY_NAME)]
        name: String,
        /// Replace an existing key (every host must then be deployed again).
        #[arg(long)]
        force: bool,
    },
    /// The cache host, each host's substituter URL and the public key.
    Show,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let root = ops::fleet::repo_root(g.repo.as_deref())?;
    let out = g.output();
    match &a.action {
        CacheAction::Init { name, force } => {
            let made = ops::cache::init(&root, name, *force)?;
            if let Some(w) = &made.warning {
                eprintln!("warning: {w}");
            }
            print!("{}", report::cache::init(out, &made));
        }
        CacheAction::Show => print!("{}", report::cache::show(out, &ops::cache::show(&root)?)),
    }
    Ok(())
}
