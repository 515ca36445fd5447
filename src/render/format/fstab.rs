//! fstab (`fstab(5)`, read by libmount and systemd-fstab-generator): one
//! filesystem per line, fields split at whitespace, `#` starts a comment, and
//! `\NNN` (octal) inside a field stands for that byte. Owns how a value is
//! written into a field.
//!
//! Two entry points, because NixOS writes the fstab of a host from
//! `fileSystems` itself, escaping only spaces and tabs (`escape` in
//! nixos/modules/tasks/filesystems.nix): `field` escapes a value for a field
//! potato writes; `nixos_field` checks that a value reaches NixOS's fstab
//! intact (no line breaks or other control characters, no backslash, which
//! libmount would read as an escape, no leading `#`), and `fs_type` checks the
//! one field NixOS does not escape at all.

use std::fmt::Write as _;

use super::{Format, Problem, Refused, single_line};

/// `s` as one fstab field, every separator, comment sign, backslash and
/// control character written as `\NNN`.
pub fn field(s: &str) -> Result<String, Refused> {
    if s.contains('\0') {
        return Err(Refused::new(Format::FstabField, s, Problem::Nul));
    }
    if s.is_empty() {
        return Err(Refused::new(Format::FstabField, s, Problem::Empty));
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_whitespace() || c.is_ascii_control() || c == '\\' || c == '#' {
            let _ = write!(out, "\\{:03o}", c as u32);
        } else if c.is_control() || c.is_whitespace() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:03o}");
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Checks a device, mount point or option that NixOS will write into fstab.
pub fn nixos_field(s: &str) -> Result<&str, Refused> {
    single_line(Format::FstabField, s, &['\t'])?;
    if s.is_empty() {
        return Err(Refused::new(Format::FstabField, s, Problem::Empty));
    }
    if s.starts_with('#') {
        return Err(Refused::new(Format::FstabField, s, Problem::Reserved('#')));
    }
    if s.contains('\\') {
        return Err(Refused::new(Format::FstabField, s, Problem::Reserved('\\')));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() && !matches!(c, ' ' | '\t'))
    {
        return Err(Refused::new(Format::FstabField, s, Problem::Control(c)));
    }
    Ok(s)
}

/// Checks a filesystem type (NixOS writes it unescaped): `ext4`, `fuse.sshfs`.
pub fn fs_type(s: &str) -> Result<&str, Refused> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    {
        Ok(s)
    } else {
        Err(Refused::new(
            Format::FstabField,
            s,
            Problem::Shape("a filesystem type (letters, digits, `.`, `_`, `-`, `+`)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escape_separators_and_nixos_fields_refuse_what_nixos_does_not_escape() {
        assert_eq!(field("/mnt/my disk").unwrap(), "/mnt/my\\040disk");
        assert_eq!(field("a\tb\nc\\#").unwrap(), "a\\011b\\012c\\134\\043");
        assert!(field("a\0").is_err());
        assert_eq!(nixos_field("/mnt/my disk").unwrap(), "/mnt/my disk");
        for bad in ["/mnt/x\n/dev/sda /etc", "a\\040", "#x", "", "a\u{b}"] {
            assert!(nixos_field(bad).is_err(), "{bad:?}");
        }
        assert!(fs_type("fuse.sshfs").is_ok());
        assert!(fs_type("ext4 rw").is_err());
    }
}
