//! Listing: the order, keyset paging, filters, summaries, refused cursors, and a walk
//! that stays exact while other callers write.
//!
//! Each case puts its tasks in sessions and users of its own, so the listings it checks
//! hold only its tasks; where a case lists without a session or user filter, it keeps
//! only the tasks of its namespace before comparing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::fixtures::{self, naive_at, utc_at, Ns, SECOND};
use super::{CaseFailure, CaseResult};
use crate::document_store::DocumentManager;
use crate::error::Result;
use crate::listing::{Cursor, Page, PageRequest, TaskFilter, TaskSummary, MAX_PAGE_SIZE};
use crate::model::{AgentTask, TaskStatus, Timestamp};

/// More pages than any case's walk needs: a store that never ends a listing fails
/// instead of looping.
const MAX_PAGES: usize = 10_000;

/// A task of `session` and `user`, created at `created`, with one item per request id.
fn task_in(
    id: &str,
    session: &str,
    user: &str,
    created: Timestamp,
    status: TaskStatus,
    items: usize,
) -> AgentTask {
    let mut task = AgentTask::new(id, session, user, created);
    task.status = status;
    let requests: Vec<String> = (0..items).map(|n| format!("{id}-r{n}")).collect();
    fixtures::set_items(&mut task, &requests);
    task
}

/// One page; the call's error as a case failure.
async fn page(
    store: &dyn DocumentManager,
    filter: &TaskFilter,
    request: &PageRequest,
) -> std::result::Result<Page, CaseFailure> {
    store.list_tasks(filter, request).await.map_err(|err| {
        CaseFailure::new(format!(
            "list_tasks({filter:?}, size {}) failed: {}",
            request.size(),
            err.report()
        ))
    })
}

/// Every page of `filter`'s listing, `size` at a time, checking that each page but the
/// last is full and that only the last has no cursor.
async fn walk(
    store: &dyn DocumentManager,
    filter: &TaskFilter,
    size: u32,
) -> std::result::Result<Vec<TaskSummary>, CaseFailure> {
    let mut request = PageRequest::new(size).map_err(|e| CaseFailure::new(e.report()))?;
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let got = page(store, filter, &request).await?;
        let count = got.tasks.len();
        out.extend(got.tasks);
        match got.next {
            None => return Ok(out),
            Some(next) => {
                if count != size as usize {
                    fail!("a page of {count} tasks (size {size}) has a next cursor; only the last page may be short");
                }
                request = PageRequest::new(size)
                    .map_err(|e| CaseFailure::new(e.report()))?
                    .after(next);
            }
        }
    }
    fail!("the listing did not end after {MAX_PAGES} pages")
}

fn ids(summaries: &[TaskSummary]) -> Vec<&str> {
    summaries.iter().map(|s| s.task_id.as_str()).collect()
}

/// The ids of `tasks` in listing order.
fn expected_order(tasks: &[&AgentTask]) -> Vec<String> {
    let mut keyed: Vec<_> = tasks
        .iter()
        .map(|t| TaskSummary::of_task(t).key())
        .collect();
    keyed.sort();
    keyed.into_iter().map(|k| k.task_id).collect()
}

async fn create_all(store: &dyn DocumentManager, tasks: &[AgentTask]) -> CaseResult {
    for task in tasks {
        must!(store.create(task.clone()).await);
    }
    Ok(())
}

/// A session with no tasks lists nothing, and says it is the last page.
pub async fn listing_of_an_empty_session_is_empty(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("listing_of_an_empty_session_is_empty");
    let filter = TaskFilter::all().session(ns.id("nobody"));
    let got = page(store, &filter, &PageRequest::default()).await?;
    check!(got.tasks.is_empty(), "{} tasks listed", got.tasks.len());
    check!(got.next.is_none(), "an empty listing has a next cursor");
    // An empty set of statuses matches no task at all.
    let none = TaskFilter::all().statuses([]);
    let got = page(store, &none, &PageRequest::default()).await?;
    check!(
        got.tasks.is_empty(),
        "statuses([]) listed {}",
        got.tasks.len()
    );
    Ok(())
}

/// Newest `created_at` first; equal times (one naive, read as UTC) by task id, descending.
pub async fn listing_is_newest_first_then_by_task_id(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("listing_is_newest_first_then_by_task_id");
    let session = ns.id("s");
    let at = |id: &str, created: Timestamp| {
        task_in(&ns.id(id), &session, "u", created, TaskStatus::Running, 1)
    };
    let tasks = vec![
        at("a", utc_at(0)),
        at("b", utc_at(5 * SECOND)),
        at("c", naive_at(5 * SECOND)),
        at("d", utc_at(5 * SECOND)),
        at("e", utc_at(-3 * SECOND)),
        at("f", utc_at(10 * SECOND)),
        at("g", utc_at(1)),
    ];
    create_all(store, &tasks).await?;
    let listed = walk(store, &TaskFilter::all().session(&session), 100).await?;
    let want: Vec<String> = ["f", "d", "c", "b", "g", "a", "e"]
        .iter()
        .map(|id| ns.id(id))
        .collect();
    check_eq!(
        ids(&listed),
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    check_eq!(
        want,
        expected_order(&tasks.iter().collect::<Vec<_>>()),
        "the fixture's own order"
    );
    Ok(())
}

/// Walking with any page size returns the one-page listing, each task once.
pub async fn pages_cover_every_task_once(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("pages_cover_every_task_once");
    let session = ns.id("s");
    let tasks: Vec<AgentTask> = (0..23)
        .map(|n| {
            // Several tasks share each time, so ties cross page boundaries.
            let created = utc_at((n / 3) as i64 * SECOND);
            task_in(
                &ns.id(format!("t{n:02}")),
                &session,
                "u",
                created,
                TaskStatus::Running,
                0,
            )
        })
        .collect();
    create_all(store, &tasks).await?;
    let filter = TaskFilter::all().session(&session);
    let whole = walk(store, &filter, MAX_PAGE_SIZE).await?;
    check_eq!(
        ids(&whole),
        expected_order(&tasks.iter().collect::<Vec<_>>())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "one page of everything"
    );
    for size in [1, 2, 5, 22, 23, 24] {
        let walked = walk(store, &filter, size).await?;
        check_eq!(ids(&walked), ids(&whole), "walk with pages of {size}");
    }
    Ok(())
}

/// A summary holds the stored task's ids, status, times and item count.
pub async fn summaries_carry_the_task_fields(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("summaries_carry_the_task_fields");
    let mut task = task_in(
        &ns.id("t"),
        &ns.id("s"),
        &ns.id("u"),
        naive_at(7 * SECOND),
        TaskStatus::Paused,
        3,
    );
    task.last_updated = utc_at(90 * SECOND);
    must!(store.create(task.clone()).await);
    let stored = loaded!(store, task.task_id);
    let listed = walk(store, &TaskFilter::all().user(ns.id("u")), 10).await?;
    check_eq!(listed.len(), 1, "tasks listed for the user");
    let summary = &listed[0];
    check_eq!(*summary, TaskSummary::of_task(&stored), "the summary");
    check_eq!(summary.item_count, 3, "item count");
    check_eq!(summary.status, TaskStatus::Paused, "status");
    Ok(())
}

/// Session, user and status filters, alone and together, list exactly their tasks.
pub async fn filters_select_exactly_their_tasks(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("filters_select_exactly_their_tasks");
    let (s1, s2, u1, u2) = (ns.id("s1"), ns.id("s2"), ns.id("u1"), ns.id("u2"));
    let statuses = [
        TaskStatus::Running,
        TaskStatus::Paused,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ];
    let mut tasks = Vec::new();
    for (n, status) in statuses.iter().cycle().take(20).enumerate() {
        let session = if n % 2 == 0 { &s1 } else { &s2 };
        let user = if n % 3 == 0 { &u1 } else { &u2 };
        let created = utc_at((n as i64 % 7) * SECOND);
        tasks.push(task_in(
            &ns.id(format!("t{n}")),
            session,
            user,
            created,
            *status,
            n % 3,
        ));
    }
    create_all(store, &tasks).await?;
    let finished = [TaskStatus::Completed, TaskStatus::Failed];
    let filters = vec![
        TaskFilter::all().session(&s1),
        TaskFilter::all().user(&u2),
        TaskFilter::all().session(&s2).user(&u1),
        TaskFilter::all().session(&s1).statuses(finished),
        TaskFilter::all().user(&u1).statuses([TaskStatus::Running]),
        TaskFilter::all()
            .session(&s2)
            .user(&u2)
            .statuses([TaskStatus::Paused, TaskStatus::Canceled]),
        TaskFilter::all().statuses(finished),
        TaskFilter::all(),
    ];
    let prefix = ns.id("");
    for filter in filters {
        let listed = walk(store, &filter, 3).await?;
        // Without a session or user, other tasks may be stored too: keep this case's.
        let listed: Vec<&str> = ids(&listed)
            .into_iter()
            .filter(|id| id.starts_with(&prefix))
            .collect();
        let matching: Vec<&AgentTask> = tasks.iter().filter(|t| filter.matches_task(t)).collect();
        let want = expected_order(&matching);
        check_eq!(
            listed,
            want.iter().map(String::as_str).collect::<Vec<_>>(),
            "{filter:?}"
        );
    }
    Ok(())
}

/// Listings follow updates (a new session, status or creation time) and deletes.
pub async fn listing_follows_updates_and_deletes(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("listing_follows_updates_and_deletes");
    let (s1, s2) = (ns.id("s1"), ns.id("s2"));
    let tasks: Vec<AgentTask> = (0..4)
        .map(|n| {
            let created = utc_at(n * SECOND);
            task_in(
                &ns.id(format!("t{n}")),
                &s1,
                &ns.id("u"),
                created,
                TaskStatus::Running,
                1,
            )
        })
        .collect();
    create_all(store, &tasks).await?;
    let listed_ids = |listed: Vec<TaskSummary>| -> Vec<String> {
        listed.into_iter().map(|s| s.task_id).collect()
    };
    // t1 moves to another session.
    let mut moved = tasks[1].clone();
    moved.session_id = s2.clone();
    must!(store.update(moved).await);
    // t2 is finished.
    must!(
        store
            .update(fixtures::advanced(&tasks[2], TaskStatus::Completed))
            .await
    );
    // t0 becomes the newest.
    let mut renewed = tasks[0].clone();
    renewed.created_at = utc_at(100 * SECOND);
    must!(store.update(renewed).await);
    // t3 is deleted.
    must!(store.delete(&tasks[3].task_id).await);

    let in_s1 = listed_ids(walk(store, &TaskFilter::all().session(&s1), 2).await?);
    check_eq!(in_s1, vec![ns.id("t0"), ns.id("t2")], "session s1");
    let in_s2 = listed_ids(walk(store, &TaskFilter::all().session(&s2), 2).await?);
    check_eq!(in_s2, vec![ns.id("t1")], "session s2");
    let done = TaskFilter::all()
        .user(ns.id("u"))
        .statuses([TaskStatus::Completed]);
    check_eq!(
        listed_ids(walk(store, &done, 2).await?),
        vec![ns.id("t2")],
        "completed"
    );
    let running = TaskFilter::all()
        .user(ns.id("u"))
        .statuses([TaskStatus::Running]);
    check_eq!(
        listed_ids(walk(store, &running, 2).await?),
        vec![ns.id("t0"), ns.id("t1")],
        "running"
    );
    must!(store.clear().await);
    let after_clear = walk(store, &TaskFilter::all().user(ns.id("u")), 10).await?;
    check!(
        after_clear.is_empty(),
        "{} tasks listed after clear",
        after_clear.len()
    );
    Ok(())
}

/// A cursor that was edited, cut, invented or made for another filter is
/// `InvalidInput`; so is a page size outside 1..=1000.
pub async fn foreign_cursors_and_sizes_are_refused(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("foreign_cursors_and_sizes_are_refused");
    let session = ns.id("s");
    let tasks: Vec<AgentTask> = (0..3)
        .map(|n| {
            task_in(
                &ns.id(format!("t{n}")),
                &session,
                "u",
                utc_at(n * SECOND),
                TaskStatus::Running,
                0,
            )
        })
        .collect();
    create_all(store, &tasks).await?;
    let filter = TaskFilter::all().session(&session);
    let first = page(
        store,
        &filter,
        &PageRequest::new(1).map_err(|e| CaseFailure::new(e.report()))?,
    )
    .await?;
    let Some(cursor) = first.next else {
        fail!("a page of 1 out of 3 tasks has no next cursor");
    };
    let text = cursor.as_str().to_owned();
    let mut edited = text.clone().into_bytes();
    let last = edited.len() - 1;
    edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap_or_default();
    let cut = text[..text.len() / 2].to_owned();
    for (what, bad, under) in [
        ("an edited cursor", edited, filter.clone()),
        ("a truncated cursor", cut, filter.clone()),
        (
            "an invented cursor",
            "not-a-cursor".to_owned(),
            filter.clone(),
        ),
        ("an empty cursor", String::new(), filter.clone()),
        (
            "another filter's cursor",
            text.clone(),
            TaskFilter::all().session(ns.id("other")),
        ),
        (
            "a cursor of the unfiltered listing",
            text.clone(),
            TaskFilter::all(),
        ),
    ] {
        let request = PageRequest::from_parts(1, Some(Cursor::from_string(bad)));
        let result: Result<Page> = store.list_tasks(&under, &request).await;
        match result {
            Err(err) if err.is_invalid_input() => {}
            Err(err) => fail!(
                "{what}: expected InvalidInput, got {:?}: {}",
                err.kind(),
                err.report()
            ),
            Ok(page) => fail!(
                "{what} was accepted and answered {} tasks",
                page.tasks.len()
            ),
        }
    }
    for size in [0, MAX_PAGE_SIZE + 1] {
        let request = PageRequest::from_parts(size, None);
        expect_err!(store.list_tasks(&filter, &request).await, InvalidInput);
    }
    // The genuine cursor still works after all that.
    let request = PageRequest::from_parts(5, Some(cursor));
    let rest = page(store, &filter, &request).await?;
    check_eq!(rest.tasks.len(), 2, "tasks after the first page");
    Ok(())
}

/// Deleting the task a cursor points at skips nothing: the next page starts right after
/// its key.
pub async fn a_cursor_outlives_the_deletion_of_its_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("a_cursor_outlives_the_deletion_of_its_task");
    let session = ns.id("s");
    let tasks: Vec<AgentTask> = (0..6)
        .map(|n| {
            task_in(
                &ns.id(format!("t{n}")),
                &session,
                "u",
                utc_at(n * SECOND),
                TaskStatus::Running,
                0,
            )
        })
        .collect();
    create_all(store, &tasks).await?;
    let filter = TaskFilter::all().session(&session);
    let first = page(
        store,
        &filter,
        &PageRequest::new(3).map_err(|e| CaseFailure::new(e.report()))?,
    )
    .await?;
    check_eq!(
        ids(&first.tasks),
        [ns.id("t5"), ns.id("t4"), ns.id("t3")]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let Some(cursor) = first.next else {
        fail!("the first page of 3 out of 6 has no next cursor");
    };
    must!(store.delete(&ns.id("t3")).await);
    must!(store.delete(&ns.id("t4")).await);
    let request = PageRequest::from_parts(10, Some(cursor));
    let rest = page(store, &filter, &request).await?;
    check_eq!(
        ids(&rest.tasks),
        [ns.id("t2"), ns.id("t1"), ns.id("t0")]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    check!(rest.next.is_none(), "the last page has a next cursor");
    Ok(())
}

/// A walk returns every task that existed throughout it exactly once, in order, while
/// other tasks are created, updated and deleted around it.
pub async fn a_walk_is_exact_while_others_write(store: Arc<dyn DocumentManager>) -> CaseResult {
    let ns = Ns::new("a_walk_is_exact_while_others_write");
    let session = ns.id("s");
    let stable: Vec<AgentTask> = (0..60)
        .map(|n| {
            let created = utc_at((n % 20) as i64 * SECOND);
            task_in(
                &ns.id(format!("stable-{n:02}")),
                &session,
                "u",
                created,
                TaskStatus::Running,
                1,
            )
        })
        .collect();
    create_all(&*store, &stable).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, stable, ns, session) = (
            Arc::clone(&store),
            Arc::clone(&stop),
            stable.clone(),
            ns.clone(),
            session.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && n < 2_000 {
                // A newcomer at a time among the stable ones, and one that leaves again.
                let created = utc_at((n % 23) as i64 * SECOND - SECOND / 2);
                let extra = task_in(
                    &ns.id(format!("extra-{n}")),
                    &session,
                    "u",
                    created,
                    TaskStatus::Running,
                    0,
                );
                store.create(extra).await?;
                if n.is_multiple_of(2) {
                    store.delete(&ns.id(format!("extra-{n}"))).await?;
                }
                // A stable task changes everything but its creation time.
                let mut changed = stable[n % stable.len()].clone();
                changed.status = TaskStatus::Paused;
                let late = format!("{}-late-{n}", changed.task_id);
                fixtures::push_item(&mut changed, &late);
                store.update(changed).await?;
                n += 1;
                tokio::task::yield_now().await;
            }
            Ok::<usize, crate::PersistenceError>(n)
        })
    };
    let walked = walk(&*store, &TaskFilter::all().session(&session), 7).await;
    stop.store(true, Ordering::Relaxed);
    let writes = match writer.await {
        Ok(Ok(n)) => n,
        Ok(Err(err)) => fail!("a concurrent write failed: {}", err.report()),
        Err(err) => fail!("the writer died: {err}"),
    };
    let walked = walked?;
    let mut seen = HashSet::new();
    for summary in &walked {
        check!(
            seen.insert(summary.task_id.clone()),
            "task {} listed twice",
            summary.task_id
        );
    }
    for pair in walked.windows(2) {
        check!(
            pair[0].key() < pair[1].key(),
            "{} listed before {}, out of order",
            pair[0].task_id,
            pair[1].task_id
        );
    }
    for task in &stable {
        check!(
            seen.contains(&task.task_id),
            "stable task {} was skipped ({writes} concurrent writes)",
            task.task_id
        );
    }
    Ok(())
}
