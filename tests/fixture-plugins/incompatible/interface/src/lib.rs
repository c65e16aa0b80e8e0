//! The root module with the real name, crate name and version, but `interface_version`
//! widened to `u64`: what a plugin built against a changed interface looks like.
#![allow(non_camel_case_types)]

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::RStr;
use abi_stable::{declare_root_module_statics, package_version_strings, StableAbi};

/// The changed root module.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// Widened from `u32`.
    pub interface_version: u64,
    /// The plugin's name.
    #[sabi(last_prefix_field)]
    pub plugin_name: RStr<'static>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "ta_persistence_plugin";
    const NAME: &'static str = "ta_persistence_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
