//! `potato flash HOST DEVICE`: the host's card image onto an SD card (or a
//! file), verified by reading it back (`ops::flash`).

use super::args::{Global, NixArgs};
use crate::error::Error;
use crate::ops::{flash, fleet::Fleet};
use crate::ui::Reporter;

/// Write the host's card image to an SD card (or a file), then read it back
/// and verify. Refuses partitions, mounted or fixed disks and the disk
/// holding /; asks you to type the device unless --yes.
#[derive(Debug, clap::Args)]
pub struct Args {
    pub host: String,
    /// The card's whole device (e.g. /dev/sdb, /dev/mmcblk0), or a file.
    pub device: camino::Utf8PathBuf,
    /// Flash this image file instead of building the host's.
    #[arg(long)]
    pub image: Option<camino::Utf8PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub nix: NixArgs,
}

pub fn run(g: &Global, a: &Args) -> Result<(), Error> {
    let fleet = Fleet::load(g.repo.as_deref(), g.output())?.with_nix(a.nix.overrides());
    let request = flash::Request {
        host: &a.host,
        device: &a.device,
        image: a.image.as_deref(),
        yes: a.yes,
    };
    let report = Reporter::new(g.output());
    let f = flash::flash(&fleet, &request, &report)?;
    report.document(
        &serde_json::json!({ "host": f.host, "image": f.image, "target": f.target.path(), "bytes": f.bytes, "verified": true, "host_key": f.host_key }),
    );
    if g.json {
        return Ok(());
    }
    println!(
        "wrote {} ({} bytes) to {}, read back and verified",
        f.image,
        f.bytes,
        f.target.describe()
    );
    if f.host_key {
        println!("host key installed ({})", crate::image_key::KEY_PATH);
    } else {
        println!(
            "no pre-generated host key (`potato secrets hostkey {}`): the card makes its own at first boot",
            f.host
        );
    }
    Ok(())
}
