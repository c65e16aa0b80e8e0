//! The log bridge: a plugin's `tracing` events, carried to the host through a callback.
//!
//! A plugin library has its own copy of `tracing`, whose dispatcher the host's subscriber
//! never sees. So the plugin side installs a small subscriber that formats each event and
//! hands `(level, target, message)` to the host's callback; the host re-emits it under the
//! plugin's target. Events more verbose than the host records are dropped in the plugin.
//!
//! Both ends live here: `install` runs in the plugin (from the SDK's constructor), and
//! `host_hooks` builds what the host hands the constructor (through
//! [`ManagerEntry::construct`](super::ManagerEntry::construct)), with its `extern "C"`
//! callback.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use abi_stable::std_types::RStr;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use super::types::HostHooks;

/// A level as a number: 1 = error, 2 = warn, 3 = info, 4 = debug, 5 = trace.
pub fn level_code(level: Level) -> u8 {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// The level of a number from [`level_code`]; `None` for 0 (off) and unknown numbers.
pub fn level_from_code(code: u8) -> Option<Level> {
    Some(match code {
        1 => Level::ERROR,
        2 => Level::WARN,
        3 => Level::INFO,
        4 => Level::DEBUG,
        5 => Level::TRACE,
        _ => return None,
    })
}

/// The first hooks a plugin was given: one library serves one host.
static HOOKS: OnceLock<HostHooks> = OnceLock::new();

/// Installs the bridge in this library (once; later calls keep the first hooks).
pub(crate) fn install(hooks: HostHooks) {
    if HOOKS.set(hooks).is_err() {
        return;
    }
    let max = level_from_code(hooks.max_level);
    let filter = match max {
        Some(level) => tracing::level_filters::LevelFilter::from_level(level),
        None => tracing::level_filters::LevelFilter::OFF,
    };
    let subscriber = tracing_subscriber::registry().with(Bridge.with_filter(filter));
    // In a plugin library this is the library's own global dispatcher. Linked into the
    // host itself (in-process tests) it fails because the host has one: that is fine,
    // the host's own subscriber then sees the events directly.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The hooks the host hands a plugin's constructor: [`host_log`] as the log callback, and
/// the most verbose level the host's subscriber records as the plugin-side filter.
pub(crate) fn host_hooks() -> HostHooks {
    HostHooks {
        log: host_log,
        max_level: tracing::level_filters::LevelFilter::current()
            .into_level()
            .map_or(0, level_code),
    }
}

/// The host's log callback: re-emits one plugin event on the host's subscriber under the
/// plugin's own target. Blocks on nothing but the subscriber.
///
/// A panic cannot leave an `extern "C"` function (the process would abort), so one raised
/// by the host's subscriber is caught here and the event is dropped.
extern "C" fn host_log(level: u8, target: RStr<'_>, message: RStr<'_>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(level) = level_from_code(level) else {
            return;
        };
        let level = match level {
            Level::ERROR => log::Level::Error,
            Level::WARN => log::Level::Warn,
            Level::INFO => log::Level::Info,
            Level::DEBUG => log::Level::Debug,
            Level::TRACE => log::Level::Trace,
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

struct Bridge;

impl<S: Subscriber> Layer<S> for Bridge {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(hooks) = HOOKS.get() else { return };
        let meta = event.metadata();
        let mut text = Text::default();
        event.record(&mut text);
        (hooks.log)(
            level_code(*meta.level()),
            RStr::from_str(meta.target()),
            RStr::from_str(&text.0),
        );
    }
}

/// Formats an event as `message key=value ...`.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            if self.0.is_empty() {
                let _ = write!(self.0, "{value:?}");
            } else {
                self.0 = format!("{value:?} {}", self.0);
            }
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value}", field.name());
        }
    }
}
