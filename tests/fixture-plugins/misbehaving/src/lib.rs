//! A plugin that misbehaves on purpose, for the host's failure tests:
//!
//! - `FailingConstructor`: its constructor returns an error;
//! - `UnavailableConstructor`: its constructor returns a typed `Unavailable` error, as a
//!   store whose server cannot be reached does;
//! - `PanickingConstructor`: its constructor panics;
//! - `PanickingManager`: works, except that `create` of task `panic-now` panics before
//!   returning a future and `load` of task `panic-later` panics while being polled;
//! - `PanickingDrop`: a working `PanickingManager` whose `Drop` panics.
//! - `HangingManager` and `SlowConstructor`: methods that never complete, and a
//!   constructor that blocks ([`hanging`]);
//! - `WrongAnswers`: reads that return another task than the one asked for
//!   ([`wrong_answers`]).
#![allow(clippy::panic)]

pub mod hanging;
pub mod wrong_answers;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::{
    async_trait, AgentTask, BoxError, DocumentManager, ETag, Operation, PersistenceError, Result,
    TaskDocument, TaskPersistenceManager, Versioned,
};

/// How a constructor fails: returns an untyped error, panics, or returns a typed
/// `Unavailable` error (as a store whose server cannot be reached does).
pub mod failure {
    /// `Err` of a plain message.
    pub const ERROR: u8 = 0;
    /// A panic.
    pub const PANIC: u8 = 1;
    /// `Err` of a `PersistenceError::Unavailable`.
    pub const UNAVAILABLE: u8 = 2;
}

/// A class whose constructor never succeeds, in the way `HOW` names ([`failure`]).
/// Exported as `FailingConstructor`, `PanickingConstructor` and `UnavailableConstructor`.
#[derive(Debug)]
pub struct Unconstructible<const HOW: u8>;

impl<const HOW: u8> FromConfig for Unconstructible<HOW> {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        match HOW {
            failure::PANIC => panic!("constructor exploded"),
            failure::UNAVAILABLE => {
                let refused = std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused by 127.0.0.1:1",
                );
                Err(Box::new(PersistenceError::unavailable(
                    Operation::Construct,
                    "",
                    refused,
                    ta_persistence_api::Outcome::NotApplied,
                )))
            }
            _ => {
                let why = config.get("TA_FIXTURE_REASON").unwrap_or("no reason given");
                Err(format!("refusing to start: {why}").into())
            }
        }
    }
}

/// Stores tasks, but panics on two magic ids.
#[derive(Debug, Default)]
pub struct PanickingManager {
    docs: Mutex<HashMap<String, TaskDocument>>,
}

impl FromConfig for PanickingManager {
    fn from_config(_: &PluginConfig) -> std::result::Result<Self, BoxError> {
        Ok(Self::default())
    }
}

/// A `PanickingManager` that panics when it is dropped.
#[derive(Debug, Default)]
pub struct PanickingDrop(PanickingManager);

impl FromConfig for PanickingDrop {
    fn from_config(_: &PluginConfig) -> std::result::Result<Self, BoxError> {
        Ok(Self::default())
    }
}

impl Drop for PanickingDrop {
    fn drop(&mut self) {
        panic!("drop exploded");
    }
}

#[async_trait]
impl TaskPersistenceManager for PanickingDrop {
    async fn create(&self, task: AgentTask) -> Result<()> {
        self.0.create(task).await
    }
    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        self.0.load(task_id).await
    }
    async fn update(&self, task: AgentTask) -> Result<()> {
        self.0.update(task).await
    }
    async fn delete(&self, task_id: &str) -> Result<()> {
        self.0.delete(task_id).await
    }
    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        self.0.load_by_request_id(request_id).await
    }
    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        self.0.load_with_etag(task_id).await
    }
    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        self.0.update_if_match(task, etag).await
    }
    async fn health(&self) -> Result<()> {
        self.0.health().await
    }
    async fn clear(&self) -> Result<u64> {
        self.0.clear().await
    }
}

fn unsupported(op: Operation) -> PersistenceError {
    PersistenceError::backend(op, "", "not supported by this test plugin")
}

// Never constructed, so never called.
#[async_trait]
impl<const HOW: u8> TaskPersistenceManager for Unconstructible<HOW> {
    async fn create(&self, _: AgentTask) -> Result<()> {
        Err(unsupported(Operation::Create))
    }
    async fn load(&self, _: &str) -> Result<Option<AgentTask>> {
        Err(unsupported(Operation::Load))
    }
    async fn update(&self, _: AgentTask) -> Result<()> {
        Err(unsupported(Operation::Update))
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Err(unsupported(Operation::Delete))
    }
    async fn load_by_request_id(&self, _: &str) -> Result<Option<AgentTask>> {
        Err(unsupported(Operation::LoadByRequestId))
    }
    async fn load_with_etag(&self, _: &str) -> Result<Option<Versioned>> {
        Err(unsupported(Operation::Load))
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

#[async_trait]
impl TaskPersistenceManager for PanickingManager {
    async fn create(&self, task: AgentTask) -> Result<()> {
        self.create_document(TaskDocument::from_task(&task)).await
    }
    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        match self.load_document(task_id).await? {
            Some(doc) => Ok(Some(doc.to_task().map_err(|e| {
                PersistenceError::backend(Operation::Load, task_id, e.to_string())
            })?)),
            None => Ok(None),
        }
    }
    async fn update(&self, _: AgentTask) -> Result<()> {
        Err(unsupported(Operation::Update))
    }
    async fn delete(&self, task_id: &str) -> Result<()> {
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        docs.remove(task_id);
        Ok(())
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

#[async_trait]
impl DocumentManager for PanickingManager {
    // Written without `async` so that it can panic before any future exists.
    fn create_document<'a, 'b>(
        &'a self,
        doc: TaskDocument,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        if doc.task_id() == "panic-now" {
            panic!("create panicked before returning a future");
        }
        Box::pin(async move {
            let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
            docs.insert(doc.task_id().to_owned(), doc);
            Ok(())
        })
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        if task_id == "panic-later" {
            panic!("load panicked while polled");
        }
        let docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(docs.get(task_id).cloned())
    }

    async fn update_document(&self, _: TaskDocument) -> Result<()> {
        Err(unsupported(Operation::Update))
    }

    async fn load_document_by_request_id(&self, _: &str) -> Result<Option<TaskDocument>> {
        Ok(None)
    }

    async fn load_document_with_etag(&self, _: &str) -> Result<Option<Versioned<TaskDocument>>> {
        Ok(None)
    }

    async fn update_document_if_match(&self, _: TaskDocument, _: &ETag) -> Result<ETag> {
        Err(unsupported(Operation::Update))
    }
}

ta_persistence_api::export_plugin! {
    name: "misbehaving",
    version: "0.0.0",
    managers: [
        "FailingConstructor" => Unconstructible<{ failure::ERROR }>,
        "PanickingConstructor" => Unconstructible<{ failure::PANIC }>,
        "PanickingManager" => PanickingManager,
        "PanickingDrop" => PanickingDrop,
        "HangingManager" => hanging::Hanging<false>,
        "SlowConstructor" => hanging::Hanging<true>,
        "WrongAnswers" => wrong_answers::WrongAnswers,
        "UnavailableConstructor" => Unconstructible<{ failure::UNAVAILABLE }>,
    ],
}
