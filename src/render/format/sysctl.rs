//! `sysctl.d(5)` files, read by systemd-sysctl: `key = value` lines, `#` and
//! `;` comments. Owns how a key and a value are written; `harden::baseline`
//! owns which settings there are.
//!
//! systemd-sysctl trims both sides of the `=` and has no quoting; a leading
//! `-` on a key means "ignore failure", and `/` or `.` separate the levels. So
//! a key is a dotted or slashed name of plain characters, and a value a
//! single line without outer whitespace.

use super::{Format, Problem, Refused, single_line};

/// A sysctl name: `net.ipv4.ip_forward`, `net/ipv4/conf/eth0.100/rp_filter`.
pub fn key(s: &str) -> Result<&str, Refused> {
    let ok = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '-' | '@' | ':'));
    if ok {
        Ok(s)
    } else {
        Err(Refused::new(
            Format::SysctlKey,
            s,
            Problem::Shape("a sysctl name (letters, digits, `.`, `/`, `_`, `-`, `@`, `:`)"),
        ))
    }
}

/// A value: one line, no surrounding whitespace, not empty.
pub fn value(s: &str) -> Result<&str, Refused> {
    single_line(Format::SysctlValue, s, &['\t'])?;
    if s.is_empty() {
        return Err(Refused::new(Format::SysctlValue, s, Problem::Empty));
    }
    if s.trim() != s {
        return Err(Refused::new(Format::SysctlValue, s, Problem::OuterSpace));
    }
    Ok(s)
}

/// One `key = value` line (with its newline).
pub fn line(k: &str, v: &str) -> Result<String, Refused> {
    Ok(format!("{} = {}\n", key(k)?, value(v)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert_eq!(
            line("net.ipv4.ip_forward", "1").unwrap(),
            "net.ipv4.ip_forward = 1\n"
        );
        assert!(key("net/ipv4/conf/eth0.100/rp_filter").is_ok());
        for bad in ["", "-kernel.sysrq", "a b", "a=b", "#a", "a\nb"] {
            assert!(key(bad).is_err(), "{bad:?}");
        }
        for bad in ["", " 1", "1\nkernel.sysrq = 1", "1\0"] {
            assert!(value(bad).is_err(), "{bad:?}");
        }
        assert!(value("4096 87380 6291456").is_ok());
    }
}
