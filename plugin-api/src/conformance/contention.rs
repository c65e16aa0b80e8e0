//! Concurrent callers racing for one task: creates of one id, updates with one ETag, and
//! read-modify-write turns that must all land.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::FutureExt;

use super::concurrency::{all_pass, spawn_all};
use super::fixtures::{self, Ns};
use super::CaseResult;
use crate::document_store::DocumentManager;
use crate::model::{AgentTask, TaskStatus};

/// 64 concurrent creates of one id: exactly one succeeds, the rest are `AlreadyExists`,
/// and the stored task (and index) is the winner's.
pub async fn concurrent_creates_of_one_id_have_one_winner(
    store: Arc<dyn DocumentManager>,
) -> CaseResult {
    let ns = Ns::new("concurrent_creates_of_one_id_have_one_winner");
    let id = ns.id("task");
    let candidates: Vec<AgentTask> = (0..64)
        .map(|n| {
            let mut task = fixtures::task(&id, &[ns.id(format!("c{n}"))]);
            task.session_id = format!("candidate-{n}");
            task
        })
        .collect();
    let creates = candidates.iter().map(|task| {
        let (store, task) = (Arc::clone(&store), task.clone());
        async move { store.create(task).await }
    });
    let results = spawn_all(creates.collect()).await?;
    let mut winners = Vec::new();
    for (n, result) in results.iter().enumerate() {
        match result {
            Ok(()) => winners.push(n),
            Err(err) if err.is_already_exists() => {}
            Err(err) => fail!(
                "create {n} failed with {:?}, not AlreadyExists: {}",
                err.kind(),
                err.report()
            ),
        }
    }
    let [winner] = winners[..] else {
        fail!(
            "{} of 64 concurrent creates of one id succeeded: {winners:?}",
            winners.len()
        );
    };
    check_task!(
        loaded!(store, id),
        candidates[winner],
        "the stored task against the winner's"
    );
    for n in 0..candidates.len() {
        let expected = (n == winner).then(|| id.clone());
        check_eq!(
            found_by!(store, ns.id(format!("c{n}"))),
            expected,
            "candidate {n}'s request id"
        );
    }
    Ok(())
}

/// 32 concurrent `update_if_match` calls with one ETag: exactly one succeeds, the rest are
/// `Conflict`, and the stored task, ETag and index are the winner's.
pub async fn concurrent_update_if_match_has_one_winner(
    store: Arc<dyn DocumentManager>,
) -> CaseResult {
    let ns = Ns::new("concurrent_update_if_match_has_one_winner");
    let id = ns.id("task");
    must!(store.create(fixtures::task(&id, &[ns.id("r")])).await);
    let Some(base) = must!(store.load_with_etag(&id).await) else {
        fail!("load_with_etag returned None for a stored task");
    };
    let candidates: Vec<AgentTask> = (0..32)
        .map(|n| {
            let mut task = fixtures::advanced(&base.value, TaskStatus::Paused);
            task.session_id = format!("candidate-{n}");
            fixtures::push_item(&mut task, &ns.id(format!("c{n}")));
            task
        })
        .collect();
    let updates = candidates.iter().map(|task| {
        let (store, task, etag) = (Arc::clone(&store), task.clone(), base.etag.clone());
        async move { store.update_if_match(task, &etag).await }
    });
    let results = spawn_all(updates.collect()).await?;
    let mut winners = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        match result {
            Ok(etag) => winners.push((n, etag)),
            Err(err) if err.is_conflict() => {}
            Err(err) => fail!(
                "update_if_match {n} failed with {:?}, not Conflict: {}",
                err.kind(),
                err.report()
            ),
        }
    }
    let [(winner, ref etag)] = winners[..] else {
        fail!(
            "{} of 32 update_if_match calls with one ETag succeeded",
            winners.len()
        );
    };
    let Some(now) = must!(store.load_with_etag(&id).await) else {
        fail!("load_with_etag returned None after the updates");
    };
    check_task!(
        now.value,
        candidates[winner],
        "the stored task against the winner's"
    );
    check_eq!(now.etag, *etag, "the stored ETag against the winner's");
    for n in 0..candidates.len() {
        let expected = (n == winner).then(|| id.clone());
        check_eq!(
            found_by!(store, ns.id(format!("c{n}"))),
            expected,
            "candidate {n}'s request id"
        );
    }
    Ok(())
}

/// 64 concurrent read-modify-write turns through `load_with_etag`/`update_if_match`, each
/// appending one item and retrying on `Conflict`: no turn is lost.
pub async fn concurrent_read_modify_write_loses_nothing(
    store: Arc<dyn DocumentManager>,
) -> CaseResult {
    const TURNS: usize = 64;
    const MAX_ATTEMPTS: usize = 10_000;
    let ns = Ns::new("concurrent_read_modify_write_loses_nothing");
    let id = ns.id("task");
    must!(store.create(fixtures::task::<&str>(&id, &[])).await);
    let rids: Vec<String> = (0..TURNS).map(|n| ns.id(format!("turn-{n}"))).collect();
    let turns = rids.iter().map(|rid| {
        let (store, id, rid) = (Arc::clone(&store), id.clone(), rid.clone());
        async move {
            for _ in 0..MAX_ATTEMPTS {
                let Some(current) = must!(store.load_with_etag(&id).await) else {
                    fail!("load_with_etag returned None during turn {rid}");
                };
                let mut next = current.value;
                fixtures::push_item(&mut next, &rid);
                match store.update_if_match(next, &current.etag).await {
                    Ok(_) => return Ok(()),
                    Err(err) if err.is_conflict() => tokio::task::yield_now().await,
                    Err(err) => fail!("update_if_match in turn {rid} failed: {}", err.report()),
                }
            }
            fail!("turn {rid} did not land in {MAX_ATTEMPTS} attempts")
        }
        .boxed()
    });
    all_pass(turns.collect()).await?;
    let task = loaded!(store, id);
    check_eq!(task.items.len(), TURNS, "items after {TURNS} turns");
    let stored: BTreeSet<&str> = task
        .items
        .iter()
        .map(|item| item.request_id.as_str())
        .collect();
    let expected: BTreeSet<&str> = rids.iter().map(String::as_str).collect();
    check!(
        stored == expected,
        "the appended request ids differ from the turns' ids"
    );
    for rid in &rids {
        check_eq!(found_by!(store, rid), Some(id.clone()), "request id {rid}");
    }
    Ok(())
}
