//! Hostile host files and catalog entries (issue 13, the input side): each
//! value that once reached a native file, a command line or the operator's API
//! token is refused when the file is read, with exit 2, the file:line:col of
//! the value, and nothing written. Expected locations are computed from the
//! edited file's text, not from potato.
//!
//! "Nothing written" is shown by removing modules/generated before running
//! `potato gen` (which would recreate it for a valid fleet) and finding it
//! still absent afterwards.

mod common;

use common::{Repo, Run, line_col};

/// "<file>:<line>:<col>" of the first occurrence of `needle` in that file.
fn at(repo: &Repo, file: &str, needle: &str) -> String {
    let (l, c) = line_col(&repo.read(file), needle);
    format!("{file}:{l}:{c}")
}

/// `potato gen` on a repository without modules/generated; asserts that the
/// run wrote nothing there, and returns it for the diagnostic's checks.
fn gen_writes_nothing(r: &Repo) -> Run {
    let generated = r.path().join("modules/generated");
    std::fs::remove_dir_all(&generated).unwrap();
    let run = r.potato(&["gen"]);
    assert!(
        !generated.exists(),
        "a refused run created modules/generated\nstderr:\n{}",
        run.stderr
    );
    run
}

/// The examples with `text` appended to `hosts/<host>.toml`.
fn with_appended(host: &str, text: &str) -> (Repo, String) {
    let r = Repo::examples();
    let file = format!("hosts/{host}.toml");
    let mut t = r.read(&file);
    t.push_str(text);
    r.write(&file, &t);
    (r, file)
}

/// A minimal valid operator catalog entry with `extra` lines.
/// (Entries carry the image contract every catalog entry has since issue 14.)
fn catalog_entry(name: &str, extra: &str) -> String {
    format!(
        "[{name}]\ndescription = \"x\"\nimage = \"example.org/x:1.0\"\narch = [\"x86_64\", \"aarch64\"]\nmemory = \"32MiB\"\nhealth = \"true\"\n{extra}\n[{name}.contract]\nbinaries = [\"sh\"]\nsource = \"unverified\"\n"
    )
}

// A sanity check that the harness can fail: the valid examples do write.
#[test]
fn the_valid_examples_are_generated() {
    let r = Repo::examples();
    std::fs::remove_dir_all(r.path().join("modules/generated")).unwrap();
    r.potato(&["gen"]).ok();
    assert!(r.path().join("modules/generated/n250").is_dir());
}

#[test]
fn catalog_env_key_with_shell_code_is_refused_at_the_key() {
    let r = Repo::examples();
    let file = "modules/catalog/evil.toml";
    r.write(
        file,
        &catalog_entry(
            "evil",
            "zone = \"backend\"\nenv = { \"X;id>/tmp/f;Y\" = \"1\" }",
        ),
    );
    let loc = at(&r, file, "\"X;id>/tmp/f;Y\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not an environment variable name");
}

#[test]
fn catalog_service_name_with_shell_code_is_refused() {
    let r = Repo::examples();
    let file = "modules/catalog/evil.toml";
    r.write(file, &catalog_entry("\"a;id\"", "zone = \"backend\""));
    let loc = at(&r, file, "\"a;id\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a valid service name");
}

#[test]
fn catalog_zone_must_be_a_container_zone() {
    let r = Repo::examples();
    let file = "modules/catalog/evil.toml";
    r.write(file, &catalog_entry("evil", "zone = \"dmz\""));
    let loc = at(&r, file, "\"dmz\"");
    gen_writes_nothing(&r).invalid_at(&loc, "unknown container zone `dmz`");
}

#[test]
fn catalog_volume_of_the_engine_socket_must_use_socket() {
    let r = Repo::examples();
    let file = "modules/catalog/evil.toml";
    r.write(
        file,
        &catalog_entry(
            "evil",
            "zone = \"backend\"\nwhy = \"trust me\"\nvolumes = [\"/run/podman/podman.sock:/sock\"]",
        ),
    );
    let loc = at(&r, file, "\"/run/podman/podman.sock:/sock\"");
    gen_writes_nothing(&r).invalid_at(&loc, "mounts the container engine socket");
}

#[test]
fn catalog_volume_over_the_socket_path_in_the_container_is_refused() {
    // modules/containers.nix turns podman's docker socket on for any volume
    // mounted at /var/run/docker.sock.
    let r = Repo::examples();
    let file = "modules/catalog/evil.toml";
    r.write(
        file,
        &catalog_entry(
            "evil",
            "zone = \"backend\"\nvolumes = [\"data:/var/run/docker.sock\"]",
        ),
    );
    let loc = at(&r, file, "\"data:/var/run/docker.sock\"");
    gen_writes_nothing(&r).invalid_at(&loc, "engine socket's path in the container");
}

/// Other spellings of a path ("/./etc", "//etc", "/etc/") are not normalised
/// into something acceptable: they are refused outright.
#[test]
fn catalog_volumes_spelled_uncleanly_are_refused() {
    for host in ["/./etc", "/etc/.", "//etc", "/etc/", "/var/run/../../etc"] {
        let r = Repo::examples();
        let file = "modules/catalog/evil.toml";
        let volume = format!("{host}:/host");
        r.write(
            file,
            &catalog_entry(
                "evil",
                &format!("zone = \"backend\"\nvolumes = [\"{volume}\"]"),
            ),
        );
        let loc = at(&r, file, &format!("\"{volume}\""));
        gen_writes_nothing(&r).invalid_at(&loc, "is not a clean absolute path");
    }
}

#[test]
fn catalog_volumes_of_host_control_trees_need_why() {
    for host in [
        "/etc",
        "/etc/ssh",
        "/root/.ssh",
        "/",
        "/run",
        "/var",
        "/proc",
        "/sys/fs",
        "/dev/mem",
    ] {
        let r = Repo::examples();
        let file = "modules/catalog/evil.toml";
        let volume = format!("{host}:/host");
        r.write(
            file,
            &catalog_entry(
                "evil",
                &format!("zone = \"backend\"\nvolumes = [\"data:/data\", \"{volume}\"]"),
            ),
        );
        let loc = at(&r, file, &format!("\"{volume}\""));
        gen_writes_nothing(&r).invalid_at(&loc, "without `why`");
    }
}

#[test]
fn catalog_volumes_with_why_or_of_plain_data_are_accepted() {
    let r = Repo::examples();
    r.write(
        "modules/catalog/ok.toml",
        &catalog_entry(
            "reader",
            "zone = \"backend\"\nvolumes = [\"/var/log:/logs:ro\", \"data:/data\"]",
        ),
    );
    r.potato(&["check"]).ok();
    r.write(
        "modules/catalog/ok.toml",
        &catalog_entry(
            "reader",
            "zone = \"backend\"\nwhy = \"reads host config\"\nvolumes = [\"/etc:/host/etc:ro\"]",
        ),
    );
    r.potato(&["check"]).ok();
}

#[test]
fn override_devices_need_why() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "why = \"hardware video transcoding on the iGPU\"\n",
        "",
    );
    let loc = at(&r, "hosts/n250.toml", "\"/dev/dri\"");
    gen_writes_nothing(&r).invalid_at(&loc, "passes a device into the container without `why`");
}

#[test]
fn override_device_outside_dev_is_refused() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "[\"/dev/dri\"]",
        "[\"/dev/../etc/shadow\"]",
    );
    let loc = at(&r, "hosts/n250.toml", "\"/dev/../etc/shadow\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a device path");
}

#[test]
fn operator_entry_replacing_a_builtin_is_shown_by_catalog_and_plan() {
    let r = Repo::examples();
    let builtin = r.potato(&["catalog"]);
    builtin.ok();
    assert!(!builtin.stdout.contains("replaces the built-in"));
    r.write(
        "modules/catalog/x.toml",
        &catalog_entry(
            "traefik",
            // n250's health check probes 443, so the replacement publishes it.
            "zone = \"proxy\"\nproxy = true\nweb = 8080\nports = [\"80:80/tcp\", \"443:443/tcp\"]",
        ),
    );
    let line = "traefik: operator entry modules/catalog/x.toml replaces the built-in";
    let cat = r.potato(&["catalog"]);
    cat.ok();
    assert!(cat.stdout.contains(line), "{}", cat.stdout);
    let plan = r.potato(&["plan", "n250"]);
    plan.ok();
    assert!(plan.stdout.contains(line), "{}", plan.stdout);
    // A host that does not run traefik is not told about it.
    let plan = r.potato(&["plan", "pve-gateway"]);
    plan.ok();
    assert!(!plan.stdout.contains("replaces the built-in"));
}

#[test]
fn env_key_in_an_override_is_refused_at_the_key() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "memory = \"2GiB\"\ndevices",
        "memory = \"2GiB\"\nenv = { \"A;id\" = \"1\" }\ndevices",
    );
    let loc = at(&r, "hosts/n250.toml", "\"A;id\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not an environment variable name");
}

#[test]
fn service_names_in_host_files_are_checked() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "services = [\"traefik\",",
        "services = [\"tr;aefik\",",
    );
    let loc = at(&r, "hosts/n250.toml", "\"tr;aefik\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a valid service name");
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "[containers.jellyfin]",
        "[containers.\"jelly fin\"]",
    );
    let loc = at(&r, "hosts/n250.toml", "\"jelly fin\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a valid service name");
}

#[test]
fn external_peer_name_with_a_newline_is_refused() {
    let (r, file) = with_appended(
        "pve-gateway",
        "\n[[wireguard.wg0.external_peers]]\nname = \"phone\\n[Interface]\\nPostUp = id\"\npublic_key = \"KAvvvZodlOnkhEvElyx3PJdozphdyEKIXCVG2XLO5D8=\"\nallowed_ips = [\"10.99.0.50/32\"]\n",
    );
    let loc = at(&r, &file, "\"phone\\n");
    gen_writes_nothing(&r).invalid_at(&loc, "control character U+000A (newline)");
}

#[test]
fn external_peer_name_must_be_one_word() {
    let (r, file) = with_appended(
        "pve-gateway",
        "\n[[wireguard.wg0.external_peers]]\nname = \"phone # PostUp = id\"\npublic_key = \"KAvvvZodlOnkhEvElyx3PJdozphdyEKIXCVG2XLO5D8=\"\nallowed_ips = [\"10.99.0.50/32\"]\n",
    );
    let loc = at(&r, &file, "\"phone # PostUp = id\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a valid peer name");
}

#[test]
fn wireguard_peer_host_names_are_checked() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "peers = [\"pve-gateway\"]",
        "peers = [\"pve-gateway;id\"]",
    );
    let loc = at(&r, "hosts/n250.toml", "\"pve-gateway;id\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a valid host name");
}

#[test]
fn zone_names_are_checked_at_the_key() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "wg = [\"10.99.0.0/24\"]",
        "any = [\"10.99.0.0/24\"]",
    );
    let (l, c) = line_col(&r.read("hosts/n250.toml"), "any = [");
    gen_writes_nothing(&r).invalid_at(
        &format!("hosts/n250.toml:{l}:{c}"),
        "`any` cannot be a zone name",
    );
}

#[test]
fn mount_point_with_a_space_or_newline_is_refused() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "mounts.\"/mnt/ssd\"",
        "mounts.\"/mnt/ssd /etc/x\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"/mnt/ssd /etc/x\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a clean absolute path");
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "mounts.\"/mnt/ssd\"",
        "mounts.\"/mnt/ssd\\nL+ /etc/x - - - - /tmp\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"/mnt/ssd\\nL+");
    gen_writes_nothing(&r).invalid_at(&loc, "control character U+000A (newline)");
}

#[test]
fn container_data_paths_are_clean() {
    for bad in [
        "/mnt/ssd/app data",
        "/mnt/ssd/../etc",
        "/mnt/ssd/",
        "mnt/ssd",
        "/mnt/%h",
    ] {
        let r = Repo::examples();
        r.edit(
            "hosts/n250.toml",
            "data = \"/mnt/ssd/appdata\"",
            &format!("data = \"{bad}\""),
        );
        let loc = at(&r, "hosts/n250.toml", &format!("\"{bad}\""));
        gen_writes_nothing(&r).invalid_at(&loc, "is not a clean absolute path");
    }
}

#[test]
fn nul_in_boot_disk_is_an_error_at_its_position_not_a_panic() {
    let r = Repo::examples();
    r.edit(
        "hosts/n250.toml",
        "S64DNX0R123456\"",
        "S64DNX0R123456\\u0000\"",
    );
    let loc = at(&r, "hosts/n250.toml", "\"/dev/disk/by-id/nvme-");
    gen_writes_nothing(&r).invalid_at(&loc, "control character U+0000 (NUL)");
}

#[test]
fn nul_anywhere_is_blamed_on_the_host_file() {
    let r = Repo::examples();
    r.edit(
        "hosts/lepotato.toml",
        "tags = [\"home\", \"edge-light\"]",
        "tags = [\"home\", \"edge\\u0000light\"]",
    );
    let loc = at(&r, "hosts/lepotato.toml", "\"edge\\u0000light\"");
    let run = gen_writes_nothing(&r);
    run.invalid_at(&loc, "control character U+0000 (NUL)");
    assert!(!run.stderr.contains("template"), "{}", run.stderr);
}

#[test]
fn authorized_key_with_a_second_line_is_refused() {
    let r = Repo::examples();
    r.edit(
        "hosts/lepotato.toml",
        "admin@laptop\"]",
        "admin@laptop\\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOAS0kd7pdbutLZuFItHOmgaUZkdw0teJVxtnTPk19e6 evil\"]",
    );
    let loc = at(
        &r,
        "hosts/lepotato.toml",
        "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKX",
    );
    gen_writes_nothing(&r).invalid_at(&loc, "control character U+000A (newline)");
}

#[test]
fn authorized_key_blob_must_match_its_type() {
    let r = Repo::examples();
    // An RSA-looking type in front of an ed25519 blob.
    r.edit(
        "hosts/lepotato.toml",
        "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKX",
        "[\"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIMKX",
    );
    let loc = at(&r, "hosts/lepotato.toml", "\"ssh-rsa AAAA");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a `ssh-rsa` key");
    let r = Repo::examples();
    r.edit(
        "hosts/lepotato.toml",
        "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKX",
        "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA!MKX",
    );
    let loc = at(
        &r,
        "hosts/lepotato.toml",
        "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA!",
    );
    gen_writes_nothing(&r).invalid_at(&loc, "base64");
}

#[test]
fn health_unit_cannot_be_a_systemctl_option() {
    for bad in ["-H root@evil", "--host=evil.service", "traefik"] {
        let r = Repo::examples();
        r.edit(
            "hosts/lepotato.toml",
            "unit = \"podman-traefik.service\"",
            &format!("unit = \"{bad}\""),
        );
        let (l, c) = line_col(&r.read("hosts/lepotato.toml"), &format!("unit = \"{bad}\""));
        let loc = format!("hosts/lepotato.toml:{l}:{}", c + "unit = ".len());
        let why = if bad.starts_with('-') {
            "starts with '-': systemctl would read it as an option"
        } else {
            "is not a systemd unit name"
        };
        gen_writes_nothing(&r).invalid_at(&loc, why);
    }
}

#[test]
fn secret_table_names_are_checked() {
    let (r, file) = with_appended("lepotato", "\n[secrets.\"../../x\"]\nmode = \"0400\"\n");
    let loc = at(&r, &file, "\"../../x\"");
    gen_writes_nothing(&r).invalid_at(&loc, "is not a valid secret name");
}

#[test]
fn secret_modes_outside_the_allowed_set_are_refused() {
    for (mode, message) in [
        ("4750", "sets the setuid, setgid or sticky bit"),
        ("1640", "sets the setuid, setgid or sticky bit"),
        ("0644", "lets every user on the host read"),
        ("0240", "does not let the owner read"),
        ("0700", "is not a mode for a secret"),
        ("u+r", "is not an octal file mode"),
    ] {
        let (r, file) = with_appended("lepotato", &format!("\n[secrets.wg0]\nmode = \"{mode}\"\n"));
        let loc = at(&r, &file, &format!("\"{mode}\""));
        gen_writes_nothing(&r).invalid_at(&loc, message);
    }
    for mode in ["0400", "0440", "0600", "0640", "640"] {
        let (r, _) = with_appended("lepotato", &format!("\n[secrets.wg0]\nmode = \"{mode}\"\n"));
        r.potato(&["check"]).ok();
    }
}

#[test]
fn proxmox_ids_that_would_change_api_paths_or_options_are_refused() {
    for (from, to, message) in [
        (
            "node = \"pve\"",
            "node = \"pve/../../access\"",
            "is not a Proxmox node name",
        ),
        (
            "bridge = \"vmbr0\"",
            "bridge = \"vmbr0,firewall=0\"",
            "is not a Proxmox bridge name",
        ),
        (
            "cores = 2",
            "cores = 2\ndisk_storage = \"local;x\"",
            "is not a Proxmox storage id",
        ),
        (
            "cores = 2",
            "cores = 2\nimage_storage = \"a/b\"",
            "is not a Proxmox storage id",
        ),
    ] {
        let r = Repo::examples();
        r.edit("hosts/pve-apps.toml", from, to);
        let value = to.rsplit_once(" = ").unwrap().1;
        let loc = at(&r, "hosts/pve-apps.toml", value);
        gen_writes_nothing(&r).invalid_at(&loc, message);
    }
}

#[test]
fn proxmox_api_is_https_host_and_port_only() {
    for (bad, message) in [
        ("http://192.168.100.2:8006", "is not an https URL"),
        ("https://me@evil.example", "more than a host and port"),
        (
            "https://192.168.100.2:8006/x?y",
            "more than a host and port",
        ),
        ("https://evil example", "is not a host name or address"),
    ] {
        let r = Repo::examples();
        r.edit(
            "hosts/pve-apps.toml",
            "api = \"https://192.168.100.2:8006\"",
            &format!("api = \"{bad}\""),
        );
        let loc = at(&r, "hosts/pve-apps.toml", &format!("\"{bad}\""));
        gen_writes_nothing(&r).invalid_at(&loc, message);
    }
}

#[test]
fn one_host_file_cannot_send_the_shared_token_elsewhere() {
    let r = Repo::examples();
    r.edit(
        "hosts/pve-gateway.toml",
        "api = \"https://192.168.100.2:8006\"",
        "api = \"https://pve.attacker.example:8006\"",
    );
    let loc = at(
        &r,
        "hosts/pve-gateway.toml",
        "\"https://pve.attacker.example:8006\"",
    );
    let run = gen_writes_nothing(&r);
    run.invalid_at(&loc, "the Proxmox token `proxmox-token` would be sent to");
    let other = at(&r, "hosts/pve-apps.toml", "\"https://192.168.100.2:8006\"");
    assert!(run.stderr.contains(&other), "{}", run.stderr);
}

#[test]
fn fstab_words_cannot_split_or_add_fields() {
    for (from, to, needle, message) in [
        (
            "mounts.\"/mnt/ssd\" = { device = \"/dev/disk/by-label/ssd\", fs = \"ext4\" }",
            "mounts.\"/mnt/ssd\" = { device = \"/dev/disk/by-label/ssd\", fs = \"ext4\", options = [\"noatime\", \"ro 0 0 #\"] }",
            "\"ro 0 0 #\"",
            "is not a mount option",
        ),
        (
            "device = \"/dev/disk/by-label/ssd\"",
            "device = \"LABEL=ssd /etc\"",
            "\"LABEL=ssd /etc\"",
            "is not addressed by label or UUID",
        ),
    ] {
        let r = Repo::examples();
        r.edit("hosts/n250.toml", from, to);
        let loc = at(&r, "hosts/n250.toml", needle);
        gen_writes_nothing(&r).invalid_at(&loc, message);
    }
}

#[test]
fn catalog_depends_and_devices_are_typed() {
    for (extra, needle, message) in [
        (
            "zone = \"backend\"\ndepends = [\"redis\", \"a b\"]",
            "\"a b\"",
            "is not a valid service name",
        ),
        (
            "zone = \"backend\"\nwhy = \"x\"\ndevices = [\"/dev/../etc\"]",
            "\"/dev/../etc\"",
            "is not a device path",
        ),
        (
            "zone = \"backend\"\nwhy = \"x\"\ncaps = [\"ALL --privileged\"]",
            "\"ALL --privileged\"",
            "is not a capability name",
        ),
        (
            "zone = \"backend\"\nenv = { A = \"secret:../x\" }",
            "\"secret:../x\"",
            "is not a valid secret name",
        ),
    ] {
        let r = Repo::examples();
        let file = "modules/catalog/evil.toml";
        r.write(file, &catalog_entry("evil", extra));
        let loc = at(&r, file, needle);
        gen_writes_nothing(&r).invalid_at(&loc, message);
    }
}
