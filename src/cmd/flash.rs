//! `potato flash HOST DEVICE`: the host's card image onto an SD card (or a file),
//! with a progress bar, a read-back verification, and refusals before anything
//! is written (see `flash`).

use camino::Utf8Path;

use crate::cli::{Global, NixArgs};
use crate::error::Error;
use crate::flash::{self, System, Target};
use crate::inventory::schema::Hardware;
use crate::repo;

pub struct FlashArgs<'a> {
    pub host: &'a str,
    pub device: &'a Utf8Path,
    pub image: Option<&'a Utf8Path>,
    pub yes: bool,
    pub nix: &'a NixArgs,
}

pub fn run(g: &Global, a: &FlashArgs) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = repo::select(&plans, &[a.host.to_string()])?[0];
    let image = match a.image {
        Some(i) => i.to_path_buf(),
        None => build_card_image(&root, plan.name.as_str(), plan.hardware, a.nix)?,
    };
    let len = std::fs::metadata(&image)
        .map_err(|e| Error::io(&image, e))?
        .len();
    let target =
        flash::check_target(&System::default(), a.device.as_std_path(), len).map_err(|r| {
            Error::usage(
                format!("refusing to flash: {r}"),
                "nothing was written; pick the card's whole device (lsblk shows it)",
            )
        })?;
    confirm(a, &target, len)?;
    let bar = bytes_bar(g, len);
    let written = flash::write_and_verify(image.as_std_path(), &target, &mut |phase, done| {
        bar.set_message(phase.to_string());
        bar.set_position(done);
    })
    .map_err(|e| Error::io(Utf8Path::new(&target.path().display().to_string()), e))?;
    bar.finish_and_clear();
    // The pre-generated host key, onto the card (never into the store image).
    let key = super::secrets::pregenerated_host_key(&root, &plan.name, None)?;
    if let Some((private, public)) = &key {
        crate::image_key::install(target.path(), private, public).map_err(|e| match e {
            crate::image_key::KeyError::Program(m) => Error::MissingProgram(m),
            e => Error::usage(
                e.to_string(),
                "the image is written and verified, but the card has no host key",
            ),
        })?;
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "host": plan.name, "image": image, "target": target.path(), "bytes": written, "verified": true, "host_key": key.is_some() })
        );
    } else {
        println!(
            "wrote {} ({written} bytes) to {}, read back and verified",
            image,
            target.describe()
        );
        match key {
            Some(_) => println!("host key installed ({})", crate::image_key::KEY_PATH),
            None => println!(
                "no pre-generated host key (`potato secrets hostkey {}`): the card makes its own at first boot",
                plan.name
            ),
        }
    }
    Ok(())
}

/// The image a card gets: the host's first image kind, built with Nix.
fn build_card_image(
    root: &Utf8Path,
    host: &str,
    hardware: Hardware,
    nix_args: &NixArgs,
) -> Result<camino::Utf8PathBuf, Error> {
    if hardware == Hardware::ProxmoxVm {
        return Err(Error::usage(
            format!("{host} is a Proxmox VM: there is no card to flash"),
            format!("create it with `potato vm create {host}`"),
        ));
    }
    super::image::build_one(root, host, super::image::kinds(hardware)[0], nix_args)
}

/// --yes, or the device's path typed back on a terminal.
fn confirm(a: &FlashArgs, target: &Target, len: u64) -> Result<(), Error> {
    super::confirm_by_typing(
        a.yes,
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

/// A bytes progress bar on stderr (hidden for --json and off a terminal).
pub(super) fn bytes_bar(g: &Global, len: u64) -> indicatif::ProgressBar {
    if g.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>6} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
