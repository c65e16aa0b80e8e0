//! Capturing this process's log output, for tests that check what was logged. Installs
//! a global subscriber: use it only in a test binary of its own.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Everything logged (at `INFO` and above) in this process since the first call, as text.
pub fn captured() -> String {
    let buffer = capture();
    let bytes = buffer.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Installs the capturing subscriber (once per process).
pub fn capture() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || SharedWriter(Arc::clone(&writer)))
            .finish();
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            panic!("another global subscriber is installed in this test binary");
        }
        buffer
    })
}

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
