//! A durable task store as a plugin library: one file per task in a directory.
//!
//! An example of a plugin that does blocking I/O. The storage itself (`dir`) is plain
//! synchronous Rust; the interface code (`store`) runs each call on the plugin's own
//! runtime with [`PluginRuntime::run_blocking`](ta_persistence_api::runtime::PluginRuntime::run_blocking),
//! so the host's threads never wait for the disk.
//!
//! ```text
//! TA_PERSISTENCE_MODULE=target/release/libta_plugin_files.so
//! TA_PERSISTENCE_CLASS=FileTaskPersistenceManager
//! TA_FILES_DIR=/var/lib/my-agent/tasks
//! ```
#![deny(missing_docs)]
// A panic in a plugin is caught at the boundary, but it is a bug: plugin code returns errors.
#![cfg_attr(
    not(test),
    deny(clippy::panic, clippy::unwrap_used, clippy::expect_used)
)]

mod dir;
mod store;

pub use store::{FileTaskPersistenceManager, DIR_VAR, THREADS_VAR};

ta_persistence_api::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    managers: [FileTaskPersistenceManager],
}
