//! `PersistenceFactory`: picks the backend once and hands out one shared manager.
//!
//! The policy:
//!
//! - no `TA_PERSISTENCE_MODULE`: the built-in in-memory store;
//! - a module: resolve it against `TA_PERSISTENCE_PLUGIN_DIR` ([`Config::module_path`]),
//!   load it (checking `TA_PERSISTENCE_MODULE_SHA256` if set) and construct
//!   `TA_PERSISTENCE_CLASS` (see [`crate::loader`]) on a thread of its own, under the
//!   deadline `TA_PERSISTENCE_TIMEOUT_MS`;
//! - the plugin fails to load or construct, or does not finish in time: fall back to the
//!   built-in store, or, with `TA_PERSISTENCE_STRICT=true`, refuse to start with that
//!   reason (for deployments where silently losing durability is worse than not
//!   starting).
//!
//! A fallback is never silent: it is logged at `error`; when no `tracing` subscriber is
//! installed the same line goes to stderr (once); and the factory carries the reason
//! ([`PersistenceFactory::fallback_reason`], and the `Display` of [`ActiveBackend`]). The
//! configuration's warnings ([`ConfigWarning`]) reach the log, or stderr, the same way.
//!
//! A plugin's manager is served through a [`GuardedManager`]: every call has the same
//! deadline, and what the plugin returns is checked against what was asked.
//!
//! Every manager a factory hands out (built-in, plugin or fallback) is wrapped in an
//! [`InstrumentedManager`], and the load's outcome is recorded as metrics (see
//! [`crate::instrument`]): install the application's `metrics` recorder first.
//!
//! A load that misses its deadline cannot be stopped (Rust has no way to kill a thread):
//! its thread is left running, and if it finishes later its manager is dropped there.

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::{DocumentManager, ErrorKind, TaskPersistenceManager, TypedDocuments};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError, ConfigWarning, TIMEOUT_VAR};
use crate::guard::{deadline, GuardedManager};
use crate::instrument::{self, InstrumentedManager, BUILT_IN_BACKEND};
use crate::loader::{open_library_with, Exposure, LoadError, LoadOptions, PluginLibrary};
use crate::memory::InMemoryPersistenceManager;

/// Which backend a factory serves, and why.
///
/// Its `Display` is one line for an application to print at start-up; after a fallback it
/// says so and gives the reason.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ActiveBackend {
    /// The built-in store, because no plugin was configured.
    BuiltIn,
    /// A plugin library's manager.
    Plugin {
        /// The library's path.
        path: PathBuf,
        /// The class constructed.
        class: String,
        /// The plugin's name.
        plugin: String,
        /// The plugin's version.
        version: String,
        /// The classes the library exports.
        classes: Vec<String>,
    },
    /// The built-in store, because the configured plugin failed.
    Fallback {
        /// The configured library path.
        path: PathBuf,
        /// The configured class, if any.
        class: Option<String>,
        /// Why the plugin could not be used.
        reason: LoadError,
    },
}

impl ActiveBackend {
    /// A short name: `memory`, `plugin`, or `memory (fallback)`.
    pub fn kind(&self) -> &'static str {
        match self {
            ActiveBackend::BuiltIn => "memory",
            ActiveBackend::Plugin { .. } => "plugin",
            ActiveBackend::Fallback { .. } => "memory (fallback)",
        }
    }

    /// Whether the configured plugin failed and the built-in store stands in for it.
    pub fn is_fallback(&self) -> bool {
        matches!(self, ActiveBackend::Fallback { .. })
    }

    /// Why the configured plugin is not in use, after a fallback.
    pub fn fallback_reason(&self) -> Option<&LoadError> {
        match self {
            ActiveBackend::Fallback { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for ActiveBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActiveBackend::BuiltIn => f.write_str("built-in in-memory store"),
            ActiveBackend::Plugin {
                path,
                class,
                plugin,
                version,
                ..
            } => write!(
                f,
                "plugin {} {}, class {}, from {}",
                plugin.escape_debug(),
                version.escape_debug(),
                class.escape_debug(),
                path.display()
            ),
            ActiveBackend::Fallback { reason, .. } => write!(f, "{FALLBACK}: {reason}"),
        }
    }
}

/// How a fallback is announced.
const FALLBACK: &str = "built-in in-memory store (FALLBACK: the configured plugin failed; tasks will not survive a restart)";
/// The fallback's log message.
const FALLING_BACK: &str = "persistence plugin failed; falling back to the built-in in-memory store (tasks will not survive a restart)";

/// Why a factory could not be built.
///
/// The message includes the cause's message, so `source()` does not return the cause
/// again (a report that walks the chain would show it twice); match the variant to get
/// at the [`ConfigError`] or [`LoadError`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// The configuration is malformed, or (when strict) has a problem.
    #[error("invalid persistence configuration: {0}")]
    Config(ConfigError),
    /// The plugin failed and `TA_PERSISTENCE_STRICT` forbids the fallback.
    #[error("persistence plugin failed and TA_PERSISTENCE_STRICT is set: {0}")]
    Plugin(LoadError),
}

impl From<ConfigError> for FactoryError {
    fn from(err: ConfigError) -> Self {
        FactoryError::Config(err)
    }
}

/// Builds the configured backend and hands out one shared manager.
pub struct PersistenceFactory {
    manager: Arc<InstrumentedManager>,
    active: ActiveBackend,
    warnings: Vec<ConfigWarning>,
}

impl fmt::Debug for PersistenceFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistenceFactory")
            .field("active", &self.active)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl PersistenceFactory {
    /// Builds a factory from the process environment, blocking the calling thread while
    /// a plugin loads (at most `TA_PERSISTENCE_TIMEOUT_MS`). In async code use
    /// [`PersistenceFactory::from_env_async`].
    pub fn from_env() -> Result<Self, FactoryError> {
        Self::from_config(&Config::from_env()?)
    }

    /// Builds a factory from the process environment without blocking the async
    /// runtime: the plugin loads and constructs on a thread of its own.
    pub async fn from_env_async() -> Result<Self, FactoryError> {
        Self::from_config_async(&Config::from_env()?).await
    }

    /// Builds a factory from an explicit configuration (blocking; see
    /// [`PersistenceFactory::from_env`]).
    pub fn from_config(config: &Config) -> Result<Self, FactoryError> {
        let Some(path) = start(config)? else {
            return Ok(Self::built_in(config));
        };
        let (done, receiver) = std::sync::mpsc::sync_channel(1);
        let loaded = match spawn_load(config, move |result| done.send(result).is_ok()) {
            Ok(progress) => match receiver.recv_timeout(config.timeout) {
                Ok(result) => result,
                Err(RecvTimeoutError::Timeout) => Err(timed_out(config, &path, &progress)),
                Err(RecvTimeoutError::Disconnected) => Err(no_answer(&path)),
            },
            Err(err) => Err(err),
        };
        Self::finish(config, path, loaded)
    }

    /// Builds a factory from an explicit configuration without blocking the async
    /// runtime (see [`PersistenceFactory::from_env_async`]).
    pub async fn from_config_async(config: &Config) -> Result<Self, FactoryError> {
        let Some(path) = start(config)? else {
            return Ok(Self::built_in(config));
        };
        let loaded = load_within_deadline(config, &path).await;
        Self::finish(config, path, loaded)
    }

    fn built_in(config: &Config) -> Self {
        info!("persistence backend: built-in in-memory store");
        Self::with_built_in(ActiveBackend::BuiltIn).warned(config)
    }

    /// Applies the failure policy to the outcome of a load.
    fn finish(
        config: &Config,
        path: PathBuf,
        loaded: Result<(PluginLibrary, ForeignManager, Vec<Exposure>), LoadError>,
    ) -> Result<Self, FactoryError> {
        match loaded {
            Ok((lib, manager, exposures)) => {
                let class = config.class.clone().unwrap_or_default();
                instrument::record_plugin_loaded(
                    lib.name(),
                    lib.version(),
                    lib.interface_version(),
                    &class,
                );
                let label = format!("{}/{class}", lib.name());
                let active = ActiveBackend::Plugin {
                    path: lib.path().to_path_buf(),
                    class,
                    plugin: lib.name().to_owned(),
                    version: lib.version().to_owned(),
                    classes: lib.classes(),
                };
                let guarded = GuardedManager::new(manager, label, config.timeout);
                let mut factory = Self::with_documents(Arc::new(guarded), active).warned(config);
                // The loader logged these; an application without a subscriber sees them
                // too, and they stay on the factory.
                for exposure in exposures {
                    to_stderr_if_unlogged("warning", &exposure.to_string());
                    factory
                        .warnings
                        .push(ConfigWarning::ExposedPlugin(exposure));
                }
                Ok(factory)
            }
            Err(reason) if config.strict => {
                instrument::record_plugin_failed();
                error!(%reason, "persistence plugin failed; TA_PERSISTENCE_STRICT is set, refusing to start");
                Err(FactoryError::Plugin(reason))
            }
            Err(reason) => {
                instrument::record_plugin_failed();
                error!(%reason, "{FALLING_BACK}");
                to_stderr_if_unlogged("error", &format!("{FALLING_BACK}: {reason}"));
                let active = ActiveBackend::Fallback {
                    path,
                    class: config.class.clone(),
                    reason,
                };
                Ok(Self::with_built_in(active).warned(config))
            }
        }
    }

    fn warned(mut self, config: &Config) -> Self {
        self.warnings = config.warnings();
        self
    }

    /// A factory serving a given manager: for applications that build their store
    /// themselves, and for tests.
    ///
    /// The manager is served instrumented (see [`crate::instrument`]), with `active`'s
    /// plugin name as its `backend` label (`memory` otherwise), and the fallback gauge is
    /// set from `active`.
    pub fn with_manager(manager: Arc<dyn TaskPersistenceManager>, active: ActiveBackend) -> Self {
        Self::with_documents(Arc::new(TypedDocuments::new(manager)), active)
    }

    /// [`with_manager`](Self::with_manager) for a manager that speaks documents itself
    /// (a loaded plugin), so that they pass through undecoded.
    fn with_documents(manager: Arc<dyn DocumentManager>, active: ActiveBackend) -> Self {
        instrument::describe();
        instrument::record_fallback(active.is_fallback());
        let backend = match &active {
            ActiveBackend::Plugin { plugin, .. } => plugin.as_str(),
            _ => BUILT_IN_BACKEND,
        };
        let manager = Arc::new(InstrumentedManager::new(manager, backend));
        PersistenceFactory {
            manager,
            active,
            warnings: Vec::new(),
        }
    }

    /// A factory serving a new built-in store, called directly by its decorator.
    fn with_built_in(active: ActiveBackend) -> Self {
        instrument::describe();
        instrument::record_fallback(active.is_fallback());
        let store = InMemoryPersistenceManager::new();
        PersistenceFactory {
            manager: Arc::new(InstrumentedManager::built_in(store, BUILT_IN_BACKEND)),
            active,
            warnings: Vec::new(),
        }
    }

    /// The shared manager: the same one on every call.
    pub fn get_persistence_manager(&self) -> Arc<dyn TaskPersistenceManager> {
        Arc::<InstrumentedManager>::clone(&self.manager)
    }

    /// The same manager over task documents (a task's JSON as it is stored): for tools
    /// that move stored tasks without decoding them, as `ta-persist` does.
    pub fn document_manager(&self) -> Arc<dyn DocumentManager> {
        Arc::<InstrumentedManager>::clone(&self.manager)
    }

    /// Which backend is active, and why.
    pub fn active_backend(&self) -> &ActiveBackend {
        &self.active
    }

    /// Why the configured plugin is not in use, if the factory fell back to the built-in
    /// store.
    pub fn fallback_reason(&self) -> Option<&LoadError> {
        self.active.fallback_reason()
    }

    /// The configuration's warnings (misspelled variables, a class or pin without a
    /// module, a plugin file that others can write), already logged when the factory was
    /// built.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The process-wide factory, built from the environment on first use.
    ///
    /// Later calls return the same factory; a failed first build returns the same
    /// error again without retrying (the configuration is read once per process). The
    /// first call blocks while a plugin loads: in async code, make it at start-up.
    pub fn global() -> Result<&'static PersistenceFactory, FactoryError> {
        static GLOBAL: OnceLock<Result<PersistenceFactory, FactoryError>> = OnceLock::new();
        GLOBAL
            .get_or_init(Self::from_env)
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The process-wide shared manager (see [`PersistenceFactory::global`]).
pub fn get_persistence_manager() -> Result<Arc<dyn TaskPersistenceManager>, FactoryError> {
    Ok(PersistenceFactory::global()?.get_persistence_manager())
}

/// Checks the configuration and announces its warnings; the plugin's path, if one is
/// configured.
fn start(config: &Config) -> Result<Option<PathBuf>, FactoryError> {
    let warnings = config.check().inspect_err(|err| {
        error!(%err, "persistence configuration refused");
    })?;
    for warning in &warnings {
        warn!(%warning, "persistence configuration");
        to_stderr_if_unlogged("warning", &warning.to_string());
    }
    Ok(config.module_path())
}

/// How far a load got: whether the library was open when its deadline passed.
#[derive(Debug, Default)]
struct Progress {
    opened: AtomicBool,
}

/// Starts loading the configured plugin on a thread of its own; `deliver` hands the
/// outcome over and says whether anyone was still waiting for it.
fn spawn_load(
    config: &Config,
    deliver: impl FnOnce(Result<(PluginLibrary, ForeignManager, Vec<Exposure>), LoadError>) -> bool
        + Send
        + 'static,
) -> Result<Arc<Progress>, LoadError> {
    let path = config.module_path().unwrap_or_default();
    let options = LoadOptions::from_config(config);
    let class = config.class.clone();
    let vars = config.vars.clone();
    let progress = Arc::new(Progress::default());
    let seen = Arc::clone(&progress);
    // Plugin logs during the load go to the caller's subscriber, even a scoped one.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("ta-persistence-load".to_owned())
        .spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let loaded = open_library_with(&path, &options).and_then(|(lib, exposures)| {
                    seen.opened.store(true, Ordering::Release);
                    lib.construct(class.as_deref(), &vars)
                        .map(|m| (lib, m, exposures))
                });
                if !deliver(loaded) {
                    info!(path = %path.display(), "a plugin load finished after its deadline; its result is dropped");
                }
            })
        })
        .map(|_| progress)
        .map_err(|err| LoadError::Init {
            path: PathBuf::from(shown),
            reason: format!("cannot start a thread to load it: {err}"),
        })
}

/// Opens the plugin library `config` names and builds its manager, under the configured
/// deadline and without blocking the async runtime, with no fallback: the load that
/// [`PersistenceFactory::from_config_async`] runs before applying its failure policy, for
/// tools that report each check themselves. Calls through the manager are held to the
/// same deadline.
pub async fn load_plugin_within_deadline(
    config: &Config,
) -> Result<(PluginLibrary, GuardedManager), LoadError> {
    let path = config.module_path().unwrap_or_default();
    let (lib, manager, _exposures) = load_within_deadline(config, &path).await?;
    let label = format!(
        "{}/{}",
        lib.name(),
        config.class.as_deref().unwrap_or_default()
    );
    Ok((lib, GuardedManager::new(manager, label, config.timeout)))
}

async fn load_within_deadline(
    config: &Config,
    path: &std::path::Path,
) -> Result<(PluginLibrary, ForeignManager, Vec<Exposure>), LoadError> {
    let (done, receiver) = tokio::sync::oneshot::channel();
    let progress = spawn_load(config, move |result| done.send(result).is_ok())?;
    match deadline(config.timeout, receiver).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(no_answer(path)),
        Err(_) => Err(timed_out(config, path, &progress)),
    }
}

/// The reason for a load that missed its deadline, naming the step it was stuck in.
fn timed_out(config: &Config, path: &std::path::Path, progress: &Progress) -> LoadError {
    let after = fmt_ms(config.timeout);
    let left = "its thread cannot be stopped and is left running";
    if progress.opened.load(Ordering::Acquire) {
        LoadError::Constructor {
            path: path.to_path_buf(),
            class: config.class.clone().unwrap_or_default(),
            reason: format!("did not return within {after} ({TIMEOUT_VAR}); {left}"),
            kind: ErrorKind::Timeout,
        }
    } else {
        LoadError::Init {
            path: path.to_path_buf(),
            reason: format!("opening it did not finish within {after} ({TIMEOUT_VAR}); {left}"),
        }
    }
}

/// The reason for a load whose thread ended without delivering an outcome.
fn no_answer(path: &std::path::Path) -> LoadError {
    LoadError::Init {
        path: path.to_path_buf(),
        reason: "the thread loading it ended without an answer".to_owned(),
    }
}

fn fmt_ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Writes a line to stderr when no `tracing` subscriber will show the event just logged,
/// so that an application that installed none still sees it (once: never in addition to
/// a subscriber). Control characters are escaped: the text holds paths and ids.
fn to_stderr_if_unlogged(level: &str, message: &str) {
    let unlogged =
        tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>());
    if !unlogged {
        return;
    }
    let mut safe = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    // A closed stderr is no reason to fail: the factory carries the reason as well.
    let _ = writeln!(std::io::stderr().lock(), "ta-persistence: {level}: {safe}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_shows_each_cause_once() {
        let reason = LoadError::NotFound {
            path: PathBuf::from("/nowhere/libp.so"),
        };
        let err = FactoryError::Plugin(reason.clone());
        let mut chain = vec![err.to_string()];
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        let report = chain.join(": ");
        assert_eq!(report.matches(&reason.to_string()).count(), 1, "{report}");

        let config = ConfigError::Strict(ConfigWarning::UnknownVariable {
            name: "TA_PERSISTENCE_MODUL".into(),
            suggestion: Some("TA_PERSISTENCE_MODULE"),
        });
        let err = FactoryError::from(config.clone());
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(err.to_string().matches(&config.to_string()).count(), 1);
    }

    #[test]
    fn a_fallback_says_so_and_why_when_displayed() {
        let reason = LoadError::NotFound {
            path: PathBuf::from("/nowhere/libp.so"),
        };
        let active = ActiveBackend::Fallback {
            path: PathBuf::from("/nowhere/libp.so"),
            class: None,
            reason: reason.clone(),
        };
        let shown = active.to_string();
        assert!(shown.contains("FALLBACK"), "{shown}");
        assert!(shown.contains(&reason.to_string()), "{shown}");
        assert_eq!(active.fallback_reason().map(|r| r.step()), Some(1));
        assert!(!ActiveBackend::BuiltIn.to_string().contains("FALLBACK"));
        assert!(ActiveBackend::BuiltIn.fallback_reason().is_none());
    }

    #[test]
    fn strict_refuses_a_class_without_a_module() {
        let mut config = Config::default().with_strict(true);
        config.class = Some("RedisTaskPersistenceManager".into());
        let err = PersistenceFactory::from_config(&config).unwrap_err();
        assert!(
            matches!(
                err,
                FactoryError::Config(ConfigError::Strict(
                    ConfigWarning::ClassWithoutModule { .. }
                ))
            ),
            "{err}"
        );
        // Not strict: the built-in store, with the warning kept.
        config.strict = false;
        let factory = PersistenceFactory::from_config(&config).unwrap();
        assert!(matches!(factory.active_backend(), ActiveBackend::BuiltIn));
        assert!(matches!(
            factory.warnings(),
            [ConfigWarning::ClassWithoutModule { .. }]
        ));
    }

    #[tokio::test]
    async fn a_missing_library_falls_back_through_the_async_constructor_too() {
        let config = Config::plugin("/nowhere/libp.so", "Any");
        let factory = PersistenceFactory::from_config_async(&config)
            .await
            .unwrap();
        let reason = factory.fallback_reason().expect("a fallback");
        assert_eq!(reason.step(), 1, "{reason}");
        let err = PersistenceFactory::from_config_async(&config.with_strict(true))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            FactoryError::Plugin(LoadError::NotFound { .. })
        ));
    }
}
