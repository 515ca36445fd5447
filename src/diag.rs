//! Diagnostics: errors that point into a source file.
//!
//! Owns the set of loaded source texts (`Sources`), the `Diagnostic` type every
//! validation step produces, and rendering them (human, via codespan-reporting, or
//! JSON). Nothing here knows what a host is; it only knows files, byte ranges,
//! messages and hints.

use std::ops::Range;

use camino::{Utf8Path, Utf8PathBuf};
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::{Files, SimpleFiles};
use codespan_reporting::term;
use serde::Serialize;

/// Index of a file inside [`Sources`].
pub type FileId = usize;

/// Every source text potato has read in one run, so that a diagnostic can show it.
#[derive(Default)]
pub struct Sources {
    files: SimpleFiles<String, String>,
}

impl Sources {
    pub fn add(&mut self, path: &Utf8Path, text: String) -> FileId {
        self.files.add(path.to_string(), text)
    }

    pub fn name(&self, id: FileId) -> &str {
        self.files.get(id).map(|f| f.name().as_str()).unwrap_or("?")
    }

    pub fn text(&self, id: FileId) -> &str {
        self.files
            .get(id)
            .map(|f| f.source().as_str())
            .unwrap_or("")
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, id: FileId, offset: usize) -> (usize, usize) {
        let line = self.files.line_index(id, offset).unwrap_or(0);
        let col = self.files.column_number(id, line, offset).unwrap_or(1);
        (line + 1, col)
    }
}

/// A place in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: FileId,
    pub span: Range<usize>,
}

impl Loc {
    pub fn new(file: FileId, span: Range<usize>) -> Self {
        Loc { file, span }
    }
}

/// One problem found in the input: where, what, and how to fix it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub loc: Option<Loc>,
    pub message: String,
    /// Short text under the underline; defaults to nothing.
    pub label: String,
    pub hint: Option<String>,
    /// Other places that explain the problem ("first claimed here").
    pub related: Vec<(Loc, String)>,
}

impl Diagnostic {
    pub fn at(loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            loc: Some(loc),
            message: message.into(),
            label: String::new(),
            hint: None,
            related: Vec::new(),
        }
    }

    /// A problem that has no single place in a file (a missing directory, say).
    pub fn global(message: impl Into<String>) -> Self {
        Diagnostic {
            loc: None,
            message: message.into(),
            label: String::new(),
            hint: None,
            related: Vec::new(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn related(mut self, loc: Loc, text: impl Into<String>) -> Self {
        self.related.push((loc, text.into()));
        self
    }
}

/// Diagnostics plus the sources they point into: what an invalid run reports.
pub struct Report {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
}

/// The machine-readable form of one diagnostic (`--json`).
#[derive(Serialize)]
pub struct JsonDiagnostic {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Report {
    /// Renders every diagnostic the way rustc does: file:line:col, the source line,
    /// the offending text underlined, then the hint.
    pub fn render_human(&self) -> String {
        let config = term::Config::default();
        let mut out = String::new();
        for d in &self.diagnostics {
            let cs = to_codespan(d);
            // Rendering into a String fails only on a file id we never handed out;
            // fall back to the bare message rather than lose the error.
            if term::emit_to_string(&mut out, &config, &self.sources.files, &cs).is_err() {
                out.push_str(&format!("error: {}\n", d.message));
            }
        }
        out
    }

    pub fn to_json(&self) -> Vec<JsonDiagnostic> {
        self.diagnostics
            .iter()
            .map(|d| {
                let (file, line, column) = match &d.loc {
                    Some(loc) => {
                        let (l, c) = self.sources.line_col(loc.file, loc.span.start);
                        (
                            Some(self.sources.name(loc.file).to_string()),
                            Some(l),
                            Some(c),
                        )
                    }
                    None => (None, None, None),
                };
                JsonDiagnostic {
                    file,
                    line,
                    column,
                    message: d.message.clone(),
                    hint: d.hint.clone(),
                }
            })
            .collect()
    }
}

fn to_codespan(d: &Diagnostic) -> CsDiagnostic<FileId> {
    let mut labels = Vec::new();
    if let Some(loc) = &d.loc {
        labels.push(Label::primary(loc.file, loc.span.clone()).with_message(d.label.clone()));
    }
    for (loc, text) in &d.related {
        labels.push(Label::secondary(loc.file, loc.span.clone()).with_message(text.clone()));
    }
    let mut cs = CsDiagnostic::error()
        .with_message(d.message.clone())
        .with_labels(labels);
    if let Some(h) = &d.hint {
        cs = cs.with_notes(vec![format!("hint: {h}")]);
    }
    cs
}

/// A path shown relative to the repository, for stable messages and golden output.
pub fn display_path(repo: &Utf8Path, path: &Utf8Path) -> Utf8PathBuf {
    path.strip_prefix(repo)
        .map(Utf8Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
