//! The built-in store's listing indexes: every task's position in the listing order, per
//! status, per session and per user, so that a page costs about its size.
//!
//! Each index is ordered by [`Entry`], which orders as [`ListKey`] does (newest first,
//! ties by task id descending), so a page after a cursor is a range read. A filter walks
//! the narrowest index that covers it (the smallest of its session's, its user's, and
//! its statuses' merged) and checks the rest of the filter on each task it meets. There
//! is no separate index of every task: the five status indexes, merged, are that one.
//!
//! The indexes live in the store's `State`, under the same lock as the tasks, so they
//! never disagree with them.

use std::cmp::Ordering;
use std::collections::btree_set::{self, BTreeSet};
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::Arc;

use ta_persistence_api::listing::{ListKey, TaskFilter};
use ta_persistence_api::TaskStatus;

use super::Map;

/// A task's position in the listing order, sharing the task id with the task map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    created: i64,
    task_id: Arc<str>,
}

impl Entry {
    pub(super) fn new(created: i64, task_id: &Arc<str>) -> Self {
        Entry {
            created,
            task_id: Arc::clone(task_id),
        }
    }

    /// The entry of a cursor's key (where a page starts, exclusive).
    pub(super) fn of_key(key: ListKey) -> Self {
        Entry {
            created: key.created_at_micros,
            task_id: Arc::from(key.task_id),
        }
    }

    pub(super) fn task_id(&self) -> &str {
        &self.task_id
    }
}

impl Ord for Entry {
    /// The listing order, as [`ListKey`]'s `Ord`: the newer (greater) time first, then
    /// the greater task id.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .created
            .cmp(&self.created)
            .then_with(|| other.task_id.cmp(&self.task_id))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a task is listed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Listed<'a> {
    pub(super) session_id: &'a str,
    pub(super) user_id: &'a str,
    pub(super) status: TaskStatus,
    pub(super) created: i64,
}

/// The tasks of one session or one user. A session often holds a single task, which
/// then needs no tree of its own.
#[derive(Debug)]
enum Group {
    One(Entry),
    Many(BTreeSet<Entry>),
}

impl Group {
    fn len(&self) -> usize {
        match self {
            Group::One(_) => 1,
            Group::Many(set) => set.len(),
        }
    }

    fn insert(&mut self, entry: Entry) {
        match self {
            Group::One(e) if *e == entry => {}
            Group::One(e) => {
                let set = BTreeSet::from([e.clone(), entry]);
                *self = Group::Many(set);
            }
            Group::Many(set) => {
                set.insert(entry);
            }
        }
    }

    /// Removes an entry; `true` when the group is left empty.
    fn remove(&mut self, entry: &Entry) -> bool {
        match self {
            Group::One(e) => e == entry,
            Group::Many(set) => {
                set.remove(entry);
                if set.len() == 1 {
                    if let Some(last) = set.pop_first() {
                        *self = Group::One(last);
                    }
                }
                set_is_empty(self)
            }
        }
    }

    fn after<'a>(&'a self, after: Option<&Entry>) -> Walk<'a> {
        match self {
            Group::One(e) => Walk::One(after.is_none_or(|a| e > a).then_some(e)),
            Group::Many(set) => Walk::Set(range_after(set, after)),
        }
    }
}

fn set_is_empty(group: &Group) -> bool {
    matches!(group, Group::Many(set) if set.is_empty())
}

fn range_after<'a>(set: &'a BTreeSet<Entry>, after: Option<&Entry>) -> btree_set::Range<'a, Entry> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    set.range::<Entry, (Bound<&Entry>, Bound<&Entry>)>((start, Bound::Unbounded))
}

fn group_add(groups: &mut Map<Box<str>, Group>, name: &str, entry: Entry) {
    match groups.get_mut(name) {
        Some(group) => group.insert(entry),
        None => {
            groups.insert(name.into(), Group::One(entry));
        }
    }
}

fn group_remove(groups: &mut Map<Box<str>, Group>, name: &str, entry: &Entry) {
    if let Some(group) = groups.get_mut(name) {
        if group.remove(entry) {
            groups.remove(name);
        }
    }
}

/// Entries in listing order after a position, from one index.
pub(super) enum Walk<'a> {
    /// Nothing (a session or user with no tasks).
    Empty,
    /// A group of one.
    One(Option<&'a Entry>),
    /// A tree.
    Set(btree_set::Range<'a, Entry>),
    /// Several status trees, merged into one order.
    Merge(Vec<Peekable<btree_set::Range<'a, Entry>>>),
}

impl<'a> Iterator for Walk<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        match self {
            Walk::Empty => None,
            Walk::One(e) => e.take(),
            Walk::Set(range) => range.next(),
            Walk::Merge(ranges) => {
                // At most five ranges: a linear look at their heads beats a heap.
                let mut first: Option<(usize, &Entry)> = None;
                for (at, range) in ranges.iter_mut().enumerate() {
                    if let Some(head) = range.peek() {
                        if first.is_none_or(|(_, best)| *head < best) {
                            first = Some((at, head));
                        }
                    }
                }
                let (at, _) = first?;
                ranges[at].next()
            }
        }
    }
}

/// The listing indexes of one store.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// By status ordinal.
    by_status: [BTreeSet<Entry>; 5],
    by_session: Map<Box<str>, Group>,
    by_user: Map<Box<str>, Group>,
}

impl Listing {
    pub(super) fn add(&mut self, task_id: &Arc<str>, listed: &Listed<'_>) {
        let entry = Entry::new(listed.created, task_id);
        group_add(&mut self.by_session, listed.session_id, entry.clone());
        group_add(&mut self.by_user, listed.user_id, entry.clone());
        self.by_status[usize::from(listed.status.ordinal())].insert(entry);
    }

    pub(super) fn remove(&mut self, task_id: &Arc<str>, listed: &Listed<'_>) {
        let entry = Entry::new(listed.created, task_id);
        group_remove(&mut self.by_session, listed.session_id, &entry);
        group_remove(&mut self.by_user, listed.user_id, &entry);
        self.by_status[usize::from(listed.status.ordinal())].remove(&entry);
    }

    /// Moves a task from where it was listed to where it now is; nothing to do when an
    /// update changed none of what it is listed under (the usual agent turn).
    pub(super) fn relist(&mut self, task_id: &Arc<str>, old: &Listed<'_>, new: &Listed<'_>) {
        if old != new {
            self.remove(task_id, old);
            self.add(task_id, new);
        }
    }

    pub(super) fn clear(&mut self) {
        *self = Listing::default();
    }

    /// Entries in all indexes (three per task when they agree with the tasks).
    pub(super) fn entries(&self) -> usize {
        let groups = |g: &Map<Box<str>, Group>| g.values().map(Group::len).sum::<usize>();
        self.by_status.iter().map(BTreeSet::len).sum::<usize>()
            + groups(&self.by_session)
            + groups(&self.by_user)
    }

    /// The entries after `after`, in listing order, of the narrowest index that holds
    /// every task `filter` matches. They may include tasks the filter does not match
    /// (the caller checks each); they include every one it does.
    pub(super) fn walk<'a>(&'a self, filter: &TaskFilter, after: Option<&Entry>) -> Walk<'a> {
        let statuses: Vec<usize> = match filter.status_set() {
            Some(set) => set.iter().map(|s| usize::from(s.ordinal())).collect(),
            None => (0..self.by_status.len()).collect(),
        };
        let by_status: usize = statuses.iter().map(|&s| self.by_status[s].len()).sum();
        let mut narrowest: (usize, Option<&Group>) = (by_status, None);
        for (name, groups) in [
            (filter.session_id(), &self.by_session),
            (filter.user_id(), &self.by_user),
        ] {
            let Some(name) = name else { continue };
            match groups.get(name) {
                // No task has this session (or user): nothing matches.
                None => return Walk::Empty,
                Some(group) if group.len() < narrowest.0 => narrowest = (group.len(), Some(group)),
                Some(_) => {}
            }
        }
        match narrowest.1 {
            Some(group) => group.after(after),
            None => Walk::Merge(
                statuses
                    .into_iter()
                    .map(|s| range_after(&self.by_status[s], after).peekable())
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(
        session: &'static str,
        user: &'static str,
        status: TaskStatus,
        created: i64,
    ) -> Listed<'static> {
        Listed {
            session_id: session,
            user_id: user,
            status,
            created,
        }
    }

    fn ids(walk: Walk<'_>) -> Vec<String> {
        walk.map(|e| e.task_id().to_owned()).collect()
    }

    #[test]
    fn status_indexes_merge_into_the_listing_order() {
        let mut listing = Listing::default();
        let statuses = [
            TaskStatus::Running,
            TaskStatus::Completed,
            TaskStatus::Failed,
        ];
        for n in 0..30i64 {
            let id: Arc<str> = Arc::from(format!("t{n:02}"));
            // Pairs of tasks share a time, so the task id breaks the tie.
            let status = statuses[(n % 3) as usize];
            listing.add(&id, &listed("s", "u", status, n / 2));
        }
        let all = ids(listing.walk(&TaskFilter::all(), None));
        let mut expected: Vec<String> = (0..30).map(|n| format!("t{n:02}")).collect();
        expected.reverse();
        assert_eq!(all, expected);
        let after = Entry::of_key(ListKey::new(10, "t20"));
        let rest = ids(listing.walk(&TaskFilter::all(), Some(&after)));
        assert_eq!(rest, expected[10..]);
        assert_eq!(listing.entries(), 90);
    }

    #[test]
    fn the_narrowest_index_is_walked() {
        let mut listing = Listing::default();
        for n in 0..10i64 {
            let id: Arc<str> = Arc::from(format!("t{n}"));
            let session = if n == 3 { "rare" } else { "common" };
            listing.add(&id, &listed(session, "u", TaskStatus::Running, n));
        }
        let filter = TaskFilter::all().session("rare").user("u");
        assert_eq!(ids(listing.walk(&filter, None)), ["t3"]);
        // A status with no tasks is narrower than any session.
        let filter = TaskFilter::all()
            .session("common")
            .statuses([TaskStatus::Failed]);
        assert!(ids(listing.walk(&filter, None)).is_empty());
        assert!(ids(listing.walk(&TaskFilter::all().user("nobody"), None)).is_empty());
    }

    #[test]
    fn removing_every_task_leaves_no_entry_and_no_group() {
        let mut listing = Listing::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        let la = listed("s", "u", TaskStatus::Running, 1);
        let lb = listed("s", "v", TaskStatus::Paused, 2);
        listing.add(&a, &la);
        listing.add(&b, &lb);
        let moved = listed("s2", "u", TaskStatus::Completed, 1);
        listing.relist(&a, &la, &moved);
        assert_eq!(
            ids(listing.walk(&TaskFilter::all().session("s2"), None)),
            ["a"]
        );
        assert_eq!(
            ids(listing.walk(&TaskFilter::all().session("s"), None)),
            ["b"]
        );
        listing.remove(&a, &moved);
        listing.remove(&b, &lb);
        assert_eq!(listing.entries(), 0);
        assert!(listing.by_session.is_empty() && listing.by_user.is_empty());
    }
}
