//! Identifiers and paths from host files and catalog files, as newtypes that
//! are validated once, when the TOML is deserialized.
//!
//! Owns the grammar of every name that reaches a native file or a command line
//! (service names, environment keys, WireGuard peer names, zones, systemd unit
//! names, secret names, host names, Proxmox node/storage/bridge ids) and of the
//! absolute paths a host file gives (mount points, the container data root,
//! device nodes). A value of one of these types has passed its check, so later
//! code may rely on it; a failed check is a serde error, which the TOML reader
//! turns into a diagnostic at the value's (or key's) file:line:col. This module
//! does not escape anything for any output format (that is `render`'s job) and
//! knows nothing about hosts or plans.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value is not a valid identifier, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentError {
    pub message: String,
    pub hint: &'static str,
}

/// Separates message and hint in a serde error's text; `split_error` undoes it.
const HINT_MARK: &str = "; hint: ";
/// Precedes the value's byte range in a serde error's text. toml blames an
/// error inside an array on the whole array; the range lets the diagnostic
/// point at the element. (A unit separator: `shown` escapes control
/// characters, so a value echoed in the message cannot forge one.)
const SPAN_MARK: char = '\u{1f}';

impl fmt::Display for IdentError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}{HINT_MARK}{}", self.message, self.hint)
    }
}

impl std::error::Error for IdentError {}

/// A deserialization error's text split back into message, hint, and the
/// byte range of the offending value.
pub fn split_error(text: &str) -> (&str, Option<&str>, Option<Range<usize>>) {
    let (text, span) = match text.split_once(SPAN_MARK) {
        Some((t, range)) => (t, parse_range(range)),
        None => (text, None),
    };
    match text.split_once(HINT_MARK) {
        Some((m, h)) => (m, Some(h), span),
        None => (text, None, span),
    }
}

fn parse_range(text: &str) -> Option<Range<usize>> {
    let (a, b) = text.split_once("..")?;
    Some(a.parse().ok()?..b.parse().ok()?)
}

fn fail(message: String, hint: &'static str) -> Result<(), IdentError> {
    Err(IdentError { message, hint })
}

macro_rules! ident {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdentError> {
                $check(s)?;
                Ok($name(s.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        // Read through toml's Spanned so the error can carry the value's own
        // range (identifiers are only ever read from TOML).
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = toml::Spanned::<String>::deserialize(d)?;
                let span = s.span();
                $name::parse(s.get_ref()).map_err(|e| {
                    serde::de::Error::custom(format!("{e}{SPAN_MARK}{}..{}", span.start, span.end))
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        // In the JSON Schema an identifier is a plain string.
        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                String::schema_name()
            }
            fn json_schema(g: &mut SchemaGenerator) -> Schema {
                String::json_schema(g)
            }
        }
    };
}

ident!(
    /// A host's name (its file stem), also a WireGuard peer named by host.
    HostName,
    check_host_name
);
ident!(
    /// A container service: a catalog table name, a `services` entry, a
    /// `[containers.NAME]` table.
    ServiceName,
    check_service_name
);
ident!(
    /// A name in `[proxy]`: a route (`[proxy.routes.NAME]`, also its host name's
    /// first label) or a middleware (`[proxy.middlewares.NAME]`).
    ProxyName,
    check_proxy_name
);
ident!(
    /// A container environment variable's name.
    EnvKey,
    check_env_key
);
ident!(
    /// A WireGuard external peer's name (shown in plans and config comments).
    PeerName,
    check_peer_name
);
ident!(
    /// A host file's zone: a named group of source addresses.
    ZoneName,
    check_zone_name
);
ident!(
    /// A systemd unit's full name, e.g. "podman-traefik.service".
    UnitName,
    check_unit_name
);
ident!(
    /// A secret's name: secrets/<host>/NAME.age, /run/potato-secrets/NAME.
    SecretName,
    check_secret_name
);
ident!(
    /// A clean absolute path: a mount point or the container data root.
    AbsPath,
    check_abs_path
);
ident!(
    /// A device node under /dev (a boot disk, a device passed to a container).
    DevicePath,
    check_device_path
);
ident!(
    /// A Proxmox VE node name (pve-common's `pve-node` format).
    PveNode,
    check_pve_node
);
ident!(
    /// A Proxmox VE storage id (pve-common's `pve-storage-id` format).
    PveStorageId,
    check_pve_storage_id
);
ident!(
    /// A Proxmox VE network bridge (`pve-bridge-id`, a Linux interface name).
    PveBridge,
    check_pve_bridge
);

fn lower_alnum_dash(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A DNS label: what networking.hostName accepts.
pub fn check_host_name(s: &str) -> Result<(), IdentError> {
    if s.is_empty()
        || s.len() > 63
        || !lower_alnum_dash(s)
        || s.starts_with('-')
        || s.ends_with('-')
    {
        return fail(
            format!("`{}` is not a valid host name", shown(s)),
            "host names are lowercase letters, digits and '-' (not at either end), at most 63 characters",
        );
    }
    Ok(())
}

/// A DNS label starting with a letter: lowercase letters, digits and '-',
/// at most 63 characters, not ending with '-'.
fn letter_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && lower_alnum_dash(s)
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
}

pub fn check_service_name(s: &str) -> Result<(), IdentError> {
    if !letter_label(s) {
        return fail(
            format!("`{}` is not a valid service name", shown(s)),
            "service names are lowercase letters, digits and '-', starting with a letter, at most 63 characters",
        );
    }
    Ok(())
}

/// Route and middleware names: a DNS label that starts with a letter (the
/// route's host name is `<name>.<domain>`; Traefik's names must not hold '@').
pub fn check_proxy_name(s: &str) -> Result<(), IdentError> {
    if !letter_label(s) {
        return fail(
            format!("`{}` is not a valid route or middleware name", shown(s)),
            "route and middleware names are lowercase letters, digits and '-', starting with a letter, at most 63 characters",
        );
    }
    Ok(())
}

/// POSIX shell and env-file variable names.
pub fn check_env_key(s: &str) -> Result<(), IdentError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        return fail(
            format!("`{}` is not an environment variable name", shown(s)),
            "use letters, digits and _, not starting with a digit",
        );
    }
    Ok(())
}

pub fn check_peer_name(s: &str) -> Result<(), IdentError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return fail(
            format!("`{}` is not a valid peer name", shown(s)),
            "a peer name is one word of letters, digits, '-', '_', '.' and '@', starting with a letter or digit, e.g. \"alice-phone\"",
        );
    }
    Ok(())
}

pub fn check_zone_name(s: &str) -> Result<(), IdentError> {
    if s == "any" || s.is_empty() || s.len() > 63 || !lower_alnum_dash(s) || s.starts_with('-') {
        return fail(
            format!("`{}` cannot be a zone name", shown(s)),
            "zone names are lowercase letters, digits and '-', and \"any\" is built in",
        );
    }
    Ok(())
}

/// Unit types a health check may name (systemd.unit(5)).
const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "target",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
    "device",
];

/// systemd's unit name grammar (systemd.unit(5)): "ASCII letters, digits, ':',
/// '-', '_', '.' and '\\'", '@' for template instances, at most 255
/// characters, a known type suffix; never starting with '-', so it cannot be
/// read as an option of systemctl.
pub fn check_unit_name(s: &str) -> Result<(), IdentError> {
    let charset = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'));
    let suffix_ok = s
        .rsplit_once('.')
        .is_some_and(|(stem, suffix)| !stem.is_empty() && UNIT_SUFFIXES.contains(&suffix));
    if s.starts_with('-') {
        return fail(
            format!(
                "`{}` starts with '-': systemctl would read it as an option",
                shown(s)
            ),
            "write the full unit name, e.g. \"podman-traefik.service\"",
        );
    }
    if s.len() > 255 || !charset || !suffix_ok || s.starts_with(['.', '@']) {
        return fail(
            format!("`{}` is not a systemd unit name", shown(s)),
            "write the full unit name, e.g. \"podman-traefik.service\": letters, digits, ':', '-', '_', '.', '@', not starting with '-'",
        );
    }
    Ok(())
}

/// The grammar `secrets::parse_ref` accepts after "secret:".
pub fn check_secret_name(s: &str) -> Result<(), IdentError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.');
    if !ok {
        return fail(
            format!("`{}` is not a valid secret name", shown(s)),
            "use lowercase letters, digits, '-', '_' and '.', not starting with '.', at most 64 characters",
        );
    }
    Ok(())
}

/// Characters a path component may hold. Excluded on purpose: whitespace and
/// control characters (fstab and tmpfiles split on whitespace, a newline ends
/// a line), ':' (it separates a volume's sides), '%' (a tmpfiles specifier),
/// quotes, '\\', '$' and '`' (shell and Nix).
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@')
}

/// Absolute, at least one component, no empty, "." or ".." component, no
/// trailing '/', only `path_char`s (plus `extra`).
fn clean_abs_path(s: &str, extra: &[char]) -> bool {
    let Some(rest) = s.strip_prefix('/') else {
        return false;
    };
    s.len() <= 4096
        && !rest.is_empty()
        && rest.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.chars().all(|c| path_char(c) || extra.contains(&c))
        })
}

pub fn check_abs_path(s: &str) -> Result<(), IdentError> {
    if !clean_abs_path(s, &[]) {
        return fail(
            format!("`{}` is not a clean absolute path", shown(s)),
            "write e.g. \"/mnt/storage\": starting with '/', no '.', '..' or empty components, no trailing '/', only letters, digits and . _ - + @",
        );
    }
    Ok(())
}

/// /dev/disk/by-id names carry ':' (e.g. "usb-...-0:0"), so it is allowed here.
pub fn check_device_path(s: &str) -> Result<(), IdentError> {
    if !(s.starts_with("/dev/") && clean_abs_path(s, &[':'])) {
        return fail(
            format!("`{}` is not a device path", shown(s)),
            "write a clean path under /dev, e.g. \"/dev/dri\" or \"/dev/disk/by-id/...\"",
        );
    }
    Ok(())
}

/// pve-common `pve_verify_node_name`: `^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`.
/// It becomes a path segment of the API (/nodes/NODE/...).
pub fn check_pve_node(s: &str) -> Result<(), IdentError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if !ok {
        return fail(
            format!("`{}` is not a Proxmox node name", shown(s)),
            "Proxmox node names are letters, digits and '-' (not at either end), e.g. \"pve\"",
        );
    }
    Ok(())
}

/// pve-storage `parse_storage_id`: `^[a-z][a-z0-9\-_.]*[a-z0-9]$`, case-insensitive.
pub fn check_pve_storage_id(s: &str) -> Result<(), IdentError> {
    let ok = s.len() >= 2
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return fail(
            format!("`{}` is not a Proxmox storage id", shown(s)),
            "storage ids start with a letter, end with a letter or digit, and hold letters, digits, '-', '_' and '.', e.g. \"local-lvm\"",
        );
    }
    Ok(())
}

/// `pve-bridge-id` (`^[-_.\w\d]+$`) narrowed to ASCII and to a Linux interface
/// name (at most 15 characters); never starting with '-'. It is written into
/// the option string "virtio,bridge=BRIDGE", where ',' and '=' would add options.
pub fn check_pve_bridge(s: &str) -> Result<(), IdentError> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with(['-', '.']);
    if !ok {
        return fail(
            format!("`{}` is not a Proxmox bridge name", shown(s)),
            "bridges are Linux interface names: letters, digits, '-', '_' and '.', at most 15 characters, e.g. \"vmbr0\"",
        );
    }
    Ok(())
}

/// A value as it may be shown in a message: control characters escaped, so a
/// hostile value cannot move the cursor or fake lines in a terminal or log.
pub fn shown(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.escape_debug().to_string())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&str) -> Result<(), IdentError>;

    fn all_ok(f: Check, good: &[&str]) {
        for g in good {
            assert!(f(g).is_ok(), "{g:?} should be accepted: {:?}", f(g));
        }
    }

    fn all_bad(f: Check, bad: &[&str]) {
        for b in bad {
            assert!(f(b).is_err(), "{b:?} should be refused");
        }
    }

    /// Characters that break out of a shell word, an INI line, a comment, an
    /// option string or a path, in every identifier.
    const HOSTILE: &[&str] = &[
        "", "a;id", "a b", "a\nb", "a\rb", "a\0b", "a\tb", "a$(id)", "a`id`", "a'b", "a\"b",
        "a,b=c", "a/b", "a\u{7f}", "ä",
    ];

    #[test]
    fn every_identifier_refuses_the_hostile_characters() {
        let checks: [Check; 10] = [
            check_host_name,
            check_service_name,
            check_env_key,
            check_peer_name,
            check_zone_name,
            check_unit_name,
            check_secret_name,
            check_pve_node,
            check_pve_storage_id,
            check_pve_bridge,
        ];
        for check in checks {
            all_bad(check, HOSTILE);
        }
    }

    #[test]
    fn host_service_and_zone_names() {
        all_ok(check_host_name, &["n250", "pve-apps", "a", "0x"]);
        all_bad(
            check_host_name,
            &["-a", "a-", "N250", "a.b", &"a".repeat(64)],
        );
        all_ok(
            check_service_name,
            &["traefik", "node-exporter", "uptime-kuma"],
        );
        all_bad(check_service_name, &["1password", "x-", "Traefik", "a_b"]);
        all_ok(check_zone_name, &["lan", "wg", "home-2"]);
        all_bad(check_zone_name, &["any", "-x", "LAN"]);
    }

    #[test]
    fn env_keys() {
        all_ok(check_env_key, &["TZ", "BOUNCER_KEY_traefik", "_X", "A1"]);
        all_bad(check_env_key, &["X;id>/tmp/f;Y", "1A", "A-B", "A.B", "A=B"]);
    }

    #[test]
    fn peer_names() {
        all_ok(
            check_peer_name,
            &["alice-phone", "laptop.home", "bob@work", "p1"],
        );
        all_bad(
            check_peer_name,
            &[
                "x\n[Interface]\nPostUp = id",
                "-x",
                ".x",
                "a#b",
                &"a".repeat(65),
            ],
        );
    }

    #[test]
    fn unit_names() {
        all_ok(
            check_unit_name,
            &[
                "podman-traefik.service",
                "getty@tty1.service",
                "mnt-ssd.mount",
                "dev-disk-by\\x2dlabel-x.device",
                "timers.target",
            ],
        );
        all_bad(
            check_unit_name,
            &[
                "-H root@evil.service",
                "-Hroot@evil.service",
                "--host=x.service",
                "nginx",
                ".service",
                "x.exe",
                "a b.service",
            ],
        );
    }

    #[test]
    fn secret_names() {
        all_ok(check_secret_name, &["wg0", "db-authentik", "a.b_c"]);
        all_bad(
            check_secret_name,
            &[".hidden", "../x", "A", &"a".repeat(65)],
        );
    }

    #[test]
    fn paths() {
        all_ok(
            check_abs_path,
            &["/mnt/ssd", "/mnt/seconddrive/appdata", "/srv/a_b-c.d+e@f"],
        );
        all_bad(
            check_abs_path,
            &[
                "/",
                "relative",
                "/mnt/",
                "/mnt//x",
                "/mnt/./x",
                "/mnt/../etc",
                "/mnt/a b",
                "/mnt/a\nL+ /etc/x - - - - /tmp",
                "/mnt/a\0",
                "/mnt/a:b",
                "/mnt/%h",
                "/mnt/$x",
                "/mnt/\"x",
            ],
        );
        all_ok(
            check_device_path,
            &[
                "/dev/dri",
                "/dev/disk/by-id/nvme-Samsung_SSD_980_500GB_S64DNX0R123456",
                "/dev/disk/by-id/usb-Generic_Flash-0:0",
            ],
        );
        all_bad(
            check_device_path,
            &[
                "/dev",
                "/dev/",
                "/dev/../etc",
                "/etc/x",
                "/dev/x\0",
                "/dev/a b",
            ],
        );
    }

    #[test]
    fn proxmox_ids() {
        all_ok(check_pve_node, &["pve", "pve-1", "Node2"]);
        all_bad(
            check_pve_node,
            &["-pve", "pve-", "pve/../../x", "pve.local"],
        );
        all_ok(check_pve_storage_id, &["local", "local-lvm", "ceph_pool.1"]);
        all_bad(
            check_pve_storage_id,
            &["1local", "l", "local-", "a/b", "x,y"],
        );
        all_ok(check_pve_bridge, &["vmbr0", "vmbr0.100", "br_lan"]);
        all_bad(
            check_pve_bridge,
            &["vmbr0,firewall=0", "-x", "averyveryverylongbr"],
        );
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        keys: Vec<EnvKey>,
    }

    #[test]
    fn deserializing_checks_and_keeps_the_hint_and_the_element_span() {
        let text = "keys = [\"TZ\", \"X;id\"]";
        let e = toml::from_str::<Doc>(text).unwrap_err();
        let (message, hint, span) = split_error(e.message());
        assert_eq!(message, "`X;id` is not an environment variable name");
        assert!(hint.is_some_and(|h| h.contains("letters, digits and _")));
        assert_eq!(&text[span.unwrap()], "\"X;id\"");
        let ok: Doc = toml::from_str("keys = [\"TZ\"]").unwrap();
        assert_eq!(ok.keys[0].as_str(), "TZ");
    }

    #[test]
    fn messages_escape_control_characters() {
        let e = check_peer_name("a\n[Interface]").unwrap_err();
        assert!(!e.message.contains('\n'), "{}", e.message);
        assert!(e.message.contains("a\\n[Interface]"));
    }
}
