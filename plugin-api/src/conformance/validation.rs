//! Ids and errors: an empty id or one over 1024 bytes is `InvalidInput` and stores nothing;
//! 1024 bytes is fine; every error names its operation and id.

use super::fixtures::{self, Ns};
use super::CaseResult;
use crate::document_store::DocumentManager;
use crate::error::Operation;
use crate::manager::ETag;
use crate::model::{TaskStatus, MAX_ID_LEN};

/// An id of exactly `len` bytes: `prefix`, then `fill` while it fits, then `x`s.
fn sized_id(prefix: &str, fill: char, len: usize) -> String {
    let mut id = prefix.to_owned();
    while id.len() + fill.len_utf8() <= len {
        id.push(fill);
    }
    while id.len() < len {
        id.push('x');
    }
    id
}

/// The current ETag of a task the case stored; fails the case if it is missing.
macro_rules! etag_of {
    ($store:expr, $id:expr) => {{
        let id: &str = &$id;
        match must!($store.load_with_etag(id).await) {
            Some(versioned) => versioned.etag,
            None => fail!("load_with_etag({id}) returned None; the task should be stored"),
        }
    }};
}

/// Checks that a call fails with `InvalidInput` naming the given operation.
macro_rules! check_invalid {
    ($call:expr, $op:expr) => {{
        let err = expect_err!($call, InvalidInput);
        check_eq!(
            err.operation(),
            $op,
            "the operation named by `{}`",
            stringify!($call)
        );
    }};
}

/// An empty task id is `InvalidInput` for every operation, and nothing is stored.
pub async fn empty_task_id_is_invalid(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("empty_task_id_is_invalid");
    let rid = ns.id("r");
    let valid = ns.id("valid");
    must!(store.create(fixtures::task(&valid, &[ns.id("v")])).await);
    let etag: ETag = etag_of!(store, valid);
    let empty = fixtures::task("", &[&rid]);
    check_invalid!(store.create(empty.clone()).await, Operation::Create);
    check_invalid!(store.load("").await, Operation::Load);
    check_invalid!(store.update(empty.clone()).await, Operation::Update);
    check_invalid!(store.delete("").await, Operation::Delete);
    check_invalid!(store.load_with_etag("").await, Operation::Load);
    check_invalid!(store.update_if_match(empty, &etag).await, Operation::Update);
    check_eq!(
        found_by!(store, rid),
        None,
        "the request id of the refused task"
    );
    check!(
        must!(store.load(&valid).await).is_some(),
        "the valid task is gone"
    );
    Ok(())
}

/// A task id of 1025 bytes (ASCII, or fewer than 1024 two-byte characters) is
/// `InvalidInput` for every operation, and nothing is stored.
pub async fn over_long_task_id_is_invalid(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("over_long_task_id_is_invalid");
    let valid = ns.id("valid");
    must!(store.create(fixtures::task(&valid, &[ns.id("v")])).await);
    let etag = etag_of!(store, valid);
    for (n, fill) in ['a', 'é'].into_iter().enumerate() {
        let id = sized_id(&ns.id("long-"), fill, MAX_ID_LEN + 1);
        let rid = ns.id(format!("r{n}"));
        let task = fixtures::task(&id, &[&rid]);
        check_invalid!(store.create(task.clone()).await, Operation::Create);
        check_invalid!(store.load(&id).await, Operation::Load);
        check_invalid!(store.update(task.clone()).await, Operation::Update);
        check_invalid!(store.delete(&id).await, Operation::Delete);
        check_invalid!(store.load_with_etag(&id).await, Operation::Load);
        check_invalid!(store.update_if_match(task, &etag).await, Operation::Update);
        check_eq!(
            found_by!(store, rid),
            None,
            "the request id of the refused task ({fill:?})"
        );
    }
    Ok(())
}

/// Task and request ids of exactly 1024 bytes (one-, two- and four-byte characters) work
/// in every operation.
pub async fn ids_of_maximum_length_are_accepted(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("ids_of_maximum_length_are_accepted");
    for (n, fill) in ['a', 'é', '🚀'].into_iter().enumerate() {
        let id = sized_id(&ns.id(format!("{n}-")), fill, MAX_ID_LEN);
        let rid = sized_id(&ns.id(format!("r{n}-")), fill, MAX_ID_LEN);
        check!(
            id.len() == MAX_ID_LEN && rid.len() == MAX_ID_LEN,
            "fixture ids of the wrong size"
        );
        let task = fixtures::task(&id, &[&rid]);
        must!(store.create(task.clone()).await);
        check_task!(
            loaded!(store, id),
            task,
            "load of a {fill:?} id of 1024 bytes"
        );
        check_eq!(
            found_by!(store, rid),
            Some(id.clone()),
            "a {fill:?} request id of 1024 bytes"
        );
        let changed = fixtures::advanced(&task, TaskStatus::Paused);
        must!(store.update(changed.clone()).await);
        let etag = etag_of!(store, id);
        let last = fixtures::advanced(&changed, TaskStatus::Completed);
        must!(store.update_if_match(last.clone(), &etag).await);
        check_task!(
            loaded!(store, id),
            last,
            "load after update_if_match of a {fill:?} id"
        );
        must!(store.delete(&id).await);
        check_absent!(store, id);
    }
    Ok(())
}

/// `create` of a task with an empty or over-long item request id is `InvalidInput` and
/// stores nothing: not the task, not its valid request ids.
pub async fn invalid_request_id_in_create_stores_nothing(
    store: &dyn DocumentManager,
) -> CaseResult {
    let ns = Ns::new("invalid_request_id_in_create_stores_nothing");
    let id = ns.id("task");
    let good = ns.id("good");
    for bad in [
        String::new(),
        sized_id(&ns.id("long-"), 'a', MAX_ID_LEN + 1),
    ] {
        let task = fixtures::task(&id, &[&good, &bad]);
        check_invalid!(store.create(task).await, Operation::Create);
        check_absent!(store, id);
        check_eq!(
            found_by!(store, good),
            None,
            "the valid request id of the refused task"
        );
    }
    let task = fixtures::task(&id, &[&good]);
    must!(store.create(task.clone()).await);
    check_task!(loaded!(store, id), task, "create after the refused ones");
    Ok(())
}

/// `load_by_request_id` (and its document form) of an empty or over-long request id is
/// `InvalidInput`.
pub async fn invalid_request_id_argument_is_invalid(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("invalid_request_id_argument_is_invalid");
    let long = sized_id(&ns.id("long-"), 'a', MAX_ID_LEN + 1);
    for bad in ["", long.as_str()] {
        check_invalid!(
            store.load_by_request_id(bad).await,
            Operation::LoadByRequestId
        );
        check_invalid!(
            store.load_document_by_request_id(bad).await,
            Operation::LoadByRequestId
        );
    }
    Ok(())
}

/// `update` or `update_if_match` with an invalid item request id is `InvalidInput` and
/// changes nothing: not the task, not the index, not the ETag.
pub async fn invalid_request_id_in_update_keeps_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("invalid_request_id_in_update_keeps_task");
    let id = ns.id("task");
    let (kept, added) = (ns.id("kept"), ns.id("added"));
    let task = fixtures::task(&id, &[&kept]);
    must!(store.create(task.clone()).await);
    let etag = etag_of!(store, id);
    let long = sized_id(&ns.id("long-"), 'a', MAX_ID_LEN + 1);
    for bad in [String::new(), long] {
        let mut refused = fixtures::advanced(&task, TaskStatus::Failed);
        fixtures::set_items(&mut refused, &[&added, &bad]);
        check_invalid!(store.update(refused.clone()).await, Operation::Update);
        check_invalid!(
            store.update_if_match(refused, &etag).await,
            Operation::Update
        );
        check_task!(
            loaded!(store, id),
            task,
            "the task after the refused updates"
        );
        check_eq!(
            found_by!(store, kept),
            Some(id.clone()),
            "the kept request id"
        );
        check_eq!(
            found_by!(store, added),
            None,
            "the refused update's valid request id"
        );
    }
    check_eq!(
        etag_of!(store, id),
        etag,
        "the ETag after the refused updates"
    );
    let changed = fixtures::advanced(&task, TaskStatus::Completed);
    must!(store.update_if_match(changed.clone(), &etag).await);
    check_task!(
        loaded!(store, id),
        changed,
        "update_if_match after the refused updates"
    );
    Ok(())
}

/// Every error names its operation, and the task id it was about.
pub async fn errors_name_operation_and_id(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("errors_name_operation_and_id");
    let id = ns.id("task");
    let unknown = ns.id("unknown");
    let task = fixtures::task(&id, &[ns.id("r")]);
    must!(store.create(task.clone()).await);
    let stale = etag_of!(store, id);
    must!(
        store
            .update(fixtures::advanced(&task, TaskStatus::Paused))
            .await
    );

    let cases = [
        (
            expect_err!(store.create(task.clone()).await, AlreadyExists),
            Operation::Create,
            &id,
        ),
        (
            expect_err!(
                store.update(fixtures::task(&unknown, &[ns.id("u")])).await,
                NotFound
            ),
            Operation::Update,
            &unknown,
        ),
        (
            expect_err!(store.delete(&unknown).await, NotFound),
            Operation::Delete,
            &unknown,
        ),
        (
            expect_err!(
                store
                    .update_if_match(fixtures::task(&unknown, &[ns.id("u")]), &stale)
                    .await,
                NotFound
            ),
            Operation::Update,
            &unknown,
        ),
        (
            expect_err!(store.update_if_match(task.clone(), &stale).await, Conflict),
            Operation::Update,
            &id,
        ),
    ];
    for (n, (err, op, subject)) in cases.iter().enumerate() {
        check_eq!(err.operation(), *op, "error {n} ({err}): its operation");
        check_eq!(err.id(), subject.as_str(), "error {n} ({err}): its id");
    }
    let bad_item = fixtures::task(&ns.id("bad"), &[""]);
    check_invalid!(store.create(bad_item).await, Operation::Create);
    check_invalid!(
        store.load_by_request_id("").await,
        Operation::LoadByRequestId
    );
    Ok(())
}
