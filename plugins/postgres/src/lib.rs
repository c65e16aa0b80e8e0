//! The production Postgres backend for ta-persistence, as a plugin library.
//!
//! Point the host at it:
//!
//! ```text
//! TA_PERSISTENCE_MODULE=target/release/libta_plugin_postgres.so
//! TA_PERSISTENCE_CLASS=PostgresTaskPersistenceManager
//! TA_PG_URL=postgres://agent@db.internal/tasks   # or TA_PG_HOST, TA_PG_PORT, ...
//! ```
//!
//! # Design
//!
//! - **The exact wire bytes.** A task is kept as the JSON text the host sent (a `text`
//!   column, not `jsonb`, which would reorder keys and drop duplicates), with typed
//!   columns beside it for what is indexed and listed (session, user, status, created
//!   time in microseconds), so a task moved between backends stays byte-identical.
//!   Request ids have their own table, whose rows go with their task by a foreign key.
//! - **One statement per write.** `create`, `update`, `update_if_match` and `delete` are
//!   each one SQL statement (module `sql`): the task and its request-id rows change in one
//!   transaction and one round trip. Racing creates of one id meet on the primary key:
//!   exactly one wins. `update_if_match` is `UPDATE ... WHERE version = $n`, re-checked
//!   by the server on the newest row under concurrent writers.
//! - **ETags that never repeat.** A task's version comes from a sequence, so a task
//!   deleted and created again never gets back an ETag it had before.
//! - **Keyset listing on indexes.** Listing reads `(created_us, task_id)` descending from
//!   an index (global, per session, per user) after the cursor's key; a page costs its
//!   size, wherever it is.
//! - **Retention the reads honour at once.** A write into a retained status sets
//!   `expires_at` from the server's clock; every read, update and listing skips rows
//!   past it, and a purge (on demand, and every `TA_PG_SWEEP_SECS` in the background)
//!   deletes them in bounded batches.
//! - **Migrations operators can trust** (module `schema`): ordered, embedded, applied at
//!   start-up under an advisory lock, recorded in `ta_schema_migrations`; a newer
//!   schema and a user that may not write are refused with a clear error.
//! - **Honest failures.** The server cancels a statement past `statement_timeout`
//!   (`Timeout`, nothing applied); a refused or lost connection is `Unavailable`, and a
//!   write whose connection broke after it was sent has an unknown outcome. The pool
//!   replaces broken connections by itself.
//!
//! Modules: [`config`] (the `TA_PG_*` variables), `schema` (migrations), `sql` (the
//! statement texts), `ops` (running them), `error` (mapping errors), `connect` (runtime,
//! TLS, pool), `store` (the trait).
#![deny(missing_docs)]
// A panic in a plugin is caught at the boundary, but it is a bug: plugin code returns errors.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(not(test), forbid(clippy::panic))]

pub mod config;
mod connect;
mod error;
mod ops;
pub mod schema;
mod sql;
mod store;

pub use config::{ConfigError, PgConfig, TlsMode};
pub use store::PostgresTaskPersistenceManager;

ta_persistence_api::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    managers: [PostgresTaskPersistenceManager],
}
