//! potato's error type: every failure a command can end with, and its exit code.
//! Rendering to the terminal or JSON happens once, in `main`.

use camino::{Utf8Path, Utf8PathBuf};

use crate::diag::Report;

/// Exit codes: 0 success, 1 a failure (stale files, I/O, a host failed),
/// 2 invalid input (host files, arguments).
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_INVALID: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the host files are invalid ({} problem{})", .0.diagnostics.len(), if .0.diagnostics.len() == 1 { "" } else { "s" })]
    Invalid(Report),
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error("no potato repository here: no flake.nix in {start} or any parent directory")]
    RepoNotFound { start: Utf8PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
    #[error("rendering host {host}: {message}")]
    Render { host: String, message: String },
    /// A value its native file cannot hold (see `render::format`).
    #[error("{file}: {refused} (it would go into {output})")]
    Unwritable {
        file: Utf8PathBuf,
        output: Utf8PathBuf,
        refused: Box<crate::render::format::Refused>,
    },
    #[error("{count} generated file{} out of date", if *.count == 1 { " is" } else { "s are" })]
    Stale { count: usize },
    #[error(transparent)]
    Nix(crate::nix::NixError),
    /// An external program a command needs is not on PATH (exit 1: the
    /// machine lacks it, the input is fine).
    #[error(transparent)]
    MissingProgram(#[from] crate::tools::MissingProgram),
    #[error("{} program{} that potato commands need {} missing: {}", .programs.len(), if .programs.len() == 1 { "" } else { "s" }, if .programs.len() == 1 { "is" } else { "are" }, .programs.join(", "))]
    MissingPrograms { programs: Vec<String> },
    #[error("{host}: {message}")]
    Host { host: String, message: String },
    /// A command on a host failed (exit 1): the host's typed error, kept to here.
    #[error("{host}: {source}")]
    Remote {
        host: String,
        source: Box<crate::host::HostError>,
    },
    #[error("{failed} of {total} host{} did not end deployed or up to date", if *.total == 1 { "" } else { "s" })]
    HostsFailed { failed: usize, total: usize },
    #[error("{host}: {failed} baseline check{} failed", if *.failed == 1 { "" } else { "s" })]
    AuditFailed { host: String, failed: usize },
    /// A secret that would not decrypt (a wrong identity, a damaged file):
    /// the input named the right secret, the store could not open it.
    #[error("{0}")]
    Decrypt(crate::secrets::store::SecretError),
    /// The pre-generated host key could not be put into an image or card
    /// (the image itself is written).
    #[error("{message}")]
    HostKeyInstall { message: String, hint: &'static str },
    /// A program potato ran failed (it is installed: `MissingProgram` is for
    /// one that is not).
    #[error("{program} failed: {message}")]
    ProgramFailed {
        program: &'static str,
        message: String,
    },
    /// The bootstrap's progress file could not be written.
    #[error("cannot record the bootstrap's progress in {file}: {message}")]
    StateFile { file: Utf8PathBuf, message: String },
}

impl Error {
    pub fn io(path: &Utf8Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_)
            | Error::Usage { .. }
            | Error::RepoNotFound { .. }
            | Error::Unwritable { .. } => EXIT_INVALID,
            _ => EXIT_FAILURE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } => hint.clone(),
            Error::RepoNotFound { .. } => {
                Some("run potato inside your fleet repository, or pass --repo DIR".into())
            }
            Error::Stale { .. } => Some("run `potato gen` and commit the result".into()),
            Error::MissingProgram(m) => Some(m.hint()),
            Error::MissingPrograms { .. } => {
                Some("install them with the packages listed above".into())
            }
            Error::Unwritable { file, .. } => Some(format!(
                "change that value in {file} (or in the catalog entry it comes from); potato writes no file it cannot write exactly"
            )),
            Error::HostKeyInstall { hint, .. } => Some(hint.to_string()),
            Error::ProgramFailed { program, .. } => {
                Some(format!("check that {program} works on this machine (`potato doctor`)"))
            }
            Error::Decrypt(_) => Some(
                "check the age identity (--age-identity, POTATO_AGE_IDENTITY, ~/.config/potato/age.key) and that the file is intact".into(),
            ),
            Error::StateFile { .. } => Some(
                "make .potato/bootstrap/ writable (nothing on the machine is lost: run bootstrap again to go on)".into(),
            ),
            Error::AuditFailed { .. } => Some(
                "generated failures: run `potato gen`; live failures: deploy the host (`potato deploy HOST`)".into(),
            ),
            _ => None,
        }
    }

    /// A failure on `host` (exit 1).
    pub fn remote(host: &str, source: crate::host::HostError) -> Error {
        Error::Remote {
            host: host.to_string(),
            source: Box::new(source),
        }
    }

    /// Names the potato command that was running in a missing-program error.
    pub fn in_command(self, command: &str) -> Error {
        match self {
            Error::MissingProgram(m) => Error::MissingProgram(m.in_command(command)),
            e => e,
        }
    }
}

/// Secrets errors: a decrypt failure is exit 1 (`Decrypt`), file access goes
/// the way of `fsguard`'s errors (I/O exit 1, a refused link exit 2); the
/// rest (a bad recipient, no recipients, no identity, an unreadable
/// recipients.toml or identity file) is input to fix, exit 2.
impl From<crate::secrets::store::SecretError> for Error {
    fn from(e: crate::secrets::store::SecretError) -> Error {
        use crate::secrets::store::SecretError;
        match e {
            SecretError::Fs(e) => e.into(),
            e @ SecretError::Decrypt { .. } => Error::Decrypt(e),
            e @ SecretError::NoIdentity { .. } => Error::usage(
                e.to_string(),
                "pass --age-identity FILE, or set POTATO_AGE_IDENTITY",
            ),
            e => Error::usage(e.to_string(), "see `potato secrets --help`"),
        }
    }
}

/// A missing program surfaces as `Error::MissingProgram` wherever in the Nix
/// layer it was found missing.
impl From<crate::nix::NixError> for Error {
    fn from(e: crate::nix::NixError) -> Error {
        match e {
            crate::nix::NixError::Missing(m) => Error::MissingProgram(m),
            e => Error::Nix(e),
        }
    }
}

// Report holds source texts; Debug shows only the count.
impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Report({} diagnostics)", self.diagnostics.len())
    }
}

/// A `potato ca` failure: file-system errors keep their kind, the rest are
/// the input's (the CA exists, none yet, a host without internal TLS, ...).
impl From<crate::pki::ops::PkiError> for Error {
    fn from(e: crate::pki::ops::PkiError) -> Error {
        match e {
            crate::pki::ops::PkiError::Fs(e) => e.into(),
            e => Error::usage(e.to_string(), e.hint()),
        }
    }
}
