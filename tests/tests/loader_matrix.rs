//! The loader's failure matrix: each case is a real file (missing, a directory, text,
//! truncated copies of a real plugin, a plugin whose needed library is missing, a library
//! that is no plugin, a plugin with another interface layout or version, one built with
//! `panic = "abort"`, a class that is not exported, a constructor that fails or panics),
//! checked with the default policy (fall back to memory, the reason logged at error and
//! reported by the factory) and with the strict policy (start-up error carrying the
//! reason). Also: a manager whose `Drop` panics leaves the host running.
//!
//! This file installs a global log subscriber, so it is its own test binary. Every test
//! that constructs a plugin manager installs it first: a plugin's log bridge takes its
//! level filter from the host's subscriber when its first manager is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use ta_persistence::config::Config;
use ta_persistence::loader::{load_plugin, open_library, LoadError, CHECKS};
use ta_persistence::{
    ActiveBackend, ErrorKind, FactoryError, PersistenceFactory, TaskPersistenceManager,
};
use ta_persistence_tests::cdylib::plugin;
use ta_persistence_tests::fixtures::{failure_matrix, panic_abort_plugin, FailureCase};
use ta_persistence_tests::logs;

fn config(case: &FailureCase) -> Config {
    let mut config = Config::plugin(&case.path, case.class.unwrap_or_default());
    if case.class.is_none() {
        config.class = None;
        config.vars.remove("TA_PERSISTENCE_CLASS");
    }
    config
}

#[tokio::test]
async fn every_failure_falls_back_to_memory_with_the_reason_logged_and_reported() {
    logs::capture();
    for case in failure_matrix() {
        let factory = PersistenceFactory::from_config(&config(&case))
            .unwrap_or_else(|e| panic!("{}: the default policy must not fail: {e}", case.name));
        let ActiveBackend::Fallback { reason, path, .. } = factory.active_backend() else {
            panic!(
                "{}: expected a fallback, got {:?}",
                case.name,
                factory.active_backend()
            );
        };
        assert_eq!(path, &case.path, "{}", case.name);
        assert_eq!(
            reason.step(),
            case.step,
            "{}: wrong check failed: {reason}",
            case.name
        );
        let text = reason.to_string();
        assert!(
            text.contains(case.reason),
            "{}: reason {text:?} lacks {:?}",
            case.name,
            case.reason
        );
        assert!(
            !text.contains('\n'),
            "{}: the reason is one line: {text:?}",
            case.name
        );

        // The fallback is a working store.
        let store = factory.get_persistence_manager();
        store.health().await.unwrap();
        assert!(store.load("anything").await.unwrap().is_none());

        let logged = logs::captured();
        assert!(
            logged
                .lines()
                .any(|l| l.contains("ERROR") && l.contains("falling back") && l.contains(&text)),
            "{}: no error line with the fallback and its reason in:\n{logged}",
            case.name
        );
    }
}

#[test]
fn every_failure_is_a_startup_error_when_strict() {
    logs::capture();
    for case in failure_matrix() {
        let err = PersistenceFactory::from_config(&config(&case).with_strict(true))
            .err()
            .unwrap_or_else(|| panic!("{}: strict must refuse to start", case.name));
        let FactoryError::Plugin(reason) = &err else {
            panic!("{}: expected a plugin error, got {err}", case.name);
        };
        assert_eq!(reason.step(), case.step, "{}: {reason}", case.name);
        assert!(
            err.to_string().contains(case.reason),
            "{}: {err}",
            case.name
        );
        assert!(err.to_string().contains("TA_PERSISTENCE_STRICT"), "{err}");
    }
}

#[test]
fn the_layout_report_is_at_debug_and_the_reason_stays_short() {
    let case = failure_matrix()
        .into_iter()
        .find(|c| c.step == 5)
        .expect("the matrix has a layout case");
    let err = ta_persistence::loader::open_library(&case.path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.len() < 400,
        "reason should be one short line, got {} bytes",
        text.len()
    );
    assert!(text.contains("RUST_LOG=debug"), "{text}");
}

#[test]
fn no_module_means_the_built_in_store_and_a_malformed_strict_is_an_error() {
    let factory = PersistenceFactory::from_config(&Config::default()).unwrap();
    assert!(matches!(factory.active_backend(), ActiveBackend::BuiltIn));
    let err = Config::from_vars([("TA_PERSISTENCE_STRICT", "sometimes")]).unwrap_err();
    assert!(err.to_string().contains("TA_PERSISTENCE_STRICT"), "{err}");
}

#[test]
fn the_factory_hands_out_one_shared_manager() {
    let factory = PersistenceFactory::from_config(&Config::default()).unwrap();
    let a = factory.get_persistence_manager();
    let b = factory.get_persistence_manager();
    assert!(Arc::ptr_eq(&a, &b));
    let _: &dyn TaskPersistenceManager = a.as_ref();
}

#[test]
fn the_matrix_has_a_case_for_each_check() {
    let mut steps: Vec<u8> = failure_matrix().iter().map(|c| c.step).collect();
    steps.sort_unstable();
    steps.dedup();
    // Step 6 (the interface crate's version) has no case: it needs a plugin built against
    // another release of the interface crate. Only a Linux build has a case for the
    // dynamic loader's own refusal (step 3).
    let mut expected = vec![1, 2, 4, 5, 7, 8, 9, 10];
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        expected.insert(2, 3);
    }
    assert_eq!(steps, expected);
    assert_eq!(CHECKS.len(), 10);
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused_before_any_class_is_built() {
    let path = panic_abort_plugin();
    let err = open_library(&path).unwrap_err();
    assert!(matches!(err, LoadError::PanicAbort { .. }), "{err}");
    assert_eq!(
        CHECKS[usize::from(err.step()) - 1],
        "plugin was built with panic = \"unwind\""
    );
    // Refused before construction, whichever class is asked for: even a correct class
    // would take the host down at its first panic.
    let err = load_plugin(&path, Some("AbortingManager"), &BTreeMap::new()).unwrap_err();
    assert_eq!(err.step(), 8, "{err}");
    // The same SDK in a build that unwinds passes the check.
    open_library(&plugin("ta-plugin-memory")).unwrap();
}

#[tokio::test]
async fn a_manager_that_panics_in_drop_is_logged_and_the_host_carries_on() {
    logs::capture();
    let path = plugin("ta-fixture-misbehaving");
    let (_, manager) = load_plugin(&path, Some("PanickingDrop"), &BTreeMap::new()).unwrap();
    manager.health().await.unwrap();
    assert!(manager.load("t1").await.unwrap().is_none());
    drop(manager);

    // Still here: the panic was caught on the plugin side and reported through the bridge.
    let logged = logs::captured();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("ERROR")
                && l.contains("panicked while being dropped: drop exploded")),
        "no error line for the panic in Drop in:\n{logged}"
    );
    // And the library still serves: another manager of it works.
    let (_, again) = load_plugin(&path, Some("PanickingManager"), &BTreeMap::new()).unwrap();
    again.health().await.unwrap();
}

#[test]
fn a_constructor_error_keeps_its_kind_through_the_boundary() {
    logs::capture();
    let path = plugin("ta-fixture-misbehaving");
    // A typed error keeps its kind; an untyped one is a backend error; a panic is the
    // plugin's failure.
    let cases = [
        (
            "UnavailableConstructor",
            ErrorKind::Unavailable,
            "connection refused by 127.0.0.1:1",
        ),
        (
            "FailingConstructor",
            ErrorKind::Backend,
            "refusing to start",
        ),
        (
            "PanickingConstructor",
            ErrorKind::Plugin,
            "constructor exploded",
        ),
    ];
    for (class, kind, says) in cases {
        let factory = PersistenceFactory::from_config(&Config::plugin(&path, class)).unwrap();
        let reason = factory
            .fallback_reason()
            .unwrap_or_else(|| panic!("{class}: expected a fallback"));
        assert_eq!(
            reason.constructor_error_kind(),
            Some(kind),
            "{class}: {reason}"
        );
        assert!(reason.to_string().contains(says), "{class}: {reason}");

        let strict = Config::plugin(&path, class).with_strict(true);
        let Err(FactoryError::Plugin(err)) = PersistenceFactory::from_config(&strict) else {
            panic!("{class}: strict must refuse to start");
        };
        assert_eq!(err.constructor_error_kind(), Some(kind), "{class}: {err}");
    }
    // The other steps have no constructor error.
    let err = open_library(&path.with_extension("missing")).unwrap_err();
    assert_eq!(err.constructor_error_kind(), None);
}
