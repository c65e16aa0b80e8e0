//! A plugin built with `panic = "abort"`: the host must refuse it at load, because its
//! first panic would end the host's process instead of becoming an error.

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::{
    async_trait, AgentTask, BoxError, ETag, Operation, PersistenceError, Result,
    TaskPersistenceManager, Versioned,
};

/// A manager that stores nothing; it is never constructed by a host that checks.
#[derive(Debug, Default)]
pub struct AbortingManager;

impl FromConfig for AbortingManager {
    fn from_config(_: &PluginConfig) -> std::result::Result<Self, BoxError> {
        Ok(AbortingManager)
    }
}

fn unsupported(op: Operation) -> PersistenceError {
    PersistenceError::backend(op, "", "not supported by this test plugin")
}

#[async_trait]
impl TaskPersistenceManager for AbortingManager {
    async fn create(&self, _: AgentTask) -> Result<()> {
        Err(unsupported(Operation::Create))
    }
    async fn load(&self, _: &str) -> Result<Option<AgentTask>> {
        Ok(None)
    }
    async fn update(&self, _: AgentTask) -> Result<()> {
        Err(unsupported(Operation::Update))
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Err(unsupported(Operation::Delete))
    }
    async fn load_by_request_id(&self, _: &str) -> Result<Option<AgentTask>> {
        Ok(None)
    }
    async fn load_with_etag(&self, _: &str) -> Result<Option<Versioned>> {
        Ok(None)
    }
    async fn update_if_match(&self, _: AgentTask, _: &ETag) -> Result<ETag> {
        Err(unsupported(Operation::Update))
    }
    async fn health(&self) -> Result<()> {
        Ok(())
    }
    async fn clear(&self) -> Result<u64> {
        Ok(0)
    }
}

ta_persistence_api::export_plugin! {
    name: "panic-abort",
    version: "0.0.0",
    managers: ["AbortingManager" => AbortingManager],
}
