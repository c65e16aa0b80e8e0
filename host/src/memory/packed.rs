//! The in-memory store's compact form of a task: one contiguous buffer per task.
//!
//! A store that hands out copies reads every stored task it returns. Kept as an
//! `AgentTask`, one task is about twenty allocations scattered over the heap, so a copy of
//! a task that is not in cache costs a cache miss for each. Packed, the small fields (ids,
//! timestamps, enums, lengths) sit in one buffer that is read front to back, and the large
//! immutable values (contents, opaque JSON) are shared, not copied: a copy reads a few
//! neighbouring cache lines and allocates only the new task's small strings. It is also
//! about half the memory of the unpacked task.
//!
//! The layout is private to this process and never stored or sent anywhere.
//!
//! Layout of `bytes` (integers little-endian `u32`, strings as length then UTF-8):
//! task id, session id, user id, status (`u8`), extra fields, item count, then per item:
//! task id, request id, role (`u8`), content type (`u8`), the content's extra fields,
//! pending tool call count (or `u32::MAX` for none), chat history flag (`u8`), extra
//! fields. Extra fields are a count, then per field its name. Timestamps (created,
//! last updated, then each item's) and shared values follow in their own arrays, in the
//! order the fields appear.

use std::sync::Arc;

use ta_persistence_api::model::{distinct_in_order, ExtraFields, OpaqueJson};
use ta_persistence_api::{
    AgentTask, AgentTaskItem, ContentType, MultiModalItem, Role, TaskStatus, Timestamp,
};

/// A value kept by reference: an item's content or an opaque JSON value.
#[derive(Debug)]
enum Shared {
    Text(Arc<str>),
    Json(OpaqueJson),
}

/// A task in compact form.
#[derive(Debug)]
pub(super) struct Packed {
    /// Ids, enums and lengths, in field order.
    bytes: Box<[u8]>,
    /// Timestamps, in field order (kept as they are: converting costs more than the
    /// bytes it would save).
    times: Box<[Timestamp]>,
    /// Contents and opaque values, in the order the buffer refers to them.
    shared: Box<[Shared]>,
}

const NONE: u32 = u32::MAX;

/// The leading fields of a packed task (see [`Packed::head`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Head<'a> {
    pub(super) task_id: &'a str,
    pub(super) session_id: &'a str,
    pub(super) user_id: &'a str,
    pub(super) created_at: Timestamp,
    pub(super) last_updated: Timestamp,
    pub(super) status: TaskStatus,
    pub(super) item_count: u32,
}

struct Writer {
    bytes: Vec<u8>,
    times: Vec<Timestamp>,
    shared: Vec<Shared>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        // Lengths beyond u32 cannot occur: ids are at most 1024 bytes and a task of 4 GiB
        // of items would not fit a store anyway; saturate rather than wrap.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX - 1));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes.extend_from_slice(s.as_bytes());
    }
    fn ts(&mut self, t: &Timestamp) {
        self.times.push(*t);
    }
    fn json(&mut self, v: &OpaqueJson) {
        self.shared.push(Shared::Json(v.clone()));
    }
    fn extra(&mut self, extra: &ExtraFields) {
        self.len(extra.len());
        for (name, value) in extra {
            self.str(name);
            self.json(value);
        }
    }
}

/// The exact lengths of a task's `bytes` and `shared` in packed form (see the layout in
/// the module doc; [`Packed::pack`] checks them in debug builds).
fn sizes(task: &AgentTask) -> (usize, usize) {
    const LEN: usize = 4;
    let extra = |extra: &ExtraFields| {
        let names: usize = extra.into_iter().map(|(name, _)| LEN + name.len()).sum();
        (LEN + names, extra.len())
    };
    let (task_extra, mut shared) = extra(&task.extra);
    let mut bytes = 3 * LEN + task.task_id.len() + task.session_id.len() + task.user_id.len();
    bytes += 1 + task_extra + LEN;
    for item in &task.items {
        let (content_extra, content_shared) = extra(&item.item.extra);
        let (item_extra, item_shared) = extra(&item.extra);
        bytes += 2 * LEN + item.task_id.len() + item.request_id.len() + 2;
        bytes += content_extra + LEN + 1 + item_extra;
        shared += 1 + content_shared + item_shared;
        shared += item.pending_tool_calls.as_ref().map_or(0, Vec::len);
        shared += usize::from(item.chat_history.is_some());
    }
    (bytes, shared)
}

/// The buffer could not be read back: only possible if this module has a bug.
#[derive(Debug)]
pub(super) struct Malformed;

struct Reader<'a> {
    bytes: &'a [u8],
    times: std::slice::Iter<'a, Timestamp>,
    shared: std::slice::Iter<'a, Shared>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.bytes.len() < n {
            return Err(Malformed);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn str(&mut self) -> Result<&'a str, Malformed> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| Malformed)
    }
    fn string(&mut self) -> Result<String, Malformed> {
        self.str().map(str::to_owned)
    }
    fn ts(&mut self) -> Result<Timestamp, Malformed> {
        self.times.next().copied().ok_or(Malformed)
    }
    fn text(&mut self) -> Result<Arc<str>, Malformed> {
        match self.shared.next() {
            Some(Shared::Text(t)) => Ok(Arc::clone(t)),
            _ => Err(Malformed),
        }
    }
    fn json(&mut self) -> Result<OpaqueJson, Malformed> {
        match self.shared.next() {
            Some(Shared::Json(v)) => Ok(v.clone()),
            _ => Err(Malformed),
        }
    }
    fn extra(&mut self) -> Result<ExtraFields, Malformed> {
        let n = self.u32()?;
        let mut extra = ExtraFields::new();
        for _ in 0..n {
            let name = self.string()?;
            extra.insert(name, self.json()?);
        }
        Ok(extra)
    }
}

fn status_code(s: TaskStatus) -> u8 {
    // `ordinal` is an exhaustive match: a new status does not compile until it has a code.
    s.ordinal()
}

fn status_of(code: u8) -> Result<TaskStatus, Malformed> {
    TaskStatus::from_ordinal(code).ok_or(Malformed)
}

impl Packed {
    /// Packs a task (sharing its contents and opaque values with it).
    pub(super) fn pack(task: &AgentTask) -> Packed {
        // Allocated at their exact sizes, so that making them boxed slices at the end
        // does not reallocate (and copy) them.
        let (bytes, shared) = sizes(task);
        let mut w = Writer {
            bytes: Vec::with_capacity(bytes),
            times: Vec::with_capacity(2 + task.items.len()),
            shared: Vec::with_capacity(shared),
        };
        w.str(&task.task_id);
        w.str(&task.session_id);
        w.str(&task.user_id);
        w.ts(&task.created_at);
        w.ts(&task.last_updated);
        w.u8(status_code(task.status));
        w.extra(&task.extra);
        w.len(task.items.len());
        for item in &task.items {
            w.str(&item.task_id);
            w.str(&item.request_id);
            w.u8(u8::from(item.role == Role::Assistant));
            w.u8(u8::from(item.item.content_type == ContentType::Image));
            w.shared.push(Shared::Text(Arc::clone(&item.item.content)));
            w.extra(&item.item.extra);
            w.ts(&item.updated);
            match &item.pending_tool_calls {
                None => w.u32(NONE),
                Some(calls) => {
                    w.len(calls.len());
                    for call in calls {
                        w.json(call);
                    }
                }
            }
            match &item.chat_history {
                None => w.u8(0),
                Some(history) => {
                    w.u8(1);
                    w.json(history);
                }
            }
            w.extra(&item.extra);
        }
        debug_assert_eq!((w.bytes.len(), w.shared.len()), (bytes, shared));
        Packed {
            bytes: w.bytes.into_boxed_slice(),
            times: w.times.into_boxed_slice(),
            shared: w.shared.into_boxed_slice(),
        }
    }

    /// Reads one word of every separate allocation the task refers to, up front. A store
    /// that holds many tasks finds most of them out of cache; touched together, their
    /// cache misses overlap instead of being paid one after another as the unpacking
    /// reaches each part.
    fn touch(&self) {
        let mut sum = self.bytes.first().copied().map_or(0, usize::from);
        sum += self.times.first().map_or(0, |t| usize::from(t.is_naive()));
        for value in self.shared.iter() {
            sum += match value {
                Shared::Text(text) => {
                    text.len() + text.as_bytes().first().map_or(0, |b| usize::from(*b))
                }
                Shared::Json(json) => {
                    json.as_str().len()
                        + json
                            .as_str()
                            .as_bytes()
                            .first()
                            .map_or(0, |b| usize::from(*b))
                }
            };
        }
        std::hint::black_box(sum);
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            bytes: &self.bytes,
            times: self.times.iter(),
            shared: self.shared.iter(),
        }
    }

    /// Unpacks the task: a new value, sharing only immutable contents with the store.
    pub(super) fn unpack(&self) -> Result<AgentTask, Malformed> {
        self.touch();
        let mut r = self.reader();
        let task_id = r.string()?;
        let session_id = r.string()?;
        let user_id = r.string()?;
        let created_at = r.ts()?;
        let last_updated = r.ts()?;
        let mut task = AgentTask::new(task_id, session_id, user_id, created_at);
        task.last_updated = last_updated;
        task.status = status_of(r.u8()?)?;
        task.extra = r.extra()?;
        let n = r.u32()? as usize;
        task.items.reserve_exact(n);
        for _ in 0..n {
            let item_task_id = r.string()?;
            let request_id = r.string()?;
            let role = if r.u8()? == 1 {
                Role::Assistant
            } else {
                Role::User
            };
            let image = r.u8()? == 1;
            let content = r.text()?;
            let mut body = if image {
                MultiModalItem::image(content)
            } else {
                MultiModalItem::text(content)
            };
            body.extra = r.extra()?;
            let updated = r.ts()?;
            let mut item = AgentTaskItem::new(item_task_id, request_id, role, body, updated);
            let calls = r.u32()?;
            if calls != NONE {
                let mut pending = Vec::with_capacity(calls as usize);
                for _ in 0..calls {
                    pending.push(r.json()?);
                }
                item.pending_tool_calls = Some(pending);
            }
            if r.u8()? == 1 {
                item.chat_history = Some(r.json()?);
            }
            item.extra = r.extra()?;
            task.items.push(item);
        }
        Ok(task)
    }

    /// The fields a listing orders, filters and summarises a task by, read from the
    /// front of the buffer without unpacking the task (or touching its contents).
    pub(super) fn head(&self) -> Result<Head<'_>, Malformed> {
        let mut r = self.reader();
        let task_id = r.str()?;
        let session_id = r.str()?;
        let user_id = r.str()?;
        let created_at = r.ts()?;
        let last_updated = r.ts()?;
        let status = status_of(r.u8()?)?;
        skip_extra(&mut r)?;
        let item_count = r.u32()?;
        Ok(Head {
            task_id,
            session_id,
            user_id,
            created_at,
            last_updated,
            status,
            item_count,
        })
    }

    /// `created_at` (as [`Timestamp::utc_micros`]) and the distinct request ids, read
    /// without unpacking the task.
    pub(super) fn index_keys(&self) -> Result<(i64, Vec<&str>), Malformed> {
        self.touch();
        let mut r = self.reader();
        for _ in 0..3 {
            r.str()?;
        }
        let created = r.ts()?.utc_micros();
        r.ts()?;
        r.u8()?;
        skip_extra(&mut r)?;
        let n = r.u32()? as usize;
        let mut ids: Vec<&str> = Vec::with_capacity(n);
        for _ in 0..n {
            r.str()?;
            ids.push(r.str()?);
            r.take(2)?;
            r.text()?;
            skip_extra(&mut r)?;
            r.ts()?;
            let calls = r.u32()?;
            if calls != NONE {
                for _ in 0..calls {
                    r.json()?;
                }
            }
            if r.u8()? == 1 {
                r.json()?;
            }
            skip_extra(&mut r)?;
        }
        Ok((created, distinct_in_order(ids)))
    }
}

#[cfg(test)]
impl Packed {
    /// Makes the buffer unreadable, as a bug in this module would.
    pub(super) fn break_for_test(&mut self) {
        self.bytes = Box::new([]);
    }
}

fn skip_extra(r: &mut Reader<'_>) -> Result<(), Malformed> {
    for _ in 0..r.u32()? {
        r.str()?;
        r.json()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rich_task() -> AgentTask {
        let text = include_str!("../../../tests/fixtures/wire/canonical/hitl_chat_history.json");
        AgentTask::from_json(text).unwrap()
    }

    #[test]
    fn packing_round_trips_every_fixture() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/wire/canonical"
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let task = AgentTask::from_json(&text).unwrap();
            let back = Packed::pack(&task).unpack().unwrap();
            assert_eq!(back, task, "{}", path.display());
            assert_eq!(back.to_json(), text, "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 10);
    }

    #[test]
    fn index_keys_match_the_task() {
        let mut task = rich_task();
        task.items.push(task.items[0].clone());
        let packed = Packed::pack(&task);
        let (created, ids) = packed.index_keys().unwrap();
        assert_eq!(created, task.created_at.utc_micros());
        assert_eq!(ids, task.request_ids());
    }

    #[test]
    fn the_head_matches_the_task() {
        let task = rich_task();
        let packed = Packed::pack(&task);
        let head = packed.head().unwrap();
        assert_eq!(
            (head.task_id, head.session_id, head.user_id),
            (
                task.task_id.as_str(),
                task.session_id.as_str(),
                task.user_id.as_str()
            )
        );
        assert_eq!(head.created_at, task.created_at);
        assert_eq!(head.last_updated, task.last_updated);
        assert_eq!(head.status, task.status);
        assert_eq!(head.item_count as usize, task.items.len());
    }

    #[test]
    fn every_status_packs_and_unpacks() {
        let mut task = rich_task();
        for code in 0..=u8::MAX {
            let Some(status) = TaskStatus::from_ordinal(code) else {
                assert!(code >= 5, "code {code}");
                continue;
            };
            task.status = status;
            assert_eq!(Packed::pack(&task).unpack().unwrap().status, status);
        }
        let mut packed = Packed::pack(&task);
        // The status byte follows the three ids.
        let at = 12 + task.task_id.len() + task.session_id.len() + task.user_id.len();
        let mut bytes = packed.bytes.to_vec();
        bytes[at] = 5;
        packed.bytes = bytes.into_boxed_slice();
        assert!(packed.unpack().is_err());
    }

    #[test]
    fn index_keys_are_distinct_in_first_seen_order_at_any_size() {
        let mut task = rich_task();
        let template = task.items[0].clone();
        task.items.clear();
        for n in 0..3000 {
            let mut item = template.clone();
            item.request_id = format!("r{}", (n * 7) % 1000);
            task.items.push(item);
        }
        let packed = Packed::pack(&task);
        let (_, ids) = packed.index_keys().unwrap();
        assert_eq!(ids.len(), 1000);
        assert_eq!(ids, task.request_ids());
        assert_eq!(&ids[..3], ["r0", "r7", "r14"]);
    }

    #[test]
    fn unknown_fields_and_offsets_survive() {
        let text = r#"{"task_id":"t","session_id":"s","user_id":"u","items":[{"task_id":"t","request_id":"r","role":"assistant","item":{"content_type":"image","content":"data:x","z":1},"updated":"2025-01-01T00:00:00.500000-09:30","pending_tool_calls":[{"a":1},{"b":[2]}],"chat_history":{"messages":[]},"y":null}],"created_at":"2025-01-01T00:00:00","last_updated":"2025-01-02T00:00:00Z","status":"Canceled","x":"kept"}"#;
        let task = AgentTask::from_json(text).unwrap();
        let back = Packed::pack(&task).unpack().unwrap();
        assert_eq!(back.to_json(), text);
    }

    #[test]
    fn a_copy_shares_contents_but_not_ids() {
        let task = rich_task();
        let packed = Packed::pack(&task);
        let a = packed.unpack().unwrap();
        assert!(Arc::ptr_eq(
            &a.items[0].item.content,
            &task.items[0].item.content
        ));
        assert_ne!(a.task_id.as_ptr(), task.task_id.as_ptr());
    }
}
