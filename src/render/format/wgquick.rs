//! wg-quick's INI-like `wgN.conf`: `Key = value` lines under `[Interface]` and
//! `[Peer]`, `#` comments. Owns which values and comment texts such a file may
//! carry; `harden::wireguard` owns what the file says.
//!
//! The readers have no quoting. wg-quick (`parse_options` in wg-quick.bash)
//! reads line by line, cuts each line at the first `#`, splits at the first
//! `=` and trims whitespace; the lines it does not consume go to `wg setconf`,
//! which also drops every whitespace character inside a line. So a value is a
//! single word without `#` or whitespace, and a comment is a single line: a
//! line break would let a peer's name start `[Interface]` and a `PostUp` that
//! wg-quick runs as root. There is no escape, only refusal.

use super::{Format, Problem, Refused, single_line};

/// A value after `Key = `: non-empty, one word, no `#`.
pub fn value(s: &str) -> Result<&str, Refused> {
    single_line(Format::WgQuickValue, s, &[])?;
    if s.is_empty() {
        return Err(Refused::new(Format::WgQuickValue, s, Problem::Empty));
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || *c == '#') {
        return Err(Refused::new(
            Format::WgQuickValue,
            s,
            if c == '#' {
                Problem::Reserved(c)
            } else {
                Problem::Control(c)
            },
        ));
    }
    Ok(s)
}

/// A whole `Key = value` line (with its newline).
pub fn line(key: &str, v: &str) -> Result<String, Refused> {
    Ok(format!("{key} = {}\n", value(v)?))
}

/// A hook line (`PostUp = COMMAND`): wg-quick hands COMMAND to bash, so the
/// caller quotes its words (`format::sh`); here it must be one line without
/// `#` (wg-quick would cut it there) or outer whitespace. `%i` stands for the
/// interface.
pub fn hook(key: &str, command: &str) -> Result<String, Refused> {
    single_line(Format::WgQuickValue, command, &[])?;
    if command.contains('#') {
        return Err(Refused::new(
            Format::WgQuickValue,
            command,
            Problem::Reserved('#'),
        ));
    }
    if command.trim() != command || command.is_empty() {
        return Err(Refused::new(
            Format::WgQuickValue,
            command,
            Problem::OuterSpace,
        ));
    }
    Ok(format!("{key} = {command}\n"))
}

/// A peer's public key: 32 bytes in base64 (44 characters, the last `=`).
/// NixOS also places it in a shell script, so nothing else may pass.
pub fn key(s: &str) -> Result<&str, Refused> {
    let ok = s.len() == 44
        && s.ends_with('=')
        && s[..43]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    if ok {
        Ok(s)
    } else {
        Err(Refused::new(
            Format::WgQuickValue,
            s,
            Problem::Shape("a WireGuard key (44 characters of base64)"),
        ))
    }
}

/// An endpoint: `HOST:PORT` with HOST a DNS name or IPv4 address, or
/// `[IPv6]:PORT`. NixOS places it in a shell script (inside double quotes),
/// so `$`, backquotes and the like are refused along with everything else.
pub fn endpoint(s: &str) -> Result<&str, Refused> {
    let refuse = || {
        Refused::new(
            Format::WgQuickValue,
            s,
            Problem::Shape("HOST:PORT or [IPv6]:PORT"),
        )
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(refuse)?;
    port.parse::<u16>().map_err(|_| refuse())?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                && !host.starts_with(['-', '.'])
        }
    };
    if host_ok {
        Ok(value(s)?)
    } else {
        Err(refuse())
    }
}

/// A comment line `# text` (with its newline): any text on one line.
pub fn comment(text: &str) -> Result<String, Refused> {
    single_line(Format::WgQuickComment, text, &['\t'])?;
    Ok(format!("# {text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_words_and_comments_single_lines() {
        assert_eq!(
            line("Endpoint", "gw.example.net:51820").unwrap(),
            "Endpoint = gw.example.net:51820\n"
        );
        assert!(value("0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4=").is_ok());
        for bad in ["", "a b", "a#b", "a\nb", "a\0"] {
            assert!(value(bad).is_err(), "{bad:?}");
        }
        assert!(endpoint("gw.example.net:51820").is_ok());
        assert!(endpoint("[fd00::1]:51820").is_ok());
        for bad in ["gw", "gw:x", "$(id):1", "a b:1", "[x]:1", "-o:1"] {
            assert!(endpoint(bad).is_err(), "{bad:?}");
        }
        assert!(key("$(id)").is_err());
        assert_eq!(comment("hub # 1").unwrap(), "# hub # 1\n");
        assert_eq!(
            comment("x\n[Interface]\nPostUp = id").unwrap_err().problem,
            Problem::LineBreak
        );
    }
}
