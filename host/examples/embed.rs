//! Embedding the host in an application: pick the backend from the environment, then
//! store, find and update a task, using ETags so that two concurrent approvals of one
//! paused task cannot both win.
//!
//! ```text
//! cargo run --example embed                       # the built-in in-memory store
//! TA_PERSISTENCE_MODULE=target/debug/libta_plugin_memory.so \
//! TA_PERSISTENCE_CLASS=MemoryTaskPersistenceManager cargo run --example embed
//! ```

use ta_persistence::{
    AgentTask, AgentTaskItem, MultiModalItem, PersistenceFactory, Role, TaskStatus, Timestamp,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    // One factory per process; every caller shares its manager. The async constructor
    // loads a plugin on a thread of its own, so the runtime's workers never block.
    let factory = PersistenceFactory::from_env_async().await?;
    // One line: the store in use, or the fallback and its reason.
    println!("persistence: {}", factory.active_backend());
    let store = factory.get_persistence_manager();

    // A chat turn that pauses for a human decision.
    let now = Timestamp::now_utc();
    let mut task = AgentTask::new("task-42", "session-1", "alice", now);
    task.items.push(AgentTaskItem::new(
        "task-42",
        "req-1",
        Role::User,
        MultiModalItem::text("Email the Q3 summary to finance"),
        now,
    ));
    task.status = TaskStatus::Paused;
    store.create(task).await?;

    // The approval arrives by request id; update only if nobody changed the task since.
    let paused = store
        .load_by_request_id("req-1")
        .await?
        .ok_or("the paused task is gone")?;
    let current = store
        .load_with_etag(&paused.task_id)
        .await?
        .ok_or("the paused task is gone")?;
    let mut approved = current.value;
    approved.status = TaskStatus::Running;
    approved.items.push(AgentTaskItem::new(
        "task-42",
        "req-1",
        Role::User,
        MultiModalItem::text("tool execution approved"),
        Timestamp::now_utc(),
    ));
    store
        .update_if_match(approved.clone(), &current.etag)
        .await?;

    // A second approval with the same (now stale) ETag is refused: the tool runs once.
    let err = store
        .update_if_match(approved, &current.etag)
        .await
        .expect_err("a stale ETag must conflict");
    println!("second approval refused: {err}");

    let stored = store.load("task-42").await?.ok_or("task-42 is gone")?;
    println!("{}", stored.to_json());
    Ok(())
}
