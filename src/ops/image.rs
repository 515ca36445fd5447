//! Building a host's images with Nix (the flake's `images.<host>.<kind>`),
//! finding their files, copying them out of the store and putting the host's
//! pre-generated SSH host key into the copies (never into the store). Used by
//! `image`, `flash`, `vm create` and bootstrap's kexec step.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::fleet::Fleet;
use crate::error::Error;
use crate::inventory::schema::Hardware;
use crate::nix;
use crate::plan::HostPlan;
use crate::ui::Reporter;

/// Kinds that are disk images with an ext4 root: they get the host key.
const DISK_KINDS: &[&str] = &["sd", "raw-efi", "qcow2"];

/// One built image kind.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub kind: String,
    pub store_path: String,
    pub files: Vec<Utf8PathBuf>,
    /// Copies outside the store (`--out`), with the host key when there is one.
    pub copied: Vec<Utf8PathBuf>,
}

/// The image kinds each hardware profile gets (the flake's `kindsFor` says the
/// same; a test checks they agree).
pub fn kinds(hardware: Hardware) -> &'static [&'static str] {
    match hardware {
        Hardware::Lepotato => &["sd"],
        Hardware::N250 => &["raw-efi", "iso", "kexec"],
        Hardware::ProxmoxVm => &["qcow2", "vma"],
    }
}

/// Builds `host`'s images (one `kind`, or all), copying them into `out`.
pub fn build(
    fleet: &Fleet,
    host: &str,
    kind: Option<&str>,
    out: Option<&Utf8Path>,
    report: &Reporter,
) -> Result<(HostPlan, Vec<Image>), Error> {
    let plan = fleet.host(host)?;
    super::generate::refuse_stale(&fleet.root, std::slice::from_ref(&plan))?;
    let all = kinds(plan.hardware);
    let wanted: Vec<&str> = match kind {
        Some(k) if all.contains(&k) => vec![k],
        Some(k) => {
            return Err(Error::usage(
                format!("{host} ({}) has no `{k}` image", plan.hardware.as_str()),
                format!("its images are: {}", all.join(", ")),
            ));
        }
        None => all.to_vec(),
    };
    let attrs: Vec<String> = wanted
        .iter()
        .map(|k| format!("images.\"{}\".\"{k}\"", plan.name))
        .collect();
    report.note(&format!(
        "building {} image(s) of {host}: {}",
        wanted.len(),
        wanted.join(", ")
    ));
    let built = nix::build_attrs(&fleet.flake(), &attrs)?;
    let mut images = Vec::new();
    for (k, path) in wanted.iter().zip(&built) {
        let files = image_files(Utf8Path::new(path.as_str()));
        let copied = match out {
            Some(dir) => copy_out(&files, dir, &plan.name, k)?,
            None => Vec::new(),
        };
        if !copied.is_empty() && DISK_KINDS.contains(k) {
            key_into(fleet, &plan.name, &copied, report)?;
        }
        images.push(Image {
            kind: k.to_string(),
            store_path: path.to_string(),
            files,
            copied,
        });
    }
    if out.is_none() {
        report.note(&format!(
            "note: images in the store carry no host key; `--out DIR` copies them out with {host}'s pre-generated key"
        ));
    }
    Ok((plan, images))
}

/// Puts the host's pre-generated SSH host key into copied images (never into
/// the store). Without one, says what the image does instead.
fn key_into(
    fleet: &Fleet,
    host: &str,
    files: &[Utf8PathBuf],
    report: &Reporter,
) -> Result<(), Error> {
    let Some((private, public)) = super::secrets::pregenerated_host_key(&fleet.root, host, None)?
    else {
        report.note(&format!(
            "note: {host} has no pre-generated host key (`potato secrets hostkey {host}`): the image makes its own at first boot, and its secrets wait for `potato trust` and a rekey"
        ));
        return Ok(());
    };
    for f in files {
        crate::image_key::install(f.as_std_path(), &private, &public).map_err(|e| match e {
            crate::image_key::KeyError::Program(m) => Error::MissingProgram(m),
            e => Error::HostKeyInstall {
                message: e.to_string(),
                hint: "the image is copied but has no host key; fix the cause and run again",
            },
        })?;
        report.note(&format!(
            "{f}: host key installed ({})",
            crate::image_key::KEY_PATH
        ));
    }
    Ok(())
}

/// Builds one image and returns its single file (for flashing or uploading).
pub fn build_one(
    fleet: &Fleet,
    host: &str,
    kind: &str,
    report: &Reporter,
) -> Result<Utf8PathBuf, Error> {
    let files = image_files(&build_output(fleet, host, kind, report)?);
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::ProgramFailed {
            program: "nix build",
            message: format!(
                "the {kind} image of {host} has {} files, expected one (pass the file with --image)",
                files.len()
            ),
        }),
    }
}

/// Builds one image and returns its output directory in the store.
pub fn build_output(
    fleet: &Fleet,
    host: &str,
    kind: &str,
    report: &Reporter,
) -> Result<Utf8PathBuf, Error> {
    report.note(&format!("building the {kind} image of {host}"));
    let built = nix::build_attrs(&fleet.flake(), &[format!("images.\"{host}\".\"{kind}\"")])?;
    Ok(Utf8PathBuf::from(built[0].as_str()))
}

/// The regular files under an image output (sd-image/*.img, *.iso, ...).
fn image_files(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = d.read_dir_utf8() else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path().to_path_buf();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name() != Some("nix-support") {
                out.push(p);
            }
        }
    }
    out.sort();
    out.retain(|p| !p.components().any(|c| c.as_str() == "nix-support"));
    out
}

/// Copies image files out of the store as `<host>-<kind>-<name>`, writable.
fn copy_out(
    files: &[Utf8PathBuf],
    dir: &Utf8Path,
    host: &str,
    kind: &str,
) -> Result<Vec<Utf8PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut copied = Vec::new();
    for f in files {
        let dest = dir.join(format!(
            "{host}-{kind}-{}",
            f.file_name().unwrap_or("image")
        ));
        std::fs::copy(f, &dest).map_err(|e| Error::io(&dest, e))?;
        let mut perm = std::fs::metadata(&dest)
            .map_err(|e| Error::io(&dest, e))?
            .permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&dest, perm).map_err(|e| Error::io(&dest, e))?;
        copied.push(dest);
    }
    Ok(copied)
}
