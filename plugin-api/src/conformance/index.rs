//! The request-id index: `load_by_request_id` finds exactly the tasks that hold a request
//! id now, and of several the one created first (smallest `created_at` in UTC, then the
//! smallest task id).

use super::fixtures::{self, Ns, SECOND};
use super::CaseResult;
use crate::document_store::DocumentManager;
use crate::model::TaskStatus;

/// Items sharing one request id find their task; so does one more item with that id.
pub async fn shared_request_id_within_task_finds_it(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("shared_request_id_within_task_finds_it");
    let id = ns.id("task");
    let rid = ns.id("r");
    let task = fixtures::task(&id, &[&rid, &rid, &rid]);
    must!(store.create(task.clone()).await);
    match must!(store.load_by_request_id(&rid).await) {
        Some(found) => check_task!(found, task, "the task found by its shared request id"),
        None => fail!("load_by_request_id found nothing for a request id of three items"),
    }
    let mut grown = fixtures::advanced(&task, TaskStatus::Paused);
    fixtures::push_item(&mut grown, &rid);
    must!(store.update(grown.clone()).await);
    match must!(store.load_by_request_id(&rid).await) {
        Some(found) => check_task!(found, grown, "the task found after a fourth item"),
        None => fail!("load_by_request_id found nothing after a fourth item"),
    }
    Ok(())
}

/// After `update` the task is found by exactly the request ids of its new items.
pub async fn index_follows_item_changes(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("index_follows_item_changes");
    let id = ns.id("task");
    let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(|s| ns.id(s));
    let mut task = fixtures::task(&id, &[&a, &a, &a]);
    must!(store.create(task.clone()).await);

    fixtures::set_items(&mut task, &[&b, &c, &d]);
    must!(store.update(task.clone()).await);
    for rid in [&b, &c, &d] {
        check_eq!(
            found_by!(store, rid),
            Some(id.clone()),
            "new request id {rid}"
        );
    }
    check_eq!(found_by!(store, a), None, "the replaced request id");

    fixtures::set_items(&mut task, &[&d, &e]);
    must!(store.update(task).await);
    check_eq!(found_by!(store, b), None, "dropped request id b");
    check_eq!(found_by!(store, c), None, "dropped request id c");
    check_eq!(found_by!(store, d), Some(id.clone()), "kept request id d");
    check_eq!(found_by!(store, e), Some(id.clone()), "new request id e");
    Ok(())
}

/// After `delete` none of the task's request ids finds anything.
pub async fn delete_removes_request_ids(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("delete_removes_request_ids");
    let id = ns.id("task");
    let (a, b) = (ns.id("a"), ns.id("b"));
    must!(store.create(fixtures::task(&id, &[&a, &b, &a])).await);
    check_eq!(
        found_by!(store, a),
        Some(id.clone()),
        "request id a before delete"
    );
    must!(store.delete(&id).await);
    check_eq!(found_by!(store, a), None, "request id a after delete");
    check_eq!(found_by!(store, b), None, "request id b after delete");
    Ok(())
}

/// Items with request ids A, A, B: both A and B find the same task.
pub async fn mixed_request_ids_find_same_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("mixed_request_ids_find_same_task");
    let id = ns.id("task");
    let (a, b) = (ns.id("a"), ns.id("b"));
    let task = fixtures::task(&id, &[&a, &a, &b]);
    must!(store.create(task.clone()).await);
    for rid in [&a, &b] {
        match must!(store.load_by_request_id(rid).await) {
            Some(found) => check_task!(found, task, "the task found by {rid}"),
            None => fail!("load_by_request_id({rid}) found nothing"),
        }
    }
    Ok(())
}

/// `load_by_request_id` of an id no item has is `Ok(None)`, also for near misses.
pub async fn unknown_request_id_is_none(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("unknown_request_id_is_none");
    check_eq!(
        found_by!(store, ns.id("never-used")),
        None,
        "a request id never used"
    );
    must!(
        store
            .create(fixtures::task(&ns.id("task"), &[ns.id("req-1")]))
            .await
    );
    for near in ["req-", "req-10", "REQ-1", "req-1 ", "task"] {
        check_eq!(found_by!(store, ns.id(near)), None, "request id {near:?}");
    }
    Ok(())
}

/// Of two tasks sharing a request id the smaller `created_at` wins, whatever the order of
/// creation, even when its task id is the larger one and the times differ by 1 µs.
pub async fn earliest_created_task_wins(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("earliest_created_task_wins");
    let rounds = [
        (10 * SECOND, 5 * SECOND, true),
        (10 * SECOND, 5 * SECOND, false),
        (1, 0, true),
    ];
    for (round, (late_at, early_at, late_first)) in rounds.into_iter().enumerate() {
        let rid = ns.id(format!("shared-{round}"));
        let late = fixtures::task_created(
            &ns.id(format!("{round}-a-late")),
            &[&rid],
            fixtures::utc_at(late_at),
        );
        let early = fixtures::task_created(
            &ns.id(format!("{round}-b-early")),
            &[&rid],
            fixtures::utc_at(early_at),
        );
        let (first, second) = if late_first {
            (&late, &early)
        } else {
            (&early, &late)
        };
        must!(store.create(first.clone()).await);
        must!(store.create(second.clone()).await);
        check_eq!(
            found_by!(store, rid),
            Some(early.task_id.clone()),
            "round {round}: the earlier task"
        );
    }
    Ok(())
}

/// With equal `created_at` the smallest task id (byte order) wins, in either creation order.
pub async fn equal_created_at_smallest_task_id_wins(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("equal_created_at_smallest_task_id_wins");
    let pairs = [("a", "b"), ("b", "a"), ("ab", "b"), ("b", "ab"), ("B", "a")];
    for (round, (first, second)) in pairs.into_iter().enumerate() {
        let rid = ns.id(format!("shared-{round}"));
        let first_id = ns.id(format!("{round}-{first}"));
        let second_id = ns.id(format!("{round}-{second}"));
        must!(store.create(fixtures::task(&first_id, &[&rid])).await);
        must!(store.create(fixtures::task(&second_id, &[&rid])).await);
        let smallest = std::cmp::min(first_id, second_id);
        check_eq!(
            found_by!(store, rid),
            Some(smallest),
            "round {round}: the smaller task id"
        );
    }
    Ok(())
}

/// `created_at` is compared as an instant: a naive time is read as UTC and an offset time
/// is converted, so neither the text nor the local time decides.
pub async fn created_at_compares_in_utc(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("created_at_compares_in_utc");
    // (created_at of the task with the smaller id, of the other, which one wins)
    let rounds = [
        ("2025-01-01T10:00:00", "2025-01-01T11:00:00+02:00", "b"),
        ("2025-01-01T12:00:00+02:00", "2025-01-01T10:00:00", "a"),
        ("2025-01-01T05:00:00-06:00", "2025-01-01T10:30:00", "b"),
        ("2025-01-01T10:00:00.000001Z", "2025-01-01T10:00:00", "b"),
    ];
    for (round, (a_at, b_at, winner)) in rounds.into_iter().enumerate() {
        let rid = ns.id(format!("shared-{round}"));
        let a = fixtures::task_created(
            &ns.id(format!("{round}-a")),
            &[&rid],
            fixtures::parse_time(a_at)?,
        );
        let b = fixtures::task_created(
            &ns.id(format!("{round}-b")),
            &[&rid],
            fixtures::parse_time(b_at)?,
        );
        must!(store.create(b).await);
        must!(store.create(a).await);
        let expected = ns.id(format!("{round}-{winner}"));
        check_eq!(
            found_by!(store, rid),
            Some(expected),
            "round {round}: {a_at} (a) against {b_at} (b)"
        );
    }
    Ok(())
}

/// An update that drops items drops their request ids and keeps the others, and a request
/// id another task shares then finds that task.
pub async fn update_dropping_items_drops_their_request_ids(
    store: &dyn DocumentManager,
) -> CaseResult {
    let ns = Ns::new("update_dropping_items_drops_their_request_ids");
    let (first, other) = (ns.id("first"), ns.id("other"));
    let [a, shared, kept, added] = ["a", "shared", "kept", "added"].map(|s| ns.id(s));
    let mut task = fixtures::task_created(&first, &[&a, &shared, &kept], fixtures::utc_at(0));
    must!(store.create(task.clone()).await);
    must!(
        store
            .create(fixtures::task_created(
                &other,
                &[&shared],
                fixtures::utc_at(SECOND)
            ))
            .await
    );
    check_eq!(
        found_by!(store, shared),
        Some(first.clone()),
        "the shared id before the update"
    );

    fixtures::set_items(&mut task, &[&kept, &added]);
    must!(store.update(task).await);
    check_eq!(found_by!(store, a), None, "the dropped request id");
    check_eq!(
        found_by!(store, kept),
        Some(first.clone()),
        "the kept request id"
    );
    check_eq!(
        found_by!(store, added),
        Some(first.clone()),
        "the added request id"
    );
    check_eq!(
        found_by!(store, shared),
        Some(other),
        "the shared id the first task dropped"
    );
    Ok(())
}

/// An update that changes only `created_at` changes which sharing task wins.
pub async fn update_of_created_at_changes_winner(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_of_created_at_changes_winner");
    let rid = ns.id("shared");
    let mut one = fixtures::task_created(&ns.id("one"), &[&rid], fixtures::utc_at(SECOND));
    let mut two = fixtures::task_created(&ns.id("two"), &[&rid], fixtures::utc_at(2 * SECOND));
    must!(store.create(one.clone()).await);
    must!(store.create(two.clone()).await);
    check_eq!(
        found_by!(store, rid),
        Some(one.task_id.clone()),
        "before any update"
    );

    one.created_at = fixtures::utc_at(3 * SECOND);
    must!(store.update(one.clone()).await);
    check_eq!(
        found_by!(store, rid),
        Some(two.task_id.clone()),
        "after moving one later"
    );

    two.created_at = fixtures::naive_at(5 * SECOND);
    must!(store.update(two).await);
    check_eq!(
        found_by!(store, rid),
        Some(one.task_id.clone()),
        "after moving two later still"
    );
    Ok(())
}

/// Deleting one of two tasks sharing a request id leaves the other found.
pub async fn deleting_one_sharing_task_leaves_the_other(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("deleting_one_sharing_task_leaves_the_other");
    let rid = ns.id("shared");
    let [early, late, later] = ["early", "late", "later"].map(|s| ns.id(s));
    for (n, id) in [&early, &late, &later].into_iter().enumerate() {
        let at = fixtures::utc_at(n as i64 * SECOND);
        must!(store.create(fixtures::task_created(id, &[&rid], at)).await);
    }
    must!(store.delete(&late).await);
    check_eq!(
        found_by!(store, rid),
        Some(early.clone()),
        "after deleting a later task"
    );
    must!(store.delete(&early).await);
    check_eq!(
        found_by!(store, rid),
        Some(later.clone()),
        "after deleting the winner"
    );
    must!(store.delete(&later).await);
    check_eq!(found_by!(store, rid), None, "after deleting every holder");
    Ok(())
}

/// `load_by_request_id` returns the task as last written, not as it was indexed.
pub async fn lookup_returns_current_version(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("lookup_returns_current_version");
    let id = ns.id("task");
    let rid = ns.id("r");
    let task = fixtures::task(&id, &[&rid]);
    must!(store.create(task.clone()).await);
    let mut changed = fixtures::advanced(&task, TaskStatus::Completed);
    fixtures::push_item(&mut changed, &rid);
    must!(store.update(changed.clone()).await);
    match must!(store.load_by_request_id(&rid).await) {
        Some(found) => check_task!(found, changed, "the task found after update"),
        None => fail!("load_by_request_id found nothing after update"),
    }
    Ok(())
}

/// A request id repeated within one task counts once: dropping some of its items keeps it,
/// dropping all of them removes it.
pub async fn duplicate_request_ids_count_once(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("duplicate_request_ids_count_once");
    let id = ns.id("task");
    let (a, b) = (ns.id("a"), ns.id("b"));
    let mut task = fixtures::task(&id, &[&a, &a, &a]);
    must!(store.create(task.clone()).await);
    let steps: [(&[&String], Option<&String>, Option<&String>); 4] = [
        (&[&a], Some(&id), None),
        (&[&b], None, Some(&id)),
        (&[&a, &b, &a], Some(&id), Some(&id)),
        (&[&b, &b], None, Some(&id)),
    ];
    for (step, (items, finds_a, finds_b)) in steps.into_iter().enumerate() {
        fixtures::set_items(&mut task, items);
        must!(store.update(task.clone()).await);
        check_eq!(
            found_by!(store, a),
            finds_a.cloned(),
            "step {step}: request id a"
        );
        check_eq!(
            found_by!(store, b),
            finds_b.cloned(),
            "step {step}: request id b"
        );
    }
    must!(store.delete(&id).await);
    check_eq!(found_by!(store, b), None, "request id b after delete");
    Ok(())
}

/// Task ids and request ids are separate: a request id equal to another task's id finds
/// only the task that holds it as a request id.
pub async fn task_ids_and_request_ids_are_separate(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("task_ids_and_request_ids_are_separate");
    let (x, y, r) = (ns.id("x"), ns.id("y"), ns.id("r"));
    must!(store.create(fixtures::task(&x, &[&r])).await);
    must!(store.create(fixtures::task(&y, &[&x])).await);
    check_eq!(
        found_by!(store, x),
        Some(y.clone()),
        "request id equal to task id x"
    );
    check_eq!(
        found_by!(store, y),
        None,
        "a task id no item uses as request id"
    );
    check_absent!(store, r);
    check_eq!(loaded!(store, x).task_id, x.clone(), "load of x");
    must!(store.delete(&x).await);
    check_eq!(
        found_by!(store, x),
        Some(y.clone()),
        "request id x after deleting task x"
    );
    check_eq!(
        found_by!(store, r),
        None,
        "request id r after deleting task x"
    );
    Ok(())
}
