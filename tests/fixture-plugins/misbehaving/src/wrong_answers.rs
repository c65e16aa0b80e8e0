//! `WrongAnswers`: a manager that answers reads about the wrong task.
//!
//! - `load("a")` and `load_with_etag("a")` return task `not-a`;
//! - `load_by_request_id("r")` returns task `holds-not-r`, whose only item has request
//!   id `not-r`;
//! - `load("forged")` returns a document whose indexed task id says `forged` while its
//!   JSON is task `other`; `load_by_request_id("forged")` one whose indexed request ids
//!   say `forged` while its JSON holds none.
//!
//! - `list_tasks` with a session filter answers a page that breaks the listing contract
//!   in the way the session id names: `excluded` (a task of another session),
//!   `unordered` (oldest first), `repeated` (a task twice), `oversized` (two tasks, for a
//!   page of one), `foreign-cursor` (a next cursor of another filter), `early-cursor` (a
//!   next cursor that does not resume after the last task), `empty-next` (an empty page
//!   with a next cursor); any other session, a correct page of two tasks. Without a
//!   session filter, a correct page of one task.
//!
//! Writes succeed and store nothing.

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::listing::ListKey;
use ta_persistence_api::{
    async_trait, AgentTask, AgentTaskItem, BoxError, Cursor, DocumentStore, ETag, MultiModalItem,
    Page, PageRequest, Result, Role, TaskDocument, TaskFilter, TaskStatus, TaskSummary, Timestamp,
    Versioned,
};

/// Answers every read with another task than the one asked for.
#[derive(Debug, Default)]
pub struct WrongAnswers;

impl FromConfig for WrongAnswers {
    fn from_config(_: &PluginConfig) -> std::result::Result<Self, BoxError> {
        Ok(WrongAnswers)
    }
}

fn task(task_id: &str, request_ids: &[&str]) -> AgentTask {
    let now = Timestamp::now_utc();
    let mut task = AgentTask::new(task_id, "session", "user", now);
    for request_id in request_ids {
        task.items.push(AgentTaskItem::new(
            task_id,
            *request_id,
            Role::User,
            MultiModalItem::text("not what was asked for"),
            now,
        ));
    }
    task
}

/// A document whose indexed fields claim `task_id` and `request_ids` but whose JSON is
/// `actual`.
fn forged(task_id: &str, request_ids: &[&str], actual: &AgentTask) -> TaskDocument {
    TaskDocument::from_trusted_parts(
        task_id.to_owned(),
        request_ids.iter().map(|r| (*r).to_owned()).collect(),
        actual.created_at.utc_micros(),
        actual.to_json(),
    )
}

#[async_trait]
impl DocumentStore for WrongAnswers {
    async fn insert(&self, _: TaskDocument) -> Result<()> {
        Ok(())
    }
    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        if task_id == "forged" {
            return Ok(Some(forged(task_id, &[], &task("other", &[]))));
        }
        let other = format!("not-{task_id}");
        Ok(Some(TaskDocument::from_task(&task(&other, &[]))))
    }
    async fn replace(&self, _: TaskDocument) -> Result<()> {
        Ok(())
    }
    async fn remove(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        if request_id == "forged" {
            let actual = task("holds-nothing", &[]);
            return Ok(Some(forged("holds-nothing", &[request_id], &actual)));
        }
        let other = format!("not-{request_id}");
        let holder = format!("holds-{other}");
        Ok(Some(TaskDocument::from_task(&task(&holder, &[&other]))))
    }
    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let doc = self.get(task_id).await?;
        Ok(doc.map(|doc| Versioned::new(doc, ETag::new("1"))))
    }
    async fn replace_if_match(&self, _: TaskDocument, etag: &ETag) -> Result<ETag> {
        Ok(etag.clone())
    }
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
    async fn remove_all(&self) -> Result<u64> {
        Ok(0)
    }

    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let summary = |id: &str, session: &str, micros: i64| {
            let at = Timestamp::parse(&micros.to_string()).unwrap_or_else(|_| Timestamp::now_utc());
            TaskSummary::new(id, session, "user", TaskStatus::Running, at, at, 0)
        };
        let Some(session) = filter.session_id() else {
            let only = summary("only", "session", 1_700_000_000);
            return Ok(Page::from_ordered([only], filter, page.size()));
        };
        let (newer, older) = (
            summary("newer", session, 1_700_000_100),
            summary("older", session, 1_700_000_000),
        );
        let tasks = match session {
            "excluded" => vec![summary("elsewhere", "another-session", 1_700_000_000)],
            "unordered" => vec![older.clone(), newer.clone()],
            "repeated" => vec![newer.clone(), newer.clone()],
            "oversized" => vec![newer.clone(), older.clone()],
            "empty-next" => Vec::new(),
            _ => vec![newer.clone(), older.clone()],
        };
        let next = match session {
            "foreign-cursor" => Some(Cursor::encode(&TaskFilter::all(), &older.key())),
            "early-cursor" => Some(Cursor::encode(filter, &newer.key())),
            "empty-next" => Some(Cursor::encode(filter, &ListKey::new(0, "x"))),
            _ => None,
        };
        Ok(Page::new(tasks, next))
    }
}
