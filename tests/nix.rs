//! Real Nix (Debian's nix-bin): every .nix parses, the flake evaluates offline with
//! the nixpkgs test double, hosts are discovered, and no string potato writes can
//! break out of its Nix literal (property test evaluated by nix-instantiate).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Repo, have_tool, source_root};
use potato::render::nix;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

fn nix_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            nix_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    if !have_tool("nix-instantiate") {
        return;
    }
    let root = source_root();
    let mut files = vec![
        root.join("flake.nix"),
        root.join("tests/fixtures/nixpkgs/flake.nix"),
    ];
    nix_files(&root.join("modules"), &mut files);
    assert!(
        files.len() >= 9,
        "expected base, 3 hardware, 4 generated, flake: {files:?}"
    );
    for f in files {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `nix eval` against a copy of the repo, with nixpkgs replaced by the test double.
fn flake_eval(repo: &Path, attr: &str, apply: Option<&str>) -> Result<String, String> {
    let fixture = repo.join("nixpkgs-double");
    if !fixture.exists() {
        std::fs::create_dir_all(&fixture).unwrap();
        for f in ["flake.nix", "switch-to-configuration.sh", "kexec.sh"] {
            std::fs::copy(
                source_root().join("tests/fixtures/nixpkgs").join(f),
                fixture.join(f),
            )
            .unwrap();
        }
    }
    let mut cmd = Command::new("nix");
    cmd.args([
        "--extra-experimental-features",
        "nix-command flakes",
        "eval",
        "--json",
        "--option",
        "substituters",
        "",
    ])
    .arg(format!("path:{}#{attr}", repo.display()))
    .args(["--override-input", "nixpkgs"])
    .arg(format!("path:{}", fixture.display()));
    if let Some(a) = apply {
        cmd.args(["--apply", a]);
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn flake_discovers_every_host_file() {
    if !have_tool("nix") {
        return;
    }
    let r = Repo::examples();
    let lock_before = r.read("flake.lock");
    let names = flake_eval(r.path(), "nixosConfigurations", Some("builtins.attrNames")).unwrap();
    assert_eq!(names, r#"["lepotato","n250","pve-apps","pve-gateway"]"#);
    assert_eq!(
        r.read("flake.lock"),
        lock_before,
        "evaluation must not rewrite flake.lock"
    );

    // A host imports base.nix and its generated module; and the hardware.nix
    // `potato bootstrap` detects, once there is one.
    let files = |r: &Repo| {
        flake_eval(
            r.path(),
            "nixosConfigurations.n250.config.potatoModuleFiles",
            None,
        )
        .unwrap()
    };
    assert_eq!(files(&r), r#"["base.nix","n250"]"#);
    r.write(
        "hosts/n250/hardware.nix",
        "{ lib, ... }: { nixpkgs.hostPlatform = lib.mkDefault \"x86_64-linux\"; }\n",
    );
    assert_eq!(files(&r), r#"["base.nix","n250","hardware.nix"]"#);
    std::fs::remove_dir_all(r.path().join("hosts/n250")).unwrap();

    // A new host file is a new configuration, with no edit to flake.nix.
    let mut text = r.read("hosts/pve-apps.toml");
    for (a, b) in [
        ("192.168.100.21", "192.168.100.22"),
        ("vmid = 111", "vmid = 112"),
        ("10.99.0.12/24", "10.99.0.13/24"),
        // One identity host per fleet: the copy signs in at pve-apps.
        ("[roles]\nidentity = true", ""),
        ("\"authentik\", \"authentik-worker\", ", ""),
    ] {
        text = text.replace(a, b);
    }
    r.write("hosts/pve-extra.toml", &text);
    // The new host gets copies of pve-apps's secrets (wg0 and its containers'),
    // and decrypts them with (for this test) pve-apps's host key.
    std::fs::create_dir_all(r.path().join("secrets/pve-extra")).unwrap();
    for e in std::fs::read_dir(r.path().join("secrets/pve-apps")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(
            &p,
            r.path()
                .join("secrets/pve-extra")
                .join(p.file_name().unwrap()),
        )
        .unwrap();
    }
    let recipients = r.read("secrets/recipients.toml");
    let apps_key = recipients
        .lines()
        .find(|l| l.starts_with("pve-apps = "))
        .unwrap()
        .replace("pve-apps = ", "pve-extra = ");
    r.write(
        "secrets/recipients.toml",
        &format!("{recipients}{apps_key}\n"),
    );
    let names = flake_eval(r.path(), "nixosConfigurations", Some("builtins.attrNames")).unwrap();
    assert_eq!(
        names,
        r#"["lepotato","n250","pve-apps","pve-extra","pve-gateway"]"#
    );
    let toplevel = "nixosConfigurations.pve-extra.config.system.build.toplevel.outPath";
    let err = flake_eval(r.path(), toplevel, None).unwrap_err();
    assert!(
        err.contains("host pve-extra has no modules/generated/pve-extra/; run `potato gen`"),
        "an ungenerated host names the fix: {err}"
    );
    r.potato(&["gen"]).ok();
    assert!(
        flake_eval(r.path(), toplevel, None)
            .unwrap()
            .contains("nixos-system-pve-extra")
    );

    // Other outputs exist for both systems.
    for out in ["packages", "apps", "devShells", "formatter", "checks"] {
        let systems = flake_eval(r.path(), out, Some("builtins.attrNames")).unwrap();
        assert_eq!(systems, r#"["aarch64-linux","x86_64-linux"]"#, "{out}");
    }
    let checks = flake_eval(r.path(), "checks.x86_64-linux", Some("builtins.attrNames")).unwrap();
    assert_eq!(checks, r#"["gen","tests"]"#);
    let meta = flake_eval(r.path(), "potatoHosts.n250.target", None).unwrap();
    assert_eq!(meta, r#""root@192.168.178.40""#);
}

#[test]
fn toplevel_builds_from_the_generated_files() {
    if !have_tool("nix") {
        return;
    }
    let r = Repo::examples();
    let drv = flake_eval(
        r.path(),
        "nixosConfigurations.lepotato.config.system.build.toplevel.outPath",
        None,
    )
    .unwrap();
    let out_path = drv.trim_matches('"').to_string();
    let status = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "build",
            "--no-link",
            "--option",
            "substituters",
            "",
        ])
        .arg(format!(
            "path:{}#nixosConfigurations.lepotato.config.system.build.toplevel",
            r.path().display()
        ))
        .args(["--override-input", "nixpkgs"])
        .arg(format!(
            "path:{}",
            r.path().join("nixpkgs-double").display()
        ))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let built =
        std::fs::read_to_string(Path::new(&out_path).join("etc/potato/firewall.nft")).unwrap();
    assert_eq!(
        built,
        r.read("modules/generated/lepotato/firewall.nft"),
        "the toplevel carries the generated bytes"
    );
}

/// Evaluates a Nix expression strictly to JSON.
fn nix_eval_json(expr: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.nix");
    std::fs::write(&file, expr).unwrap();
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix rejected generated text:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        expr.chars().take(2000).collect::<String>()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn adversarial_string() -> impl Strategy<Value = String> {
    let special = prop_oneof![
        Just('$'),
        Just('{'),
        Just('}'),
        Just('\\'),
        Just('"'),
        Just('\''),
        Just('`'),
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just('\u{1}'),
        Just('\u{7f}'),
        Just('é'),
        Just('💥'),
        any::<char>().prop_filter("no NUL", |c| *c != '\0'),
    ];
    prop::collection::vec(special, 0..24).prop_map(|cs| cs.into_iter().collect())
}

#[test]
fn escaped_strings_read_back_exactly() {
    if !have_tool("nix-instantiate") {
        return;
    }
    // 2,000 adversarial strings in one list and one attrset, one Nix evaluation each:
    // every value must come back byte for byte, so nothing was interpolated or cut.
    let mut runner = TestRunner::new(Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x907a70),
        ..Config::default()
    });
    let strategy = adversarial_string();
    let mut values: Vec<String> = [
        "${builtins.currentSystem}",
        "$${x}",
        "''${x}",
        "\\${x}",
        "a\"; b = \"",
        "''",
        "'''",
        "\\",
        "$",
        "}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    while values.len() < 2000 {
        values.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    let list = serde_json::Value::Array(
        values
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    );
    let back = nix_eval_json(&nix::literal(&list, 0).unwrap());
    assert_eq!(back, list);

    let mut attrs = serde_json::Map::new();
    for (i, v) in values.iter().enumerate() {
        attrs.insert(v.clone(), serde_json::Value::from(i));
    }
    let attrs = serde_json::Value::Object(attrs);
    let back = nix_eval_json(&nix::literal(&attrs, 0).unwrap());
    assert_eq!(back, attrs, "attribute names read back exactly");
}

#[test]
fn nul_is_refused_not_truncated() {
    assert!(nix::string("a\0b").is_err());
    assert!(nix::literal(&serde_json::json!({"a\0": 1}), 0).is_err());
}

#[test]
fn hostile_host_data_renders_as_data() {
    if !have_tool("nix-instantiate") {
        return;
    }
    let r = Repo::examples();
    let hostile = r#"admin"; security.sudo.enable = false; x = "${builtins.currentSystem}'' \${y}"#;
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp admin@laptop";
    let escaped_for_toml = hostile.replace('\\', "\\\\").replace('"', "\\\"");
    r.edit("hosts/n250.toml", &format!("authorized_keys = [\"{key}\"]"), &format!("authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp {escaped_for_toml}\"]"));
    r.potato(&["gen"]).ok();
    let file = r.path().join("modules/generated/n250/default.nix");
    let expr = format!(
        "(import {} {{ lib = {{ }}; pkgs = {{ }}; }}).users.users.root.openssh.authorizedKeys.keys",
        file.display()
    );
    let v = nix_eval_json(&expr);
    assert_eq!(
        v[0],
        format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp {hostile}"
        )
    );
    let keys = nix_eval_json(&format!(
        "builtins.attrNames (import {} {{ lib = {{ }}; pkgs = {{ }}; }})",
        file.display()
    ));
    assert!(
        !keys.to_string().contains("security"),
        "no attribute was injected: {keys}"
    );
}

#[test]
fn serve_stream_adds_a_closure_to_a_real_store() {
    if !have_tool("nix-store") {
        return;
    }
    // A small real closure: a file, an executable script, a symlink, a directory
    // tree, and a path that references another.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tree");
    std::fs::create_dir_all(src.join("sub/B")).unwrap();
    std::fs::write(src.join("a.txt"), "hello\n").unwrap();
    std::fs::write(src.join("sub/B/x"), vec![7u8; 100_000]).unwrap();
    std::fs::write(src.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(src.join("run.sh"))
        .status()
        .unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let add = |p: &Path| {
        String::from_utf8(
            Command::new("nix-store")
                .arg("--add")
                .arg(p)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string()
    };
    let dep = add(&src);
    let expr = dir.path().join("ref.nix");
    std::fs::write(&expr, format!("derivation {{ name = \"refers\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo ${{builtins.storePath \"{dep}\"}} > $out\" ]; }}")).unwrap();
    let out = Command::new("nix-build")
        .args(["--no-out-link", "--option", "substituters", ""])
        .arg(&expr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let closure = potato::nix::closure(&potato::nix::StorePath::parse(&top).unwrap()).unwrap();
    assert_eq!(closure.len(), 2);
    assert_eq!(closure[0].path.as_str(), dep, "dependencies first");

    // The NARs potato sends are Nix's NARs, byte for byte.
    for info in &closure {
        let mut ours = Vec::new();
        std::io::Read::read_to_end(
            &mut nix_nar::Encoder::new(info.path.as_str()).unwrap(),
            &mut ours,
        )
        .unwrap();
        let theirs = Command::new("nix-store")
            .args(["--dump", info.path.as_str()])
            .output()
            .unwrap()
            .stdout;
        assert!(
            ours == theirs,
            "NAR of {} differs from nix-store --dump",
            info.path
        );
        assert_eq!(ours.len() as u64, info.nar_size);
    }

    // A real `nix-store --serve --write` accepts the stream into an empty store,
    // confirms each path, and the paths verify there.
    let store = tempfile::tempdir().unwrap();
    let mut serve = Command::new("nix-store")
        .args(["--serve", "--write", "--store"])
        .arg(store.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = potato::nix::transfer::ServeStream::new(closure.clone());
    std::io::copy(&mut stream, serve.stdin.as_mut().unwrap()).unwrap();
    drop(serve.stdin.take());
    let done = serve.wait_with_output().unwrap();
    assert!(done.status.success());
    potato::nix::transfer::check_serve_replies(&done.stdout, 2).unwrap();
    let verify = Command::new("nix-store")
        .args(["--verify-path", "--store"])
        .arg(store.path())
        .arg(&top)
        .arg(&dep)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let refs = Command::new("nix-store")
        .args(["-q", "--references", "--store"])
        .arg(store.path())
        .arg(&top)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&refs.stdout).trim(),
        dep,
        "references registered"
    );
}

/// modules/containers.nix evaluated by real Nix on n250's generated spec, with
/// a TEST DOUBLE for nixpkgs' `lib`, `pkgs` and `config` (only the few
/// functions the module uses, written with builtins): the spec maps onto
/// oci-containers, network units and the postgres-init unit as intended.
#[test]
fn containers_module_maps_the_spec_onto_nixos_options() {
    if !have_tool("nix-instantiate") {
        return;
    }
    let root = source_root();
    let expr = format!(
        r#"
let
  lib = rec {{
    mapAttrs = builtins.mapAttrs;
    nameValuePair = name: value: {{ inherit name value; }};
    mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${{n}}) (builtins.attrNames set));
    any = builtins.any;
    attrValues = builtins.attrValues;
    hasInfix = infix: s: builtins.length (builtins.split (builtins.replaceStrings ["." "/"] ["[.]" "[/]"] infix) s) > 1;
    optionalAttrs = cond: set: if cond then set else {{ }};
    mkDefault = v: v;
    mkIf = cond: v: if cond then v else null;
    mkBefore = v: v;
    concatMapStringsSep = sep: f: l: builtins.concatStringsSep sep (map f l);
    escapeShellArg = s: "'" + builtins.replaceStrings ["'"] ["'\\''"] s + "'";
  }};
  pkgs = {{ podman = "/nix/store/podman"; runtimeShell = "/bin/sh"; coreutils = "coreutils"; gnused = "gnused"; systemd = "/nix/store/systemd"; }};
  config = {{ virtualisation.docker.package = "/nix/store/docker"; }};
  dir = {dir};
  module = import {module} {{ spec = builtins.fromJSON (builtins.readFile (dir + "/containers.json")); inherit dir; }};
  m = module {{ inherit lib pkgs config; }};
  units = m.systemd.services;
  # pve-apps: the identity host, with authentik and its postgres.
  appsDir = {apps};
  apps = (import {module} {{ spec = builtins.fromJSON (builtins.readFile (appsDir + "/containers.json")); dir = appsDir; }}) {{ inherit lib pkgs config; }};
  appUnits = apps.systemd.services;
in {{
  backend = m.virtualisation.oci-containers.backend;
  socket = m.virtualisation.podman.dockerSocket.enable;
  traefikImage = m.virtualisation.oci-containers.containers.traefik.image;
  traefikPorts = m.virtualisation.oci-containers.containers.traefik.ports;
  postgresEnvFiles = apps.virtualisation.oci-containers.containers.postgres.environmentFiles;
  authentikAfter = appUnits.podman-authentik.after;
  qbtBindsTo = units.podman-qbittorrent.bindsTo;
  networkScript = units.podman-network-potato-backend.script;
  proxyNetworkScript = units.podman-network-potato-proxy.script;
  initAfter = appUnits.potato-postgres-init.after;
  initScript = appUnits.potato-postgres-init.script;
  traefikMounts = units.podman-traefik.unitConfig.RequiresMountsFor;
  traefikPreStart = units.podman-traefik.preStart;
  noTmpfilesAtBoot = !(m ? systemd.tmpfiles);
}}
"#,
        dir = root.join("modules/generated/n250").display(),
        apps = root.join("modules/generated/pve-apps").display(),
        module = root.join("modules/containers.nix").display()
    );
    let v = nix_eval_json(&expr);
    assert_eq!(v["backend"], "podman");
    // Traefik reads its generated files; nothing on n250 declares the socket.
    assert_eq!(
        v["socket"], false,
        "no service of n250 declares the engine socket"
    );
    assert_eq!(v["traefikImage"], "docker.io/library/traefik:v3.4.1");
    assert_eq!(
        v["traefikPorts"],
        serde_json::json!(["80:80/tcp", "443:443/tcp"])
    );
    assert_eq!(
        v["postgresEnvFiles"],
        serde_json::json!(["/run/potato-secrets/env/postgres.env"])
    );
    assert_eq!(
        v["authentikAfter"],
        serde_json::json!([
            "podman-network-potato-proxy.service",
            "podman-network-potato-backend.service"
        ])
    );
    assert_eq!(
        v["qbtBindsTo"],
        serde_json::json!(["podman-gluetun.service"])
    );
    assert_eq!(
        v["networkScript"],
        "/nix/store/podman/bin/podman network inspect potato-backend >/dev/null 2>&1 || /nix/store/podman/bin/podman network create --subnet=10.89.2.0/24 potato-backend"
    );
    // The proxy network hands out only its lower half, so Traefik's fixed
    // address (10.89.1.254) is never given to another container first.
    assert_eq!(
        v["proxyNetworkScript"],
        "/nix/store/podman/bin/podman network inspect potato-proxy >/dev/null 2>&1 || /nix/store/podman/bin/podman network create --subnet=10.89.1.0/24 --ip-range=10.89.1.0/25 potato-proxy"
    );
    assert_eq!(
        v["initAfter"],
        serde_json::json!(["podman-postgres.service"])
    );
    let init = v["initScript"].as_str().unwrap();
    assert!(
        init.starts_with("/bin/sh /nix/store/") || init.starts_with("/bin/sh /"),
        "{init}"
    );
    assert!(
        init.ends_with("postgres-init.sh /nix/store/podman/bin/podman"),
        "{init}"
    );
    // traefik's certs live on n250's /mnt/ssd (a nofail data disk): the unit
    // requires that mount, and creates its paths (the access log directory
    // among them) with the generated rules before it starts, not at boot
    // (when the disk may not be mounted yet).
    assert_eq!(
        v["traefikMounts"],
        serde_json::json!(["/mnt/ssd/appdata/traefik/certs"])
    );
    let pre = v["traefikPreStart"].as_str().unwrap();
    assert!(
        pre.starts_with("/nix/store/systemd/bin/systemd-tmpfiles --create '--prefix=/mnt/ssd/appdata/traefik/certs' '--prefix=/var/log/traefik' /"),
        "{pre}"
    );
    assert!(
        pre.trim_end().ends_with("-containers-tmpfiles.conf")
            || pre.trim_end().ends_with("/containers-tmpfiles.conf"),
        "{pre}"
    );
    assert_eq!(v["noTmpfilesAtBoot"], true);
}

/// Every host has images in the flake, of the kinds its hardware gets (the
/// flake's list and potato's agree), and `potato image` builds them with the
/// nixpkgs double (whose image derivations name the kind and the toplevel).
#[test]
fn every_host_has_images_and_potato_image_builds_them() {
    if !have_tool("nix") {
        return;
    }
    let r = Repo::examples();
    let kinds = flake_eval(
        r.path(),
        "images",
        Some("i: builtins.mapAttrs (h: k: k.potatoKinds) i"),
    )
    .unwrap();
    // Written from the hardware profiles: lepotato an SD card, n250 a raw EFI
    // disk, an installer ISO and the kexec installer, the Proxmox VMs qcow2 and vma.
    assert_eq!(
        kinds,
        r#"{"lepotato":["sd"],"n250":["raw-efi","iso","kexec"],"pve-apps":["qcow2","vma"],"pve-gateway":["qcow2","vma"]}"#
    );
    // Every listed kind is an attribute of images.<host>, and images.<host>
    // itself is the first kind: `nix build .#images.lepotato` builds the card.
    let check = flake_eval(
        r.path(),
        "images",
        Some("i: builtins.mapAttrs (h: k: builtins.all (kind: k ? ${kind}) k.potatoKinds && k.drvPath == k.${builtins.head k.potatoKinds}.drvPath) i"),
    )
    .unwrap();
    assert_eq!(
        check,
        r#"{"lepotato":true,"n250":true,"pve-apps":true,"pve-gateway":true}"#
    );
    let out = r.path().join("images-out");
    let double = r.path().join("nixpkgs-double");
    let run = r.potato(&[
        "image",
        "lepotato",
        "--out",
        out.to_str().unwrap(),
        "--override-input",
        "nixpkgs",
        double.to_str().unwrap(),
        "--json",
    ]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["images"][0]["kind"], "sd");
    let copied = out.join("lepotato-sd-nixos-lepotato.img");
    let text = std::fs::read_to_string(&copied).unwrap();
    assert!(
        text.contains("kind=sd host=lepotato toplevel=/nix/store/"),
        "{text}"
    );
    assert!(!std::fs::metadata(&copied).unwrap().permissions().readonly());
    // The kexec installer is a tree: kernel, initrd, command line, kexec, and
    // the launcher, which is modules/images/kexec-run.sh itself.
    let run = r.potato(&[
        "image",
        "n250",
        "--kind",
        "kexec",
        "--override-input",
        "nixpkgs",
        double.to_str().unwrap(),
        "--json",
    ]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let files: Vec<String> = v["images"][0]["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|f| f.as_str().unwrap().rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        files,
        ["cmdline", "initrd", "kernel", "kexec", "run"],
        "{v}"
    );
    let run_file = v["images"][0]["files"][4].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(run_file).unwrap(),
        std::fs::read_to_string(common::source_root().join("modules/images/kexec-run.sh")).unwrap()
    );
    // A kind the host does not have is a usage error naming the ones it has.
    let run = r.potato(&["image", "lepotato", "--kind", "vma"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("its images are: sd"), "{}", run.stderr);
    // With a pre-generated host key, copied disk images get it; the double's
    // "image" is text, not a disk, which is a clear error (the real key
    // installation is tested on real images in src/image_key.rs and
    // tests/flash.rs).
    r.potato_as_admin(&["secrets", "hostkey", "lepotato", "--force"])
        .ok();
    r.potato_as_admin(&["gen"]).ok();
    let run = r.potato_as_admin(&[
        "image",
        "lepotato",
        "--out",
        out.to_str().unwrap(),
        "--override-input",
        "nixpkgs",
        double.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no ext4 root partition in its partition table"),
        "{}",
        run.stderr
    );
}

/// disko.nix evaluates with real Nix and partitions exactly the host file's boot
/// disk (n250's by-id path); hosts without a boot disk get none.
#[test]
fn disko_layout_names_exactly_the_boot_disk() {
    if !have_tool("nix-instantiate") {
        return;
    }
    let root = source_root();
    let v = nix_eval_json(&format!(
        "let d = import {}; in {{ disks = builtins.attrNames d.disko.devices.disk; device = d.disko.devices.disk.boot.device; parts = builtins.attrNames d.disko.devices.disk.boot.content.partitions; }}",
        root.join("modules/generated/n250/disko.nix").display()
    ));
    let host = std::fs::read_to_string(root.join("hosts/n250.toml")).unwrap();
    let boot = host
        .lines()
        .find_map(|l| l.strip_prefix("boot_disk = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(v["disks"], serde_json::json!(["boot"]));
    assert_eq!(v["device"], boot);
    assert_eq!(v["parts"], serde_json::json!(["ESP", "root"]));
    // No other device is named outside comments.
    let text = std::fs::read_to_string(root.join("modules/generated/n250/disko.nix")).unwrap();
    let named: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("/dev/"))
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    for h in ["lepotato", "pve-apps", "pve-gateway"] {
        assert!(
            !root
                .join(format!("modules/generated/{h}/disko.nix"))
                .exists(),
            "{h}"
        );
    }
}

/// `nix build` of `packages.x86_64-linux.potato` against a copy of the repo with
/// its sources, nixpkgs replaced by the double (whose buildRustPackage checks
/// what the real builder needs: see tests/fixtures/nixpkgs/flake.nix).
fn build_potato_package(r: &Repo) -> Result<String, String> {
    // flake_eval puts the nixpkgs double into the repo copy on first use.
    flake_eval(r.path(), "nixosConfigurations", Some("builtins.attrNames"))?;
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "build",
            "--no-link",
            "--json",
        ])
        .arg(format!(
            "path:{}#packages.x86_64-linux.potato",
            r.path().display()
        ))
        .args(["--override-input", "nixpkgs"])
        .arg(format!(
            "path:{}",
            r.path().join("nixpkgs-double").display()
        ))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn potato_package_links_nixpkgs_openssl() {
    if !have_tool("nix") {
        return;
    }
    let r = Repo::examples();
    common::copy(
        &source_root().join("Cargo.lock"),
        &r.path().join("Cargo.lock"),
    );
    common::copy(&source_root().join("src"), &r.path().join("src"));
    // The crate asks for a vendored OpenSSL (so Debian needs no libssl-dev) ...
    assert!(r.read("Cargo.toml").contains("vendored-openssl"));
    // ... and the flake's derivation builds: nixpkgs' OpenSSL through pkg-config.
    let built = build_potato_package(&r).unwrap_or_else(|e| panic!("{e}"));
    let out: serde_json::Value = serde_json::from_str(&built).unwrap();
    let bin = Path::new(out[0]["outputs"]["out"].as_str().unwrap()).join("bin/potato");
    let said = Command::new(&bin).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        "TEST DOUBLE of potato (OPENSSL_NO_VENDOR=1)"
    );

    // Without OPENSSL_NO_VENDOR the build needs perl and make, which the
    // derivation does not give it: the double fails as the real build did.
    r.edit("flake.nix", "env.OPENSSL_NO_VENDOR = \"1\";", "");
    let err = build_potato_package(&r).unwrap_err();
    assert!(
        err.contains("openssl-src: building OpenSSL needs perl and make"),
        "{err}"
    );
}
