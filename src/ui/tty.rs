//! The live sink: stderr is a terminal (and this is not CI). Each host of a
//! multi-host run gets a spinner line showing its phase and push progress;
//! a transfer of a single-host operation (bootstrap's install, flash, a VM
//! image copy) gets a byte bar; every other line is printed above them.
//! Uses indicatif (https://docs.rs/indicatif); draws only on stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plain::lines;
use super::{Event, Sink, mb};

pub struct Tty {
    mp: MultiProgress,
    /// A spinner per host of a multi-host run.
    hosts: BTreeMap<String, ProgressBar>,
    /// A byte bar per running (host, transfer) without a host spinner.
    bars: BTreeMap<(String, String), ProgressBar>,
}

impl Tty {
    pub fn new() -> Tty {
        Tty {
            mp: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            hosts: BTreeMap::new(),
            bars: BTreeMap::new(),
        }
    }

    fn println(&self, text: &str) {
        let _ = self.mp.println(text);
    }

    fn add_hosts(&mut self, hosts: &[String]) {
        let width = hosts.iter().map(String::len).max().unwrap_or(4);
        let style =
            ProgressStyle::with_template(&format!("{{prefix:>{width}}} {{spinner}} {{wide_msg}}"))
                .expect("static template");
        for h in hosts {
            let pb = self.mp.add(ProgressBar::new(0));
            pb.set_style(style.clone());
            pb.set_prefix(h.clone());
            pb.set_message("queued");
            pb.enable_steady_tick(Duration::from_millis(120));
            self.hosts.insert(h.clone(), pb);
        }
    }

    fn bytes(&mut self, host: &str, what: &str, done: u64, total: u64) {
        if let Some(pb) = self.hosts.get(host) {
            pb.set_message(format!("{what} {} / {}", mb(done), mb(total)));
            return;
        }
        let key = (host.to_string(), what.to_string());
        let mp = &self.mp;
        let bar = self.bars.entry(key.clone()).or_insert_with(|| {
            let bar = mp.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>6} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            bar
        });
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
            self.bars.remove(&key);
        }
    }
}

impl Sink for Tty {
    fn event(&mut self, e: &Event) {
        match e {
            Event::Hosts(hosts) => self.add_hosts(hosts),
            Event::Phase { host, phase } if self.hosts.contains_key(host) => {
                self.hosts[host].set_message(phase.clone());
            }
            Event::Bytes {
                host,
                what,
                done,
                total,
            } => self.bytes(host, what, *done, *total),
            Event::HostDone { host, text, .. } if self.hosts.contains_key(host) => {
                self.hosts[host].finish_with_message(text.clone());
            }
            e => {
                for l in lines(e) {
                    self.println(&l);
                }
            }
        }
    }

    fn end(&mut self) {
        for (_, bar) in std::mem::take(&mut self.bars) {
            bar.finish_and_clear();
        }
        self.hosts.clear();
        let _ = self.mp.clear();
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.end();
    }
}
