//! The plain sink: one line per event worth seeing, for a log (CI, a pipe,
//! a file). No control characters: byte progress is one line when a
//! transfer completes, not a bar. Writes only to the stream it is given.

use std::collections::BTreeMap;
use std::io::Write;

use super::{Event, Sink, mb};

pub struct Plain {
    to: Box<dyn Write + Send>,
    /// Per (host, transfer): the bytes seen last, to say "done" once.
    transfers: BTreeMap<(String, String), u64>,
}

impl Plain {
    pub fn new(to: Box<dyn Write + Send>) -> Plain {
        Plain {
            to,
            transfers: BTreeMap::new(),
        }
    }

    pub fn stderr() -> Plain {
        Plain::new(Box::new(std::io::stderr()))
    }

    fn line(&mut self, text: &str) {
        // A log that cannot be written to is no reason to stop a deploy.
        let _ = writeln!(self.to, "{text}");
    }

    /// The line a completed transfer gets (None while it runs, and for a
    /// completion already shown).
    fn transfer(&mut self, host: &str, what: &str, done: u64, total: u64) -> Option<String> {
        let key = (host.to_string(), what.to_string());
        let before = self.transfers.insert(key, done).unwrap_or(0);
        let completes = total > 0 && done >= total && (before < total || before > done);
        completes.then(|| format!("{}{what} done ({})", prefix(host), mb(done)))
    }
}

/// "host: " (nothing for a run without a host).
fn prefix(host: &str) -> String {
    if host.is_empty() {
        String::new()
    } else {
        format!("{host}: ")
    }
}

/// The plain text of an event, one line per entry (shared with the json
/// sink's stderr and the live sink's lines above its bars).
pub fn lines(e: &Event) -> Vec<String> {
    match e {
        Event::Hosts(_) | Event::Bytes { .. } => Vec::new(),
        Event::Note(t) | Event::Detail(t) | Event::Warn(t) => vec![t.clone()],
        Event::Step {
            number,
            total,
            name,
            text,
        } => {
            let sep = if text.is_empty() { "" } else { ": " };
            vec![format!("[{number}/{total}] {name}{sep}{text}")]
        }
        Event::Phase { host, phase } => vec![format!("{}{phase}", prefix(host))],
        Event::Log { host, line } => line.lines().map(|l| format!("{host} | {l}")).collect(),
        Event::HostDone { host, text, .. } => vec![format!("{}{text}", prefix(host))],
    }
}

impl Sink for Plain {
    fn event(&mut self, e: &Event) {
        if let Event::Bytes {
            host,
            what,
            done,
            total,
        } = e
        {
            if let Some(l) = self.transfer(host, what, *done, *total) {
                self.line(&l);
            }
            return;
        }
        for l in lines(e) {
            self.line(&l);
        }
    }
}
