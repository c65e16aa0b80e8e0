//! Where `bench` and `conformance` run, so that they never touch tasks someone keeps.
//!
//! Both commands write and remove tasks (`conformance` clears its store before every
//! case), so by default they run only where that loses nothing:
//!
//! - the built-in store (also after a fallback): a new, empty store of this process;
//! - a plugin known to keep its tasks in the process (`ta-plugin-memory`): the same;
//! - a plugin with a namespace variable (`ta-plugin-redis`: `TA_REDIS_PREFIX`): a scratch
//!   namespace of the configured one, `{prefix}:ta-persist-scratch:{unique}`, new and so
//!   empty, and cleared at the end: after success, failure or Ctrl-C;
//! - any other plugin: refused. The interface has no listing, so there is no honest way
//!   to tell an empty store from one holding tasks.
//!
//! `--in-place` runs against the configured store as it is.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ta_persistence::api::{
    async_trait, AgentTask, DocumentManager, ETag, Operation, Outcome, Page, PageRequest,
    PersistenceError, Result, TaskDocument, TaskFilter, TaskPersistenceManager, Versioned,
};
use ta_persistence::loader::open_library;

/// What `ta-persist` knows of how a plugin keeps its tasks.
enum Isolation {
    /// Every manager it constructs is a new, empty store in this process.
    ProcessLocal,
    /// A variable moves the whole store to another namespace of the same backend.
    Namespace {
        /// The variable.
        var: &'static str,
        /// Its value when unset.
        default: &'static str,
    },
}

/// The plugins `ta-persist` can run destructive commands against safely, by name.
fn isolation(plugin: &str) -> Option<Isolation> {
    match plugin {
        "ta-plugin-memory" => Some(Isolation::ProcessLocal),
        "ta-plugin-redis" => Some(Isolation::Namespace {
            var: "TA_REDIS_PREFIX",
            default: "task_persistence",
        }),
        _ => None,
    }
}

/// Where a destructive command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// A new store of this process: nothing outside the process is touched.
    Fresh,
    /// A scratch namespace of the configured backend, cleared at the end.
    Scratch {
        /// The variable that names the namespace.
        var: &'static str,
        /// The scratch namespace.
        namespace: String,
    },
    /// The configured store as it is (`--in-place`).
    InPlace,
}

impl Placement {
    /// The store, as messages name it.
    fn store_name(&self) -> String {
        match self {
            Placement::Fresh => "the store of this process".to_owned(),
            Placement::Scratch { var, namespace } => {
                format!("the scratch namespace {var}={namespace:?}")
            }
            Placement::InPlace => "the configured store".to_owned(),
        }
    }

    /// One line for stderr saying where the command runs; `None` for a fresh store.
    pub(crate) fn describe(&self) -> Option<String> {
        match self {
            Placement::Fresh => None,
            Placement::Scratch { var, namespace } => Some(format!(
                "running in the scratch namespace {var}={namespace:?} (removed at the end); \
                 the configured store is not touched"
            )),
            Placement::InPlace => {
                Some("running against the configured store as it is (--in-place)".to_owned())
            }
        }
    }
}

/// Why a destructive command will not run.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what}, and plugin {plugin:?} offers no scratch namespace that ta-persist knows, nor a \
     way to tell whether its store holds tasks; pass --in-place to run against the \
     configured store as it is"
)]
pub(crate) struct Refused {
    plugin: String,
    what: &'static str,
}

/// Decides where a command runs against the plugin `module` (if any) configured with
/// `vars`, and returns the variables to construct it with.
///
/// `what` says what the command does to a store (`bench writes and deletes tasks ...`),
/// for the refusal message.
pub(crate) fn place(
    module: Option<&Path>,
    vars: &BTreeMap<String, String>,
    in_place: bool,
    what: &'static str,
) -> std::result::Result<(Placement, BTreeMap<String, String>), Refused> {
    // A store of this process is fresh, whether or not the command was told to run in
    // place: there is nothing to protect and no reason to slow the calls down.
    let Some(module) = module else {
        return Ok((Placement::Fresh, vars.clone()));
    };
    // A library that does not open is not used: the factory falls back to a new built-in
    // store (or refuses to start), and `conformance` reports the failure.
    let Ok(lib) = open_library(module) else {
        return Ok((Placement::Fresh, vars.clone()));
    };
    match isolation(lib.name()) {
        Some(Isolation::ProcessLocal) => Ok((Placement::Fresh, vars.clone())),
        _ if in_place => Ok((Placement::InPlace, vars.clone())),
        Some(Isolation::Namespace { var, default }) => {
            let base = vars
                .get(var)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .unwrap_or(default);
            let namespace = format!("{base}:ta-persist-scratch:{}", unique());
            let mut vars = vars.clone();
            vars.insert(var.to_owned(), namespace.clone());
            Ok((Placement::Scratch { var, namespace }, vars))
        }
        None => Err(Refused {
            plugin: lib.name().to_owned(),
            what,
        }),
    }
}

/// A name no other run uses: the process id, the time in nanoseconds and a count.
fn unique() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// Set once Ctrl-C (or SIGTERM) was received.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the command was interrupted.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Exit code after an interrupt (128 + SIGINT, as shells report it).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// The store a command runs against: `raw` itself when it is fresh (an interrupt kills the
/// process, and the store with it); otherwise `raw` [`Guarded`], with interrupts caught
/// (see [`catch_interrupts`]) and where the command runs said on stderr. `leftovers` names
/// what the store may hold if the command is killed before cleaning up.
pub(crate) fn guard(
    placement: &Placement,
    raw: &Arc<dyn DocumentManager>,
    leftovers: &str,
) -> Arc<dyn DocumentManager> {
    let Some(line) = placement.describe() else {
        return Arc::clone(raw);
    };
    eprintln!("{line}");
    let place = placement.store_name();
    catch_interrupts(format!("{place} may hold {leftovers}"));
    Arc::new(Guarded(Arc::clone(raw)))
}

/// Handles Ctrl-C and SIGTERM for a command that must clean up: the first one makes every
/// further store call but removals fail at once (see [`Guarded`]), so the command winds
/// down and cleans up; a second one exits at once, saying what may be left behind.
fn catch_interrupts(leftovers: String) {
    tokio::spawn(async move {
        if !next_interrupt().await {
            return;
        }
        INTERRUPTED.store(true, Ordering::Relaxed);
        eprintln!("interrupted: stopping and cleaning up (interrupt again to quit at once)");
        if next_interrupt().await {
            eprintln!("quit before cleaning up: {leftovers}");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
}

/// Waits for Ctrl-C or SIGTERM; `false` if they cannot be caught.
async fn next_interrupt() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            ctrl_c = tokio::signal::ctrl_c() => ctrl_c.is_ok(),
            term = term.recv() => term.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// A store whose calls fail at once after an interrupt, except removals (`delete`,
/// `clear`), so that a command winds down quickly and can still clean up. Calls already
/// running complete: nothing is written behind the cleanup's back.
pub(crate) struct Guarded(pub(crate) Arc<dyn DocumentManager>);

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Guarded")
    }
}

fn go_on(op: Operation, id: &str) -> Result<()> {
    if interrupted() {
        // Refused before it reached the store: nothing was applied.
        Err(PersistenceError::unavailable(
            op,
            id,
            "interrupted: only removals go through now",
            Outcome::NotApplied,
        ))
    } else {
        Ok(())
    }
}

#[async_trait]
impl TaskPersistenceManager for Guarded {
    async fn create(&self, task: AgentTask) -> Result<()> {
        go_on(Operation::Create, &task.task_id)?;
        self.0.create(task).await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        go_on(Operation::Load, task_id)?;
        self.0.load(task_id).await
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        go_on(Operation::Update, &task.task_id)?;
        self.0.update(task).await
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        self.0.delete(task_id).await
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        go_on(Operation::LoadByRequestId, request_id)?;
        self.0.load_by_request_id(request_id).await
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        go_on(Operation::Load, task_id)?;
        self.0.load_with_etag(task_id).await
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        go_on(Operation::Update, &task.task_id)?;
        self.0.update_if_match(task, etag).await
    }

    async fn health(&self) -> Result<()> {
        go_on(Operation::Health, "")?;
        self.0.health().await
    }

    async fn clear(&self) -> Result<u64> {
        self.0.clear().await
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        go_on(Operation::List, "")?;
        self.0.list_tasks(filter, page).await
    }

    async fn purge(&self) -> Result<u64> {
        self.0.purge().await
    }
}

#[async_trait]
impl DocumentManager for Guarded {
    async fn create_document(&self, doc: TaskDocument) -> Result<()> {
        go_on(Operation::Create, doc.task_id())?;
        self.0.create_document(doc).await
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        go_on(Operation::Load, task_id)?;
        self.0.load_document(task_id).await
    }

    async fn update_document(&self, doc: TaskDocument) -> Result<()> {
        go_on(Operation::Update, doc.task_id())?;
        self.0.update_document(doc).await
    }

    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        go_on(Operation::LoadByRequestId, request_id)?;
        self.0.load_document_by_request_id(request_id).await
    }

    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>> {
        go_on(Operation::Load, task_id)?;
        self.0.load_document_with_etag(task_id).await
    }

    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        go_on(Operation::Update, doc.task_id())?;
        self.0.update_document_if_match(doc, etag).await
    }
}

/// Clears the store a command ran against: always a scratch namespace, the configured
/// store only if `clear_in_place` (never a fresh store: it goes with the process). On
/// failure, says what is left behind and returns `false`.
pub(crate) async fn clean_up(
    placement: &Placement,
    store: &dyn DocumentManager,
    clear_in_place: bool,
) -> bool {
    match placement {
        Placement::Fresh => return true,
        Placement::InPlace if !clear_in_place => return true,
        _ => {}
    }
    match store.clear().await {
        Ok(_) => true,
        Err(err) => {
            let place = placement.store_name();
            eprintln!(
                "error: could not clear {place} at the end: {}",
                err.report()
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_plugin_the_store_is_fresh_even_in_place() {
        let vars = BTreeMap::from([("TA_X".to_owned(), "1".to_owned())]);
        for in_place in [false, true] {
            let (placement, same) = place(None, &vars, in_place, "x").unwrap();
            assert_eq!(placement, Placement::Fresh);
            assert_eq!(same, vars);
        }
    }

    #[test]
    fn scratch_names_differ_between_calls() {
        assert_ne!(unique(), unique());
    }
}
