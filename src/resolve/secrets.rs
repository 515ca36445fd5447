//! Secret references (`secret:NAME`): each must exist, and one the host uses
//! must be encrypted to its SSH host key; `[secrets.NAME]` owner, group and
//! mode. Owns `SECRET_MODES`; it never decrypts (that is `secrets::store`).

use std::collections::BTreeMap;

use super::HostCx;
use crate::inventory::Spanned;
use crate::plan::*;

impl HostCx<'_> {
    /// `[secrets.NAME]` tables plus every other use, with owner/group/mode.
    pub(super) fn secret_files(&mut self) -> BTreeMap<String, SecretMode> {
        let mut out = BTreeMap::new();
        let tables: Vec<(String, Spanned<String>)> = self
            .host
            .raw
            .secrets
            .iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    Spanned::new(t.span.clone(), format!("secret:{n}")),
                )
            })
            .collect();
        for (name, as_ref) in &tables {
            if self.secret(as_ref).is_none() {
                continue;
            }
            let t = &self.host.raw.secrets[name.as_str()];
            let mut m = SecretMode::default();
            for (field, value) in [(&mut m.owner, &t.owner), (&mut m.group, &t.group)] {
                if let Some(v) = value {
                    let ok = !v.is_empty()
                        && v.len() <= 32
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                        && !v.starts_with('-');
                    if !ok {
                        self.error(
                            &v.span,
                            format!("`{}` is not a user or group name", v.value),
                            "use a name like \"root\" or \"grafana\"",
                        );
                    }
                    *field = v.value.clone();
                }
            }
            if let Some(mode) = &t.mode
                && let Err((message, hint)) = check_secret_mode(&mode.value)
            {
                self.error(&mode.span, message, hint);
            }
            if let Some(mode) = &t.mode {
                m.mode = if mode.len() == 3 {
                    format!("0{}", mode.value)
                } else {
                    mode.value.clone()
                };
            }
            out.insert(name.clone(), m);
        }
        for name in self.used_secrets.keys() {
            out.entry(name.clone()).or_default();
        }
        out
    }

    /// A secret the host uses at run time: it must exist and be encrypted to it.
    pub(super) fn secret(&mut self, v: &Spanned<String>) -> Option<String> {
        self.secret_for(v, true)
    }

    /// A secret only the operator's machine uses (the Proxmox API token): it must
    /// exist, and is never encrypted to the host or shipped with its system.
    pub(super) fn operator_secret(&mut self, v: &Spanned<String>) -> Option<String> {
        self.secret_for(v, false)
    }

    fn secret_for(&mut self, v: &Spanned<String>, on_host: bool) -> Option<String> {
        let name = match crate::secrets::parse_ref(&v.value) {
            Ok(n) => {
                *self.references.entry(n.to_string()).or_insert(false) |= on_host;
                n.to_string()
            }
            Err(e) => {
                self.error(
                    &v.span,
                    e,
                    "write \"secret:NAME\" and store the value with `potato secrets set NAME`",
                );
                return None;
            }
        };
        match self.secrets.locate(&self.host.name, &name) {
            Some(path) => {
                if on_host {
                    self.check_encrypted_to_host(v, &name, &path);
                    self.used_secrets.insert(name.clone(), path);
                }
                Some(name)
            }
            None => {
                let host = self.host.name.clone();
                self.error(
                    &v.span,
                    format!("secret `{name}` does not exist (looked for secrets/{host}/{name}.age and secrets/shared/{name}.age)"),
                    format!("create it with `potato secrets gen {name}` or `potato secrets set {name}`"),
                );
                None
            }
        }
    }

    /// A host must be able to decrypt what it uses: its SSH host key is in
    /// recipients.toml and among the file's recorded recipients.
    fn check_encrypted_to_host(
        &mut self,
        v: &Spanned<String>,
        name: &str,
        path: &camino::Utf8Path,
    ) {
        let Some(cov) = &self.secrets.coverage else {
            return;
        };
        let host = self.host.name.clone();
        let Some(key) = cov.recipients.hosts.get(&host) else {
            self.error(
                &v.span,
                format!("host `{host}` has no SSH host key in secrets/recipients.toml, so it cannot decrypt secret `{name}`"),
                format!("add {host} = \"ssh-ed25519 AAAA...\" under [hosts] there (ssh-keyscan the host, or potato bootstrap), then run `potato secrets rekey`"),
            );
            return;
        };
        let encrypted_to_host = cov
            .recorded
            .get(path)
            .is_some_and(|r| r.contains(&crate::secrets::store::normalize(key)));
        if !encrypted_to_host {
            self.error(
                &v.span,
                format!("secret `{name}` ({path}) is not encrypted to {host}"),
                "run `potato secrets rekey` to re-encrypt it for every host that uses it",
            );
        }
    }
}

/// Secret file modes potato writes: the owner reads, the group may read, no
/// one else; the owner may write; no setuid, setgid or sticky bit.
pub const SECRET_MODES: &[&str] = &["0400", "0440", "0600", "0640"];

fn check_secret_mode(mode: &str) -> Result<(), (String, String)> {
    let hint = format!("use one of {}", SECRET_MODES.join(", "));
    let digits = (3..=4).contains(&mode.len()) && mode.chars().all(|c| ('0'..='7').contains(&c));
    if !digits {
        return Err((
            format!("`{mode}` is not an octal file mode"),
            format!("write e.g. \"0400\" or \"0440\"; {hint}"),
        ));
    }
    let bits = u32::from_str_radix(mode, 8).unwrap_or(0);
    let message = if bits & 0o7000 != 0 {
        format!("mode {mode} sets the setuid, setgid or sticky bit")
    } else if bits & 0o007 != 0 {
        format!("mode {mode} lets every user on the host read the secret")
    } else if bits & 0o400 == 0 {
        format!("mode {mode} does not let the owner read the secret")
    } else if !SECRET_MODES.contains(&format!("{bits:04o}").as_str()) {
        format!("mode {mode} is not a mode for a secret")
    } else {
        return Ok(());
    };
    Err((message, hint))
}
