//! POSIX shell: the one quoting function for every word potato puts into a
//! shell script or remote command (generated `secrets.sh`, `postgres-init.sh`,
//! the installer's partition script, commands sent over SSH).
//!
//! A word goes in single quotes, where sh interprets nothing; a `'` inside is
//! written `'\''` (close, escaped quote, reopen). That holds every character
//! but NUL, which no shell word can contain (a C string ends there, so a
//! command would be cut short): `word` refuses it. `word` (and `words`, built
//! on it) is the one shell-quoting function in potato: the host handle
//! (`host::Remote`), bootstrap and vm use it too. This module owns quoting
//! only, not which words a script has.

use super::{Format, Problem, Refused};

/// `s` single-quoted; private, so every caller goes through `word`, which
/// refuses NUL first.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// `s` as one shell word that reads back exactly, or refused when it holds NUL.
pub fn word(s: &str) -> Result<String, Refused> {
    if s.contains('\0') {
        return Err(Refused::new(Format::Shell, s, Problem::Nul));
    }
    Ok(quote(s))
}

/// Several words, quoted and joined with spaces.
pub fn words<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<String, Refused> {
    let quoted = items.into_iter().map(word).collect::<Result<Vec<_>, _>>()?;
    Ok(quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_single_quotes_and_refuses_nul() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(word("X;id>/tmp/f;Y").unwrap(), "'X;id>/tmp/f;Y'");
        assert_eq!(word("a\0b").unwrap_err().problem, Problem::Nul);
        assert_eq!(words(["a", "b c"]).unwrap(), "'a' 'b c'");
    }
}
