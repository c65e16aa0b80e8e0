//! The plugin author's side: [`FromConfig`], [`PluginConfig`] and the
//! [`export_plugin!`](crate::export_plugin) macro.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RResult, RSlice, RStr};

use super::manager::{panicked, Exported, FfiManagerBox};
use super::module::{ManagerEntry, PluginModule, PluginModule_Ref, INTERFACE_VERSION};
use super::types::{FfiError, FfiVar, HostHooks};
use crate::document_store::{DocumentManager, TypedDocuments};
use crate::error::{BoxError, Operation, PersistenceError};
use crate::manager::TaskPersistenceManager;

/// The configuration a plugin's constructor receives: every `TA_*` variable the host
/// sees (the equivalent of the Python original's `app_config`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PluginConfig {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for PluginConfig {
    // Values may be secrets (a Redis password): show only the names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginConfig")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PluginConfig {
    /// A configuration holding these variables.
    pub fn new<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        PluginConfig {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of a variable, if it is set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Every variable, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// How a plugin builds a manager from the host's configuration.
///
/// Implement it next to [`TaskPersistenceManager`] and name the type in
/// [`export_plugin!`](crate::export_plugin). An `Err` (or a panic) makes the host fall
/// back to its built-in store, with the error's text as the reason.
pub trait FromConfig: Sized {
    /// Builds the manager. Read your own variables from `config`, and reject malformed
    /// values with an error that names the variable.
    fn from_config(config: &PluginConfig) -> Result<Self, BoxError>;
}

/// The constructor the host calls for a document store's class: reads the
/// configuration, builds the manager with [`FromConfig`], and hands it over the boundary.
///
/// A panic in `from_config` is caught and reported as a plugin failure. An error keeps
/// its kind when it is a [`PersistenceError`] (so the application can tell "Redis is
/// down", `Unavailable`, from "wrong password", `Backend`); any other error is a
/// `Backend` error.
pub extern "C" fn construct<T>(
    vars: RSlice<'_, FfiVar>,
    hooks: HostHooks,
) -> RResult<FfiManagerBox, FfiError>
where
    T: DocumentManager + FromConfig,
{
    build(vars, hooks, |manager: T| manager)
}

/// [`construct`] for a typed manager: its documents are decoded and encoded by
/// [`TypedDocuments`].
pub extern "C" fn construct_typed<T>(
    vars: RSlice<'_, FfiVar>,
    hooks: HostHooks,
) -> RResult<FfiManagerBox, FfiError>
where
    T: TaskPersistenceManager + FromConfig,
{
    build(vars, hooks, TypedDocuments::<T>::new)
}

fn build<T, D>(
    vars: RSlice<'_, FfiVar>,
    hooks: HostHooks,
    wrap: impl FnOnce(T) -> D,
) -> RResult<FfiManagerBox, FfiError>
where
    T: FromConfig,
    D: DocumentManager,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        super::logging::install(hooks);
        let config = PluginConfig::new(
            vars.iter()
                .map(|v| (v.name.as_str().to_owned(), v.value.as_str().to_owned())),
        );
        T::from_config(&config).map(wrap)
    }));
    match outcome {
        Ok(Ok(manager)) => RResult::ROk(Exported::new(manager).into_ffi()),
        Ok(Err(err)) => RResult::RErr(FfiError::from_error(&construct_error(err))),
        Err(payload) => RResult::RErr(panicked(Operation::Construct, "", payload.as_ref())),
    }
}

/// A constructor's error as the host will see it: a [`PersistenceError`] keeps its
/// kind (and its id and cause); anything else becomes a `Backend` error.
fn construct_error(err: BoxError) -> PersistenceError {
    match err.downcast::<PersistenceError>() {
        Ok(err) => *err,
        Err(other) => PersistenceError::backend(Operation::Construct, "", other),
    }
}

/// Chooses a class's constructor at the export site: a [`DocumentManager`] (every
/// [`DocumentStore`](crate::DocumentStore) is one) keeps its documents as they are, any other manager goes
/// through [`TypedDocuments`].
///
/// The choice is made by method resolution on the concrete type the macro names: the
/// `DocumentManager` impl is on `Pick<T>` and is found first; the typed one is on
/// `&Pick<T>`, reached by one more auto-reference only when the first does not apply.
#[doc(hidden)]
#[derive(Debug)]
pub struct Pick<T>(std::marker::PhantomData<T>);

impl<T> Pick<T> {
    /// The picker for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Pick(std::marker::PhantomData)
    }
}

/// The document manager's entry; see [`Pick`].
#[doc(hidden)]
pub trait PickDocuments {
    /// The class entry.
    fn entry(&self, class: &'static str) -> ManagerEntry;
}

impl<T: DocumentManager + FromConfig> PickDocuments for Pick<T> {
    fn entry(&self, class: &'static str) -> ManagerEntry {
        ManagerEntry {
            class: RStr::from_str(class),
            new: construct::<T>,
        }
    }
}

/// The typed manager's entry; see [`Pick`].
#[doc(hidden)]
pub trait PickTyped {
    /// The class entry.
    fn entry(&self, class: &'static str) -> ManagerEntry;
}

impl<T: TaskPersistenceManager + FromConfig> PickTyped for &Pick<T> {
    fn entry(&self, class: &'static str) -> ManagerEntry {
        ManagerEntry {
            class: RStr::from_str(class),
            new: construct_typed::<T>,
        }
    }
}

/// Builds the root module. Used by [`export_plugin!`](crate::export_plugin), which passes
/// `cfg!(panic = "unwind")` as seen in the plugin crate.
#[doc(hidden)]
pub fn module(
    name: &'static str,
    version: &'static str,
    panic_unwinds: bool,
    managers: Vec<ManagerEntry>,
) -> PluginModule_Ref {
    module_with_version(INTERFACE_VERSION, name, version, panic_unwinds, managers)
}

/// Builds a root module claiming any interface version: for tests of the host's check.
#[doc(hidden)]
pub fn module_with_version(
    interface_version: u32,
    name: &'static str,
    version: &'static str,
    panic_unwinds: bool,
    managers: Vec<ManagerEntry>,
) -> PluginModule_Ref {
    // The root module lives as long as the library, which is never unloaded.
    let managers: &'static [ManagerEntry] = Vec::leak(managers);
    PluginModule {
        interface_version,
        plugin_name: RStr::from_str(name),
        plugin_version: RStr::from_str(version),
        managers: RSlice::from_slice(managers),
        panic_unwinds,
    }
    .leak_into_prefix()
}

/// Exports a plugin library's managers to the host.
///
/// Call it once, at the root of a `cdylib` crate, naming each manager type (it must
/// implement [`TaskPersistenceManager`](crate::TaskPersistenceManager) and
/// [`FromConfig`](crate::ffi::FromConfig)). The class name the host selects with
/// `TA_PERSISTENCE_CLASS` is the type's name, or the string given before `=>`.
///
/// The macro records whether the crate is built with `panic = "unwind"` (evaluated in the
/// expansion, so in the plugin crate), and the host refuses a plugin built with
/// `panic = "abort"`: only an unwinding panic can be turned into an error instead of
/// ending the host's process.
///
/// ```ignore
/// ta_persistence_api::export_plugin! {
///     name: env!("CARGO_PKG_NAME"),
///     version: env!("CARGO_PKG_VERSION"),
///     managers: [MyTaskPersistenceManager],
/// }
/// // or, with explicit class names:
/// ta_persistence_api::export_plugin! {
///     name: "my-plugin",
///     version: "1.0.0",
///     managers: ["MyManager" => crate::store::Store],
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, managers: [$($ty:ident),+ $(,)?] $(,)?) => {
        $crate::export_plugin! {
            name: $name,
            version: $version,
            managers: [$(::core::stringify!($ty) => $ty),+],
        }
    };
    (name: $name:expr, version: $version:expr, managers: [$($class:expr => $ty:ty),+ $(,)?] $(,)?) => {
        #[doc(hidden)]
        pub fn __ta_persistence_root_module() -> $crate::ffi::PluginModule_Ref {
            $crate::ffi::__private::module(
                $name,
                $version,
                ::core::cfg!(panic = "unwind"),
                {
                    #[allow(unused_imports)]
                    use $crate::ffi::__private::{PickDocuments as _, PickTyped as _};
                    ::std::vec![$((&$crate::ffi::__private::Pick::<$ty>::new()).entry($class)),+]
                },
            )
        }
        $crate::__export_root_module!(__ta_persistence_root_module);
    };
}

/// Emits the library header the host looks for, with `$module` as the root module's
/// constructor. Prefer [`export_plugin!`](crate::export_plugin).
#[doc(hidden)]
#[macro_export]
macro_rules! __export_root_module {
    ($module:path) => {
        // The symbol name is abi_stable's (`abi_stable::library::ROOT_MODULE_LOADER_NAME`,
        // checked by a test of this crate); the header is what `#[export_root_module]`
        // would emit, spelled with paths that resolve through this crate so a plugin
        // needs no direct dependency on abi_stable.
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::ffi::__private::LibHeader = {
            extern "C" fn __ta_erased_module() -> $crate::ffi::__private::RootModuleResult {
                $crate::ffi::__private::__call_root_module_loader($module)
            }
            // SAFETY: the constructor returns the erased `PluginModule_Ref` that
            // `__call_root_module_loader` built from `$module`, whose type is the one named.
            unsafe {
                $crate::ffi::__private::LibHeader::from_constructor::<$crate::ffi::PluginModule_Ref>(
                    __ta_erased_module,
                    $crate::ffi::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_for() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn config_debug_hides_values() {
        let c = super::PluginConfig::new([("TA_REDIS_PWD", "hunter2")]);
        let shown = format!("{c:?}");
        assert!(shown.contains("TA_REDIS_PWD"));
        assert!(!shown.contains("hunter2"));
        assert_eq!(c.get("TA_REDIS_PWD"), Some("hunter2"));
    }
}
