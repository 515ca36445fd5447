//! nftables source (`nft -f`, and NixOS's `networking.nftables.tables`):
//! owns how data is written into a ruleset: quoted strings (comments,
//! interface names) and `#` comment lines. `harden::firewall` owns the rules.
//!
//! nft's scanner reads a quoted string up to the next `"`, with no escape, so
//! a string cannot hold `"`; a comment is at most 128 bytes; an interface name
//! at most 15, and a trailing `*` in it is a wildcard, so `*` and `\` are
//! refused there. A `#` comment runs to the end of the line. Line breaks and
//! other control characters are refused everywhere.

use super::{Format, Problem, Refused, single_line};

/// The longest comment nft accepts (`NFTNL_UDATA_COMMENT_MAXLEN`).
pub const COMMENT_MAX: usize = 128;
/// The longest interface name (IFNAMSIZ less the NUL).
pub const IFACE_MAX: usize = 15;

fn quoted(format: Format, s: &str, max: usize) -> Result<String, Refused> {
    single_line(format, s, &[])?;
    if s.contains('"') {
        return Err(Refused::new(format, s, Problem::Reserved('"')));
    }
    if s.len() > max {
        return Err(Refused::new(format, s, Problem::TooLong { max }));
    }
    Ok(format!("\"{s}\""))
}

/// `comment "..."`'s argument, quotes included.
pub fn comment(s: &str) -> Result<String, Refused> {
    quoted(Format::NftString, s, COMMENT_MAX)
}

/// An interface name for `iifname`/`oifname`, quotes included.
pub fn iface(s: &str) -> Result<String, Refused> {
    if s.is_empty() {
        return Err(Refused::new(Format::NftInterface, s, Problem::Empty));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '*' | '\\') || c.is_whitespace())
    {
        return Err(Refused::new(Format::NftInterface, s, Problem::Reserved(c)));
    }
    quoted(Format::NftInterface, s, IFACE_MAX)
}

/// A `# text` comment line's text (the caller writes `#` and the newline).
pub fn line_comment(s: &str) -> Result<&str, Refused> {
    single_line(Format::NftComment, s, &['\t'])?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cannot_hold_quotes_or_line_breaks() {
        assert_eq!(comment("WireGuard wg0").unwrap(), "\"WireGuard wg0\"");
        assert_eq!(
            comment("x\" accept\n").unwrap_err().problem,
            Problem::LineBreak
        );
        assert_eq!(
            comment("x\" accept").unwrap_err().problem,
            Problem::Reserved('"')
        );
        assert!(comment(&"a".repeat(129)).is_err());
        assert_eq!(iface("wg0").unwrap(), "\"wg0\"");
        assert!(iface("wg*").is_err());
        assert!(iface("abcdefghijklmnop").is_err());
        assert!(line_comment("rule 1: allow 22").is_ok());
        assert!(line_comment("a\nflush ruleset").is_err());
    }
}
