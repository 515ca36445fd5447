//! The `nix-store --export` stream, produced by potato itself.
//!
//! Nix's own `--export` re-hashes every path on the way out (to refuse paths
//! corrupted on disk), a full SHA-256 pass over the closure that `nix copy` does
//! not make; on a two-core deployer that pass was a third of the push time. So
//! potato writes the same byte stream: per path a NAR (the nix-nar crate, checked
//! byte-identical to `nix-store --dump`) framed as Nix's `exportPaths` frames it
//! (src/libstore/export-import.cc):
//!
//! ```text
//! for each path, dependencies first:  u64 1, NAR, u64 0x4558494e ("NIXE"),
//!     string path, u64 n, n × string reference (sorted), string deriver or "",
//!     u64 0 (no signature)
//! then:                               u64 0
//! ```
//! Integers are 64-bit little-endian; a string is its length, its bytes, and zero
//! padding to a multiple of 8. The receiving `nix-store --import` hashes what it
//! receives and registers that; SSH's MAC protects the bytes in transit.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read};
use std::process::Command;

use super::{NixError, StorePath, run};

const EXPORT_MAGIC: u64 = 0x4558_494e;

/// What the export frame needs to know about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: StorePath,
    pub references: Vec<StorePath>,
    pub deriver: Option<StorePath>,
    pub nar_size: u64,
}

/// Metadata of `paths` from ONE `nix path-info --json` call. Accepts both the
/// array form (Nix < 2.19) and the object-keyed-by-path form (newer Nix).
pub fn path_infos(paths: &[StorePath]) -> Result<Vec<PathInfo>, NixError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = Command::new("nix");
    cmd.args([
        "--extra-experimental-features",
        "nix-command",
        "path-info",
        "--json",
    ])
    .args(paths.iter().map(StorePath::as_str));
    let out = run(&mut cmd)?;
    parse_path_infos(&out)
}

pub fn parse_path_infos(json: &str) -> Result<Vec<PathInfo>, NixError> {
    let bad = |detail: String| NixError::Output {
        command: "nix path-info --json".into(),
        detail,
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let entries: Vec<(String, &serde_json::Value)> = match &v {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| (i["path"].as_str().unwrap_or("").to_string(), i))
            .collect(),
        serde_json::Value::Object(map) => map.iter().map(|(k, i)| (k.clone(), i)).collect(),
        _ => return Err(bad("neither an array nor an object".into())),
    };
    let mut infos = Vec::new();
    for (path, i) in entries {
        let references = i["references"]
            .as_array()
            .ok_or_else(|| bad(format!("{path}: no references")))?
            .iter()
            .map(|r| StorePath::parse(r.as_str().unwrap_or("")))
            .collect::<Result<Vec<_>, _>>()?;
        let deriver = match i.get("deriver").and_then(|d| d.as_str()) {
            Some(d) if !d.is_empty() => Some(StorePath::parse(d)?),
            _ => None,
        };
        infos.push(PathInfo {
            path: StorePath::parse(&path)?,
            references,
            deriver,
            nar_size: i["narSize"]
                .as_u64()
                .ok_or_else(|| bad(format!("{path}: no narSize")))?,
        });
    }
    Ok(infos)
}

/// Orders paths so that every path comes after the paths it references (within
/// the set), ties broken by name, as `nix-store --import` needs.
pub fn dependencies_first(infos: Vec<PathInfo>) -> Vec<PathInfo> {
    let mut by_path: BTreeMap<StorePath, PathInfo> =
        infos.into_iter().map(|i| (i.path.clone(), i)).collect();
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    let keys: Vec<StorePath> = by_path.keys().cloned().collect();
    for k in keys {
        visit(&k, &by_path, &mut done, &mut order);
    }
    order
        .into_iter()
        .filter_map(|p| by_path.remove(&p))
        .collect()
}

fn visit(
    p: &StorePath,
    all: &BTreeMap<StorePath, PathInfo>,
    done: &mut BTreeSet<StorePath>,
    order: &mut Vec<StorePath>,
) {
    // Iterative DFS: closures can be deep.
    let mut stack: Vec<(StorePath, bool)> = vec![(p.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if done.contains(&node) {
            continue;
        }
        if expanded {
            done.insert(node.clone());
            order.push(node);
            continue;
        }
        stack.push((node.clone(), true));
        if let Some(info) = all.get(&node) {
            for r in info.references.iter().rev() {
                if r != &node && all.contains_key(r) && !done.contains(r) {
                    stack.push((r.clone(), false));
                }
            }
        }
    }
}

/// A `Read` producing the export stream of `infos`, in the given order.
pub struct ExportStream {
    queue: VecDeque<PathInfo>,
    /// Framing bytes waiting to be read.
    pending: Vec<u8>,
    pos: usize,
    nar: Option<nix_nar::Encoder>,
    current: Option<PathInfo>,
    finished: bool,
}

impl ExportStream {
    pub fn new(infos: Vec<PathInfo>) -> ExportStream {
        ExportStream {
            queue: infos.into(),
            pending: Vec::new(),
            pos: 0,
            nar: None,
            current: None,
            finished: false,
        }
    }

    /// Queues the framing that follows the current path's NAR, then starts the next.
    fn advance(&mut self) -> io::Result<()> {
        self.pending.clear();
        self.pos = 0;
        if let Some(info) = self.current.take() {
            put_u64(&mut self.pending, EXPORT_MAGIC);
            put_str(&mut self.pending, info.path.as_str());
            let mut refs: Vec<&str> = info.references.iter().map(StorePath::as_str).collect();
            refs.sort_unstable();
            put_u64(&mut self.pending, refs.len() as u64);
            for r in refs {
                put_str(&mut self.pending, r);
            }
            put_str(
                &mut self.pending,
                info.deriver.as_ref().map(StorePath::as_str).unwrap_or(""),
            );
            put_u64(&mut self.pending, 0);
        }
        match self.queue.pop_front() {
            Some(info) => {
                put_u64(&mut self.pending, 1);
                let enc = nix_nar::Encoder::new(info.path.as_str())
                    .map_err(|e| io::Error::other(format!("{}: {e}", info.path)))?;
                self.nar = Some(enc);
                self.current = Some(info);
            }
            None => {
                put_u64(&mut self.pending, 0);
                self.finished = true;
            }
        }
        Ok(())
    }
}

impl Read for ExportStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.pending.len() {
                let n = (self.pending.len() - self.pos).min(buf.len());
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(nar) = self.nar.as_mut() {
                let n = nar.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.nar = None;
                self.advance()?;
                continue;
            }
            if self.finished {
                return Ok(0);
            }
            self.advance()?;
        }
    }
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
    out.resize(out.len() + (8 - s.len() % 8) % 8, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(name: &str, hash: char) -> StorePath {
        StorePath::parse(&format!(
            "/nix/store/{}-{name}",
            hash.to_string().repeat(32)
        ))
        .unwrap()
    }

    #[test]
    fn parses_both_json_forms() {
        let a = r#"[{"path":"/nix/store/00000000000000000000000000000000-a","narSize":8,"references":["/nix/store/11111111111111111111111111111111-b"],"deriver":"/nix/store/22222222222222222222222222222222-a.drv"}]"#;
        let o = r#"{"/nix/store/00000000000000000000000000000000-a":{"narSize":8,"references":["/nix/store/11111111111111111111111111111111-b"],"deriver":null}}"#;
        let ia = parse_path_infos(a).unwrap();
        let io = parse_path_infos(o).unwrap();
        assert_eq!(ia[0].path, io[0].path);
        assert_eq!(ia[0].references, io[0].references);
        assert!(ia[0].deriver.is_some() && io[0].deriver.is_none());
        assert!(
            parse_path_infos(r#"[{"path":"/etc/passwd","narSize":1,"references":[]}]"#).is_err()
        );
    }

    #[test]
    fn orders_dependencies_first() {
        let (a, b, c) = (sp("a", '0'), sp("b", '1'), sp("c", '2'));
        let info = |p: &StorePath, refs: Vec<StorePath>| PathInfo {
            path: p.clone(),
            references: refs,
            deriver: None,
            nar_size: 0,
        };
        // a -> b -> c, and a refers to itself
        let sorted = dependencies_first(vec![
            info(&a, vec![a.clone(), b.clone()]),
            info(&b, vec![c.clone()]),
            info(&c, vec![]),
        ]);
        let names: Vec<&str> = sorted.iter().map(|i| i.path.name()).collect();
        assert_eq!(names, vec!["c", "b", "a"]);
    }

    #[test]
    fn strings_are_padded() {
        let mut v = Vec::new();
        put_str(&mut v, "abc");
        assert_eq!(v.len(), 16);
        assert_eq!(&v[..8], &3u64.to_le_bytes());
        assert_eq!(&v[8..11], b"abc");
        assert!(v[11..].iter().all(|b| *b == 0));
    }
}
