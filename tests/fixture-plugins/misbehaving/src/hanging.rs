//! Managers that hang: `HangingManager`, whose every method returns a future that never
//! completes (a backend that never answers), and `SlowConstructor`, which also blocks in
//! its constructor for `TA_FIXTURE_BLOCK_MS` milliseconds (default one minute).

use std::time::Duration;

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::{
    async_trait, BoxError, DocumentStore, ETag, Result, TaskDocument, Versioned,
};

/// Never answers. With `SLOW_START`, its constructor blocks first.
#[derive(Debug)]
pub struct Hanging<const SLOW_START: bool>;

impl<const SLOW_START: bool> FromConfig for Hanging<SLOW_START> {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        if SLOW_START {
            let ms = match config.get("TA_FIXTURE_BLOCK_MS") {
                Some(v) => v.parse::<u64>()?,
                None => 60_000,
            };
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(Hanging)
    }
}

async fn never<T>() -> T {
    std::future::pending().await
}

#[async_trait]
impl<const SLOW_START: bool> DocumentStore for Hanging<SLOW_START> {
    async fn insert(&self, _: TaskDocument) -> Result<()> {
        never().await
    }
    async fn get(&self, _: &str) -> Result<Option<TaskDocument>> {
        never().await
    }
    async fn replace(&self, _: TaskDocument) -> Result<()> {
        never().await
    }
    async fn remove(&self, _: &str) -> Result<()> {
        never().await
    }
    async fn find(&self, _: &str) -> Result<Option<TaskDocument>> {
        never().await
    }
    async fn get_versioned(&self, _: &str) -> Result<Option<Versioned<TaskDocument>>> {
        never().await
    }
    async fn replace_if_match(&self, _: TaskDocument, _: &ETag) -> Result<ETag> {
        never().await
    }
    async fn ping(&self) -> Result<()> {
        never().await
    }
    async fn remove_all(&self) -> Result<u64> {
        never().await
    }
}
