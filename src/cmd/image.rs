//! `potato image HOST [--kind K] [--out DIR]`: builds the host's images with Nix
//! (`ops::image`) and shows the image files; `--out` copies them out of the
//! store (to flash or upload them).

use serde_json::json;

use super::args::{Global, NixArgs};
use crate::error::Error;
use crate::ops::{fleet::Fleet, image};
use crate::ui::Reporter;

/// Build the host's image (SD card, raw/ISO, Proxmox).
#[derive(Debug, clap::Args)]
pub struct Args {
    pub host: String,
    /// One kind only: sd (lepotato), raw-efi or iso (n250), qcow2 or vma (Proxmox VMs).
    #[arg(long)]
    pub kind: Option<String>,
    /// Copy the image files out of the Nix store into this directory.
    #[arg(long)]
    pub out: Option<camino::Utf8PathBuf>,
    #[command(flatten)]
    pub nix: NixArgs,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_nix(a.nix.overrides());
    let report = Reporter::new(g.output());
    let (plan, images) = image::build(
        &fleet,
        &a.host,
        a.kind.as_deref(),
        a.out.as_deref(),
        &report,
    )?;
    if g.json {
        println!("{}", json!({ "host": plan.name, "images": images }));
        return Ok(());
    }
    for i in &images {
        println!("{} {:<8} {}", a.host, i.kind, i.store_path);
        for f in &i.files {
            println!("  {f}");
        }
        for c in &i.copied {
            println!("  copied to {c}");
        }
    }
    Ok(())
}
