//! The `*_document` methods: the same contract over [`TaskDocument`]s, the form in which
//! tasks cross the plugin boundary.

use super::fixtures::{self, Ns, SECOND};
use super::CaseResult;
use crate::document::TaskDocument;
use crate::document_store::DocumentManager;
use crate::error::Operation;
use crate::model::TaskStatus;

/// The task a document holds; fails the case if it does not decode.
macro_rules! decoded {
    ($doc:expr) => {
        match $doc.to_task() {
            Ok(task) => task,
            Err(err) => fail!("a document from the store does not decode: {err}"),
        }
    };
}

/// `create_document`, then `load` returns the task and its request ids find it.
pub async fn create_document_then_load(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("create_document_then_load");
    let id = ns.id("task");
    let rid = ns.id("r");
    let task = fixtures::rich_task(&id, &rid)?;
    must!(store.create_document(TaskDocument::from_task(&task)).await);
    check_task!(loaded!(store, id), task, "load after create_document");
    check_eq!(
        found_by!(store, rid),
        Some(id.clone()),
        "request id after create_document"
    );
    Ok(())
}

/// `load_document` returns a document whose task and indexed fields match the task.
pub async fn load_document_matches_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("load_document_matches_task");
    let id = ns.id("task");
    let task = fixtures::rich_task(&id, &ns.id("r"))?;
    must!(store.create(task.clone()).await);
    let Some(doc) = must!(store.load_document(&id).await) else {
        fail!("load_document returned None for a stored task");
    };
    check_task!(decoded!(doc), task, "the task of load_document");
    let expected = TaskDocument::from_task(&task);
    check_eq!(doc.task_id(), expected.task_id(), "the document's task id");
    check_eq!(
        doc.request_ids(),
        expected.request_ids(),
        "the document's request ids"
    );
    check_eq!(
        doc.created_at_micros(),
        expected.created_at_micros(),
        "the document's created_at"
    );
    Ok(())
}

/// Document reads of ids never stored are `Ok(None)`.
pub async fn unknown_document_is_none(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("unknown_document_is_none");
    must!(
        store
            .create(fixtures::task(&ns.id("task"), &[ns.id("r")]))
            .await
    );
    let unknown = ns.id("unknown");
    check!(
        must!(store.load_document(&unknown).await).is_none(),
        "load_document found a task"
    );
    check!(
        must!(store.load_document_by_request_id(&unknown).await).is_none(),
        "load_document_by_request_id found a task"
    );
    check!(
        must!(store.load_document_with_etag(&unknown).await).is_none(),
        "load_document_with_etag found a task"
    );
    Ok(())
}

/// `load_document_by_request_id` returns the first-created task holding the request id.
pub async fn load_document_by_request_id_finds_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("load_document_by_request_id_finds_task");
    let rid = ns.id("shared");
    let late = fixtures::task_created(&ns.id("a-late"), &[&rid], fixtures::utc_at(2 * SECOND));
    let early = fixtures::task_created(&ns.id("b-early"), &[&rid], fixtures::utc_at(SECOND));
    must!(store.create_document(TaskDocument::from_task(&late)).await);
    must!(store.create_document(TaskDocument::from_task(&early)).await);
    let Some(doc) = must!(store.load_document_by_request_id(&rid).await) else {
        fail!("load_document_by_request_id found nothing");
    };
    check_task!(
        decoded!(doc),
        early,
        "the task found by load_document_by_request_id"
    );
    Ok(())
}

/// `load_document_with_etag` and `update_document_if_match`: the current ETag succeeds
/// with a new one, a stale one is `Conflict` and changes nothing.
pub async fn document_etag_round_trip(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("document_etag_round_trip");
    let id = ns.id("task");
    let task = fixtures::task(&id, &[ns.id("r")]);
    must!(store.create(task.clone()).await);
    let Some(before) = must!(store.load_document_with_etag(&id).await) else {
        fail!("load_document_with_etag returned None for a stored task");
    };
    check_task!(
        decoded!(before.value),
        task,
        "the task of load_document_with_etag"
    );

    let changed = fixtures::advanced(&task, TaskStatus::Paused);
    let doc = TaskDocument::from_task(&changed);
    let etag = must!(store.update_document_if_match(doc, &before.etag).await);
    check!(
        etag != before.etag,
        "update_document_if_match returned the old ETag"
    );
    check_task!(
        loaded!(store, id),
        changed,
        "load after update_document_if_match"
    );
    match must!(store.load_with_etag(&id).await) {
        Some(now) => check_eq!(now.etag, etag, "the ETag after update_document_if_match"),
        None => fail!("load_with_etag returned None after update_document_if_match"),
    }

    let refused = TaskDocument::from_task(&fixtures::advanced(&task, TaskStatus::Failed));
    let err = expect_err!(
        store.update_document_if_match(refused, &before.etag).await,
        Conflict
    );
    check_eq!(
        err.operation(),
        Operation::Update,
        "the Conflict error's operation"
    );
    check_task!(
        loaded!(store, id),
        changed,
        "load after the refused update_document_if_match"
    );
    Ok(())
}

/// `update_document` replaces the task and moves its request ids.
pub async fn update_document_replaces_task(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_document_replaces_task");
    let id = ns.id("task");
    let (old, new) = (ns.id("old"), ns.id("new"));
    let task = fixtures::task(&id, &[&old]);
    must!(store.create_document(TaskDocument::from_task(&task)).await);
    let mut changed = fixtures::advanced(&task, TaskStatus::Completed);
    fixtures::set_items(&mut changed, &[&new, &new]);
    must!(
        store
            .update_document(TaskDocument::from_task(&changed))
            .await
    );
    check_task!(loaded!(store, id), changed, "load after update_document");
    check_eq!(found_by!(store, old), None, "the dropped request id");
    check_eq!(
        found_by!(store, new),
        Some(id.clone()),
        "the added request id"
    );
    Ok(())
}

/// `update_document` of an id never stored is `NotFound` and stores nothing.
pub async fn update_document_of_unknown_id_fails(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("update_document_of_unknown_id_fails");
    let id = ns.id("task");
    let rid = ns.id("r");
    let doc = TaskDocument::from_task(&fixtures::task(&id, &[&rid]));
    let err = expect_err!(store.update_document(doc).await, NotFound);
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
        "the refused document's request id"
    );
    Ok(())
}

/// `create_document` refuses empty ids (storing nothing) and a taken task id (keeping the
/// stored task).
pub async fn create_document_checks_ids_and_duplicates(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("create_document_checks_ids_and_duplicates");
    let id = ns.id("task");
    let good = ns.id("good");
    let bad_item = TaskDocument::from_task(&fixtures::task(&id, &[good.as_str(), ""]));
    let err = expect_err!(store.create_document(bad_item).await, InvalidInput);
    check_eq!(
        err.operation(),
        Operation::Create,
        "the InvalidInput error's operation"
    );
    check_absent!(store, id);
    check_eq!(
        found_by!(store, good),
        None,
        "the refused document's valid request id"
    );
    let no_id = TaskDocument::from_task(&fixtures::task("", &[ns.id("other")]));
    expect_err!(store.create_document(no_id).await, InvalidInput);

    let first = fixtures::task(&id, &[&good]);
    must!(store.create_document(TaskDocument::from_task(&first)).await);
    let mut second = fixtures::task(&id, &[ns.id("second")]);
    second.status = TaskStatus::Canceled;
    let err = expect_err!(
        store
            .create_document(TaskDocument::from_task(&second))
            .await,
        AlreadyExists
    );
    check_eq!(err.id(), id.as_str(), "the AlreadyExists error's id");
    check_task!(
        loaded!(store, id),
        first,
        "load after the refused create_document"
    );
    check_eq!(
        found_by!(store, ns.id("second")),
        None,
        "the refused document's request id"
    );
    Ok(())
}
