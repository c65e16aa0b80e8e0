//! `TaskDir`: the durable, blocking part of the store: one file per task in a directory.
//!
//! A task's file is named after the SHA-256 of its task id (ids may be 1024 bytes of any
//! text; file names may not) and holds one header line, `ta-files 1 <etag>`, followed by
//! the task's JSON exactly as the host sent it. The ETag is `<incarnation>-<version>`: the
//! incarnation is random, chosen at `create`, so a task deleted and created again never
//! repeats an ETag of its earlier life; the version counts the writes since.
//!
//! Every write goes to a temporary file in the same directory, which is flushed to disk
//! (`fsync`) and renamed over the task's file; then the directory itself is flushed, so
//! the rename survives a power cut. A reader sees the old file or the new one, never a
//! half-written one. Writes are serialised by one lock: a directory is for one store.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind as IoKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use ta_persistence_api::{
    ETag, Operation, Outcome, Page, PageRequest, PersistenceError, Result, TaskDocument,
    TaskFilter, TaskSummary, Versioned,
};

/// The first word of every task file, and the format's version.
const MAGIC: &str = "ta-files 1";
/// Task files end in this; anything else in the directory is not ours and is left alone.
const SUFFIX: &str = ".task";
/// Temporary files start with this; leftovers of a crash are removed at open.
const TEMP_PREFIX: &str = ".tmp-";

/// A directory of task files. See the module doc.
#[derive(Debug)]
pub(crate) struct TaskDir {
    path: PathBuf,
    /// Held by every write, so a check and the write it guards are one step.
    writer: Mutex<()>,
    /// Random, so that temporary file names never collide with another store's.
    instance: u64,
    /// Makes temporary file names unique within the store.
    temp_counter: AtomicU64,
}

/// A task file's content: its ETag and its document.
struct Stored {
    etag: ETag,
    doc: TaskDocument,
}

impl TaskDir {
    /// Opens (and creates, if needed) the directory, and removes temporary files a crash
    /// left behind.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        fs::create_dir_all(path)?;
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(TaskDir {
            path: path.to_owned(),
            writer: Mutex::new(()),
            instance: random(),
            temp_counter: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data, only the order of writes: a poisoned one is still good.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn file_of(&self, task_id: &str) -> PathBuf {
        let digest = Sha256::digest(task_id.as_bytes());
        let mut name = String::with_capacity(digest.len() * 2 + SUFFIX.len());
        for byte in digest {
            name.push_str(&format!("{byte:02x}"));
        }
        name.push_str(SUFFIX);
        self.path.join(name)
    }

    /// Reads a task file; `None` if there is none. `op` and `id` name the operation in
    /// errors.
    fn read(&self, path: &Path, op: Operation, id: &str) -> Result<Option<Stored>> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(op, id, path, e)),
        };
        let corrupt =
            |why: String| PersistenceError::corrupt(op, id, format!("{}: {why}", path.display()));
        let text = String::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
        let (header, json) = text
            .split_once('\n')
            .ok_or_else(|| corrupt("no header line".into()))?;
        let etag = header
            .strip_prefix(MAGIC)
            .and_then(|rest| rest.strip_prefix(' '))
            .filter(|tag| parse_etag(tag).is_some())
            .ok_or_else(|| corrupt(format!("not a task file header: {header:?}")))?;
        let etag = ETag::new(etag);
        let doc = TaskDocument::from_json(json.to_owned()).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(Stored { etag, doc }))
    }

    /// Writes a task file durably (see the module doc).
    fn write(&self, op: Operation, doc: &TaskDocument, etag: &ETag) -> Result<()> {
        let id = doc.task_id();
        let target = self.file_of(id);
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .path
            .join(format!("{TEMP_PREFIX}{:016x}-{n}", self.instance));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(format!("{MAGIC} {etag}\n").as_bytes())?;
            file.write_all(doc.json().as_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, &target)
        })();
        if let Err(e) = written {
            // Best effort: a leftover is removed at the next open anyway.
            let _ = fs::remove_file(&temp);
            return Err(io_error(op, id, &target, e));
        }
        self.sync_dir(op, id)
    }

    /// Flushes the directory, so renames and removals in it survive a power cut.
    fn sync_dir(&self, op: Operation, id: &str) -> Result<()> {
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io_error(op, id, &self.path, e))
    }

    /// Every task file in the directory.
    fn task_files(&self, op: Operation, id: &str) -> Result<Vec<PathBuf>> {
        let entries = fs::read_dir(&self.path).map_err(|e| io_error(op, id, &self.path, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(op, id, &self.path, e))?;
            if entry.file_name().to_string_lossy().ends_with(SUFFIX) {
                files.push(entry.path());
            }
        }
        Ok(files)
    }

    /// Reads a task, checking that the file found by its name holds that task.
    fn load(&self, op: Operation, task_id: &str) -> Result<Option<Stored>> {
        let stored = self.read(&self.file_of(task_id), op, task_id)?;
        match stored {
            Some(s) if s.doc.task_id() != task_id => Err(PersistenceError::corrupt(
                op,
                task_id,
                format!("its file holds task {:?}", s.doc.task_id()),
            )),
            other => Ok(other),
        }
    }

    pub(crate) fn insert(&self, doc: &TaskDocument) -> Result<()> {
        let _writer = self.lock();
        let exists = self.file_of(doc.task_id()).try_exists();
        match exists {
            Ok(false) => self.write(Operation::Create, doc, &new_etag()),
            Ok(true) => Err(PersistenceError::already_exists(
                Operation::Create,
                doc.task_id(),
            )),
            Err(e) => Err(io_error(
                Operation::Create,
                doc.task_id(),
                &self.file_of(doc.task_id()),
                e,
            )),
        }
    }

    pub(crate) fn get(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        Ok(self
            .load(Operation::Load, task_id)?
            .map(|s| Versioned::new(s.doc, s.etag)))
    }

    /// Replaces a stored task, only if it still has `expected` when one is given.
    pub(crate) fn replace(&self, doc: &TaskDocument, expected: Option<&ETag>) -> Result<ETag> {
        let op = Operation::Update;
        let _writer = self.lock();
        let Some(current) = self.load(op, doc.task_id())? else {
            return Err(PersistenceError::not_found(op, doc.task_id()));
        };
        if let Some(expected) = expected {
            if *expected != current.etag {
                return Err(PersistenceError::conflict(
                    op,
                    doc.task_id(),
                    expected.to_string(),
                ));
            }
        }
        let etag = next_etag(&current.etag);
        self.write(op, doc, &etag)?;
        Ok(etag)
    }

    pub(crate) fn remove(&self, task_id: &str) -> Result<()> {
        let op = Operation::Delete;
        let _writer = self.lock();
        let path = self.file_of(task_id);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(op, task_id),
            Err(e) if e.kind() == IoKind::NotFound => Err(PersistenceError::not_found(op, task_id)),
            Err(e) => Err(io_error(op, task_id, &path, e)),
        }
    }

    /// The first-created task holding `request_id`, by reading every task file: a cost
    /// proportional to the store's size, which is fine for an example and nothing more.
    pub(crate) fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let op = Operation::LoadByRequestId;
        let mut best: Option<TaskDocument> = None;
        for path in self.task_files(op, request_id)? {
            // A file removed since the listing is simply gone.
            let Some(stored) = self.read(&path, op, request_id)? else {
                continue;
            };
            let doc = stored.doc;
            if !doc.request_ids().iter().any(|r| r == request_id) {
                continue;
            }
            let earlier = best.as_ref().is_none_or(|b| {
                (doc.created_at_micros(), doc.task_id()) < (b.created_at_micros(), b.task_id())
            });
            if earlier {
                best = Some(doc);
            }
        }
        Ok(best)
    }

    /// One page of `filter`'s listing, by reading every task file (like `find`, a cost
    /// proportional to the store's size).
    pub(crate) fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let op = Operation::List;
        let after = page.start_after(filter)?;
        let mut matching = Vec::new();
        for path in self.task_files(op, "")? {
            let Some(stored) = self.read(&path, op, "")? else {
                continue;
            };
            let id = stored.doc.task_id().to_owned();
            let summary = TaskSummary::from_json(stored.doc.json())
                .map_err(|e| PersistenceError::corrupt(op, &id, e))?;
            if filter.matches_summary(&summary) && after.as_ref().is_none_or(|a| summary.key() > *a)
            {
                matching.push(summary);
            }
        }
        matching.sort_by_key(TaskSummary::key);
        Ok(Page::from_ordered(matching, filter, page.size()))
    }

    pub(crate) fn ping(&self) -> Result<()> {
        let op = Operation::Health;
        let meta = fs::metadata(&self.path).map_err(|e| io_error(op, "", &self.path, e))?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(PersistenceError::unavailable(
                op,
                "",
                format!("{} is not a directory", self.path.display()),
                Outcome::NotApplied,
            ))
        }
    }

    pub(crate) fn remove_all(&self) -> Result<u64> {
        let op = Operation::Clear;
        let _writer = self.lock();
        let mut removed = 0;
        for path in self.task_files(op, "")? {
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(io_error(op, "", &path, e)),
            }
        }
        self.sync_dir(op, "")?;
        Ok(removed)
    }
}

/// An I/O failure, naming the file.
fn io_error(op: Operation, id: &str, path: &Path, err: io::Error) -> PersistenceError {
    PersistenceError::backend(op, id, format!("{}: {err}", path.display()))
}

/// 64 random bits.
fn random() -> u64 {
    // `RandomState` is seeded from the OS's random source: enough to tell lives apart.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// The ETag of a newly created task: a random incarnation, version 1.
fn new_etag() -> ETag {
    ETag::new(format!("{:016x}-1", random()))
}

/// The ETag after one more write of the same incarnation.
fn next_etag(current: &ETag) -> ETag {
    match parse_etag(current.as_str()) {
        Some((incarnation, version)) => ETag::new(format!("{incarnation}-{}", version + 1)),
        // `read` accepts only well-formed ETags, so this is not reached; a new
        // incarnation would still be a correct answer.
        None => new_etag(),
    }
}

/// Splits `<incarnation>-<version>`.
fn parse_etag(tag: &str) -> Option<(&str, u64)> {
    let (incarnation, version) = tag.split_once('-')?;
    let hex = incarnation.len() == 16 && incarnation.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then_some(())?;
    Some((incarnation, version.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ta_persistence_api::{AgentTask, AgentTaskItem, ErrorKind, Timestamp};

    /// A fresh directory under the system's temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "ta-plugin-files-{name}-{}-{}",
                std::process::id(),
                new_etag()
            ));
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn doc(id: &str, request_id: &str) -> TaskDocument {
        let mut task = AgentTask::new(id, "s", "u", Timestamp::now_utc());
        task.items.push(AgentTaskItem::new(
            id,
            request_id,
            ta_persistence_api::Role::User,
            ta_persistence_api::MultiModalItem::text("hello"),
            Timestamp::now_utc(),
        ));
        TaskDocument::from_task(&task)
    }

    #[test]
    fn tasks_and_etags_survive_reopening_the_directory() {
        let scratch = Scratch::new("reopen");
        let first = TaskDir::open(&scratch.0).unwrap();
        let d = doc("t1", "r1");
        first.insert(&d).unwrap();
        let etag = first.replace(&d, None).unwrap();
        drop(first);
        let again = TaskDir::open(&scratch.0).unwrap();
        let v = again.get("t1").unwrap().unwrap();
        assert_eq!(v.value.json(), d.json());
        assert_eq!(v.etag, etag);
        assert_eq!(again.find("r1").unwrap().unwrap().task_id(), "t1");
    }

    #[test]
    fn a_task_created_again_after_delete_never_repeats_an_etag() {
        let scratch = Scratch::new("incarnation");
        let dir = TaskDir::open(&scratch.0).unwrap();
        let d = doc("t", "r");
        dir.insert(&d).unwrap();
        let old = dir.get("t").unwrap().unwrap().etag;
        dir.remove("t").unwrap();
        dir.insert(&d).unwrap();
        let err = dir.replace(&d, Some(&old)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    }

    #[test]
    fn leftover_temporary_files_are_removed_and_foreign_files_left_alone() {
        let scratch = Scratch::new("leftovers");
        fs::create_dir_all(&scratch.0).unwrap();
        fs::write(scratch.0.join(".tmp-1-0"), "half a task").unwrap();
        fs::write(scratch.0.join("notes.txt"), "mine").unwrap();
        let dir = TaskDir::open(&scratch.0).unwrap();
        assert!(!scratch.0.join(".tmp-1-0").exists());
        assert_eq!(dir.remove_all().unwrap(), 0);
        assert_eq!(
            fs::read_to_string(scratch.0.join("notes.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_damaged_file_is_corrupt_and_stays_in_place() {
        let scratch = Scratch::new("damaged");
        let dir = TaskDir::open(&scratch.0).unwrap();
        dir.insert(&doc("t", "r")).unwrap();
        let path = dir.file_of("t");
        let mut text = fs::read_to_string(&path).unwrap();
        text.truncate(text.len() / 2);
        fs::write(&path, &text).unwrap();
        let err = dir.get("t").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert_eq!(err.id(), "t");
        assert!(
            err.report().contains(&path.display().to_string()),
            "{}",
            err.report()
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        fs::write(&path, format!("something else\n{}", doc("t", "r").json())).unwrap();
        assert_eq!(dir.get("t").unwrap_err().kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn a_file_holding_another_task_is_corrupt() {
        let scratch = Scratch::new("misplaced");
        let dir = TaskDir::open(&scratch.0).unwrap();
        dir.insert(&doc("a", "r")).unwrap();
        fs::rename(dir.file_of("a"), dir.file_of("b")).unwrap();
        let err = dir.get("b").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }
}
