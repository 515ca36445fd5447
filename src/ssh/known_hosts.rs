//! known_hosts files as OpenSSH reads them, and potato's trust order.
//!
//! Owns parsing (plain and hashed `|1|` host patterns, `*`/`?` wildcards,
//! `!` negation, the `@revoked` and `@cert-authority` markers), deciding
//! whether a presented host key is trusted, and rewriting the repository's pin
//! file for `potato trust --replace`. It never connects (that is `ssh`).
//!
//! The trust order: a key revoked in any file is refused, whatever host pattern
//! its `@revoked` line has (stricter than OpenSSH, which reads the pattern);
//! otherwise the first
//! file (the repository's `secrets/known_hosts` comes first) that pins any key
//! for the host decides, so a different key in `~/.ssh/known_hosts` cannot
//! override a repository pin. A host is looked up by its OpenSSH name: `host`
//! on port 22, `[host]:port` otherwise, exactly (no fallback to the bare host).
//! Host certificates (`@cert-authority`) are not supported by libssh2, so such
//! lines never grant trust; a host known only through one gets a clear error.

use base64::Engine;
use camino::{Utf8Path, Utf8PathBuf};
use hmac::{Hmac, Mac};
use sha2::Digest;

/// What a line's leading marker says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A plain line: the key is trusted for the hosts it names.
    Pin,
    /// `@revoked`: the key must never be accepted.
    Revoked,
    /// `@cert-authority`: a CA for host certificates (unsupported here).
    CertAuthority,
}

/// The host field of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    /// Comma-separated patterns, possibly negated (`!`) or with wildcards.
    Patterns(Vec<String>),
    /// `|1|salt|hash`: HMAC-SHA1 of the host name keyed with the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// One key line of a known_hosts file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number in its file.
    pub line: usize,
    pub marker: Marker,
    hosts: Hosts,
    pub key_type: String,
    /// The decoded public key blob.
    pub key: Vec<u8>,
}

/// A parsed known_hosts file (empty when it does not exist).
#[derive(Debug, Clone)]
pub struct File {
    pub path: Utf8PathBuf,
    pub entries: Vec<Entry>,
    /// Lines that are neither comments nor valid key lines: (line, problem).
    pub problems: Vec<(usize, String)>,
}

/// A key as shown to people: type and SHA256 fingerprint (as `ssh-keygen -l`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub key_type: String,
    pub fingerprint: String,
}

/// Where a presented key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pinned for this host in `file`.
    Trusted { file: Utf8PathBuf },
    /// Listed `@revoked` in `file` at `line`.
    Revoked { file: Utf8PathBuf, line: usize },
    /// `file` pins other keys for this host (and it decides).
    Changed {
        file: Utf8PathBuf,
        pinned: Vec<Shown>,
    },
    /// No file pins any key for this host; `ca_lines` names the
    /// `@cert-authority` lines that match it (which potato cannot use).
    Unknown { ca_lines: Vec<String> },
}

/// Errors reading or rewriting a pin file.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("{path}: {source}")]
    Io {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: Utf8PathBuf,
        line: usize,
        message: String,
    },
}

/// The OpenSSH name of a host in known_hosts: "host" on port 22, "[host]:port" otherwise.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:<base64>` of a key blob, as `ssh-keygen -l` and OpenSSH print it.
pub fn fingerprint(blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(blob))
    )
}

/// The host-key algorithms that present a key of `key_type`.
pub fn algorithms_for(key_type: &str) -> Vec<&str> {
    match key_type {
        "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        other => vec![other],
    }
}

impl File {
    /// Reads and parses `path`; a missing file is empty.
    pub fn load(path: &Utf8Path) -> Result<File, KnownHostsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KnownHostsError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(File::parse(path, &text))
    }

    pub fn parse(path: &Utf8Path, text: &str) -> File {
        let mut file = File {
            path: path.to_path_buf(),
            entries: Vec::new(),
            problems: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(Some(mut e)) => {
                    e.line = i + 1;
                    file.entries.push(e);
                }
                Ok(None) => {}
                Err(problem) => file.problems.push((i + 1, problem)),
            }
        }
        file
    }

    /// The first malformed line as an error (for files that must be clean).
    pub fn require_clean(&self) -> Result<(), KnownHostsError> {
        match self.problems.first() {
            None => Ok(()),
            Some((line, message)) => Err(KnownHostsError::Line {
                path: self.path.clone(),
                line: *line,
                message: format!("{message}; fix or remove this line"),
            }),
        }
    }

    /// Plain (pinning) entries for the OpenSSH host name `name`.
    pub fn pins_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.marker == Marker::Pin && e.matches(name))
    }
}

impl Entry {
    /// Whether this line's host field names `name` (OpenSSH: lower-cased,
    /// a matching negated pattern excludes the line).
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        match &self.hosts {
            Hosts::Hashed { salt, hash } => {
                let mut mac =
                    <Hmac<sha1::Sha1> as Mac>::new_from_slice(salt).expect("HMAC takes any key");
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let mut hit = false;
                for p in patterns {
                    let p = p.to_ascii_lowercase();
                    match p.strip_prefix('!') {
                        Some(neg) if wildcard_match(neg, &name) => return false,
                        Some(_) => {}
                        None => hit |= wildcard_match(&p, &name),
                    }
                }
                hit
            }
        }
    }

    pub fn shown(&self) -> Shown {
        Shown {
            key_type: self.key_type.clone(),
            fingerprint: fingerprint(&self.key),
        }
    }
}

/// OpenSSH's `match_pattern`: `*` any run, `?` one character, else literal.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One line: None for blanks and comments, an error for a malformed key line.
fn parse_line(line: &str) -> Result<Option<Entry>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next().unwrap_or("");
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return Err(format!("unknown marker `{m}`")),
        _ => Marker::Pin,
    };
    if marker != Marker::Pin {
        first = fields.next().unwrap_or("");
    }
    let (Some(key_type), Some(b64)) = (fields.next(), fields.next()) else {
        return Err("expected HOSTS KEY-TYPE BASE64-KEY".into());
    };
    let b64e = &base64::engine::general_purpose::STANDARD;
    let key = b64e
        .decode(b64)
        .map_err(|_| format!("the {key_type} key is not valid base64"))?;
    if blob_type(&key) != Some(key_type) {
        return Err(format!("the key does not hold a {key_type} key"));
    }
    let hosts = match first.strip_prefix("|1|") {
        Some(rest) => {
            let (salt, hash) = rest
                .split_once('|')
                .ok_or("a hashed host name needs |1|SALT|HASH")?;
            Hosts::Hashed {
                salt: b64e.decode(salt).map_err(|_| "bad salt in |1|SALT|HASH")?,
                hash: b64e.decode(hash).map_err(|_| "bad hash in |1|SALT|HASH")?,
            }
        }
        None => Hosts::Patterns(first.split(',').map(str::to_string).collect()),
    };
    Ok(Some(Entry {
        line: 0,
        marker,
        hosts,
        key_type: key_type.to_string(),
        key,
    }))
}

/// The key type named inside a public key blob (its first SSH string).
fn blob_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

/// The key types pinned for `name` by the file that decides (the first that
/// pins any), most useful first for host-key negotiation.
pub fn pinned_types(files: &[File], name: &str) -> Vec<String> {
    for f in files {
        let mut types: Vec<String> = Vec::new();
        for e in f.pins_for(name) {
            if !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        if !types.is_empty() {
            return types;
        }
    }
    Vec::new()
}

/// Decides whether `presented` (a key blob) is trusted for `name`.
pub fn decide(files: &[File], name: &str, presented: &[u8]) -> Verdict {
    for f in files {
        if let Some(e) = f
            .entries
            .iter()
            .find(|e| e.marker == Marker::Revoked && e.key == presented)
        {
            return Verdict::Revoked {
                file: f.path.clone(),
                line: e.line,
            };
        }
    }
    for f in files {
        let pins: Vec<&Entry> = f.pins_for(name).collect();
        if pins.is_empty() {
            continue;
        }
        if pins.iter().any(|e| e.key == presented) {
            return Verdict::Trusted {
                file: f.path.clone(),
            };
        }
        return Verdict::Changed {
            file: f.path.clone(),
            pinned: pins.iter().map(|e| e.shown()).collect(),
        };
    }
    let ca_lines = files
        .iter()
        .flat_map(|f| {
            f.entries
                .iter()
                .filter(|e| e.marker == Marker::CertAuthority && e.matches(name))
                .map(|e| format!("{}:{}", f.path, e.line))
        })
        .collect();
    Verdict::Unknown { ca_lines }
}

/// `text` with every pin of exactly `name` removed and `new_line` appended.
/// A line naming `name` among other hosts keeps the others; a line that pins
/// it only through a wildcard or hashed pattern is removed when hashed and
/// refused when a wildcard (it may pin other hosts: edit it by hand).
pub fn replace_pins(
    path: &Utf8Path,
    text: &str,
    name: &str,
    new_line: &str,
) -> Result<String, KnownHostsError> {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let entry = match parse_line(line) {
            Ok(Some(e)) if e.marker == Marker::Pin && e.matches(name) => e,
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        let Hosts::Patterns(patterns) = &entry.hosts else {
            continue; // hashed: this line names only this host
        };
        let (exact, others): (Vec<&String>, Vec<&String>) =
            patterns.iter().partition(|p| p.eq_ignore_ascii_case(name));
        if exact.is_empty() {
            return Err(KnownHostsError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!(
                    "this line pins {name} through a pattern that may name other hosts; edit it by hand"
                ),
            });
        }
        if !others.is_empty() {
            let rest = line.trim_start();
            let after_hosts = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
            let kept: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
            out.push_str(&kept.join(","));
            out.push_str(after_hosts);
            out.push('\n');
        }
    }
    out.push_str(new_line);
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, fill: u8) -> Vec<u8> {
        let mut b = (kind.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(&[fill; 32]);
        b
    }

    fn line(hosts: &str, kind: &str, fill: u8) -> String {
        format!(
            "{hosts} {kind} {}",
            base64::engine::general_purpose::STANDARD.encode(blob(kind, fill))
        )
    }

    fn file(name: &str, text: &str) -> File {
        File::parse(Utf8Path::new(name), text)
    }

    #[test]
    fn patterns_follow_openssh() {
        assert!(wildcard_match("10.0.*", "10.0.3.4"));
        assert!(wildcard_match("h?st", "host"));
        assert!(!wildcard_match("h?st", "hoost"));
        assert!(wildcard_match("*", ""));
        let f = file("f", &line("*.lan,!printer.lan", "ssh-ed25519", 1));
        assert!(f.entries[0].matches("web.LAN"));
        assert!(!f.entries[0].matches("printer.lan"));
        // A bare host does not cover another port, and [host]:port is literal.
        let f = file("f", &line("10.0.0.1", "ssh-ed25519", 1));
        assert!(!f.entries[0].matches("[10.0.0.1]:2222"));
    }

    #[test]
    fn hashed_names_match_ssh_keygen_output() {
        // `ssh-keygen -H` output for host "10.213.1.2" (salt and hash from a real run).
        let f = file(
            "f",
            "|1|0ETyRaBuOzqna0lbcXq5Lgqu7bg=|H2O5w/bgRgm8FQoYCMNFFtbMjok= ssh-ed25519 \
             AAAAC3NzaC1lZDI1NTE5AAAAIE1ZJt+0xJXmKoTqtYnJ1fZ+5rrPx3EwG/E1SxrKVmZM",
        );
        assert_eq!(f.problems, vec![]);
        assert!(f.entries[0].matches("10.213.1.2"));
        assert!(!f.entries[0].matches("10.213.1.3"));
    }

    #[test]
    fn first_file_with_a_pin_decides_and_revoked_wins() {
        let repo = file("repo", &line("h", "ecdsa-sha2-nistp256", 1));
        let home = file("home", &line("h", "ssh-ed25519", 2));
        let ed = blob("ssh-ed25519", 2);
        assert!(matches!(
            decide(&[repo.clone(), home.clone()], "h", &ed),
            Verdict::Changed { .. }
        ));
        assert!(matches!(
            decide(std::slice::from_ref(&home), "h", &ed),
            Verdict::Trusted { .. }
        ));
        let revoked = file(
            "rev",
            &format!("@revoked * {}", line("", "ssh-ed25519", 2).trim()),
        );
        assert_eq!(revoked.problems, vec![]);
        assert!(matches!(
            decide(&[home, revoked], "h", &ed),
            Verdict::Revoked { line: 1, .. }
        ));
        assert_eq!(pinned_types(&[repo], "h"), vec!["ecdsa-sha2-nistp256"]);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let f = file(
            "f",
            "# c\n\nhost ssh-ed25519 !!!\n@bogus h ssh-ed25519 AAAA\n",
        );
        assert_eq!(f.problems.len(), 2);
        assert_eq!(f.problems[0].0, 3);
        assert!(
            f.require_clean()
                .unwrap_err()
                .to_string()
                .starts_with("f:3: ")
        );
    }

    #[test]
    fn replace_keeps_other_hosts_and_lines() {
        let text = format!(
            "# pins\n{}\n{}\n{}\n",
            line("a,h", "ssh-ed25519", 1),
            line("h", "ecdsa-sha2-nistp256", 3),
            line("b", "ssh-ed25519", 4)
        );
        let new = line("h", "ssh-ed25519", 9);
        let out = replace_pins(Utf8Path::new("f"), &text, "h", &new).unwrap();
        let f = file("f", &out);
        assert_eq!(f.pins_for("h").count(), 1);
        assert_eq!(f.pins_for("a").count(), 1);
        assert_eq!(f.pins_for("b").count(), 1);
        assert!(out.starts_with("# pins\n"));
        let wild = line("h*", "ssh-ed25519", 1);
        assert!(replace_pins(Utf8Path::new("f"), &wild, "h", &new).is_err());
    }
}
