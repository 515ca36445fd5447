//! The potato binary: parse arguments, run, print any error once, exit.

use clap::Parser;
use potato::cli::{self, Cli};
use potato::error::Error;

fn main() {
    let args = Cli::parse();
    let json = args.global.json;
    let code = match cli::run(args) {
        Ok(()) => 0,
        Err(e) => {
            print_error(&e, json);
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Errors go to stderr for humans; with --json, one object on stdout.
fn print_error(e: &Error, json: bool) {
    if json && matches!(e, Error::HostsFailed { .. } | Error::AuditFailed { .. }) {
        return; // the results document already says ok: false
    }
    if json {
        let diagnostics = match e {
            Error::Invalid(report) => serde_json::to_value(report.to_json()).unwrap_or_default(),
            _ => serde_json::Value::Array(vec![]),
        };
        let v = serde_json::json!({ "ok": false, "error": e.to_string(), "hint": e.hint(), "diagnostics": diagnostics });
        println!("{v}");
        return;
    }
    if let Error::Invalid(report) = e {
        eprint!("{}", report.render_human());
    }
    eprintln!("error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("hint: {h}");
    }
}
