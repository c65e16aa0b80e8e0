//! Plugin libraries built from earlier commits of this repository: the real libraries
//! of earlier interface versions, to prove what the current host does with them.
//!
//! The sources come from the repository's own history (`git archive`), so this needs a
//! clone with that history; a shallow one gives `None`, which a test reports and skips,
//! unless `CI` is set, where a missing history is a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::cdylib::{build_cdylib_in, workspace_root};

/// The last commit of interface 1 (before the root module recorded the panic strategy).
pub const INTERFACE_1: &str = "cfda6a20925632383fea9cf275745c10c6cc704a";

/// The last release of interface 2 (before `list_tasks` and `purge`).
pub const INTERFACE_2: &str = "8aae3d7";

/// The memory plugin as built from `commit`: its sources (`plugin-api`,
/// `plugins/memory`, the workspace manifest and lock file) are extracted from the history,
/// the workspace is cut down to those two crates, and the plugin is built into a target
/// directory of its own (the library's file name is the current plugin's). `None` when
/// the history does not hold the commit; panics if the build fails.
pub fn memory_plugin_at(commit: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(commit) {
        return Some(path.clone());
    }
    let root = workspace_root();
    let known = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !known {
        return None;
    }
    let base = root.join("target/released-plugins");
    let src = base.join(format!("src-{commit}"));
    if !src.join("Cargo.toml").exists() {
        extract(&root, commit, &src);
    }
    let target = base.join("target").to_string_lossy().into_owned();
    let library = build_cdylib_in(
        &src.join("Cargo.toml"),
        "ta-plugin-memory",
        &["--target-dir", &target],
    );
    // Every commit's library has the same file name in the shared target directory: keep
    // this one's under a name of its own before another commit is built.
    let kept = base.join(format!(
        "{commit}-{}",
        library
            .file_name()
            .map_or_else(|| "plugin".to_owned(), |n| n.to_string_lossy().into_owned())
    ));
    std::fs::copy(&library, &kept)
        .unwrap_or_else(|e| panic!("cannot copy {}: {e}", library.display()));
    built.insert(commit.to_owned(), kept.clone());
    Some(kept)
}

/// Writes `commit`'s interface crate and memory plugin to `dest`, as a workspace of just
/// those two crates (the rest of that commit's workspace is not extracted).
fn extract(root: &Path, commit: &str, dest: &Path) {
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", partial.display()));
    let tar = partial.join("sources.tar");
    let status = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["archive", "--format=tar", "-o"])
        .arg(&tar)
        .args([
            commit,
            "plugin-api",
            "plugins/memory",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "git archive of {commit} failed"
    );
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&partial)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "cannot unpack {}",
        tar.display()
    );
    let manifest = partial.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest.display()));
    std::fs::write(&manifest, only_two_members(&text))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", manifest.display()));
    std::fs::rename(&partial, dest)
        .unwrap_or_else(|e| panic!("cannot rename to {}: {e}", dest.display()));
}

/// The workspace manifest with `members` cut down to the two extracted crates, and
/// without `exclude` and `default-members`, which name crates that are not there.
fn only_two_members(manifest: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in manifest.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if skipping {
            skipping = !line.trim_end().ends_with(']');
            continue;
        }
        if matches!(key, "members" | "exclude" | "default-members") {
            if key == "members" {
                out.push_str("members = [\"plugin-api\", \"plugins/memory\"]\n");
            }
            skipping = line.contains('[') && !line.trim_end().ends_with(']');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether a test that needs the history must fail rather than skip without it.
pub fn history_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_manifest_keeps_only_the_two_crates() {
        let manifest = "[workspace]\nresolver = \"2\"\nmembers = [\n    \"plugin-api\",\n    \"host\",\n]\nexclude = [\"x\"]\ndefault-members = [\"host\"]\n\n[workspace.package]\nedition = \"2021\"\n";
        let cut = super::only_two_members(manifest);
        assert_eq!(
            cut,
            "[workspace]\nresolver = \"2\"\nmembers = [\"plugin-api\", \"plugins/memory\"]\n\n[workspace.package]\nedition = \"2021\"\n"
        );
    }
}
