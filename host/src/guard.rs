//! `GuardedManager`: a plugin's manager as the host serves it, with a deadline on every
//! call and each answer checked against the question.
//!
//! A plugin is foreign code: it can hang (a lost connection it never gives up on) or
//! answer wrongly (a `load("a")` that returns task `b`). Neither may reach the
//! application as a success, so the factory wraps every plugin manager in this adapter:
//!
//! - **Deadline.** Every call that does not finish within the deadline
//!   (`TA_PERSISTENCE_TIMEOUT_MS`) fails with [`PersistenceError::Timeout`] naming the
//!   operation and id, and the plugin's future is dropped. The outcome of a *write* that
//!   timed out is unknown: the plugin may have applied it, or may still apply it. The
//!   deadline covers a future that does not complete; it cannot interrupt a plugin that
//!   blocks its thread inside a single poll (that is a bug in the plugin, which blocks one
//!   of the application's worker threads until it returns).
//! - **Answers.** `load` and `load_with_etag` must return the task asked for, and
//!   `load_by_request_id` a task holding an item with that request id; anything else is a
//!   [`PersistenceError::Plugin`] naming both ids. The document methods check the
//!   document's indexed fields (no parsing); the typed methods check the decoded task,
//!   which also catches a document whose fields disagree with its JSON. A `list_tasks`
//!   page must hold no more tasks than asked for, each matching the filter, in strictly
//!   increasing listing order after the request's cursor, and its `next` cursor must be
//!   this filter's and resume after the page's last task (one pass over the page).
//!
//! The deadline works on any executor and follows the system's monotonic clock (not a
//! paused tokio clock): it is kept by the SDK's [`deadline`](ta_persistence_api::deadline)
//! thread, which a call that waits wakes only when its deadline comes before all others,
//! where a tokio timer per call would wake a thread of the caller's runtime each time.

use std::future::Future;
use std::time::Duration;

use ta_persistence_api::async_trait;
use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::{
    AgentTask, DocumentManager, ETag, Operation, Page, PageRequest, PersistenceError, Result,
    TaskDocument, TaskFilter, TaskPersistenceManager, Versioned,
};
use tracing::warn;

/// A manager whose every call has a deadline and whose answers are checked (see the
/// module doc).
pub struct GuardedManager<M = ForeignManager> {
    inner: M,
    label: String,
    deadline: Duration,
}

impl<M> std::fmt::Debug for GuardedManager<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedManager")
            .field("label", &self.label)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<M: TaskPersistenceManager> GuardedManager<M> {
    /// Wraps `inner`; `label` names it in errors and logs (e.g. `plugin-name/ClassName`).
    pub fn new(inner: M, label: impl Into<String>, deadline: Duration) -> Self {
        GuardedManager {
            inner,
            label: label.into(),
            deadline,
        }
    }

    /// The deadline on each call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The wrapped manager.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// Runs one call under the deadline.
    async fn within<T>(
        &self,
        op: Operation,
        id: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match deadline(self.deadline, call).await {
            Ok(result) => result,
            Err(_elapsed) => {
                // An abandoned write may still be applied by the plugin: its outcome is
                // unknown, and the error says so (`Outcome::of_unanswered`).
                warn!(plugin = %self.label, op = %op, id = ?id, after_ms = self.deadline.as_millis(), "plugin call did not finish in time; abandoned");
                Err(PersistenceError::timeout(op, id, self.deadline))
            }
        }
    }

    /// A `Plugin` error for an answer that is not about what was asked.
    fn wrong_answer(&self, op: Operation, asked: &str, what: String) -> PersistenceError {
        warn!(plugin = %self.label, op = %op, id = ?asked, "{what}");
        PersistenceError::plugin(
            op,
            asked,
            format!("{} broke the interface contract: {what}", self.label),
        )
    }

    fn check_task_id(&self, op: Operation, asked: &str, got: &str) -> Result<()> {
        if got == asked {
            return Ok(());
        }
        Err(self.wrong_answer(
            op,
            asked,
            format!("asked for task {asked:?}, it returned task {got:?}"),
        ))
    }

    fn check_request_id(
        &self,
        asked: &str,
        task_id: &str,
        mut request_ids: impl Iterator<Item = impl AsRef<str>>,
    ) -> Result<()> {
        if request_ids.any(|r| r.as_ref() == asked) {
            return Ok(());
        }
        Err(self.wrong_answer(
            Operation::LoadByRequestId,
            asked,
            format!("asked for request id {asked:?}, it returned task {task_id:?}, which holds no item with that request id"),
        ))
    }
}

impl<M: TaskPersistenceManager> GuardedManager<M> {
    /// Checks a listing page against its request, in one pass over the page: no more
    /// tasks than asked for, each matching the filter, in strictly increasing listing
    /// order starting after the request's cursor, and a `next` cursor that is this
    /// filter's and resumes after the page's last task.
    fn check_page(&self, filter: &TaskFilter, page: &PageRequest, answer: &Page) -> Result<()> {
        let wrong = |what: String| Err(self.wrong_answer(Operation::List, "", what));
        if answer.tasks.len() > page.size() as usize {
            return wrong(format!(
                "asked for a page of at most {} tasks, it returned {}",
                page.size(),
                answer.tasks.len()
            ));
        }
        // A cursor the plugin accepted must be one of ours; if it is not, the plugin
        // should have refused it, and its page cannot be placed.
        let mut previous = match page.start_after(filter) {
            Ok(after) => after,
            Err(_) => {
                return wrong(
                    "it answered a page for a cursor that is not valid for this filter".to_owned(),
                )
            }
        };
        for summary in &answer.tasks {
            if !filter.matches_summary(summary) {
                return wrong(format!(
                    "it listed task {:?} (session {:?}, user {:?}, status {}), which the filter excludes",
                    summary.task_id,
                    summary.session_id,
                    summary.user_id,
                    summary.status.as_str()
                ));
            }
            let key = summary.key();
            if let Some(before) = &previous {
                if key <= *before {
                    return wrong(format!(
                        "it listed task {:?} after task {:?}, out of listing order (newest created first, then task id descending, each once)",
                        key.task_id, before.task_id
                    ));
                }
            }
            previous = Some(key);
        }
        if let Some(next) = &answer.next {
            if answer.tasks.is_empty() {
                // A caller following it would ask for the same page again, forever.
                return wrong("it returned an empty page with a next cursor".to_owned());
            }
            let Ok(resume) = next.decode(filter, Operation::List) else {
                return wrong("its next cursor is not one for this filter".to_owned());
            };
            if previous.as_ref() != Some(&resume) {
                return wrong(format!(
                    "its next cursor resumes after task {:?}, not after the page's last task",
                    resume.task_id
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<M: TaskPersistenceManager> TaskPersistenceManager for GuardedManager<M> {
    async fn create(&self, task: AgentTask) -> Result<()> {
        let id = task.task_id.clone();
        self.within(Operation::Create, &id, self.inner.create(task))
            .await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        let found = self
            .within(Operation::Load, task_id, self.inner.load(task_id))
            .await?;
        if let Some(task) = &found {
            self.check_task_id(Operation::Load, task_id, &task.task_id)?;
        }
        Ok(found)
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        let id = task.task_id.clone();
        self.within(Operation::Update, &id, self.inner.update(task))
            .await
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        self.within(Operation::Delete, task_id, self.inner.delete(task_id))
            .await
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        let op = Operation::LoadByRequestId;
        let found = self
            .within(op, request_id, self.inner.load_by_request_id(request_id))
            .await?;
        if let Some(task) = &found {
            let held = task.items.iter().map(|item| item.request_id.as_str());
            self.check_request_id(request_id, &task.task_id, held)?;
        }
        Ok(found)
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        let found = self
            .within(Operation::Load, task_id, self.inner.load_with_etag(task_id))
            .await?;
        if let Some(v) = &found {
            self.check_task_id(Operation::Load, task_id, &v.value.task_id)?;
        }
        Ok(found)
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        let id = task.task_id.clone();
        self.within(
            Operation::Update,
            &id,
            self.inner.update_if_match(task, etag),
        )
        .await
    }

    async fn health(&self) -> Result<()> {
        self.within(Operation::Health, "", self.inner.health())
            .await
    }

    async fn clear(&self) -> Result<u64> {
        self.within(Operation::Clear, "", self.inner.clear()).await
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let answer = self
            .within(Operation::List, "", self.inner.list_tasks(filter, page))
            .await?;
        self.check_page(filter, page, &answer)?;
        Ok(answer)
    }

    async fn purge(&self) -> Result<u64> {
        self.within(Operation::Purge, "", self.inner.purge()).await
    }
}

#[async_trait]
impl<M: DocumentManager> DocumentManager for GuardedManager<M> {
    async fn create_document(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.within(Operation::Create, &id, self.inner.create_document(doc))
            .await
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        let found = self
            .within(Operation::Load, task_id, self.inner.load_document(task_id))
            .await?;
        if let Some(doc) = &found {
            self.check_task_id(Operation::Load, task_id, doc.task_id())?;
        }
        Ok(found)
    }

    async fn update_document(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.within(Operation::Update, &id, self.inner.update_document(doc))
            .await
    }

    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let op = Operation::LoadByRequestId;
        let found = self
            .within(
                op,
                request_id,
                self.inner.load_document_by_request_id(request_id),
            )
            .await?;
        if let Some(doc) = &found {
            self.check_request_id(request_id, doc.task_id(), doc.request_ids().iter())?;
        }
        Ok(found)
    }

    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>> {
        let found = self
            .within(
                Operation::Load,
                task_id,
                self.inner.load_document_with_etag(task_id),
            )
            .await?;
        if let Some(v) = &found {
            self.check_task_id(Operation::Load, task_id, v.value.task_id())?;
        }
        Ok(found)
    }

    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let id = doc.task_id().to_owned();
        let call = self.inner.update_document_if_match(doc, etag);
        self.within(Operation::Update, &id, call).await
    }
}

/// Runs `fut` until it completes or `limit` passes, on any executor. A call that
/// completes at its first poll (an in-process store) registers no deadline at all.
pub(crate) use ta_persistence_api::deadline::within as deadline;

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::memory::InMemoryPersistenceManager;
    use ta_persistence_api::Timestamp;

    #[test]
    fn the_deadline_fires_outside_any_tokio_runtime() {
        assert!(tokio::runtime::Handle::try_current().is_err());
        let out = block_on(deadline(
            Duration::from_millis(20),
            std::future::pending::<()>(),
        ));
        assert_eq!(out, Err(ta_persistence_api::deadline::Elapsed));
        let out = block_on(deadline(Duration::from_secs(5), async { 7 }));
        assert_eq!(out, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_follows_the_real_clock_not_a_paused_one() {
        // Ten seconds of a paused runtime pass at once: within nine real seconds.
        let slow = tokio::time::sleep(Duration::from_secs(10));
        assert_eq!(deadline(Duration::from_secs(9), slow).await, Ok(()));
    }

    #[tokio::test]
    async fn a_well_behaved_manager_passes_through_unchanged() {
        let store = GuardedManager::new(
            InMemoryPersistenceManager::new(),
            "memory",
            Duration::from_secs(5),
        );
        let mut task = AgentTask::new("t1", "s", "u", Timestamp::now_utc());
        task.items.push(ta_persistence_api::AgentTaskItem::new(
            "t1",
            "r1",
            ta_persistence_api::Role::User,
            ta_persistence_api::MultiModalItem::text("hi"),
            Timestamp::now_utc(),
        ));
        store.create(task.clone()).await.unwrap();
        assert_eq!(store.load("t1").await.unwrap(), Some(task.clone()));
        assert_eq!(store.load_by_request_id("r1").await.unwrap(), Some(task));
        let doc = store.load_document_by_request_id("r1").await.unwrap();
        assert_eq!(doc.unwrap().task_id(), "t1");
        let v = store.load_document_with_etag("t1").await.unwrap().unwrap();
        assert_eq!(v.value.task_id(), "t1");
        assert!(store.load("t2").await.unwrap().is_none());
        assert!(store.delete("t2").await.unwrap_err().is_not_found());
        assert_eq!(store.clear().await.unwrap(), 1);
    }
}
