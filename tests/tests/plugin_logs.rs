//! A plugin's `tracing` events reach the host's subscriber with the plugin's own target.
//! Installs a global subscriber, so it is its own test binary.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use ta_persistence::loader::load_plugin;
use ta_persistence_tests::cdylib::plugin;

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plugin_events_are_re_emitted_under_the_plugin_target() {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || SharedWriter(Arc::clone(&writer)))
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let path = plugin("ta-plugin-memory");
    load_plugin(
        &path,
        Some("MemoryTaskPersistenceManager"),
        &BTreeMap::new(),
    )
    .unwrap();

    let logged = String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned();
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
