//! A plugin that claims interface version 999, for the host's version check.

/// The root module, built by hand with a version no host accepts.
pub fn root_module() -> ta_persistence_api::ffi::PluginModule_Ref {
    ta_persistence_api::ffi::__private::module_with_version(
        999,
        "bad-version",
        "0.0.0",
        cfg!(panic = "unwind"),
        Vec::new(),
    )
}

ta_persistence_api::__export_root_module!(root_module);
