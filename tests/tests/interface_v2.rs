//! A plugin library built for interface 2 (the fixture `ta-fixture-interface-v2`, whose
//! root module and function table are interface 2's frozen types) loaded by this host:
//! it passes the loader's checks, serves everything interface 2 has (the whole
//! conformance suite), and answers the operations it lacks with a typed `Unsupported`
//! naming the plugin and its interface version, through the factory's guard and
//! instrumentation as well.

use std::collections::BTreeMap;
use std::sync::Arc;

use ta_persistence::config::{platform_file_name, Config};
use ta_persistence::loader::{load_plugin, open_library};
use ta_persistence::{
    ActiveBackend, AgentTask, ErrorKind, PersistenceError, PersistenceFactory,
    TaskPersistenceManager, Timestamp,
};
use ta_persistence_api::conformance::run_suite;
use ta_persistence_api::{DocumentManager, Operation, PageRequest, TaskFilter};
use ta_persistence_tests::cdylib::plugin;
use ta_persistence_tests::cli::{code, run, stderr, stdout};
use ta_persistence_tests::fixtures::{copy_into, private_dir};

const PACKAGE: &str = "ta-fixture-interface-v2";
const NAME: &str = "interface-v2";
const CLASS: &str = "MemoryV2";

fn no_vars() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Asserts that `err` is the `Unsupported` answer of an interface-2 plugin for `op`.
#[track_caller]
fn assert_unsupported_v2(err: &PersistenceError, op: Operation) {
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{}", err.report());
    assert_eq!(err.operation(), op, "{}", err.report());
    let PersistenceError::Unsupported {
        backend,
        interface_version,
        ..
    } = err
    else {
        panic!("not an Unsupported error: {}", err.report());
    };
    assert_eq!(backend, NAME);
    assert_eq!(*interface_version, Some(2));
    let text = err.to_string();
    assert!(text.contains(NAME) && text.contains("version 2"), "{text}");
}

#[test]
fn an_interface_2_library_passes_the_loaders_checks() {
    let lib = open_library(&plugin(PACKAGE)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lib.name(), NAME);
    assert_eq!(lib.interface_version(), 2);
    assert_eq!(lib.classes(), vec![CLASS.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_through_an_interface_2_library() {
    let path = plugin(PACKAGE);
    let report = run_suite(
        || {
            let path = path.clone();
            async move {
                let (_, manager) = load_plugin(&path, Some(CLASS), &no_vars()).unwrap();
                Arc::new(manager) as Arc<dyn DocumentManager>
            }
        },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert!(report.passed() >= 35, "{report}");
}

#[tokio::test]
async fn listing_and_purge_answer_unsupported_naming_the_plugin_and_version_2() {
    let (lib, manager) = load_plugin(&plugin(PACKAGE), Some(CLASS), &no_vars()).unwrap();
    assert_eq!(manager.plugin(), lib.name());
    assert_eq!(manager.interface_version(), 2);
    let task = AgentTask::new("v2-1", "s", "u", Timestamp::now_utc());
    manager.create(task.clone()).await.unwrap();

    let filter = TaskFilter::all().session("s");
    let err = manager
        .list_tasks(&filter, &PageRequest::default())
        .await
        .unwrap_err();
    assert_unsupported_v2(&err, Operation::List);
    let err = manager.purge().await.unwrap_err();
    assert_unsupported_v2(&err, Operation::Purge);

    // Asking changed nothing and broke nothing: the plugin still serves.
    assert_eq!(manager.load("v2-1").await.unwrap(), Some(task));
    manager.health().await.unwrap();
}

#[tokio::test]
async fn through_the_factory_the_answer_is_the_same() {
    let path = plugin(PACKAGE);
    let factory = PersistenceFactory::from_config(&Config::plugin(&path, CLASS)).unwrap();
    let ActiveBackend::Plugin {
        plugin, version, ..
    } = factory.active_backend()
    else {
        panic!("expected the plugin, got {}", factory.active_backend());
    };
    assert_eq!(plugin, NAME);
    assert_eq!(version, "0.0.0");
    let manager = factory.get_persistence_manager();
    let task = AgentTask::new("v2-f", "s", "u", Timestamp::now_utc());
    manager.create(task.clone()).await.unwrap();
    assert_eq!(manager.load("v2-f").await.unwrap(), Some(task));
    let err = manager
        .list_tasks(&TaskFilter::all(), &PageRequest::default())
        .await
        .unwrap_err();
    assert_unsupported_v2(&err, Operation::List);
    assert_unsupported_v2(&manager.purge().await.unwrap_err(), Operation::Purge);
}

#[tokio::test]
async fn interface_2_and_current_libraries_serve_side_by_side() {
    let (_, old) = load_plugin(&plugin(PACKAGE), Some(CLASS), &no_vars()).unwrap();
    let (lib, current) = load_plugin(
        &plugin("ta-plugin-memory"),
        Some("MemoryTaskPersistenceManager"),
        &no_vars(),
    )
    .unwrap();
    assert_eq!(
        lib.interface_version(),
        ta_persistence::api::ffi::INTERFACE_VERSION
    );
    let task = AgentTask::new("both", "s", "u", Timestamp::now_utc());
    old.create(task.clone()).await.unwrap();
    current.create(task.clone()).await.unwrap();
    assert_eq!(old.load("both").await.unwrap(), Some(task.clone()));
    assert_eq!(current.load("both").await.unwrap(), Some(task));
    assert_unsupported_v2(&old.purge().await.unwrap_err(), Operation::Purge);
    // The current library's table has the slot: whatever it answers, it is not the
    // interface-2 answer.
    if let Err(err) = current.purge().await {
        assert!(
            !matches!(
                &err,
                PersistenceError::Unsupported {
                    interface_version: Some(2),
                    ..
                }
            ),
            "{}",
            err.report()
        );
    }
}

#[test]
fn the_command_line_shows_an_interface_2_plugin() {
    let path = plugin(PACKAGE);
    let path = path.to_str().unwrap();
    let vars = [
        ("TA_PERSISTENCE_MODULE", path),
        ("TA_PERSISTENCE_CLASS", CLASS),
    ];
    let out = run(&["info", "--json"], &vars, b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["backend"], "plugin", "{json}");
    assert_eq!(json["plugin"], NAME, "{json}");
    assert_eq!(json["health"], "ok", "{json}");

    // `plugins` lists a directory.
    let dir = private_dir("interface-v2");
    copy_into(&dir, &platform_file_name("old"), &plugin(PACKAGE));
    let out = run(&["plugins", dir.to_str().unwrap(), "--json"], &[], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entry = &json["libraries"][0];
    assert_eq!(entry["status"], "ok", "{json}");
    assert_eq!(entry["plugin"], NAME, "{json}");
    assert_eq!(entry["interface_version"], 2, "{json}");
    assert_eq!(entry["classes"], serde_json::json!([CLASS]), "{json}");

    let out = run(&["check", path, "--class", CLASS], &[], b"");
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("version 2 (interface-v2"),
        "{}",
        stdout(&out)
    );
}
