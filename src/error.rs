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
    /// A repository entry that cannot be read or written as what it should
    /// be (a directory where a file goes): exit 1, as an I/O failure.
    #[error(transparent)]
    RepoFile(crate::fsguard::FsError),
    #[error("rendering host {host}: {message}")]
    Render { host: String, message: String },
    /// A value its native file cannot hold (see `render::format`).
    #[error("{file}: {refused} (it would go into {output})")]
    Unwritable {
        file: Utf8PathBuf,
        output: Utf8PathBuf,
        refused: Box<crate::render::format::Refused>,
    },
    /// Generated files that do not match the host files (exit 1): `gen
    /// --check`, or a command that refuses to use them (`files` named).
    #[error("{count} generated file{} out of date{}", if *.count == 1 { " is" } else { "s are" }, if .files.is_empty() { String::new() } else { format!(": {}", .files.join(", ")) })]
    Stale { count: usize, files: Vec<String> },
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
    /// `potato build`: hosts whose systems did not build where they are
    /// built, each error naming the host (a builder's log tail in it).
    #[error("{} of {total} host{} did not build:\n{}", .errors.len(), if *.total == 1 { "" } else { "s" }, .errors.join("\n"))]
    BuildsFailed { total: usize, errors: Vec<String> },
    #[error("{host}: {failed} baseline check{} failed", if *.failed == 1 { "" } else { "s" })]
    AuditFailed { host: String, failed: usize },
    /// A secret that would not decrypt (a wrong identity, a damaged file):
    /// the input named the right secret, the store could not open it.
    #[error("{source}")]
    Decrypt {
        #[source]
        source: crate::secrets::store::SecretError,
        /// Where the identity comes from, when the caller knows better than
        /// the general hint.
        hint: Option<String>,
    },
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
    /// The bootstrap's progress file could not be read or written (exit 1:
    /// it is potato's own record, not input).
    #[error("cannot {action} the bootstrap's progress in {file}: {source}")]
    StateFile {
        file: Utf8PathBuf,
        action: StateAction,
        #[source]
        source: crate::bootstrap::StateError,
    },
    /// A Proxmox VE API call for `host`'s VM failed (exit 1).
    #[error("{host}: {source}")]
    Api {
        host: String,
        #[source]
        source: Box<crate::proxmox::ProxmoxError>,
    },
    /// The machine cannot do what was asked (exit 1: it is the machine, not
    /// the input), e.g. too little memory for the kexec installer.
    #[error("{host}: {message}")]
    HostUnfit {
        host: String,
        message: String,
        hint: String,
    },
    /// This machine's environment is unfit for potato (exit 1): a working
    /// directory or TMPDIR that is not UTF-8, no private directory for a
    /// plaintext copy.
    #[error("{message}")]
    Environment { message: String, hint: String },
}

/// What was being done with the bootstrap's progress file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAction {
    Read,
    Record,
}

impl std::fmt::Display for StateAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateAction::Read => "read",
            StateAction::Record => "record",
        })
    }
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
            Error::ProgramFailed {
                program: EDITOR, ..
            } => Some(
                "save and quit normally to keep your changes; set EDITOR to an editor that works"
                    .into(),
            ),
            Error::ProgramFailed { program, .. } => {
                Some(format!("check that {program} works on this machine (`potato doctor`)"))
            }
            Error::Decrypt { hint: Some(h), .. } => Some(h.clone()),
            Error::Decrypt { .. } => Some(
                "check the age identity (--age-identity, POTATO_AGE_IDENTITY, ~/.config/potato/age.key) and that the file is intact".into(),
            ),
            Error::StateFile {
                action: StateAction::Record,
                ..
            } => Some(
                "make .potato/bootstrap/ writable (nothing on the machine is lost: run bootstrap again to go on)".into(),
            ),
            Error::StateFile {
                action: StateAction::Read,
                file,
                ..
            } => Some(format!(
                "pass --target root@ADDR and --restart to start over (or remove {file}); nothing on the machine changes"
            )),
            Error::Api { .. } => Some(
                "check the Proxmox API ([proxmox] api, --api), the token's permissions and the node's task log".into(),
            ),
            Error::HostUnfit { hint, .. } | Error::Environment { hint, .. } => Some(hint.clone()),
            Error::RepoFile(e) => Some(e.hint()),
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
        Error::from_secret(e, "see `potato secrets --help`")
    }
}

impl Error {
    /// A secrets error as `From` sorts it, with `hint` for the input errors
    /// that are not about the identity.
    pub fn from_secret(e: crate::secrets::store::SecretError, hint: &str) -> Error {
        use crate::secrets::store::SecretError;
        match e {
            SecretError::Fs(e) => e.into(),
            e @ SecretError::Decrypt { .. } => Error::Decrypt {
                source: e,
                hint: None,
            },
            e @ SecretError::NoIdentity { .. } => Error::usage(
                e.to_string(),
                "pass --age-identity FILE, or set POTATO_AGE_IDENTITY",
            ),
            e => Error::usage(e.to_string(), hint),
        }
    }
}

/// `ProgramFailed`'s program for the operator's $EDITOR.
pub const EDITOR: &str = "$EDITOR";

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

/// A fleet CA error: file access as `fsguard` sorts it (I/O exit 1), a key
/// that does not decrypt exit 1 (`Decrypt`, with the CA's hint); the rest
/// (a CA that exists or is missing, a host without internal TLS, a damaged
/// certificate in the repository, a bad recipient) is input to fix, exit 2.
impl From<crate::pki::ops::PkiError> for Error {
    fn from(e: crate::pki::ops::PkiError) -> Error {
        use crate::pki::ops::PkiError;
        use crate::secrets::store::SecretError;
        let hint = e.hint();
        match e {
            PkiError::Fs(e) | PkiError::Secret(SecretError::Fs(e)) => e.into(),
            PkiError::Secret(source @ SecretError::Decrypt { .. }) => Error::Decrypt {
                source,
                hint: Some(hint),
            },
            e => Error::usage(e.to_string(), hint),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsguard::FsError;
    use crate::secrets::store::SecretError;

    fn io(path: &str) -> FsError {
        FsError::Io {
            path: path.into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        }
    }

    /// A secret's file access fails as I/O (exit 1), a file that will not
    /// decrypt is exit 1, a recipients.toml that does not parse is input
    /// (exit 2) with the caller's hint.
    #[test]
    fn secrets_errors_are_sorted_by_kind() {
        let e = Error::from_secret(SecretError::Fs(io("secrets/x.age")), "h");
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let e = Error::from(SecretError::Decrypt {
            path: "secrets/x.age".into(),
            why: "no matching keys".into(),
        });
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        assert!(e.hint().unwrap().contains("age identity"));
        let e = Error::from_secret(
            SecretError::File {
                path: "secrets/recipients.toml".into(),
                message: "expected `=`".into(),
            },
            "fix secrets/recipients.toml",
        );
        assert_eq!(e.exit_code(), EXIT_INVALID);
        assert_eq!(e.hint().as_deref(), Some("fix secrets/recipients.toml"));
    }

    /// The fleet CA's key that does not decrypt is exit 1 with the CA's own
    /// hint; a CA that already exists is a refusal (exit 2).
    #[test]
    fn fleet_ca_errors_are_sorted_by_kind() {
        use crate::pki::ops::PkiError;
        let e = Error::from(PkiError::Secret(SecretError::Decrypt {
            path: "secrets/shared/fleet-ca-key.age".into(),
            why: "no matching keys".into(),
        }));
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        assert!(
            e.hint().unwrap().contains("encrypted to the admins"),
            "{e:?}"
        );
        let e = Error::from(PkiError::Secret(SecretError::Fs(io(
            "secrets/fleet-ca.crt",
        ))));
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let e = Error::from(PkiError::Exists {
            path: "secrets/fleet-ca.crt".into(),
        });
        assert_eq!(e.exit_code(), EXIT_INVALID);
    }

    /// Failures of the machine, this machine's environment, an API or
    /// potato's own progress file are exit 1, each with a hint.
    #[test]
    fn failures_that_are_not_input_are_exit_1() {
        let cases = [
            Error::StateFile {
                file: ".potato/bootstrap/h.json".into(),
                action: StateAction::Read,
                source: crate::bootstrap::StateError::Fs(io(".potato/bootstrap/h.json")),
            },
            Error::Api {
                host: "vm".into(),
                source: Box::new(crate::proxmox::ProxmoxError::TaskTimeout {
                    upid: "UPID:x".into(),
                    secs: 1,
                }),
            },
            Error::HostUnfit {
                host: "h".into(),
                message: "too little RAM".into(),
                hint: "boot the ISO".into(),
            },
            Error::Environment {
                message: "the current directory is not UTF-8".into(),
                hint: "run potato from a UTF-8 path".into(),
            },
            Error::ProgramFailed {
                program: EDITOR,
                message: "vi exited with exit status: 1".into(),
            },
            Error::Stale {
                count: 1,
                files: vec!["modules/generated/h/default.nix".into()],
            },
        ];
        for e in cases {
            assert_eq!(e.exit_code(), EXIT_FAILURE, "{e:?}");
            assert!(e.hint().is_some(), "{e:?} says how to go on");
        }
    }

    /// The progress file's error keeps its source for `--json` and logs.
    #[test]
    fn a_state_file_error_keeps_its_source() {
        let e = Error::StateFile {
            file: ".potato/bootstrap/h.json".into(),
            action: StateAction::Record,
            source: crate::bootstrap::StateError::Fs(io(".potato/bootstrap/h.json")),
        };
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.to_string().contains("permission denied"), "{source}");
        assert!(
            e.to_string().starts_with(
                "cannot record the bootstrap's progress in .potato/bootstrap/h.json: "
            )
        );
    }
}
