//! The README's example: a store that outlives itself, run as a test program.
use ta_persistence_api::{AgentTask, BoxError, TaskPersistenceManager, Timestamp};
use ta_plugin_files::FileTaskPersistenceManager;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let dir = std::env::temp_dir().join(format!("ta-files-readme-{}", std::process::id()));
    let task = AgentTask::new("t-1", "s-1", "alice", Timestamp::now_utc());
    {
        let store = FileTaskPersistenceManager::open(dir.clone(), 4)?;
        store.create(task.clone()).await?;
    }
    // A new store on the same directory finds what the first one wrote.
    let store = FileTaskPersistenceManager::open(dir.clone(), 4)?;
    assert_eq!(store.load("t-1").await?, Some(task));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
