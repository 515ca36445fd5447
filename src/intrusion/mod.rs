//! Intrusion prevention (issue 15, item 3): what CrowdSec reads, and how the
//! host enforces what it decides.
//!
//! Owns the CrowdSec acquisition files (Traefik's access log, sshd's journal),
//! the configuration of the host's CrowdSec firewall bouncer, the nftables
//! tables that bouncer fills (`bouncer.nft`, its own tables, as fail2ban's
//! bans have theirs), and the small spec modules/crowdsec/default.nix places
//! them with. `wire` runs after the monitoring wiring and only publishes the
//! engine's metrics port when the monitoring hub scrapes it. Must not touch the
//! host's own table (`harden::firewall`), fail2ban's table, or the catalog.
//!
//! Where CrowdSec runs: as the catalog's container, in its Debian flavour
//! (`crowdsecurity/crowdsec:vX-debian`). It must read the Traefik access log (a
//! host bind mount) and sshd's journal. The default image is Alpine, with no
//! systemd and so no `journalctl`, which CrowdSec's journald source runs; the
//! Debian one installs systemd "for journalctl support", reading the host's
//! journal mounted at /run/log/journal
//! (<https://github.com/crowdsecurity/crowdsec/blob/master/Dockerfile.debian>,
//! <https://github.com/crowdsecurity/crowdsec/blob/master/docker/README.md>).
//! A native `services.crowdsec` exists in nixpkgs, but its option set was
//! reorganised after 25.11 (`localConfig` → `settings`) and it writes the
//! acquisitions from Nix attributes, not the files tested here; the container
//! keeps the catalog's contract, memory budget and health check. The image's
//! docker_start.sh registers `BOUNCER_KEY_<name>` variables as bouncers at
//! start (idempotently by name), which is how the bouncer's key secret is
//! registered.
//!
//! Enforcement is the CrowdSec firewall bouncer as a host service (not a
//! container), in nftables `set-only` mode: potato's `bouncer.nft` creates
//! one `ip` and one `ip6` table, each with the set the bouncer fills and
//! chains on the input AND forward hooks at priority -10 (before potato's
//! table), so published container ports (DNAT-ed, never seen by input) are
//! covered. The bouncer's own tables would hook input only (Debian's 0.0.25
//! has no `nftables_hooks`), and nixpkgs' module creates input-only tables
//! too (<https://github.com/NixOS/nixpkgs/blob/master/nixos/modules/services/security/crowdsec-firewall-bouncer.nix>).
//! Its API key never enters a generated file: the unit writes it into the
//! bouncer's `.local` override (merged by every version since 0.0.2x, see
//! `pkg/cfg/config.go` `MergedConfig`) from the decrypted secret.

use serde::Serialize;
use serde_json::{Value, json};

use crate::inventory::schema::Backend;
use crate::plan::HostPlan;
use crate::render::format::{Refused, yaml_json};

/// The catalog's CrowdSec engine.
pub const ENGINE: &str = "crowdsec";
/// The secret holding the bouncer's API key.
pub const BOUNCER_KEY_SECRET: &str = "crowdsec-bouncer-key";
/// The bouncer's name in CrowdSec (`BOUNCER_KEY_firewall` in the catalog).
pub const BOUNCER_NAME: &str = "firewall";
/// CrowdSec's Local API port, in the container and on the host's loopback.
pub const LAPI_PORT: u16 = 8080;
/// Where the container reads the acquisition directory (config.yaml's
/// `crowdsec_service.acquisition_dir` in the image's docker config).
pub const ACQUIS_DIR: &str = "/etc/crowdsec/acquis.d";
/// Where the Traefik access log is, on the host and in the container.
pub const TRAEFIK_ACCESS_LOG: &str = crate::harden::fail2ban::TRAEFIK_ACCESS_LOG;
/// sshd's unit on NixOS, as journald records it.
pub const SSHD_UNIT: &str = "sshd.service";
/// The bouncer's IPv4 and IPv6 tables and sets.
pub const TABLE_V4: &str = "potato-crowdsec";
pub const TABLE_V6: &str = "potato-crowdsec6";
pub const SET_V4: &str = "crowdsec-blacklists";
pub const SET_V6: &str = "crowdsec6-blacklists";
/// Before potato's table (priority filter = 0), as fail2ban's bans are: a
/// drop in any base chain is final.
pub const PRIORITY: i32 = -10;

/// Every file `files` may write under a host's `crowdsec/` directory (the
/// writer owns exactly these there).
pub const FILES: &[&str] = &[
    "acquis.d/traefik.yaml",
    "acquis.d/sshd.yaml",
    "bouncer.yaml",
    "bouncer.nft",
    "crowdsec.json",
];

/// One host's intrusion prevention: present when the host runs CrowdSec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntrusionPlan {
    pub acquisitions: Vec<Acquisition>,
    /// The container engine, for the engine's unit name.
    pub engine: String,
    /// The Local API, published on 127.0.0.1 only, where the bouncer asks.
    pub lapi_port: u16,
    pub bouncer_key_secret: String,
}

/// One file under acquis.d: a log source and the parser type its lines get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acquisition {
    /// The file name under acquis.d (`traefik.yaml`).
    pub file: String,
    pub source: LogSource,
    /// `labels.type`: which hub parser reads the lines.
    pub log_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LogSource {
    /// Log files (globs allowed), followed as they grow.
    Files(Vec<String>),
    /// The journal, through `journalctl` with these match filters.
    Journal(Vec<String>),
}

/// The host's intrusion plan, when it runs the CrowdSec container.
pub fn plan(p: &HostPlan) -> Option<IntrusionPlan> {
    let c = p.containers.as_ref()?;
    let runs = |name: &str| c.services.iter().any(|s| s.name == name);
    if !runs(ENGINE) {
        return None;
    }
    let mut acquisitions = Vec::new();
    if runs("traefik") {
        acquisitions.push(Acquisition {
            file: "traefik.yaml".into(),
            source: LogSource::Files(vec![TRAEFIK_ACCESS_LOG.into()]),
            log_type: "traefik".into(),
        });
    }
    acquisitions.push(Acquisition {
        file: "sshd.yaml".into(),
        source: LogSource::Journal(vec![format!("_SYSTEMD_UNIT={SSHD_UNIT}")]),
        // sshd's journal lines carry the syslog identifier the syslog
        // parser reads (hub: crowdsecurity/sshd-logs after syslog-logs).
        log_type: "syslog".into(),
    });
    Some(IntrusionPlan {
        acquisitions,
        engine: match c.backend {
            Backend::Podman => "podman",
            Backend::Docker => "docker",
        }
        .to_string(),
        lapi_port: LAPI_PORT,
        bouncer_key_secret: BOUNCER_KEY_SECRET.into(),
    })
}

/// Sets every plan's `intrusion`.
pub fn wire(plans: &mut [HostPlan]) {
    for p in plans.iter_mut() {
        p.intrusion = plan(p);
    }
}

fn header(source: &str, what: &str) -> String {
    format!(
        "Generated by potato from {}: {what}. Do not edit.",
        crate::render::format::comment_text(source)
    )
}

/// One acquisition file, as CrowdSec reads it (YAML, written as JSON).
/// <https://docs.crowdsec.net/docs/data_sources/file> and `/journald`.
pub fn acquisition(source: &str, a: &Acquisition) -> Result<String, Refused> {
    let v = match &a.source {
        LogSource::Files(paths) => json!({
            "filenames": paths,
            "labels": { "type": a.log_type },
        }),
        LogSource::Journal(filters) => json!({
            "source": "journalctl",
            "journalctl_filter": filters,
            "labels": { "type": a.log_type },
        }),
    };
    yaml_json::yaml(&header(source, "a CrowdSec acquisition"), &v)
}

/// The bouncer's configuration (YAML, written as JSON). Keys are those both
/// Debian's 0.0.25 and current releases read (`config.go`/`pkg/cfg`); the API
/// key comes from the `.local` override the unit writes at start.
pub fn bouncer_config(source: &str, i: &IntrusionPlan) -> Result<String, Refused> {
    let family = |table: &str| {
        json!({
            "enabled": true,
            "set-only": true,
            "table": table,
            "chain": "input",
        })
    };
    let v = json!({
        "mode": "nftables",
        "update_frequency": "10s",
        "log_mode": "stdout",
        "log_level": "info",
        "api_url": format!("http://127.0.0.1:{}/", i.lapi_port),
        "insecure_skip_verify": false,
        "disable_ipv6": false,
        "deny_action": "DROP",
        "deny_log": false,
        "supported_decisions_types": ["ban"],
        "blacklists_ipv4": SET_V4,
        "blacklists_ipv6": SET_V6,
        "nftables": { "ipv4": family(TABLE_V4), "ipv6": family(TABLE_V6) },
        "prometheus": { "enabled": false },
    });
    yaml_json::yaml(
        &header(
            source,
            "the CrowdSec firewall bouncer (api_key: see the .local override)",
        ),
        &v,
    )
}

/// The bouncer's tables: for each family, the set it fills (with timeouts,
/// as decisions expire) and drop rules on the input and forward hooks.
/// Loading the file replaces both tables (created empty first, so the delete
/// always has something to delete); nothing in it comes from a host file.
pub fn tables() -> String {
    let mut out = String::from(
        "# Generated by potato: the CrowdSec firewall bouncer's tables (set-only mode).\n\
         # Bans drop the source at input (the host's ports) and at forward (published\n\
         # container ports, which are DNAT-ed and never reach input), before potato's table.\n",
    );
    for (family, table, set, kind, addr) in [
        ("ip", TABLE_V4, SET_V4, "ipv4_addr", "ip"),
        ("ip6", TABLE_V6, SET_V6, "ipv6_addr", "ip6"),
    ] {
        out.push_str(&format!(
            "table {family} {table}\ndelete table {family} {table}\ntable {family} {table} {{\n\
             \tset {set} {{\n\t\ttype {kind}\n\t\tflags timeout\n\t}}\n"
        ));
        for hook in ["input", "forward"] {
            out.push_str(&format!(
                "\tchain {hook} {{\n\t\ttype filter hook {hook} priority {PRIORITY}; policy accept;\n\
                 \t\t{addr} saddr @{set} drop\n\t}}\n"
            ));
        }
        out.push_str("}\n");
    }
    out
}

/// What modules/crowdsec/default.nix needs: the engine's unit, the Local
/// API's port, the acquisition files to mount, the key's runtime path.
pub fn spec(i: &IntrusionPlan) -> Result<String, Refused> {
    let v: Value = json!({
        "engine": i.engine,
        "engineService": ENGINE,
        "lapiPort": i.lapi_port,
        "acquisDir": ACQUIS_DIR,
        "acquisitions": i.acquisitions.iter().map(|a| a.file.clone()).collect::<Vec<_>>(),
        "keyFile": crate::secrets::runtime_path(&i.bouncer_key_secret),
    });
    yaml_json::json(&v)
}

/// The host's native files under `crowdsec/`, relative to its directory.
pub fn files(p: &HostPlan) -> Result<Vec<(String, String)>, Refused> {
    let Some(i) = &p.intrusion else {
        return Ok(Vec::new());
    };
    let source = p.file.as_str();
    let mut out = Vec::new();
    for a in &i.acquisitions {
        out.push((
            format!("crowdsec/acquis.d/{}", a.file),
            acquisition(source, a)?,
        ));
    }
    out.push(("crowdsec/bouncer.yaml".into(), bouncer_config(source, i)?));
    out.push(("crowdsec/bouncer.nft".into(), tables()));
    out.push(("crowdsec/crowdsec.json".into(), spec(i)?));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n250() -> HostPlan {
        let repo = camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::ops::fleet::load_plans(repo)
            .expect("example hosts are valid")
            .into_iter()
            .find(|p| p.name == "n250")
            .unwrap()
    }

    /// The two sources the issue names, with the parser types the hub's
    /// traefik and sshd collections expect (written here from the docs, not
    /// read back from the code).
    #[test]
    fn n250_reads_the_traefik_log_and_sshds_journal() {
        let p = n250();
        let files: std::collections::BTreeMap<String, String> =
            files(&p).unwrap().into_iter().collect();
        let traefik: Value = serde_json::from_str(
            files["crowdsec/acquis.d/traefik.yaml"]
                .split_once("\n{")
                .map(|(_, rest)| format!("{{{rest}"))
                .unwrap()
                .as_str(),
        )
        .unwrap();
        assert_eq!(
            traefik,
            json!({"filenames": ["/var/log/traefik/access.log"], "labels": {"type": "traefik"}})
        );
        let sshd: Value = serde_json::from_str(
            files["crowdsec/acquis.d/sshd.yaml"]
                .split_once("\n{")
                .map(|(_, rest)| format!("{{{rest}"))
                .unwrap()
                .as_str(),
        )
        .unwrap();
        assert_eq!(
            sshd,
            json!({
                "source": "journalctl",
                "journalctl_filter": ["_SYSTEMD_UNIT=sshd.service"],
                "labels": {"type": "syslog"}
            })
        );
    }

    /// The writer's list and what `files` writes agree.
    #[test]
    fn every_file_written_is_listed() {
        for (path, _) in files(&n250()).unwrap() {
            let rest = path.strip_prefix("crowdsec/").unwrap();
            assert!(FILES.contains(&rest), "{path}");
        }
    }

    /// The bouncer asks the Local API on the host's loopback (where
    /// modules/crowdsec publishes it), fills potato's set-only tables in both
    /// families, and its file holds no key (that is the .local override's).
    #[test]
    fn the_bouncer_asks_the_loopback_lapi_and_holds_no_key() {
        let p = n250();
        let text = bouncer_config("hosts/n250.toml", p.intrusion.as_ref().unwrap()).unwrap();
        let v: Value = serde_json::from_str(text.split_once('\n').unwrap().1).unwrap();
        assert_eq!(v["mode"], "nftables");
        assert_eq!(v["api_url"], "http://127.0.0.1:8080/");
        assert!(v.get("api_key").is_none(), "{text}");
        assert_eq!(v["nftables"]["ipv4"]["set-only"], true);
        assert_eq!(v["nftables"]["ipv4"]["table"], "potato-crowdsec");
        assert_eq!(v["nftables"]["ipv6"]["set-only"], true);
        assert_eq!(v["nftables"]["ipv6"]["table"], "potato-crowdsec6");
        assert_eq!(v["blacklists_ipv4"], "crowdsec-blacklists");
        // The set names the bouncer fills are the ones the tables declare.
        let t = tables();
        assert!(t.contains("set crowdsec-blacklists {"), "{t}");
        assert!(t.contains("set crowdsec6-blacklists {"), "{t}");
        assert_eq!(
            t.matches("type filter hook forward priority -10;").count(),
            2
        );
        assert_eq!(t.matches("type filter hook input priority -10;").count(), 2);
    }

    #[test]
    fn a_host_without_crowdsec_gets_no_files() {
        let repo = camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
        let plans = crate::ops::fleet::load_plans(repo).unwrap();
        let gw = plans.iter().find(|p| p.name == "pve-gateway").unwrap();
        assert!(gw.intrusion.is_none());
        assert!(files(gw).unwrap().is_empty());
    }

    /// A host file name that would break the YAML header is refused, not
    /// written (the header is the only host-derived text in these files).
    #[test]
    fn a_source_name_with_a_line_break_stays_one_comment_line() {
        let p = n250();
        let text = bouncer_config("hosts/n\n250.toml", p.intrusion.as_ref().unwrap()).unwrap();
        assert!(text.starts_with("# Generated by potato from hosts/n\\n250.toml"));
        assert_eq!(text.lines().filter(|l| l.starts_with('#')).count(), 1);
    }
}
