//! A plugin's `tracing` events reach the host's subscriber with the plugin's own target.
//! Installs a global subscriber, so it is its own test binary.

use std::collections::BTreeMap;

use ta_persistence::loader::load_plugin;
use ta_persistence_tests::cdylib::plugin;
use ta_persistence_tests::logs;

#[test]
fn plugin_events_are_re_emitted_under_the_plugin_target() {
    logs::capture();
    let path = plugin("ta-plugin-memory");
    load_plugin(
        &path,
        Some("MemoryTaskPersistenceManager"),
        &BTreeMap::new(),
    )
    .unwrap();

    let logged = logs::captured();
    let line = logged
        .lines()
        .find(|l| l.contains("in-memory plugin store ready"))
        .unwrap_or_else(|| panic!("the plugin's event did not arrive:\n{logged}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains("ta_plugin_memory::store"),
        "the plugin's target is kept: {line}"
    );
}
