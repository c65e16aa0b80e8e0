//! The production Redis backend for ta-persistence, as a plugin library.
//!
//! Point the host at it:
//!
//! ```text
//! TA_PERSISTENCE_MODULE=target/release/libta_plugin_redis.so
//! TA_PERSISTENCE_CLASS=RedisTaskPersistenceManager
//! TA_REDIS_HOST=localhost TA_REDIS_PORT=6379   # and the other TA_REDIS_* variables
//! ```
//!
//! # Design
//!
//! - **The Python original's data layout.** A task is its JSON document at
//!   `task_persistence:task:{task_id}`; each request id is a set of task ids at
//!   `task_persistence:request_index:{request_id}` (module `keys`). The document is
//!   written exactly as the host encoded it, so Python agents and Rust services share one
//!   database. `TA_REDIS_PREFIX` moves the whole layout to another namespace.
//! - **One atomic round trip per write.** `create`, `update`, `update_if_match` and
//!   `delete` are each one Lua script (module `scripts`): the document and its index sets
//!   change together or not at all, and of two racing creates of one id exactly one wins.
//!   Each script checks every key it will touch before its first write, so a command
//!   that would fail (a key of another type planted by hand) fails the whole write with
//!   nothing changed. A lookup by request id is one script too: the set's members with
//!   their documents.
//! - **ETags any writer respects.** The ETag is the SHA-1 of the stored bytes, compared
//!   inside the update script, so a document rewritten by a Python agent (which knows no
//!   ETags) is seen as changed.
//! - **TTLs that never orphan a task.** Each write gives the task the TTL
//!   (`TA_REDIS_TTL`, 0 for none) and only ever extends its index sets' expiry, so a set
//!   outlives every task it lists; a lookup prunes members whose task expired.
//! - **Listing by key, not by offset.** The write scripts also keep three sorted sets
//!   per store (all tasks, per session, per user) whose members spell the listing order
//!   (module `listing`), so a page is a `ZRANGEBYLEX` from the cursor's member: its cost
//!   is its size, not the number of stored tasks. Entries of tasks that are gone are
//!   pruned by listings, `purge` and `reindex` ([`RedisTaskPersistenceManager::reindex`]
//!   also indexes tasks written by the Python original, which keeps no listing).
//! - **Retention as TTLs.** `TA_PERSISTENCE_RETENTION` gives a finished task its age as
//!   the TTL of its key, so Redis expires it; index keys are only ever given longer TTLs.
//! - **Nothing another writer can read is moved.** Bytes that are not JSON at all (by
//!   the rules of Python's `json`: `NaN` and repeated keys are JSON) are moved to
//!   `{prefix}:quarantine:{task_id}` (without expiry) and reported as `Corrupt`. JSON that
//!   does not fit the task model is left where it is and reported as `Corrupt` by the
//!   reader, naming the field; `delete` removes it all the same.
//! - **Decoded once.** Reads hand the host the stored text, which the host decodes once;
//!   a lookup reads only `created_at` and the request ids of each candidate, skipping the
//!   rest of its text.
//! - **Honest failures.** A write that timed out or lost its connection may have been
//!   applied: its error says its outcome is unknown (`is_outcome_unknown`).
//! - **Its own runtime.** The plugin owns a two-worker tokio runtime (the SDK's
//!   `PluginRuntime`); the connection (a
//!   multiplexed [`redis::aio::ConnectionManager`] that reconnects by itself) lives there
//!   and every operation runs there with the `TA_REDIS_TIMEOUT_MS` limit, so the host's
//!   executor never matters.
//!
//! - **Redis Cluster, as an explicit mode.** `TA_REDIS_CLUSTER=true` with
//!   `TA_REDIS_NODES` runs the same operations on a cluster, with a hash-tagged key
//!   layout of its own and index maintenance ordered so that no failure hides a task
//!   (module [`cluster`]).
//!
//! Modules: [`config`] (the `TA_REDIS_*` variables), `keys` and `codec` (pure: key names,
//! reading replies), `scripts` (the Lua text), `ops` (the Redis commands of each
//! operation), `runtime` (the runtime and connecting), `store` (the trait).
#![deny(missing_docs)]
// A panic in a plugin is caught at the boundary, but it is a bug: plugin code returns errors.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(not(test), forbid(clippy::panic))]

pub mod cluster;
mod codec;
pub mod config;
mod error;
mod keys;
mod listing;
mod mode;
mod ops;
mod runtime;
mod scripts;
mod store;

pub use config::{ConfigError, RedisConfig};
pub use ops::ReindexReport;
pub use store::RedisTaskPersistenceManager;

ta_persistence_api::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    managers: [RedisTaskPersistenceManager],
}
