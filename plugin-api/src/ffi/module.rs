//! The root module a plugin library exports, and the interface version.

// The derive names the module's reference type `PluginModule_Ref`, abi_stable's convention.
#![allow(non_camel_case_types)]

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RSlice, RStr};
use abi_stable::{declare_root_module_statics, package_version_strings, StableAbi};

use super::manager::{FfiManagerBox, ForeignManager};
use super::types::{FfiError, FfiVar, HostHooks};
use crate::error::{Operation, PersistenceError};

/// The version of the interface a plugin was built against, checked by the host at load.
///
/// It is separate from the crate's version: it changes only when the boundary does.
///
/// History:
/// - 1: the first interface (create, load, update, delete, load_by_request_id,
///   load_with_etag, update_if_match, health, clear; documents cross as JSON).
/// - 2: the root module records whether the plugin was built with `panic = "unwind"`
///   ([`PluginModule::panic_unwinds`]); the host refuses a plugin built otherwise.
/// - 3: the manager's table gains `list_tasks` and `purge` (listing and retention).
///   Version 2 libraries still load (checked against [`compat::v2`](super::compat::v2));
///   both operations answer `Unsupported` naming the plugin and its version.
pub const INTERFACE_VERSION: u32 = 3;

/// The oldest interface version this host still loads.
///
/// Version 1 libraries are refused: their root module lacks the panic-strategy field, and
/// abi_stable's layout check accepts a library whose prefix type has the host's fields or
/// more, never fewer (so they already fail the layout check). That is also the safe
/// answer: nothing tells whether such a library was built with `panic = "abort"`. Such a
/// plugin needs only a rebuild against this crate. Version 2 libraries pass the check
/// against their frozen copy ([`compat::v2`](super::compat::v2)).
pub const MIN_INTERFACE_VERSION: u32 = 2;

/// A manager's constructor: the host's `TA_*` variables and hooks in, a manager or an
/// error out. It never unwinds.
pub type Constructor =
    extern "C" fn(RSlice<'_, FfiVar>, HostHooks) -> RResult<FfiManagerBox, FfiError>;

/// One manager class a plugin exports.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ManagerEntry {
    /// The class name `TA_PERSISTENCE_CLASS` selects it by.
    pub class: RStr<'static>,
    /// Builds a manager of this class (a [`Constructor`]; spelled out because the
    /// layout derive reads function-pointer types only where they are written).
    pub new: extern "C" fn(RSlice<'_, FfiVar>, HostHooks) -> RResult<FfiManagerBox, FfiError>,
}

impl ManagerEntry {
    /// Builds a manager of this class, for the host: calls the plugin's constructor with
    /// the `TA_*` variables and the host's log bridge, and wraps the manager it returns in
    /// a [`ForeignManager`] named `label` in logs.
    ///
    /// The constructor is `extern "C"`, so nothing can unwind out of it: the SDK's
    /// constructor catches the plugin's panics and returns them as errors, which arrive
    /// here as a `Plugin` error of operation `Construct`.
    pub fn construct<'a>(
        &self,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
        label: impl Into<String>,
    ) -> Result<ForeignManager, PersistenceError> {
        let vars: Vec<FfiVar> = vars
            .into_iter()
            .map(|(name, value)| FfiVar {
                name: name.into(),
                value: value.into(),
            })
            .collect();
        match (self.new)(RSlice::from_slice(&vars), super::logging::host_hooks()) {
            RResult::ROk(manager) => Ok(ForeignManager::new(manager, label)),
            RResult::RErr(err) => Err(err.into_error(Operation::Construct)),
        }
    }
}

/// The root module of a plugin library: who it is and which managers it exports.
///
/// A prefix type, so later interface versions can add fields at the end and still load
/// libraries built before them.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// [`INTERFACE_VERSION`] as the plugin was built.
    pub interface_version: u32,
    /// The plugin's name (its crate name, by default).
    pub plugin_name: RStr<'static>,
    /// The plugin's version (its crate version, by default).
    pub plugin_version: RStr<'static>,
    /// The manager classes it exports.
    #[sabi(last_prefix_field)]
    pub managers: RSlice<'static, ManagerEntry>,
    /// Whether the plugin crate was built with `panic = "unwind"`, as the export macro saw
    /// it in that crate (interface 2 on). Only then can a panic inside the plugin become an
    /// error: with `panic = "abort"` the first panic ends the host's process. A library
    /// without the field (interface 1) reads as `false`: nothing says it unwinds.
    #[sabi(missing_field(default))]
    pub panic_unwinds: bool,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "ta_persistence_plugin";
    const NAME: &'static str = "ta_persistence_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

impl PluginModule_Ref {
    /// Whether the plugin was built with `panic = "unwind"` (`false` also for a library
    /// that does not say).
    pub fn unwinds_on_panic(self) -> bool {
        self.panic_unwinds()
    }

    /// The entry of a class, if the plugin exports it.
    pub fn find(self, class: &str) -> Option<ManagerEntry> {
        self.managers()
            .iter()
            .find(|entry| entry.class.as_str() == class)
            .copied()
    }

    /// The names of the classes the plugin exports.
    pub fn classes(self) -> Vec<String> {
        self.managers()
            .iter()
            .map(|entry| entry.class.as_str().to_owned())
            .collect()
    }
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

#[cfg(test)]
mod tests {
    use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
    use abi_stable::StableAbi;

    /// The root module as interface 1 declared it, frozen.
    mod v1 {
        #![allow(non_camel_case_types, dead_code, unreachable_pub)]
        use super::super::ManagerEntry;
        use abi_stable::std_types::{RSlice, RStr};
        use abi_stable::StableAbi;

        #[repr(C)]
        #[derive(StableAbi)]
        #[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
        #[sabi(missing_field(panic))]
        pub struct PluginModule {
            pub interface_version: u32,
            pub plugin_name: RStr<'static>,
            pub plugin_version: RStr<'static>,
            #[sabi(last_prefix_field)]
            pub managers: RSlice<'static, ManagerEntry>,
        }
    }

    /// The same, with a field changed in place: what the checklist forbids.
    mod changed {
        #![allow(non_camel_case_types, dead_code, unreachable_pub)]
        use super::super::ManagerEntry;
        use abi_stable::std_types::{RSlice, RStr};
        use abi_stable::StableAbi;

        #[repr(C)]
        #[derive(StableAbi)]
        #[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
        #[sabi(missing_field(panic))]
        pub struct PluginModule {
            pub interface_version: u64,
            pub plugin_name: RStr<'static>,
            pub plugin_version: RStr<'static>,
            #[sabi(last_prefix_field)]
            pub managers: RSlice<'static, ManagerEntry>,
        }
    }

    // abi_stable's checker is not symmetric: the first layout is the interface (what the
    // host expects), the second the implementation (what the library has). A prefix type
    // passes when the implementation has the interface's fields or more.
    //
    // The checker also records, for the whole process, every pair of prefix types it
    // accepted, and checks later pairs against that record: so every comparison of
    // these frozen copies runs in this one test, in a fixed order, never concurrently.
    #[test]
    fn interfaces_grow_only_by_trailing_prefix_fields() {
        the_panic_field_is_a_compatible_addition_in_abi_stable_terms();
        the_current_interface_is_interface_2_plus_trailing_fields();
    }

    fn the_current_interface_is_interface_2_plus_trailing_fields() {
        use crate::ffi::compat::v2;
        // Reading an interface-2 library through the current types (what the loader does
        // once it has checked the library against `compat::v2`) is sound only if the
        // current layout extends interface 2's, which is exactly "a host built for
        // interface 2 accepts a current library".
        let v2_module = <v2::PluginModule_Ref as StableAbi>::LAYOUT;
        let module = <super::PluginModule_Ref as StableAbi>::LAYOUT;
        check_layout_compatibility(v2_module, module).unwrap_or_else(|e| {
            panic!("the current root module does not extend interface 2's: {e}")
        });
        let v2_table = <v2::FfiManagerBox as StableAbi>::LAYOUT;
        let table = <crate::ffi::FfiManagerBox as StableAbi>::LAYOUT;
        check_layout_compatibility(v2_table, table).unwrap_or_else(|e| {
            panic!("the current function table does not extend interface 2's: {e}")
        });
        // The current host's own check refuses an interface-2 library (its table has
        // fewer methods): why the loader checks against `compat::v2` next.
        assert!(check_layout_compatibility(module, v2_module).is_err());
        assert!(check_layout_compatibility(table, v2_table).is_err());
    }

    fn the_panic_field_is_a_compatible_addition_in_abi_stable_terms() {
        let current = <super::PluginModule_Ref as StableAbi>::LAYOUT;
        let v1 = <v1::PluginModule_Ref as StableAbi>::LAYOUT;
        // A host built before the field can check a library built with it (and then
        // refuses it by interface version, with a clear message)...
        check_layout_compatibility(v1, current)
            .unwrap_or_else(|e| panic!("a newer library passes an older host's check: {e}"));
        // ...but a library without the field fails this host's layout check, which is why
        // `MIN_INTERFACE_VERSION` is 2.
        assert!(check_layout_compatibility(current, v1).is_err());
        assert_eq!(super::MIN_INTERFACE_VERSION, 2);
        // A field changed in place is refused in both directions.
        let changed = <changed::PluginModule_Ref as StableAbi>::LAYOUT;
        assert!(check_layout_compatibility(v1, changed).is_err());
        assert!(check_layout_compatibility(current, changed).is_err());
    }
}
