//! systemd-tmpfiles lines (`tmpfiles.d(5)`): `TYPE PATH MODE USER GROUP AGE`.
//! Owns how a path is written into such a line; the containers module owns
//! which directories are made.
//!
//! tmpfiles splits a line at whitespace, then undoes C-style escapes
//! (`\x20`), then expands `%` specifiers. So a path is written with every
//! character outside a plain set as `\xNN` (one per UTF-8 byte of ASCII
//! specials and controls) and every `%` as `%%`; NUL cannot be escaped
//! (tmpfiles refuses `\x00`). tmpfiles also wants absolute, normalized paths.

use std::fmt::Write as _;

use super::{Format, Problem, Refused};

/// `path` as the PATH field of a tmpfiles line.
pub fn path(path: &str) -> Result<String, Refused> {
    let refuse = |p| Err(Refused::new(Format::TmpfilesPath, path, p));
    if path.contains('\0') {
        return refuse(Problem::Nul);
    }
    if !path.starts_with('/') {
        return refuse(Problem::NotAbsolute);
    }
    if path.len() > 1
        && (path.ends_with('/')
            || path
                .split('/')
                .skip(1)
                .any(|c| c.is_empty() || c == "." || c == ".."))
    {
        return refuse(Problem::NotNormalized);
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%%"),
            c if c.is_ascii_alphanumeric() || "/._+,:@=~-".contains(c) => out.push(c),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c.is_whitespace() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A `d` line: create `dir` (and parents) with `mode`, owned by root.
pub fn directory(dir: &str, mode: u32) -> Result<String, Refused> {
    Ok(format!("d {} {mode:04o} root root -", path(dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_and_must_be_normalized() {
        assert_eq!(path("/srv/data").unwrap(), "/srv/data");
        assert_eq!(path("/a b").unwrap(), "/a\\x20b");
        assert_eq!(path("/a\nL+").unwrap(), "/a\\x0aL+");
        assert_eq!(path("/100%").unwrap(), "/100%%");
        assert_eq!(path("/é").unwrap(), "/é");
        assert_eq!(path("/a\u{85}").unwrap(), "/a\\xc2\\x85");
        for (bad, p) in [
            ("a", Problem::NotAbsolute),
            ("/a/../b", Problem::NotNormalized),
            ("/a//b", Problem::NotNormalized),
            ("/a/", Problem::NotNormalized),
            ("/a\0", Problem::Nul),
        ] {
            assert_eq!(path(bad).unwrap_err().problem, p, "{bad:?}");
        }
        assert_eq!(
            directory("/srv/x y", 0o750).unwrap(),
            "d /srv/x\\x20y 0750 root root -"
        );
    }
}
