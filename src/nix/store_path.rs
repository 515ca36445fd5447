//! `StorePath`: a validated `/nix/store/<hash>-<name>` path.
//!
//! Every store path that crosses the wire (from a remote host or into a remote
//! command) is parsed into this type first; anything else is refused. The rules are
//! Nix's: 32 characters of Nix's base32 alphabet, a dash, then a name of 1 to 211
//! characters from `[A-Za-z0-9+-._?=]` that does not start with a dot, and nothing
//! after it (no sub-path, no shell syntax).

use std::fmt;

pub const STORE_DIR: &str = "/nix/store";
const HASH_CHARS: &str = "0123456789abcdfghijklmnpqrsvwxyz";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct StorePath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Nix store path: {shown} ({why})")]
pub struct BadStorePath {
    shown: String,
    why: &'static str,
}

impl StorePath {
    pub fn parse(s: &str) -> Result<StorePath, BadStorePath> {
        let bad = |why| BadStorePath {
            shown: s.chars().take(120).flat_map(char::escape_default).collect(),
            why,
        };
        let base = s
            .strip_prefix(STORE_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad("not under /nix/store"))?;
        if base.len() < 34 {
            return Err(bad("too short"));
        }
        let (hash, rest) = base.split_at(32);
        if !hash.chars().all(|c| HASH_CHARS.contains(c)) {
            return Err(bad("the hash is not Nix base32"));
        }
        let name = rest
            .strip_prefix('-')
            .ok_or_else(|| bad("no '-' after the hash"))?;
        if name.is_empty() || name.len() > 211 {
            return Err(bad("the name must be 1 to 211 characters"));
        }
        if name.starts_with('.') {
            return Err(bad("the name starts with a dot"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c))
        {
            return Err(bad("the name has a character Nix does not allow"));
        }
        Ok(StorePath(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32-character hash part.
    pub fn hash(&self) -> &str {
        &self.0[STORE_DIR.len() + 1..STORE_DIR.len() + 33]
    }

    pub fn name(&self) -> &str {
        &self.0[STORE_DIR.len() + 34..]
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StorePath> for String {
    fn from(p: StorePath) -> String {
        p.0
    }
}

/// Parses one store path per non-empty line; the first bad line is an error.
pub fn parse_lines(text: &str) -> Result<Vec<StorePath>, BadStorePath> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(StorePath::parse)
        .collect()
}

/// One store path per line, each line ended: what `parse_lines` reads, and
/// what `nix-store` and the agent take on stdin.
pub fn to_lines(paths: &[StorePath]) -> String {
    paths.iter().map(|p| format!("{}\n", p.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-x";

    #[test]
    fn accepts_real_paths() {
        let p = StorePath::parse(GOOD).unwrap();
        assert_eq!(p.hash(), "zr2knphxg8yyy2mkq8akf2hfknjvdiz7");
        assert_eq!(p.name(), "x");
        StorePath::parse(
            "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-n250-25.11.x_y+z?=",
        )
        .unwrap();
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-x/bin/sh",
            "/nix/store/abc; rm -rf /",
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-x; rm -rf /",
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-$(reboot)",
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-../../etc",
            "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeu-x",
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-",
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-.hidden",
            "/tmp/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-x",
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-x\n/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-y",
            "",
        ] {
            assert!(StorePath::parse(bad).is_err(), "accepted {bad:?}");
        }
        let long = format!(
            "/nix/store/zr2knphxg8yyy2mkq8akf2hfknjvdiz7-{}",
            "a".repeat(212)
        );
        assert!(StorePath::parse(&long).is_err());
    }

    #[test]
    fn lines() {
        assert_eq!(
            parse_lines(&format!("{GOOD}\n\n{GOOD}\n")).unwrap().len(),
            2
        );
        assert!(parse_lines(&format!("{GOOD}\n/etc/passwd\n")).is_err());
    }

    #[test]
    fn lines_written_are_lines_read() {
        let paths = parse_lines(&format!("{GOOD}\n{GOOD}\n")).unwrap();
        assert_eq!(to_lines(&paths), format!("{GOOD}\n{GOOD}\n"));
        assert_eq!(parse_lines(&to_lines(&paths)).unwrap(), paths);
        assert_eq!(to_lines(&[]), "");
    }
}
