//! The host's configuration: the `TA_*` environment variables, parsed strictly.
//!
//! | variable | meaning |
//! |---|---|
//! | `TA_PERSISTENCE_MODULE` | path of a plugin library (`.so`, `.dylib`, `.dll`), or with `TA_PERSISTENCE_PLUGIN_DIR` a file name in that directory; unset: the built-in in-memory store |
//! | `TA_PERSISTENCE_PLUGIN_DIR` | the directory where a bare file name in `TA_PERSISTENCE_MODULE` is looked up (see [`Config::module_path`]); also what `ta-persist plugins` lists |
//! | `TA_PERSISTENCE_MODULE_SHA256` | the library's SHA-256 as 64 hex digits: any other file is refused (falls back, or with strict refuses to start) |
//! | `TA_PERSISTENCE_CLASS` | the manager the library exports (required with a module) |
//! | `TA_PERSISTENCE_STRICT` | `true`: refuse to start when the plugin fails instead of falling back to memory (default `false`) |
//! | `TA_PERSISTENCE_TIMEOUT_MS` | the host's deadline, in milliseconds, on loading and constructing a plugin and on each call into it (default [`DEFAULT_TIMEOUT`], 30 s; at most one hour) |
//! | `TA_PERSISTENCE_RETENTION` | how long finished tasks are kept after their last write, e.g. `completed=7d,failed=30d,canceled=1d` (units `s`, `m`, `h`, `d`; see [`RetentionPolicy::parse`]); unset: kept until deleted. The built-in store gets it from the host; a plugin reads it from its configuration |
//!
//! Every `TA_*` variable is also handed to the plugin's constructor, which reads its own
//! (the Redis plugin reads `TA_REDIS_*`). A malformed value is an error, never a silent
//! default.
//!
//! # Misspelled variables
//!
//! `TA_PERSISTENCE_*` is the host's namespace, so a variable there that the host does not
//! know is a mistake, and so is a name that is a near miss of one it knows
//! (`TA_PERSISTANCE_MODULE`, `TA_PERSISTENCE_MODUL`, `ta_persistence_module`): each is
//! reported as a [`ConfigWarning`] naming the variable it was probably meant to be. A
//! near miss is a name within [`MAX_TYPO_DISTANCE`] edits (insertions, deletions,
//! substitutions or swaps of two neighbours, after upper-casing and reading `-` as `_`)
//! of a known variable, or one whose first 15 characters are that close to the
//! `TA_PERSISTENCE_` prefix. Without `TA_PERSISTENCE_STRICT` these are warnings; with it
//! they are start-up errors, as is a `TA_PERSISTENCE_CLASS` or a
//! `TA_PERSISTENCE_MODULE_SHA256` without a `TA_PERSISTENCE_MODULE` (a plugin was meant,
//! none can be loaded).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ta_persistence_api::retention::{RetentionPolicy, RETENTION_VAR};

use crate::loader::{parse_hex, Exposure, Sha256Digest};

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
    /// `TA_PERSISTENCE_STRICT` is set and the configuration has a problem that would
    /// otherwise only be a warning.
    #[error("{0} (refused because TA_PERSISTENCE_STRICT is set)")]
    Strict(ConfigWarning),
}

/// A configuration problem that is a warning by default and a start-up error with
/// `TA_PERSISTENCE_STRICT=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// A variable that looks meant for the host but is not one it reads.
    UnknownVariable {
        /// The variable as it is spelled in the environment.
        name: String,
        /// The known variable it is probably meant to be.
        suggestion: Option<&'static str>,
    },
    /// `TA_PERSISTENCE_CLASS` is set but `TA_PERSISTENCE_MODULE` is not: a plugin was
    /// meant, and the built-in in-memory store serves instead.
    ClassWithoutModule {
        /// The configured class.
        class: String,
        /// A variable that looks like a misspelled `TA_PERSISTENCE_MODULE`.
        misspelled_module: Option<String>,
    },
    /// `TA_PERSISTENCE_MODULE_SHA256` is set but `TA_PERSISTENCE_MODULE` is not: a pinned
    /// plugin was meant.
    PinWithoutModule,
    /// The plugin file or its directory can be changed by another user (found when the
    /// plugin is loaded; with strict the load is refused instead).
    ExposedPlugin(Exposure),
}

impl ConfigWarning {
    /// The variable the warning is about.
    pub fn variable(&self) -> &str {
        match self {
            ConfigWarning::UnknownVariable { name, .. } => name,
            ConfigWarning::ClassWithoutModule { .. } => CLASS_VAR,
            ConfigWarning::PinWithoutModule => SHA256_VAR,
            ConfigWarning::ExposedPlugin(_) => MODULE_VAR,
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownVariable {
                name,
                suggestion: Some(known),
            } => write!(
                f,
                "{name:?} is not a variable the host reads; did you mean {known}?"
            ),
            ConfigWarning::UnknownVariable {
                name,
                suggestion: None,
            } => write!(
                f,
                "{name:?} is not a variable the host reads (it reads {})",
                KNOWN_VARS.join(", ")
            ),
            ConfigWarning::ClassWithoutModule {
                class,
                misspelled_module,
            } => {
                write!(
                    f,
                    "{CLASS_VAR}={class:?} is set but {MODULE_VAR} is not, so no plugin can be loaded and the built-in in-memory store serves (tasks will not survive a restart)"
                )?;
                match misspelled_module {
                    Some(name) => write!(f, "; {name:?} looks like a misspelled {MODULE_VAR}"),
                    None => Ok(()),
                }
            }
            ConfigWarning::PinWithoutModule => write!(
                f,
                "{SHA256_VAR} is set but {MODULE_VAR} is not, so there is no plugin to pin and the built-in in-memory store serves"
            ),
            ConfigWarning::ExposedPlugin(exposure) => exposure.fmt(f),
        }
    }
}

/// The variable that names the plugin library.
pub const MODULE_VAR: &str = "TA_PERSISTENCE_MODULE";
/// The variable that names the manager class.
pub const CLASS_VAR: &str = "TA_PERSISTENCE_CLASS";
/// The variable that turns the fallback into a start-up error.
pub const STRICT_VAR: &str = "TA_PERSISTENCE_STRICT";
/// The variable that sets the host's deadline on plugin calls and construction.
pub const TIMEOUT_VAR: &str = "TA_PERSISTENCE_TIMEOUT_MS";
/// The variable that names the directory a bare module file name is looked up in.
pub const PLUGIN_DIR_VAR: &str = "TA_PERSISTENCE_PLUGIN_DIR";
/// The variable that pins the plugin library's SHA-256.
pub const SHA256_VAR: &str = "TA_PERSISTENCE_MODULE_SHA256";
/// Every `TA_PERSISTENCE_*` variable the host reads.
pub const KNOWN_VARS: [&str; 7] = [
    MODULE_VAR,
    CLASS_VAR,
    STRICT_VAR,
    TIMEOUT_VAR,
    PLUGIN_DIR_VAR,
    SHA256_VAR,
    RETENTION_VAR,
];

/// The host's deadline when `TA_PERSISTENCE_TIMEOUT_MS` is not set: long enough that a
/// plugin's own limits (the Redis plugin's `TA_REDIS_TIMEOUT_MS`, 5 s) fire first with
/// a more precise error, short enough that a hung plugin is noticed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest deadline accepted: a longer one is no protection against a hang.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// How many edits away from a known name a variable still counts as a misspelling of it.
pub const MAX_TYPO_DISTANCE: usize = 2;
/// The host's namespace.
const PREFIX: &str = "TA_PERSISTENCE_";

/// Which backend to use and how to treat its failure.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The plugin library as configured, if one is: a path, or a file name in
    /// [`Config::plugin_dir`] (see [`Config::module_path`]).
    pub module: Option<PathBuf>,
    /// The directory a bare file name in `module` is looked up in.
    pub plugin_dir: Option<PathBuf>,
    /// The library's pinned SHA-256: any other file is refused.
    pub module_sha256: Option<Sha256Digest>,
    /// The manager class to construct from it.
    pub class: Option<String>,
    /// Refuse to start (instead of falling back to memory) when the plugin fails.
    pub strict: bool,
    /// The host's deadline on loading and constructing the plugin, and on each call into
    /// it.
    pub timeout: Duration,
    /// How long finished tasks are kept (the built-in store's policy; a plugin reads the
    /// same variable from `vars`).
    pub retention: RetentionPolicy,
    /// Every `TA_*` variable, handed to the plugin's constructor.
    pub vars: BTreeMap<String, String>,
    /// Variables that look like misspellings of the host's (found by `from_vars`).
    misspelled: Vec<ConfigWarning>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            module: None,
            plugin_dir: None,
            module_sha256: None,
            class: None,
            strict: false,
            timeout: DEFAULT_TIMEOUT,
            retention: RetentionPolicy::none(),
            vars: BTreeMap::new(),
            misspelled: Vec::new(),
        }
    }
}

impl fmt::Debug for Config {
    // Values may be secrets (a Redis password): show only the names of `vars`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("module", &self.module)
            .field("plugin_dir", &self.plugin_dir)
            .field(
                "module_sha256",
                &self.module_sha256.as_ref().map(hex::encode),
            )
            .field("class", &self.class)
            .field("strict", &self.strict)
            .field("timeout", &self.timeout)
            .field("retention", &self.retention.to_string())
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("misspelled", &self.misspelled)
            .finish()
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads a set of variables (only the `TA_*` ones are kept; every name is checked
    /// for a misspelling of the host's variables).
    ///
    /// With `TA_PERSISTENCE_STRICT=true`, a [`ConfigWarning`] is an error.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut misspelled = Vec::new();
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .inspect(|(k, _)| misspelled.extend(misspelling(k)))
            .filter(|(k, _)| k.starts_with("TA_"))
            .collect();
        // The environment's order is arbitrary; report in a stable one.
        misspelled.sort_by(|a, b| a.variable().cmp(b.variable()));
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
        let plugin_dir = match vars.get(PLUGIN_DIR_VAR) {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(invalid(
                    PLUGIN_DIR_VAR,
                    v,
                    "set but empty; unset it, or give a directory",
                ))
            }
            Some(v) => Some(PathBuf::from(v)),
        };
        if let (Some(module), Some(_)) = (&module, &plugin_dir) {
            if module.is_relative()
                && module
                    .components()
                    .any(|c| matches!(c, Component::ParentDir))
            {
                return Err(invalid(
                    MODULE_VAR,
                    &module.display().to_string(),
                    "a relative path with `..` is refused when TA_PERSISTENCE_PLUGIN_DIR is set (it would leave the directory); give a file name in the directory, or an absolute path",
                ));
            }
        }
        let module_sha256 = match vars.get(SHA256_VAR) {
            None => None,
            Some(v) => Some(parse_hex(v).ok_or_else(|| {
                invalid(
                    SHA256_VAR,
                    v,
                    "expected a SHA-256 as 64 hex digits (what `sha256sum` or `ta-persist check` prints)",
                )
            })?),
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
        let timeout = match vars.get(TIMEOUT_VAR) {
            None => DEFAULT_TIMEOUT,
            Some(v) => parse_timeout(TIMEOUT_VAR, v)?,
        };
        let retention = match vars.get(RETENTION_VAR) {
            None => RetentionPolicy::none(),
            Some(v) => {
                RetentionPolicy::parse(v).map_err(|err| invalid(RETENTION_VAR, v, err.reason()))?
            }
        };
        let config = Config {
            module,
            plugin_dir,
            module_sha256,
            class,
            strict,
            timeout,
            retention,
            vars,
            misspelled,
        };
        config.check()?;
        Ok(config)
    }

    /// The configuration's problems: misspelled variables, and a class or a pin without a
    /// module.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let mut out = Vec::new();
        if let (None, Some(class)) = (&self.module, &self.class) {
            let misspelled_module = self.misspelled.iter().find_map(|w| match w {
                ConfigWarning::UnknownVariable {
                    name,
                    suggestion: Some(MODULE_VAR),
                } => Some(name.clone()),
                _ => None,
            });
            out.push(ConfigWarning::ClassWithoutModule {
                class: class.clone(),
                misspelled_module,
            });
        }
        if self.module.is_none() && self.module_sha256.is_some() {
            out.push(ConfigWarning::PinWithoutModule);
        }
        out.extend(self.misspelled.iter().cloned());
        out
    }

    /// The plugin library's path: `module` resolved against `plugin_dir`.
    ///
    /// - Without a plugin directory, `module` as it is.
    /// - With one, a bare file name (no path separator) is a file in that directory:
    ///   `dir/name` if something by that name is there; otherwise, if the name does not
    ///   already end in this platform's library suffix, the platform's library file name
    ///   for it (`libname.so`, `libname.dylib`, `name.dll`), so `redis` finds
    ///   `libredis.so`; otherwise `dir/name` (which step 1 of the loader reports
    ///   missing).
    /// - A path with a separator (absolute, or relative like `./x.so`) is used as it is;
    ///   a relative one holding `..` was refused when the configuration was read.
    pub fn module_path(&self) -> Option<PathBuf> {
        let module = self.module.as_ref()?;
        let Some(dir) = &self.plugin_dir else {
            return Some(module.clone());
        };
        let mut parts = module.components();
        let bare = match (parts.next(), parts.next()) {
            (Some(Component::Normal(_)), None) => !module.to_string_lossy().ends_with('/'),
            _ => false,
        };
        if !bare {
            return Some(module.clone());
        }
        let exact = dir.join(module);
        let suffix = std::env::consts::DLL_SUFFIX;
        let name = module.to_string_lossy();
        if exact.symlink_metadata().is_ok() || name.ends_with(suffix) {
            return Some(exact);
        }
        Some(dir.join(platform_file_name(&name)))
    }

    /// The warnings of a usable configuration; with [`Config::strict`], the first warning
    /// as an error instead.
    pub fn check(&self) -> Result<Vec<ConfigWarning>, ConfigError> {
        let warnings = self.warnings();
        match warnings.first() {
            Some(first) if self.strict => Err(ConfigError::Strict(first.clone())),
            _ => Ok(warnings),
        }
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
            vars,
            ..Config::default()
        }
    }

    /// The same configuration with a plugin directory (see [`Config::module_path`]).
    pub fn with_plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.vars
            .insert(PLUGIN_DIR_VAR.to_owned(), dir.display().to_string());
        self.plugin_dir = Some(dir);
        self
    }

    /// The same configuration with the library pinned to a SHA-256.
    pub fn with_sha256(mut self, digest: Sha256Digest) -> Self {
        self.vars.insert(SHA256_VAR.to_owned(), hex::encode(digest));
        self.module_sha256 = Some(digest);
        self
    }

    /// The same configuration with the strict policy on or off.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self.vars.insert(STRICT_VAR.to_owned(), strict.to_string());
        self
    }

    /// The same configuration with another deadline on plugin calls and construction.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.vars
            .insert(TIMEOUT_VAR.to_owned(), timeout.as_millis().to_string());
        self
    }

    /// The same configuration with another retention policy for the built-in store (a
    /// plugin reads its own from [`RETENTION_VAR`] in `vars`).
    pub fn with_retention(mut self, retention: RetentionPolicy) -> Self {
        self.retention = retention;
        self
    }

    /// The same configuration with one more variable for the plugin.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }
}

/// This platform's file name for a library called `name`: `libname.so`,
/// `libname.dylib` or `name.dll`.
pub fn platform_file_name(name: &str) -> String {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    format!("{DLL_PREFIX}{name}{DLL_SUFFIX}")
}

/// Whether `path` is a library file by this platform's suffix (`.so`, `.dylib`, `.dll`).
pub fn has_library_suffix(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
}

/// Parses a boolean variable: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, value, "expected true or false")),
    }
}

/// Parses a deadline in milliseconds: a whole number from 1 to one hour's worth.
pub fn parse_timeout(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let reason = format!(
        "expected a whole number of milliseconds from 1 to {}",
        MAX_TIMEOUT.as_millis()
    );
    match value.trim().parse::<u64>() {
        Ok(ms) if ms >= 1 && u128::from(ms) <= MAX_TIMEOUT.as_millis() => {
            Ok(Duration::from_millis(ms))
        }
        _ => Err(invalid(name, value, &reason)),
    }
}

/// Whether `name` looks like a misspelling of one of the host's variables, and of which.
fn misspelling(name: &str) -> Option<ConfigWarning> {
    if KNOWN_VARS.contains(&name) {
        return None;
    }
    // Case and `-` for `_` count as no edit at all: both are easy slips, and both make
    // the variable invisible to the host.
    let normal: String = name
        .trim()
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    let nearest = KNOWN_VARS
        .iter()
        .map(|known| (strsim::osa_distance(&normal, known), *known))
        .min()
        .filter(|(distance, _)| *distance <= MAX_TYPO_DISTANCE);
    if let Some((_, known)) = nearest {
        return Some(ConfigWarning::UnknownVariable {
            name: name.to_owned(),
            suggestion: Some(known),
        });
    }
    // The prefix itself, possibly misspelled, followed by anything: compare the name's
    // first characters (as many as the prefix has, give or take the allowed edits). The
    // rest may still be a known name shortened or lengthened (`..._TIMEOUT` for
    // `..._TIMEOUT_MS`, `..._MODULE_PATH` for `..._MODULE`).
    let chars: Vec<char> = normal.chars().collect();
    let width = PREFIX.len();
    let (_, len) = (width - MAX_TYPO_DISTANCE..=width + MAX_TYPO_DISTANCE)
        .filter_map(|len| {
            let head: String = chars.get(..len)?.iter().collect();
            Some((
                strsim::osa_distance(&head, PREFIX),
                len.abs_diff(width),
                len,
            ))
        })
        .min()
        .filter(|(distance, _, _)| *distance <= MAX_TYPO_DISTANCE)
        .map(|(distance, _, len)| (distance, len))?;
    let rest: String = chars[len..].iter().collect();
    let suggestion = KNOWN_VARS.into_iter().find(|known| {
        let known = &known[width..];
        !rest.is_empty() && (known.starts_with(&rest) || rest.starts_with(known))
    });
    Some(ConfigWarning::UnknownVariable {
        name: name.to_owned(),
        suggestion,
    })
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
    fn retention_is_parsed_strictly_and_kept_for_plugins() {
        let c = Config::from_vars([(RETENTION_VAR, "completed=7d, failed=30d")]).unwrap();
        assert_eq!(c.retention.to_string(), "completed=7d,failed=30d");
        // Plugins read it themselves: it is among the variables they are handed.
        assert_eq!(
            c.vars.get(RETENTION_VAR).map(String::as_str),
            Some("completed=7d, failed=30d")
        );
        assert!(Config::from_vars([("PATH", "/bin")])
            .unwrap()
            .retention
            .is_empty());
        for bad in [
            "completed=7",
            "running=1d",
            "completed=1d,completed=2d",
            "done=1d",
        ] {
            match Config::from_vars([(RETENTION_VAR, bad)]) {
                Err(ConfigError::Invalid { name, value, .. }) => {
                    assert_eq!((name.as_str(), value.as_str()), (RETENTION_VAR, bad));
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(
            suggestion_for("TA_PERSISTENCE_RETENTON"),
            Some(Some(RETENTION_VAR))
        );
    }

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

    fn suggestion_for(name: &str) -> Option<Option<&'static str>> {
        let c = Config::from_vars([(name, "x")]).unwrap();
        match c.warnings().as_slice() {
            [] => None,
            [ConfigWarning::UnknownVariable {
                name: n,
                suggestion,
            }] => {
                assert_eq!(n, name);
                Some(*suggestion)
            }
            other => panic!("{name}: unexpected warnings {other:?}"),
        }
    }

    #[test]
    fn near_misses_of_known_variables_name_the_intended_one() {
        for (typo, meant) in [
            ("TA_PERSISTANCE_MODULE", MODULE_VAR),
            ("TA_PERSISTENCE_MODUL", MODULE_VAR),
            ("TA_PERSISTENCE_MODLUE", MODULE_VAR),
            ("ta_persistence_module", MODULE_VAR),
            ("TA-PERSISTENCE-CLASS", CLASS_VAR),
            ("TA_PERSITENCE_CLASS", CLASS_VAR),
            ("TA_PERSISTENCE_STRICTT", STRICT_VAR),
            ("TA_PERSISTENCE_TIMEOUT", TIMEOUT_VAR),
            ("TAPERSISTENCE_TIMEOUT_MS", TIMEOUT_VAR),
        ] {
            assert_eq!(suggestion_for(typo), Some(Some(meant)), "{typo}");
        }
    }

    #[test]
    fn unknown_names_in_the_namespace_or_a_misspelled_one_are_reported() {
        assert_eq!(suggestion_for("TA_PERSISTENCE_BACKEND"), Some(None));
        assert_eq!(
            suggestion_for("TA_PERSISTENCE_MODULE_PATH"),
            Some(Some(MODULE_VAR))
        );
        assert_eq!(suggestion_for("TA_PERSISTANCE_BACKEND"), Some(None));
        assert_eq!(suggestion_for("TA_PERSISTENSE_URL"), Some(None));
        // Other variables, in TA_ or not, are not the host's business.
        for other in [
            "TA_REDIS_HOST",
            "TA_PLUGIN_MODULE",
            "TA_TYPES_MODULE",
            "TA_SERVICE_CONFIG",
            "PATH",
            "TA_PERSIST",
        ] {
            assert_eq!(suggestion_for(other), None, "{other}");
        }
        for known in KNOWN_VARS {
            let value = match known {
                STRICT_VAR => "false",
                SHA256_VAR => PIN,
                RETENTION_VAR => "completed=1d",
                _ => "1",
            };
            let c = Config::from_vars([(known, value)]).unwrap();
            assert!(
                c.warnings()
                    .iter()
                    .all(|w| !matches!(w, ConfigWarning::UnknownVariable { .. })),
                "{known}"
            );
        }
    }

    #[test]
    fn strict_turns_warnings_into_errors() {
        let e = Config::from_vars([(STRICT_VAR, "true"), ("TA_PERSISTENCE_MODUL", "/x/l.so")])
            .unwrap_err();
        assert!(
            matches!(
                &e,
                ConfigError::Strict(ConfigWarning::UnknownVariable {
                    suggestion: Some(MODULE_VAR),
                    ..
                })
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("did you mean TA_PERSISTENCE_MODULE"),
            "{e}"
        );
        let c = Config::from_vars([("TA_PERSISTENCE_MODUL", "/x/l.so")]).unwrap();
        assert_eq!(c.module, None);
        assert_eq!(c.warnings().len(), 1);
    }

    #[test]
    fn strict_refuses_a_class_without_a_module_and_names_the_misspelling() {
        let e = Config::from_vars([
            (STRICT_VAR, "true"),
            (CLASS_VAR, "RedisTaskPersistenceManager"),
            ("TA_PERSISTANCE_MODULE", "/x/l.so"),
        ])
        .unwrap_err();
        let ConfigError::Strict(ConfigWarning::ClassWithoutModule {
            misspelled_module, ..
        }) = &e
        else {
            panic!("expected a class without a module, got {e}");
        };
        assert_eq!(misspelled_module.as_deref(), Some("TA_PERSISTANCE_MODULE"));
        assert!(e.to_string().contains("TA_PERSISTANCE_MODULE"), "{e}");
        let e = Config::from_vars([(STRICT_VAR, "1"), (CLASS_VAR, "X")]).unwrap_err();
        assert!(
            e.to_string().contains("TA_PERSISTENCE_MODULE is not"),
            "{e}"
        );
    }

    #[test]
    fn the_timeout_is_parsed_strictly() {
        assert_eq!(Config::default().timeout, DEFAULT_TIMEOUT);
        let c = Config::from_vars([(TIMEOUT_VAR, " 250 ")]).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(250));
        let c = Config::from_vars([(TIMEOUT_VAR, "3600000")]).unwrap();
        assert_eq!(c.timeout, MAX_TIMEOUT);
        for bad in [
            "0",
            "-1",
            "1.5",
            "5s",
            "",
            "3600001",
            "99999999999999999999",
        ] {
            let e = Config::from_vars([(TIMEOUT_VAR, bad)]).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { name, .. } if name == TIMEOUT_VAR),
                "{bad}: {e}"
            );
        }
    }

    /// The SHA-256 of the empty string.
    const PIN: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_pin_is_parsed_and_a_malformed_one_names_the_variable() {
        let c = Config::from_vars([(MODULE_VAR, "/x/l.so"), (SHA256_VAR, PIN)]).unwrap();
        assert_eq!(c.module_sha256.map(hex::encode).as_deref(), Some(PIN));
        let upper = PIN.to_uppercase();
        let c = Config::from_vars([(MODULE_VAR, "/x/l.so"), (SHA256_VAR, upper.as_str())]).unwrap();
        assert_eq!(c.module_sha256.map(hex::encode).as_deref(), Some(PIN));
        for bad in ["", "abc", &PIN[1..], &PIN.replace('e', "z")] {
            let e = Config::from_vars([(MODULE_VAR, "/x/l.so"), (SHA256_VAR, bad)]).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { name, .. } if name == SHA256_VAR),
                "{bad:?}: {e}"
            );
            assert!(e.to_string().contains(SHA256_VAR), "{e}");
        }
        // A pin with nothing to pin: a warning, an error when strict.
        let c = Config::from_vars([(SHA256_VAR, PIN)]).unwrap();
        assert_eq!(c.warnings(), vec![ConfigWarning::PinWithoutModule]);
        let e = Config::from_vars([(SHA256_VAR, PIN), (STRICT_VAR, "true")]).unwrap_err();
        assert!(
            matches!(e, ConfigError::Strict(ConfigWarning::PinWithoutModule)),
            "{e}"
        );
    }

    #[test]
    fn a_bare_name_is_looked_up_in_the_plugin_dir_and_a_path_is_not() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let with = |module: &str| {
            Config::from_vars([
                (MODULE_VAR, module),
                (PLUGIN_DIR_VAR, dir.to_str().unwrap()),
            ])
        };
        let resolved = |module: &str| with(module).unwrap().module_path().unwrap();
        let lib = platform_file_name("thing");
        assert_eq!(resolved(&lib), dir.join(&lib));
        // Without the platform's prefix and suffix: its library file name...
        assert_eq!(resolved("thing"), dir.join(&lib));
        // ...unless a file by the exact name is there.
        std::fs::write(dir.join("thing"), b"").unwrap();
        assert_eq!(resolved("thing"), dir.join("thing"));
        // A path with a separator is used as it is.
        assert_eq!(resolved("/opt/p/libx.so"), PathBuf::from("/opt/p/libx.so"));
        assert_eq!(resolved("./libx.so"), PathBuf::from("./libx.so"));
        assert_eq!(resolved("sub/libx.so"), PathBuf::from("sub/libx.so"));
        // A relative path that leaves the directory is refused, naming the variable.
        for escape in ["..", "../libx.so", "sub/../../libx.so"] {
            let e = with(escape).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { name, .. } if name == MODULE_VAR),
                "{escape}: {e}"
            );
        }
        // Without a directory, `..` is a path like any other.
        let c = Config::from_vars([(MODULE_VAR, "../libx.so")]).unwrap();
        assert_eq!(c.module_path(), Some(PathBuf::from("../libx.so")));
        let e = Config::from_vars([(PLUGIN_DIR_VAR, " ")]).unwrap_err();
        assert!(e.to_string().contains(PLUGIN_DIR_VAR), "{e}");
    }

    #[test]
    fn debug_shows_no_values() {
        let c = Config::from_vars([("TA_REDIS_PWD", "hunter2")]).unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("TA_REDIS_PWD") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
