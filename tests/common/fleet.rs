//! A throwaway fleet repository whose hosts are testbed hosts: the real flake.nix
//! and modules, host files pointing at 10.213.<slot>.2, and a copy of the nixpkgs
//! test double that tests steer through its behaviour.nix.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::testbed::{TestHost, Testbed};
use super::{Run, source_root};

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    /// The fleet admin's age identity (decrypts every secret).
    pub admin_identity: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

impl Fleet {
    /// One host file per testbed host (named t0, t1, ...), generated and ready.
    pub fn new(tb: &Testbed) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let root = source_root();
        for f in ["flake.nix", "flake.lock"] {
            std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
        }
        for d in ["modules/hardware", "modules/images"] {
            copy_dir(&root.join(d), &dir.path().join(d));
        }
        std::fs::copy(
            root.join("modules/base.nix"),
            dir.path().join("modules/base.nix"),
        )
        .unwrap();
        copy_dir(
            &root.join("tests/fixtures/nixpkgs"),
            &dir.path().join("nixpkgs-double"),
        );
        std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        // An admin age identity, and every testbed host's SSH host key, as recipients.
        use age::secrecy::ExposeSecret;
        let admin = age::x25519::Identity::generate();
        let admin_identity = dir.path().join("admin.agekey");
        std::fs::write(
            &admin_identity,
            format!("{}\n", admin.to_string().expose_secret()),
        )
        .unwrap();
        let mut recipients = format!("admins = [\"{}\"]\n\n[hosts]\n", admin.to_public());
        for h in &tb.hosts {
            recipients.push_str(&format!("{} = \"{}\"\n", h.name, h.public_key()));
        }
        std::fs::write(dir.path().join("secrets/recipients.toml"), recipients).unwrap();
        let fleet = Fleet {
            dir,
            identity: tb.client_key.clone(),
            known_hosts: tb.known_hosts.clone(),
            admin_identity,
        };
        for h in &tb.hosts {
            fleet.write_host(&h.name, &host_file(&h.addr, &tb.client_pub, ""));
        }
        fleet.steer("");
        fleet.potato(&["gen"]).ok();
        fleet
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_host(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(format!("hosts/{name}.toml")), text).unwrap();
    }

    pub fn read_host(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("hosts/{name}.toml"))).unwrap()
    }

    /// Appends to a host file and regenerates.
    pub fn append_host(&self, name: &str, extra: &str) {
        let text = self.read_host(name) + extra;
        self.write_host(name, &text);
        self.potato(&["gen"]).ok();
    }

    /// Writes the test double's behaviour.nix body, e.g. `t0 = "fail";`.
    pub fn steer(&self, body: &str) {
        std::fs::write(
            self.path().join("nixpkgs-double/behaviour.nix"),
            format!("{{ {body} }}\n"),
        )
        .unwrap();
    }

    /// Steers the double's systems to carry `count` files of `size` random
    /// bytes, salted (`unique_salt`) so that no store has them yet.
    pub fn steer_fresh_payload(&self, count: u32, size: u64) {
        self.steer(&format!(
            "payload = {{ count = {count}; size = {size}; salt = \"{}\"; }};",
            super::unique_salt()
        ));
    }

    /// `potato secrets set NAME --host HOST` with the value on stdin; checks
    /// the value shows in no output.
    pub fn set_secret(&self, host: &str, name: &str, value: &str) {
        let mut child = self
            .command(&["secrets", "set", name, "--host", host])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), value.as_bytes()).unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(value)
                && !String::from_utf8_lossy(&out.stderr).contains(value)
        );
    }

    pub fn potato(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run potato"))
    }

    /// `potato(args)` with the fleet admin's age identity (it decrypts every
    /// secret, the CA key and the pre-generated host keys).
    pub fn potato_as_admin(&self, args: &[&str]) -> Run {
        Run::from(
            self.command(args)
                .env("POTATO_AGE_IDENTITY", &self.admin_identity)
                .output()
                .expect("run potato"),
        )
    }

    /// Pre-generates `host`'s SSH host key (replacing any) and regenerates the
    /// modules: what `bootstrap --install` needs before it installs.
    pub fn pregenerate_host_key(&self, host: &str) {
        self.potato_as_admin(&["secrets", "hostkey", host, "--force"])
            .ok();
        self.potato(&["gen"]).ok();
    }

    /// `potato bootstrap NAME --install --root /run/target` on the testbed
    /// host `on`, checked: it succeeds, pushes at least the system and one
    /// dependency, and the system is valid in the target root's store.
    /// Returns the installed system's store path.
    pub fn install_into_run_target(&self, name: &str, on: &TestHost) -> String {
        let target = format!("root@{}", on.addr);
        let run = self.potato_as_admin(&[
            "bootstrap",
            name,
            "--install",
            "--root",
            "/run/target",
            "--target",
            &target,
            "--json",
        ]);
        run.ok();
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let system = v["system"].as_str().unwrap().to_string();
        assert!(v["pushed"].as_u64().unwrap() >= 2, "{v}");
        on.sh_ok(&format!(
            "nix-store --store /run/target --check-validity {system}"
        ));
        system
    }

    /// A potato command with the testbed's key, known_hosts and nixpkgs double.
    pub fn command(&self, args: &[&str]) -> Command {
        // Flags go before a `--` (after it, words belong to the remote command).
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let (mine, rest) = args.split_at(split);
        let mut all: Vec<std::ffi::OsString> = mine.iter().map(Into::into).collect();
        let first = args.first().copied().unwrap_or("");
        if [
            "deploy",
            "rollback",
            "generations",
            "status",
            "exec",
            "trust",
            "audit",
            "plan",
            "bootstrap",
        ]
        .contains(&first)
        {
            if !args.contains(&"--identity") {
                all.push("--identity".into());
                all.push(self.identity.clone().into());
            }
            if !args.contains(&"--known-hosts") {
                all.push("--known-hosts".into());
                all.push(self.known_hosts.clone().into());
            }
        }
        if ["deploy", "status", "build", "bootstrap"].contains(&first)
            && !args.contains(&"--override-input")
        {
            all.push("--override-input".into());
            all.push("nixpkgs".into());
            all.push(self.path().join("nixpkgs-double").into());
        }
        all.extend(rest.iter().map(Into::into));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_potato"));
        cmd.args(all)
            .current_dir(self.path())
            .env_remove("POTATO_REPO")
            .env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// `potato deploy ARGS --json`, parsed: (exit code, hosts by name, stderr).
    pub fn deploy(&self, args: &[&str]) -> (i32, serde_json::Value, String) {
        let mut all = vec!["deploy"];
        all.extend_from_slice(args);
        all.push("--json");
        let run = self.potato(&all);
        let v = run.one_json_document();
        if v.get("hosts").is_none() {
            return (run.code, v, run.stderr);
        }
        let mut by_host = serde_json::Map::new();
        for h in v["hosts"].as_array().cloned().unwrap_or_default() {
            by_host.insert(h["host"].as_str().unwrap().to_string(), h);
        }
        (run.code, serde_json::Value::Object(by_host), run.stderr)
    }
}

/// A testbed host file: SSH open to the testbed range, nothing else.
pub fn host_file(addr: &str, client_pub: &str, extra: &str) -> String {
    format!(
        "system = \"x86_64-linux\"\nhardware = \"n250\"\nmemory = \"1GiB\"\ntags = [\"testbed\"]\n\n\
         [deploy]\ntarget = \"root@{addr}\"\nconfirm_timeout = \"10s\"\n\n\
         [zones]\nlan = [\"10.213.0.0/16\"]\n\n\
         [firewall]\nrules = [\"allow 22/tcp from lan\"]\n\n\
         [ssh]\nauthorized_keys = [\"{client_pub}\"]\n{extra}"
    )
}
