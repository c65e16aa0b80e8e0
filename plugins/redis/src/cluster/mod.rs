//! Redis Cluster mode (`TA_REDIS_CLUSTER=true`): the same operations over redis-rs's async
//! cluster client, with a hash-tagged key layout (module `keys`) so no command ever
//! crosses slots.
//!
//! # Why the index cannot change with the task, and why that is safe
//!
//! A task's keys (document, records of its request ids and of its listing entries,
//! quarantine) share the task's slot; each request id's index (a hash: task id →
//! `live`) has its own, and so has each listing index (a sorted set of members, with a
//! hash of prune marks beside it in its slot). One script cannot touch them all, so a
//! write is several steps, each one script on one slot. A task's **index entries** are
//! its entry in each of its request ids' indexes and its member in three listing
//! indexes (all tasks, its session's, its user's); the steps treat both kinds alike:
//!
//! | step | create / update | delete |
//! |---|---|---|
//! | 1 `index-add` | each entry of the new document: request-id entry set to `live`, listing member added with its mark cleared | – |
//! | 2 `task-write` | task script: document and records, atomically | task script: all removed |
//! | 3 `index-confirm` | step 1 again | – |
//! | 4 `unindex` | prune the entries the old records held and the new document does not | prune the old records' entries |
//! | 5 `wait` | `WAIT` on each master written to, with `TA_REDIS_WAIT_REPLICAS` | same |
//!
//! The write is acknowledged after step 3 (and 5 when configured); step 4 is best
//! effort. A **prune** (step 4, a lookup that met an entry whose task is gone or no
//! longer holds the request id, a listing that met a member whose task is gone or no
//! longer fits it, or a purge) never simply deletes: it (a) marks the entry with a token
//! of its own (a request-id entry's value; a listing member's field in the index's marks
//! hash), (b) reads the task, (c) removes the entry only if it still holds the token and
//! the task read in (b) does not hold the entry (else it clears the mark). Lookups and
//! listings take every entry of an index as a candidate, marked or not, and check each
//! candidate's document.
//!
//! A document **holds** a request-id entry when one of its items has that request id,
//! and a listing member in an index when the member spells its `created_at` and task id
//! (module `crate::listing`) and its session (or user) is the index's.
//!
//! **Claim: once a write of a document holding entry `e` is acknowledged, and as long as
//! that document is the task's, `e` is in its index.**
//! Entries are removed only in (c). Suppose (c) removes `e` at time T3 while the current
//! document D holds `e`. The read (b) at T2 < T3 saw a document not holding `e`, so D's
//! task write (step 2) came after T2, hence after the mark (a). D's writer ran step 3
//! after its step 2 and before its acknowledgement: if step 3 came before T3, it cleared
//! the token (`live` again, or the mark removed) and (c) found no token and removed
//! nothing; if after T3, step 3 put the entry back. Either way the entry is there from
//! the acknowledgement on, and a later prune reads D (holding `e`) and keeps it. Two
//! prunes of one entry cannot help each other remove it: the later mark replaces the
//! earlier token, so only the prune that marked last can settle, and the argument holds
//! for its own (a) and (b). A mark that is lost (the marks hash of a listing index
//! expires, so an abandoned prune leaves nothing forever) only makes (c) keep the entry.
//!
//! Hence **a listing walk over an index never misses an acknowledged task that belongs
//! to it**: the walk reads the member, then the task's current document; a document that
//! still fits the member is listed, and one that does not (the task moved, or is gone)
//! is skipped, as a task written or deleted after the walk passed that position would
//! be. A member whose task was updated within the same place (a status change) is read
//! with the new document, so the filter on statuses sees the current status.
//!
//! **Failures.** A crash or error at any step leaves only what lookups handle:
//! - before or during step 1, or after it but before step 2: entries (some `live`) for a
//!   task that does not hold them, or does not exist; a lookup or listing finds the task
//!   does not hold them and prunes them. Nothing was acknowledged.
//! - after step 2, before step 3 completes: the document is written, the caller gets an
//!   error whose outcome is unknown (never a success), and step 1's entries are still in
//!   place unless a concurrent prune removed them in the window before step 2; a retry
//!   of the write restores them.
//! - during step 4: stale entries stay, marked or not; lookups, listings and purges
//!   prune them later.
//! - during step 5: the write is applied on the masters; the error says it may not have
//!   reached the replicas (outcome unknown).
//!
//! Steps 1 and 3 fail the write with a typed error; nothing after step 2 ever turns an
//! applied write into a success the data does not back. The tests fail each step in turn
//! (a fault armed in the test build) and check a retry, a lookup or a listing repairs
//! everything.
//!
//! # Retention
//!
//! A write gives the task's keys the TTL of the status it leaves the task in
//! (`TA_PERSISTENCE_RETENTION`, else `TA_REDIS_TTL`), in the task script, so the
//! document and its records expire together. Steps 1 and 3 keep each index the task is
//! entered in alive at least that long: a new index gets the TTL, an existing one's
//! expiry is only ever pushed back, and a task without expiry makes the index
//! persistent; removing an entry never touches a TTL. Step 3 runs after the task write,
//! so the index outlives the task's last write. An expired task is gone from every read
//! the moment Redis expires it; the entries it leaves are stale entries like any other,
//! skipped and pruned by the lookups and listings that meet them, and by `purge`.
//!
//! # What is given up
//!
//! The key layout is not the Python original's (which has no hash tags and cannot get
//! them without renaming every key), so Python agents and this mode cannot share data;
//! and as no writer that skips the indexes can write this layout, `reindex` is not
//! offered (`Unsupported`). A write the client library retried after a dropped connection (it
//! retries redirections and broken connections by itself) may have been applied twice;
//! the scripts are idempotent for update and delete, and a create retried that way
//! answers `AlreadyExists` for the caller's own task.

pub mod config;
mod connect;
#[cfg(test)]
mod fault_tests;
pub(crate) mod keys;
mod listing;
mod ops;
mod scripts;

pub(crate) use connect::connect;
pub(crate) use ops::ClusterOps;
