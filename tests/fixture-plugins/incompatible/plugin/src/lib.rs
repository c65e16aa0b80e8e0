//! A plugin built against the changed interface.

use abi_stable::export_root_module;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::RStr;
use ta_persistence_api::{PluginModule, PluginModule_Ref};

/// The root module.
#[export_root_module]
pub fn root_module() -> PluginModule_Ref {
    PluginModule {
        interface_version: 1,
        plugin_name: RStr::from_str("incompatible"),
    }
    .leak_into_prefix()
}
