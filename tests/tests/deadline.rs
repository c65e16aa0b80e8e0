//! The host's deadline on plugins: every call into a plugin whose methods never complete
//! fails with `Timeout` naming its operation, and a constructor that blocks past the
//! deadline is a load failure (fallback, or refusal when strict) that does not block the
//! async runtime meanwhile. Real plugin library: `ta-fixture-misbehaving`.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ta_persistence::api::{Operation, TaskDocument};
use ta_persistence::config::Config;
use ta_persistence::loader::LoadError;
use ta_persistence::{
    ActiveBackend, AgentTask, ETag, ErrorKind, FactoryError, PersistenceError, PersistenceFactory,
    Timestamp,
};
use ta_persistence_tests::cdylib::plugin;

fn misbehaving() -> PathBuf {
    plugin("ta-fixture-misbehaving")
}

#[track_caller]
fn timed_out<T: Debug>(op: Operation, id: &str, after: Duration, got: Result<T, PersistenceError>) {
    let err = got.expect_err("a hanging call must fail");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{op}: {err}");
    assert_eq!(err.operation(), op, "{err}");
    assert_eq!(err.id(), id, "{err}");
    assert!(err.to_string().starts_with(op.as_str()), "{err}");
    let PersistenceError::Timeout { after: waited, .. } = err else {
        unreachable!("kind is Timeout");
    };
    assert_eq!(waited, after);
}

#[tokio::test]
async fn every_call_into_a_hanging_plugin_times_out_naming_the_operation() {
    // The deadline follows the real clock (a paused tokio clock does not move it), so
    // it is short: fifteen calls wait for it in turn.
    let after = Duration::from_millis(200);
    let config = Config::plugin(misbehaving(), "HangingManager").with_timeout(after);
    let factory = PersistenceFactory::from_config_async(&config)
        .await
        .unwrap();
    assert!(
        matches!(factory.active_backend(), ActiveBackend::Plugin { .. }),
        "{}",
        factory.active_backend()
    );
    let store = factory.document_manager();

    let task = AgentTask::new("t1", "s1", "u1", Timestamp::now_utc());
    let doc = || TaskDocument::from_task(&task);
    let etag = ETag::new("e1");
    use Operation::*;
    timed_out(Create, "t1", after, store.create(task.clone()).await);
    timed_out(Load, "t1", after, store.load("t1").await);
    timed_out(Update, "t1", after, store.update(task.clone()).await);
    timed_out(Delete, "t1", after, store.delete("t1").await);
    timed_out(
        LoadByRequestId,
        "r1",
        after,
        store.load_by_request_id("r1").await,
    );
    timed_out(Load, "t1", after, store.load_with_etag("t1").await);
    timed_out(
        Update,
        "t1",
        after,
        store.update_if_match(task.clone(), &etag).await,
    );
    timed_out(Health, "", after, store.health().await);
    timed_out(Clear, "", after, store.clear().await);
    timed_out(Create, "t1", after, store.create_document(doc()).await);
    timed_out(Load, "t1", after, store.load_document("t1").await);
    timed_out(Update, "t1", after, store.update_document(doc()).await);
    timed_out(
        LoadByRequestId,
        "r1",
        after,
        store.load_document_by_request_id("r1").await,
    );
    timed_out(Load, "t1", after, store.load_document_with_etag("t1").await);
    timed_out(
        Update,
        "t1",
        after,
        store.update_document_if_match(doc(), &etag).await,
    );
}

fn slow(block_ms: &str, timeout: Duration) -> Config {
    Config::plugin(misbehaving(), "SlowConstructor")
        .with_var("TA_FIXTURE_BLOCK_MS", block_ms)
        .with_timeout(timeout)
}

#[track_caller]
fn constructor_timed_out(reason: &LoadError) {
    assert_eq!(
        usize::from(reason.step()),
        ta_persistence::loader::CHECKS.len(),
        "{reason}"
    );
    let text = reason.to_string();
    assert!(text.contains("constructor of SlowConstructor"), "{text}");
    assert!(text.contains("did not return within 300 ms"), "{text}");
    assert!(text.contains("TA_PERSISTENCE_TIMEOUT_MS"), "{text}");
    assert!(text.contains("cannot be stopped"), "{text}");
}

#[test]
fn a_constructor_that_blocks_past_the_deadline_falls_back_or_is_refused_when_strict() {
    let config = slow("60000", Duration::from_millis(300));
    let factory = PersistenceFactory::from_config(&config).unwrap();
    constructor_timed_out(factory.fallback_reason().expect("a fallback"));

    let err = PersistenceFactory::from_config(&config.with_strict(true)).unwrap_err();
    let FactoryError::Plugin(reason) = &err else {
        panic!("expected a plugin error, got {err}");
    };
    constructor_timed_out(reason);
}

#[test]
fn a_constructor_within_the_deadline_is_used() {
    let factory = PersistenceFactory::from_config(&slow("0", Duration::from_secs(30))).unwrap();
    assert!(
        matches!(factory.active_backend(), ActiveBackend::Plugin { class, .. } if class == "SlowConstructor"),
        "{}",
        factory.active_backend()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_constructor_leaves_the_runtime_free_while_a_constructor_blocks() {
    // On a one-thread runtime, another task can only run while the constructor is
    // awaited if that await does not block the thread.
    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        loop {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let config = slow("60000", Duration::from_millis(300));
    let factory = PersistenceFactory::from_config_async(&config)
        .await
        .unwrap();
    let seen = ticks.load(Ordering::Relaxed);
    ticker.abort();
    constructor_timed_out(factory.fallback_reason().expect("a fallback"));
    assert!(
        seen > 1,
        "the runtime's only thread was blocked ({seen} ticks)"
    );

    let err = PersistenceFactory::from_config_async(&config.with_strict(true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FactoryError::Plugin(LoadError::Constructor { .. })),
        "{err}"
    );
}
