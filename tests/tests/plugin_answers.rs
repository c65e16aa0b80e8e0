//! What a plugin returns is checked: a read that answers about another task than the one
//! asked for is a `Plugin` error naming both ids, never a success. Real plugin library:
//! `ta-fixture-misbehaving`, class `WrongAnswers`.

use std::fmt::Debug;
use std::sync::Arc;

use ta_persistence::config::Config;
use ta_persistence::{
    ActiveBackend, ErrorKind, PersistenceError, PersistenceFactory, TaskPersistenceManager,
};
use ta_persistence_api::Operation;
use ta_persistence_api::{DocumentManager, PageRequest, TaskFilter};
use ta_persistence_tests::cdylib::plugin;

fn wrong_answers() -> Arc<dyn DocumentManager> {
    let config = Config::plugin(plugin("ta-fixture-misbehaving"), "WrongAnswers");
    let factory = PersistenceFactory::from_config(&config).expect("the default policy never fails");
    assert!(
        matches!(factory.active_backend(), ActiveBackend::Plugin { .. }),
        "{}",
        factory.active_backend()
    );
    factory.document_manager()
}

#[track_caller]
fn violation<T: Debug>(
    op: Operation,
    asked: &str,
    returned: &str,
    got: Result<T, PersistenceError>,
) {
    let err = got.expect_err("a wrong answer must not be a success");
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    assert_eq!(err.operation(), op, "{err}");
    assert_eq!(err.id(), asked, "{err}");
    let report = err.report();
    assert!(report.contains("broke the interface contract"), "{report}");
    assert!(report.contains(&format!("{asked:?}")), "{report}");
    assert!(report.contains(&format!("task {returned:?}")), "{report}");
}

#[tokio::test]
async fn a_load_that_returns_another_task_is_a_plugin_error_naming_both() {
    let store = wrong_answers();
    violation(Operation::Load, "a", "not-a", store.load("a").await);
    violation(
        Operation::Load,
        "a",
        "not-a",
        store.load_document("a").await,
    );
    violation(
        Operation::Load,
        "a",
        "not-a",
        store.load_with_etag("a").await,
    );
    violation(
        Operation::Load,
        "a",
        "not-a",
        store.load_document_with_etag("a").await,
    );
}

#[tokio::test]
async fn a_find_that_returns_a_task_without_the_request_id_is_a_plugin_error() {
    let store = wrong_answers();
    let op = Operation::LoadByRequestId;
    violation(op, "r", "holds-not-r", store.load_by_request_id("r").await);
    violation(
        op,
        "r",
        "holds-not-r",
        store.load_document_by_request_id("r").await,
    );
}

#[tokio::test]
async fn a_document_whose_fields_disagree_with_its_json_is_caught_when_decoded() {
    let store = wrong_answers();
    // The document's indexed task id says "forged"; its JSON is task "other".
    violation(
        Operation::Load,
        "forged",
        "other",
        store.load("forged").await,
    );
    violation(
        Operation::Load,
        "forged",
        "other",
        store.load_with_etag("forged").await,
    );
    // Its indexed request ids say "forged"; its JSON holds no item at all.
    let op = Operation::LoadByRequestId;
    violation(
        op,
        "forged",
        "holds-nothing",
        store.load_by_request_id("forged").await,
    );
}

#[tokio::test]
async fn a_listing_that_breaks_the_contract_is_a_plugin_error_saying_how() {
    let store = wrong_answers();
    let faults = [
        ("excluded", "which the filter excludes"),
        ("unordered", "out of listing order"),
        ("repeated", "out of listing order"),
        ("oversized", "at most 1 tasks, it returned 2"),
        ("foreign-cursor", "next cursor is not one for this filter"),
        ("early-cursor", "not after the page's last task"),
        ("empty-next", "empty page with a next cursor"),
    ];
    for (session, what) in faults {
        let filter = TaskFilter::all().session(session);
        let size = if session == "oversized" { 1 } else { 10 };
        let page = PageRequest::new(size).unwrap();
        let err = store.list_tasks(&filter, &page).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Plugin, "{session}: {err}");
        assert_eq!(err.operation(), Operation::List, "{session}: {err}");
        let report = err.report();
        assert!(
            report.contains("broke the interface contract") && report.contains(what),
            "{session}: {report}"
        );
    }
    // Correct pages pass the same checks unchanged.
    let page = store
        .list_tasks(&TaskFilter::all().session("fine"), &PageRequest::default())
        .await
        .unwrap();
    let ids: Vec<&str> = page.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["newer", "older"]);
    assert!(page.next.is_none());
    let page = store
        .list_tasks(&TaskFilter::all(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.tasks.len(), 1);
}
