//! A plugin library exactly as interface 2 laid it out: its own root module of
//! `compat::v2` types (interface version 2, the nine-method function table), serving a
//! complete in-memory store. The host must load it, serve every operation interface 2
//! has, and answer `Unsupported` for the ones it lacks.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use abi_stable::export_root_module;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RResult, RSlice, RStr};
use ta_persistence_api::ffi::compat::v2::{
    FfiManagerBox, ManagerEntry, PluginModule, PluginModule_Ref,
};
use ta_persistence_api::ffi::{Exported, FfiError, FfiVar, HostHooks};
use ta_persistence_api::{
    async_trait, DocumentStore, ETag, Operation, PersistenceError, Result, TaskDocument, Versioned,
};

/// The plugin's name, as the host reports it.
pub const NAME: &str = "interface-v2";

/// The class it exports.
pub const CLASS: &str = "MemoryV2";

/// The root module: interface 2, one class.
#[export_root_module]
pub fn root_module() -> PluginModule_Ref {
    static MANAGERS: [ManagerEntry; 1] = [ManagerEntry {
        class: RStr::from_str(CLASS),
        new: construct,
    }];
    PluginModule {
        interface_version: 2,
        plugin_name: RStr::from_str(NAME),
        plugin_version: RStr::from_str(env!("CARGO_PKG_VERSION")),
        managers: RSlice::from_slice(&MANAGERS),
        panic_unwinds: cfg!(panic = "unwind"),
    }
    .leak_into_prefix()
}

/// The class's constructor, as interface 2 declared it. Building the store cannot fail
/// or panic.
extern "C" fn construct(
    _vars: RSlice<'_, FfiVar>,
    _hooks: HostHooks,
) -> RResult<FfiManagerBox, FfiError> {
    RResult::ROk(Exported::new(Store::default()).into_ffi_v2())
}

/// Tasks as documents in a map, with the request-id index `load_by_request_id` needs.
#[derive(Debug, Default)]
struct Store {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    docs: HashMap<String, (TaskDocument, u64)>,
    /// request id -> (created_at, task id) of each task holding it, first-created first.
    index: HashMap<String, BTreeSet<(i64, String)>>,
    revision: u64,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn etag(revision: u64) -> ETag {
    ETag::new(format!("v2-{revision}"))
}

impl State {
    fn index(&mut self, doc: &TaskDocument, add: bool) {
        let member = (doc.created_at_micros(), doc.task_id().to_owned());
        for request_id in doc.request_ids() {
            let members = self.index.entry(request_id.clone()).or_default();
            if add {
                members.insert(member.clone());
            } else {
                members.remove(&member);
                if members.is_empty() {
                    self.index.remove(request_id);
                }
            }
        }
    }

    fn put(&mut self, doc: TaskDocument) -> ETag {
        self.revision += 1;
        self.index(&doc, true);
        let revision = self.revision;
        self.docs.insert(doc.task_id().to_owned(), (doc, revision));
        etag(revision)
    }

    fn replace(&mut self, doc: TaskDocument, expected: Option<&ETag>) -> Result<ETag> {
        let Some((_, revision)) = self.docs.get(doc.task_id()) else {
            return Err(PersistenceError::not_found(
                Operation::Update,
                doc.task_id(),
            ));
        };
        if let Some(expected) = expected {
            if etag(*revision) != *expected {
                return Err(PersistenceError::conflict(
                    Operation::Update,
                    doc.task_id(),
                    expected.as_str(),
                ));
            }
        }
        if let Some((old, _)) = self.docs.remove(doc.task_id()) {
            self.index(&old, false);
        }
        Ok(self.put(doc))
    }
}

#[async_trait]
impl DocumentStore for Store {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let mut state = self.lock();
        if state.docs.contains_key(doc.task_id()) {
            return Err(PersistenceError::already_exists(
                Operation::Create,
                doc.task_id(),
            ));
        }
        state.put(doc);
        Ok(())
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self.lock().docs.get(task_id).map(|(doc, _)| doc.clone()))
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        self.lock().replace(doc, None).map(drop)
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        let mut state = self.lock();
        let Some((doc, _)) = state.docs.remove(task_id) else {
            return Err(PersistenceError::not_found(Operation::Delete, task_id));
        };
        state.index(&doc, false);
        Ok(())
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let state = self.lock();
        let first = state.index.get(request_id).and_then(BTreeSet::first);
        Ok(first
            .and_then(|(_, task_id)| state.docs.get(task_id))
            .map(|(doc, _)| doc.clone()))
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        Ok(self
            .lock()
            .docs
            .get(task_id)
            .map(|(doc, revision)| Versioned::new(doc.clone(), etag(*revision))))
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        self.lock().replace(doc, Some(etag))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn remove_all(&self) -> Result<u64> {
        let mut state = self.lock();
        let removed = state.docs.len() as u64;
        state.docs.clear();
        state.index.clear();
        Ok(removed)
    }
}
