//! Running a training call on rayon's pool with a second thread kept awake.
//!
//! The block schedule of a small network (the acoustic-vowel configuration: 412 stacked rows,
//! 40 -> 20) splits a few hundred pieces of work per epoch over the pool, each a few
//! microseconds long. Between two splits rayon's idle worker spins briefly, then yields, then
//! sleeps; waking it costs tens of microseconds on a virtual machine, and whether it falls
//! asleep between splits varies from run to run. Measured on a 2-core machine: the
//! same acoustic epoch took 0.85-0.91 ms in some runs and 1.4-1.7 ms in others, with a third
//! of the CPU time in `sched_yield` and the scheduler.
//!
//! [`run_awake`] removes that variance: it runs the call on one pool thread and parks a
//! *watcher* on another, which keeps stealing the call's split work (through
//! [`rayon::yield_now`]) until the call returns. Results do not change: the work is split the
//! same way whichever thread runs a part.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the watcher may go without finding work before it starts sleeping between
/// looks. Below this it only spins (and yields the CPU to the OS now and then), so a split
/// that follows serial work of up to this length is picked up within a microsecond.
const SPIN_FOR: Duration = Duration::from_millis(2);

/// The watcher's sleep once it has found no work for [`SPIN_FOR`]: a split arriving then waits
/// at most this long, at most 5 % of the serial stretch before it. A physical system served by
/// a slow device (seconds per query) therefore costs the watcher almost no CPU.
const NAP: Duration = Duration::from_micros(100);

/// Runs `f` on a thread of rayon's global pool while, if the pool has a second thread and the
/// caller is not already on the pool, that thread watches for and runs the parts `f` splits off
/// (see the module documentation). Called from inside the pool, `f` simply runs: the pool's
/// threads are then already busy with the caller's own parallel work.
///
/// The result is `f`'s; a panic in `f` is propagated after the watcher has stopped.
pub fn run_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    if rayon::current_num_threads() < 2 {
        // Entering the pool still saves the cold hand-off on each split of `f`.
        return rayon::scope(|_| f());
    }
    let done = AtomicBool::new(false);
    let (r, ()) = rayon::join(
        || {
            // Set on return and on unwind alike, so the watcher always stops.
            let _stop = Stop(&done);
            f()
        },
        || watch(&done),
    );
    r
}

struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The watcher: runs pending pool work until `done`.
fn watch(done: &AtomicBool) {
    let mut idle_since: Option<Instant> = None;
    let mut idle_rounds = 0u32;
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            idle_since = None;
            idle_rounds = 0;
            continue;
        }
        idle_rounds += 1;
        if !idle_rounds.is_multiple_of(64) {
            std::hint::spin_loop();
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < SPIN_FOR {
            std::thread::yield_now();
        } else {
            std::thread::sleep(NAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn returns_the_result_of_split_work() {
        let v: Vec<u64> = (0..10_000).collect();
        let s = run_awake(|| v.par_iter().map(|x| x * x).sum::<u64>());
        assert_eq!(s, v.iter().map(|x| x * x).sum::<u64>());
    }

    #[test]
    fn nested_and_concurrent_calls_finish() {
        // Several threads outside the pool, each nesting a call: every watcher must stop.
        std::thread::scope(|sc| {
            for t in 0..4u64 {
                sc.spawn(move || {
                    let r = run_awake(|| run_awake(|| (0..1000u64).into_par_iter().map(|x| x + t).sum::<u64>()));
                    assert_eq!(r, 499_500 + 1000 * t);
                });
            }
        });
    }

    #[test]
    fn a_panic_propagates_and_stops_the_watcher() {
        let r = std::panic::catch_unwind(|| run_awake(|| panic!("inside")));
        assert!(r.is_err());
        // The pool is still usable afterwards (a watcher left spinning would hold a thread).
        assert_eq!(run_awake(|| (0..100u32).into_par_iter().sum::<u32>()), 4950);
    }
}
