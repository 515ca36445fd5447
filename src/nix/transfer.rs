//! Closure transfer: the byte stream potato writes into `nix-store --serve
//! --write` on the host, produced without any hashing on the deployer.
//!
//! Why this protocol: `nix-store --export` re-hashes every path on the way out,
//! and `nix-store --import` (Nix 2.8) hashes every NAR twice on the way in; the
//! serve protocol's `cmdAddToStoreNar` takes the NAR hash from the sender (our
//! store's database, via `nix path-info`) and hashes once, as it must to verify.
//! It is the command `nix copy --to ssh://` uses, but potato pipelines it: every
//! path is sent without waiting for the host's per-path "1", which are read at
//! the end, so latency costs one round trip, not one per path. NARs come from
//! the nix-nar crate (checked byte-identical to `nix-store --dump`); nothing is
//! held in memory beyond one read buffer.
//!
//! Framing (src/nix-store/nix-store.cc, opServe), integers 64-bit little-endian,
//! strings = length, bytes, zero padding to a multiple of 8:
//! ```text
//! u64 SERVE_MAGIC_1, u64 client version          (host answers MAGIC_2, version)
//! per path, dependencies first:
//!   u64 9 (cmdAddToStoreNar), string path, string deriver or "", string narHash,
//!   u64 n, n × string reference, u64 registrationTime, u64 narSize, u64 ultimate,
//!   u64 m, m × string signature, string content address or "", then the NAR
//!                                                (host answers u64 1 per path)
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read};

use super::{NixError, StorePath};

const SERVE_MAGIC_1: u64 = 0x390c_9deb;
pub const SERVE_MAGIC_2: u64 = 0x5452_eecb;
/// Protocol 2.5: the first with cmdAddToStoreNar (Nix 2.0 and later).
const CLIENT_VERSION: u64 = 0x205;
const CMD_ADD_TO_STORE_NAR: u64 = 9;

/// What the export frame needs to know about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: StorePath,
    pub references: Vec<StorePath>,
    pub deriver: Option<StorePath>,
    pub nar_size: u64,
    /// As `nix path-info` prints it (SRI "sha256-..." or "sha256:..."); the host
    /// parses either.
    pub nar_hash: String,
    pub signatures: Vec<String>,
    pub ca: Option<String>,
}

/// Parses `nix path-info --json`. Accepts both the array form (Nix < 2.19) and
/// the object-keyed-by-path form (newer Nix).
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
        let nar_hash = i["narHash"]
            .as_str()
            .filter(|h| h.starts_with("sha256"))
            .ok_or_else(|| bad(format!("{path}: no sha256 narHash")))?
            .to_string();
        let signatures = i
            .get("signatures")
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let ca = i
            .get("ca")
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty())
            .map(String::from);
        infos.push(PathInfo {
            path: StorePath::parse(&path)?,
            references,
            deriver,
            nar_size: i["narSize"]
                .as_u64()
                .ok_or_else(|| bad(format!("{path}: no narSize")))?,
            nar_hash,
            signatures,
            ca,
        });
    }
    Ok(infos)
}

/// Orders paths so that every path comes after the paths it references (within
/// the set), ties broken by name, as the host's store needs them.
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

/// A `Read` producing the serve-protocol stream that adds `infos` (in the
/// given order, dependencies first) to the host's store.
pub struct ServeStream {
    queue: VecDeque<PathInfo>,
    /// Framing bytes waiting to be read.
    pending: Vec<u8>,
    pos: usize,
    nar: Option<nix_nar::Encoder>,
    started: bool,
}

impl ServeStream {
    pub fn new(infos: Vec<PathInfo>) -> ServeStream {
        ServeStream {
            queue: infos.into(),
            pending: Vec::new(),
            pos: 0,
            nar: None,
            started: false,
        }
    }

    /// The same stream without the protocol greeting: the commands for
    /// `infos` alone, to be sent after `greeting()` (one piece of a stream
    /// assembled from per-path pieces, `nix::frames`).
    pub fn without_greeting(infos: Vec<PathInfo>) -> ServeStream {
        let mut s = ServeStream::new(infos);
        s.started = true;
        s
    }

    /// Queues the next path's command header and opens its NAR; false at the end.
    fn next_path(&mut self) -> io::Result<bool> {
        self.pending.clear();
        self.pos = 0;
        if !self.started {
            self.started = true;
            put_u64(&mut self.pending, SERVE_MAGIC_1);
            put_u64(&mut self.pending, CLIENT_VERSION);
        }
        let Some(info) = self.queue.pop_front() else {
            return Ok(!self.pending.is_empty());
        };
        let p = &mut self.pending;
        put_u64(p, CMD_ADD_TO_STORE_NAR);
        put_str(p, info.path.as_str());
        put_str(
            p,
            info.deriver.as_ref().map(StorePath::as_str).unwrap_or(""),
        );
        put_str(p, &info.nar_hash);
        let mut refs: Vec<&str> = info.references.iter().map(StorePath::as_str).collect();
        refs.sort_unstable();
        put_u64(p, refs.len() as u64);
        for r in refs {
            put_str(p, r);
        }
        put_u64(p, 0); // registration time: "now" on the host
        put_u64(p, info.nar_size);
        put_u64(p, 0); // not ultimate (built here, not there)
        put_u64(p, info.signatures.len() as u64);
        for sig in &info.signatures {
            put_str(p, sig);
        }
        put_str(p, info.ca.as_deref().unwrap_or(""));
        self.nar = Some(
            nix_nar::Encoder::new(info.path.as_str())
                .map_err(|e| io::Error::other(format!("{}: {e}", info.path)))?,
        );
        Ok(true)
    }
}

impl Read for ServeStream {
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
            }
            if !self.next_path()? {
                return Ok(0);
            }
        }
    }
}

/// The client's greeting that opens every serve-protocol stream.
pub fn greeting() -> Vec<u8> {
    let mut g = Vec::new();
    put_u64(&mut g, SERVE_MAGIC_1);
    put_u64(&mut g, CLIENT_VERSION);
    g
}

/// Checks the host's answers: the greeting, then one `1` per path sent.
pub fn check_serve_replies(stdout: &[u8], sent: usize) -> Result<(), String> {
    let words: Vec<u64> = stdout
        .chunks(8)
        .filter(|c| c.len() == 8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    match words.first() {
        Some(&SERVE_MAGIC_2) => {}
        _ => return Err("the host did not answer with the nix-store --serve greeting".into()),
    }
    let version = words.get(1).copied().unwrap_or(0);
    if version >> 8 != 2 || (version & 0xff) < 5 {
        return Err(format!(
            "the host's nix-store speaks serve protocol {}.{}; potato needs 2.5 or later (Nix 2.0+)",
            version >> 8,
            version & 0xff
        ));
    }
    let acks = words.iter().skip(2).filter(|w| **w == 1).count();
    if acks != sent || words.len() != sent + 2 {
        return Err(format!("the host confirmed {acks} of {sent} paths"));
    }
    Ok(())
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
        let a = r#"[{"path":"/nix/store/00000000000000000000000000000000-a","narSize":8,"narHash":"sha256-x","references":["/nix/store/11111111111111111111111111111111-b"],"deriver":"/nix/store/22222222222222222222222222222222-a.drv"}]"#;
        let o = r#"{"/nix/store/00000000000000000000000000000000-a":{"narSize":8,"narHash":"sha256:y","references":["/nix/store/11111111111111111111111111111111-b"],"deriver":null,"signatures":["k:s"]}}"#;
        let ia = parse_path_infos(a).unwrap();
        let io = parse_path_infos(o).unwrap();
        assert_eq!(ia[0].path, io[0].path);
        assert_eq!(ia[0].references, io[0].references);
        assert!(ia[0].deriver.is_some() && io[0].deriver.is_none());
        assert_eq!(
            (ia[0].nar_hash.as_str(), io[0].signatures.as_slice()),
            ("sha256-x", &["k:s".to_string()][..])
        );
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
            nar_hash: "sha256-".into(),
            signatures: vec![],
            ca: None,
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
    fn serve_replies() {
        let mut ok = Vec::new();
        for w in [SERVE_MAGIC_2, 0x206, 1, 1] {
            ok.extend_from_slice(&u64::to_le_bytes(w));
        }
        assert!(check_serve_replies(&ok, 2).is_ok());
        assert!(
            check_serve_replies(&ok, 3)
                .unwrap_err()
                .contains("confirmed 2 of 3")
        );
        assert!(check_serve_replies(&ok[8..], 2).is_err());
        let mut old = Vec::new();
        for w in [SERVE_MAGIC_2, 0x204] {
            old.extend_from_slice(&u64::to_le_bytes(w));
        }
        assert!(check_serve_replies(&old, 0).unwrap_err().contains("2.4"));
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
