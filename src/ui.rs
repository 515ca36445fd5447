//! Progress and reports, the one path from operations to the person (or
//! program) watching. `Reporter` takes an operation's progress: notes, steps,
//! warnings and byte counts, shown live on a terminal (indicatif), as plain
//! lines when stderr is not one (CI, a pipe), and not at all with --json, where
//! the command prints one document at the end. `Renderer` is the deploy
//! engine's multi-host view over the same rules, fed by its `Event` stream.
//! Operations never print; they hold a `Reporter`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::deploy::cache::CacheReport;
use crate::deploy::{Event, HostResult, Outcome};

/// How a command shows its results and progress (`--json`, `-v`, `-q`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub json: bool,
    pub verbose: u8,
    pub quiet: bool,
}

/// Whether progress is drawn live: stderr is a terminal and this is not a CI
/// run (`CI` set), where plain lines read better in a log.
fn live() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// Where an operation's progress goes (stderr; never stdout, which carries
/// the command's result).
#[derive(Debug, Clone)]
pub struct Reporter {
    out: Output,
    tty: bool,
}

impl Reporter {
    pub fn new(out: Output) -> Reporter {
        Reporter { out, tty: live() }
    }

    /// A reporter that shows nothing but warnings (an operation run inside
    /// another one that reports for itself).
    pub fn quiet(&self) -> Reporter {
        Reporter {
            out: Output {
                quiet: true,
                ..self.out
            },
            tty: self.tty,
        }
    }

    pub fn output(&self) -> Output {
        self.out
    }

    /// Whether progress lines are shown (not with --json or --quiet).
    pub fn shows(&self) -> bool {
        !self.out.json && !self.out.quiet
    }

    /// A line about the run.
    pub fn note(&self, text: &str) {
        if self.shows() {
            eprintln!("{text}");
        }
    }

    /// A line of the command's result for people, on stdout (not with
    /// --json, where the command prints one document instead).
    pub fn say(&self, text: &str) {
        if !self.out.json {
            println!("{text}");
        }
    }

    /// A detail shown with -v only.
    pub fn detail(&self, text: &str) {
        if self.shows() && self.out.verbose > 0 {
            eprintln!("{text}");
        }
    }

    /// A warning: shown also with --json and --quiet.
    pub fn warn(&self, text: &str) {
        eprintln!("{text}");
    }

    /// "[3/10] generate: text", a step of a numbered sequence.
    pub fn step(&self, number: usize, total: usize, name: &str, text: &str) {
        let sep = if text.is_empty() { "" } else { ": " };
        self.note(&format!("[{number}/{total}] {name}{sep}{text}"));
    }

    /// A byte counter for a transfer of `len` bytes: a live bar on a
    /// terminal, nothing elsewhere (the note before it says what moves).
    pub fn bytes(&self, len: u64) -> ProgressBar {
        if !self.shows() || !self.tty {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>6} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    }
}

pub enum Renderer {
    Human(Human),
    Json,
}

pub struct Human {
    mp: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    tty: bool,
    verbose: bool,
    quiet: bool,
}

impl Renderer {
    pub fn new(out: Output, hosts: &[String]) -> Renderer {
        let (verbose, quiet) = (out.verbose > 0, out.quiet);
        if out.json {
            return Renderer::Json;
        }
        let tty = live() && !quiet;
        let mp = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let width = hosts.iter().map(String::len).max().unwrap_or(4);
        let mut bars = BTreeMap::new();
        for h in hosts {
            let pb = mp.add(ProgressBar::new(0));
            pb.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>{width}}} {{spinner}} {{wide_msg}}"
                ))
                .expect("static template"),
            );
            pb.set_prefix(h.clone());
            pb.set_message("queued");
            if tty {
                pb.enable_steady_tick(Duration::from_millis(120));
            }
            bars.insert(h.clone(), pb);
        }
        Renderer::Human(Human {
            mp,
            bars,
            tty,
            verbose,
            quiet,
        })
    }

    /// A line about the whole run (e.g. "building 3 systems").
    pub fn note(&self, text: &str) {
        if let Renderer::Human(h) = self
            && !h.quiet
        {
            if h.tty {
                let _ = h.mp.println(text);
            } else {
                eprintln!("{text}");
            }
        }
    }

    /// A warning: on stderr always (above the bars on a terminal), also with
    /// --json and --quiet.
    pub fn warn(&self, text: &str) {
        match self {
            Renderer::Human(h) if h.tty => {
                let _ = h.mp.println(text);
            }
            _ => eprintln!("{text}"),
        }
    }

    pub fn event(&mut self, e: &Event) {
        let Renderer::Human(h) = self else { return };
        match e {
            Event::Phase { host, phase } => {
                if let Some(pb) = h.bars.get(host) {
                    pb.set_message(phase.as_str().to_string());
                }
                if !h.tty && !h.quiet {
                    eprintln!("{host}: {}", phase.as_str());
                }
            }
            Event::Progress { host, done, total } => {
                if let Some(pb) = h.bars.get(host) {
                    pb.set_message(format!("push {} / {}", mb(*done), mb(*total)));
                }
            }
            Event::Log { host, line } => {
                if h.verbose {
                    for l in line.lines() {
                        if h.tty {
                            let _ = h.mp.println(format!("{host} | {l}"));
                        } else {
                            eprintln!("{host} | {l}");
                        }
                    }
                }
            }
            Event::Finished(r) => {
                if let Some(pb) = h.bars.get(&r.host) {
                    pb.finish_with_message(describe(r));
                }
                if !h.tty && !h.quiet {
                    eprintln!("{}: {}", r.host, describe(r));
                }
            }
        }
    }

    /// The end of the run: a summary table, or the JSON document.
    pub fn finish(&mut self, results: &[HostResult]) {
        self.finish_fleet(results, None);
    }

    /// `finish`, with the fleet cache's part of the run when the deploy went
    /// through the cache (`--json`: a top-level `cache` object).
    pub fn finish_fleet(&mut self, results: &[HostResult], cache: Option<&CacheReport>) {
        match self {
            Renderer::Json => {
                let ok = results
                    .iter()
                    .all(|r| matches!(r.result, Outcome::Deployed | Outcome::UpToDate));
                let mut doc = serde_json::json!({ "ok": ok, "hosts": results });
                if let Some(c) = cache {
                    doc["cache"] = serde_json::json!(c);
                }
                println!("{doc}");
            }
            Renderer::Human(h) => {
                let _ = h.mp.clear();
                if h.quiet
                    && results
                        .iter()
                        .all(|r| matches!(r.result, Outcome::Deployed | Outcome::UpToDate))
                {
                    return;
                }
                println!(
                    "{:<16} {:<12} {:>10} {:>10} {:>10} {:<10}  store path",
                    "host", "result", "generation", "pushed", "fetched", "built on"
                );
                for r in results {
                    println!(
                        "{:<16} {:<12} {:>10} {:>10} {:>10} {:<10}  {}",
                        r.host,
                        outcome_name(&r.result),
                        r.generation
                            .map(|g| g.to_string())
                            .unwrap_or_else(|| "-".into()),
                        mb(r.bytes_pushed),
                        format!("{} ({})", mb(r.bytes_fetched), r.paths_fetched),
                        r.build.on,
                        r.store_path.as_ref().map(|p| p.as_str()).unwrap_or("-")
                    );
                }
                if let Some(c) = cache {
                    println!(
                        "fleet cache on {}: {} pushed to it ({} paths), {} new paths published{}",
                        c.host,
                        mb(c.bytes_pushed),
                        c.paths_pushed,
                        c.paths_published,
                        if c.error.is_some() {
                            " (not used: hosts were pushed to directly)"
                        } else {
                            ""
                        }
                    );
                }
                for r in results.iter().filter(|r| r.error.is_some()) {
                    eprintln!(
                        "\n{} {}:\n  {}",
                        r.host,
                        outcome_name(&r.result),
                        r.error.as_deref().unwrap_or("").replace('\n', "\n  ")
                    );
                }
            }
        }
    }
}

pub fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Deployed => "deployed",
        Outcome::UpToDate => "up to date",
        Outcome::RolledBack => "rolled back",
        Outcome::Failed => "failed",
    }
}

fn describe(r: &HostResult) -> String {
    match r.result {
        Outcome::Deployed => format!(
            "deployed generation {}",
            r.generation.map(|g| g.to_string()).unwrap_or_default()
        ),
        Outcome::UpToDate => "up to date".into(),
        Outcome::RolledBack => format!(
            "rolled back to generation {}",
            r.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into())
        ),
        Outcome::Failed => format!(
            "failed: {}",
            r.error
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        ),
    }
}

fn mb(bytes: u64) -> String {
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
