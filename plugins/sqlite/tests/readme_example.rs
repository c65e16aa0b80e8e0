//! The README's example: a store in one file that outlives itself, run as a test program.
use ta_persistence_api::{AgentTask, BoxError, ErrorKind, TaskPersistenceManager, Timestamp};
use ta_plugin_sqlite::{Settings, SqliteTaskPersistenceManager, Synchronous};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let dir = std::env::temp_dir().join(format!("ta-sqlite-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let settings = Settings::new(dir.join("tasks.db")).synchronous(Synchronous::Full);
    let task = AgentTask::new("t-1", "s-1", "alice", Timestamp::now_utc());
    let etag = {
        let store = SqliteTaskPersistenceManager::open(settings.clone())?;
        store.create(task.clone()).await?;
        store
            .load_with_etag("t-1")
            .await?
            .ok_or("t-1 is stored")?
            .etag
    };
    // A new store on the same file finds the task, and its ETag still guards it.
    let store = SqliteTaskPersistenceManager::open(settings)?;
    assert_eq!(store.load("t-1").await?, Some(task.clone()));
    let next = store.update_if_match(task.clone(), &etag).await?;
    let Err(stale) = store.update_if_match(task, &etag).await else {
        return Err("a stale ETag was accepted".into());
    };
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    assert_ne!(next, etag);
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
