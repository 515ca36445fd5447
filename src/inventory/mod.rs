//! The inventory: every `hosts/*.toml` of the repository, parsed with spans.
//!
//! Owns finding and reading host files (through `fsguard`: a linked host file
//! is refused before it is read, so its lines never reach an error) and turning TOML syntax or shape errors into
//! diagnostics. It does not judge values (that is `resolve`), and it never touches
//! generated files or Nix.

pub mod ident;
pub mod schema;
pub mod spanned;
pub mod text;

use camino::{Utf8Path, Utf8PathBuf};

use crate::diag::{Diagnostic, FileId, Loc, Sources};
use crate::error::Error;
use crate::fsguard::{Kind, RepoFs};
pub use schema::HostFile;
pub use spanned::Spanned;

/// One parsed host file.
#[derive(Debug)]
pub struct HostSource {
    /// The file stem: the host's name everywhere else.
    pub name: String,
    pub file: FileId,
    /// Repository-relative path, e.g. `hosts/n250.toml`.
    pub path: Utf8PathBuf,
    pub raw: HostFile,
}

/// All host files that parsed, plus diagnostics for those that did not.
pub struct Inventory {
    pub sources: Sources,
    pub hosts: Vec<HostSource>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Host files of the repository (repository-relative), sorted by name. A
/// linked host file or `hosts/` directory is refused before anything is read.
pub fn host_files(fs: &RepoFs) -> Result<Vec<Utf8PathBuf>, Error> {
    let dir = Utf8Path::new("hosts");
    let entries = fs
        .list(dir)?
        .ok_or_else(|| Error::io(dir, std::io::Error::from(std::io::ErrorKind::NotFound)))?;
    let mut files = Vec::new();
    for (name, kind) in entries {
        let path = dir.join(&name);
        if path.extension() != Some("toml") {
            continue;
        }
        match kind {
            Kind::File => files.push(path),
            Kind::Symlink => fs.refuse_link(&path)?,
            Kind::Dir | Kind::Other => {}
        }
    }
    Ok(files)
}

/// Reads and parses every host file. Parse errors become diagnostics; only I/O
/// failures and links are errors.
pub fn load(repo: &Utf8Path) -> Result<Inventory, Error> {
    let mut inv = Inventory {
        sources: Sources::default(),
        hosts: Vec::new(),
        diagnostics: Vec::new(),
    };
    let fs = RepoFs::open(repo)?;
    for rel in host_files(&fs)? {
        let text = fs
            .read_string(&rel)?
            .ok_or_else(|| Error::io(&rel, std::io::Error::from(std::io::ErrorKind::NotFound)))?;
        inv.add_host_file(rel, text);
    }
    Ok(inv)
}

impl Inventory {
    /// Parses one host file's text (repository-relative `rel`, e.g.
    /// `hosts/n250.toml`): a host on success, a diagnostic otherwise. `load`
    /// calls it for each file it reads; tests call it with TOML snippets.
    pub fn add_host_file(&mut self, rel: Utf8PathBuf, text: String) {
        let file = self.sources.add(&rel, text);
        let name = rel.file_stem().unwrap_or_default().to_string();
        let control = text::control_characters(file, self.sources.text(file));
        if !control.is_empty() {
            self.diagnostics.extend(control);
            return;
        }
        match toml::from_str::<HostFile>(self.sources.text(file)) {
            Ok(raw) => self.hosts.push(HostSource {
                name,
                file,
                path: rel,
                raw,
            }),
            Err(e) => self.diagnostics.push(toml_diagnostic(file, &e)),
        }
    }
}

/// A TOML syntax, shape or identifier error as a diagnostic at its span.
pub fn toml_diagnostic(file: FileId, e: &toml::de::Error) -> Diagnostic {
    let (message, ident_hint, ident_span) = ident::split_error(e.message());
    let hint = ident_hint
        .map(str::to_string)
        .or_else(|| toml_hint(message));
    let span = ident_span.or_else(|| e.span()).unwrap_or(0..0);
    let mut d = Diagnostic::at(Loc::new(file, span), message);
    if let Some(h) = hint {
        d = d.hint(h);
    }
    d
}

/// A fix for the TOML errors users hit most.
fn toml_hint(message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        Some("remove or correct the key; docs/host.schema.json lists every key (editors with taplo complete them)".into())
    } else if message.starts_with("missing field") {
        Some("add the key; see README.md, \"Host file reference\"".into())
    } else if message.starts_with("unknown variant") {
        Some("use one of the listed values".into())
    } else {
        None
    }
}
