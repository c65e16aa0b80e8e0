//! The manager object across the boundary: its stable-ABI trait, the plugin-side wrapper
//! over a native [`TaskPersistenceManager`], and the host-side [`ForeignManager`] that
//! implements the native trait again over a loaded plugin's object.

// The `sabi_trait` expansion defines impls in a generated module, which newer compilers
// flag as non-local definitions; the code is abi_stable's and sound.
#![allow(non_local_definitions)]

use std::any::Any;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, ROption, RResult, RStr, RString};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::FutureExt as _;

use super::module::INTERFACE_VERSION;
use super::types::{FfiDocument, FfiError, FfiPage, FfiPageRequest, FfiTaskFilter, FfiVersioned};
use crate::document::TaskDocument;
use crate::document_store::{DocumentManager, DocumentStore};
use crate::error::{Operation, PersistenceError, Result};
use crate::listing::{Page, PageRequest, TaskFilter};
#[cfg(doc)]
use crate::manager::TaskPersistenceManager;
use crate::manager::{ETag, Versioned};
use crate::model::AgentTask;

/// The result type of every boundary method.
pub type FfiResult<T> = RResult<T, FfiError>;

/// The manager's function table: every method of [`TaskPersistenceManager`], over
/// documents, each returning a future the host can await on any executor.
///
/// The table is a prefix type: later interface versions add methods after the last one,
/// each with a default body. abi_stable runs that body when a library built before the
/// method has no slot for it, so it answers `Unsupported` (which [`ForeignManager`]
/// completes with the plugin's name and interface version) instead of the host
/// panicking. `clear` stays the last prefix field: the fields before it are what every
/// accepted library has.
#[sabi_trait]
pub trait FfiManager: Send + Sync {
    /// See [`TaskPersistenceManager::create`].
    fn create(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>>;
    /// See [`TaskPersistenceManager::load`].
    fn load(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiDocument>>>;
    /// See [`TaskPersistenceManager::update`].
    fn update(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>>;
    /// See [`TaskPersistenceManager::delete`].
    fn delete(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<()>>;
    /// See [`TaskPersistenceManager::load_by_request_id`].
    fn load_by_request_id(
        &self,
        request_id: RStr<'_>,
    ) -> FfiFuture<FfiResult<ROption<FfiDocument>>>;
    /// See [`TaskPersistenceManager::load_with_etag`].
    fn load_with_etag(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiVersioned>>>;
    /// See [`TaskPersistenceManager::update_if_match`].
    fn update_if_match(&self, doc: FfiDocument, etag: RStr<'_>) -> FfiFuture<FfiResult<RString>>;
    /// See [`TaskPersistenceManager::health`].
    fn health(&self) -> FfiFuture<FfiResult<()>>;
    /// See [`TaskPersistenceManager::clear`].
    #[sabi(last_prefix_field)]
    fn clear(&self) -> FfiFuture<FfiResult<u64>>;
    /// See [`TaskPersistenceManager::list_tasks`] (interface 3 on).
    fn list_tasks(
        &self,
        filter: FfiTaskFilter,
        page: FfiPageRequest,
    ) -> FfiFuture<FfiResult<FfiPage>> {
        let _ = (filter, page);
        crate::ffi::manager::not_in_table(Operation::List)
    }
    /// See [`TaskPersistenceManager::purge`] (interface 3 on).
    fn purge(&self) -> FfiFuture<FfiResult<u64>> {
        crate::ffi::manager::not_in_table(Operation::Purge)
    }
}

/// The answer of a method the plugin's function table lacks: `Unsupported`, with no
/// backend named (the host's [`ForeignManager`] knows which plugin it is).
pub(crate) fn not_in_table<T: Send + 'static>(op: Operation) -> FfiFuture<FfiResult<T>> {
    let err = FfiError::from_error(&PersistenceError::unsupported(op, "", None));
    async move { RResult::RErr(err) }.into_ffi()
}

/// An owned, type-erased manager object as it crosses the boundary.
pub type FfiManagerBox = FfiManager_TO<'static, RBox<()>>;

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

pub(crate) fn panicked(op: Operation, id: &str, payload: &(dyn Any + Send)) -> FfiError {
    let err = PersistenceError::plugin(
        op,
        id,
        format!("the plugin panicked: {}", panic_message(payload)),
    );
    FfiError::from_error(&err)
}

/// Runs one operation of a native manager for the boundary: `start` builds the future
/// (a panic there is caught), the future runs under `catch_unwind` (a panic while polled
/// is caught), and the outcome is encoded. Nothing unwinds out of here.
fn guard<T, R, F, Fut>(
    op: Operation,
    id: String,
    start: F,
    encode: fn(T) -> R,
) -> FfiFuture<FfiResult<R>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: 'static,
    R: Send + 'static,
{
    match catch_unwind(AssertUnwindSafe(start)) {
        Err(payload) => {
            let err = panicked(op, &id, payload.as_ref());
            async move { RResult::RErr(err) }.into_ffi()
        }
        Ok(fut) => async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(value)) => RResult::ROk(encode(value)),
                Ok(Err(err)) => RResult::RErr(FfiError::from_error(&err)),
                Err(payload) => RResult::RErr(panicked(op, &id, payload.as_ref())),
            }
        }
        .into_ffi(),
    }
}

fn some_doc(doc: Option<TaskDocument>) -> ROption<FfiDocument> {
    doc.map(FfiDocument::from).into()
}

/// A plugin's manager that is dropped under `catch_unwind`.
///
/// The last reference to a manager goes away on the plugin side, inside the function
/// table's `extern "C"` drop or inside the drop of a future the host still held; a panic
/// unwinding out of either would abort the host's process. So a `Drop` that panics is
/// caught here and reported through the log bridge, and the host carries on.
#[derive(Debug)]
struct DropGuard<T>(ManuallyDrop<T>);

impl<T> Deref for DropGuard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for DropGuard<T> {
    fn drop(&mut self) {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the manager is dropped exactly once, here, and `self.0` is never
            // used again: this is the guard's own drop.
            unsafe { ManuallyDrop::drop(&mut self.0) }
        }));
        if let Err(payload) = outcome {
            tracing::error!(
                "the plugin's manager panicked while being dropped: {}",
                panic_message(payload.as_ref())
            );
        }
    }
}

/// The plugin side: a native manager behind the boundary's function table.
#[derive(Debug)]
pub struct Exported<T> {
    inner: Arc<DropGuard<T>>,
}

impl<T: DocumentManager> Exported<T> {
    /// Wraps a manager.
    pub fn new(manager: T) -> Self {
        Exported {
            inner: Arc::new(DropGuard(ManuallyDrop::new(manager))),
        }
    }

    /// Wraps a manager and erases its type, ready to cross.
    pub fn into_ffi(self) -> FfiManagerBox {
        FfiManager_TO::from_value(self, abi_stable::sabi_trait::TD_Opaque)
    }
}

impl<T: DocumentManager> FfiManager for Exported<T> {
    fn create(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>> {
        let inner = Arc::clone(&self.inner);
        let id = doc.task_id.to_string();
        guard(
            Operation::Create,
            id,
            move || async move { inner.create_document(doc.into()).await },
            |()| (),
        )
    }

    fn load(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiDocument>>> {
        let inner = Arc::clone(&self.inner);
        let id = task_id.to_string();
        let key = id.clone();
        guard(
            Operation::Load,
            id,
            move || async move { inner.load_document(&key).await },
            some_doc,
        )
    }

    fn update(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>> {
        let inner = Arc::clone(&self.inner);
        let id = doc.task_id.to_string();
        guard(
            Operation::Update,
            id,
            move || async move { inner.update_document(doc.into()).await },
            |()| (),
        )
    }

    fn delete(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<()>> {
        let inner = Arc::clone(&self.inner);
        let id = task_id.to_string();
        let key = id.clone();
        guard(
            Operation::Delete,
            id,
            move || async move { inner.delete(&key).await },
            |()| (),
        )
    }

    fn load_by_request_id(
        &self,
        request_id: RStr<'_>,
    ) -> FfiFuture<FfiResult<ROption<FfiDocument>>> {
        let inner = Arc::clone(&self.inner);
        let id = request_id.to_string();
        let key = id.clone();
        guard(
            Operation::LoadByRequestId,
            id,
            move || async move { inner.load_document_by_request_id(&key).await },
            some_doc,
        )
    }

    fn load_with_etag(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiVersioned>>> {
        let inner = Arc::clone(&self.inner);
        let id = task_id.to_string();
        let key = id.clone();
        guard(
            Operation::Load,
            id,
            move || async move { inner.load_document_with_etag(&key).await },
            |v| v.map(FfiVersioned::from).into(),
        )
    }

    fn update_if_match(&self, doc: FfiDocument, etag: RStr<'_>) -> FfiFuture<FfiResult<RString>> {
        let inner = Arc::clone(&self.inner);
        let id = doc.task_id.to_string();
        let etag = ETag::new(etag.as_str());
        guard(
            Operation::Update,
            id,
            move || async move { inner.update_document_if_match(doc.into(), &etag).await },
            |tag| RString::from(tag.as_str()),
        )
    }

    fn health(&self) -> FfiFuture<FfiResult<()>> {
        let inner = Arc::clone(&self.inner);
        guard(
            Operation::Health,
            String::new(),
            move || async move { inner.health().await },
            |()| (),
        )
    }

    fn clear(&self) -> FfiFuture<FfiResult<u64>> {
        let inner = Arc::clone(&self.inner);
        guard(
            Operation::Clear,
            String::new(),
            move || async move { inner.clear().await },
            |n| n,
        )
    }

    fn list_tasks(
        &self,
        filter: FfiTaskFilter,
        page: FfiPageRequest,
    ) -> FfiFuture<FfiResult<FfiPage>> {
        let inner = Arc::clone(&self.inner);
        guard(
            Operation::List,
            String::new(),
            move || async move {
                let filter = filter.to_filter()?;
                inner.list_tasks(&filter, &PageRequest::from(&page)).await
            },
            FfiPage::from,
        )
    }

    fn purge(&self) -> FfiFuture<FfiResult<u64>> {
        let inner = Arc::clone(&self.inner);
        guard(
            Operation::Purge,
            String::new(),
            move || async move { inner.purge().await },
            |n| n,
        )
    }
}

/// The host side: a loaded plugin's manager, implementing the native trait (through
/// [`DocumentStore`]).
///
/// Every call validates its ids on this side first (so even a careless plugin never sees
/// an invalid one), encodes the task once, and awaits the plugin's future; a loaded task
/// is decoded from the plugin's bytes where they lie, without copying them first. A plugin
/// future that panics despite the plugin-side guard becomes a `Plugin` error here.
pub struct ForeignManager {
    inner: FfiManagerBox,
    label: String,
    plugin: String,
    interface_version: u32,
}

impl std::fmt::Debug for ForeignManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignManager")
            .field("label", &self.label)
            .field("plugin", &self.plugin)
            .field("interface_version", &self.interface_version)
            .finish_non_exhaustive()
    }
}

impl ForeignManager {
    /// Wraps a manager object a plugin's constructor returned. `label` names it in logs
    /// (e.g. `plugin-name/ClassName`); until [`of_plugin`](Self::of_plugin) says
    /// otherwise, it also names the plugin, built for this [`INTERFACE_VERSION`].
    pub fn new(inner: FfiManagerBox, label: impl Into<String>) -> Self {
        let label = label.into();
        ForeignManager {
            inner,
            plugin: label.clone(),
            label,
            interface_version: INTERFACE_VERSION,
        }
    }

    /// The same manager, from the plugin `name` built for `interface_version`: what an
    /// operation its function table lacks answers in its `Unsupported` error.
    #[must_use]
    pub fn of_plugin(mut self, name: impl Into<String>, interface_version: u32) -> Self {
        self.plugin = name.into();
        self.interface_version = interface_version;
        self
    }

    /// The label given at construction.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The plugin's name (see [`of_plugin`](Self::of_plugin)).
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The interface version the plugin was built for.
    pub fn interface_version(&self) -> u32 {
        self.interface_version
    }

    /// An `Unsupported` answer that names no backend came from a slot the plugin's
    /// table lacks (or from a plugin that did not say): name the plugin and its version.
    fn name_unsupported(&self, err: PersistenceError) -> PersistenceError {
        match &err {
            PersistenceError::Unsupported { op, backend, .. } if backend.is_empty() => {
                PersistenceError::unsupported(
                    *op,
                    self.plugin.as_str(),
                    Some(self.interface_version),
                )
            }
            _ => err,
        }
    }

    async fn call<T>(&self, op: Operation, id: &str, fut: FfiFuture<FfiResult<T>>) -> Result<T> {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(RResult::ROk(value)) => Ok(value),
            Ok(RResult::RErr(err)) => Err(err.into_error(op)),
            Err(payload) => Err(PersistenceError::plugin(
                op,
                id,
                format!(
                    "{}: the plugin's future panicked: {}",
                    self.label,
                    panic_message(payload.as_ref())
                ),
            )),
        }
    }

    /// The plugin's `load`: its document as it handed it over.
    async fn load_raw(&self, task_id: &str) -> Result<Option<FfiDocument>> {
        let found = self
            .call(Operation::Load, task_id, self.inner.load(task_id.into()))
            .await?;
        Ok(found.into_option())
    }

    /// The plugin's `load_by_request_id`: its document as it handed it over.
    async fn find_raw(&self, request_id: &str) -> Result<Option<FfiDocument>> {
        let load = self.inner.load_by_request_id(request_id.into());
        let found = self
            .call(Operation::LoadByRequestId, request_id, load)
            .await?;
        Ok(found.into_option())
    }
}

/// Decodes a document the plugin handed over where its bytes lie: turning the plugin's
/// strings into the host's would copy them first (they were allocated by the plugin's
/// allocator), only for the copy to be read once and freed.
fn decode_in_place(op: Operation, doc: FfiDocument) -> Result<AgentTask> {
    AgentTask::from_json(doc.json.as_str()).map_err(|e| PersistenceError::Corrupt {
        op,
        task_id: doc.task_id.into_string(),
        source: Box::new(e),
    })
}

// The typed trait, its id checks and its decoding come from `DocumentStore`: a plugin
// speaks documents, so the adapter only moves them across.
#[async_trait::async_trait]
impl DocumentStore for ForeignManager {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.call(Operation::Create, &id, self.inner.create(doc.into()))
            .await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self.load_raw(task_id).await?.map(TaskDocument::from))
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<AgentTask>> {
        self.load_raw(task_id)
            .await?
            .map(|doc| decode_in_place(Operation::Load, doc))
            .transpose()
    }

    async fn find_task(&self, request_id: &str) -> Result<Option<AgentTask>> {
        self.find_raw(request_id)
            .await?
            .map(|doc| decode_in_place(Operation::LoadByRequestId, doc))
            .transpose()
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.call(Operation::Update, &id, self.inner.update(doc.into()))
            .await
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        self.call(
            Operation::Delete,
            task_id,
            self.inner.delete(task_id.into()),
        )
        .await
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self.find_raw(request_id).await?.map(TaskDocument::from))
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let found = self
            .call(
                Operation::Load,
                task_id,
                self.inner.load_with_etag(task_id.into()),
            )
            .await?;
        Ok(found.into_option().map(Versioned::from))
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let id = doc.task_id().to_owned();
        let fut = self.inner.update_if_match(doc.into(), etag.as_str().into());
        let tag = self.call(Operation::Update, &id, fut).await?;
        Ok(ETag::new(tag.into_string()))
    }

    async fn ping(&self) -> Result<()> {
        self.call(Operation::Health, "", self.inner.health()).await
    }

    async fn remove_all(&self) -> Result<u64> {
        self.call(Operation::Clear, "", self.inner.clear()).await
    }

    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let fut = self
            .inner
            .list_tasks(FfiTaskFilter::from(filter), FfiPageRequest::from(page));
        let page = self
            .call(Operation::List, "", fut)
            .await
            .map_err(|e| self.name_unsupported(e))?;
        page.into_page(&self.label)
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.call(Operation::Purge, "", self.inner.purge())
            .await
            .map_err(|e| self.name_unsupported(e))
    }
}
