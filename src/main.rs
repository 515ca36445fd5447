//! The potato binary: parse arguments, run, print any error once, exit.

use clap::{CommandFactory, FromArgMatches};
use potato::cli::{self, Cli};
use potato::error::Error;

fn main() {
    let matches = Cli::command().get_matches();
    let command = cli::command_name(&matches);
    let args = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let json = args.global.json;
    let code = match cli::run(args) {
        Ok(()) => 0,
        Err(e) => {
            let e = e.in_command(&command);
            print_error(&e, json);
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Errors go to stderr for humans; with --json, one object on stdout.
fn print_error(e: &Error, json: bool) {
    if json
        && matches!(
            e,
            Error::HostsFailed { .. } | Error::AuditFailed { .. } | Error::MissingPrograms { .. }
        )
    {
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
