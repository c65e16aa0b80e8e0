//! Redis Cluster mode (`TA_REDIS_CLUSTER=true`): the same operations over redis-rs's async
//! cluster client, with a hash-tagged key layout (module `keys`) so no command ever
//! crosses slots.
//!
//! # Why the index cannot change with the task, and why that is safe
//!
//! A task's keys (document, record of its request ids, quarantine) share the task's
//! slot; each request id's index (a hash: task id → `live`) has its own. One script
//! cannot touch both, so a write is several steps, each one script on one slot:
//!
//! | step | create / update | delete |
//! |---|---|---|
//! | 1 `index-add` | each new request id's index: entry set to `live` | – |
//! | 2 `task-write` | task script: document and record, atomically | task script: both removed |
//! | 3 `index-confirm` | each new request id's index: entry set to `live` again | – |
//! | 4 `unindex` | prune the request ids the old record held and the new one does not | prune the old record's request ids |
//! | 5 `wait` | `WAIT` on each master written to, with `TA_REDIS_WAIT_REPLICAS` | same |
//!
//! The write is acknowledged after step 3 (and 5 when configured); step 4 is best
//! effort. A **prune** (step 4, or a lookup that met an entry whose task is gone or no
//! longer holds the request id) never simply deletes: it (a) marks the entry with a
//! token of its own, (b) reads the task, (c) removes the entry only if it still holds the
//! token and the task read in (b) does not hold the request id (else it sets it back to
//! `live`). Lookups take every entry of an index as a candidate, marked or not, and check
//! each candidate's document.
//!
//! **Claim: once a write of a document holding request id `r` is acknowledged, and as
//! long as that document is the task's, `r`'s index has the task's entry.**
//! Entries are removed only in (c). Suppose (c) removes the entry at time T3 while the
//! current document D holds `r`. The read (b) at T2 < T3 saw a document not holding
//! `r`, so D's task write (step 2) came after T2, hence after the mark (a). D's writer
//! ran step 3 after its step 2 and before its acknowledgement: if step 3 came before
//! T3, it replaced the token with `live` and (c) found no token and removed nothing; if
//! after T3, step 3 put the entry back. Either way the entry is there from the
//! acknowledgement on, and a later prune reads D (holding `r`) and keeps it.
//!
//! **Failures.** A crash or error at any step leaves only what lookups handle:
//! - before or during step 1, or after it but before step 2: entries (some `live`) for a
//!   task that does not hold them, or does not exist; a lookup finds the task does not
//!   hold the request id and prunes them. Nothing was acknowledged.
//! - after step 2, before step 3 completes: the document is written, the caller gets an
//!   error whose outcome is unknown (never a success), and step 1's entries are still in
//!   place unless a concurrent prune removed them in the window before step 2; a retry
//!   of the write restores them.
//! - during step 4: stale entries stay, marked or not; lookups prune them later.
//! - during step 5: the write is applied on the masters; the error says it may not have
//!   reached the replicas (outcome unknown).
//!
//! Steps 1 and 3 fail the write with a typed error; nothing after step 2 ever turns an
//! applied write into a success the data does not back. The tests fail each step in turn
//! (a fault armed in the test build) and check a retry or a lookup repairs everything.
//!
//! # What is given up
//!
//! The key layout is not the Python original's (which has no hash tags and cannot get
//! them without renaming every key), so Python agents and this mode cannot share data.
//! Listing and retention (interface 2) are not offered in this mode yet: they answer
//! `Unsupported`. A write the client library retried after a dropped connection (it
//! retries redirections and broken connections by itself) may have been applied twice;
//! the scripts are idempotent for update and delete, and a create retried that way
//! answers `AlreadyExists` for the caller's own task.

pub mod config;
mod connect;
#[cfg(test)]
mod fault_tests;
pub(crate) mod keys;
mod ops;
mod scripts;

pub(crate) use connect::connect;
pub(crate) use ops::ClusterOps;
