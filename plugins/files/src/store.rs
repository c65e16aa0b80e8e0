//! `FileTaskPersistenceManager`: the plugin's interface code. It reads its settings
//! ([`FromConfig`]) and runs each [`DocumentStore`] call as a blocking call on the
//! plugin's runtime, so the host's threads never wait for the disk.

use std::path::PathBuf;
use std::sync::Arc;

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::retention::{RetentionPolicy, RETENTION_VAR};
use ta_persistence_api::runtime::PluginRuntime;
use ta_persistence_api::{
    async_trait, BoxError, DocumentStore, ETag, Operation, Page, PageRequest, Result, TaskDocument,
    TaskFilter, Versioned,
};

use crate::dir::TaskDir;

/// The directory the tasks live in (required).
pub const DIR_VAR: &str = "TA_FILES_DIR";
/// How many file operations may run at once (default 8).
pub const THREADS_VAR: &str = "TA_FILES_THREADS";

/// A durable task store, one file per task, exported as class
/// `FileTaskPersistenceManager`.
#[derive(Debug)]
pub struct FileTaskPersistenceManager {
    dir: Arc<TaskDir>,
    // Last: dropped after everything that runs on it.
    runtime: PluginRuntime,
}

impl FromConfig for FileTaskPersistenceManager {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        let dir = config
            .get(DIR_VAR)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("{DIR_VAR} is not set: name the directory to keep tasks in"))?;
        let threads = match config.get(THREADS_VAR) {
            None => 8,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=512).contains(n))
                .ok_or_else(|| format!("{THREADS_VAR}={v:?} is not a number from 1 to 512"))?,
        };
        // This example keeps tasks until they are deleted: refuse a policy rather than
        // ignore it.
        if !RetentionPolicy::from_config(config)?.is_empty() {
            return Err(
                format!("{RETENTION_VAR} is set, and the file store has no retention").into(),
            );
        }
        Self::open(PathBuf::from(dir), threads)
    }
}

impl FileTaskPersistenceManager {
    /// Opens (or creates) a store in `dir`, running at most `threads` file operations
    /// at once.
    pub fn open(dir: PathBuf, threads: usize) -> std::result::Result<Self, BoxError> {
        let tasks = TaskDir::open(&dir).map_err(|e| {
            format!(
                "{DIR_VAR}={:?}: cannot open the directory: {e}",
                dir.display()
            )
        })?;
        // The work is blocking file I/O: one async worker is plenty.
        let runtime = PluginRuntime::builder("ta-files")
            .workers(1)
            .max_blocking_threads(threads)
            .build()?;
        tracing::info!(dir = %dir.display(), "file store ready");
        Ok(Self {
            dir: Arc::new(tasks),
            runtime,
        })
    }

    /// Runs `call` on the task directory, on a blocking thread of the plugin's runtime.
    async fn run<T: Send + 'static>(
        &self,
        op: Operation,
        id: &str,
        call: impl FnOnce(&TaskDir) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let dir = Arc::clone(&self.dir);
        self.runtime.run_blocking(op, id, move || call(&dir)).await
    }
}

#[async_trait]
impl DocumentStore for FileTaskPersistenceManager {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.run(Operation::Create, &id, move |d| d.insert(&doc))
            .await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        let id = task_id.to_owned();
        let found = self.run(Operation::Load, task_id, move |d| d.get(&id));
        Ok(found.await?.map(|v| v.value))
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        let replaced = self.run(Operation::Update, &id, move |d| d.replace(&doc, None));
        replaced.await.map(drop)
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        let id = task_id.to_owned();
        self.run(Operation::Delete, task_id, move |d| d.remove(&id))
            .await
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let id = request_id.to_owned();
        self.run(Operation::LoadByRequestId, request_id, move |d| d.find(&id))
            .await
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let id = task_id.to_owned();
        self.run(Operation::Load, task_id, move |d| d.get(&id))
            .await
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let (id, etag) = (doc.task_id().to_owned(), etag.clone());
        self.run(Operation::Update, &id, move |d| {
            d.replace(&doc, Some(&etag))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run(Operation::Health, "", TaskDir::ping).await
    }

    async fn remove_all(&self) -> Result<u64> {
        self.run(Operation::Clear, "", TaskDir::remove_all).await
    }

    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let (filter, page) = (filter.clone(), page.clone());
        self.run(Operation::List, "", move |d| d.list(&filter, &page))
            .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        Ok(0) // no retention (a policy is refused at start-up): nothing expires
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ta_persistence_api::conformance::run_suite;
    use ta_persistence_api::DocumentManager;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> PluginConfig {
        PluginConfig::new(vars.iter().copied())
    }

    #[test]
    fn a_retention_policy_is_refused_not_ignored() {
        let err = FileTaskPersistenceManager::from_config(&config(&[
            (DIR_VAR, "/nonexistent"),
            (RETENTION_VAR, "completed=1d"),
        ]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains(RETENTION_VAR), "{err}");
    }

    #[test]
    fn a_missing_or_malformed_setting_is_an_error_naming_it() {
        let err = FileTaskPersistenceManager::from_config(&config(&[])).unwrap_err();
        assert!(err.to_string().contains(DIR_VAR), "{err}");
        let err = FileTaskPersistenceManager::from_config(&config(&[
            (DIR_VAR, "."),
            (THREADS_VAR, "lots"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("TA_FILES_THREADS=\"lots\""),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_passes_the_conformance_suite() {
        let root =
            std::env::temp_dir().join(format!("ta-plugin-files-suite-{}", std::process::id()));
        let mut case = 0;
        let report = run_suite(
            || {
                case += 1;
                let dir = root.join(case.to_string());
                async move {
                    let store = FileTaskPersistenceManager::open(dir, 8).unwrap();
                    Arc::new(store) as Arc<dyn DocumentManager>
                }
            },
            None,
        )
        .await;
        let _ = std::fs::remove_dir_all(&root);
        assert!(report.is_success(), "{report}");
    }

    /// Lines of code in a file before its tests (and doctests): not blank, not a comment.
    fn code_lines(path: &str) -> usize {
        let text =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
                .unwrap();
        text.lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]") && !l.starts_with("#[cfg(doctest)]"))
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .count()
    }

    #[test]
    fn the_readme_states_the_interface_line_count() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let interface = code_lines("src/lib.rs") + code_lines("src/store.rs");
        assert!(
            readme.contains(&format!("## Interface code: {interface} lines")),
            "the interface code is {interface} lines; update the README"
        );
        let storage = code_lines("src/dir.rs");
        assert!(
            readme.contains(&format!("`src/dir.rs`, is {storage})")),
            "the storage is {storage} lines; update the README"
        );
    }
}
