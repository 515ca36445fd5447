//! fail2ban's INI files (`jail.d/*.local`), read by its `configparserinc`
//! (Python's ConfigParser with interpolation): owns how a setting's value is
//! written; `harden::fail2ban` owns which jails and settings there are.
//!
//! ConfigParser ends a value at the line's end, continues it on a following
//! indented line, strips outer whitespace, cuts an inline comment at `;` or
//! `#` after whitespace (or at the value's start; the tests caught it) and
//! expands `%(name)s`; so a value is one line without outer whitespace or
//! such a comment sign, and every `%` is written `%%`.

use super::{Format, Problem, Refused, single_line};

/// `s` as a setting's value.
pub fn value(s: &str) -> Result<String, Refused> {
    single_line(Format::Fail2banValue, s, &['\t'])?;
    if s.trim() != s {
        return Err(Refused::new(Format::Fail2banValue, s, Problem::OuterSpace));
    }
    let mut prev_space = true;
    for c in s.chars() {
        if prev_space && matches!(c, ';' | '#') {
            return Err(Refused::new(Format::Fail2banValue, s, Problem::Reserved(c)));
        }
        prev_space = c.is_whitespace();
    }
    Ok(s.replace('%', "%%"))
}

/// A setting's name: letters, digits, `_`, `.` and `-` (`bantime.increment`).
pub fn key(s: &str) -> Result<&str, Refused> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Ok(s)
    } else {
        Err(Refused::new(
            Format::Fail2banValue,
            s,
            Problem::Shape("a setting name (letters, digits, `_`, `.`, `-`)"),
        ))
    }
}

/// One `key = value` line (with its newline).
pub fn line(k: &str, v: &str) -> Result<String, Refused> {
    Ok(format!("{} = {}\n", key(k)?, value(v)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_escape_percent_and_refuse_line_breaks() {
        assert_eq!(line("bantime", "600").unwrap(), "bantime = 600\n");
        assert_eq!(value("100%").unwrap(), "100%%");
        assert!(value("x\n[sshd]\nenabled = false").is_err());
        assert!(value(" x").is_err());
        assert!(value(";x").is_err());
        assert!(value("a #x").is_err());
        assert_eq!(value("a;b#c").unwrap(), "a;b#c");
        assert!(key("a b").is_err());
    }
}
