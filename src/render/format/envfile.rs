//! Container environment files (`podman`/`docker --env-file`, systemd's
//! `EnvironmentFile=`): one `KEY=value` per line, assembled at activation by
//! `secrets.sh`. Owns which keys and literal values such a line may carry.
//!
//! Neither reader has quoting: a line break in a value starts another
//! variable, and a key is everything before the first `=`. So keys must be
//! shell-style names and values single lines; there is no escape, only refusal.

use super::{Format, Problem, Refused, single_line};

/// A variable name: a letter or `_`, then letters, digits and `_`.
pub fn key(s: &str) -> Result<&str, Refused> {
    let mut chars = s.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s)
    } else if s.is_empty() {
        Err(Refused::new(Format::EnvFile, s, Problem::Empty))
    } else {
        Err(Refused::new(
            Format::EnvFile,
            s,
            Problem::Shape("a variable name (a letter or _, then letters, digits or _)"),
        ))
    }
}

/// The name an env file is stored under (`<name>.env` in the secrets
/// directory): letters, digits, `_`, `-` and `.`, not starting with `.`, so it
/// stays one path component.
pub fn file_stem(s: &str) -> Result<&str, Refused> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(s)
    } else {
        Err(Refused::new(
            Format::EnvFile,
            s,
            Problem::Shape("a file name (letters, digits, `_`, `-`, `.`)"),
        ))
    }
}

/// A literal part of a value: any single line (tabs allowed).
pub fn value(s: &str) -> Result<&str, Refused> {
    single_line(Format::EnvFile, s, &['\t'])?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_names_and_values_single_lines() {
        assert!(key("DB_PASSWORD").is_ok());
        assert!(key("_x1").is_ok());
        for bad in ["", "1X", "X;id>/tmp/f;Y", "A=B", "A B", "A\nB"] {
            assert!(key(bad).is_err(), "{bad:?}");
        }
        assert!(value("a b\tc=d").is_ok());
        assert!(file_stem("nextcloud").is_ok());
        assert!(file_stem("../x").is_err());
        assert_eq!(value("a\nEVIL=1").unwrap_err().problem, Problem::LineBreak);
    }
}
