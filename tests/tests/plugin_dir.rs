//! The plugin directory: `ta-persist plugins` on a directory of good, damaged, foreign
//! and misbehaving files, and the factory finding a plugin by its bare name there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use ta_persistence::config::{platform_file_name, Config, MODULE_VAR, PLUGIN_DIR_VAR};
use ta_persistence::loader::LoadError;
use ta_persistence::{ActiveBackend, PersistenceFactory};
use ta_persistence_tests::cdylib::{plugin, ta_persist};
use ta_persistence_tests::fixtures::{
    copy_into, crash_on_load_library, private_dir, truncated_plugin, write_into, TRUNCATED_SIZES,
};

/// Runs `ta-persist` with only the given `TA_*` variables (and `extra` others) set.
fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(ta_persist());
    cmd.args(args).env("RUST_LOG", "off");
    for (name, _) in std::env::vars() {
        if name.starts_with("TA_") {
            cmd.env_remove(name);
        }
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd.output().expect("ta-persist runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A directory holding a good plugin, a truncated copy of it, a text file named like a
/// library, a plugin built for another interface version, a library whose initialiser
/// aborts, and a file with another suffix.
#[cfg(target_os = "linux")]
fn mixed_dir() -> PathBuf {
    let dir = private_dir("plugin-dir-mixed");
    copy_into(
        &dir,
        &platform_file_name("memory"),
        &plugin("ta-plugin-memory"),
    );
    copy_into(
        &dir,
        &platform_file_name("cut"),
        &truncated_plugin(TRUNCATED_SIZES[2]),
    );
    write_into(&dir, &platform_file_name("notes"), b"not a library\n");
    copy_into(
        &dir,
        &platform_file_name("old"),
        &plugin("ta-fixture-bad-version"),
    );
    copy_into(&dir, &platform_file_name("crash"), &crash_on_load_library());
    write_into(&dir, "README.md", b"# plugins\n");
    dir
}

#[cfg(target_os = "linux")]
fn entry<'a>(listing: &'a Value, name: &str) -> &'a Value {
    let file = platform_file_name(name);
    listing["libraries"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["file"] == file.as_str()))
        .unwrap_or_else(|| panic!("{file} is not listed: {listing:#}"))
}

// The misbehaving initialiser is an ELF one, and `sha256sum` is GNU coreutils.
#[cfg(target_os = "linux")]
#[test]
fn the_listing_tells_good_damaged_foreign_and_misbehaving_files_apart() {
    let dir = mixed_dir();
    let out = run(&["plugins", dir.to_str().unwrap(), "--json"], &[]);
    // Not every library passes: exit code 1, but a listing all the same.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).expect("plugins --json");
    assert_eq!(
        listing["libraries"].as_array().map(Vec::len),
        Some(5),
        "{listing:#}"
    );
    assert_eq!(
        listing["ignored"],
        serde_json::json!(["README.md"]),
        "{listing:#}"
    );

    let good = entry(&listing, "memory");
    assert_eq!(good["status"], "ok", "{good}");
    assert_eq!(good["plugin"], "ta-plugin-memory", "{good}");
    assert_eq!(good["version"], "0.1.0", "{good}");
    assert_eq!(
        good["interface_version"],
        ta_persistence::api::ffi::INTERFACE_VERSION,
        "{good}"
    );
    assert_eq!(
        good["classes"],
        serde_json::json!(["MemoryTaskPersistenceManager"]),
        "{good}"
    );
    let bytes = std::fs::read(dir.join(platform_file_name("memory"))).unwrap();
    let digest = ta_persistence::loader::to_hex(&sha256_of(&bytes));
    assert_eq!(good["sha256"], digest.as_str(), "{good}");

    let cut = entry(&listing, "cut");
    assert_eq!(cut["status"], "damaged", "{cut}");
    assert_eq!(cut["failed_check"], 2, "{cut}");

    let notes = entry(&listing, "notes");
    assert_eq!(notes["status"], "not-a-library", "{notes}");
    assert_eq!(notes["failed_check"], 2, "{notes}");

    let old = entry(&listing, "old");
    assert_eq!(old["status"], "refused", "{old}");
    assert_eq!(old["failed_check"], 7, "{old}");
    assert_eq!(old["interface_version"], 999, "{old}");

    // Its initialiser aborted the child process, not the lister.
    let crash = entry(&listing, "crash");
    assert_eq!(crash["status"], "crashed", "{crash}");
    assert!(
        crash["reason"].as_str().unwrap().contains("signal 6"),
        "{crash}"
    );
}

/// The SHA-256 of `bytes` as the system's `sha256sum` computes it, independently of the
/// host.
#[cfg(target_os = "linux")]
fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child
        .stdin
        .take()
        .expect("a pipe to sha256sum")
        .write_all(bytes)
        .expect("sha256sum reads its input");
    let out = child.wait_with_output().expect("sha256sum answers");
    ta_persistence::loader::parse_hex(&String::from_utf8_lossy(&out.stdout))
        .expect("sha256sum prints a digest")
}

// The misbehaving initialiser is an ELF one, and `sha256sum` is GNU coreutils.
#[cfg(target_os = "linux")]
#[test]
fn the_text_listing_defaults_to_the_configured_directory() {
    let dir = mixed_dir();
    let out = run(&["plugins"], &[(PLUGIN_DIR_VAR, dir.to_str().unwrap())]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let line = |name: &str| {
        let file = platform_file_name(name);
        shown
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{file}:")))
            .unwrap_or_else(|| panic!("no line for {file}:\n{shown}"))
            .to_owned()
    };
    assert!(
        line("memory").contains(&format!(
            "ok: ta-plugin-memory 0.1.0, interface {}, classes: MemoryTaskPersistenceManager",
            ta_persistence::api::ffi::INTERFACE_VERSION
        )),
        "{shown}"
    );
    assert!(line("cut").contains("DAMAGED (check 2)"), "{shown}");
    assert!(line("notes").contains("NOT-A-LIBRARY (check 2)"), "{shown}");
    assert!(line("old").contains("REFUSED (check 7)"), "{shown}");
    assert!(line("crash").contains("CRASHED"), "{shown}");
    assert!(!shown.contains("README.md:"), "{shown}");
    assert!(
        shown.contains("5 libraries, 1 pass the loader's checks; 1 other files ignored"),
        "{shown}"
    );

    // Without a directory: a usage error naming the variable.
    let out = run(&["plugins"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(PLUGIN_DIR_VAR), "{}", text(&out));
}

// The misbehaving initialiser is an ELF one, and `sha256sum` is GNU coreutils.
#[cfg(target_os = "linux")]
#[test]
fn a_directory_of_good_plugins_passes_and_a_hanging_initialiser_is_cut_off() {
    let dir = private_dir("plugin-dir-good");
    copy_into(
        &dir,
        &platform_file_name("memory"),
        &plugin("ta-plugin-memory"),
    );
    let out = run(&["plugins", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let dir = private_dir("plugin-dir-hang");
    copy_into(&dir, &platform_file_name("hang"), &crash_on_load_library());
    let out = run(
        &["plugins", dir.to_str().unwrap(), "--json"],
        &[
            ("TA_FIXTURE_HANG", "1"),
            ("TA_PERSISTENCE_TIMEOUT_MS", "3000"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).expect("plugins --json");
    let hang = entry(&listing, "hang");
    assert_eq!(hang["status"], "hung", "{hang}");
    assert!(
        hang["reason"].as_str().unwrap().contains("3000 ms"),
        "{hang}"
    );
}

fn factory_for(module: &str, dir: &Path) -> PersistenceFactory {
    let config = Config::from_vars([
        (MODULE_VAR, module),
        (PLUGIN_DIR_VAR, dir.to_str().expect("a UTF-8 scratch path")),
        ("TA_PERSISTENCE_CLASS", "MemoryTaskPersistenceManager"),
    ])
    .expect("a valid configuration");
    PersistenceFactory::from_config(&config).expect("not strict: never an error")
}

#[tokio::test]
async fn the_factory_finds_a_bare_name_in_the_plugin_dir() {
    let dir = private_dir("plugin-dir-factory");
    let file = platform_file_name("memory");
    let path = copy_into(&dir, &file, &plugin("ta-plugin-memory"));
    let canonical = std::fs::canonicalize(&path).unwrap();

    // By its file name, and by its name without the platform's prefix and suffix.
    for module in [file.as_str(), "memory"] {
        let factory = factory_for(module, &dir);
        let ActiveBackend::Plugin { path, plugin, .. } = factory.active_backend() else {
            panic!("{module}: {:?}", factory.active_backend());
        };
        assert_eq!(path, &canonical, "{module}");
        assert_eq!(plugin, "ta-plugin-memory", "{module}");
        factory.get_persistence_manager().health().await.unwrap();
    }

    // A name that is not there: the fallback names the path it looked for.
    let factory = factory_for("absent", &dir);
    let Some(LoadError::NotFound { path }) = factory.fallback_reason() else {
        panic!("{:?}", factory.active_backend());
    };
    assert_eq!(path, &dir.join(platform_file_name("absent")));

    // A name that leaves the directory is a configuration error.
    let err = Config::from_vars([
        (MODULE_VAR, format!("../{file}").as_str()),
        (PLUGIN_DIR_VAR, dir.to_str().unwrap()),
    ])
    .unwrap_err();
    assert!(err.to_string().contains(MODULE_VAR), "{err}");
}

// The misbehaving initialiser is an ELF one, and `sha256sum` is GNU coreutils.
#[cfg(target_os = "linux")]
#[test]
fn info_shows_the_plugin_found_in_the_dir_its_pin_and_who_else_can_write_it() {
    let dir = private_dir("plugin-dir-info");
    let path = copy_into(
        &dir,
        &platform_file_name("memory"),
        &plugin("ta-plugin-memory"),
    );
    let bytes = std::fs::read(&path).unwrap();
    let pin = ta_persistence::loader::to_hex(&sha256_of(&bytes));
    let vars = [
        (PLUGIN_DIR_VAR, dir.to_str().unwrap()),
        (MODULE_VAR, "memory"),
        ("TA_PERSISTENCE_CLASS", "MemoryTaskPersistenceManager"),
        ("TA_PERSISTENCE_MODULE_SHA256", pin.as_str()),
    ];
    let out = run(&["info", "--json"], &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let info: Value = serde_json::from_slice(&out.stdout).expect("info --json");
    assert_eq!(info["backend"], "plugin", "{info}");
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_eq!(info["path"], canonical.to_str().unwrap(), "{info}");
    assert_eq!(info["pinned_sha256"], pin.as_str(), "{info}");
    assert_eq!(info["warnings"], serde_json::json!([]), "{info}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let out = run(&["info"], &vars);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shown}");
        assert!(
            shown.contains(&format!("pinned:   sha256 {pin}")),
            "{shown}"
        );
        assert!(
            shown.contains("warning:  plugin file") && shown.contains("writable by anyone"),
            "{shown}"
        );
        // Strict: refused, with the reason.
        let strict = [vars.as_slice(), &[("TA_PERSISTENCE_STRICT", "true")]].concat();
        let out = run(&["info"], &strict);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("writable by anyone"), "{}", text(&out));
    }

    // A wrong pin: the fallback, naming the mismatch.
    let mut wrong = vars;
    let zeros = "0".repeat(64);
    wrong[3].1 = zeros.as_str();
    let out = run(&["info", "--json"], &wrong);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    let info: Value = serde_json::from_slice(&out.stdout).expect("info --json");
    assert_eq!(info["failed_check"], 1, "{info}");
    assert!(
        info["reason"]
            .as_str()
            .unwrap()
            .contains("does not match the pinned"),
        "{info}"
    );
}
