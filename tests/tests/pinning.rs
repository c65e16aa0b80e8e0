//! A pinned plugin: `TA_PERSISTENCE_MODULE_SHA256` admits only the file with that hash
//! (a wrong one, or a file swapped after configuration, falls back or refuses when
//! strict), and a plugin file or directory that others can write is reported, and refused
//! when strict.

use std::path::{Path, PathBuf};

use ta_persistence::config::{platform_file_name, Config, ConfigWarning};
use ta_persistence::loader::{
    open_library, open_library_with, to_hex, Exposure, LoadError, LoadOptions, PluginFile,
    Sha256Digest,
};
use ta_persistence::{ActiveBackend, FactoryError, PersistenceFactory};
use ta_persistence_tests::cdylib::plugin;
use ta_persistence_tests::fixtures::{copy_into, private_dir, write_into};

const CLASS: &str = "MemoryTaskPersistenceManager";

/// A private copy of the memory plugin and its SHA-256 (as the loader computes it when
/// it opens the file).
fn memory_copy(dir_name: &str) -> (PathBuf, Sha256Digest) {
    let dir = private_dir(dir_name);
    let path = copy_into(
        &dir,
        &platform_file_name("memory"),
        &plugin("ta-plugin-memory"),
    );
    let hashed = LoadOptions::default().with_hash(true);
    let (lib, _) = open_library_with(&path, &hashed).expect("the memory plugin loads");
    (path, *lib.sha256().expect("hashed when asked"))
}

fn pinned(path: &Path, digest: Sha256Digest) -> Config {
    Config::plugin(path, CLASS).with_sha256(digest)
}

#[tokio::test]
async fn the_right_hash_loads() {
    let (path, digest) = memory_copy("pin-right");
    // The digest is the file's, not a value the loader made up: sha256sum (GNU
    // coreutils) agrees.
    #[cfg(target_os = "linux")]
    {
        let out = std::process::Command::new("sha256sum")
            .arg(&path)
            .output()
            .expect("sha256sum runs");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.starts_with(&to_hex(&digest)), "{listed}");
    }

    for strict in [false, true] {
        let factory =
            PersistenceFactory::from_config(&pinned(&path, digest).with_strict(strict)).unwrap();
        assert!(
            matches!(factory.active_backend(), ActiveBackend::Plugin { .. }),
            "strict={strict}: {:?}",
            factory.active_backend()
        );
        factory.get_persistence_manager().health().await.unwrap();
    }
    // Read from the environment's form of the variable too.
    let config = Config::from_vars([
        ("TA_PERSISTENCE_MODULE", path.to_str().unwrap()),
        ("TA_PERSISTENCE_CLASS", CLASS),
        (
            "TA_PERSISTENCE_MODULE_SHA256",
            &to_hex(&digest).to_uppercase(),
        ),
    ])
    .unwrap();
    assert_eq!(config.module_sha256, Some(digest));
    let factory = PersistenceFactory::from_config(&config).unwrap();
    assert!(!factory.active_backend().is_fallback());
}

#[tokio::test]
async fn a_wrong_hash_falls_back_or_refuses_when_strict() {
    let (path, digest) = memory_copy("pin-wrong");
    let mut wrong = digest;
    wrong[0] ^= 1;
    let factory = PersistenceFactory::from_config(&pinned(&path, wrong)).unwrap();
    let Some(
        reason @ LoadError::PinMismatch {
            expected, found, ..
        },
    ) = factory.fallback_reason()
    else {
        panic!("{:?}", factory.active_backend());
    };
    assert_eq!(reason.step(), 1);
    assert_eq!(expected, &to_hex(&wrong));
    assert_eq!(found, &to_hex(&digest));
    assert!(
        reason.to_string().contains("TA_PERSISTENCE_MODULE_SHA256"),
        "{reason}"
    );

    let err = PersistenceFactory::from_config(&pinned(&path, wrong).with_strict(true)).unwrap_err();
    assert!(
        matches!(err, FactoryError::Plugin(LoadError::PinMismatch { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_swapped_after_configuration_is_refused() {
    let (path, digest) = memory_copy("pin-swapped");
    let config = pinned(&path, digest).with_strict(true);
    // Loaded once as pinned: the library is open in this process.
    PersistenceFactory::from_config(&config).unwrap();

    // Another plugin takes the file's place (same path, different content).
    let dir = path.parent().unwrap();
    let other = std::fs::read(plugin("ta-fixture-misbehaving")).unwrap();
    write_into(dir, &platform_file_name("memory"), &other);
    let err = PersistenceFactory::from_config(&config).unwrap_err();
    let FactoryError::Plugin(LoadError::PinMismatch { found, .. }) = &err else {
        panic!("{err}");
    };
    assert_ne!(found, &to_hex(&digest));
    let factory = PersistenceFactory::from_config(&config.clone().with_strict(false)).unwrap();
    assert!(factory.active_backend().is_fallback());

    // Unpinned, the path's new content is what is opened, not the library loaded from
    // that path before.
    let lib = open_library(&path).unwrap();
    assert_eq!(lib.name(), "misbehaving");
    assert_eq!(lib.sha256(), None, "not hashed unless pinned or asked");
}

/// The window the pin closes: the path is replaced after the file was hashed and before
/// the dynamic loader opens it. What loads is the file that was hashed.
#[cfg(target_os = "linux")]
#[test]
fn a_file_swapped_between_the_hash_and_the_load_does_not_get_loaded() {
    let dir = private_dir("pin-between");
    let name = platform_file_name("swapped");
    let path = copy_into(&dir, &name, &plugin("ta-plugin-memory"));
    let hashed = LoadOptions::default().with_hash(true);
    let (lib, _) = open_library_with(&plugin("ta-plugin-memory"), &hashed).unwrap();
    let memory = *lib.sha256().unwrap();
    let file = PluginFile::open(&path, &LoadOptions::default().with_sha256(memory)).unwrap();
    let other = std::fs::read(plugin("ta-fixture-misbehaving")).unwrap();
    write_into(&dir, &name, &other);
    let lib = file.load().unwrap();
    assert_eq!(lib.name(), "ta-plugin-memory");
    assert_eq!(lib.sha256(), Some(&memory));
    // The path does hold the other plugin now, and it is refused under the pin.
    let err = PluginFile::open(&path, &LoadOptions::default().with_sha256(memory)).unwrap_err();
    assert!(matches!(err, LoadError::PinMismatch { .. }), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_plugin_others_can_write_is_reported_and_refused_when_strict() {
    use std::os::unix::fs::PermissionsExt;
    let (path, digest) = memory_copy("pin-exposed");
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));

    // Private: no warning.
    mode(&path, 0o644).unwrap();
    let factory = PersistenceFactory::from_config(&pinned(&path, digest)).unwrap();
    assert!(factory.warnings().is_empty(), "{:?}", factory.warnings());

    // Writable by anyone: served, with a warning naming the file...
    mode(&path, 0o666).unwrap();
    let factory = PersistenceFactory::from_config(&pinned(&path, digest)).unwrap();
    assert!(
        matches!(factory.active_backend(), ActiveBackend::Plugin { .. }),
        "{:?}",
        factory.active_backend()
    );
    let [ConfigWarning::ExposedPlugin(Exposure::Writable { what: "file", .. })] =
        factory.warnings()
    else {
        panic!("{:?}", factory.warnings());
    };
    assert!(
        factory.warnings()[0]
            .to_string()
            .contains("is writable by anyone (mode 0666)"),
        "{}",
        factory.warnings()[0]
    );
    // ...and refused when strict, even with the right pin.
    let err =
        PersistenceFactory::from_config(&pinned(&path, digest).with_strict(true)).unwrap_err();
    let FactoryError::Plugin(reason @ LoadError::Exposed { .. }) = &err else {
        panic!("{err}");
    };
    assert_eq!(reason.step(), 1);

    // A directory its group can write: another file could take the plugin's place.
    mode(&path, 0o644).unwrap();
    let dir = path.parent().unwrap();
    mode(dir, 0o770).unwrap();
    let err = PersistenceFactory::from_config(&Config::plugin(&path, CLASS).with_strict(true))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FactoryError::Plugin(LoadError::Exposed {
                exposure: Exposure::Writable {
                    what: "directory",
                    ..
                },
                ..
            })
        ),
        "{err}"
    );
    mode(dir, 0o700).unwrap();
    PersistenceFactory::from_config(&Config::plugin(&path, CLASS).with_strict(true)).unwrap();
}
