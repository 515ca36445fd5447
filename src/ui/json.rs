//! The json sink (`--json`): stdout carries nothing but the command's one
//! JSON document, printed when the command hands it over; progress goes to
//! stderr as the plain sink's lines (the reporter keeps them to warnings
//! with --quiet).

use std::io::Write;

use super::plain::Plain;
use super::{Event, Sink};

pub struct Json {
    lines: Plain,
    doc: Box<dyn Write + Send>,
    printed: bool,
}

impl Json {
    pub fn new(lines: Box<dyn Write + Send>, doc: Box<dyn Write + Send>) -> Json {
        Json {
            lines: Plain::new(lines),
            doc,
            printed: false,
        }
    }

    /// Lines on stderr, the document on stdout.
    pub fn stdio() -> Json {
        Json::new(Box::new(std::io::stderr()), Box::new(std::io::stdout()))
    }
}

impl Sink for Json {
    fn event(&mut self, e: &Event) {
        self.lines.event(e);
    }

    /// The first document only: stdout holds exactly one.
    fn document(&mut self, doc: &serde_json::Value) {
        if self.printed {
            return;
        }
        self.printed = true;
        let _ = writeln!(self.doc, "{doc}");
        let _ = self.doc.flush();
    }
}
