//! `Keys`: the Redis key layout, the Python original's, under a configurable prefix.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:task:{task_id}` | string | the task's JSON document, as the host encoded it |
//! | `{prefix}:request_index:{request_id}` | set | the ids of the tasks with an item of that request id |
//! | `{prefix}:quarantine:{task_id}` | string | a document that could not be read, moved aside (never expires) |
//!
//! Ids are used raw, exactly as the Python original writes them, so both can share one
//! database. Pure: no I/O here.

/// The key names of one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    task: String,
    index: String,
    quarantine: String,
}

impl Keys {
    /// The keys under `prefix` (for example `task_persistence`).
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            task: format!("{prefix}:task:"),
            index: format!("{prefix}:request_index:"),
            quarantine: format!("{prefix}:quarantine:"),
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

    /// What every task key starts with (scripts append the id).
    pub(crate) fn task_prefix(&self) -> &str {
        &self.task
    }

    /// What every index key starts with (scripts append the request id).
    pub(crate) fn index_prefix(&self) -> &str {
        &self.index
    }

    /// `SCAN MATCH` patterns for every key of this store: tasks first, then index sets and
    /// quarantined documents.
    pub(crate) fn scan_patterns(&self) -> [String; 3] {
        [&self.task, &self.index, &self.quarantine].map(|p| format!("{}*", escape_glob(p)))
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
            ]
        );
        assert_eq!(escape_glob("plain_prefix"), "plain_prefix");
    }
}
