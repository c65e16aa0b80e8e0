//! `Keys`: the Redis key layout, the Python original's, under a configurable prefix.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:task:{task_id}` | string | the task's JSON document, as the host encoded it |
//! | `{prefix}:request_index:{request_id}` | set | the ids of the tasks with an item of that request id |
//! | `{prefix}:quarantine:{task_id}` | string | a document that could not be read, moved aside (never expires) |
//! | `{prefix}:listing:all` | sorted set | one listing entry per task (see `codec::entry_member`) |
//! | `{prefix}:listing:session:{session_id}` | sorted set | the entries of that session's tasks |
//! | `{prefix}:listing:user:{user_id}` | sorted set | the entries of that user's tasks |
//! | `{prefix}:listing:entries` | hash | task id → where its entries are (member, session, user) |
//!
//! Ids are used raw, exactly as the Python original writes them, so both can share one
//! database. The listing keys are this plugin's own: the Python original writes only
//! under `{prefix}:task:` and `{prefix}:request_index:`, so no key of its can be one of
//! them, and `all`, `entries`, `session:` and `user:` cannot be mistaken for one another.
//! Pure: no I/O here.

/// The key names of one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    task: String,
    index: String,
    quarantine: String,
    listing: String,
}

impl Keys {
    /// The keys under `prefix` (for example `task_persistence`).
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            task: format!("{prefix}:task:"),
            index: format!("{prefix}:request_index:"),
            quarantine: format!("{prefix}:quarantine:"),
            listing: format!("{prefix}:listing:"),
        }
    }

    /// The key of a task's document.
    pub(crate) fn task(&self, task_id: &str) -> String {
        format!("{}{task_id}", self.task)
    }

    /// The key of a request id's set of task ids.
    pub(crate) fn index(&self, request_id: &str) -> String {
        format!("{}{request_id}", self.index)
    }

    /// The key a corrupt document of this task is moved to.
    pub(crate) fn quarantine(&self, task_id: &str) -> String {
        format!("{}{task_id}", self.quarantine)
    }

    /// The listing index of every task.
    pub(crate) fn list_all(&self) -> String {
        format!("{}all", self.listing)
    }

    /// The listing index of a session's tasks.
    pub(crate) fn list_session(&self, session_id: &str) -> String {
        format!("{}session:{session_id}", self.listing)
    }

    /// The listing index of a user's tasks.
    pub(crate) fn list_user(&self, user_id: &str) -> String {
        format!("{}user:{user_id}", self.listing)
    }

    /// The hash that records, per task id, where the task's listing entries are.
    pub(crate) fn list_entries(&self) -> String {
        format!("{}entries", self.listing)
    }

    /// What every listing key starts with (scripts append `session:{id}` or `user:{id}`).
    pub(crate) fn listing_prefix(&self) -> &str {
        &self.listing
    }

    /// What every task key starts with (scripts append the id).
    pub(crate) fn task_prefix(&self) -> &str {
        &self.task
    }

    /// What every index key starts with (scripts append the request id).
    pub(crate) fn index_prefix(&self) -> &str {
        &self.index
    }

    /// `SCAN MATCH` patterns for every key of this store: tasks first, then index sets,
    /// quarantined documents and listing indexes.
    pub(crate) fn scan_patterns(&self) -> [String; 4] {
        [&self.task, &self.index, &self.quarantine, &self.listing]
            .map(|p| format!("{}*", escape_glob(p)))
    }

    /// The `SCAN MATCH` pattern of task keys.
    pub(crate) fn task_pattern(&self) -> String {
        format!("{}*", escape_glob(&self.task))
    }
}

/// Escapes the characters `SCAN MATCH` treats as a glob (`*`, `?`, `[`, `]`, `\`), so a
/// prefix such as `agents[eu]` matches only itself.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prefix_gives_the_python_layout() {
        let keys = Keys::new("task_persistence");
        assert_eq!(keys.task("t1"), "task_persistence:task:t1");
        assert_eq!(keys.index("r1"), "task_persistence:request_index:r1");
        assert_eq!(keys.quarantine("t1"), "task_persistence:quarantine:t1");
        assert_eq!(keys.task_prefix(), "task_persistence:task:");
        assert_eq!(keys.index_prefix(), "task_persistence:request_index:");
        assert_eq!(keys.list_all(), "task_persistence:listing:all");
        assert_eq!(keys.list_session("s"), "task_persistence:listing:session:s");
        assert_eq!(keys.list_user("u"), "task_persistence:listing:user:u");
        assert_eq!(keys.list_entries(), "task_persistence:listing:entries");
        assert_eq!(keys.listing_prefix(), "task_persistence:listing:");
    }

    #[test]
    fn ids_are_used_raw() {
        let keys = Keys::new("p");
        assert_eq!(keys.task("a:b*c ü"), "p:task:a:b*c ü");
        assert_eq!(keys.index("[x]"), "p:request_index:[x]");
    }

    #[test]
    fn scan_patterns_escape_the_prefix() {
        let keys = Keys::new("agents[eu]*?\\");
        assert_eq!(
            keys.scan_patterns(),
            [
                "agents\\[eu\\]\\*\\?\\\\:task:*".to_owned(),
                "agents\\[eu\\]\\*\\?\\\\:request_index:*".to_owned(),
                "agents\\[eu\\]\\*\\?\\\\:quarantine:*".to_owned(),
                "agents\\[eu\\]\\*\\?\\\\:listing:*".to_owned(),
            ]
        );
        assert_eq!(escape_glob("plain_prefix"), "plain_prefix");
    }
}
