//! Listing and purge in cluster mode: a page read from one listing index (one slot),
//! each entry checked against the task document it names, and stale entries pruned with
//! the mark / read / settle protocol of the parent module's docs.
//!
//! A page is read like in single-node mode (module `crate::ops`), from the narrowest
//! index for the filter, in batches of what it still needs; the difference is that the
//! entries and their documents live in different slots, so a batch is two round trips
//! (`ZRANGEBYLEX` on the index, then one `GET` per entry, all sent together) instead of
//! one script.

use futures::future::join_all;
use ta_persistence_api::listing::{Page, PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::{Operation, Result};
use tracing::{debug, info, warn};

use super::keys::ListIndex;
use super::ops::{ClusterOps, IndexEntry};
use crate::listing::{member, member_key};
use crate::ops::{judge_entry, Entry, Scope};

/// The largest batch of entries a listing reads at once.
const MAX_LIST_BATCH: usize = 1024;

/// Entries a purge reads per round trip of one listing index.
const SWEEP_BATCH: usize = 500;

/// The `ZRANGEBYLEX` lower bound just after `member`.
fn after(member: &[u8]) -> Vec<u8> {
    [b"(".as_slice(), member].concat()
}

impl ClusterOps {
    /// The next `count` members of a listing index after `lower`.
    async fn members(
        &self,
        op: Operation,
        key: &str,
        lower: &[u8],
        count: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let mut conn = self.conn();
        self.limited(
            op,
            redis::cmd("ZRANGEBYLEX")
                .arg(key)
                .arg(lower)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(count)
                .query_async(&mut conn),
        )
        .await
    }

    /// Removes a member no write makes (hand-made), which names no task: no write can
    /// add it back, so no protocol is needed. Best effort.
    async fn drop_foreign(&self, key: &str, member: &[u8]) {
        let removed: redis::RedisResult<i64> = redis::cmd("ZREM")
            .arg(key)
            .arg(member)
            .query_async(&mut self.conn())
            .await;
        if let Err(e) = removed {
            debug!(index = key, error = %e, "could not remove a foreign listing member");
        }
    }

    /// One page of tasks matching `filter`, in listing order, from the narrowest index
    /// for the filter. Entries whose task is gone, or whose document no longer fits
    /// (another `created_at`, session or user), are skipped and pruned. Each round trip
    /// has the operation time limit, not the whole page.
    pub(crate) async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let op = Operation::List;
        let start = page.start_after(filter)?;
        let size = page.size() as usize;
        let (index, scope) = match (filter.session_id(), filter.user_id()) {
            (Some(session), _) => (
                ListIndex::Session(session.to_owned()),
                Scope::Session(session),
            ),
            (None, Some(user)) => (ListIndex::User(user.to_owned()), Scope::User(user)),
            (None, None) => (ListIndex::All, Scope::All),
        };
        let key = self.keys.list_index(&index);
        let mut lower = start.map_or_else(|| b"-".to_vec(), |k| after(member(&k).as_bytes()));
        let mut found: Vec<TaskSummary> = Vec::with_capacity(size + 1);
        // One more than the page, to know whether another page follows.
        let mut batch = size + 1;
        loop {
            let members = self.members(op, &key, &lower, batch).await?;
            let got = members.len();
            let named: Vec<Option<String>> = members
                .iter()
                .map(|m| {
                    std::str::from_utf8(m)
                        .ok()
                        .and_then(member_key)
                        .map(|k| k.task_id)
                })
                .collect();
            let reads = named.iter().flatten().map(|id| {
                let mut conn = self.conn();
                let task = self.keys.task(id);
                async move {
                    redis::cmd("GET")
                        .arg(task)
                        .query_async::<Option<Vec<u8>>>(&mut conn)
                        .await
                }
            });
            let docs = self
                .limited(op, async {
                    join_all(reads)
                        .await
                        .into_iter()
                        .collect::<redis::RedisResult<Vec<_>>>()
                })
                .await?;
            let mut docs = docs.into_iter();
            let mut stale: Vec<(String, IndexEntry)> = Vec::new();
            for (raw, id) in members.iter().zip(&named) {
                lower = after(raw);
                let (Some(_), Ok(text)) = (id, std::str::from_utf8(raw)) else {
                    self.drop_foreign(&key, raw).await;
                    continue;
                };
                let doc = docs.next().flatten();
                match judge_entry(text, doc, &scope) {
                    Entry::Listed(summary) => {
                        if filter.matches_summary(&summary) {
                            found.push(summary);
                        }
                    }
                    Entry::Gone(task_id) | Entry::Moved(task_id, _) => {
                        stale.push((task_id, IndexEntry::Listed(index.clone(), text.to_owned())));
                    }
                    Entry::Unreadable(task_id, why) => warn!(
                        task_id,
                        error = %why,
                        "a listed task's document is not a valid task; left out of the listing"
                    ),
                }
                if found.len() > size {
                    break;
                }
            }
            if !stale.is_empty() {
                let prunes = stale.into_iter().map(|(task_id, entry)| async move {
                    self.unindex(op, &task_id, vec![entry]).await
                });
                let removed: i64 = join_all(prunes).await.into_iter().sum();
                debug!(index = %key, removed, "pruned stale listing entries");
            }
            if found.len() > size || got < batch {
                break;
            }
            // Entries were skipped: read further in larger batches.
            batch = batch
                .saturating_mul(2)
                .max(size + 1 - found.len())
                .min(MAX_LIST_BATCH);
        }
        Ok(Page::from_ordered(found, filter, page.size()))
    }

    /// `purge`: Redis removes expired task keys (and their records) by itself, the
    /// moment they expire, so nothing is left for a purge to delete and it answers 0,
    /// as in single-node mode. It walks every listing index (found with `SCAN` on each
    /// master) and prunes the entries of tasks that are gone; request-id entries are
    /// pruned by the lookups that meet them.
    pub(crate) async fn purge(&self) -> Result<u64> {
        let op = Operation::Purge;
        let pattern = self.keys.list_pattern();
        let mut removed = 0;
        for (host, port) in self.masters(op).await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) = self
                    .scan_step(op, (&host, port), cursor, &pattern, true)
                    .await?;
                for key in keys {
                    let index = std::str::from_utf8(&key)
                        .ok()
                        .and_then(|k| self.keys.list_index_of(k));
                    if let Some(index) = index {
                        removed += self.sweep(op, &index).await?;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        info!(
            index_entries_removed = removed,
            "purge: expired tasks are removed by Redis; swept the listing entries they left"
        );
        Ok(0)
    }

    /// Walks one listing index in bounded batches and prunes the entries of tasks that
    /// are gone; how many it removed.
    async fn sweep(&self, op: Operation, index: &ListIndex) -> Result<u64> {
        let key = self.keys.list_index(index);
        let mut lower = b"-".to_vec();
        let mut removed = 0;
        loop {
            let members = self.members(op, &key, &lower, SWEEP_BATCH).await?;
            let Some(last) = members.last() else {
                return Ok(removed);
            };
            lower = after(last);
            let mut named = Vec::with_capacity(members.len());
            for raw in &members {
                match std::str::from_utf8(raw)
                    .ok()
                    .and_then(|m| Some((m, member_key(m)?)))
                {
                    Some((text, k)) => named.push((text.to_owned(), k.task_id)),
                    None => {
                        self.drop_foreign(&key, raw).await;
                        removed += 1;
                    }
                }
            }
            let checks = named.iter().map(|(_, id)| {
                let mut conn = self.conn();
                let task = self.keys.task(id);
                async move {
                    redis::cmd("EXISTS")
                        .arg(task)
                        .query_async::<i64>(&mut conn)
                        .await
                }
            });
            let exists = self
                .limited(op, async {
                    join_all(checks)
                        .await
                        .into_iter()
                        .collect::<redis::RedisResult<Vec<_>>>()
                })
                .await?;
            let prunes = named.into_iter().zip(exists).filter(|(_, n)| *n == 0).map(
                |((text, id), _)| async move {
                    self.unindex(op, &id, vec![IndexEntry::Listed(index.clone(), text)])
                        .await
                },
            );
            let n: i64 = join_all(prunes).await.into_iter().sum();
            removed += u64::try_from(n).unwrap_or(0);
            if members.len() < SWEEP_BATCH {
                return Ok(removed);
            }
        }
    }
}
