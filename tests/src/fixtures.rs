//! The failure matrix: every way a configured plugin can fail to load, each a real file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cdylib::{build_cdylib_in, plugin, workspace_root};

/// One case of the failure matrix: a library path and class, and the loader check that
/// must fail (1 to 10).
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

/// A scratch directory for the files tests write (copies of plugins, among them), one per
/// test process, under the build directory rather than the system's temporary directory:
/// the copies are large, and each run would otherwise leave tens of megabytes behind.
/// The first use in a process removes the directories of earlier processes that are no
/// longer running.
fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root().join("target/test-scratch");
        let own = std::process::id().to_string();
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                // Only where it can be told whether that process still runs.
                let running =
                    !cfg!(target_os = "linux") || Path::new("/proc").join(name.as_ref()).exists();
                if name != own && !running {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = root.join(own);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    })
    .clone()
}

/// Writes a scratch file whole or not at all: tests run in parallel threads and may ask
/// for the same file at once, and a reader must never see one half-written (a short file
/// is exactly what some cases are about).
fn write_scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch();
    let path = dir.join(name);
    let partial = dir.join(format!("{name}.{:?}.partial", std::thread::current().id()));
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, &path))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
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

/// A plugin built with `panic = "abort"` (a separate workspace, since the panic strategy
/// is a profile setting, built into its own target directory).
pub fn panic_abort_plugin() -> PathBuf {
    let manifest = workspace_root().join("tests/fixture-plugins/panic-abort/Cargo.toml");
    let target = workspace_root().join("target/fixture-panic-abort");
    let target = target.to_string_lossy().into_owned();
    build_cdylib_in(
        &manifest,
        "ta-fixture-panic-abort",
        &["--target-dir", &target],
    )
}

/// The sizes the truncated copies of a real plugin are cut to.
pub const TRUNCATED_SIZES: [u64; 4] = [1 << 10, 4 << 10, 64 << 10, 1 << 20];

/// A copy of the memory plugin's library cut to its first `size` bytes, as an interrupted
/// copy or download leaves it. The dynamic loader dies of `SIGBUS` on such a file.
pub fn truncated_plugin(size: u64) -> PathBuf {
    let whole = std::fs::read(plugin("ta-plugin-memory"))
        .unwrap_or_else(|e| panic!("cannot read the memory plugin: {e}"));
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    assert!(
        size < whole.len(),
        "the memory plugin ({} bytes) is smaller than the cut at {size} bytes",
        whole.len()
    );
    write_scratch(&format!("truncated-{size}.so"), &whole[..size])
}

/// A complete copy of the memory plugin whose needed `libgcc_s.so.1` is renamed to a
/// library that does not exist: a sound file the dynamic loader still cannot open.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn missing_dependency_plugin() -> PathBuf {
    let mut bytes = std::fs::read(plugin("ta-plugin-memory"))
        .unwrap_or_else(|e| panic!("cannot read the memory plugin: {e}"));
    let needed = b"libgcc_s.so.1\0";
    let mut renamed = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(needed.len()).position(|w| w == needed) {
        // Same length, so every offset in the file stays valid.
        bytes[at + i..at + i + 8].copy_from_slice(b"libgcc_Q");
        renamed += 1;
        at += i + needed.len();
    }
    assert!(renamed > 0, "the memory plugin does not name libgcc_s.so.1");
    write_scratch("missing-dependency.so", &bytes)
}

/// Every load-time failure case.
pub fn failure_matrix() -> Vec<FailureCase> {
    let dir = scratch();
    let not_a_library = write_scratch("not-a-library.so", b"this is text, not a library\n");
    let misbehaving = plugin("ta-fixture-misbehaving");
    let mut cases = vec![
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
            reason: "not a shared library for this platform: not an object file",
        },
        FailureCase {
            name: "truncated to 1 KB",
            path: truncated_plugin(TRUNCATED_SIZES[0]),
            class: Some("MemoryTaskPersistenceManager"),
            step: 2,
            reason: "truncated or damaged library",
        },
        FailureCase {
            name: "truncated to 4 KB",
            path: truncated_plugin(TRUNCATED_SIZES[1]),
            class: Some("MemoryTaskPersistenceManager"),
            step: 2,
            reason: "truncated or damaged library",
        },
        FailureCase {
            name: "truncated to 64 KB",
            path: truncated_plugin(TRUNCATED_SIZES[2]),
            class: Some("MemoryTaskPersistenceManager"),
            step: 2,
            reason: "truncated or damaged library",
        },
        FailureCase {
            name: "truncated to 1 MB",
            path: truncated_plugin(TRUNCATED_SIZES[3]),
            class: Some("MemoryTaskPersistenceManager"),
            step: 2,
            reason: "truncated or damaged library",
        },
        FailureCase {
            name: "no root module",
            path: plugin("ta-fixture-no-root"),
            class: Some("Any"),
            step: 4,
            reason: "not a ta-persistence plugin",
        },
        FailureCase {
            name: "incompatible layout",
            path: incompatible_plugin(),
            class: Some("Any"),
            step: 5,
            reason: "mismatched type: expected u32, found u64",
        },
        FailureCase {
            name: "interface version",
            path: plugin("ta-fixture-bad-version"),
            class: Some("Any"),
            step: 7,
            reason: "interface version 999 is not supported",
        },
        FailureCase {
            name: "built with panic = abort",
            path: panic_abort_plugin(),
            class: Some("AbortingManager"),
            step: 8,
            reason: "built with panic = \"abort\", so a panic in it would end this process; rebuild it with panic = \"unwind\"",
        },
        FailureCase {
            name: "class not exported",
            path: misbehaving.clone(),
            class: Some("NoSuchManager"),
            step: 9,
            reason: "it exports: FailingConstructor, PanickingConstructor, PanickingManager",
        },
        FailureCase {
            name: "class not set",
            path: misbehaving.clone(),
            class: None,
            step: 9,
            reason: "TA_PERSISTENCE_CLASS is not set; it exports: FailingConstructor",
        },
        FailureCase {
            name: "constructor error",
            path: misbehaving.clone(),
            class: Some("FailingConstructor"),
            step: 10,
            reason: "refusing to start",
        },
        FailureCase {
            name: "constructor panic",
            path: misbehaving,
            class: Some("PanickingConstructor"),
            step: 10,
            reason: "panicked: constructor exploded",
        },
    ];
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    cases.push(FailureCase {
        name: "a needed library is missing",
        path: missing_dependency_plugin(),
        class: Some("MemoryTaskPersistenceManager"),
        step: 3,
        reason: "not a loadable library: libgcc_Q.so.1: cannot open shared object file",
    });
    cases
}

/// A complete shared library (no plugin) whose static initialiser aborts the process that
/// opens it, or with `TA_FIXTURE_HANG` set hangs it (a separate workspace, built into its
/// own target directory: nothing else may ever load it).
pub fn crash_on_load_library() -> PathBuf {
    let manifest = workspace_root().join("tests/fixture-plugins/crash-on-load/Cargo.toml");
    let target = workspace_root().join("target/fixture-crash-on-load");
    let target = target.to_string_lossy().into_owned();
    build_cdylib_in(
        &manifest,
        "ta-fixture-crash-on-load",
        &["--target-dir", &target],
    )
}

/// A fresh, empty directory that only this user can write (any earlier one by that name
/// is removed), for tests that copy plugins into a directory of their own.
pub fn private_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    // A leftover from an earlier run of the same process id would mix in old files.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("cannot restrict {}: {e}", dir.display()));
    }
    dir
}

/// Copies `from` to `dir/name` (whole or not at all) and returns the new path.
pub fn copy_into(dir: &std::path::Path, name: &str, from: &std::path::Path) -> PathBuf {
    let bytes =
        std::fs::read(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
    write_into(dir, name, &bytes)
}

/// Writes `bytes` to `dir/name` through a rename, so that the path names a new file (as
/// a deployment that replaces a library does) and no reader sees half of it.
pub fn write_into(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, &path))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}
