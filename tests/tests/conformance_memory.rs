//! The conformance suite against the built-in in-memory store, plus what only the
//! in-memory store can show: the size of its request-id index.

use std::sync::Arc;

use ta_persistence::{InMemoryPersistenceManager, MemoryStats};
use ta_persistence_api::conformance::{cases, run_suite};
use ta_persistence_api::DocumentManager;
use ta_persistence_api::{
    AgentTask, AgentTaskItem, MultiModalItem, Role, TaskPersistenceManager, TaskStatus, Timestamp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_store_passes_the_conformance_suite() {
    let report = run_suite(
        || async { Arc::new(InMemoryPersistenceManager::new()) as Arc<dyn DocumentManager> },
        None,
    )
    .await;
    println!("{report}");
    assert!(cases().len() >= 40, "only {} cases", cases().len());
    assert_eq!(report.results.len(), cases().len(), "every case ran");
    assert!(
        report.is_success(),
        "{} case(s) failed:\n{report}",
        report.failed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_runs_only_the_matching_cases() {
    let report = run_suite(
        || async { Arc::new(InMemoryPersistenceManager::new()) as Arc<dyn DocumentManager> },
        Some("etag"),
    )
    .await;
    assert!(!report.results.is_empty());
    assert!(report.results.iter().all(|r| r.name.contains("etag")));
    assert!(report.is_success(), "{report}");
    assert!(report
        .to_string()
        .ends_with(&format!("{} passed, 0 failed", report.passed())));
}

fn at(second: u32) -> Timestamp {
    Timestamp::parse(&format!(
        "2025-01-01T00:{:02}:{:02}",
        second / 60,
        second % 60
    ))
    .expect("a valid timestamp")
}

fn task(id: &str, request_ids: &[String], created: Timestamp) -> AgentTask {
    let mut task = AgentTask::new(id, "session", "user", created);
    task.items = request_ids
        .iter()
        .map(|rid| {
            AgentTaskItem::new(
                id,
                rid.as_str(),
                Role::User,
                MultiModalItem::text("x"),
                created,
            )
        })
        .collect();
    task
}

fn sizes(store: &InMemoryPersistenceManager) -> (usize, usize, usize) {
    let MemoryStats {
        tasks,
        request_ids,
        index_entries,
        ..
    } = store.stats();
    (tasks, request_ids, index_entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_empty_once_every_task_is_deleted() {
    let memory = InMemoryPersistenceManager::new();
    let store: Arc<dyn DocumentManager> = Arc::new(memory.clone());
    let shared = "shared".to_owned();
    let ids: Vec<String> = (0..20).map(|n| format!("task-{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        let rids = [
            shared.clone(),
            shared.clone(),
            format!("own-{n}"),
            format!("group-{}", n % 4),
        ];
        store
            .create(task(id, &rids, at(n as u32 % 7)))
            .await
            .expect("create");
    }
    // 20 own ids, 4 groups, 1 shared; each task counts once per distinct request id.
    assert_eq!(sizes(&memory), (20, 25, 60));

    // Refused writes leave no trace in the index.
    let refused = task("refused", &["fresh".to_owned(), String::new()], at(0));
    assert!(store
        .create(refused)
        .await
        .expect_err("invalid")
        .is_invalid_input());
    let unknown = task("unknown", &["fresh".to_owned()], at(0));
    assert!(store
        .update(unknown)
        .await
        .expect_err("unknown")
        .is_not_found());
    let duplicate = task(&ids[0], &["fresh".to_owned()], at(0));
    assert!(store
        .create(duplicate)
        .await
        .expect_err("taken")
        .is_already_exists());
    assert_eq!(sizes(&memory), (20, 25, 60));

    // Concurrent updates (new items, new created_at) and conditional updates.
    let mut handles = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let (store, id, shared) = (Arc::clone(&store), id.clone(), shared.clone());
        handles.push(tokio::spawn(async move {
            let rids = [format!("own-{n}-v2"), shared, format!("own-{n}-v2")];
            let mut next = task(&id, &rids, at(100 - n as u32));
            next.status = TaskStatus::Paused;
            if n % 2 == 0 {
                store.update(next).await.expect("update");
            } else {
                let current = store
                    .load_with_etag(&id)
                    .await
                    .expect("load")
                    .expect("stored");
                store
                    .update_if_match(next, &current.etag)
                    .await
                    .expect("update_if_match");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("an update task");
    }
    assert_eq!(sizes(&memory), (20, 21, 40));

    // Concurrent deletes of every task.
    let deletes: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move { store.delete(&id).await.expect("delete") })
        })
        .collect();
    for delete in deletes {
        delete.await.expect("a delete task");
    }
    assert_eq!(sizes(&memory), (0, 0, 0));

    // clear() empties the index too.
    store
        .create(task("again", std::slice::from_ref(&shared), at(1)))
        .await
        .expect("create");
    assert_eq!(sizes(&memory), (1, 1, 1));
    assert_eq!(store.clear().await.expect("clear"), 1);
    assert_eq!(sizes(&memory), (0, 0, 0));
}
