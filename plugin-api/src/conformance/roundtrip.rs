//! What goes in comes out: every field, every status, timestamps, unknown fields, unusual
//! ids, and big or long tasks survive a trip through the store exactly.

use super::fixtures::{self, Ns};
use super::{CaseFailure, CaseResult};
use crate::document_store::DocumentManager;
use crate::model::{AgentTask, TaskStatus};

/// Tool calls, chat history, an image, both roles and empty values survive create/load,
/// lookup by request id, and update/load.
pub async fn every_item_field_round_trips(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("every_item_field_round_trips");
    let id = ns.id("task");
    let rid = ns.id("r");
    let task = fixtures::rich_task(&id, &rid)?;
    must!(store.create(task.clone()).await);
    check_task!(loaded!(store, id), task, "load of a task using every field");
    match must!(store.load_by_request_id(&rid).await) {
        Some(found) => check_task!(
            found,
            task,
            "load_by_request_id of a task using every field"
        ),
        None => fail!("load_by_request_id found nothing"),
    }
    let mut changed = fixtures::advanced(&task, TaskStatus::Running);
    changed.items.reverse();
    must!(store.update(changed.clone()).await);
    check_task!(
        loaded!(store, id),
        changed,
        "load after update of a task using every field"
    );
    check_eq!(
        loaded!(store, id).to_json(),
        changed.to_json(),
        "JSON of the loaded task"
    );
    Ok(())
}

/// All five statuses survive create/load, and each survives update/load.
pub async fn every_status_round_trips(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("every_status_round_trips");
    let statuses = [
        TaskStatus::Running,
        TaskStatus::Paused,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ];
    for (n, status) in statuses.iter().enumerate() {
        let mut task = fixtures::task(&ns.id(status.as_str()), &[ns.id(n)]);
        task.status = *status;
        must!(store.create(task.clone()).await);
        check_task!(
            loaded!(store, task.task_id),
            task,
            "load of a {status:?} task"
        );
    }
    for (n, status) in statuses.iter().enumerate() {
        let id = ns.id(status.as_str());
        let next = statuses[(n + 1) % statuses.len()];
        let changed = fixtures::advanced(&loaded!(store, id), next);
        must!(store.update(changed.clone()).await);
        check_task!(
            loaded!(store, id),
            changed,
            "load after update from {status:?} to {next:?}"
        );
    }
    Ok(())
}

/// Naive and offset timestamps (several offsets, fractions and a `Z`) keep their form.
pub async fn naive_and_offset_timestamps_round_trip(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("naive_and_offset_timestamps_round_trip");
    let id = ns.id("task");
    let times = [
        "2025-03-09T08:00:00.123456",
        "2025-03-09T08:00:00.123000+02:00",
        "2024-02-29T12:30:00.000001-09:30",
        "2025-06-30T23:59:59.900000Z",
        "2025-11-03T14:21:07",
        "1999-12-31T23:59:59.999999+14:00",
    ];
    let mut task = fixtures::task(&id, &[ns.id("r1"), ns.id("r2"), ns.id("r3"), ns.id("r4")]);
    task.created_at = fixtures::parse_time(times[0])?;
    task.last_updated = fixtures::parse_time(times[1])?;
    for (item, text) in task.items.iter_mut().zip(&times[2..]) {
        item.updated = fixtures::parse_time(text)?;
    }
    must!(store.create(task.clone()).await);
    let loaded = loaded!(store, id);
    check_task!(loaded, task, "load of a task with mixed timestamps");
    check_eq!(loaded.to_json(), task.to_json(), "JSON of the loaded task");
    Ok(())
}

/// Fields the model does not know (on the task, an item and its content) survive.
pub async fn unknown_fields_round_trip(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("unknown_fields_round_trip");
    let id = ns.id("task");
    let rid = ns.id("r");
    let json = format!(
        concat!(
            r#"{{"task_id":"{id}","session_id":"s","user_id":"u","items":[{{"task_id":"{id}","#,
            r#""request_id":"{rid}","role":"user","#,
            r#""item":{{"content_type":"text","content":"c","caption":"kept"}},"#,
            r#""updated":"2025-11-03T14:21:07.512034","pending_tool_calls":null,"#,
            r#""chat_history":null,"extra_note":{{"nested":[1,2.50,"x"]}}}}],"#,
            r#""created_at":"2025-11-03T14:21:07.512034","#,
            r#""last_updated":"2025-11-03T14:21:07.512034","#,
            r#""status":"Running","priority":5,"labels":["b","a"]}}"#
        ),
        id = id,
        rid = rid
    );
    let task = AgentTask::from_json(&json)
        .map_err(|e| CaseFailure::new(format!("the fixture task does not decode: {e}")))?;
    check!(
        !task.extra.is_empty(),
        "the fixture's unknown task fields were not kept"
    );
    must!(store.create(task.clone()).await);
    let loaded = loaded!(store, id);
    check_task!(loaded, task, "load of a task with unknown fields");
    check_eq!(loaded.to_json(), task.to_json(), "JSON of the loaded task");
    Ok(())
}

/// Task and request ids that are not plain ASCII work in every operation.
pub async fn unicode_ids_round_trip(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("unicode_ids_round_trip");
    let names = [
        "тест-задача",
        "任务/子任务",
        "emoji 🚀✨ 👩‍👩‍👧",
        "with  spaces ",
        "a/b/../c",
        "a:b:task:c",
        "tab\tand\nnewline",
        "quote\"back\\slash'single",
        "{braces}[brackets]",
        "%s %d %%",
        "\u{202e}right-to-left",
    ];
    for name in names {
        let id = ns.id(name);
        let rid = ns.id(format!("request {name}"));
        let task = fixtures::task(&id, &[&rid]);
        must!(store.create(task.clone()).await);
        check_task!(loaded!(store, id), task, "load of task id {name:?}");
        check_eq!(
            found_by!(store, rid),
            Some(id.clone()),
            "request id {rid:?}"
        );
        check!(
            must!(store.load_with_etag(&id).await).is_some(),
            "load_with_etag of {name:?}"
        );
        let changed = fixtures::advanced(&task, TaskStatus::Completed);
        must!(store.update(changed.clone()).await);
        check_task!(
            loaded!(store, id),
            changed,
            "load after update of task id {name:?}"
        );
    }
    for name in names {
        let id = ns.id(name);
        must!(store.delete(&id).await);
        check_absent!(store, id);
        check_eq!(
            found_by!(store, ns.id(format!("request {name}"))),
            None,
            "after delete of {name:?}"
        );
    }
    Ok(())
}

/// Ids that look like key patterns, prefixes of each other, or equal after Unicode
/// normalisation or case folding are all different tasks and request ids.
pub async fn key_like_ids_stay_distinct(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("key_like_ids_stay_distinct");
    let names = [
        "k", "k:", "k:*", "k*", "k?", "k[ab]", "ka", "kb", "K", "k:task:k", "task:k", "k\\*",
        "\u{e9}", "e\u{301}", "x\u{0}a", "x\u{0}b",
    ];
    let ids: Vec<String> = names.iter().map(|n| ns.id(n)).collect();
    for (n, id) in ids.iter().enumerate() {
        let mut task = fixtures::task(id, &[id.as_str()]);
        task.session_id = format!("session-{n}");
        must!(store.create(task).await);
    }
    for (n, id) in ids.iter().enumerate() {
        let task = loaded!(store, id);
        check_eq!(
            task.session_id,
            format!("session-{n}"),
            "the task loaded for {:?}",
            names[n]
        );
        check_eq!(
            found_by!(store, id),
            Some(id.clone()),
            "request id {:?}",
            names[n]
        );
    }
    let deleted = ["k*", "k:", "k?", "x\u{0}a", "\u{e9}"];
    for name in deleted {
        must!(store.delete(&ns.id(name)).await);
    }
    for (n, id) in ids.iter().enumerate() {
        if deleted.contains(&names[n]) {
            check_absent!(store, id);
            check_eq!(
                found_by!(store, id),
                None,
                "request id {:?} after delete",
                names[n]
            );
        } else {
            let task = loaded!(store, id);
            check_eq!(
                task.session_id,
                format!("session-{n}"),
                "{:?} after other deletes",
                names[n]
            );
            check_eq!(
                found_by!(store, id),
                Some(id.clone()),
                "request id {:?}",
                names[n]
            );
        }
    }
    Ok(())
}

/// A task with one 5 MiB item round-trips exactly, through load, lookup and update.
pub async fn five_megabyte_task_round_trips(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("five_megabyte_task_round_trips");
    let id = ns.id("task");
    let rid = ns.id("r");
    let mut task = fixtures::task(&id, &[&rid, &ns.id("small")]);
    task.items[0].item.content = fixtures::big_text(5 * 1024 * 1024).into();
    must!(store.create(task.clone()).await);
    check_task!(loaded!(store, id), task, "load of the 5 MiB task");
    match must!(store.load_by_request_id(&rid).await) {
        Some(found) => check_task!(found, task, "load_by_request_id of the 5 MiB task"),
        None => fail!("load_by_request_id found nothing"),
    }
    let mut changed = fixtures::advanced(&task, TaskStatus::Completed);
    changed.items[0].item.content = format!("{}!", changed.items[0].item.content).into();
    must!(store.update(changed.clone()).await);
    check_task!(
        loaded!(store, id),
        changed,
        "load after update of the 5 MiB task"
    );
    must!(store.delete(&id).await);
    check_absent!(store, id);
    Ok(())
}

/// A task with 500 items round-trips and each item's request id finds it.
pub async fn many_items_round_trip(store: &dyn DocumentManager) -> CaseResult {
    let ns = Ns::new("many_items_round_trip");
    let id = ns.id("task");
    let rids: Vec<String> = (0..500).map(|n| ns.id(format!("r{n}"))).collect();
    let task = fixtures::task(&id, &rids);
    must!(store.create(task.clone()).await);
    check_task!(loaded!(store, id), task, "load of a task with 500 items");
    for rid in &rids {
        check_eq!(found_by!(store, rid), Some(id.clone()), "request id {rid}");
    }
    Ok(())
}
