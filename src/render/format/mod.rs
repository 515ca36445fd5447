//! Native formats: one module per file format potato writes, each owning the
//! ONE function that turns a value into text of that format, by escaping it so
//! it reads back exactly or by refusing it with a `Refused` that says why.
//!
//! Renderers (`render`, `harden`, the install's partition script) place data in
//! a native file only through these functions; the fixed text around the data
//! (keywords, section headers) is theirs. This module owns the shared error
//! (`Refused`, `Problem`) and the character classes the formats have in common;
//! it must not know where a value came from (the renderer adds that context with
//! `Refused::of`) nor write any file.
//!
//! Each function has a property test (tests/formats.rs) that feeds adversarial
//! strings through the real reader of the format: sh, wg-quick, systemd-tmpfiles,
//! libmount (findmnt), nft, sshd, fail2ban's config reader, nix-instantiate.

pub mod envfile;
pub mod fail2ban;
pub mod fstab;
pub mod nft;
pub mod sh;
pub mod sql;
pub mod sshd;
pub mod sysctl;
pub mod systemd;
pub mod tmpfiles;
pub mod wgquick;
pub mod yaml_json;

/// The Nix format lives in `render::nix` (the template filter uses it too).
pub use crate::render::nix;

/// Which format (and which part of it) refused a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Nix,
    NixComment,
    Shell,
    EnvFile,
    WgQuickValue,
    WgQuickComment,
    TmpfilesPath,
    FstabField,
    NftString,
    NftComment,
    NftInterface,
    SshdValue,
    AuthorizedKey,
    SysctlKey,
    SysctlValue,
    SystemdUnitName,
    SqlIdentifier,
    Fail2banValue,
    Json,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Nix => "a Nix string",
            Format::NixComment => "a Nix comment",
            Format::Shell => "a shell word",
            Format::EnvFile => "a container environment file",
            Format::WgQuickValue => "a wg-quick value",
            Format::WgQuickComment => "a wg-quick comment",
            Format::TmpfilesPath => "a systemd-tmpfiles path",
            Format::FstabField => "an fstab field",
            Format::NftString => "an nftables string",
            Format::NftComment => "an nftables comment line",
            Format::NftInterface => "an nftables interface name",
            Format::SshdValue => "an sshd_config value",
            Format::AuthorizedKey => "an authorized_keys line",
            Format::SysctlKey => "a sysctl key",
            Format::SysctlValue => "a sysctl value",
            Format::SystemdUnitName => "a systemd unit name",
            Format::SqlIdentifier => "a PostgreSQL name",
            Format::Fail2banValue => "a fail2ban setting",
            Format::Json => "JSON",
        })
    }
}

/// What is wrong with a value, for the format that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// NUL: C strings (and so every reader here) end at it.
    Nul,
    /// A line feed, carriage return or other line break: it would end the
    /// line, and what follows would be read as a new directive.
    LineBreak,
    /// Another control character the format has no way to write.
    Control(char),
    /// A character the format reserves here (a quote, a comment sign, ...).
    Reserved(char),
    /// Leading or trailing whitespace, which the reader strips.
    OuterSpace,
    Empty,
    /// Longer than the reader accepts.
    TooLong {
        max: usize,
    },
    NotAbsolute,
    /// A path with `.`/`..` components, `//` or a trailing `/`.
    NotNormalized,
    /// Fits none of the forms the format allows (said in words).
    Shape(&'static str),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Nul => f.write_str("it contains a NUL character"),
            Problem::LineBreak => f.write_str(
                "it contains a line break, which would start a new line of configuration",
            ),
            Problem::Control(c) => write!(f, "it contains the control character {c:?}"),
            Problem::Reserved(c) => write!(f, "it contains {c:?}, which this format reserves"),
            Problem::OuterSpace => f.write_str("it starts or ends with whitespace"),
            Problem::Empty => f.write_str("it is empty"),
            Problem::TooLong { max } => write!(f, "it is longer than {max} bytes"),
            Problem::NotAbsolute => f.write_str("it is not an absolute path"),
            Problem::NotNormalized => {
                f.write_str("it is not a normalized path (no `.`, `..`, `//` or trailing `/`)")
            }
            Problem::Shape(what) => write!(f, "it is not {what}"),
        }
    }
}

/// A value a format cannot hold. `field` (set by the renderer with `of`) says
/// which setting it is, e.g. "the name of WireGuard peer 2".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{format} cannot hold {}: {problem}", field_prefix(.field), shown(.value))]
pub struct Refused {
    pub format: Format,
    pub value: String,
    pub problem: Problem,
    pub field: Option<String>,
}

impl Refused {
    pub fn new(format: Format, value: &str, problem: Problem) -> Refused {
        Refused {
            format,
            value: value.to_string(),
            problem,
            field: None,
        }
    }

    /// Names the setting the value came from (kept when already named).
    pub fn of(mut self, field: impl Into<String>) -> Refused {
        if self.field.is_none() {
            self.field = Some(field.into());
        }
        self
    }
}

fn field_prefix(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default()
}

/// The value as Rust would write it, cut to 60 characters, so control
/// characters are visible and never reach the terminal raw.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(60).collect();
    let more = if cut.len() < value.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

/// The first character that is NUL, a line break or another control character
/// (Unicode class Cc, plus the Unicode line and paragraph separators), as a Problem.
/// `allow` lists control characters the caller accepts (e.g. tab).
pub fn control_problem(s: &str, allow: &[char]) -> Option<Problem> {
    s.chars().find_map(|c| {
        if allow.contains(&c) {
            None
        } else if c == '\0' {
            Some(Problem::Nul)
        } else if is_line_break(c) {
            Some(Problem::LineBreak)
        } else if c.is_control() {
            Some(Problem::Control(c))
        } else {
            None
        }
    })
}

/// `text` for the rest of a `#` comment line in any format: always one line.
/// Backslash, line breaks and other control characters are written as Rust
/// escapes (`\\`, `\n`, `\u{2028}`), so the comment is unambiguous and
/// nothing after it becomes a directive. Comments are for people; no reader
/// takes data from them.
pub fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c.is_control() || is_line_break(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters some reader treats as the end of a line.
pub fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Refuses `s` as `format` when it holds NUL, a line break or another control
/// character outside `allow`.
pub fn single_line(format: Format, s: &str, allow: &[char]) -> Result<(), Refused> {
    match control_problem(s, allow) {
        Some(p) => Err(Refused::new(format, s, p)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_where_and_why_without_raw_control_characters() {
        let e = Refused::new(Format::WgQuickComment, "a\n[Interface]", Problem::LineBreak)
            .of("WireGuard peer name");
        let text = e.to_string();
        assert_eq!(
            text,
            "WireGuard peer name: a wg-quick comment cannot hold \"a\\n[Interface]\": it contains a line break, which would start a new line of configuration"
        );
        assert!(!text.contains('\n'));
        assert_eq!(
            control_problem("a\tb", &['\t']),
            None,
            "an allowed control character passes"
        );
        assert_eq!(control_problem("a\u{2028}b", &[]), Some(Problem::LineBreak));
        assert_eq!(
            control_problem("a\u{1b}b", &[]),
            Some(Problem::Control('\u{1b}'))
        );
        assert_eq!(control_problem("a\0", &[]), Some(Problem::Nul));
    }
}
