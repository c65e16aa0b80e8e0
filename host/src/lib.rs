//! The ta-persistence host: what an application embeds to persist Teal Agents tasks.
//!
//! The host picks a backend from the environment and hands the application one shared
//! [`TaskPersistenceManager`]:
//!
//! - no `TA_PERSISTENCE_MODULE`: the built-in [`InMemoryPersistenceManager`];
//! - `TA_PERSISTENCE_MODULE` (a plugin library) and `TA_PERSISTENCE_CLASS` (a manager it
//!   exports): the plugin, loaded and checked against the stable-ABI interface.
//!
//! Every operation of that manager is timed into a `metrics` histogram and runs in a
//! `tracing` span; the application installs the recorder (see [`instrument`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ta_persistence::PersistenceFactory;
//!
//! // Loads a plugin off the async runtime's threads, under TA_PERSISTENCE_TIMEOUT_MS.
//! let factory = PersistenceFactory::from_env_async().await?;
//! // One line that says which store serves, and why, if it is a fallback.
//! println!("persistence: {}", factory.active_backend());
//! let store = factory.get_persistence_manager();
//! let task = store.load("task-1").await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod factory;
pub mod guard;
pub mod instrument;
pub mod loader;
pub mod memory;

pub use config::{Config, ConfigError, ConfigWarning};
pub use factory::{get_persistence_manager, ActiveBackend, FactoryError, PersistenceFactory};
pub use guard::GuardedManager;
pub use instrument::InstrumentedManager;
pub use loader::LoadError;
pub use memory::{InMemoryPersistenceManager, MemoryStats};
pub use ta_persistence_api as api;
pub use ta_persistence_api::{
    AgentTask, AgentTaskItem, ContentType, Cursor, DocumentManager, ETag, ErrorKind,
    MultiModalItem, Outcome, Page, PageRequest, PersistenceError, RetentionPolicy, Role,
    TaskFilter, TaskPersistenceManager, TaskStatus, TaskSummary, Timestamp, Versioned,
};
