//! Retention: expired tasks vanish from every read, a write restarts or clears the clock,
//! unretained statuses stay, and `purge` removes what has expired.
//!
//! These cases need a store configured with [`suite_policy`], so they are not in
//! [`cases`](super::cases): run them with [`run_retention_suite`](super::run_retention_suite).
//! They wait on tokio's clock, so a backend whose expiry follows tokio's clock can run
//! them in paused time; others wait for real, a few seconds in all.

use std::time::Duration;

use super::fixtures::{self, utc_at, Ns};
use super::CaseResult;
use crate::document_store::DocumentManager;
use crate::listing::{PageRequest, TaskFilter};
use crate::model::{AgentTask, TaskStatus};
use crate::retention::RetentionPolicy;

/// The policy the retention cases expect their store to have.
pub const SUITE_POLICY: &str = "completed=1s,failed=3s";

/// [`SUITE_POLICY`], parsed.
pub fn suite_policy() -> RetentionPolicy {
    RetentionPolicy::parse(SUITE_POLICY).unwrap_or_default()
}

/// Comfortably past a 1 s retention: noisy machines schedule late.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1_700);

fn task_with(ns: &Ns, name: &str, status: TaskStatus) -> AgentTask {
    let id = ns.id(name);
    let mut task = fixtures::task(&id, &[format!("{id}-r")]);
    task.session_id = ns.id("s");
    task.status = status;
    task
}

async fn listed(store: &dyn DocumentManager, ns: &Ns) -> crate::Result<Vec<String>> {
    let page = store
        .list_tasks(
            &TaskFilter::all().session(ns.id("s")),
            &PageRequest::default(),
        )
        .await?;
    Ok(page.tasks.into_iter().map(|s| s.task_id).collect())
}

/// A task past its status's retention is gone from load, lookups and listings; update
/// and delete answer `NotFound`; its id can be created again.
pub async fn expired_tasks_vanish_from_every_read(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("expired_tasks_vanish_from_every_read");
    let task = task_with(&ns, "t", TaskStatus::Completed);
    let request = format!("{}-r", task.task_id);
    must!(store.create(task.clone()).await);
    check!(
        found_by!(store, request).is_some(),
        "a fresh task is not found by its request id"
    );
    check_eq!(
        must!(listed(store, &ns).await).len(),
        1,
        "listed before expiry"
    );
    tokio::time::sleep(PAST_ONE_SECOND).await;
    check_absent!(store, task.task_id);
    check!(
        must!(store.load_with_etag(&task.task_id).await).is_none(),
        "load_with_etag found an expired task"
    );
    check_eq!(
        found_by!(store, request),
        None,
        "lookup of an expired task's request id"
    );
    check_eq!(
        must!(listed(store, &ns).await),
        Vec::<String>::new(),
        "listed after expiry"
    );
    expect_err!(store.update(task.clone()).await, NotFound);
    expect_err!(store.delete(&task.task_id).await, NotFound);
    let mut again = task.clone();
    again.status = TaskStatus::Running;
    must!(store.create(again.clone()).await);
    check_task!(
        loaded!(store, task.task_id),
        again,
        "the task created again"
    );
    Ok(())
}

/// Running and paused tasks, and statuses the policy does not name, never expire.
pub async fn unretained_statuses_stay(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("unretained_statuses_stay");
    let tasks = [
        task_with(&ns, "running", TaskStatus::Running),
        task_with(&ns, "paused", TaskStatus::Paused),
        task_with(&ns, "canceled", TaskStatus::Canceled),
    ];
    for task in &tasks {
        must!(store.create(task.clone()).await);
    }
    tokio::time::sleep(PAST_ONE_SECOND).await;
    for task in &tasks {
        check_task!(
            loaded!(store, task.task_id),
            *task,
            "{:?} task after 1.7 s",
            task.status
        );
    }
    check_eq!(must!(listed(store, &ns).await).len(), 3, "listed");
    Ok(())
}

/// A write into a status that is not retained clears the expiry.
pub async fn a_write_into_running_clears_the_expiry(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("a_write_into_running_clears_the_expiry");
    let task = task_with(&ns, "t", TaskStatus::Completed);
    must!(store.create(task.clone()).await);
    let reopened = fixtures::advanced(&task, TaskStatus::Running);
    must!(store.update(reopened.clone()).await);
    tokio::time::sleep(PAST_ONE_SECOND).await;
    check_task!(loaded!(store, task.task_id), reopened, "the reopened task");
    Ok(())
}

/// Each write restarts the clock: age is measured from the last write.
pub async fn a_write_restarts_the_clock(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("a_write_restarts_the_clock");
    // Failed tasks are kept 3 s.
    let task = task_with(&ns, "t", TaskStatus::Failed);
    must!(store.create(task.clone()).await);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let mut rewritten = task.clone();
    rewritten.last_updated = utc_at(7);
    must!(store.update(rewritten.clone()).await);
    // 4 s after the create, 2 s after the update: still there.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    check_task!(
        loaded!(store, task.task_id),
        rewritten,
        "2 s after its last write"
    );
    // Past 3 s after the update: gone.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    check_absent!(store, task.task_id);
    Ok(())
}

/// `purge` removes nothing that has not expired, removes what has (a store that already
/// swept it counts less), and finds nothing left the second time.
pub async fn purge_removes_only_what_expired(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("purge_removes_only_what_expired");
    let done: Vec<AgentTask> = (0..3)
        .map(|n| task_with(&ns, &format!("done-{n}"), TaskStatus::Completed))
        .collect();
    let running = task_with(&ns, "running", TaskStatus::Running);
    for task in done.iter().chain([&running]) {
        must!(store.create(task.clone()).await);
    }
    check_eq!(
        must!(store.purge().await),
        0,
        "purge before anything expired"
    );
    for task in &done {
        check_task!(
            loaded!(store, task.task_id),
            *task,
            "a task purge must not touch"
        );
    }
    tokio::time::sleep(PAST_ONE_SECOND).await;
    let purged = must!(store.purge().await);
    check!(
        purged <= 3,
        "purge removed {purged} tasks; only 3 had expired"
    );
    check_eq!(must!(store.purge().await), 0, "a second purge");
    for task in &done {
        check_absent!(store, task.task_id);
    }
    check_task!(loaded!(store, running.task_id), running, "the running task");
    check_eq!(
        must!(listed(store, &ns).await),
        vec![running.task_id.clone()],
        "listed"
    );
    Ok(())
}
