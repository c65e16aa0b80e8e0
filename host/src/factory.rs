//! `PersistenceFactory`: picks the backend once and hands out one shared manager.
//!
//! The policy:
//!
//! - no `TA_PERSISTENCE_MODULE`: the built-in in-memory store;
//! - a module: load it and construct `TA_PERSISTENCE_CLASS` (see [`crate::loader`]);
//! - the plugin fails to load or construct: fall back to the built-in store and log the
//!   reason at `error`, or, with `TA_PERSISTENCE_STRICT=true`, refuse to start with that
//!   reason (for deployments where silently losing durability is worse than not
//!   starting).
//!
//! The factory records which backend is active and why ([`ActiveBackend`]), and hands out
//! the same `Arc` on every [`PersistenceFactory::get_persistence_manager`] call.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ta_persistence_api::TaskPersistenceManager;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::loader::{load_plugin, LoadError};
use crate::memory::InMemoryPersistenceManager;

/// Which backend a factory serves, and why.
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
}

/// Why a factory could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// The configuration is malformed.
    #[error("invalid persistence configuration: {0}")]
    Config(#[from] ConfigError),
    /// The plugin failed and `TA_PERSISTENCE_STRICT` forbids the fallback.
    #[error("persistence plugin failed and TA_PERSISTENCE_STRICT is set: {0}")]
    Plugin(#[source] LoadError),
}

/// Builds the configured backend and hands out one shared manager.
pub struct PersistenceFactory {
    manager: Arc<dyn TaskPersistenceManager>,
    active: ActiveBackend,
}

impl std::fmt::Debug for PersistenceFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistenceFactory")
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl PersistenceFactory {
    /// Builds a factory from the process environment.
    pub fn from_env() -> Result<Self, FactoryError> {
        Self::from_config(&Config::from_env()?)
    }

    /// Builds a factory from an explicit configuration.
    pub fn from_config(config: &Config) -> Result<Self, FactoryError> {
        let Some(path) = config.module.clone() else {
            if let Some(class) = &config.class {
                warn!(class = %class, "TA_PERSISTENCE_CLASS is set but TA_PERSISTENCE_MODULE is not: using the built-in store");
            }
            info!("persistence backend: built-in in-memory store");
            return Ok(Self::with_manager(
                Arc::new(InMemoryPersistenceManager::new()),
                ActiveBackend::BuiltIn,
            ));
        };
        match load_plugin(&path, config.class.as_deref(), &config.vars) {
            Ok((lib, manager)) => {
                let active = ActiveBackend::Plugin {
                    path: lib.path().to_path_buf(),
                    class: config.class.clone().unwrap_or_default(),
                    plugin: lib.name().to_owned(),
                    version: lib.version().to_owned(),
                    classes: lib.classes(),
                };
                Ok(Self::with_manager(Arc::new(manager), active))
            }
            Err(reason) if config.strict => {
                error!(%reason, "persistence plugin failed; TA_PERSISTENCE_STRICT is set, refusing to start");
                Err(FactoryError::Plugin(reason))
            }
            Err(reason) => {
                error!(%reason, "persistence plugin failed; falling back to the built-in in-memory store (tasks will not survive a restart)");
                Ok(Self::with_manager(
                    Arc::new(InMemoryPersistenceManager::new()),
                    ActiveBackend::Fallback {
                        path,
                        class: config.class.clone(),
                        reason,
                    },
                ))
            }
        }
    }

    /// A factory serving a given manager: for applications that build their store
    /// themselves, and for tests.
    pub fn with_manager(manager: Arc<dyn TaskPersistenceManager>, active: ActiveBackend) -> Self {
        PersistenceFactory { manager, active }
    }

    /// The shared manager: the same one on every call.
    pub fn get_persistence_manager(&self) -> Arc<dyn TaskPersistenceManager> {
        Arc::clone(&self.manager)
    }

    /// Which backend is active, and why.
    pub fn active_backend(&self) -> &ActiveBackend {
        &self.active
    }

    /// The process-wide factory, built from the environment on first use.
    ///
    /// Later calls return the same factory; a failed first build returns the same
    /// error again without retrying (the configuration is read once per process).
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
