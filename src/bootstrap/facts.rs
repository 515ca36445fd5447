//! Facts the detection finds that the host file lacks, written back into it
//! with its comments and layout intact (toml_edit): today the boot disk, when
//! the machine leaves no doubt which disk it is.

use camino::{Utf8Path, Utf8PathBuf};

use super::hardware::Hardware;
use crate::plan::HostPlan;

/// One fact to write: a dotted key and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub table: &'static str,
    pub key: &'static str,
    pub value: String,
}

/// What the host file should gain, or why it cannot be decided here.
pub fn missing(plan: &HostPlan, hw: &Hardware) -> Result<Vec<Fact>, String> {
    // SD-card and VM-image hosts are installed from images, not to a disk.
    if plan.storage.boot_disk.is_some() || plan.hardware != crate::inventory::schema::Hardware::N250
    {
        return Ok(Vec::new());
    }
    let candidates: Vec<&str> = hw
        .disks
        .iter()
        .filter_map(|d| d.by_id.first().map(String::as_str))
        .collect();
    match candidates.as_slice() {
        [one] => Ok(vec![Fact {
            table: "storage",
            key: "boot_disk",
            value: one.to_string(),
        }]),
        [] => Err("the machine has no disk with a /dev/disk/by-id link to install to".into()),
        many => Err(format!(
            "storage.boot_disk is not set and the machine has {} disks; name one in {}: {}",
            many.len(),
            plan.file,
            many.join(", ")
        )),
    }
}

/// Writes `facts` into the repository's host file `file`, keeping everything
/// else as it was (read and written through `fsguard`, never through a link).
pub fn write(repo: &Utf8Path, file: &Utf8Path, facts: &[Fact]) -> Result<(), WriteError> {
    if facts.is_empty() {
        return Ok(());
    }
    let edit = |why: String| WriteError::Edit {
        file: file.to_path_buf(),
        why,
    };
    let fs = crate::fsguard::RepoFs::open(repo)?;
    let text = fs
        .read_string(file)?
        .ok_or_else(|| edit("missing".into()))?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| edit(format!("{e}")))?;
    for f in facts {
        let table = doc
            .entry(f.table)
            .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
        let Some(table) = table.as_table_like_mut() else {
            return Err(edit(format!("`{}` is not a table", f.table)));
        };
        table.insert(f.key, toml_edit::value(f.value.as_str()));
    }
    fs.write_atomic(file, doc.to_string().as_bytes(), 0o644)?;
    Ok(())
}

/// Why the facts could not be written: the file system (I/O exit 1, a link
/// exit 2, as `fsguard` sorts it), or a host file that cannot take them.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Fs(#[from] crate::fsguard::FsError),
    #[error("{file}: {why}")]
    Edit { file: Utf8PathBuf, why: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_keeps_comments_and_adds_the_key_to_an_existing_table() {
        let dir = tempfile::tempdir().unwrap();
        let repo = camino::Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        let file = repo.join("h.toml");
        std::fs::write(
            &file,
            "# my host\nsystem = \"x86_64-linux\" # x86\n\n[storage]\n# data\nmounts.\"/mnt/a\" = { device = \"/dev/disk/by-label/a\", fs = \"ext4\" }\n",
        )
        .unwrap();
        let fact = Fact {
            table: "storage",
            key: "boot_disk",
            value: "/dev/disk/by-id/nvme-X_1".into(),
        };
        write(&repo, Utf8Path::new("h.toml"), &[fact]).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# my host\nsystem = \"x86_64-linux\" # x86\n"),
            "{text}"
        );
        assert!(text.contains("# data\n"), "{text}");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(
            v["storage"]["boot_disk"].as_str(),
            Some("/dev/disk/by-id/nvme-X_1")
        );
        assert_eq!(
            v["storage"]["mounts"]["/mnt/a"]["fs"].as_str(),
            Some("ext4")
        );
    }

    #[test]
    fn write_creates_the_table_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = camino::Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        let file = repo.join("h.toml");
        std::fs::write(&file, "system = \"x86_64-linux\"\n").unwrap();
        let fact = Fact {
            table: "storage",
            key: "boot_disk",
            value: "/dev/disk/by-id/ata-Y".into(),
        };
        write(&repo, Utf8Path::new("h.toml"), &[fact]).unwrap();
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            v["storage"]["boot_disk"].as_str(),
            Some("/dev/disk/by-id/ata-Y")
        );
    }
}
