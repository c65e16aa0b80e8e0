//! `ClusterKeys`: the key layout of cluster mode, hash-tagged so each script's keys share
//! one slot. Pure: no I/O here.
//!
//! | key | type | slot | holds |
//! |---|---|---|---|
//! | `{prefix}:{t:<id>}:task` | string | the task's | the task's JSON document |
//! | `{prefix}:{t:<id>}:request_ids` | string | the task's | the request ids the document was indexed under ([`encode_ids`]) |
//! | `{prefix}:{t:<id>}:quarantine:<sha1>` | string | the task's | a document that could not be read, moved aside (never expires) |
//! | `{prefix}:{r:<request id>}:request_index` | hash | the request id's | task id → `live`, or a prune's token while one checks it |
//!
//! Redis Cluster hashes only the part of a key between the first `{` and the next `}`, so
//! the task's three keys share a slot (one script can touch them all, and `RENAME` to
//! quarantine stays in the slot) while each request id's index has a slot of its own.
//! The prefix may not hold braces (refused by the configuration) and ids are escaped
//! ([`escape`]: `%`, `{` and `}` as `%25`, `%7B`, `%7D`), so no id can end a tag early or
//! make two ids share a key. The `t:`/`r:` markers keep a task id and a request id that
//! are the same text in different slots' keys apart.

/// The key names of one cluster-mode store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterKeys {
    prefix: String,
}

/// Escapes an id for use inside a hash tag: `%`, `{`, `}` become `%25`, `%7B`, `%7D`.
/// Injective, and the result holds no brace.
pub(crate) fn escape(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

impl ClusterKeys {
    /// The keys under `prefix` (which holds no brace).
    pub(crate) fn new(prefix: &str) -> Self {
        ClusterKeys {
            prefix: prefix.to_owned(),
        }
    }

    fn task_tagged(&self, task_id: &str, what: &str) -> String {
        format!("{}:{{t:{}}}:{what}", self.prefix, escape(task_id))
    }

    /// The key of a task's document.
    pub(crate) fn task(&self, task_id: &str) -> String {
        self.task_tagged(task_id, "task")
    }

    /// The key of the request ids a task was last indexed under (same slot as the task).
    pub(crate) fn record(&self, task_id: &str) -> String {
        self.task_tagged(task_id, "request_ids")
    }

    /// The key a corrupt document of this task, with this SHA-1, is moved to (same slot
    /// as the task).
    pub(crate) fn quarantine(&self, task_id: &str, sha: &str) -> String {
        self.task_tagged(task_id, &format!("quarantine:{sha}"))
    }

    /// The key of a request id's index (a hash of task ids).
    pub(crate) fn index(&self, request_id: &str) -> String {
        format!("{}:{{r:{}}}:request_index", self.prefix, escape(request_id))
    }

    /// `SCAN MATCH` patterns for every key of this store, task keys first.
    pub(crate) fn scan_patterns(&self) -> [String; 2] {
        let prefix = crate::keys::escape_glob(&self.prefix);
        [format!("{prefix}:{{t:*"), format!("{prefix}:{{r:*")]
    }
}

/// Encodes request ids as one string: each as its byte length, `:`, the id (so any id,
/// newlines and colons included, reads back exactly).
pub(crate) fn encode_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for id in ids {
        out.push_str(&id.len().to_string());
        out.push(':');
        out.push_str(id);
    }
    out
}

/// Decodes [`encode_ids`]; `None` when the text is not in that form.
pub(crate) fn decode_ids(mut text: &str) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    while !text.is_empty() {
        let (len, rest) = text.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let id = rest.get(..len)?;
        ids.push(id.to_owned());
        text = &rest[len..];
    }
    Some(ids)
}

/// The hash tag Redis Cluster hashes for `key`: the text between the first `{` and the
/// next `}`, when that is not empty; else the whole key.
#[cfg(test)]
pub(crate) fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_and_its_bookkeeping_share_a_tag_and_an_index_has_its_own() {
        let keys = ClusterKeys::new("task_persistence");
        assert_eq!(keys.task("t1"), "task_persistence:{t:t1}:task");
        assert_eq!(keys.record("t1"), "task_persistence:{t:t1}:request_ids");
        assert_eq!(
            keys.quarantine("t1", "ab12"),
            "task_persistence:{t:t1}:quarantine:ab12"
        );
        assert_eq!(keys.index("t1"), "task_persistence:{r:t1}:request_index");
        for id in ["t1", "", "a}b", "{x}", "}{", "%7B", "ü:*"] {
            let tag = hash_tag(&keys.task(id)).to_owned();
            assert_eq!(tag, format!("t:{}", escape(id)), "{id:?}");
            assert_eq!(hash_tag(&keys.record(id)), tag);
            assert_eq!(hash_tag(&keys.quarantine(id, "0f")), tag);
            assert_eq!(hash_tag(&keys.index(id)), format!("r:{}", escape(id)));
        }
    }

    #[test]
    fn escaping_is_injective_and_leaves_no_brace() {
        let ids = ["{", "}", "%7B", "%", "%25", "a{b}c", "%7D", "plain"];
        let escaped: Vec<String> = ids.iter().map(|id| escape(id)).collect();
        for (i, e) in escaped.iter().enumerate() {
            assert!(!e.contains(['{', '}']), "{e}");
            for other in &escaped[i + 1..] {
                assert_ne!(e, other);
            }
        }
        assert_eq!(escape("a{b}%"), "a%7Bb%7D%25");
    }

    #[test]
    fn recorded_ids_read_back_exactly() {
        let ids = ["r1", "", "a:b", "12:x", "line\nbreak", "ü"];
        let text = encode_ids(ids);
        assert_eq!(decode_ids(&text).unwrap(), ids);
        assert_eq!(decode_ids("").unwrap(), Vec::<String>::new());
        for bad in ["3:ab", "x:1", "2", "-1:a"] {
            assert_eq!(decode_ids(bad), None, "{bad}");
        }
    }

    #[test]
    fn scan_patterns_cover_task_and_index_keys_only_of_this_prefix() {
        let keys = ClusterKeys::new("p[1]");
        assert_eq!(
            keys.scan_patterns(),
            ["p\\[1\\]:{t:*".to_owned(), "p\\[1\\]:{r:*".to_owned()]
        );
    }
}
