//! Evaluation without building: the derivation (`.drv`) and output path of each
//! selected host's toplevel, from ONE `nix eval --json`, and what a store says
//! a realisation would do (`nix-store --realise --dry-run`).
//!
//! Owns the evaluate-only half of "build elsewhere": evaluating writes the `.drv`
//! files into the deployer's store (that is how Nix instantiates), but nothing is
//! built here. It does not know hosts or SSH; `deploy::build_on` sends the
//! derivation closure and realises it where the host says.

use std::collections::BTreeMap;
use std::process::Command;

use super::{Flake, NixError, StorePath};

/// A host's toplevel as evaluated: its derivation and the output it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated {
    pub drv: StorePath,
    pub out: StorePath,
}

/// What `nix-store --realise --dry-run` says a store would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRun {
    /// Derivations it would build.
    pub build: Vec<StorePath>,
    /// Paths it would fetch from its substituters.
    pub fetch: Vec<StorePath>,
    /// Paths it has no way to produce.
    pub unknown: Vec<StorePath>,
}

/// The Nix expression that picks each host's toplevel drvPath and outPath out
/// of `nixosConfigurations`. Host names are inventory identifiers; they are
/// written as Nix strings through the one Nix string function anyway.
fn apply_expression(hosts: &[String]) -> Result<String, NixError> {
    let mut e = String::from("cs: {");
    for h in hosts {
        let q = crate::render::nix::string(h).map_err(|_| NixError::Output {
            command: "nix eval".into(),
            detail: format!("host name {h:?} holds a NUL byte"),
        })?;
        e.push_str(&format!(
            " {q} = let t = cs.{q}.config.system.build.toplevel; in {{ drv = t.drvPath; out = t.outPath; }};"
        ));
    }
    e.push_str(" }");
    Ok(e)
}

/// Evaluates every named host's toplevel in ONE `nix eval`, building nothing.
pub fn evaluate_toplevels(
    flake: &Flake,
    hosts: &[String],
) -> Result<BTreeMap<String, Evaluated>, NixError> {
    if hosts.is_empty() {
        return Ok(BTreeMap::new());
    }
    if flake.reference.starts_with("git+") {
        crate::tools::find(crate::tools::Program::Git)?;
    }
    let mut cmd = Command::new(crate::tools::find(crate::tools::Program::Nix)?);
    cmd.args(["--extra-experimental-features", "nix-command flakes"])
        .args(["eval", "--json"])
        .args(flake.flake_flags())
        .arg(format!("{}#nixosConfigurations", flake.reference))
        .arg("--apply")
        .arg(apply_expression(hosts)?);
    parse_evaluated(&super::run(&mut cmd)?, hosts)
}

/// The closure of a derivation itself (`.drv` files and sources, not its
/// outputs), dependencies first: what a remote builder needs to realise it.
/// `--derivation` keeps Nix from resolving the `.drv` to its outputs.
pub fn derivation_closure(drv: &StorePath) -> Result<Vec<super::transfer::PathInfo>, NixError> {
    let mut cmd = Command::new(crate::tools::find(crate::tools::Program::Nix)?);
    cmd.args([
        "--extra-experimental-features",
        "nix-command",
        "path-info",
        "--json",
        "--recursive",
        "--derivation",
        drv.as_str(),
    ]);
    let infos = super::transfer::parse_path_infos(&super::run(&mut cmd)?)?;
    Ok(super::transfer::dependencies_first(infos))
}

/// Parses the `{host: {drv, out}}` object `evaluate_toplevels` asks for.
pub fn parse_evaluated(
    json: &str,
    hosts: &[String],
) -> Result<BTreeMap<String, Evaluated>, NixError> {
    let bad = |detail: String| NixError::Output {
        command: "nix eval --json".into(),
        detail,
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for h in hosts {
        let entry = &v[h];
        let field = |k: &str| {
            entry[k]
                .as_str()
                .ok_or_else(|| bad(format!("{h}: no {k}")))
                .and_then(|s| StorePath::parse(s).map_err(NixError::from))
        };
        let drv = field("drv")?;
        if !drv.as_str().ends_with(".drv") {
            return Err(bad(format!("{h}: {drv} is not a derivation")));
        }
        out.insert(
            h.clone(),
            Evaluated {
                drv,
                out: field("out")?,
            },
        );
    }
    Ok(out)
}

impl DryRun {
    /// Parses what `nix-store --realise --dry-run` prints (on stderr):
    /// headings "these N derivations will be built:", "these N paths will be
    /// fetched (...):", "don't know how to build these paths:" (Nix 2.x,
    /// src/libmain/shared.cc printMissing), each followed by indented paths.
    pub fn parse(text: &str) -> DryRun {
        let mut d = DryRun::default();
        let mut section: Option<&mut Vec<StorePath>> = None;
        for line in text.lines() {
            let t = line.trim();
            if !line.starts_with(' ') {
                section = if t.contains("will be built") {
                    Some(&mut d.build)
                } else if t.contains("will be fetched") {
                    Some(&mut d.fetch)
                } else if t.contains("don't know how to build") {
                    Some(&mut d.unknown)
                } else {
                    None
                };
                continue;
            }
            if let (Some(list), Ok(p)) = (section.as_deref_mut(), StorePath::parse(t)) {
                list.push(p);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_expression_quotes_host_names() {
        let e = apply_expression(&["t0".into(), "a-b".into()]).unwrap();
        assert!(e.contains("\"t0\" = let t = cs.\"t0\".config.system.build.toplevel;"));
        assert!(e.contains("cs.\"a-b\""));
    }

    #[test]
    fn evaluated_paths_are_checked() {
        let ok = r#"{"t0":{"drv":"/nix/store/00000000000000000000000000000000-nixos-system-t0.drv","out":"/nix/store/11111111111111111111111111111111-nixos-system-t0"}}"#;
        let m = parse_evaluated(ok, &["t0".into()]).unwrap();
        assert_eq!(m["t0"].out.name(), "nixos-system-t0");
        assert!(parse_evaluated(ok, &["t1".into()]).is_err());
        let not_drv = ok.replace("t0.drv", "t0x");
        assert!(parse_evaluated(&not_drv, &["t0".into()]).is_err());
        let hostile = ok.replace(
            "/nix/store/11111111111111111111111111111111-nixos-system-t0",
            "/etc/passwd",
        );
        assert!(parse_evaluated(&hostile, &["t0".into()]).is_err());
    }

    #[test]
    fn dry_run_sections() {
        let text = "these 2 derivations will be built:\n  /nix/store/00000000000000000000000000000000-a.drv\n  /nix/store/11111111111111111111111111111111-b.drv\nthese 1 paths will be fetched (0.01 MiB download, 0.05 MiB unpacked):\n  /nix/store/22222222222222222222222222222222-c\ndon't know how to build these paths:\n  /nix/store/33333333333333333333333333333333-d\n";
        let d = DryRun::parse(text);
        assert_eq!(d.build.len(), 2);
        assert_eq!(d.fetch[0].name(), "c");
        assert_eq!(d.unknown[0].name(), "d");
        assert_eq!(DryRun::parse("warning: something\n"), DryRun::default());
    }
}
