//! A durable task store in one SQLite database file, as a plugin library: no server,
//! nothing but a file that survives restarts.
//!
//! Each task is kept as the exact bytes of its wire JSON, beside typed columns for what
//! is indexed and listed. The design in brief:
//!
//! - **One writer thread, group commit** (`writer`): writes queue for one connection,
//!   which commits every write waiting at that moment in one transaction, so concurrent
//!   writers share a commit and its flush to disk instead of fighting for the lock.
//! - **Reader connections** (`readers`) on the plugin's own blocking threads: in WAL mode
//!   reads never wait for the writer.
//! - **A schema that knows its version** (`schema`): ordered, embedded migrations
//!   recorded in `PRAGMA user_version`; a file that is not ours, is damaged or is newer
//!   is refused at start-up and left untouched.
//!
//! ```text
//! TA_PERSISTENCE_MODULE=target/release/libta_plugin_sqlite.so
//! TA_PERSISTENCE_CLASS=SqliteTaskPersistenceManager
//! TA_SQLITE_PATH=/var/lib/my-agent/tasks.db
//! ```
#![deny(missing_docs)]
// A panic in a plugin is caught at the boundary, but it is a bug: plugin code returns errors.
#![cfg_attr(
    not(test),
    deny(clippy::panic, clippy::unwrap_used, clippy::expect_used)
)]

mod config;
mod readers;
mod schema;
mod sql;
mod store;
mod writer;

pub use config::{
    Settings, Synchronous, BUSY_TIMEOUT_VAR, DEFAULT_BUSY_TIMEOUT, DEFAULT_READERS, PATH_VAR,
    READERS_VAR, SYNCHRONOUS_VAR,
};
pub use store::SqliteTaskPersistenceManager;

ta_persistence_api::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    managers: [SqliteTaskPersistenceManager],
}
