//! `ClusterKeys`: the key layout of cluster mode, hash-tagged so each script's keys share
//! one slot. Pure: no I/O here.
//!
//! | key | type | slot | holds |
//! |---|---|---|---|
//! | `{prefix}:{t:<id>}:task` | string | the task's | the task's JSON document |
//! | `{prefix}:{t:<id>}:request_ids` | string | the task's | the request ids the document was indexed under ([`encode_ids`]) |
//! | `{prefix}:{t:<id>}:quarantine:<sha1>` | string | the task's | a document that could not be read, moved aside (never expires) |
//! | `{prefix}:{t:<id>}:listing` | string | the task's | where the document was listed: `[member, session id, user id]` |
//! | `{prefix}:{r:<request id>}:request_index` | hash | the request id's | task id → `live`, or a prune's token while one checks it |
//! | `{prefix}:{l:all}:list` | sorted set | its own | one listing member per task (module `crate::listing` spells members) |
//! | `{prefix}:{l:s:<session id>}:list` | sorted set | the session's | the members of that session's tasks |
//! | `{prefix}:{l:u:<user id>}:list` | sorted set | the user's | the members of that user's tasks |
//! | `{prefix}:{l:…}:marks` | hash | its listing index's | member → a prune's token while one checks it |
//!
//! Redis Cluster hashes only the part of a key between the first `{` and the next `}`, so
//! the task's keys share a slot (one script can touch them all, and `RENAME` to
//! quarantine stays in the slot) while each request id's index, and each listing index
//! with its marks, has a slot of its own. The index of all tasks is one key, so one
//! slot (and one master) takes an entry of every write: the price of a listing that
//! reads one ordered key.
//! The prefix may not hold braces (refused by the configuration) and ids are escaped
//! ([`escape`]: `%`, `{` and `}` as `%25`, `%7B`, `%7D`), so no id can end a tag early or
//! make two ids share a key. The `t:`, `r:`, `l:s:` and `l:u:` markers keep a task id,
//! a request id, a session id and a user id that are the same text in different keys.

/// A listing index: of all tasks, of one session's, or of one user's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ListIndex {
    /// Every task.
    All,
    /// The tasks of a session.
    Session(String),
    /// The tasks of a user.
    User(String),
}

impl ListIndex {
    /// Whether a task of this session and user belongs in this index.
    pub(crate) fn admits(&self, session_id: &str, user_id: &str) -> bool {
        match self {
            ListIndex::All => true,
            ListIndex::Session(s) => s == session_id,
            ListIndex::User(u) => u == user_id,
        }
    }

    /// The hash tag of this index's keys.
    fn tag(&self) -> String {
        match self {
            ListIndex::All => "l:all".to_owned(),
            ListIndex::Session(s) => format!("l:s:{}", escape(s)),
            ListIndex::User(u) => format!("l:u:{}", escape(u)),
        }
    }
}

/// The key names of one cluster-mode store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterKeys {
    prefix: String,
}

/// Undoes [`escape`]; `None` for text `escape` never makes.
pub(crate) fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['%', '{', '}']) {
        out.push_str(&rest[..at]);
        let code = rest.get(at..at + 3)?;
        out.push(match code {
            "%25" => '%',
            "%7B" => '{',
            "%7D" => '}',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
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

    /// The key of where a task's document was listed (same slot as the task).
    pub(crate) fn listed(&self, task_id: &str) -> String {
        self.task_tagged(task_id, "listing")
    }

    /// The key of a listing index (a sorted set of members).
    pub(crate) fn list_index(&self, index: &ListIndex) -> String {
        format!("{}:{{{}}}:list", self.prefix, index.tag())
    }

    /// The key of a listing index's marks (same slot as the index).
    pub(crate) fn list_marks(&self, index: &ListIndex) -> String {
        format!("{}:{{{}}}:marks", self.prefix, index.tag())
    }

    /// The listing index a key of [`Self::list_index`] names; `None` for any other key.
    pub(crate) fn list_index_of(&self, key: &str) -> Option<ListIndex> {
        let tag = key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{l:")?
            .strip_suffix("}:list")?;
        if tag == "all" {
            return Some(ListIndex::All);
        }
        if tag.contains(['{', '}']) {
            return None;
        }
        if let Some(session) = tag.strip_prefix("s:") {
            return unescape(session).map(ListIndex::Session);
        }
        unescape(tag.strip_prefix("u:")?).map(ListIndex::User)
    }

    /// The key of a request id's index (a hash of task ids).
    pub(crate) fn index(&self, request_id: &str) -> String {
        format!("{}:{{r:{}}}:request_index", self.prefix, escape(request_id))
    }

    /// `SCAN MATCH` patterns for every key of this store, task keys first.
    pub(crate) fn scan_patterns(&self) -> [String; 3] {
        let prefix = crate::keys::escape_glob(&self.prefix);
        [
            format!("{prefix}:{{t:*"),
            format!("{prefix}:{{r:*"),
            format!("{prefix}:{{l:*"),
        ]
    }

    /// The `SCAN MATCH` pattern of listing index keys (not their marks).
    pub(crate) fn list_pattern(&self) -> String {
        format!("{}:{{l:*}}:list", crate::keys::escape_glob(&self.prefix))
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
        assert_eq!(keys.listed("t1"), "task_persistence:{t:t1}:listing");
        for id in ["t1", "", "a}b", "{x}", "}{", "%7B", "ü:*"] {
            let tag = hash_tag(&keys.task(id)).to_owned();
            assert_eq!(tag, format!("t:{}", escape(id)), "{id:?}");
            assert_eq!(hash_tag(&keys.record(id)), tag);
            assert_eq!(hash_tag(&keys.quarantine(id, "0f")), tag);
            assert_eq!(hash_tag(&keys.listed(id)), tag);
            assert_eq!(hash_tag(&keys.index(id)), format!("r:{}", escape(id)));
        }
    }

    #[test]
    fn each_listing_index_has_its_own_tag_and_its_marks_share_it() {
        let keys = ClusterKeys::new("p");
        assert_eq!(keys.list_index(&ListIndex::All), "p:{l:all}:list");
        assert_eq!(keys.list_marks(&ListIndex::All), "p:{l:all}:marks");
        let mut tags = std::collections::BTreeSet::new();
        for id in ["all", "", "a}b", "{x}", "%7B", "ü:*", "s:x"] {
            for index in [
                ListIndex::All,
                ListIndex::Session(id.to_owned()),
                ListIndex::User(id.to_owned()),
            ] {
                let key = keys.list_index(&index);
                let tag = hash_tag(&key).to_owned();
                assert_eq!(hash_tag(&keys.list_marks(&index)), tag);
                assert!(!tag.contains(['{', '}']), "{key}");
                assert_eq!(keys.list_index_of(&key), Some(index.clone()), "{key}");
                tags.insert((tag, index));
            }
        }
        let distinct: std::collections::BTreeSet<&String> = tags.iter().map(|(t, _)| t).collect();
        assert_eq!(distinct.len(), tags.len(), "one tag per index");
        for other in [
            "p:{l:all}:marks",
            "q:{l:all}:list",
            "p:{t:x}:task",
            "p:{l:s:a%7}:list",
        ] {
            assert_eq!(keys.list_index_of(other), None, "{other}");
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
        for id in ids {
            assert_eq!(unescape(&escape(id)).as_deref(), Some(id));
        }
        assert_eq!(unescape("%7"), None);
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
            [
                "p\\[1\\]:{t:*".to_owned(),
                "p\\[1\\]:{r:*".to_owned(),
                "p\\[1\\]:{l:*".to_owned()
            ]
        );
        assert_eq!(keys.list_pattern(), "p\\[1\\]:{l:*}:list");
    }
}
