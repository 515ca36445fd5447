//! The health-check loop of the confirm phase: every `[[health]]` check is tried
//! on the host until it passes, fails (its retries after the grace period are
//! used up) or the confirm deadline comes. Checks run round by round, each on
//! its own schedule; a pass ends a check at once.
//!
//! Owns the timing rules and the failure's wording. It does not talk to the host
//! itself: the caller hands in a probe (the agent over SSH) and a clock, so the
//! rules are tested without waiting.

use std::time::{Duration, Instant};

use crate::plan::{HealthCheck, Probe};

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Pass,
    /// The check ran and failed: what the host saw.
    Fail(String),
    /// The check could not run (the connection broke).
    Error(String),
}

/// Why the checks did not all pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthFailure {
    #[error(
        "health check `{probe}` failed: {last}; {attempts} attempts in {secs}s (grace {grace}s, then {retries} tries {interval}s apart)"
    )]
    Failed {
        probe: Probe,
        last: String,
        attempts: u32,
        secs: u64,
        grace: u64,
        retries: u32,
        interval: u64,
    },
    #[error(
        "health check `{probe}` had not passed when the confirm timeout ran out: {last}; {attempts} attempts in {secs}s"
    )]
    OutOfTime {
        probe: Probe,
        last: String,
        attempts: u32,
        secs: u64,
    },
    #[error("health check `{probe}` could not run: {error}")]
    CouldNotRun { probe: Probe, error: String },
}

/// A check that passed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    pub probe: Probe,
    pub attempts: u32,
    pub after: Duration,
}

/// Time as the loop sees it: elapsed since the loop began, and sleeping.
pub trait Clock {
    fn elapsed(&self) -> Duration;
    fn sleep(&mut self, d: Duration);
}

/// The wall clock.
pub struct WallClock(pub Instant);

impl Clock for WallClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

struct State {
    passed: bool,
    attempts: u32,
    /// Failed attempts that began after the grace period.
    counted: u32,
    last: String,
    next: Duration,
}

/// Runs `checks` until all pass or one fails; nothing runs after `budget`
/// (an attempt may take up to its check's interval, so none starts unless it
/// would end in time).
pub fn wait_until_healthy(
    checks: &[HealthCheck],
    budget: Duration,
    clock: &mut dyn Clock,
    probe: &mut dyn FnMut(&HealthCheck) -> Attempt,
) -> Result<Vec<Passed>, HealthFailure> {
    let mut states: Vec<State> = checks
        .iter()
        .map(|_| State {
            passed: false,
            attempts: 0,
            counted: 0,
            last: "not tried".into(),
            next: Duration::ZERO,
        })
        .collect();
    let mut passed = Vec::new();
    loop {
        for (c, st) in checks.iter().zip(states.iter_mut()) {
            let began = clock.elapsed();
            if st.passed || st.next > began {
                continue;
            }
            st.attempts += 1;
            match probe(c) {
                Attempt::Pass => {
                    st.passed = true;
                    passed.push(Passed {
                        probe: c.probe.clone(),
                        attempts: st.attempts,
                        after: clock.elapsed(),
                    });
                }
                Attempt::Error(error) => {
                    return Err(HealthFailure::CouldNotRun {
                        probe: c.probe.clone(),
                        error,
                    });
                }
                Attempt::Fail(why) => {
                    st.last = why;
                    if began >= secs(c.grace_secs) {
                        st.counted += 1;
                    }
                    if st.counted >= c.retries {
                        return Err(HealthFailure::Failed {
                            probe: c.probe.clone(),
                            last: st.last.clone(),
                            attempts: st.attempts,
                            secs: clock.elapsed().as_secs(),
                            grace: c.grace_secs,
                            retries: c.retries,
                            interval: c.interval_secs,
                        });
                    }
                    st.next = next_attempt(c, began);
                }
            }
        }
        let pending = checks.iter().zip(states.iter()).filter(|(_, s)| !s.passed);
        let Some((c, st)) = pending.min_by_key(|(_, s)| s.next) else {
            return Ok(passed);
        };
        if st.next + secs(c.interval_secs) > budget {
            return Err(HealthFailure::OutOfTime {
                probe: c.probe.clone(),
                last: st.last.clone(),
                attempts: st.attempts,
                secs: clock.elapsed().as_secs(),
            });
        }
        let now = clock.elapsed();
        if st.next > now {
            clock.sleep(st.next - now);
        }
    }
}

/// One interval after `began`, or the end of the grace period if that comes
/// first: so the first counted attempt starts right when the grace ends and the
/// check ends within grace + retries × interval.
fn next_attempt(c: &HealthCheck, began: Duration) -> Duration {
    let grace = secs(c.grace_secs);
    let next = began + secs(c.interval_secs);
    if began < grace && grace < next {
        grace
    } else {
        next
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that moves only when the loop sleeps or a probe takes time.
    struct FakeClock(Duration);

    impl Clock for FakeClock {
        fn elapsed(&self) -> Duration {
            self.0
        }
        fn sleep(&mut self, d: Duration) {
            self.0 += d;
        }
    }

    fn check(probe: Probe, grace: u64, interval: u64, retries: u32) -> HealthCheck {
        HealthCheck {
            probe,
            grace_secs: grace,
            interval_secs: interval,
            retries,
        }
    }

    fn tcp() -> Probe {
        Probe::Tcp("127.0.0.1:443".into())
    }

    /// Runs the loop where the probe passes from `passes_at` on (never if
    /// None); returns the result and the times the probe ran.
    fn run(
        c: &HealthCheck,
        passes_at: Option<u64>,
        budget: u64,
    ) -> (Result<Vec<Passed>, HealthFailure>, Vec<u64>) {
        let mut clock = FakeClock(Duration::ZERO);
        let times = std::cell::RefCell::new(Vec::new());
        let now = std::cell::Cell::new(Duration::ZERO);
        let mut probe = |_: &HealthCheck| {
            let t = now.get().as_secs();
            times.borrow_mut().push(t);
            match passes_at {
                Some(p) if t >= p => Attempt::Pass,
                _ => Attempt::Fail(format!("refused at {t}s")),
            }
        };
        // The probe reads the clock through `now`, which the wrapper keeps in step.
        struct Stepped<'a>(&'a mut FakeClock, &'a std::cell::Cell<Duration>);
        impl Clock for Stepped<'_> {
            fn elapsed(&self) -> Duration {
                self.1.set(self.0.0);
                self.0.0
            }
            fn sleep(&mut self, d: Duration) {
                self.0.sleep(d);
                self.1.set(self.0.0);
            }
        }
        let r = wait_until_healthy(
            std::slice::from_ref(c),
            Duration::from_secs(budget),
            &mut Stepped(&mut clock, &now),
            &mut probe,
        );
        (r, times.into_inner())
    }

    #[test]
    fn a_check_that_passes_late_within_the_grace_period_passes() {
        let c = check(tcp(), 10, 2, 3);
        let (r, times) = run(&c, Some(7), 30);
        let passed = r.unwrap();
        assert_eq!(passed[0].after, Duration::from_secs(8));
        assert_eq!(times, vec![0, 2, 4, 6, 8]);
    }

    #[test]
    fn failures_count_only_after_the_grace_period_and_end_on_the_last_retry() {
        let c = check(tcp(), 5, 2, 3);
        let (r, times) = run(&c, None, 30);
        // 0, 2, 4 are in the grace period; 5 (the grace's end), 7, 9 count.
        assert_eq!(times, vec![0, 2, 4, 5, 7, 9]);
        match r.unwrap_err() {
            HealthFailure::Failed { last, attempts, .. } => {
                assert_eq!(last, "refused at 9s");
                assert_eq!(attempts, 6);
            }
            other => panic!("{other:?}"),
        }
        assert!(c.budget_secs() >= 9 + c.interval_secs);
    }

    #[test]
    fn without_grace_the_retries_alone_decide() {
        let c = check(tcp(), 0, 1, 2);
        let (r, times) = run(&c, None, 30);
        assert_eq!(times, vec![0, 1]);
        assert!(matches!(r, Err(HealthFailure::Failed { .. })));
    }

    #[test]
    fn the_confirm_deadline_stops_a_check_and_names_it() {
        let c = check(tcp(), 60, 2, 3);
        let (r, times) = run(&c, None, 9);
        // No attempt starts unless it ends by 9s: the last begins at 6s.
        assert_eq!(times, vec![0, 2, 4, 6]);
        let e = r.unwrap_err();
        assert!(matches!(e, HealthFailure::OutOfTime { .. }));
        let text = e.to_string();
        assert!(
            text.contains("`tcp 127.0.0.1:443`") && text.contains("refused at 6s"),
            "{text}"
        );
    }

    #[test]
    fn a_check_that_cannot_run_stops_at_once() {
        let c = check(Probe::Unit("a.service".into()), 5, 1, 3);
        let mut n = 0;
        let r = wait_until_healthy(
            &[c],
            Duration::from_secs(30),
            &mut FakeClock(Duration::ZERO),
            &mut |_| {
                n += 1;
                Attempt::Error("connection reset".into())
            },
        );
        assert_eq!(n, 1);
        assert_eq!(
            r.unwrap_err().to_string(),
            "health check `unit a.service` could not run: connection reset"
        );
    }

    #[test]
    fn every_check_must_pass_and_the_first_to_fail_is_reported() {
        let ok = check(Probe::Unit("a.service".into()), 0, 1, 1);
        let bad = check(
            Probe::Container {
                name: "web".into(),
                engine: crate::inventory::schema::Backend::Podman,
            },
            0,
            1,
            2,
        );
        let mut clock = FakeClock(Duration::ZERO);
        let r = wait_until_healthy(
            &[ok, bad],
            Duration::from_secs(30),
            &mut clock,
            &mut |c| match c.probe {
                Probe::Unit(_) => Attempt::Pass,
                _ => Attempt::Fail("container web is running, health unhealthy".into()),
            },
        );
        let text = r.unwrap_err().to_string();
        assert!(
            text.starts_with("health check `container web` failed: container web is running, health unhealthy; 2 attempts"),
            "{text}"
        );
    }
}
