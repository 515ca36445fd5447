//! PostgreSQL names in `postgres-init.sh`, which places a database's name
//! inside SQL identifiers (`"NAME"`) and literals (`'NAME'`). Owns the check;
//! the containers module owns the script.
//!
//! Only plain lowercase identifiers are accepted (what postgres folds unquoted
//! names to, at most 63 bytes), so neither quoting can be broken out of.

use super::{Format, Problem, Refused};

/// The longest identifier postgres keeps (NAMEDATALEN less the NUL).
pub const MAX: usize = 63;

/// A database or role name: a lowercase letter or `_`, then lowercase
/// letters, digits and `_`.
pub fn identifier(s: &str) -> Result<&str, Refused> {
    let mut chars = s.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(Refused::new(
            Format::SqlIdentifier,
            s,
            Problem::Shape("a lowercase SQL name (a-z, 0-9 and _, not starting with a digit)"),
        ));
    }
    if s.len() > MAX {
        return Err(Refused::new(
            Format::SqlIdentifier,
            s,
            Problem::TooLong { max: MAX },
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_only() {
        assert!(identifier("nextcloud").is_ok());
        assert!(identifier("app_2").is_ok());
        for bad in ["", "2x", "A", "x\"; DROP", "x'y", "a-b"] {
            assert!(identifier(bad).is_err(), "{bad:?}");
        }
    }
}
