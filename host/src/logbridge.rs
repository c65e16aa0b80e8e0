//! The host end of the plugin log bridge: re-emits a plugin's events on the host's
//! `tracing` subscriber under the plugin's own target.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::RStr;
use ta_persistence_api::ffi::logging::{level_code, level_from_code};

/// The most verbose level the host's subscriber records, as a plugin-side filter code.
pub(crate) fn host_max_level() -> u8 {
    match tracing::level_filters::LevelFilter::current().into_level() {
        Some(level) => level_code(level),
        None => 0,
    }
}

/// Receives one plugin event. Never blocks on anything but the subscriber, never unwinds.
pub(crate) extern "C" fn host_log(level: u8, target: RStr<'_>, message: RStr<'_>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(level) = level_from_code(level) else {
            return;
        };
        let level = match level {
            tracing::Level::ERROR => log::Level::Error,
            tracing::Level::WARN => log::Level::Warn,
            tracing::Level::INFO => log::Level::Info,
            tracing::Level::DEBUG => log::Level::Debug,
            tracing::Level::TRACE => log::Level::Trace,
        };
        // Through `tracing-log` the event keeps the plugin's dynamic target, which a
        // `tracing` macro (whose target must be a constant) could not.
        let _ = tracing_log::format_trace(
            &log::Record::builder()
                .level(level)
                .target(target.as_str())
                .args(format_args!("{}", message.as_str()))
                .build(),
        );
    }));
}
