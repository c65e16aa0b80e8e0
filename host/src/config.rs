//! The host's configuration: the `TA_*` environment variables, parsed strictly.
//!
//! | variable | meaning |
//! |---|---|
//! | `TA_PERSISTENCE_MODULE` | path of a plugin library (`.so`, `.dylib`, `.dll`); unset: the built-in in-memory store |
//! | `TA_PERSISTENCE_CLASS` | the manager the library exports (required with a module) |
//! | `TA_PERSISTENCE_STRICT` | `true`: refuse to start when the plugin fails instead of falling back to memory (default `false`) |
//!
//! Every `TA_*` variable is also handed to the plugin's constructor, which reads its own
//! (the Redis plugin reads `TA_REDIS_*`). A malformed value is an error, never a silent
//! default.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable has a value the host does not accept.
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// What is accepted instead.
        reason: String,
    },
}

/// The variable that names the plugin library.
pub const MODULE_VAR: &str = "TA_PERSISTENCE_MODULE";
/// The variable that names the manager class.
pub const CLASS_VAR: &str = "TA_PERSISTENCE_CLASS";
/// The variable that turns the fallback into a start-up error.
pub const STRICT_VAR: &str = "TA_PERSISTENCE_STRICT";

/// Which backend to use and how to treat its failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The plugin library, if one is configured.
    pub module: Option<PathBuf>,
    /// The manager class to construct from it.
    pub class: Option<String>,
    /// Refuse to start (instead of falling back to memory) when the plugin fails.
    pub strict: bool,
    /// Every `TA_*` variable, handed to the plugin's constructor.
    pub vars: BTreeMap<String, String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads a set of variables (only the `TA_*` ones are kept).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| k.starts_with("TA_"))
            .collect();
        let module = match vars.get(MODULE_VAR) {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(invalid(
                    MODULE_VAR,
                    v,
                    "set but empty; unset it to use the built-in store, or give a library path",
                ))
            }
            Some(v) => Some(PathBuf::from(v)),
        };
        let class = match vars.get(CLASS_VAR) {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(invalid(CLASS_VAR, v, "set but empty; name a manager class"))
            }
            Some(v) => Some(v.trim().to_owned()),
        };
        let strict = match vars.get(STRICT_VAR) {
            None => false,
            Some(v) => parse_bool(STRICT_VAR, v)?,
        };
        Ok(Config {
            module,
            class,
            strict,
            vars,
        })
    }

    /// A configuration that selects a plugin library and class.
    pub fn plugin(module: impl Into<PathBuf>, class: impl Into<String>) -> Self {
        let module = module.into();
        let class = class.into();
        let mut vars = BTreeMap::new();
        vars.insert(MODULE_VAR.to_owned(), module.display().to_string());
        vars.insert(CLASS_VAR.to_owned(), class.clone());
        Config {
            module: Some(module),
            class: Some(class),
            strict: false,
            vars,
        }
    }

    /// The same configuration with the strict policy on or off.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self.vars.insert(STRICT_VAR.to_owned(), strict.to_string());
        self
    }

    /// The same configuration with one more variable for the plugin.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }
}

/// Parses a boolean variable: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, value, "expected true or false")),
    }
}

fn invalid(name: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_module_means_the_built_in_store() {
        let c = Config::from_vars([("PATH", "/bin"), ("TA_OTHER", "x")]).unwrap();
        assert_eq!(c.module, None);
        assert!(!c.strict);
        assert_eq!(c.vars.len(), 1, "only TA_* variables are kept");
    }

    #[test]
    fn strict_is_parsed_strictly() {
        let c = Config::from_vars([(STRICT_VAR, "TRUE")]).unwrap();
        assert!(c.strict);
        let c = Config::from_vars([(STRICT_VAR, "0")]).unwrap();
        assert!(!c.strict);
        let e = Config::from_vars([(STRICT_VAR, "maybe")]).unwrap_err();
        assert!(e.to_string().contains(STRICT_VAR), "{e}");
    }

    #[test]
    fn an_empty_module_is_an_error_not_a_silent_default() {
        let e = Config::from_vars([(MODULE_VAR, " ")]).unwrap_err();
        assert!(e.to_string().contains("set but empty"), "{e}");
    }

    #[test]
    fn module_and_class_are_read() {
        let c = Config::from_vars([(MODULE_VAR, "/x/libp.so"), (CLASS_VAR, "Mgr")]).unwrap();
        assert_eq!(c.module, Some(PathBuf::from("/x/libp.so")));
        assert_eq!(c.class.as_deref(), Some("Mgr"));
    }
}
