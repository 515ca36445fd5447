//! Flashing a host's card image onto an SD card (or a file): the image
//! (built, or given), the refusals of `flash::check_target` before anything
//! is written, the confirmation, the write with a read-back verification, and
//! the pre-generated host key onto the card (never into the store image).

use camino::{Utf8Path, Utf8PathBuf};

use super::fleet::Fleet;
use crate::error::Error;
use crate::flash::{self, System, Target};
use crate::inventory::schema::Hardware;
use crate::ui::{Reporter, confirm_by_typing};

/// What to flash where.
pub struct Request<'a> {
    pub host: &'a str,
    pub device: &'a Utf8Path,
    /// This image instead of building the host's.
    pub image: Option<&'a Utf8Path>,
    /// No confirmation asked.
    pub yes: bool,
}

/// What was flashed.
pub struct Flashed {
    pub host: String,
    pub image: Utf8PathBuf,
    pub target: Target,
    pub bytes: u64,
    pub host_key: bool,
}

pub fn flash(fleet: &Fleet, req: &Request, report: &Reporter) -> Result<Flashed, Error> {
    let plan = fleet.host(req.host)?;
    let image = match req.image {
        Some(i) => i.to_path_buf(),
        None => card_image(fleet, &plan.name, plan.hardware, report)?,
    };
    let len = std::fs::metadata(&image)
        .map_err(|e| Error::io(&image, e))?
        .len();
    let target =
        flash::check_target(&System::default(), req.device.as_std_path(), len).map_err(|r| {
            Error::usage(
                format!("refusing to flash: {r}"),
                "nothing was written; pick the card's whole device (lsblk shows it)",
            )
        })?;
    confirm(req.yes, &target, len)?;
    report.note(&format!("writing {image} to {}", target.describe()));
    let written = flash::write_and_verify(image.as_std_path(), &target, &mut |phase, done| {
        report.bytes(&plan.name, phase, done, len);
    })
    .map_err(|e| Error::io(Utf8Path::new(&target.path().display().to_string()), e))?;
    let key = super::secrets::pregenerated_host_key(&fleet.root, &plan.name, None)?;
    if let Some((private, public)) = &key {
        crate::image_key::install(target.path(), private, public).map_err(|e| match e {
            crate::image_key::KeyError::Program(m) => Error::MissingProgram(m),
            e => Error::HostKeyInstall {
                message: e.to_string(),
                hint: "the image is written and verified, but the card has no host key",
            },
        })?;
    }
    Ok(Flashed {
        host: plan.name,
        image,
        target,
        bytes: written,
        host_key: key.is_some(),
    })
}

/// The image a card gets: the host's first image kind, built with Nix.
fn card_image(
    fleet: &Fleet,
    host: &str,
    hardware: Hardware,
    report: &Reporter,
) -> Result<Utf8PathBuf, Error> {
    if hardware == Hardware::ProxmoxVm {
        return Err(Error::usage(
            format!("{host} is a Proxmox VM: there is no card to flash"),
            format!("create it with `potato vm create {host}`"),
        ));
    }
    super::image::build_one(fleet, host, super::image::kinds(hardware)[0], report)
}

/// --yes, or the device's path typed back on a terminal.
fn confirm(yes: bool, target: &Target, len: u64) -> Result<(), Error> {
    confirm_by_typing(
        yes,
        &format!(
            "refusing to overwrite {} without confirmation",
            target.describe()
        ),
        &format!(
            "Write {} bytes to {}? Everything on it is lost.",
            len,
            target.describe()
        ),
        &target.path().display().to_string(),
    )
}
