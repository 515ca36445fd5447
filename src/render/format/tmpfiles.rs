//! systemd-tmpfiles lines (`tmpfiles.d(5)`): `TYPE PATH MODE USER GROUP AGE`.
//! Owns how a path is written into such a line; the containers module owns
//! which directories are made.
//!
//! tmpfiles splits a line at whitespace, honouring double quotes and
//! backslashes, then expands `%` specifiers. Debian 12's systemd 252 does not
//! undo C escapes in the path (`\x20` reads as `x20`; the tests caught it),
//! newer ones do; what both read alike is a double-quoted field with `\"` and
//! `\\` inside. So a path with anything beyond a plain set is written in
//! double quotes, and every `%` as `%%`. Line breaks and other control
//! characters cannot be written for both, so they are refused, as is NUL;
//! tmpfiles also wants absolute, normalized paths.

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
    if let Some(p) = super::control_problem(path, &[]) {
        return refuse(p);
    }
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._+,:@=~-%".contains(c));
    let mut out = String::with_capacity(path.len() + 2);
    if !plain {
        out.push('"');
    }
    for c in path.chars() {
        match c {
            '%' => out.push_str("%%"),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    if !plain {
        out.push('"');
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
    fn paths_are_quoted_and_must_be_normalized() {
        assert_eq!(path("/srv/data").unwrap(), "/srv/data");
        assert_eq!(path("/a b").unwrap(), "\"/a b\"");
        assert_eq!(path("/a\"b\\").unwrap(), "\"/a\\\"b\\\\\"");
        assert_eq!(path("/100%").unwrap(), "/100%%");
        assert_eq!(path("/é").unwrap(), "\"/é\"");
        for (bad, p) in [
            ("a", Problem::NotAbsolute),
            ("/a/../b", Problem::NotNormalized),
            ("/a//b", Problem::NotNormalized),
            ("/a/", Problem::NotNormalized),
            ("/a\0", Problem::Nul),
            ("/a\nL+ /etc/x - - - - /tmp", Problem::LineBreak),
            ("/a\u{85}", Problem::LineBreak),
            ("/a\u{1}", Problem::Control('\u{1}')),
        ] {
            assert_eq!(path(bad).unwrap_err().problem, p, "{bad:?}");
        }
        assert_eq!(
            directory("/srv/x y", 0o750).unwrap(),
            "d \"/srv/x y\" 0750 root root -"
        );
    }
}
