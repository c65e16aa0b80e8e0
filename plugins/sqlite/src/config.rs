//! `Settings`: the plugin's `TA_SQLITE_*` variables, parsed strictly; every error names
//! the variable and the value it refused.

use std::path::PathBuf;
use std::time::Duration;

use ta_persistence_api::ffi::PluginConfig;
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::BoxError;

/// The database file (required). Created, with its schema, if it does not exist.
pub const PATH_VAR: &str = "TA_SQLITE_PATH";
/// `full` (default) or `normal`: how often SQLite flushes the log to disk.
pub const SYNCHRONOUS_VAR: &str = "TA_SQLITE_SYNCHRONOUS";
/// How long a statement waits for another process's lock before the call fails as
/// `Unavailable`, in milliseconds (default 5000).
pub const BUSY_TIMEOUT_VAR: &str = "TA_SQLITE_BUSY_TIMEOUT_MS";
/// How many reads run at once, each on its own connection (default 4).
pub const READERS_VAR: &str = "TA_SQLITE_READERS";

/// The busy timeout unless [`BUSY_TIMEOUT_VAR`] says otherwise.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The number of reader connections unless [`READERS_VAR`] says otherwise.
pub const DEFAULT_READERS: usize = 4;
/// The longest busy timeout accepted: longer than any sensible host deadline.
const MAX_BUSY_TIMEOUT_MS: u64 = 600_000;
/// The most reader connections accepted.
const MAX_READERS: usize = 64;

/// When a committed write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Every commit flushes the write-ahead log (`fsync`) before it is acknowledged: an
    /// acknowledged write survives a crash of the process and of the machine.
    #[default]
    Full,
    /// Commits are written to the log but flushed only at checkpoints: an acknowledged
    /// write survives a crash of the process, but the last ones may be lost when the
    /// machine loses power. The database stays consistent either way.
    Normal,
}

impl Synchronous {
    /// The value of SQLite's `PRAGMA synchronous`.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How to open and run a store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The database file.
    pub path: PathBuf,
    /// The synchronous mode.
    pub synchronous: Synchronous,
    /// How long a statement retries while another connection holds a lock it needs.
    pub busy_timeout: Duration,
    /// How many reader connections (and reads at once) the store keeps.
    pub readers: usize,
    /// How long finished tasks are kept after their last write (from
    /// `TA_PERSISTENCE_RETENTION`).
    pub retention: RetentionPolicy,
}

impl Settings {
    /// Settings for the database at `path`, with every other value at its default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Settings {
            path: path.into(),
            synchronous: Synchronous::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            readers: DEFAULT_READERS,
            retention: RetentionPolicy::none(),
        }
    }

    /// With the given synchronous mode.
    pub fn synchronous(mut self, mode: Synchronous) -> Self {
        self.synchronous = mode;
        self
    }

    /// With the given busy timeout.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// With the given number of reader connections (at least one).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// With the given retention policy.
    pub fn retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = policy;
        self
    }

    /// Reads the `TA_SQLITE_*` variables and `TA_PERSISTENCE_RETENTION`.
    pub fn from_config(config: &PluginConfig) -> Result<Self, BoxError> {
        let path = config
            .get(PATH_VAR)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("{PATH_VAR} is not set: name the database file"))?;
        let mut settings = Settings::new(path);
        if let Some(v) = config.get(SYNCHRONOUS_VAR) {
            settings.synchronous = match v.to_ascii_lowercase().as_str() {
                "full" => Synchronous::Full,
                "normal" => Synchronous::Normal,
                _ => {
                    return Err(format!("{SYNCHRONOUS_VAR}={v:?} is not `full` or `normal`").into())
                }
            };
        }
        if let Some(v) = config.get(BUSY_TIMEOUT_VAR) {
            let ms = v
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= MAX_BUSY_TIMEOUT_MS)
                .ok_or_else(|| {
                    format!(
                        "{BUSY_TIMEOUT_VAR}={v:?} is not a number of milliseconds from 0 to {MAX_BUSY_TIMEOUT_MS}"
                    )
                })?;
            settings.busy_timeout = Duration::from_millis(ms);
        }
        if let Some(v) = config.get(READERS_VAR) {
            settings.readers = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_READERS).contains(n))
                .ok_or_else(|| {
                    format!("{READERS_VAR}={v:?} is not a number from 1 to {MAX_READERS}")
                })?;
        }
        settings.retention = RetentionPolicy::from_config(config)?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::from_config(&PluginConfig::new(vars.iter().copied())).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_when_only_the_path_is_set() {
        let s = parse(&[(PATH_VAR, "tasks.db")]).unwrap();
        assert_eq!(s, Settings::new("tasks.db"));
        assert_eq!(s.synchronous, Synchronous::Full);
        assert_eq!(s.busy_timeout, Duration::from_secs(5));
    }

    #[test]
    fn every_variable_is_read() {
        let s = parse(&[
            (PATH_VAR, "x.db"),
            (SYNCHRONOUS_VAR, "NORMAL"),
            (BUSY_TIMEOUT_VAR, "250"),
            (READERS_VAR, "2"),
        ])
        .unwrap();
        assert_eq!(s.synchronous, Synchronous::Normal);
        assert_eq!(s.busy_timeout, Duration::from_millis(250));
        assert_eq!(s.readers, 2);
        let s = parse(&[
            (PATH_VAR, "x.db"),
            ("TA_PERSISTENCE_RETENTION", "completed=2h"),
        ])
        .unwrap();
        assert_eq!(
            s.retention
                .max_age(ta_persistence_api::TaskStatus::Completed),
            Some(Duration::from_secs(7200))
        );
    }

    #[test]
    fn a_missing_or_malformed_value_is_refused_naming_the_variable() {
        assert!(parse(&[]).unwrap_err().contains(PATH_VAR));
        assert!(parse(&[(PATH_VAR, "")]).unwrap_err().contains(PATH_VAR));
        for (var, value) in [
            (SYNCHRONOUS_VAR, "off"),
            (SYNCHRONOUS_VAR, ""),
            (BUSY_TIMEOUT_VAR, "-1"),
            (BUSY_TIMEOUT_VAR, "5s"),
            (BUSY_TIMEOUT_VAR, "600001"),
            (READERS_VAR, "0"),
            (READERS_VAR, "65"),
            ("TA_PERSISTENCE_RETENTION", "running=1d"),
        ] {
            let err = parse(&[(PATH_VAR, "x.db"), (var, value)]).unwrap_err();
            assert!(err.contains(var), "{err}");
            if var.starts_with("TA_SQLITE") {
                assert!(err.contains(&format!("{var}={value:?}")), "{err}");
            }
        }
    }
}
