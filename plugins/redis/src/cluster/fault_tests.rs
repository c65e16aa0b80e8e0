//! Fails each step of each write in turn, on a real cluster, and checks what the parent
//! module's docs claim: only index entries that lookups and listings repair are left, a
//! retry completes the write, and an acknowledged task is always found by its request
//! ids and listed in every listing index it belongs to.

use redis::cluster::ClusterClient;
use ta_persistence_api::listing::{PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::{Operation, PersistenceError, TaskDocument};
use ta_persistence_tests::redis_cluster::RedisCluster;
use ta_persistence_tests::redis_server::sample_task;

use super::keys::{ClusterKeys, ListIndex};
use super::ops::{prune_token, ClusterOps, IndexEntry, Step};

const CREATED: &str = "2025-01-01T00:00:00Z";

async fn ops(cluster: &RedisCluster, prefix: &str) -> ClusterOps {
    let nodes: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}", n.port()))
        .collect();
    let conn = ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    ClusterOps::new(
        conn,
        prefix,
        0,
        &RetentionPolicy::none(),
        std::time::Duration::from_secs(5),
        0,
    )
}

fn doc(id: &str, rids: &[&str]) -> TaskDocument {
    TaskDocument::from_task(&sample_task(id, CREATED, rids))
}

/// A task of `session` (user `user`), with no items.
fn doc_in(id: &str, session: &str) -> TaskDocument {
    let mut task = sample_task(id, CREATED, &[]);
    task.session_id = session.to_owned();
    TaskDocument::from_task(&task)
}

fn requests(rids: &[&str]) -> Vec<IndexEntry> {
    rids.iter()
        .map(|rid| IndexEntry::Request((*rid).to_owned()))
        .collect()
}

/// The ids a listing of `filter` returns, every page walked.
async fn listed(ops: &ClusterOps, filter: &TaskFilter) -> Vec<String> {
    let mut ids = Vec::new();
    let mut request = PageRequest::new(2).unwrap();
    loop {
        let page = ops.list(filter, &request).await.unwrap();
        ids.extend(page.tasks.iter().map(|s| s.task_id.clone()));
        match page.next {
            Some(cursor) => request = PageRequest::new(2).unwrap().after(cursor),
            None => return ids,
        }
    }
}

/// Whether `index` holds the listing member of task `id` (created at [`CREATED`]), raw,
/// without repairing.
fn has_member(cluster: &RedisCluster, prefix: &str, index: &ListIndex, id: &str) -> bool {
    let key = ClusterKeys::new(prefix).list_index(index);
    let task = doc_in(id, "any");
    let summary = TaskSummary::from_json(task.json()).unwrap();
    let member = crate::listing::member(&summary.key());
    let node = cluster.master_of(cluster.keyslot(&key));
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(&key)
        .arg(member)
        .query(&mut cluster.nodes()[node].conn())
        .unwrap();
    score.is_some()
}

fn session(name: &str) -> ListIndex {
    ListIndex::Session(name.to_owned())
}

/// The task id a lookup of `rid` returns.
async fn found(ops: &ClusterOps, rid: &str) -> Option<String> {
    ops.find(rid).await.unwrap().map(|d| d.task_id().to_owned())
}

/// Whether `rid`'s index has an entry for `task_id` (raw, without repairing).
fn has_entry(cluster: &RedisCluster, prefix: &str, rid: &str, task_id: &str) -> bool {
    let key = format!("{prefix}:{{r:{rid}}}:request_index");
    let node = cluster.master_of(cluster.keyslot(&key));
    redis::cmd("HEXISTS")
        .arg(&key)
        .arg(task_id)
        .query(&mut cluster.nodes()[node].conn())
        .unwrap()
}

fn assert_failed_transiently(result: Result<(), PersistenceError>, step: Step) {
    let err = result.expect_err("the armed step fails the write");
    assert!(err.is_transient(), "{step:?}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_of_an_update_leaves_only_what_lookups_repair() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let p = "faults-update";
    let ops = ops(&cluster, p).await;
    for step in [
        Step::IndexAdd,
        Step::TaskWrite,
        Step::IndexConfirm,
        Step::Unindex,
    ] {
        let id = format!("t-{step:?}");
        let (r1, r2, r3) = (format!("{id}-1"), format!("{id}-2"), format!("{id}-3"));
        let (r1, r2, r3) = (r1.as_str(), r2.as_str(), r3.as_str());
        ops.create(doc(&id, &[r1, r2])).await.unwrap();
        ops.fail_next(step);
        let result = ops.update(&doc(&id, &[r2, r3]), None).await;
        let stored = ops.load(&id, false).await.unwrap().unwrap().0;
        match step {
            Step::IndexAdd | Step::TaskWrite => {
                assert_failed_transiently(result, step);
                // Nothing of the task changed: the old document is found by its ids,
                // and the new id's entry (if step 1 ran) is pruned by its lookup.
                assert!(stored.request_ids().contains(&r1.to_owned()), "{step:?}");
                assert_eq!(found(&ops, r1).await.as_ref(), Some(&id), "{step:?}");
                assert_eq!(found(&ops, r3).await, None, "{step:?}");
                assert!(!has_entry(&cluster, p, r3, &id), "{step:?}");
                ops.update(&doc(&id, &[r2, r3]), None).await.unwrap();
            }
            Step::IndexConfirm => {
                // Applied but not acknowledged: the error says the outcome is unknown.
                let err = result.expect_err("fails after the task write");
                assert!(err.is_outcome_unknown(), "{err}");
                assert!(!stored.request_ids().contains(&r1.to_owned()));
                // Step 1's entries already find it; a retry completes the write.
                assert_eq!(found(&ops, r3).await.as_ref(), Some(&id));
                ops.update(&doc(&id, &[r2, r3]), None).await.unwrap();
            }
            _ => {
                // Pruning is best effort: the write is acknowledged.
                result.unwrap();
                assert!(has_entry(&cluster, p, r1, &id), "stale entry left");
            }
        }
        assert_eq!(found(&ops, r2).await.as_ref(), Some(&id), "{step:?}");
        assert_eq!(found(&ops, r3).await.as_ref(), Some(&id), "{step:?}");
        assert_eq!(found(&ops, r1).await, None, "{step:?}");
        // The lookup repaired the index: no entry points at a task not holding r1.
        assert!(!has_entry(&cluster, p, r1, &id), "{step:?}");
        assert!(has_entry(&cluster, p, r3, &id), "{step:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_of_a_create_or_delete_leaves_only_what_lookups_repair() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let p = "faults-create";
    let ops = ops(&cluster, p).await;
    for step in [Step::IndexAdd, Step::TaskWrite, Step::IndexConfirm] {
        let id = format!("c-{step:?}");
        let rid = format!("{id}-r");
        ops.fail_next(step);
        let result = ops.create(doc(&id, &[&rid])).await;
        if step == Step::IndexConfirm {
            let err = result.expect_err("fails after the task write");
            assert!(err.is_outcome_unknown(), "{err}");
            // Applied: found by its request id already, and a retry says it exists.
            assert_eq!(found(&ops, &rid).await.as_ref(), Some(&id));
            let again = ops.create(doc(&id, &[&rid])).await.unwrap_err();
            assert!(again.is_already_exists(), "{again}");
        } else {
            assert_failed_transiently(result, step);
            assert!(ops.load(&id, false).await.unwrap().is_none(), "{step:?}");
            // An entry step 1 may have left points at no task: the lookup prunes it.
            assert_eq!(found(&ops, &rid).await, None, "{step:?}");
            assert!(!has_entry(&cluster, p, &rid, &id), "{step:?}");
            ops.create(doc(&id, &[&rid])).await.unwrap();
        }
        assert_eq!(found(&ops, &rid).await.as_ref(), Some(&id), "{step:?}");
    }

    for step in [Step::TaskWrite, Step::Unindex] {
        let id = format!("d-{step:?}");
        ops.create(doc(&id, &["d1"])).await.unwrap();
        ops.fail_next(step);
        let result = ops.delete(&id).await;
        if step == Step::TaskWrite {
            assert_failed_transiently(result, step);
            assert_eq!(found(&ops, "d1").await.as_ref(), Some(&id));
            ops.delete(&id).await.unwrap();
        } else {
            result.unwrap();
            assert!(has_entry(&cluster, p, "d1", &id), "stale entry left");
        }
        assert_eq!(found(&ops, "d1").await, None, "{step:?}");
        assert!(!has_entry(&cluster, p, "d1", &id), "{step:?}");
        let err = ops.delete(&id).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_that_read_before_a_write_cannot_remove_the_writes_entry() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let p = "faults-race";
    let ops = ops(&cluster, p).await;
    ops.create(doc("t", &["other"])).await.unwrap();
    // An entry to prune, as step 1 of an abandoned write would leave it.
    let key = format!("{p}:{{r:x}}:request_index");
    let node = cluster.master_of(cluster.keyslot(&key));
    redis::cmd("HSET")
        .arg(&key)
        .arg("t")
        .arg("live")
        .query::<()>(&mut cluster.nodes()[node].conn())
        .unwrap();

    // A prune marks the entry and reads the task, which does not hold "x" ...
    let stale = requests(&["x"]);
    let token = prune_token();
    assert_eq!(ops.mark("t", &stale, &token).await, stale);
    let keep = ops.held("t", &stale).await;
    assert_eq!(keep, vec![false], "the task does not hold x yet");

    // ... then a write makes the task hold "x" and is acknowledged ...
    ops.update(&doc("t", &["other", "x"]), None).await.unwrap();

    // ... and only then does the prune settle, with what it read before: it must not
    // remove the entry of the acknowledged write.
    assert_eq!(ops.settle("t", &stale, &keep, &token).await, 0);
    assert_eq!(found(&ops, "x").await.as_deref(), Some("t"));
    assert!(has_entry(&cluster, p, "x", "t"));

    // A prune that reads after the write keeps the entry too; one that reads after the
    // task dropped "x" removes it.
    ops.unindex(Operation::LoadByRequestId, "t", stale.clone())
        .await;
    assert!(has_entry(&cluster, p, "x", "t"));
    ops.update(&doc("t", &["other"]), None).await.unwrap();
    assert!(!has_entry(&cluster, p, "x", "t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_of_a_move_leaves_only_what_listings_repair() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let p = "faults-listing";
    let ops = ops(&cluster, p).await;
    let in_session = |name: &str| TaskFilter::all().session(name);
    for step in [
        Step::IndexAdd,
        Step::TaskWrite,
        Step::IndexConfirm,
        Step::Unindex,
    ] {
        // Each round has sessions of its own: `old-<step>` and `new-<step>`.
        let id = format!("m-{step:?}");
        let (old, new) = (format!("old-{step:?}"), format!("new-{step:?}"));
        ops.create(doc_in(&id, &old)).await.unwrap();
        ops.fail_next(step);
        let result = ops.update(&doc_in(&id, &new), None).await;
        match step {
            Step::IndexAdd | Step::TaskWrite => {
                assert_failed_transiently(result, step);
                // The task is still in the old session, listed there and only there; a
                // member step 1 may have added to the new session's index is pruned by
                // the listing that meets it.
                assert_eq!(listed(&ops, &in_session(&old)).await, vec![id.clone()]);
                assert_eq!(listed(&ops, &in_session(&new)).await, Vec::<String>::new());
                assert!(!has_member(&cluster, p, &session(&new), &id), "{step:?}");
                ops.update(&doc_in(&id, &new), None).await.unwrap();
            }
            Step::IndexConfirm => {
                let err = result.expect_err("fails after the task write");
                assert!(err.is_outcome_unknown(), "{err}");
                // Applied: step 1's member already lists it in the new session.
                assert_eq!(listed(&ops, &in_session(&new)).await, vec![id.clone()]);
                ops.update(&doc_in(&id, &new), None).await.unwrap();
            }
            _ => {
                // Pruning is best effort: the write is acknowledged, the old member stays.
                result.unwrap();
                assert!(
                    has_member(&cluster, p, &session(&old), &id),
                    "stale member left"
                );
            }
        }
        assert_eq!(
            listed(&ops, &in_session(&new)).await,
            vec![id.clone()],
            "{step:?}"
        );
        // A listing of the old session skips the stale member and prunes it.
        assert_eq!(
            listed(&ops, &in_session(&old)).await,
            Vec::<String>::new(),
            "{step:?}"
        );
        assert!(!has_member(&cluster, p, &session(&old), &id), "{step:?}");
        assert!(has_member(&cluster, p, &session(&new), &id), "{step:?}");
        assert!(has_member(&cluster, p, &ListIndex::All, &id), "{step:?}");
    }
    let all = listed(&ops, &TaskFilter::all()).await;
    assert_eq!(all.len(), 4, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_or_delete_leaves_only_what_listings_repair() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let p = "faults-listing-cd";
    let ops = ops(&cluster, p).await;
    let s = TaskFilter::all().session("s");
    for step in [Step::IndexAdd, Step::TaskWrite, Step::IndexConfirm] {
        let id = format!("c-{step:?}");
        ops.fail_next(step);
        let result = ops.create(doc_in(&id, "s")).await;
        if step == Step::IndexConfirm {
            assert!(result.unwrap_err().is_outcome_unknown());
            assert!(listed(&ops, &s).await.contains(&id), "{step:?}");
        } else {
            assert_failed_transiently(result, step);
            // Nothing acknowledged; a member step 1 may have left is pruned by a listing.
            assert!(!listed(&ops, &s).await.contains(&id), "{step:?}");
            assert!(!listed(&ops, &TaskFilter::all()).await.contains(&id));
            assert!(!has_member(&cluster, p, &session("s"), &id), "{step:?}");
            assert!(!has_member(&cluster, p, &ListIndex::All, &id), "{step:?}");
            ops.create(doc_in(&id, "s")).await.unwrap();
        }
        assert!(listed(&ops, &s).await.contains(&id), "{step:?}");
    }

    for step in [Step::TaskWrite, Step::Unindex] {
        let id = format!("d-{step:?}");
        ops.create(doc_in(&id, "s")).await.unwrap();
        ops.fail_next(step);
        let result = ops.delete(&id).await;
        if step == Step::TaskWrite {
            assert_failed_transiently(result, step);
            assert!(listed(&ops, &s).await.contains(&id));
            ops.delete(&id).await.unwrap();
        } else {
            result.unwrap();
            assert!(
                has_member(&cluster, p, &session("s"), &id),
                "stale member left"
            );
            assert!(has_member(&cluster, p, &ListIndex::All, &id));
        }
        // Listings skip the task at once; each prunes what it met, and a purge the rest.
        assert!(!listed(&ops, &s).await.contains(&id), "{step:?}");
        assert!(!has_member(&cluster, p, &session("s"), &id), "{step:?}");
        assert_eq!(ops.purge().await.unwrap(), 0);
        assert!(!has_member(&cluster, p, &ListIndex::All, &id), "{step:?}");
        assert!(!has_member(
            &cluster,
            p,
            &ListIndex::User("user".into()),
            &id
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_prune_that_read_before_a_move_back_cannot_remove_its_member() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let p = "faults-listing-race";
    let ops = ops(&cluster, p).await;
    // The task moved from session "a" to "b", and its member in "a" was left behind.
    ops.create(doc_in("t", "a")).await.unwrap();
    ops.fail_next(Step::Unindex);
    ops.update(&doc_in("t", "b"), None).await.unwrap();
    assert!(has_member(&cluster, p, &session("a"), "t"));
    let key = ClusterKeys::new(p).list_index(&session("a"));
    let node = cluster.master_of(cluster.keyslot(&key));
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query(&mut cluster.nodes()[node].conn())
        .unwrap();
    let stale = vec![IndexEntry::Listed(session("a"), members[0].clone())];

    // A prune marks the stale member and reads the task, which is in "b" ...
    let token = prune_token();
    assert_eq!(ops.mark("t", &stale, &token).await, stale);
    let keep = ops.held("t", &stale).await;
    assert_eq!(keep, vec![false]);

    // ... then a write moves the task back to "a" and is acknowledged ...
    ops.update(&doc_in("t", "a"), None).await.unwrap();

    // ... and the prune settles with what it read before: the member stays.
    assert_eq!(ops.settle("t", &stale, &keep, &token).await, 0);
    assert!(has_member(&cluster, p, &session("a"), "t"));
    let a = TaskFilter::all().session("a");
    assert_eq!(listed(&ops, &a).await, vec!["t".to_owned()]);
    // The member of "b" the move back left is pruned by the next listing of "b".
    assert!(listed(&ops, &TaskFilter::all().session("b"))
        .await
        .is_empty());
    assert!(!has_member(&cluster, p, &session("b"), "t"));
}
