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
            // The fleet CA's key is the operator's (`pki`): never a host's
            // reference, so `secrets rekey` never encrypts it to a host.
            Ok(n) if n == crate::pki::CA_KEY_SECRET => {
                self.error(
                    &v.span,
                    format!("`{n}` is the fleet CA's private key: no host may use it"),
                    "hosts get their own certificate and key from `potato ca issue HOST`; every host already trusts the CA's certificate",
                );
                return None;
            }
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

#[cfg(test)]
mod tests {
    use super::check_secret_mode;
    use crate::resolve::testkit::{Fleet, HOST_KEY};

    fn with_secret(snippet: &str) -> Fleet {
        Fleet::default().secret("shared", "db").host("h", snippet)
    }

    #[test]
    fn secret_tables_get_owner_group_and_mode() {
        let out =
            with_secret("[secrets.db]\nowner = \"postgres\"\ngroup = \"postgres\"\nmode = \"440\"")
                .resolve();
        let m = &out.plan().secret_files["db"];
        assert_eq!(
            (m.owner.as_str(), m.group.as_str(), m.mode.as_str()),
            ("postgres", "postgres", "0440")
        );
        assert!(out.plan().secrets.contains_key("db"));
    }

    #[test]
    fn owner_and_group_are_user_names() {
        for (field, bad) in [("owner", "root user"), ("group", "-wheel"), ("owner", "")] {
            with_secret(&format!("[secrets.db]\n{field} = \"{bad}\""))
                .resolve()
                .assert_error(
                    &format!("`{bad}` is not a user or group name"),
                    &format!("\"{bad}\""),
                );
        }
    }

    #[test]
    fn modes_keep_the_secret_from_other_users() {
        for (mode, why) in [
            ("0777", "lets every user on the host read the secret"),
            ("4400", "sets the setuid, setgid or sticky bit"),
            ("0200", "does not let the owner read the secret"),
            ("0660", "is not a mode for a secret"),
            ("rw", "is not an octal file mode"),
            ("08", "is not an octal file mode"),
        ] {
            with_secret(&format!("[secrets.db]\nmode = \"{mode}\""))
                .resolve()
                .assert_error(why, &format!("\"{mode}\""));
        }
        for ok in ["0400", "0440", "0600", "0640", "400", "640"] {
            assert_eq!(check_secret_mode(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_secret_must_exist_in_the_host_or_shared_scope() {
        let ok = Fleet::default()
            .secret("h", "db")
            .host("h", "[secrets.db]")
            .resolve();
        assert_eq!(ok.plan().secrets["db"].as_str(), "secrets/h/db.age");
        let out = Fleet::default()
            .secret("other", "db")
            .host("h", "[secrets.db]")
            .resolve();
        out.assert_error(
            "secret `db` does not exist (looked for secrets/h/db.age and secrets/shared/db.age)",
            "[secrets.db]",
        );
    }

    #[test]
    fn a_reference_is_secret_colon_name() {
        let out = Fleet::default()
            .host(
                "h",
                "[wireguard.wg0]\naddress = \"10.99.0.1/24\"\nprivate_key = \"hunter2\"",
            )
            .resolve();
        let d = out.assert_error("`hunter2` is not a secret reference", "\"hunter2\"");
        assert!(d.hint.as_deref().unwrap().contains("potato secrets set"));
    }

    #[test]
    fn a_host_can_decrypt_what_it_uses() {
        let used = "[secrets.db]";
        let ok = with_secret(used)
            .coverage(
                &[("h", HOST_KEY)],
                &[("secrets/shared/db.age", &[HOST_KEY])],
            )
            .resolve();
        ok.plan();
        with_secret(used)
            .coverage(&[], &[("secrets/shared/db.age", &[HOST_KEY])])
            .resolve()
            .error("host `h` has no SSH host key in secrets/recipients.toml, so it cannot decrypt secret `db`");
        with_secret(used)
            .coverage(&[("h", HOST_KEY)], &[("secrets/shared/db.age", &[])])
            .resolve()
            .error("secret `db` (secrets/shared/db.age) is not encrypted to h");
    }

    #[test]
    fn an_operator_secret_is_never_shipped_to_the_host() {
        let out = Fleet::default()
            .secret("shared", "proxmox-token")
            .host(
                "h",
                "hardware = \"proxmox-vm\"\n[proxmox]\napi = \"https://192.0.2.2:8006\"\nnode = \"pve\"\nvmid = 111\ndisk = \"8GiB\"\nbridge = \"vmbr0\"\ntoken = \"secret:proxmox-token\"",
            )
            // The host has no key: an on-host secret would be refused.
            .coverage(&[], &[])
            .resolve();
        let plan = out.plan();
        assert_eq!(plan.proxmox.as_ref().unwrap().token_secret, "proxmox-token");
        assert!(plan.secrets.is_empty() && plan.secret_files.is_empty());
    }
}
