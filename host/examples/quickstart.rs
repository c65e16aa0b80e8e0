//! The README's first example, as it is printed there: build the factory from the
//! environment, say which store serves, store and read back a task. It installs no
//! `tracing` subscriber, so a fallback reaches stderr from the host itself.
//!
//! ```text
//! cargo run --example quickstart
//! TA_PERSISTENCE_MODULE=/missing/libplugin.so TA_PERSISTENCE_CLASS=X cargo run --example quickstart
//! ```

use ta_persistence::{AgentTask, PersistenceFactory, Timestamp};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let factory = PersistenceFactory::from_env_async().await?; // reads TA_PERSISTENCE_*
    println!("persistence: {}", factory.active_backend()); // says so if it fell back
    let store = factory.get_persistence_manager(); // Arc<dyn TaskPersistenceManager>
    let task = AgentTask::new("task-1", "session-1", "alice", Timestamp::now_utc());
    store.create(task).await?;
    let task = store.load("task-1").await?;
    println!("read back: {:?}", task.map(|t| t.task_id));
    Ok(())
}
