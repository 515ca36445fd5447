//! `potato image HOST [--kind K] [--out DIR]`: builds the host's images with Nix
//! (the flake's `images.<host>.<kind>`) and shows the image files; `--out`
//! copies them out of the store (to flash or upload them).

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;

use crate::cli::{Global, NixArgs};
use crate::error::Error;
use crate::inventory::schema::Hardware;
use crate::nix;
use crate::repo;

/// The image kinds each hardware profile gets (the flake's `kindsFor` says the
/// same; a test checks they agree).
pub fn kinds(hardware: Hardware) -> &'static [&'static str] {
    match hardware {
        Hardware::Lepotato => &["sd"],
        Hardware::N250 => &["raw-efi", "iso", "kexec"],
        Hardware::ProxmoxVm => &["qcow2", "vma"],
    }
}

pub fn run(
    g: &Global,
    host: &str,
    kind: Option<&str>,
    out: Option<&Utf8Path>,
    nix_args: &NixArgs,
) -> Result<(), Error> {
    let root = super::repo_root(g)?;
    let plans = super::load_plans(&root)?;
    let plan = repo::select(&plans, &[host.to_string()])?[0];
    super::deploy::refuse_stale_generated(&root, std::slice::from_ref(plan))?;
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
    let flake = super::flake_for(&root, nix_args);
    let attrs: Vec<String> = wanted
        .iter()
        .map(|k| format!("images.\"{}\".\"{k}\"", plan.name))
        .collect();
    if !g.json {
        eprintln!(
            "building {} image(s) of {host}: {}",
            wanted.len(),
            wanted.join(", ")
        );
    }
    let built = nix::build_attrs(&flake, &attrs)?;
    let mut rows = Vec::new();
    for (k, path) in wanted.iter().zip(&built) {
        let files = image_files(Utf8Path::new(path.as_str()));
        let copied = match out {
            Some(dir) => copy_out(&files, dir, &plan.name, k)?,
            None => Vec::new(),
        };
        if !copied.is_empty() && DISK_KINDS.contains(k) {
            key_into(g, &root, &plan.name, &copied)?;
        }
        rows.push((k.to_string(), path.to_string(), files, copied));
    }
    if out.is_none() && !g.json {
        eprintln!(
            "note: images in the store carry no host key; `--out DIR` copies them out with {host}'s pre-generated key"
        );
    }
    if g.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(k, p, f, c)| json!({ "kind": k, "store_path": p, "files": f, "copied": c }))
            .collect();
        println!("{}", json!({ "host": plan.name, "images": v }));
    } else {
        for (k, p, files, copied) in &rows {
            println!("{host} {k:<8} {p}");
            for f in files {
                println!("  {f}");
            }
            for c in copied {
                println!("  copied to {c}");
            }
        }
    }
    Ok(())
}

/// Kinds that are disk images with an ext4 root: they get the host key.
const DISK_KINDS: &[&str] = &["sd", "raw-efi", "qcow2"];

/// Puts the host's pre-generated SSH host key into copied images (never into
/// the store). Without one, says what the image does instead.
fn key_into(g: &Global, root: &Utf8Path, host: &str, files: &[Utf8PathBuf]) -> Result<(), Error> {
    let Some((private, public)) = super::secrets::pregenerated_host_key(root, host, None)? else {
        if !g.json {
            eprintln!(
                "note: {host} has no pre-generated host key (`potato secrets hostkey {host}`): the image makes its own at first boot, and its secrets wait for `potato trust` and a rekey"
            );
        }
        return Ok(());
    };
    for f in files {
        crate::image_key::install(f.as_std_path(), &private, &public).map_err(|e| match e {
            crate::image_key::KeyError::Program(m) => Error::MissingProgram(m),
            e => Error::usage(
                e.to_string(),
                "the image is copied but has no host key; fix the cause and run again",
            ),
        })?;
        if !g.json {
            eprintln!("{f}: host key installed ({})", crate::image_key::KEY_PATH);
        }
    }
    Ok(())
}

/// Builds one image and returns its single file (for flashing or uploading).
pub(super) fn build_one(
    root: &Utf8Path,
    host: &str,
    kind: &str,
    nix_args: &NixArgs,
) -> Result<Utf8PathBuf, Error> {
    let files = image_files(&build_output(root, host, kind, nix_args)?);
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::usage(
            format!(
                "the {kind} image of {host} has {} files, expected one",
                files.len()
            ),
            "pass the file with --image",
        )),
    }
}

/// Builds one image and returns its output directory in the store.
pub(super) fn build_output(
    root: &Utf8Path,
    host: &str,
    kind: &str,
    nix_args: &NixArgs,
) -> Result<Utf8PathBuf, Error> {
    eprintln!("building the {kind} image of {host}");
    let flake = super::flake_for(root, nix_args);
    let built = nix::build_attrs(&flake, &[format!("images.\"{host}\".\"{kind}\"")])?;
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
