//! Create, load, update, delete, health and clear: the basic operations one at a time.

use super::fixtures::{self, Ns};
use super::CaseResult;
use crate::document_store::DocumentManager;
use crate::error::Operation;
use crate::model::TaskStatus;

/// `create`, then `load` returns a task equal to the one created.
pub async fn create_then_load_returns_equal_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("create_then_load_returns_equal_task");
    let id = ns.id("task");
    let task = fixtures::task(&id, &[ns.id("r1"), ns.id("r2"), ns.id("r1")]);
    must!(store.create(task.clone()).await);
    let loaded = loaded!(store, id);
    check_task!(loaded, task, "load after create");
    Ok(())
}

/// `load` of an id never stored is `Ok(None)`, also for ids that extend or cut a stored one.
pub async fn load_of_unknown_id_is_none(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("load_of_unknown_id_is_none");
    check_absent!(store, ns.id("never-created"));
    let id = ns.id("task-1");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    check_absent!(store, ns.id("task-"));
    check_absent!(store, ns.id("task-10"));
    check_absent!(store, ns.id("TASK-1"));
    check_absent!(store, format!("{id} "));
    Ok(())
}

/// A second `create` of a stored id fails with `AlreadyExists` and changes nothing.
pub async fn duplicate_create_fails_and_keeps_first(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("duplicate_create_fails_and_keeps_first");
    let id = ns.id("task");
    let (first_rid, second_rid) = (ns.id("first"), ns.id("second"));
    let first = fixtures::task(&id, &[&first_rid]);
    let mut second = fixtures::task(&id, &[&second_rid]);
    second.session_id = "session-2".into();
    second.status = TaskStatus::Completed;

    must!(store.create(first.clone()).await);
    let err = expect_err!(store.create(second).await, AlreadyExists);
    check_eq!(err.id(), id.as_str(), "the AlreadyExists error's id");
    check_eq!(
        err.operation(),
        Operation::Create,
        "the AlreadyExists error's operation"
    );
    check_task!(loaded!(store, id), first, "load after the refused create");
    check_eq!(
        found_by!(store, first_rid),
        Some(id.clone()),
        "the first task's request id"
    );
    check_eq!(
        found_by!(store, second_rid),
        None,
        "the refused task's request id"
    );
    Ok(())
}

/// `update`, then `load` shows the new status, `last_updated` and items.
pub async fn update_then_load_shows_change(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_then_load_shows_change");
    let id = ns.id("task");
    let task = fixtures::task(&id, &[ns.id("r1")]);
    must!(store.create(task.clone()).await);

    let mut changed = fixtures::advanced(&task, TaskStatus::Completed);
    fixtures::push_item(&mut changed, &ns.id("r2"));
    must!(store.update(changed.clone()).await);
    let loaded = loaded!(store, id);
    check_eq!(loaded.status, TaskStatus::Completed, "status after update");
    check_eq!(
        loaded.last_updated,
        changed.last_updated,
        "last_updated after update"
    );
    check_task!(loaded, changed, "load after update");

    let last = fixtures::advanced(&changed, TaskStatus::Failed);
    must!(store.update(last.clone()).await);
    check_task!(
        loaded!(store, id),
        last,
        "load after a second update (last writer wins)"
    );
    Ok(())
}

/// `update` of an id never stored fails with `NotFound` and stores nothing.
pub async fn update_of_unknown_id_fails_and_stores_nothing(
    store: &dyn DocumentManager,
) -> CaseResult {
    let ns = Ns::new("update_of_unknown_id_fails_and_stores_nothing");
    let id = ns.id("task");
    let rid = ns.id("r");
    let err = expect_err!(store.update(fixtures::task(&id, &[&rid])).await, NotFound);
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
    let task = fixtures::task(&id, &[ns.id("other")]);
    must!(store.create(task.clone()).await);
    check_task!(loaded!(store, id), task, "create after the refused update");
    Ok(())
}

/// `delete`, then `load` is `None`; the id can then be created again.
pub async fn delete_then_load_is_none(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("delete_then_load_is_none");
    let id = ns.id("task");
    let keep = ns.id("kept");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    must!(store.create(fixtures::task(&keep, &[ns.id("k")])).await);
    must!(store.delete(&id).await);
    check_absent!(store, id);
    check!(
        must!(store.load(&keep).await).is_some(),
        "delete removed another task"
    );

    let mut again = fixtures::task(&id, &[ns.id("r")]);
    again.status = TaskStatus::Canceled;
    must!(store.create(again.clone()).await);
    check_task!(
        loaded!(store, id),
        again,
        "load after create of a deleted id"
    );
    Ok(())
}

/// `delete` of an id never stored fails with `NotFound` and touches no other task.
pub async fn delete_of_unknown_id_fails(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("delete_of_unknown_id_fails");
    let keep = ns.id("kept");
    let task = fixtures::task(&keep, &[ns.id("r")]);
    must!(store.create(task.clone()).await);
    let unknown = ns.id("unknown");
    let err = expect_err!(store.delete(&unknown).await, NotFound);
    check_eq!(err.id(), unknown.as_str(), "the NotFound error's id");
    check_eq!(
        err.operation(),
        Operation::Delete,
        "the NotFound error's operation"
    );
    check_task!(
        loaded!(store, keep),
        task,
        "the other task after the refused delete"
    );
    Ok(())
}

/// A second `delete` of one id fails with `NotFound`.
pub async fn second_delete_fails(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("second_delete_fails");
    let id = ns.id("task");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    must!(store.delete(&id).await);
    let err = expect_err!(store.delete(&id).await, NotFound);
    check_eq!(err.id(), id.as_str(), "the NotFound error's id");
    Ok(())
}

/// Changing a loaded task (from any read) changes nothing stored; two loads are two values.
pub async fn loaded_task_is_an_independent_value(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("loaded_task_is_an_independent_value");
    let id = ns.id("task");
    let rid = ns.id("r");
    let task = fixtures::task(&id, &[&rid]);
    must!(store.create(task.clone()).await);

    let mut first = loaded!(store, id);
    first.status = TaskStatus::Failed;
    first.session_id.push_str("-changed");
    fixtures::push_item(&mut first, &ns.id("added"));
    first.items[0].item.content = format!("{} (edited)", first.items[0].item.content).into();
    let second = loaded!(store, id);
    check_task!(
        second,
        task,
        "a load after changing an earlier loaded value"
    );
    check!(first != second, "two loads share one value");

    if let Some(mut by_request) = must!(store.load_by_request_id(&rid).await) {
        by_request.status = TaskStatus::Canceled;
        by_request.items.clear();
    }
    if let Some(mut versioned) = must!(store.load_with_etag(&id).await) {
        versioned.value.status = TaskStatus::Paused;
        versioned.value.items.clear();
    }
    check_task!(
        loaded!(store, id),
        task,
        "load after changing values of the other reads"
    );
    check_eq!(
        found_by!(store, ns.id("added")),
        None,
        "a request id added to a loaded value"
    );
    Ok(())
}

/// The store keeps the task as `create` received it, not the caller's later changes.
pub async fn created_task_is_stored_by_value(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("created_task_is_stored_by_value");
    let id = ns.id("task");
    let mut mine = fixtures::task(&id, &[ns.id("r1")]);
    let created = mine.clone();
    must!(store.create(created.clone()).await);

    mine.status = TaskStatus::Completed;
    fixtures::push_item(&mut mine, &ns.id("r2"));
    mine.items[0].item.content = "changed after create".into();
    check_task!(
        loaded!(store, id),
        created,
        "load after the caller changed its copy"
    );
    check_eq!(
        found_by!(store, ns.id("r2")),
        None,
        "a request id only the caller's copy has"
    );

    must!(store.update(mine.clone()).await);
    mine.status = TaskStatus::Failed;
    let stored = loaded!(store, id);
    check_eq!(
        stored.status,
        TaskStatus::Completed,
        "status after update then local change"
    );
    Ok(())
}

/// A task with no items is created, loaded, updated and deleted like any other.
pub async fn task_without_items_is_supported(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("task_without_items_is_supported");
    let id = ns.id("task");
    let empty = fixtures::task::<&str>(&id, &[]);
    must!(store.create(empty.clone()).await);
    check_task!(loaded!(store, id), empty, "load of a task without items");

    let rid = ns.id("r");
    let mut grown = fixtures::advanced(&empty, TaskStatus::Paused);
    fixtures::push_item(&mut grown, &rid);
    must!(store.update(grown.clone()).await);
    check_task!(loaded!(store, id), grown, "load after adding an item");
    check_eq!(
        found_by!(store, rid),
        Some(id.clone()),
        "the added item's request id"
    );

    let emptied = fixtures::advanced(&fixtures::task::<&str>(&id, &[]), TaskStatus::Completed);
    must!(store.update(emptied.clone()).await);
    check_task!(
        loaded!(store, id),
        emptied,
        "load after removing every item"
    );
    check_eq!(found_by!(store, rid), None, "the removed item's request id");

    must!(store.delete(&id).await);
    check_absent!(store, id);
    Ok(())
}

/// `health()` succeeds, before and after writes.
pub async fn health_is_ok(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("health_is_ok");
    must!(store.health().await);
    must!(
        store
            .create(fixtures::task(&ns.id("task"), &[ns.id("r")]))
            .await
    );
    must!(store.health().await);
    Ok(())
}

/// `clear()` removes every task and request id, counts them, and leaves a usable store.
pub async fn clear_removes_every_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("clear_removes_every_task");
    let shared = ns.id("shared");
    let ids: Vec<String> = (0..5).map(|n| ns.id(format!("task-{n}"))).collect();
    for (n, id) in ids.iter().enumerate() {
        let own = ns.id(format!("own-{n}"));
        must!(
            store
                .create(fixtures::task(id, &[own.as_str(), shared.as_str()]))
                .await
        );
    }
    let removed = must!(store.clear().await);
    check!(
        removed >= ids.len() as u64,
        "clear() returned {removed}; {} tasks were stored",
        ids.len()
    );
    for (n, id) in ids.iter().enumerate() {
        check_absent!(store, id);
        check!(
            must!(store.load_with_etag(id).await).is_none(),
            "load_with_etag({id}) after clear"
        );
        check_eq!(
            found_by!(store, ns.id(format!("own-{n}"))),
            None,
            "own request id after clear"
        );
    }
    check_eq!(
        found_by!(store, shared),
        None,
        "the shared request id after clear"
    );

    let again = fixtures::task(&ids[0], &[&shared]);
    must!(store.create(again.clone()).await);
    check_task!(loaded!(store, ids[0]), again, "create after clear");
    check_eq!(
        found_by!(store, shared),
        Some(ids[0].clone()),
        "request id after clear and create"
    );
    Ok(())
}
