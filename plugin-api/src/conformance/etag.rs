//! Optimistic concurrency: `load_with_etag` and `update_if_match`.

use super::fixtures::{self, Ns};
use super::CaseResult;
use crate::document_store::DocumentManager;
use crate::error::Operation;
use crate::model::TaskStatus;

/// The stored task with its ETag; fails the case if the read fails or finds nothing.
macro_rules! versioned {
    ($store:expr, $id:expr) => {{
        let id: &str = &$id;
        match must!($store.load_with_etag(id).await) {
            Some(versioned) => versioned,
            None => fail!("load_with_etag({id}) returned None; the task should be stored"),
        }
    }};
}

/// `load_with_etag` of an id never stored is `Ok(None)`.
pub async fn load_with_etag_of_unknown_id_is_none(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("load_with_etag_of_unknown_id_is_none");
    check!(
        must!(store.load_with_etag(&ns.id("never")).await).is_none(),
        "an unknown id has a task"
    );
    must!(
        store
            .create(fixtures::task(&ns.id("task"), &[ns.id("r")]))
            .await
    );
    check!(
        must!(store.load_with_etag(&ns.id("task-")).await).is_none(),
        "a prefix finds a task"
    );
    Ok(())
}

/// `load_with_etag` returns the same task as `load`.
pub async fn load_with_etag_returns_stored_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("load_with_etag_returns_stored_task");
    let id = ns.id("task");
    let task = fixtures::rich_task(&id, &ns.id("r"))?;
    must!(store.create(task.clone()).await);
    let versioned = versioned!(store, id);
    check_task!(versioned.value, task, "the task of load_with_etag");
    check_task!(
        versioned.value,
        loaded!(store, id),
        "load_with_etag against load"
    );
    check!(!versioned.etag.as_str().is_empty(), "the ETag is empty");
    Ok(())
}

/// `update_if_match` with the current ETag replaces the task and returns a new ETag, the
/// one a fresh `load_with_etag` then reports.
pub async fn update_if_match_with_current_etag_succeeds(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_if_match_with_current_etag_succeeds");
    let id = ns.id("task");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    let before = versioned!(store, id);
    let changed = fixtures::advanced(&before.value, TaskStatus::Completed);
    let new_etag = must!(store.update_if_match(changed.clone(), &before.etag).await);
    check!(
        new_etag != before.etag,
        "update_if_match returned the old ETag {}",
        before.etag
    );
    let after = versioned!(store, id);
    check_eq!(
        after.etag,
        new_etag,
        "the ETag load_with_etag reports after the update"
    );
    check_task!(after.value, changed, "the task after update_if_match");

    let again = fixtures::advanced(&changed, TaskStatus::Failed);
    let third = must!(store.update_if_match(again.clone(), &new_etag).await);
    check!(
        third != new_etag && third != before.etag,
        "a second update_if_match reused an ETag"
    );
    check_task!(
        loaded!(store, id),
        again,
        "the task after a second update_if_match"
    );
    Ok(())
}

/// `update_if_match` with a stale ETag fails with `Conflict`, changes nothing, and leaves
/// the current ETag valid.
pub async fn update_if_match_with_stale_etag_conflicts(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_if_match_with_stale_etag_conflicts");
    let id = ns.id("task");
    let stale_rid = ns.id("stale");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    let stale = versioned!(store, id);
    let current = fixtures::advanced(&stale.value, TaskStatus::Paused);
    let current_etag = must!(store.update_if_match(current.clone(), &stale.etag).await);

    let mut refused = fixtures::advanced(&stale.value, TaskStatus::Canceled);
    fixtures::push_item(&mut refused, &stale_rid);
    let err = expect_err!(store.update_if_match(refused, &stale.etag).await, Conflict);
    check_eq!(err.id(), id.as_str(), "the Conflict error's id");
    check_eq!(
        err.operation(),
        Operation::Update,
        "the Conflict error's operation"
    );
    let after = versioned!(store, id);
    check_task!(after.value, current, "the task after the refused update");
    check_eq!(
        after.etag,
        current_etag,
        "the ETag after the refused update"
    );
    check_eq!(
        found_by!(store, stale_rid),
        None,
        "the refused update's request id"
    );

    let last = fixtures::advanced(&current, TaskStatus::Completed);
    must!(store.update_if_match(last.clone(), &current_etag).await);
    check_task!(
        loaded!(store, id),
        last,
        "update_if_match with the current ETag after a conflict"
    );
    Ok(())
}

/// A plain `update` changes the ETag: an `update_if_match` with the ETag read before it
/// fails with `Conflict`.
pub async fn plain_update_changes_etag(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("plain_update_changes_etag");
    let id = ns.id("task");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    let before = versioned!(store, id);
    let updated = fixtures::advanced(&before.value, TaskStatus::Paused);
    must!(store.update(updated.clone()).await);
    let after = versioned!(store, id);
    check!(
        after.etag != before.etag,
        "update left the ETag at {}",
        before.etag
    );

    let refused = fixtures::advanced(&before.value, TaskStatus::Failed);
    expect_err!(store.update_if_match(refused, &before.etag).await, Conflict);
    check_task!(
        loaded!(store, id),
        updated,
        "the task after the refused update_if_match"
    );
    Ok(())
}

/// `update_if_match` of an id never stored fails with `NotFound` and stores nothing.
pub async fn update_if_match_of_unknown_id_fails(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_if_match_of_unknown_id_fails");
    let other = ns.id("other");
    must!(store.create(fixtures::task(&other, &[ns.id("o")])).await);
    let etag = versioned!(store, other).etag;
    let id = ns.id("task");
    let rid = ns.id("r");
    let err = expect_err!(
        store
            .update_if_match(fixtures::task(&id, &[&rid]), &etag)
            .await,
        NotFound
    );
    check_eq!(err.id(), id.as_str(), "the NotFound error's id");
    check_eq!(
        err.operation(),
        Operation::Update,
        "the NotFound error's operation"
    );
    check_absent!(store, id);
    check_eq!(
        found_by!(store, rid),
        None,
        "the request id of the refused update"
    );
    Ok(())
}

/// `update_if_match` with the ETag of a deleted task fails with `NotFound`.
pub async fn update_if_match_after_delete_fails(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_if_match_after_delete_fails");
    let id = ns.id("task");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    let before = versioned!(store, id);
    must!(store.delete(&id).await);
    let changed = fixtures::advanced(&before.value, TaskStatus::Completed);
    expect_err!(store.update_if_match(changed, &before.etag).await, NotFound);
    check_absent!(store, id);
    Ok(())
}

/// An ETag read before `delete` does not match the task created again under that id with
/// other content.
pub async fn etag_of_recreated_task_differs(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("etag_of_recreated_task_differs");
    let id = ns.id("task");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    let before = versioned!(store, id);
    must!(store.delete(&id).await);
    let mut recreated = fixtures::task(&id, &[ns.id("r"), ns.id("r2")]);
    recreated.status = TaskStatus::Paused;
    must!(store.create(recreated.clone()).await);
    let now = versioned!(store, id);
    check!(
        now.etag != before.etag,
        "the recreated task has the deleted task's ETag {}",
        now.etag
    );
    let refused = fixtures::advanced(&before.value, TaskStatus::Failed);
    expect_err!(store.update_if_match(refused, &before.etag).await, Conflict);
    check_task!(
        loaded!(store, id),
        recreated,
        "the recreated task after the refused update"
    );
    Ok(())
}

/// Reads (`load`, `load_by_request_id`, `load_with_etag`) leave an ETag valid.
pub async fn reads_do_not_change_etag(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("reads_do_not_change_etag");
    let id = ns.id("task");
    let rid = ns.id("r");
    must!(store.create(fixtures::task(&id, &[&rid])).await);
    let first = versioned!(store, id);
    let second = versioned!(store, id);
    check_eq!(
        second.etag,
        first.etag,
        "two reads without a write in between"
    );
    loaded!(store, id);
    found_by!(store, rid);
    let changed = fixtures::advanced(&first.value, TaskStatus::Completed);
    must!(store.update_if_match(changed.clone(), &first.etag).await);
    check_task!(
        loaded!(store, id),
        changed,
        "the task after update_if_match"
    );
    Ok(())
}

/// `update_if_match` moves the task's request ids exactly like `update`.
pub async fn update_if_match_reindexes(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_if_match_reindexes");
    let id = ns.id("task");
    let [old, kept, new] = ["old", "kept", "new"].map(|s| ns.id(s));
    must!(store.create(fixtures::task(&id, &[&old, &kept])).await);
    let before = versioned!(store, id);
    let mut changed = before.value.clone();
    fixtures::set_items(&mut changed, &[&kept, &new]);
    must!(store.update_if_match(changed, &before.etag).await);
    check_eq!(found_by!(store, old), None, "the dropped request id");
    check_eq!(
        found_by!(store, kept),
        Some(id.clone()),
        "the kept request id"
    );
    check_eq!(
        found_by!(store, new),
        Some(id.clone()),
        "the added request id"
    );
    Ok(())
}
