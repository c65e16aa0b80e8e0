//! The README's example: the store used directly, run as a test program.
use ta_persistence_api::{AgentTask, TaskPersistenceManager, Timestamp};
use ta_plugin_memory::MemoryTaskPersistenceManager;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryTaskPersistenceManager::default();
    store
        .create(AgentTask::new("t-1", "s-1", "alice", Timestamp::now_utc()))
        .await?;
    assert!(store.load("t-1").await?.is_some());
    assert_eq!(store.clear().await?, 1);
    Ok(())
}
