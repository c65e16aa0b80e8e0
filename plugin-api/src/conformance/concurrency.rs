//! Concurrent callers on distinct tasks: every operation runs on its own tokio task, all
//! released at once by a barrier, so a store with a race in it has every chance to show it.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::Barrier;

use super::fixtures::{self, Ns, SECOND};
use super::{CaseFailure, CaseResult};
use crate::document_store::DocumentManager;
use crate::model::{AgentTask, TaskStatus};

/// Runs each future on its own tokio task, all starting together; their outputs in order.
pub(super) async fn spawn_all<F>(futures: Vec<F>) -> Result<Vec<F::Output>, CaseFailure>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(futures.len().max(1)));
    let handles: Vec<_> = futures
        .into_iter()
        .map(|future| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                future.await
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for (n, handle) in handles.into_iter().enumerate() {
        match handle.await {
            Ok(output) => outputs.push(output),
            Err(err) => {
                return Err(CaseFailure::new(format!(
                    "concurrent operation {n} died: {err}"
                )))
            }
        }
    }
    Ok(outputs)
}

/// Runs case steps concurrently and returns the first failure, if any.
pub(super) async fn all_pass(steps: Vec<BoxFuture<'static, CaseResult>>) -> CaseResult {
    spawn_all(steps).await?.into_iter().collect()
}

/// 100 concurrent creates of distinct ids all land, and each task loads equal.
pub async fn concurrent_creates_of_distinct_ids(store: Arc<dyn DocumentManager>) -> CaseResult {
    let ns = Ns::new("concurrent_creates_of_distinct_ids");
    let tasks: Vec<AgentTask> = (0..100)
        .map(|n| fixtures::task(&ns.id(format!("task-{n}")), &[ns.id(format!("r{n}"))]))
        .collect();
    let creates = tasks.iter().map(|task| {
        let (store, task) = (Arc::clone(&store), task.clone());
        async move {
            must!(store.create(task).await);
            Ok(())
        }
        .boxed()
    });
    all_pass(creates.collect()).await?;
    let loads = tasks.iter().enumerate().map(|(n, task)| {
        let (store, task, ns) = (Arc::clone(&store), task.clone(), ns.clone());
        async move {
            check_task!(
                loaded!(store, task.task_id),
                task,
                "load of concurrently created task {n}"
            );
            check_eq!(
                found_by!(store, ns.id(format!("r{n}"))),
                Some(task.task_id.clone()),
                "r{n}"
            );
            Ok(())
        }
        .boxed()
    });
    all_pass(loads.collect()).await
}

/// 50 concurrent updates (to `Paused`, each adding an item) of distinct tasks all land.
pub async fn concurrent_updates_all_persist(store: Arc<dyn DocumentManager>) -> CaseResult {
    let ns = Ns::new("concurrent_updates_all_persist");
    let mut updated = Vec::new();
    for n in 0..50 {
        let task = fixtures::task(&ns.id(format!("task-{n}")), &[ns.id(format!("r{n}"))]);
        must!(store.create(task.clone()).await);
        let mut next = fixtures::advanced(&task, TaskStatus::Paused);
        fixtures::push_item(&mut next, &ns.id(format!("added-{n}")));
        updated.push(next);
    }
    let updates = updated.iter().map(|task| {
        let (store, task) = (Arc::clone(&store), task.clone());
        async move {
            must!(store.update(task).await);
            Ok(())
        }
        .boxed()
    });
    all_pass(updates.collect()).await?;
    for (n, task) in updated.iter().enumerate() {
        let stored = loaded!(store, task.task_id);
        check_eq!(stored.status, TaskStatus::Paused, "status of task {n}");
        check_task!(stored, *task, "task {n} after the concurrent updates");
        check_eq!(
            found_by!(store, ns.id(format!("added-{n}"))),
            Some(task.task_id.clone()),
            "added-{n}"
        );
    }
    Ok(())
}

/// Concurrent creates, updates, deletes and loads of distinct tasks: afterwards new tasks
/// exist, updated ones are `Completed`, deleted ones are gone, loaded ones are unchanged.
pub async fn concurrent_mixed_operations(store: Arc<dyn DocumentManager>) -> CaseResult {
    let ns = Ns::new("concurrent_mixed_operations");
    let task = |group: &str, n: usize| {
        fixtures::task(
            &ns.id(format!("{group}-{n}")),
            &[ns.id(format!("{group}-r{n}"))],
        )
    };
    let groups = ["update", "delete", "load"];
    for group in groups {
        for n in 0..10 {
            must!(store.create(task(group, n)).await);
        }
    }
    let mut steps: Vec<BoxFuture<'static, CaseResult>> = Vec::new();
    for n in 0..10 {
        let s = Arc::clone(&store);
        let new = task("new", n);
        steps.push(
            async move {
                must!(s.create(new).await);
                Ok(())
            }
            .boxed(),
        );
        let s = Arc::clone(&store);
        let done = fixtures::advanced(&task("update", n), TaskStatus::Completed);
        steps.push(
            async move {
                must!(s.update(done).await);
                Ok(())
            }
            .boxed(),
        );
        let s = Arc::clone(&store);
        let gone = ns.id(format!("delete-{n}"));
        steps.push(
            async move {
                must!(s.delete(&gone).await);
                Ok(())
            }
            .boxed(),
        );
        let s = Arc::clone(&store);
        let kept = task("load", n);
        steps.push(
            async move {
                check_task!(loaded!(s, kept.task_id), kept, "a concurrent load");
                Ok(())
            }
            .boxed(),
        );
    }
    all_pass(steps).await?;
    for n in 0..10 {
        check_task!(
            loaded!(store, ns.id(format!("new-{n}"))),
            task("new", n),
            "new task {n}"
        );
        let done = fixtures::advanced(&task("update", n), TaskStatus::Completed);
        check_task!(
            loaded!(store, ns.id(format!("update-{n}"))),
            done,
            "updated task {n}"
        );
        check_absent!(store, ns.id(format!("delete-{n}")));
        check_eq!(
            found_by!(store, ns.id(format!("delete-r{n}"))),
            None,
            "deleted task {n}'s request id"
        );
        check_task!(
            loaded!(store, ns.id(format!("load-{n}"))),
            task("load", n),
            "loaded task {n}"
        );
    }
    Ok(())
}

/// Ten tasks sharing three request ids, created concurrently (with a tie on the earliest
/// `created_at`): 20 concurrent lookups all return the same, first-created task.
pub async fn concurrent_tasks_sharing_request_ids(store: Arc<dyn DocumentManager>) -> CaseResult {
    let ns = Ns::new("concurrent_tasks_sharing_request_ids");
    let shared: Vec<String> = (0..3).map(|n| ns.id(format!("shared-{n}"))).collect();
    let offsets = [5, 3, 8, 1, 9, 1, 4, 7, 2, 6];
    let tasks: Vec<AgentTask> = offsets
        .iter()
        .enumerate()
        .map(|(n, at)| {
            let id = ns.id(format!("task-{}", 9 - n));
            fixtures::task_created(&id, &shared, fixtures::utc_at(at * SECOND))
        })
        .collect();
    let Some(first) = tasks
        .iter()
        .min_by_key(|t| (t.created_at.utc_micros(), t.task_id.clone()))
    else {
        fail!("no fixture tasks");
    };
    let creates = tasks.iter().map(|task| {
        let (store, task) = (Arc::clone(&store), task.clone());
        async move {
            must!(store.create(task).await);
            Ok(())
        }
        .boxed()
    });
    all_pass(creates.collect()).await?;
    let lookups = (0..20).map(|n| {
        let (store, rid, first) = (Arc::clone(&store), shared[n % 3].clone(), first.clone());
        async move {
            match must!(store.load_by_request_id(&rid).await) {
                Some(found) => check_task!(found, first, "lookup {n} of {rid}"),
                None => fail!("lookup {n} of {rid} found nothing"),
            }
            Ok(())
        }
        .boxed()
    });
    all_pass(lookups.collect()).await
}

/// Concurrent updates and deletes, with lookups running alongside: every lookup returns a
/// task holding the request id, and afterwards each request id finds exactly its holders.
pub async fn concurrent_writes_keep_index_consistent(
    store: Arc<dyn DocumentManager>,
) -> CaseResult {
    let ns = Ns::new("concurrent_writes_keep_index_consistent");
    let shared = ns.id("shared");
    let own = |kind: &str, n: usize| ns.id(format!("{kind}{n}"));
    let mut tasks = Vec::new();
    for n in 0..30 {
        let at = fixtures::utc_at((30 - n as i64) * SECOND);
        let task = fixtures::task_created(
            &ns.id(format!("task-{n}")),
            &[shared.clone(), own("u", n)],
            at,
        );
        must!(store.create(task.clone()).await);
        tasks.push(task);
    }
    let mut steps: Vec<BoxFuture<'static, CaseResult>> = Vec::new();
    for (n, task) in tasks.iter().enumerate() {
        let s = Arc::clone(&store);
        let mut next = fixtures::advanced(task, TaskStatus::Completed);
        match n % 3 {
            0 => {
                let id = task.task_id.clone();
                steps.push(
                    async move {
                        must!(s.delete(&id).await);
                        Ok(())
                    }
                    .boxed(),
                );
            }
            keep_shared => {
                let ids = if keep_shared == 1 {
                    vec![shared.clone(), own("v", n)]
                } else {
                    vec![own("v", n)]
                };
                fixtures::set_items(&mut next, &ids);
                steps.push(
                    async move {
                        must!(s.update(next).await);
                        Ok(())
                    }
                    .boxed(),
                );
            }
        }
        let (s, rid) = (Arc::clone(&store), shared.clone());
        steps.push(
            async move {
                if let Some(found) = must!(s.load_by_request_id(&rid).await) {
                    let holds = found.items.iter().any(|item| item.request_id == rid);
                    check!(
                        holds,
                        "a lookup of {rid} returned {}, which has no such item",
                        found.task_id
                    );
                }
                Ok(())
            }
            .boxed(),
        );
    }
    all_pass(steps).await?;
    for (n, task) in tasks.iter().enumerate() {
        check_eq!(
            found_by!(store, own("u", n)),
            None,
            "task {n}'s replaced or deleted request id"
        );
        if n % 3 == 0 {
            check_absent!(store, task.task_id);
            check_eq!(
                found_by!(store, own("v", n)),
                None,
                "deleted task {n}'s request id"
            );
        } else {
            check_eq!(
                loaded!(store, task.task_id).status,
                TaskStatus::Completed,
                "task {n}"
            );
            check_eq!(
                found_by!(store, own("v", n)),
                Some(task.task_id.clone()),
                "task {n}'s new request id"
            );
        }
    }
    check_eq!(
        found_by!(store, shared),
        Some(ns.id("task-28")),
        "the shared request id's first holder"
    );
    Ok(())
}
