//! `containers-tmpfiles.conf`: the host paths the containers need, created by
//! systemd-tmpfiles with the owner and mode derived from each image's contract.
//!
//! Owns that derivation and the file's format. Each container unit runs
//! `systemd-tmpfiles --create --prefix=<its paths>` on this file before it starts
//! (after its data mounts, see `RequiresMountsFor=` in containers.json), so a
//! path on a data disk is never created in the root filesystem under the mount
//! point. It does not decide where volumes live (that is `resolve`).
//!
//! Rules, per volume of a container:
//! - a directory the image writes (contract `writes`), under the data root or a
//!   host path: owned by the image's user (or the host file's `owner`), mode 0750
//!   (or the host file's `mode`);
//! - any other directory under the data root (read-only volumes): the image's
//!   user too, so it can read it, mode 0750;
//! - a host path the image needs (contract `needs`): root, 0755, and a needed
//!   file inside it is created empty (0640, the writer's owner);
//! - any other host path (/proc, /sys, /var/log read-only): left alone.
//!
//! Where two services use one path, a writer's rule wins over a reader's, then
//! the first service by name. Paths are written by `format::tmpfiles::path`
//! (quoted where needed, `%` doubled, line breaks refused); this module does
//! no escaping of its own.

use std::collections::BTreeMap;

use crate::catalog::{Needed, Owner, contract::under};
use crate::plan::{ContainersPlan, HostPlan, ServicePlan};
use crate::render::format::{self, Refused};

/// The kind of a tmpfiles line potato writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File,
}

/// One tmpfiles line: a path with its owner and mode, and the service that
/// asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub path: String,
    pub owner: Owner,
    pub mode: u32,
    pub service: String,
    /// The image writes here (its rule wins over a reader's).
    pub writer: bool,
}

const DIR_MODE: u32 = 0o750;
const NEEDED_DIR_MODE: u32 = 0o755;
const NEEDED_FILE_MODE: u32 = 0o640;

/// Every path the host's containers need, one entry per path.
pub fn entries(c: &ContainersPlan) -> Vec<Entry> {
    let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
    let mut services: Vec<&ServicePlan> = c.services.iter().collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    for s in services {
        for e in service_entries(c, s) {
            match by_path.get(&e.path) {
                Some(old) if old.writer || !e.writer => {}
                _ => {
                    by_path.insert(e.path.clone(), e);
                }
            }
        }
    }
    by_path.into_values().collect()
}

/// The entries one service asks for.
pub fn service_entries(c: &ContainersPlan, s: &ServicePlan) -> Vec<Entry> {
    let data = format!("{}/", c.data);
    let mut out = Vec::new();
    let writer_owner = s.owner.unwrap_or(s.contract.user);
    for v in &s.volumes {
        let writes = !v.read_only && s.contract.writes_to(&v.container);
        let needed = s.contract.needs_under(&v.container);
        let owned = v.host.starts_with(&data);
        let entry = |owner, mode, writer| Entry {
            kind: Kind::Dir,
            path: v.host.clone(),
            owner,
            mode,
            service: s.name.clone(),
            writer,
        };
        if writes {
            out.push(entry(writer_owner, s.mode.unwrap_or(DIR_MODE), true));
        } else if owned {
            // Read by the image's user, so owned by it (0750 keeps others out).
            out.push(entry(writer_owner, s.mode.unwrap_or(DIR_MODE), false));
        } else if needed {
            out.push(entry(Owner::ROOT, NEEDED_DIR_MODE, false));
        }
        for n in &s.contract.needs {
            let Needed::File(f) = n else { continue };
            if under(f, &v.container) && f != &v.container {
                let rest = &f[v.container.trim_end_matches('/').len()..];
                out.push(Entry {
                    kind: Kind::File,
                    path: format!("{}{rest}", v.host.trim_end_matches('/')),
                    owner: if writes { writer_owner } else { Owner::ROOT },
                    mode: NEEDED_FILE_MODE,
                    service: s.name.clone(),
                    writer: writes,
                });
            }
        }
    }
    out
}

/// The host paths of one service's entries: its `--prefix` arguments.
pub fn prefixes(c: &ContainersPlan, s: &ServicePlan) -> Vec<String> {
    let mut p: Vec<String> = service_entries(c, s)
        .into_iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| e.path)
        .collect();
    p.sort();
    p.dedup();
    p
}

/// The file's text, or None when the host runs no containers. Every path goes
/// through `format::tmpfiles::path`, the one tmpfiles escaping function.
pub fn render(plan: &HostPlan) -> Option<Result<String, Refused>> {
    let c = plan.containers.as_ref()?;
    Some(rules(plan, c))
}

fn rules(plan: &HostPlan, c: &ContainersPlan) -> Result<String, Refused> {
    let mut s = format!(
        "# Generated by potato from {}: the host paths the containers need, with the\n\
         # owner and mode their images expect (catalog contracts). Each container unit\n\
         # applies the lines under its own volumes before it starts.\n",
        format::comment_text(plan.file.as_str())
    );
    for e in entries(c) {
        let t = match e.kind {
            Kind::Dir => 'd',
            Kind::File => 'f',
        };
        let path = format::tmpfiles::path(&e.path)
            .map_err(|r| r.of(format!("a volume path of service {:?}", e.service)))?;
        s.push_str(&format!(
            "{t} {path} {:04o} {} {} -\n",
            e.mode, e.owner.uid, e.owner.gid
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> HostPlan {
        let repo = camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
        let plans = crate::ops::fleet::load_plans(repo).expect("example hosts are valid");
        plans.into_iter().find(|p| p.name == name).unwrap()
    }

    /// Sets the host side of n250's first data-root volume of a writing service.
    fn with_volume_host(host: &str) -> HostPlan {
        let mut p = plan("n250");
        let c = p.containers.as_mut().unwrap();
        let data = format!("{}/", c.data);
        let v = c
            .services
            .iter_mut()
            .flat_map(|s| s.volumes.iter_mut())
            .find(|v| v.host.starts_with(&data))
            .unwrap();
        v.host = host.to_string();
        p
    }

    /// A path with a space is one quoted field (through `format::tmpfiles`).
    #[test]
    fn a_path_with_a_space_is_one_field() {
        let rules = render(&with_volume_host("/mnt/ssd/app data"))
            .unwrap()
            .unwrap();
        assert!(
            rules
                .lines()
                .any(|l| l.starts_with("d \"/mnt/ssd/app data\" ")),
            "{rules}"
        );
    }

    /// A line break would start a second tmpfiles line: refused, naming the
    /// service, instead of written.
    #[test]
    fn a_path_with_a_line_break_is_refused() {
        let e = render(&with_volume_host(
            "/mnt/ssd/x\nL+ /etc/shadow - - - - /tmp/x",
        ))
        .unwrap()
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("a volume path of service") && text.contains("systemd-tmpfiles path"),
            "{text}"
        );
    }
}
