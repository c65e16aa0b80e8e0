//! The failure matrix: every way a configured plugin can fail to load, each a real file.

use std::path::PathBuf;

use crate::cdylib::{build_cdylib_in, plugin, workspace_root};

/// One case of the failure matrix: a library path and class, and the loader check that
/// must fail (1 to 8).
#[derive(Debug, Clone)]
pub struct FailureCase {
    /// A short name.
    pub name: &'static str,
    /// The path to configure.
    pub path: PathBuf,
    /// The class to configure.
    pub class: Option<&'static str>,
    /// The check that must fail.
    pub step: u8,
    /// Text the reason must contain.
    pub reason: &'static str,
}

/// A scratch directory for files the matrix writes.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ta-persistence-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A plugin built against a copy of the interface crate with the same name and version
/// but another layout (a separate workspace, built into its own target directory).
pub fn incompatible_plugin() -> PathBuf {
    let manifest = workspace_root().join("tests/fixture-plugins/incompatible/Cargo.toml");
    let target = workspace_root().join("target/fixture-incompatible");
    let target = target.to_string_lossy().into_owned();
    build_cdylib_in(
        &manifest,
        "ta-fixture-incompatible",
        &["--target-dir", &target],
    )
}

/// Every load-time failure case.
pub fn failure_matrix() -> Vec<FailureCase> {
    let dir = scratch();
    let not_a_library = dir.join("not-a-library.so");
    std::fs::write(&not_a_library, "this is text, not a shared library\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", not_a_library.display()));
    let misbehaving = plugin("ta-fixture-misbehaving");
    vec![
        FailureCase {
            name: "path missing",
            path: dir.join("no-such-plugin.so"),
            class: Some("Any"),
            step: 1,
            reason: "no such file",
        },
        FailureCase {
            name: "path is a directory",
            path: dir.clone(),
            class: Some("Any"),
            step: 1,
            reason: "directory",
        },
        FailureCase {
            name: "not a library",
            path: not_a_library,
            class: Some("Any"),
            step: 2,
            reason: "not a loadable library",
        },
        FailureCase {
            name: "no root module",
            path: plugin("ta-fixture-no-root"),
            class: Some("Any"),
            step: 3,
            reason: "not a ta-persistence plugin",
        },
        FailureCase {
            name: "incompatible layout",
            path: incompatible_plugin(),
            class: Some("Any"),
            step: 4,
            reason: "mismatched type: expected u32, found u64",
        },
        FailureCase {
            name: "interface version",
            path: plugin("ta-fixture-bad-version"),
            class: Some("Any"),
            step: 6,
            reason: "interface version 999 is not supported",
        },
        FailureCase {
            name: "class not exported",
            path: misbehaving.clone(),
            class: Some("NoSuchManager"),
            step: 7,
            reason: "it exports: FailingConstructor, PanickingConstructor, PanickingManager",
        },
        FailureCase {
            name: "class not set",
            path: misbehaving.clone(),
            class: None,
            step: 7,
            reason: "TA_PERSISTENCE_CLASS is not set; it exports: FailingConstructor",
        },
        FailureCase {
            name: "constructor error",
            path: misbehaving.clone(),
            class: Some("FailingConstructor"),
            step: 8,
            reason: "refusing to start",
        },
        FailureCase {
            name: "constructor panic",
            path: misbehaving,
            class: Some("PanickingConstructor"),
            step: 8,
            reason: "panicked: constructor exploded",
        },
    ]
}
