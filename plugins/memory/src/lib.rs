//! An in-memory task store as a plugin library: the template for a new plugin.
//!
//! A plugin is an ordinary Rust type that implements the async trait the host uses and
//! [`FromConfig`](ta_persistence_api::ffi::FromConfig) (how the host constructs it),
//! exported with one macro call. Nothing here is `unsafe` or `extern "C"`: the SDK in
//! `ta-persistence-api` handles the boundary, catches panics, and forwards `tracing`
//! events to the host.
//!
//! This store keeps each task as its JSON document (the form in which tasks cross the
//! boundary), so it implements [`DocumentStore`](ta_persistence_api::DocumentStore) and
//! never decodes a task on its side; the typed
//! [`TaskPersistenceManager`](ta_persistence_api::TaskPersistenceManager) is derived from
//! it. A store that keeps typed values implements `TaskPersistenceManager` directly.
//!
//! Build it with `cargo build --release -p ta-plugin-memory`, then point the host at it:
//!
//! ```text
//! TA_PERSISTENCE_MODULE=target/release/libta_plugin_memory.so
//! TA_PERSISTENCE_CLASS=MemoryTaskPersistenceManager
//! ```
#![deny(missing_docs)]
// A panic in a plugin is caught at the boundary, but it is a bug: plugin code returns errors.
#![cfg_attr(
    not(test),
    deny(clippy::panic, clippy::unwrap_used, clippy::expect_used)
)]

mod store;

pub use store::MemoryTaskPersistenceManager;

ta_persistence_api::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    managers: [MemoryTaskPersistenceManager],
}
