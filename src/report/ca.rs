//! The text of `potato ca` results: the CA made by `init`, one line per host
//! that `issue` looked at and what to do next, and `show`'s CA and host
//! certificate states; the `--json` documents. Only public facts
//! (subjects, dates, fingerprints, file names). Pure: builds strings.

use std::fmt::Write as _;

use serde_json::json;

use crate::pki::ops::{CaSummary, HostState};
use crate::ui::Output;

/// The CA `ca init` created (nothing with --quiet).
pub fn init(out: Output, ca: &CaSummary) -> String {
    if out.json {
        return format!("{}\n", json!({ "ca": ca }));
    }
    if out.quiet {
        return String::new();
    }
    format!(
        "wrote {} and {}\n{}, valid until {}\nSHA-256 {}\nnext: `potato ca issue`, then `potato gen`\n",
        ca.certificate, ca.key, ca.subject, ca.not_after, ca.fingerprint
    )
}

/// `ca issue --json`: every host's state.
pub fn issue_json(states: &[HostState]) -> String {
    format!("{}\n", json!({ "hosts": states }))
}

/// One host `ca issue` looked at: issued (and why), or current (not with --quiet).
pub fn issued(out: Output, s: &HostState) -> String {
    let until = s.not_after.as_deref().unwrap_or("?");
    match (&s.renewal, s.issued) {
        (Some(why), true) => format!(
            "issued  {:<14} {} ({why}), valid until {until}\n",
            s.host, s.certificate
        ),
        (None, true) => format!("issued  {:<14} {} (--force)\n", s.host, s.certificate),
        (_, false) if !out.quiet => {
            format!("current {:<14} {} until {until}\n", s.host, s.certificate)
        }
        _ => String::new(),
    }
}

/// What follows `ca issue`: nothing to issue, or `potato gen` (not with --quiet).
pub fn issue_next(out: Output, states: &[HostState]) -> String {
    if out.quiet {
        String::new()
    } else if states.is_empty() {
        "no host serves internal TLS; nothing to issue\n".into()
    } else if states.iter().any(|s| s.issued) {
        "next: `potato gen` (the certificates go into the hosts' generations)\n".into()
    } else {
        String::new()
    }
}

/// `ca show`: the CA, then each internal-TLS host's certificate state.
pub fn show(out: Output, ca: &CaSummary, states: &[HostState]) -> String {
    if out.json {
        return format!("{}\n", json!({ "ca": ca, "hosts": states }));
    }
    let mut o = format!(
        "CA      {} ({})\n        valid until {}\n        SHA-256 {}\n",
        ca.subject, ca.certificate, ca.not_after, ca.fingerprint
    );
    for s in states {
        let state = match &s.renewal {
            None => "current".to_string(),
            Some(why) => format!("needs `potato ca issue {}`: {why}", s.host),
        };
        let _ = writeln!(
            o,
            "{:<14} {:<24} until {:<20} {state}",
            s.host,
            s.domain,
            s.not_after.as_deref().unwrap_or("-")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(issued: bool, renewal: Option<crate::pki::ops::Renewal>) -> HostState {
        HostState {
            host: "n250".into(),
            domain: "n250.home.arpa".into(),
            certificate: "secrets/n250/tls-n250.crt".into(),
            renewal,
            not_after: Some("2027-01-01".into()),
            issued,
            warning: None,
        }
    }

    fn out(quiet: bool) -> Output {
        Output {
            json: false,
            quiet,
            verbose: 0,
        }
    }

    #[test]
    fn issue_says_why_a_certificate_was_issued_and_hides_current_ones_when_quiet() {
        let missing = state(true, Some(crate::pki::ops::Renewal::Missing));
        assert!(
            issued(out(true), &missing).contains("(no certificate), valid until 2027-01-01"),
            "{}",
            issued(out(true), &missing)
        );
        assert!(issued(out(false), &state(true, None)).ends_with("(--force)\n"));
        let current = state(false, None);
        assert!(issued(out(false), &current).starts_with("current n250 "));
        assert_eq!(issued(out(true), &current), "");
    }

    #[test]
    fn issue_ends_with_what_to_do_next() {
        assert_eq!(
            issue_next(out(false), &[]),
            "no host serves internal TLS; nothing to issue\n"
        );
        assert!(issue_next(out(false), &[state(true, None)]).starts_with("next: `potato gen`"));
        assert_eq!(issue_next(out(false), &[state(false, None)]), "");
        assert_eq!(issue_next(out(true), &[]), "");
    }
}
