//! OpenSSH's `sshd_config` (`Keyword value` lines) and `authorized_keys` (one
//! key per line). Owns how a value is written into either; `harden::baseline`
//! owns what the config says, the host file which keys are authorized.
//!
//! sshd splits a line into words (quotes and backslashes have meaning, `#`
//! starts a comment), so a value here is one plain word: no whitespace,
//! quotes, backslash or `#`. An authorized key is one line: a line break would
//! make a second key line, so line breaks and control characters are refused.

use super::{Format, Problem, Refused, single_line};

/// One `Keyword value` line of sshd_config (with its newline).
pub fn line(keyword: &str, v: &str) -> Result<String, Refused> {
    if keyword.is_empty() || !keyword.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Refused::new(
            Format::SshdValue,
            keyword,
            Problem::Shape("an sshd_config keyword"),
        ));
    }
    Ok(format!("{keyword} {}\n", value(v)?))
}

/// A value: one word without quotes, backslash or `#`.
pub fn value(s: &str) -> Result<&str, Refused> {
    single_line(Format::SshdValue, s, &[])?;
    if s.is_empty() {
        return Err(Refused::new(Format::SshdValue, s, Problem::Empty));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#'))
    {
        return Err(Refused::new(Format::SshdValue, s, Problem::Reserved(c)));
    }
    Ok(s)
}

/// One authorized_keys entry (without its newline): a single line.
pub fn authorized_key(s: &str) -> Result<&str, Refused> {
    single_line(Format::AuthorizedKey, s, &['\t'])?;
    if s.trim().is_empty() {
        return Err(Refused::new(Format::AuthorizedKey, s, Problem::Empty));
    }
    Ok(s)
}

/// The lines of an authorized_keys file, each checked.
pub fn authorized_keys_file<'a>(
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<String, Refused> {
    let mut out = String::new();
    for k in keys {
        out.push_str(authorized_key(k)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_plain_words_and_keys_single_lines() {
        assert_eq!(line("MaxAuthTries", "3").unwrap(), "MaxAuthTries 3\n");
        assert!(line("Match User", "x").is_err());
        for bad in ["", "a b", "\"a", "a#", "a\\", "yes\nPermitRootLogin yes"] {
            assert!(value(bad).is_err(), "{bad:?}");
        }
        let k =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp a@b";
        assert_eq!(authorized_key(k).unwrap(), k);
        assert_eq!(
            authorized_key(&format!("{k}\nssh-ed25519 AAAA evil"))
                .unwrap_err()
                .problem,
            Problem::LineBreak
        );
        assert_eq!(authorized_keys_file([k, k]).unwrap(), format!("{k}\n{k}\n"));
    }
}
