//! systemd unit names, where potato hands one to systemd (a health check's
//! `unit`, which the on-host agent passes to `systemctl is-active`). Owns the
//! check; the deploy engine owns what is done with the name.
//!
//! systemd's `unit_name_is_valid` allows letters, digits and `:-_.\@`, at most
//! 255 bytes. A name starting with `-` would be read by systemctl as an
//! option, so it is refused too.

use super::{Format, Problem, Refused};

/// The longest unit name systemd accepts (`UNIT_NAME_MAX` less the NUL).
pub const MAX: usize = 255;

/// A unit name (`nginx`, `podman-app.service`, `getty@tty1.service`).
pub fn unit_name(s: &str) -> Result<&str, Refused> {
    let refuse = |p| Err(Refused::new(Format::SystemdUnitName, s, p));
    if s.is_empty() {
        return refuse(Problem::Empty);
    }
    if s.len() > MAX {
        return refuse(Problem::TooLong { max: MAX });
    }
    if s.starts_with(['-', '.', '@']) {
        return refuse(Problem::Reserved(s.chars().next().unwrap_or('-')));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@')))
    {
        return refuse(if c == '\0' {
            Problem::Nul
        } else if super::is_line_break(c) {
            Problem::LineBreak
        } else {
            Problem::Reserved(c)
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        for ok in [
            "nginx",
            "podman-app.service",
            "getty@tty1.service",
            "a\\x2db",
        ] {
            assert!(unit_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-H host", "--host=x", "a b", "a;b", "a\nb", ".service"] {
            assert!(unit_name(bad).is_err(), "{bad:?}");
        }
        assert!(unit_name(&"a".repeat(256)).is_err());
    }
}
