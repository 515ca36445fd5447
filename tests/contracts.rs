//! Image contracts (issue 14): the catalog's contract data against facts read
//! by hand from the upstream sources; the directories the real
//! `systemd-tmpfiles` creates from the generated rules; and each validation
//! error derived from a contract, at its file:line:col.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{Repo, have_tool, line_col, source_root};
use serde_json::Value;

fn at(repo: &Repo, file: &str, needle: &str) -> String {
    let (l, c) = line_col(&repo.read(file), needle);
    format!("{file}:{l}:{c}")
}

/// `potato catalog --json`, by service name.
fn catalog(r: &Repo) -> serde_json::Map<String, Value> {
    let run = r.potato(&["--json", "catalog"]);
    run.ok();
    let list: Vec<Value> = serde_json::from_str(&run.stdout).expect("catalog JSON");
    list.into_iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s))
        .collect()
}

/// One image's facts as read from its upstream source.
struct Fact {
    service: &'static str,
    uid: u64,
    gid: u64,
    /// Where the command reads its config (None: flags/environment only).
    config: Option<&'static str>,
    /// A program the image has that the health check may use.
    has: &'static str,
    /// A program the image does not have (a health check with it never passes).
    lacks: Option<&'static str>,
}

#[rustfmt::skip]
const FACTS: &[Fact] = &[
    // https://github.com/prometheus/prometheus/blob/main/Dockerfile
    //   FROM quay.io/prometheus/busybox; chown nobody:nogroup; USER nobody;
    //   CMD --config.file=/etc/prometheus/prometheus.yml
    Fact { service: "prometheus", uid: 65534, gid: 65534, config: Some("/etc/prometheus/prometheus.yml"), has: "wget", lacks: Some("curl") },
    // https://github.com/prometheus/alertmanager/blob/v0.28.1/Dockerfile (busybox base)
    //   USER nobody; CMD --config.file=/etc/alertmanager/alertmanager.yml
    Fact { service: "alertmanager", uid: 65534, gid: 65534, config: Some("/etc/alertmanager/alertmanager.yml"), has: "amtool", lacks: Some("curl") },
    // https://github.com/grafana/grafana/blob/main/Dockerfile
    //   ARG GF_UID="472" GF_GID="0"; apk add bash curl; GF_PATHS_CONFIG=/etc/grafana/grafana.ini
    Fact { service: "grafana", uid: 472, gid: 0, config: Some("/etc/grafana/grafana.ini"), has: "curl", lacks: None },
    // https://github.com/grafana/loki/blob/main/cmd/loki/Dockerfile
    //   distroless static:debug (busybox); adduser -u 10001; CMD -config.file=/etc/loki/local-config.yaml
    Fact { service: "loki", uid: 10001, gid: 10001, config: Some("/etc/loki/local-config.yaml"), has: "wget", lacks: Some("curl") },
    // https://github.com/grafana/alloy/blob/main/Dockerfile
    //   ubuntu; apt-get install curl (no wget); uid 473 exists but is not USER;
    //   CMD run /etc/alloy/config.alloy
    Fact { service: "alloy", uid: 0, gid: 0, config: Some("/etc/alloy/config.alloy"), has: "curl", lacks: Some("wget") },
    // https://github.com/go-gitea/gitea/blob/main/Dockerfile.rootless
    //   USER 1000:1000; apk add curl; GITEA_APP_INI /etc/gitea/app.ini
    Fact { service: "gitea", uid: 1000, gid: 1000, config: Some("/etc/gitea/app.ini"), has: "curl", lacks: None },
    // https://github.com/docker-library/postgres/blob/master/16/alpine3.22/Dockerfile
    //   addgroup -g 70 postgres; adduser -u 70; entrypoint steps down with gosu
    Fact { service: "postgres", uid: 70, gid: 70, config: None, has: "pg_isready", lacks: None },
    // redis official alpine image: addgroup -S -g 1000 redis; adduser -S -G redis -u 999 redis
    // https://github.com/docker-library/redis/blob/master/7.4/alpine/Dockerfile
    Fact { service: "redis", uid: 999, gid: 1000, config: None, has: "redis-cli", lacks: None },
    // https://github.com/goauthentik/authentik/blob/main/Dockerfile
    //   adduser --system --uid 1000; USER 1000; HEALTHCHECK /lifecycle/ak healthcheck; no curl/wget
    Fact { service: "authentik", uid: 1000, gid: 1000, config: None, has: "ak", lacks: Some("wget") },
    // https://github.com/syncthing/syncthing/blob/main/Dockerfile and script/docker-entrypoint.sh
    //   alpine + su-exec; PUID=1000 PGID=1000; HEALTHCHECK nc -z (busybox); no curl
    Fact { service: "syncthing", uid: 1000, gid: 1000, config: None, has: "wget", lacks: Some("curl") },
    // https://github.com/miniflux/v2/blob/main/packaging/docker/alpine/Dockerfile
    //   alpine; USER nobody; COPY miniflux /usr/bin/miniflux
    Fact { service: "miniflux", uid: 65534, gid: 65534, config: None, has: "/usr/bin/miniflux", lacks: Some("curl") },
    // https://github.com/filebrowser/filebrowser/blob/master/Dockerfile
    //   UID=1000 GID=1000; apk add curl jq tini; --config /config/settings.json
    Fact { service: "filebrowser", uid: 1000, gid: 1000, config: Some("/config/settings.json"), has: "curl", lacks: None },
    // https://github.com/traefik/traefik-library-image/blob/master/v3.4/alpine/Dockerfile
    //   FROM alpine; no USER; ships no /etc/traefik. Traefik reads its static
    //   configuration from /etc/traefik/traefik.yml (or --configFile):
    //   https://doc.traefik.io/traefik/getting-started/configuration-overview/
    Fact { service: "traefik", uid: 0, gid: 0, config: Some("/etc/traefik/traefik.yml"), has: "traefik", lacks: Some("curl") },
    // https://github.com/linuxserver/docker-baseimage-alpine (init-adduser: usermod -u $PUID abc)
    //   the catalog entry sets PUID=1000 PGID=1000; bash is a runtime package
    Fact { service: "sonarr", uid: 1000, gid: 1000, config: None, has: "bash", lacks: None },
];

#[test]
fn contracts_match_facts_read_from_upstream() {
    let r = Repo::examples();
    let cat = catalog(&r);
    assert!(FACTS.len() >= 10);
    for f in FACTS {
        let s = cat
            .get(f.service)
            .unwrap_or_else(|| panic!("{} missing", f.service));
        let c = &s["contract"];
        assert_eq!(c["user"]["uid"], f.uid, "{} uid", f.service);
        assert_eq!(c["user"]["gid"], f.gid, "{} gid", f.service);
        assert_eq!(c["config"].as_str(), f.config, "{} config", f.service);
        let bins: Vec<&str> = c["binaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap())
            .collect();
        assert!(bins.contains(&f.has), "{} has {}", f.service, f.has);
        if let Some(l) = f.lacks {
            assert!(!bins.contains(&l), "{} lacks {l}", f.service);
            let health = s["health"].as_str().unwrap_or("");
            assert!(
                !health.split_whitespace().any(|w| w == l),
                "{}'s health check uses {l}, which the image lacks: {health}",
                f.service
            );
        }
        assert!(
            c["source"].as_str().unwrap().starts_with("https://"),
            "{} has no upstream source",
            f.service
        );
    }
}

/// Every built-in entry records where its contract comes from; entries that
/// could not be verified say so instead of inventing facts.
#[test]
fn every_contract_names_its_source() {
    let r = Repo::examples();
    for (name, s) in catalog(&r) {
        let src = s["contract"]["source"].as_str().unwrap();
        assert!(
            src.starts_with("https://") || src == "unverified",
            "{name}: {src}"
        );
    }
}

/// Runs the real systemd-tmpfiles on `conf` under `root`.
fn tmpfiles_create(root: &Path, conf: &Path) {
    let out = Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(format!("--root={}", root.display()))
        .arg(conf)
        .output()
        .expect("run systemd-tmpfiles");
    assert!(
        out.status.success(),
        "systemd-tmpfiles failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn owner_mode(root: &Path, path: &str) -> (u32, u32, u32) {
    let p = root.join(path.trim_start_matches('/'));
    let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{path} was not created: {e}"));
    (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
}

/// The committed rules of n250, applied by the real systemd-tmpfiles: every
/// path the containers need exists, owned as each image expects (the facts
/// above, from the upstream Dockerfiles), including the host path nothing else
/// creates (/var/log/traefik, which podman refuses to bind when missing).
#[test]
fn tmpfiles_rules_create_paths_with_the_images_owners() {
    if !have_tool("systemd-tmpfiles") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let conf = source_root().join("modules/generated/n250/containers-tmpfiles.conf");
    tmpfiles_create(root.path(), &conf);
    let data = "/mnt/ssd/appdata"; // hosts/n250.toml [containers] data
    for (path, uid, gid) in [
        (format!("{data}/prometheus/data"), 65534, 65534),
        (format!("{data}/grafana/data"), 472, 0),
        (format!("{data}/loki/data"), 10001, 10001),
        (format!("{data}/sonarr/config"), 1000, 1000),
        (format!("{data}/syncthing/config"), 1000, 1000),
        (format!("{data}/jellyfin/config"), 0, 0),
        ("/var/log/traefik".to_string(), 0, 0),
    ] {
        let (u, g, mode) = owner_mode(root.path(), &path);
        assert_eq!((u, g), (uid, gid), "{path}");
        assert_eq!(mode, 0o750, "{path}");
        assert!(root.path().join(&path[1..]).is_dir(), "{path}");
    }
    // The access log fail2ban's traefik jail and crowdsec read.
    let log = root.path().join("var/log/traefik/access.log");
    assert!(log.is_file(), "access.log was not created");
    // No configuration directory is mounted over an image's only config.
    for hidden in ["prometheus/config", "alertmanager/config", "alloy/config"] {
        assert!(
            !root.path().join(&data[1..]).join(hidden).exists(),
            "{hidden} exists"
        );
    }
    // The identity host's database trio (pve-apps, default data root).
    let apps = tempfile::tempdir().unwrap();
    tmpfiles_create(
        apps.path(),
        &source_root().join("modules/generated/pve-apps/containers-tmpfiles.conf"),
    );
    let data = "/var/lib/potato"; // hosts/pve-apps.toml sets no data root
    for (path, uid, gid) in [
        (format!("{data}/postgres/data"), 70, 70),
        (format!("{data}/redis/data"), 999, 1000),
        (format!("{data}/shared/authentik-media"), 1000, 1000),
    ] {
        let (u, g, mode) = owner_mode(apps.path(), &path);
        assert_eq!((u, g), (uid, gid), "{path}");
        assert_eq!(mode, 0o750, "{path}");
    }
}

/// `[containers.NAME] owner` and `mode` override the contract's owner, and the
/// regenerated rules create the directory that way.
#[test]
fn host_file_overrides_owner_and_mode() {
    if !have_tool("systemd-tmpfiles") {
        return;
    }
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "devices = [\"/dev/dri\"]",
        "devices = [\"/dev/dri\"]\nowner = \"4321:4322\"\nmode = \"0700\"",
    );
    r.potato(&["gen", "n250"]).ok();
    let root = tempfile::tempdir().unwrap();
    tmpfiles_create(
        root.path(),
        &r.path()
            .join("modules/generated/n250/containers-tmpfiles.conf"),
    );
    assert_eq!(
        owner_mode(root.path(), "/mnt/ssd/appdata/jellyfin/config"),
        (4321, 4322, 0o700)
    );
    // Other services keep their images' owners.
    assert_eq!(
        owner_mode(root.path(), "/mnt/ssd/appdata/grafana/data"),
        (472, 0, 0o750)
    );
}

#[test]
fn a_bad_owner_override_is_refused() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "devices = [\"/dev/dri\"]",
        "devices = [\"/dev/dri\"]\nowner = \"jellyfin\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"jellyfin\"\n");
    r.potato(&["check"])
        .invalid_at(&loc, "`jellyfin` is not UID:GID");
}

/// An operator entry whose health check runs a program its image lacks.
#[test]
fn health_check_with_a_binary_the_image_lacks() {
    let r = Repo::examples();
    r.write(
        "modules/catalog/local.toml",
        "[probe]\ndescription = \"x\"\nimage = \"example.org/probe:1.0\"\narch = [\"x86_64\", \"aarch64\"]\nmemory = \"32MiB\"\nzone = \"backend\"\nhealth = \"curl -fsS http://127.0.0.1:8080/\"\n\n[probe.contract]\nbinaries = [\"sh\", \"wget\"]\nsource = \"https://example.org/Dockerfile\"\n",
    );
    let loc = at(&r, "modules/catalog/local.toml", "\"curl -fsS");
    let run = r.potato(&["check"]);
    run.invalid_at(
        &loc,
        "catalog service `probe`: the health check runs `curl`, which the image does not have (it has sh, wget)",
    );
}

/// A string health check runs under /bin/sh -c: an image without a shell
/// cannot run one at all.
#[test]
fn health_check_on_an_image_without_a_shell() {
    let r = Repo::examples();
    r.write(
        "modules/catalog/local.toml",
        "[distroless]\ndescription = \"x\"\nimage = \"example.org/d:1.0\"\narch = [\"x86_64\"]\nmemory = \"32MiB\"\nzone = \"backend\"\nhealth = \"/app healthcheck\"\n\n[distroless.contract]\nbinaries = [\"/app\"]\nsource = \"https://example.org/Dockerfile\"\n",
    );
    let loc = at(&r, "modules/catalog/local.toml", "\"/app healthcheck\"");
    let run = r.potato(&["check"]);
    run.invalid_at(
        &loc,
        "the health check runs `sh`, which the image does not have",
    );
    assert!(run.stderr.contains("health_none"), "{}", run.stderr);
}

/// An operator entry that mounts a volume over the directory holding the only
/// config the image ships (prometheus's /etc/prometheus).
#[test]
fn volume_over_the_images_only_config() {
    let r = Repo::examples();
    r.write(
        "modules/catalog/local.toml",
        "[prometheus]\ndescription = \"x\"\nimage = \"docker.io/prom/prometheus:v3.5.0\"\narch = [\"x86_64\", \"aarch64\"]\nmemory = \"256MiB\"\nzone = \"monitoring\"\nweb = 9090\nvolumes = [\"data:/prometheus\", \"config:/etc/prometheus\"]\nhealth = \"wget -q --spider http://127.0.0.1:9090/-/healthy\"\n\n[prometheus.contract]\nuser = \"65534:65534\"\nwrites = [\"/prometheus\"]\nbinaries = [\"sh\", \"wget\"]\nconfig = \"/etc/prometheus/prometheus.yml\"\nships_config = true\nsource = \"https://github.com/prometheus/prometheus/blob/main/Dockerfile\"\n",
    );
    let loc = at(
        &r,
        "modules/catalog/local.toml",
        "\"config:/etc/prometheus\"",
    );
    r.potato(&["check"]).invalid_at(
        &loc,
        "volume over `/etc/prometheus` hides `/etc/prometheus/prometheus.yml`, the only config the image ships",
    );
}

/// gluetun without [vpn]: the WireGuard settings its image requires are missing.
#[test]
fn gluetun_without_its_required_environment() {
    let r = Repo::examples();
    let text = r.read("hosts/lepotato.toml");
    let start = text.find("\n[vpn]").unwrap();
    let end = text[start + 1..].find("\n[[health]]").unwrap() + start + 1;
    r.write(
        "hosts/lepotato.toml",
        &format!("{}{}", &text[..start], &text[end..]),
    );
    let loc = at(&r, "hosts/lepotato.toml", "\"gluetun\"");
    let run = r.potato(&["check"]);
    run.invalid_at(
        &loc,
        "`gluetun` cannot start: its image requires VPN_SERVICE_PROVIDER, WIREGUARD_PRIVATE_KEY (needed when VPN_TYPE=wireguard), WIREGUARD_ADDRESSES (needed when VPN_TYPE=wireguard)",
    );
    assert!(run.stderr.contains("add a [vpn] section"), "{}", run.stderr);
}

/// A required variable set through [containers.NAME] env satisfies the contract.
#[test]
fn required_environment_from_the_host_file_env() {
    let r = Repo::examples();
    // An operator entry whose image requires a variable it does not set: the
    // host that runs it must set it.
    r.write(
        "modules/catalog/local.toml",
        "[needy]\ndescription = \"x\"\nimage = \"example.org/n:1.0\"\narch = [\"x86_64\", \"aarch64\"]\nmemory = \"32MiB\"\nzone = \"backend\"\nhealth_none = \"x\"\n\n[needy.contract]\nrequired_env = [\"NEEDY_TOKEN\"]\nsource = \"https://example.org/Dockerfile\"\n",
    );
    r.edit(
        "hosts/pve-apps.toml",
        "\"uptime-kuma\"]",
        "\"uptime-kuma\", \"needy\"]",
    );
    let loc = at(&r, "hosts/pve-apps.toml", "\"needy\"");
    r.potato(&["check"])
        .invalid_at(&loc, "`needy` cannot start: its image requires NEEDY_TOKEN");
    r.edit(
        "hosts/pve-apps.toml",
        "[[health]]\nunit",
        "[containers.needy]\nenv = { NEEDY_TOKEN = \"t\" }\n\n[[health]]\nunit",
    );
    r.potato(&["check"]).ok();
}

#[test]
fn vpn_endpoint_must_be_an_address() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "endpoint = \"203.0.113.7:51820\"",
        "endpoint = \"gw.example.net:51820\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"gw.example.net:51820\"");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`gw.example.net` is not an IP address: gluetun connects to an address, not a name",
    );
}

#[test]
fn vpn_server_key_must_be_a_wireguard_key() {
    let r = Repo::examples();
    let text = r.read("hosts/n250.toml");
    let key_line = text
        .lines()
        .find(|l| l.starts_with("server_public_key"))
        .unwrap()
        .to_string();
    r.edit(
        "hosts/n250.toml",
        &key_line,
        "server_public_key = \"not-a-key\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"not-a-key\"");
    r.potato(&["check"])
        .invalid_at(&loc, "`server_public_key` is not a WireGuard public key");
}

#[test]
fn vpn_without_gluetun_is_refused() {
    let r = Repo::examples();
    r.edit(
        "hosts/pve-apps.toml",
        "[[health]]\nunit",
        "[vpn]\nprovider = \"mullvad\"\nprivate_key = \"secret:wg0\"\naddresses = [\"10.64.0.2/32\"]\n\n[[health]]\nunit",
    );
    let loc = at(&r, "hosts/pve-apps.toml", "[vpn]");
    r.potato(&["check"]).invalid_at(
        &loc,
        "[vpn] configures gluetun, but this host does not run it",
    );
}

/// Host paths an agent only reads (cadvisor's /, /sys, /var/run, the engine's
/// storage; alloy's /var/log) are never in the rules: tmpfiles must not
/// re-own or re-mode system directories.
#[test]
fn read_only_system_paths_are_left_alone() {
    let r = Repo::examples();
    // On n250, the monitoring hub: loki runs there and nowhere else.
    r.edit(
        "hosts/n250.toml",
        "\"kopia\"]",
        "\"kopia\", \"cadvisor\", \"alloy\"]",
    );
    r.potato(&["gen", "n250"]).ok();
    let rules = r.read("modules/generated/n250/containers-tmpfiles.conf");
    let paths: Vec<&str> = rules
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    for system in [
        "/",
        "/sys",
        "/var/run",
        "/var/log",
        "/dev/disk",
        "/var/lib/containers",
    ] {
        assert!(!paths.contains(&system), "{system} in:\n{rules}");
    }
    // alloy's own data directory is there, as root (its image's default user).
    assert!(
        rules.contains("d /mnt/ssd/appdata/alloy/data 0750 0 0 -"),
        "{rules}"
    );
    // loki's, as 10001 (cmd/loki/Dockerfile: adduser -u 10001; USER 10001).
    assert!(
        rules.contains("d /mnt/ssd/appdata/loki/data 0750 10001 10001 -"),
        "{rules}"
    );
}

/// A host agent is a NixOS service: a container override for it is an error.
#[test]
fn a_host_agent_has_no_container_override() {
    let r = Repo::examples();
    // Listed (allowed on a fleet with a monitoring hub, where every host runs it).
    r.edit(
        "hosts/n250.toml",
        "\"kopia\"]",
        "\"kopia\", \"node-exporter\"]",
    );
    r.edit(
        "hosts/n250.toml",
        "[containers.jellyfin]",
        "[containers.node-exporter]\nmemory = \"64MiB\"\n\n[containers.jellyfin]",
    );
    let loc = at(&r, "hosts/n250.toml", "[containers.node-exporter]");
    r.potato(&["check"]).invalid_at(
        &loc,
        "`node-exporter` runs on the host, not as a container: it has nothing to override",
    );
}
