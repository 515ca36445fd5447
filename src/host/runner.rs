//! The one parallel host runner: runs a blocking job per host, at most
//! `parallel` at once, on plain threads (each job owns its SSH session), while
//! the calling thread does something else (renders events). Used by deploy,
//! exec and status. It knows nothing about what a job does.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Runs `job` on every item, at most `parallel` (at least 1) at once, and
/// meanwhile runs `meanwhile` on the calling thread. Returns the results in the
/// items' order. `job` is dropped as soon as the last job ends (so a channel
/// sender it owns closes, and a `meanwhile` reading that channel returns).
pub fn run_parallel<T, R, M>(
    items: Vec<T>,
    parallel: usize,
    job: impl Fn(T) -> R + Send + Sync,
    meanwhile: impl FnOnce() -> M,
) -> (Vec<R>, M)
where
    T: Send,
    R: Send,
{
    let count = items.len();
    let queue: Mutex<VecDeque<(usize, T)>> = Mutex::new(items.into_iter().enumerate().collect());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..count).map(|_| None).collect());
    let workers = parallel.max(1).min(count.max(1));
    let m = std::thread::scope(|s| {
        let job = Arc::new(job);
        for _ in 0..workers {
            let (job, queue, results) = (job.clone(), &queue, &results);
            s.spawn(move || {
                loop {
                    let next = queue.lock().expect("queue lock").pop_front();
                    let Some((i, item)) = next else { break };
                    let r = job(item);
                    results.lock().expect("results lock")[i] = Some(r);
                }
            });
        }
        drop(job);
        meanwhile()
    });
    let results = results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect();
    (results, m)
}

/// `run_parallel` with nothing to do meanwhile.
pub fn for_each<T: Send, R: Send>(
    items: Vec<T>,
    parallel: usize,
    job: impl Fn(T) -> R + Send + Sync,
) -> Vec<R> {
    run_parallel(items, parallel, job, || ()).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, mpsc};
    use std::time::Duration;

    /// A barrier that gives up after `limit` and says whether everyone came.
    struct Rendezvous {
        arrived: Mutex<usize>,
        all: Condvar,
        want: usize,
    }

    impl Rendezvous {
        fn wait(&self) -> bool {
            let mut n = self.arrived.lock().unwrap();
            *n += 1;
            self.all.notify_all();
            let (n, _) = self
                .all
                .wait_timeout_while(n, Duration::from_secs(20), |n| *n < self.want)
                .unwrap();
            *n >= self.want
        }
    }

    #[test]
    fn jobs_run_at_once_and_results_keep_the_items_order() {
        let r = Rendezvous {
            arrived: Mutex::new(0),
            all: Condvar::new(),
            want: 5,
        };
        // Each job returns only when all five are running: one by one, the
        // first would wait out the limit and report false.
        let out = for_each((0..5).collect(), 5, |i: u32| (i, r.wait()));
        assert_eq!(out, (0..5).map(|i| (i, true)).collect::<Vec<_>>());
    }

    #[test]
    fn never_more_than_parallel_at_once() {
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let out = for_each((0..12).collect(), 3, |i: u32| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            now.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..12).map(|i| i * 2).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(for_each(Vec::<u32>::new(), 4, |i| i), Vec::<u32>::new());
    }

    #[test]
    fn meanwhile_ends_when_the_jobs_drop_their_sender() {
        let (tx, rx) = mpsc::channel();
        let (out, seen) = run_parallel(
            vec![1, 2, 3],
            2,
            move |i: u32| {
                tx.send(i).unwrap();
                i
            },
            || {
                let mut v: Vec<u32> = rx.iter().collect();
                v.sort();
                v
            },
        );
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(seen, vec![1, 2, 3]);
    }
}
