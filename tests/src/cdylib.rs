//! Builds a workspace plugin crate and returns the path of its library file.
//!
//! Tests load real plugin libraries, never mocks. Cargo does not expose a cdylib's path
//! to tests, so this runs `cargo build -p <crate> --message-format=json` (fast when the
//! crate is already built) and reads the `cdylib` artifact from cargo's own report,
//! instead of guessing at `target/` layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `cargo build` with `args` on `manifest`'s workspace and returns cargo's
/// `compiler-artifact` reports and the command as shown in messages. Panics with the
/// command in the message if the build fails.
fn cargo_build(manifest: &Path, args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--message-format=json-render-diagnostics")
        .args(args);
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "a test build failed; run it by hand to see why:\n  {shown}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let artifacts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .collect();
    (artifacts, shown)
}

/// Builds `package` (in `manifest`'s workspace, with `extra` cargo arguments) and
/// returns its cdylib. Panics with the build command in the message if that fails.
pub fn build_cdylib_in(manifest: &Path, package: &str, extra: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let key = format!("{}|{package}|{}", manifest.display(), extra.join(" "));
    let built = BUILT.get_or_init(Default::default);
    // Hold the lock while building: concurrent cargo invocations would only wait on
    // each other's build-directory lock anyway.
    let mut built = built.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let mut args = vec!["-p", package];
    args.extend_from_slice(extra);
    let (artifacts, shown) = cargo_build(manifest, &args);
    let path = artifacts
        .iter()
        .filter(|msg| {
            msg["target"]["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "cdylib"))
        })
        .filter(|msg| {
            msg["package_id"]
                .as_str()
                .is_some_and(|id| id.contains(package))
                || msg["target"]["name"].as_str() == Some(&package.replace('-', "_"))
        })
        .flat_map(|msg| msg["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| {
            f.extension()
                .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
        })
        .unwrap_or_else(|| panic!("{shown} reported no cdylib for {package}"));
    built.insert(key, path.clone());
    path
}

/// Builds a plugin crate of this workspace and returns its library file.
pub fn plugin(package: &str) -> PathBuf {
    build_cdylib_in(&workspace_root().join("Cargo.toml"), package, &[])
}

/// Builds the `ta-persist` command line and returns its executable.
pub fn ta_persist() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = workspace_root().join("Cargo.toml");
            let (artifacts, shown) =
                cargo_build(&manifest, &["-p", "ta-persistence", "--bin", "ta-persist"]);
            artifacts
                .iter()
                .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
                .unwrap_or_else(|| panic!("{shown} reported no executable"))
        })
        .clone()
}

/// Builds an example of the host crate and returns its executable.
pub fn host_example(name: &str) -> PathBuf {
    let manifest = workspace_root().join("Cargo.toml");
    let (artifacts, shown) = cargo_build(&manifest, &["-p", "ta-persistence", "--example", name]);
    artifacts
        .iter()
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("{shown} reported no executable"))
}
