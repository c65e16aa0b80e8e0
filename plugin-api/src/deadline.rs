//! [`within`]: a time limit on a future, on any executor, without a timer per call.
//!
//! The host puts a deadline on every call into a plugin, and a plugin on each of its
//! operations. With a tokio timer per call, each call that waits registers a timer in
//! an otherwise empty timer wheel, and tokio then wakes the thread parked in its driver
//! to shorten that thread's sleep: one more thread wake-up per operation, the largest
//! cost left in a one-at-a-time round trip to a server on a small machine.
//!
//! Here one thread of the library keeps every pending deadline. A call registers its
//! deadline only if it does not finish at its first poll, and wakes that thread only if
//! the new deadline is earlier than the one it sleeps until. When it runs out of
//! deadlines the thread sleeps on for the shortest limit it has seen before it sleeps
//! without end, so calls that follow one another (each deadline later than the last)
//! never wake it. A deadline fires on time; it follows the system's monotonic clock,
//! not a paused tokio clock.
//!
//! ```
//! use std::time::Duration;
//! use ta_persistence_api::deadline::{within, Elapsed};
//!
//! # futures::executor::block_on(async {
//! let quick = within(Duration::from_secs(5), async { 7 }).await;
//! assert_eq!(quick, Ok(7));
//! let stuck = within(Duration::from_millis(10), std::future::pending::<()>()).await;
//! assert_eq!(stuck, Err(Elapsed));
//! # });
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// The limit passed before the future finished; the future was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the time limit passed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` until it finishes or `limit` passes, on any executor.
///
/// A future that finishes at its first poll costs no registration. If the deadline
/// thread cannot be started (the process is out of threads), the future runs without a
/// limit, and a warning says so once.
pub async fn within<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let first = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
    if let Poll::Ready(out) = first {
        return Ok(out);
    }
    let Some(keeper) = Keeper::get() else {
        return Ok(future.await);
    };
    let mut entry: Option<Entry> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let entry = entry.get_or_insert_with(|| keeper.register(limit));
        if entry.expired_or_wake(cx.waker()) {
            Poll::Ready(Err(Elapsed))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One pending deadline: removed from the keeper when dropped.
struct Entry {
    keeper: &'static Keeper,
    key: (Instant, u64),
    slot: Arc<Mutex<Slot>>,
}

/// What the keeper and the waiting call share.
#[derive(Default)]
struct Slot {
    expired: bool,
    waker: Option<Waker>,
}

impl Entry {
    /// Whether the deadline passed; if not, `waker` is woken when it does.
    fn expired_or_wake(&self, waker: &Waker) -> bool {
        let mut slot = lock(&self.slot);
        if slot.expired {
            return true;
        }
        match &mut slot.waker {
            Some(kept) if kept.will_wake(waker) => {}
            kept => *kept = Some(waker.clone()),
        }
        false
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        lock(&self.keeper.state).pending.remove(&self.key);
    }
}

/// The deadline thread's state.
struct Keeper {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    pending: BTreeMap<(Instant, u64), Arc<Mutex<Slot>>>,
    /// Tells apart deadlines at the same instant.
    next_key: u64,
    /// When the thread wakes up by itself; `None` while it sleeps without end.
    wakes_at: Option<Instant>,
    /// The shortest limit registered: how long the thread lingers without deadlines.
    shortest: Duration,
}

impl Keeper {
    /// The library's keeper, its thread started on first use.
    fn get() -> Option<&'static Keeper> {
        static KEEPER: OnceLock<Option<&'static Keeper>> = OnceLock::new();
        *KEEPER.get_or_init(|| {
            let keeper: &'static Keeper = Box::leak(Box::new(Keeper {
                state: Mutex::new(State {
                    pending: BTreeMap::new(),
                    next_key: 0,
                    wakes_at: None,
                    shortest: Duration::MAX,
                }),
                changed: Condvar::new(),
            }));
            match std::thread::Builder::new()
                .name("ta-deadlines".to_owned())
                .spawn(move || keeper.run())
            {
                Ok(_) => Some(keeper),
                Err(err) => {
                    tracing::warn!(%err, "cannot start the deadline thread: calls run without a time limit");
                    None
                }
            }
        })
    }

    fn register(&'static self, limit: Duration) -> Entry {
        let now = Instant::now();
        // A limit too long for the clock is as good as none.
        let at = now
            .checked_add(limit)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        let slot = Arc::new(Mutex::new(Slot::default()));
        let mut state = lock(&self.state);
        let key = (at, state.next_key);
        state.next_key += 1;
        state.shortest = state.shortest.min(limit);
        state.pending.insert(key, Arc::clone(&slot));
        if state.wakes_at.is_none_or(|wakes| at < wakes) {
            state.wakes_at = Some(at);
            self.changed.notify_one();
        }
        Entry {
            keeper: self,
            key,
            slot,
        }
    }

    /// The thread: fires what is due, then sleeps until the next deadline.
    fn run(&self) {
        let mut state = lock(&self.state);
        let mut lingered = false;
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = state.pending.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                // Wakers run without the lock held: one may register a new deadline.
                drop(state);
                for slot in due {
                    let waker = {
                        let mut slot = lock(&slot);
                        slot.expired = true;
                        slot.waker.take()
                    };
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                state = lock(&self.state);
                continue;
            }
            let wakes_at = match state.pending.first_key_value() {
                Some((&(at, _), _)) => {
                    lingered = false;
                    Some(at)
                }
                // Calls one after another: the next one's deadline is later than now plus
                // the shortest limit, so sleeping that long spares it a wake-up.
                None if !lingered => {
                    lingered = true;
                    now.checked_add(state.shortest)
                }
                None => None,
            };
            state.wakes_at = wakes_at;
            state = match wakes_at {
                Some(at) => {
                    let (state, timed_out) = self
                        .changed
                        .wait_timeout(state, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner);
                    if !timed_out.timed_out() {
                        // A new deadline arrived: linger afresh once it is gone.
                        lingered = false;
                    }
                    state
                }
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// Nothing here panics while holding a lock, but a waker might: the state stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many pending deadlines fall within `window` of `at` (tests run in parallel: each
/// looks for its own by a limit no other test uses).
#[cfg(test)]
fn pending_near(at: Instant, window: Duration) -> usize {
    let state = lock(&Keeper::get().expect("the deadline thread").state);
    state
        .pending
        .keys()
        .filter(|(t, _)| *t + window > at && *t < at + window)
        .count()
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn a_stuck_future_elapses_after_its_limit_and_not_before() {
        let start = Instant::now();
        let out = block_on(within(
            Duration::from_millis(50),
            std::future::pending::<()>(),
        ));
        assert_eq!(out, Err(Elapsed));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_future_that_finishes_first_keeps_its_output_and_leaves_no_deadline() {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(5).unwrap();
        });
        let limit = Duration::from_secs(12_345);
        let start = Instant::now();
        let out = block_on(within(limit, rx));
        sender.join().unwrap();
        assert_eq!(out, Ok(Ok(5)));
        assert_eq!(
            pending_near(start + limit, Duration::from_secs(60)),
            0,
            "a finished call left its deadline behind"
        );
    }

    #[test]
    fn a_short_limit_fires_on_time_behind_a_long_one() {
        block_on(async {
            let long = within(Duration::from_secs(3600), std::future::pending::<()>());
            let short = within(Duration::from_millis(30), std::future::pending::<()>());
            let start = Instant::now();
            let mut long = pin!(long);
            // The long one registers first, so the thread sleeps until it; the short
            // one must wake the thread early.
            std::future::poll_fn(|cx| {
                assert!(long.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(short.await, Err(Elapsed));
            assert!(start.elapsed() < Duration::from_secs(60));
        });
    }

    #[test]
    fn each_deadline_fires_after_its_own_limit() {
        let limits = [40u64, 10, 25, 10];
        let handles: Vec<_> = limits
            .iter()
            .map(|&ms| {
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let out = block_on(within(
                        Duration::from_millis(ms),
                        std::future::pending::<()>(),
                    ));
                    (out, start.elapsed())
                })
            })
            .collect();
        for (handle, ms) in handles.into_iter().zip(limits) {
            let (out, took) = handle.join().unwrap();
            assert_eq!(out, Err(Elapsed));
            assert!(
                took >= Duration::from_millis(ms),
                "{ms} ms fired after {took:?}"
            );
        }
    }

    #[test]
    fn a_dropped_call_removes_its_deadline() {
        block_on(async {
            let limit = Duration::from_secs(7_200);
            let at = Instant::now() + limit;
            let mut call = Box::pin(within(limit, std::future::pending::<()>()));
            std::future::poll_fn(|cx| {
                assert!(call.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(pending_near(at, Duration::from_secs(60)), 1);
            drop(call);
            assert_eq!(pending_near(at, Duration::from_secs(60)), 0);
        });
    }
}
