//! Progress and reports: the one path from operations to the person (or
//! program) watching. Operations (deploy, bootstrap, flash, vm, image, build,
//! status) hold a `Reporter` and emit typed `Event`s to it: notes, steps,
//! host phases, byte progress, log lines, warnings, host results. The
//! reporter filters them by `Output` (-v, -q) and hands them to one sink,
//! which decides how they look:
//! - `tty`: stderr is a terminal and `CI` is unset: live lines (indicatif
//!   spinners per host, byte bars);
//! - `plain`: anything else: one plain line per event worth seeing, no
//!   control characters;
//! - `json`: `--json`: the plain lines on stderr, and on stdout nothing but
//!   the one JSON document the command hands to `Reporter::document`.
//!
//! Deploy's engine emits its own `deploy::Event`s on a channel (it knows no
//! reporter); `ops::deploy` turns them into these. Modelled on colmena's
//! separate progress monitor fed by one message stream
//! (https://github.com/zhaofengli/colmena, src/progress/). This module knows
//! no command and prints no command's result beyond what it is handed; it also
//! holds the typed confirmation (`confirm_by_typing`).

mod json;
mod plain;
mod tty;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// How a command shows its results and progress (`--json`, `-v`, `-q`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub json: bool,
    pub verbose: u8,
    pub quiet: bool,
}

/// What an operation tells the person watching; the sink decides the look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The hosts a run works on, in order (a live view gives each its line).
    Hosts(Vec<String>),
    /// A line about the run.
    Note(String),
    /// A detail, shown with -v only.
    Detail(String),
    /// A warning: shown in every mode, also with --json and --quiet.
    Warn(String),
    /// A step of a numbered sequence starts (or is skipped: `text` says so).
    Step {
        number: usize,
        total: usize,
        name: String,
        text: String,
    },
    /// A host enters a phase (connect, build, push, activate, confirm).
    Phase { host: String, phase: String },
    /// Bytes of a transfer for `host`: `what` is push, write, verify, copy.
    Bytes {
        host: String,
        what: String,
        done: u64,
        total: u64,
    },
    /// A host's log line (the engine's details, the activation's output): -v.
    Log { host: String, line: String },
    /// A host's run ended: well (`ok`) or not, in words.
    HostDone {
        host: String,
        ok: bool,
        text: String,
    },
}

/// Where the reporter's events end up (one per mode).
trait Sink: Send {
    /// Shows one event (already filtered by -v/-q).
    fn event(&mut self, e: &Event);
    /// The command's one JSON document (only the json sink prints it).
    fn document(&mut self, _doc: &serde_json::Value) {}
    /// The run is over: live views clear their lines.
    fn end(&mut self) {}
}

/// Where an operation's progress goes (stderr; never stdout, which carries
/// the command's result). Clones share the one sink.
#[derive(Clone)]
pub struct Reporter {
    out: Output,
    sink: Arc<Mutex<Box<dyn Sink>>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").field("out", &self.out).finish()
    }
}

/// Whether progress is drawn live: stderr is a terminal and this is not a CI
/// run (`CI` set), where plain lines read better in a log.
fn live() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

impl Reporter {
    /// The reporter for `out`: json with --json, live on a terminal (not in
    /// CI, not with --quiet), plain lines otherwise.
    pub fn new(out: Output) -> Reporter {
        let sink: Box<dyn Sink> = if out.json {
            Box::new(json::Json::stdio())
        } else if live() && !out.quiet {
            Box::new(tty::Tty::new())
        } else {
            Box::new(plain::Plain::stderr())
        };
        Reporter::with_sink(out, sink)
    }

    /// Plain lines into `to` (tests read what a run shows).
    pub fn plain_into(out: Output, to: Box<dyn std::io::Write + Send>) -> Reporter {
        Reporter::with_sink(out, Box::new(plain::Plain::new(to)))
    }

    /// The json sink with its stderr lines and stdout document into `lines`
    /// and `doc` (tests).
    pub fn json_into(
        out: Output,
        lines: Box<dyn std::io::Write + Send>,
        doc: Box<dyn std::io::Write + Send>,
    ) -> Reporter {
        Reporter::with_sink(out, Box::new(json::Json::new(lines, doc)))
    }

    fn with_sink(out: Output, sink: Box<dyn Sink>) -> Reporter {
        Reporter {
            out,
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    /// A reporter that shows nothing but warnings (an operation run inside
    /// another one that reports for itself), into the same sink.
    pub fn quiet(&self) -> Reporter {
        Reporter {
            out: Output {
                quiet: true,
                ..self.out
            },
            sink: self.sink.clone(),
        }
    }

    pub fn output(&self) -> Output {
        self.out
    }

    /// Whether progress lines are shown (not with --quiet).
    pub fn shows(&self) -> bool {
        !self.out.quiet
    }

    /// Whether `e` is worth showing under -v/-q: warnings always; details
    /// and log lines with -v; nothing else with --quiet.
    fn wanted(&self, e: &Event) -> bool {
        match e {
            Event::Warn(_) => true,
            _ if self.out.quiet => false,
            Event::Detail(_) | Event::Log { .. } => self.out.verbose > 0,
            _ => true,
        }
    }

    /// Hands `e` to the sink, if it is worth showing.
    pub fn emit(&self, e: Event) {
        if self.wanted(&e) {
            self.with(|s| s.event(&e));
        }
    }

    fn with(&self, f: impl FnOnce(&mut dyn Sink)) {
        // A sink that panicked mid-line still takes the next event.
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        f(sink.as_mut());
    }

    /// A line about the run.
    pub fn note(&self, text: &str) {
        self.emit(Event::Note(text.to_string()));
    }

    /// A detail shown with -v only.
    pub fn detail(&self, text: &str) {
        self.emit(Event::Detail(text.to_string()));
    }

    /// A warning: shown also with --json and --quiet.
    pub fn warn(&self, text: &str) {
        self.emit(Event::Warn(text.to_string()));
    }

    /// "[3/10] generate: text", a step of a numbered sequence.
    pub fn step(&self, number: usize, total: usize, name: &str, text: &str) {
        self.emit(Event::Step {
            number,
            total,
            name: name.to_string(),
            text: text.to_string(),
        });
    }

    /// The hosts of a multi-host run, before their phases come.
    pub fn hosts(&self, hosts: &[String]) {
        self.emit(Event::Hosts(hosts.to_vec()));
    }

    /// `done` of `total` bytes of `host`'s transfer `what` (push, write,
    /// verify, copy): a live bar on a terminal, a line when it completes
    /// elsewhere.
    pub fn bytes(&self, host: &str, what: &str, done: u64, total: u64) {
        self.emit(Event::Bytes {
            host: host.to_string(),
            what: what.to_string(),
            done,
            total,
        });
    }

    /// A line of the command's result for people, on stdout (not with
    /// --json, where the command hands one document to `document` instead).
    pub fn say(&self, text: &str) {
        if !self.out.json {
            println!("{text}");
        }
    }

    /// The command's result as one JSON document on stdout (with --json
    /// only; a second document is never printed).
    pub fn document(&self, doc: &serde_json::Value) {
        self.with(|s| s.document(doc));
    }

    /// The run is over: a live view clears its lines (before the command
    /// prints its result).
    pub fn end(&self) {
        self.with(|s| s.end());
    }
}

/// "12.3 MB" (or "0").
pub fn mb(bytes: u64) -> String {
    if bytes == 0 {
        "0".into()
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// Goes on when `yes`, or when `expected` is typed back on a terminal after
/// `question`; refuses (`refusal`, nothing done) otherwise.
pub fn confirm_by_typing(
    yes: bool,
    refusal: &str,
    question: &str,
    expected: &str,
) -> Result<(), crate::error::Error> {
    use crate::error::Error;
    use std::io::{BufRead, Write};
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::usage(
            refusal,
            format!("pass --yes, or run it on a terminal to confirm by typing {expected}"),
        ));
    }
    eprint!("{question}\nType {expected} to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io(camino::Utf8Path::new("stdin"), e))?;
    if line.trim() != expected {
        return Err(Error::usage(
            "not confirmed; nothing was done",
            format!("type {expected} exactly"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared buffer a sink writes into.
    #[derive(Clone, Default)]
    pub(super) struct Buf(pub Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// One of every event, as an operation would emit them.
    fn a_run(r: &Reporter) {
        r.hosts(&["t0".into(), "t1".into()]);
        r.note("building 2 systems");
        r.step(3, 10, "generate", "");
        r.step(1, 10, "detect", "done earlier");
        r.emit(Event::Phase {
            host: "t0".into(),
            phase: "push".into(),
        });
        r.bytes("t0", "push", 1_000_000, 4_000_000);
        r.bytes("t0", "push", 4_000_000, 4_000_000);
        r.emit(Event::Log {
            host: "t0".into(),
            line: "activating generation 2\nstarting units".into(),
        });
        r.detail("a detail");
        r.warn("warning: careful");
        r.emit(Event::HostDone {
            host: "t0".into(),
            ok: true,
            text: "deployed generation 2".into(),
        });
        r.end();
    }

    fn plain(out: Output) -> String {
        let buf = Buf::default();
        a_run(&Reporter::plain_into(out, Box::new(buf.clone())));
        buf.text()
    }

    #[test]
    fn plain_lines_show_each_step_and_host_without_control_characters() {
        let text = plain(Output::default());
        assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
        for line in [
            "building 2 systems",
            "[3/10] generate",
            "[1/10] detect: done earlier",
            "t0: push",
            "t0: push done (4.0 MB)",
            "warning: careful",
            "t0: deployed generation 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in {text}");
        }
        // Byte progress is one line when it completes, not one per tick.
        assert!(!text.contains("1.0 MB"), "{text}");
        // Log lines and details only with -v.
        assert!(!text.contains("activating") && !text.contains("a detail"));
    }

    #[test]
    fn verbose_adds_log_lines_per_line_and_details() {
        let text = plain(Output {
            verbose: 1,
            ..Output::default()
        });
        assert!(text.contains("t0 | activating generation 2\nt0 | starting units\n"));
        assert!(text.lines().any(|l| l == "a detail"), "{text}");
    }

    #[test]
    fn quiet_shows_only_warnings() {
        let text = plain(Output {
            quiet: true,
            verbose: 1,
            ..Output::default()
        });
        assert_eq!(text, "warning: careful\n");
    }

    #[test]
    fn json_prints_one_document_and_progress_only_on_stderr() {
        let (lines, doc) = (Buf::default(), Buf::default());
        let out = Output {
            json: true,
            ..Output::default()
        };
        let r = Reporter::json_into(out, Box::new(lines.clone()), Box::new(doc.clone()));
        a_run(&r);
        assert_eq!(doc.text(), "", "nothing on stdout before the document");
        r.document(&serde_json::json!({ "ok": true }));
        r.document(&serde_json::json!({ "ok": false }));
        let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&doc.text())
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(docs, vec![serde_json::json!({ "ok": true })]);
        let text = lines.text();
        assert!(text.lines().any(|l| l == "[3/10] generate"), "{text}");
        assert!(!text.contains('\x1b') && !text.contains('\r'));
    }

    #[test]
    fn plain_and_quiet_reporters_never_print_a_document() {
        let buf = Buf::default();
        let r = Reporter::plain_into(Output::default(), Box::new(buf.clone()));
        r.document(&serde_json::json!({ "ok": true }));
        assert_eq!(buf.text(), "");
    }

    #[test]
    fn a_quiet_copy_shares_the_sink_but_shows_only_warnings() {
        let buf = Buf::default();
        let r = Reporter::plain_into(Output::default(), Box::new(buf.clone()));
        let q = r.quiet();
        q.note("inner note");
        q.warn("inner warning");
        r.note("outer note");
        assert_eq!(buf.text(), "inner warning\nouter note\n");
    }

    /// Operations report through the reporter only: no file of theirs prints.
    #[test]
    fn operations_never_print_themselves() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut seen = 0;
        for dir in ["ops", "deploy", "host", "bootstrap"] {
            for entry in walk(&src.join(dir)) {
                let text = std::fs::read_to_string(&entry).unwrap();
                seen += 1;
                for bad in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                    assert!(
                        !text.contains(bad),
                        "{} contains {bad}: report through ui::Reporter",
                        entry.display()
                    );
                }
            }
        }
        assert!(seen > 10, "read {seen} files");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        out
    }
}
