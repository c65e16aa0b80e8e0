//! The README's example: the Redis store built directly (compiled by `cargo test`; run it
//! with `cargo run -p ta-plugin-redis --example readme_example` against a local server).
use ta_persistence_api::{AgentTask, BoxError, TaskPersistenceManager, Timestamp};
use ta_plugin_redis::{RedisConfig, RedisTaskPersistenceManager};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let config = RedisConfig::from_lookup(|name| match name {
        "TA_REDIS_HOST" => Some("127.0.0.1"),
        "TA_REDIS_PREFIX" => Some("my-agent"),
        _ => None, // every other variable has its default
    })?;
    let store = RedisTaskPersistenceManager::connect(config)?;
    store
        .create(AgentTask::new("t-1", "s-1", "alice", Timestamp::now_utc()))
        .await?;
    assert!(store.load("t-1").await?.is_some());
    Ok(())
}
