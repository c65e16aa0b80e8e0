//! The stable-ABI interface between the host and plugin libraries.
//!
//! Everything `extern "C"`, `StableAbi`, `FfiFuture` and `catch_unwind` lives in this
//! module and nowhere else: plugin authors implement the safe async
//! [`TaskPersistenceManager`](crate::TaskPersistenceManager) and call
//! [`export_plugin!`](crate::export_plugin); the host sees a [`ForeignManager`] that
//! implements the same trait.
//!
//! # What crosses
//!
//! Only abi_stable types and `async_ffi::FfiFuture`: a task crosses as its JSON with its
//! indexed fields ([`FfiDocument`]), an error as its kind, operation, fields and cause
//! messages ([`FfiError`]). Strings and vectors carry their own deallocator, so each side
//! frees what the other allocated correctly even with different allocators.
//!
//! # Ownership and lifetime
//!
//! - A library is loaded once and never unloaded: its code and statics stay valid for the
//!   life of the process (threads a plugin starts may still run its code at exit).
//! - The root module ([`PluginModule`]) is leaked by the plugin at load.
//! - A manager object ([`FfiManagerBox`]) is owned by the host; dropping it drops the
//!   plugin's manager on the plugin's side, which must release its resources without
//!   blocking (a plugin runtime is shut down in the background).
//! - Every future a method returns is `'static` and `Send`; it owns copies of its
//!   arguments.
//!
//! # Panics
//!
//! A panic in a constructor, in a method or inside a future is caught on the plugin side
//! and returned as a `Plugin` error; a future that panics anyway is caught again on the
//! host side. A manager whose `Drop` panics is caught on the plugin side too, and the
//! panic is logged through the log bridge. Nothing unwinds across the boundary.
//!
//! All of this needs `panic = "unwind"` in the plugin's build: with `panic = "abort"` the
//! first panic ends the host's process before anything can catch it. The export macro
//! records the strategy in the root module ([`PluginModule::panic_unwinds`]) and the host
//! refuses a plugin built with `abort`, saying which profile setting to change.
//!
//! # When you change the interface, also…
//!
//! 1. add methods or module fields only at the end (they are prefix types), each method
//!    with a default body answering `Unsupported` (abi_stable runs it when a library
//!    lacks the slot). abi_stable's layout check accepts a library whose prefix types
//!    have the host's fields or more, never fewer, so before the change freeze the
//!    current types as `compat::vN` (same names, same order; see [`compat::v2`]) and
//!    teach the loader to check a refused library against that copy before reading it
//!    through the current types; extend the unit test beside [`PluginModule`] that
//!    asserts the current layout is the copy plus trailing fields. A root-module field
//!    that older libraries cannot do without (as the panic strategy was) raises
//!    [`MIN_INTERFACE_VERSION`] instead;
//! 2. bump [`INTERFACE_VERSION`] and add a line to its history;
//! 3. never change an existing field, parameter or `#[repr]` (a plugin built against the
//!    old layout is refused at load with a layout error);
//! 4. teach [`ForeignManager`] and the plugin-side wrapper the new method;
//! 5. add the method to the conformance suite;
//! 6. keep a library built against the previous interface among the test fixtures, and
//!    re-run the loader's failure matrix (`tests/tests/loader_*.rs`).

pub mod compat;
mod export;
pub mod logging;
mod manager;
mod module;
mod types;

pub use export::{construct, construct_typed, FromConfig, PluginConfig};
#[cfg(feature = "runtime")]
pub(crate) use manager::panic_message;
pub use manager::{Exported, FfiManager, FfiManagerBox, FfiManager_TO, FfiResult, ForeignManager};
pub use module::{
    Constructor, ManagerEntry, PluginModule, PluginModule_Ref, INTERFACE_VERSION,
    MIN_INTERFACE_VERSION,
};
pub use types::{
    FfiDocument, FfiError, FfiPage, FfiPageRequest, FfiTaskFilter, FfiTaskSummary, FfiVar,
    FfiVersioned, HostHooks, RemoteError,
};

/// What the export macros expand to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use super::export::{module, module_with_version, Pick, PickDocuments, PickTyped};
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
    pub use abi_stable::std_types::{RResult, RSlice, RStr};
}
