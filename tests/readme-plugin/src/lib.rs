//! My store: a complete task store that keeps tasks in memory.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::{
    async_trait, validate_id, validate_task_ids, AgentTask, BoxError, ETag, Operation, Page,
    PageRequest, PersistenceError, Result, TaskFilter, TaskPersistenceManager, TaskSummary,
    Versioned,
};

/// Tasks in a map, each with the version number its ETag is made of.
#[derive(Debug, Default)]
pub struct MyStore {
    tasks: Mutex<HashMap<String, (AgentTask, u64)>>,
    version: AtomicU64,
}

impl FromConfig for MyStore {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        // Read your TA_* variables here; reject a malformed one with an error naming it.
        if let Some(v) = config.get("TA_MY_STORE_CAPACITY") {
            v.parse::<usize>()
                .map_err(|_| format!("TA_MY_STORE_CAPACITY={v:?} is not a number"))?;
        }
        tracing::info!("my store is ready");
        Ok(Self::default())
    }
}

impl MyStore {
    /// A version number never used before: a write's new ETag.
    fn next(&self) -> u64 {
        self.version.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (AgentTask, u64)>> {
        // No method panics while holding the lock, so the map is always whole.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn not_found(op: Operation, id: &str) -> PersistenceError {
    PersistenceError::not_found(op, id)
}

#[async_trait]
impl TaskPersistenceManager for MyStore {
    async fn create(&self, task: AgentTask) -> Result<()> {
        validate_task_ids(Operation::Create, &task)?;
        let version = self.next();
        let mut tasks = self.lock();
        if tasks.contains_key(&task.task_id) {
            return Err(PersistenceError::already_exists(
                Operation::Create,
                task.task_id,
            ));
        }
        tasks.insert(task.task_id.clone(), (task, version));
        Ok(())
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::Load, "task id", task_id)?;
        Ok(self.lock().get(task_id).map(|(t, _)| t.clone()))
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        validate_task_ids(Operation::Update, &task)?;
        let version = self.next();
        let mut tasks = self.lock();
        let slot = tasks
            .get_mut(&task.task_id)
            .ok_or_else(|| not_found(Operation::Update, &task.task_id))?;
        *slot = (task, version);
        Ok(())
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        validate_id(Operation::Delete, "task id", task_id)?;
        let removed = self.lock().remove(task_id);
        removed
            .map(drop)
            .ok_or_else(|| not_found(Operation::Delete, task_id))
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::LoadByRequestId, "request id", request_id)?;
        let tasks = self.lock();
        // The first created wins: smallest created_at, then smallest task id.
        Ok(tasks
            .values()
            .map(|(t, _)| t)
            .filter(|t| t.items.iter().any(|i| i.request_id == request_id))
            .min_by_key(|t| (t.created_at.utc_micros(), &t.task_id))
            .cloned())
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        validate_id(Operation::Load, "task id", task_id)?;
        let tasks = self.lock();
        Ok(tasks
            .get(task_id)
            .map(|(t, v)| Versioned::new(t.clone(), ETag::new(v.to_string()))))
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        validate_task_ids(Operation::Update, &task)?;
        let version = self.next();
        let mut tasks = self.lock();
        let slot = tasks
            .get_mut(&task.task_id)
            .ok_or_else(|| not_found(Operation::Update, &task.task_id))?;
        if slot.1.to_string() != etag.as_str() {
            return Err(PersistenceError::conflict(
                Operation::Update,
                task.task_id,
                etag.to_string(),
            ));
        }
        *slot = (task, version);
        Ok(ETag::new(version.to_string()))
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }

    async fn clear(&self) -> Result<u64> {
        let mut tasks = self.lock();
        let n = tasks.len() as u64;
        tasks.clear();
        Ok(n)
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let after = page.start_after(filter)?; // checks the size and the cursor
        let tasks = self.lock();
        // A sort of every match per page: fine for a small store; keep an ordered
        // index when pages must cost their size only.
        let mut matching: Vec<TaskSummary> = tasks
            .values()
            .map(|(t, _)| TaskSummary::of_task(t))
            .filter(|s| filter.matches_summary(s))
            .filter(|s| after.as_ref().is_none_or(|a| s.key() > *a))
            .collect();
        matching.sort_by_key(TaskSummary::key);
        Ok(Page::from_ordered(matching, filter, page.size()))
    }

    async fn purge(&self) -> Result<u64> {
        Ok(0) // this store has no retention policy: nothing ever expires
    }
}

ta_persistence_api::export_plugin! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    managers: [MyStore], // the class name is the type's name
}

#[cfg(test)]
mod tests {
    use ta_persistence_api::conformance::{run_suite, typed};

    #[tokio::test(flavor = "multi_thread")]
    async fn conforms() {
        let report = run_suite(|| async { typed(super::MyStore::default()) }, None).await;
        assert!(report.is_success(), "{report}");
    }
}
