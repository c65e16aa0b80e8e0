//! Retention in the built-in store: when each task expires, and the background sweep.
//!
//! A write that leaves a task in a status the policy retains stamps it with an expiry
//! instant (the store's clock at the write plus the status's maximum age) and files it in
//! [`Deadlines`], ordered by that instant, so that `purge` and the sweep find what has
//! expired without looking at anything else. Reads compare the stamp with the clock, so
//! an expired task is invisible at once, whether or not it has been removed yet.
//!
//! The clock is `tokio::time::Instant`: outside a runtime, or in one whose clock is not
//! paused, it reads the system's monotonic clock (no runtime is needed); in a test that
//! pauses time, it reads the paused clock, so expiry can be tested without waiting.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::TaskStatus;
use tokio::time::Instant;

/// The store's clock.
pub(super) fn now() -> Instant {
    Instant::now()
}

/// When a task written now into `status` expires under `policy`, if it does.
pub(super) fn expiry(policy: &RetentionPolicy, status: TaskStatus) -> Option<Instant> {
    // The policy caps ages at 100 years, so the addition cannot overflow; if a platform's
    // clock could not represent it, the task is simply kept.
    policy
        .max_age(status)
        .and_then(|age| now().checked_add(age))
}

/// Whether a task stamped `expires` is still visible at this moment.
pub(super) fn is_live(expires: Option<Instant>) -> bool {
    expires.is_none_or(|at| at > now())
}

/// The tasks that expire, by expiry instant.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    set: BTreeSet<(Instant, Arc<str>)>,
}

impl Deadlines {
    /// Files a task's new expiry in place of its old one.
    pub(super) fn reschedule(
        &mut self,
        task_id: &Arc<str>,
        old: Option<Instant>,
        new: Option<Instant>,
    ) {
        if old == new {
            return;
        }
        if let Some(at) = old {
            self.set.remove(&(at, Arc::clone(task_id)));
        }
        if let Some(at) = new {
            self.set.insert((at, Arc::clone(task_id)));
        }
    }

    /// Up to `max` tasks that have expired by `at`, earliest first.
    pub(super) fn expired(&self, at: Instant, max: usize) -> Vec<Arc<str>> {
        self.set
            .iter()
            .take_while(|(expires, _)| *expires <= at)
            .take(max)
            .map(|(_, id)| Arc::clone(id))
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    pub(super) fn clear(&mut self) {
        self.set.clear();
    }
}

/// How many expired tasks one critical section removes: purging a million tasks then
/// takes many short turns at the lock, and readers and writers get theirs in between.
pub(super) const BATCH: usize = 256;

/// How often the background sweep runs: a tenth of the shortest maximum age, from one
/// second to one minute. An expired task is invisible from the moment it expires; the
/// sweep only frees its memory, so it need not be prompt.
pub(super) fn sweep_interval(policy: &RetentionPolicy) -> Duration {
    let shortest = [
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ]
    .into_iter()
    .filter_map(|s| policy.max_age(s))
    .min()
    .unwrap_or(Duration::from_secs(60));
    (shortest / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Something the sweep can purge: the store's shared state, held weakly so that the
/// sweep never keeps a dropped store alive.
pub(super) trait Sweepable: Send + Sync + 'static {
    /// Removes up to [`BATCH`] tasks expired by `at`; returns how many.
    fn purge_batch(&self, at: Instant) -> usize;
}

/// The background sweep: every `every`, removes what has expired, a batch per turn at
/// the lock, yielding to the runtime between batches. Ends when the store is gone.
pub(super) async fn sweep<S: Sweepable>(store: Weak<S>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; nothing has expired yet.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let at = now();
        let mut removed = 0;
        loop {
            let Some(store) = store.upgrade() else { return };
            let n = store.purge_batch(at);
            drop(store);
            removed += n;
            if n < BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        if removed > 0 {
            tracing::debug!(removed, "built-in store: expired tasks swept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_runs_a_tenth_of_the_shortest_age_within_bounds() {
        let policy = RetentionPolicy::parse("completed=7d,failed=100s").unwrap();
        assert_eq!(sweep_interval(&policy), Duration::from_secs(10));
        let policy = RetentionPolicy::parse("canceled=3s").unwrap();
        assert_eq!(sweep_interval(&policy), Duration::from_secs(1));
        let policy = RetentionPolicy::parse("completed=30d").unwrap();
        assert_eq!(sweep_interval(&policy), Duration::from_secs(60));
    }

    #[test]
    fn deadlines_are_found_in_order_up_to_a_bound() {
        let mut deadlines = Deadlines::default();
        let start = now();
        for n in 0..5u64 {
            let id: Arc<str> = Arc::from(format!("t{n}"));
            deadlines.reschedule(&id, None, Some(start + Duration::from_secs(5 - n)));
        }
        let due = deadlines.expired(start + Duration::from_secs(3), 10);
        let due: Vec<&str> = due.iter().map(|id| &**id).collect();
        assert_eq!(due, ["t4", "t3", "t2"]);
        assert_eq!(
            deadlines.expired(start + Duration::from_secs(9), 2).len(),
            2
        );
        let id: Arc<str> = Arc::from("t4");
        deadlines.reschedule(&id, Some(start + Duration::from_secs(1)), None);
        assert_eq!(deadlines.len(), 4);
    }
}
