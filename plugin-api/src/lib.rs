//! The contract between the ta-persistence host and its storage backends.
//!
//! An application stores Teal Agents tasks through [`TaskPersistenceManager`]; the
//! built-in in-memory store, every plugin and the host's adapter over a loaded plugin
//! implement it. This crate holds everything both sides must agree on, and nothing that
//! does I/O:
//!
//! - [`model`]: `AgentTask` and its parts, reading and writing the Python original's JSON
//!   byte for byte;
//! - [`error`]: [`PersistenceError`], one variant per kind of failure;
//! - [`manager`]: the async trait and its contract, with optimistic concurrency (ETags);
//! - [`document`]: a task as JSON plus its indexed fields, the form that crosses the
//!   plugin boundary;
//! - [`document_store`]: [`DocumentStore`], the simpler trait for stores that keep JSON
//!   (the typed trait is derived from it);
//! - [`ffi`]: the stable-ABI interface, the export macro for plugin authors and the
//!   host-side adapter (everything `extern "C"` lives there and nowhere else);
//! - [`deadline`]: a time limit on any future, on any executor, kept by one thread
//!   instead of a timer per call;
//! - `conformance` (feature `conformance`): the suite every backend must pass;
//! - `runtime` (feature `runtime`): [`PluginRuntime`](crate::runtime::PluginRuntime),
//!   the tokio runtime a plugin with I/O owns, and the bridge from the host's await to it.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
/// The conformance suite: every point of the manager's contract as a runnable case.
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
pub mod deadline;
pub mod document;
pub mod document_store;
pub mod error;
pub mod ffi;
pub mod listing;
pub mod manager;
pub mod model;
pub mod retention;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod runtime;

pub use document::{validate_task_ids, TaskDocument};
pub use document_store::{decode_document, DocumentManager, DocumentStore, TypedDocuments};
pub use error::{validate_id, BoxError, ErrorKind, Operation, Outcome, PersistenceError, Result};
pub use listing::{Cursor, Page, PageRequest, TaskFilter, TaskSummary};
pub use manager::{ETag, TaskPersistenceManager, Versioned};
pub use model::{
    AgentTask, AgentTaskItem, ContentType, MultiModalItem, Role, TaskStatus, Timestamp,
};
pub use retention::RetentionPolicy;

/// Re-exported so implementors use the same `async_trait` the trait was declared with.
pub use async_trait::async_trait;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
