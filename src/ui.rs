//! Rendering the deploy engine's events: a live view for humans (indicatif bars
//! on a terminal, plain lines otherwise) and the summary; or nothing but a JSON
//! document. Both consume the same `Event` stream.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::deploy::{Event, HostResult, Outcome};

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
    pub fn new(json: bool, verbose: bool, quiet: bool, hosts: &[String]) -> Renderer {
        if json {
            return Renderer::Json;
        }
        let tty = std::io::stderr().is_terminal() && !quiet;
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
        match self {
            Renderer::Json => {
                let ok = results
                    .iter()
                    .all(|r| matches!(r.result, Outcome::Deployed | Outcome::UpToDate));
                println!("{}", serde_json::json!({ "ok": ok, "hosts": results }));
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
