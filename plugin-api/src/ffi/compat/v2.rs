//! Interface 2 as it was deployed: the root module, the class entry and the manager's
//! function table (create … clear), frozen.
//!
//! The current interface is this one plus trailing prefix fields (the manager's
//! `list_tasks` and `purge`), which a unit test asserts with abi_stable's own checker.
//! The host checks an interface-2 library against these types and then reads it through
//! the current ones, where the missing methods answer `Unsupported`.

// The derives name the reference types `PluginModule_Ref` and `FfiManager_TO`, as the
// deployed interface did.
#![allow(non_camel_case_types)]
// The `sabi_trait` expansion defines impls in a generated module (see `manager.rs`).
#![allow(non_local_definitions)]

use abi_stable::library::RootModule;
use abi_stable::sabi_trait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString};
use abi_stable::{declare_root_module_statics, package_version_strings, StableAbi};
use async_ffi::FfiFuture;

use crate::document_store::DocumentManager;
use crate::ffi::manager::Exported;
use crate::ffi::types::{FfiDocument, FfiError, FfiVar, FfiVersioned, HostHooks};

/// The result type of every boundary method.
pub type FfiResult<T> = RResult<T, FfiError>;

/// Interface 2's function table (see [`crate::ffi::FfiManager`], of which it is the
/// prefix).
#[sabi_trait]
pub trait FfiManager: Send + Sync {
    /// `create`.
    fn create(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>>;
    /// `load`.
    fn load(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiDocument>>>;
    /// `update`.
    fn update(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>>;
    /// `delete`.
    fn delete(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<()>>;
    /// `load_by_request_id`.
    fn load_by_request_id(
        &self,
        request_id: RStr<'_>,
    ) -> FfiFuture<FfiResult<ROption<FfiDocument>>>;
    /// `load_with_etag`.
    fn load_with_etag(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiVersioned>>>;
    /// `update_if_match`.
    fn update_if_match(&self, doc: FfiDocument, etag: RStr<'_>) -> FfiFuture<FfiResult<RString>>;
    /// `health`.
    fn health(&self) -> FfiFuture<FfiResult<()>>;
    /// `clear`.
    #[sabi(last_prefix_field)]
    fn clear(&self) -> FfiFuture<FfiResult<u64>>;
}

/// An owned interface-2 manager object.
pub type FfiManagerBox = FfiManager_TO<'static, RBox<()>>;

/// Interface 2's class entry.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ManagerEntry {
    /// The class name.
    pub class: RStr<'static>,
    /// The class's constructor.
    pub new: extern "C" fn(RSlice<'_, FfiVar>, HostHooks) -> RResult<FfiManagerBox, FfiError>,
}

/// Interface 2's root module.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// `2`.
    pub interface_version: u32,
    /// The plugin's name.
    pub plugin_name: RStr<'static>,
    /// The plugin's version.
    pub plugin_version: RStr<'static>,
    /// The manager classes it exports.
    #[sabi(last_prefix_field)]
    pub managers: RSlice<'static, ManagerEntry>,
    /// Whether the plugin was built with `panic = "unwind"`.
    #[sabi(missing_field(default))]
    pub panic_unwinds: bool,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "ta_persistence_plugin";
    const NAME: &'static str = "ta_persistence_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

impl std::fmt::Debug for PluginModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginModule")
            .field("interface_version", &self.interface_version)
            .field("plugin_name", &self.plugin_name)
            .field("plugin_version", &self.plugin_version)
            .field("managers", &self.managers)
            .field("panic_unwinds", &self.panic_unwinds)
            .finish()
    }
}

/// A native manager behind interface 2's table: the current wrapper's methods, minus
/// those interface 2 lacks. For libraries that must export interface 2 exactly (the
/// loader's tests keep one).
impl<T: DocumentManager> FfiManager for Exported<T> {
    fn create(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>> {
        crate::ffi::FfiManager::create(self, doc)
    }

    fn load(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiDocument>>> {
        crate::ffi::FfiManager::load(self, task_id)
    }

    fn update(&self, doc: FfiDocument) -> FfiFuture<FfiResult<()>> {
        crate::ffi::FfiManager::update(self, doc)
    }

    fn delete(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<()>> {
        crate::ffi::FfiManager::delete(self, task_id)
    }

    fn load_by_request_id(
        &self,
        request_id: RStr<'_>,
    ) -> FfiFuture<FfiResult<ROption<FfiDocument>>> {
        crate::ffi::FfiManager::load_by_request_id(self, request_id)
    }

    fn load_with_etag(&self, task_id: RStr<'_>) -> FfiFuture<FfiResult<ROption<FfiVersioned>>> {
        crate::ffi::FfiManager::load_with_etag(self, task_id)
    }

    fn update_if_match(&self, doc: FfiDocument, etag: RStr<'_>) -> FfiFuture<FfiResult<RString>> {
        crate::ffi::FfiManager::update_if_match(self, doc, etag)
    }

    fn health(&self) -> FfiFuture<FfiResult<()>> {
        crate::ffi::FfiManager::health(self)
    }

    fn clear(&self) -> FfiFuture<FfiResult<u64>> {
        crate::ffi::FfiManager::clear(self)
    }
}

impl<T: DocumentManager> Exported<T> {
    /// Wraps a manager and erases its type behind interface 2's table.
    pub fn into_ffi_v2(self) -> FfiManagerBox {
        FfiManager_TO::from_value(self, abi_stable::sabi_trait::TD_Opaque)
    }
}
