//! The SSH and kernel baseline (`harden::baseline`) of one host, judged on
//! the generated files a deploy would install and, when asked, on the running
//! host's effective values (`sshd -T`, `sysctl -n`), read over SSH. Returns
//! the rows; the command prints them.

use camino::Utf8PathBuf;
use serde::Serialize;

use super::fleet::Fleet;
use crate::error::Error;
use crate::harden::baseline::{self, Daemon, Facts, Outcome};
use crate::render::{GENERATED_DIR, Renderer};

/// Marks where `sshd -T` output ends and the sysctl values begin.
const SPLIT: &str = "@@potato-sysctl@@";

/// One baseline check: in the generated files, and on the host if read.
#[derive(Debug, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub generated: Outcome,
    pub file: &'static str,
    pub live: Option<LiveOutcome>,
}

#[derive(Debug, Serialize)]
pub struct LiveOutcome {
    pub pass: bool,
    pub found: Option<String>,
}

/// A host's audit.
#[derive(Debug)]
pub struct Audit {
    pub host: String,
    /// modules/generated/HOST.
    pub dir: Utf8PathBuf,
    pub rows: Vec<Row>,
    /// Generated files that differ from what the host file renders to today.
    pub stale: Vec<String>,
    /// Failed checks (a stale file counts as one).
    pub failed: usize,
}

/// Audits `host`; with `live`, also on the running host.
pub fn audit(fleet: &Fleet, host: &str, live: bool) -> Result<Audit, Error> {
    let (plan, target) = fleet.one(host)?;
    let root = &fleet.root;
    let items = baseline::items(&plan);
    let dir = camino::Utf8PathBuf::from(GENERATED_DIR).join(&plan.name);
    let read = |daemon: Daemon| -> Result<String, Error> {
        Ok(
            crate::render::writer::read_generated(root, &dir.join(daemon.file()))?
                .unwrap_or_default(),
        )
    };
    let generated = baseline::judge(
        &items,
        &baseline::parse_sshd(&read(Daemon::Sshd)?),
        &baseline::parse_sysctl(&read(Daemon::Sysctl)?),
    );
    let stale = stale_files(root, &plan)?;

    let live_outcomes = if live {
        let remote = fleet.connect(host, &target)?;
        let (sshd, sysctl) = live_facts(&remote, host, &items)?;
        Some(baseline::judge(&items, &sshd, &sysctl))
    } else {
        None
    };
    let rows: Vec<Row> = generated
        .into_iter()
        .enumerate()
        .map(|(i, o)| Row {
            file: o.daemon.file(),
            live: live_outcomes.as_ref().map(|l| LiveOutcome {
                pass: l[i].pass,
                found: l[i].found.clone(),
            }),
            generated: o,
        })
        .collect();
    let failed = rows
        .iter()
        .filter(|r| !r.generated.pass || r.live.as_ref().is_some_and(|l| !l.pass))
        .count()
        + usize::from(!stale.is_empty());

    Ok(Audit {
        host: plan.name.clone(),
        dir,
        rows,
        stale,
        failed,
    })
}

/// Generated files that differ from what the host file renders to today.
fn stale_files(
    root: &camino::Utf8Path,
    plan: &crate::plan::HostPlan,
) -> Result<Vec<String>, Error> {
    let mut stale = Vec::new();
    for f in Renderer::new().render_host(plan)? {
        let on_disk = crate::render::writer::read_generated(root, &f.path)?;
        if on_disk.as_deref() != Some(f.content.as_str()) {
            stale.push(f.path.to_string());
        }
    }
    Ok(stale)
}

/// The running host's effective sshd settings and sysctl values.
fn live_facts(
    remote: &crate::host::Remote,
    host: &str,
    items: &[baseline::Item],
) -> Result<(Facts, Facts), Error> {
    let keys: Vec<&str> = items
        .iter()
        .filter(|i| i.daemon == Daemon::Sysctl)
        .map(|i| i.key)
        .collect();
    let script = format!(
        "sshd=$(command -v sshd || echo /run/current-system/sw/bin/sshd); [ -x \"$sshd\" ] || sshd=/usr/sbin/sshd; \
         \"$sshd\" -T 2>/dev/null; echo {SPLIT}; \
         for k in {}; do v=$(sysctl -n \"$k\" 2>/dev/null) && printf '%s = %s\\n' \"$k\" \"$v\"; done",
        keys.join(" ")
    );
    let out = remote.run(&script).map_err(|e| Error::remote(host, e))?;
    let (sshd, sysctl) = out.stdout.split_once(SPLIT).unwrap_or((&out.stdout, ""));
    if sshd.trim().is_empty() {
        return Err(Error::Host {
            host: host.into(),
            message: "`sshd -T` printed nothing: is sshd installed, and are we root?".into(),
        });
    }
    Ok((baseline::parse_sshd(sshd), baseline::parse_sysctl(sysctl)))
}
