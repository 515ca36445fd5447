//! What a host prints is bounded and cleaned (issue 13, "Bounded work"): a
//! testbed host prints 200 MB plus terminal escape sequences through
//! `potato exec`; potato's peak memory stays small, and what it shows (text
//! and JSON) carries no raw control characters. The only test in this binary,
//! so the peak memory measured is potato's alone.

mod common;

use std::process::{Command, Stdio};

use common::fleet::Fleet;
use common::testbed::{self, Testbed};

/// Generous: the old code held the whole output (200 MB, then copies).
const MAX_RSS_KIB: i64 = 150 * 1024;

/// Runs potato with stdout into a file; returns (exit code, stdout, stderr,
/// peak resident memory in KiB, from wait4's rusage of exactly that process).
// The child is reaped by wait4 (which also reports its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (i32, Vec<u8>, String, i64) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        code,
        std::fs::read(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
        usage.ru_maxrss,
    )
}

fn has_raw_controls(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes)
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
}

#[test]
fn a_flood_of_remote_output_is_bounded_and_cleaned() {
    if !testbed::require() {
        return;
    }
    let tb = Testbed::new(1);
    let fleet = Fleet::new(&tb);
    let script = "printf '\\033[2J\\033]0;pwned\\007start\\r\\n'; yes potato | head -c 200000000; \
                  printf '\\033[31mred\\342\\200\\256end\\n'; printf '\\033[1mwarn\\n' >&2; exit 3";
    for json in [false, true] {
        let mut args = vec!["exec", "t0"];
        if json {
            args.push("--json");
        }
        args.extend(["--", "sh", "-c", script]);
        let (code, stdout, stderr, rss_kib) = run_measured(&mut fleet.command(&args));
        eprintln!(
            "potato exec{} of 200 MB: max RSS {} KiB, stdout {} bytes",
            if json { " --json" } else { "" },
            rss_kib,
            stdout.len()
        );
        assert_eq!(code, 1, "the remote command exited 3: {stderr}");
        assert!(
            rss_kib < MAX_RSS_KIB,
            "potato peaked at {rss_kib} KiB for 200 MB of output"
        );
        assert!(
            stdout.len() < 1024 * 1024,
            "what is shown is capped: {} bytes",
            stdout.len()
        );
        assert!(!has_raw_controls(&stdout), "raw control characters shown");
        assert!(
            !has_raw_controls(stderr.as_bytes()),
            "raw control characters in stderr"
        );
        let shown = if json {
            let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
            let h = &v["hosts"][0];
            assert_eq!(h["exit"], 3);
            format!(
                "{}\n{}",
                h["stdout"].as_str().unwrap(),
                h["stderr"].as_str().unwrap()
            )
        } else {
            format!("{}\n{stderr}", String::from_utf8_lossy(&stdout))
        };
        // Both ends are kept, the middle is counted, escapes are visible.
        assert!(
            shown.contains("\\x1b[2J\\x1b]0;pwned\\x07start\n"),
            "{}",
            &shown[..200]
        );
        assert!(shown.contains("\\x1b[31mred\\u{202e}end"), "end kept");
        assert!(shown.contains("bytes cut"), "the cut is marked");
        assert!(shown.contains("\\x1b[1mwarn"), "stderr cleaned");
    }
}
