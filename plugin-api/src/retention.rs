//! Retention: how long a finished task is kept after its last write.
//!
//! A [`RetentionPolicy`] gives a maximum age to some of the finished statuses
//! (`Completed`, `Failed`, `Canceled`); `Running` and `Paused` tasks are never expired by
//! it. The age is measured from the moment the store applied the task's last write, on
//! the store's clock (not from the task's `last_updated` field, which comes from the
//! caller's clock and may be skewed or absent): a write that leaves a task in a retained
//! status sets its expiry to that moment plus the maximum age, and a write into any other
//! status clears it.
//!
//! An expired task is gone from every read, lookup and listing at once, with its index
//! entries; an update of it answers `NotFound` and a create of its id succeeds. `purge()`
//! removes what has expired so far and says how many; stores also sweep on their own.

use std::fmt;
use std::time::Duration;

use crate::model::TaskStatus;

/// The variable that holds the policy: `TA_PERSISTENCE_RETENTION`.
pub const RETENTION_VAR: &str = "TA_PERSISTENCE_RETENTION";

/// The statuses a policy can retain, in the order a policy is displayed.
const RETAINABLE: [TaskStatus; 3] = [
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Canceled,
];

/// A maximum age per finished status.
///
/// ```
/// use std::time::Duration;
/// use ta_persistence_api::retention::RetentionPolicy;
/// use ta_persistence_api::TaskStatus;
///
/// let policy = RetentionPolicy::parse("completed=7d, failed=30d, canceled=12h").unwrap();
/// assert_eq!(policy.max_age(TaskStatus::Completed), Some(Duration::from_secs(7 * 86_400)));
/// assert_eq!(policy.max_age(TaskStatus::Running), None);
/// assert_eq!(policy.to_string(), "completed=7d,failed=30d,canceled=12h");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Indexed like `RETAINABLE`.
    ages: [Option<Duration>; 3],
}

/// Why a retention policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{RETENTION_VAR}: {reason} (expected e.g. \"completed=7d,failed=30d,canceled=1d\"; units s, m, h, d)")]
pub struct RetentionError {
    reason: String,
}

impl RetentionError {
    fn new(reason: impl Into<String>) -> Self {
        RetentionError {
            reason: reason.into(),
        }
    }

    /// What is wrong with the policy.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The largest age accepted: 100 years, far beyond any sane retention and small enough
/// that adding it to any clock reading cannot overflow.
const MAX_AGE: Duration = Duration::from_secs(100 * 366 * 86_400);

impl RetentionPolicy {
    /// The policy that expires nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether the policy expires nothing.
    pub fn is_empty(&self) -> bool {
        self.ages.iter().all(Option::is_none)
    }

    /// The policy with `status` kept for `max_age` after its last write; `None` for a
    /// status that cannot be retained (`Running`, `Paused`) or an age of zero or over 100
    /// years.
    pub fn with(mut self, status: TaskStatus, max_age: Duration) -> Option<Self> {
        let slot = RETAINABLE.iter().position(|s| *s == status)?;
        if max_age.is_zero() || max_age > MAX_AGE {
            return None;
        }
        self.ages[slot] = Some(max_age);
        Some(self)
    }

    /// How long a task in `status` is kept after its last write, if it expires at all.
    pub fn max_age(&self, status: TaskStatus) -> Option<Duration> {
        let slot = RETAINABLE.iter().position(|s| *s == status)?;
        self.ages[slot]
    }

    /// Parses a policy: comma-separated `status=age` entries, the status one of
    /// `completed`, `failed`, `canceled` (any case), the age a positive whole number with
    /// a unit `s`, `m`, `h` or `d`. Blank text is the empty policy. Anything else, a
    /// status given twice, `running` or `paused` included, is refused.
    pub fn parse(text: &str) -> Result<Self, RetentionError> {
        let mut policy = RetentionPolicy::none();
        if text.trim().is_empty() {
            return Ok(policy);
        }
        for entry in text.split(',') {
            let entry = entry.trim();
            let Some((status, age)) = entry.split_once('=') else {
                return Err(RetentionError::new(format!(
                    "\"{}\" is not status=age",
                    entry.escape_debug()
                )));
            };
            let (status, age) = (status.trim(), age.trim());
            let status = match status.to_ascii_lowercase().as_str() {
                "completed" => TaskStatus::Completed,
                "failed" => TaskStatus::Failed,
                "canceled" | "cancelled" => TaskStatus::Canceled,
                "running" | "paused" => {
                    return Err(RetentionError::new(format!(
                        "{status} tasks are never expired: only completed, failed and canceled ones can be"
                    )))
                }
                _ => {
                    return Err(RetentionError::new(format!(
                        "\"{}\" is not a status (completed, failed or canceled)",
                        status.escape_debug()
                    )))
                }
            };
            if policy.max_age(status).is_some() {
                return Err(RetentionError::new(format!(
                    "{} is given twice",
                    status.as_str().to_ascii_lowercase()
                )));
            }
            let max_age = parse_age(age)?;
            policy = policy.with(status, max_age).ok_or_else(|| {
                RetentionError::new(format!(
                    "\"{}\" is not an age from 1 second to 100 years",
                    age.escape_debug()
                ))
            })?;
        }
        Ok(policy)
    }

    /// The policy in the process environment's [`RETENTION_VAR`]; the empty policy when it
    /// is unset.
    pub fn from_env() -> Result<Self, RetentionError> {
        match std::env::var(RETENTION_VAR) {
            Ok(text) => Self::parse(&text),
            Err(std::env::VarError::NotPresent) => Ok(Self::none()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(RetentionError::new("the value is not valid UTF-8"))
            }
        }
    }

    /// The policy in a plugin's configuration (the host passes [`RETENTION_VAR`] on);
    /// the empty policy when it is not set.
    pub fn from_config(config: &crate::ffi::PluginConfig) -> Result<Self, RetentionError> {
        config
            .get(RETENTION_VAR)
            .map_or(Ok(Self::none()), Self::parse)
    }
}

fn parse_age(text: &str) -> Result<Duration, RetentionError> {
    let refuse = || {
        RetentionError::new(format!(
            "\"{}\" is not an age: a whole number and a unit s, m, h or d",
            text.escape_debug()
        ))
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(refuse)?;
    let (digits, unit) = text.split_at(split);
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(refuse()),
    };
    let count: u64 = digits.parse().map_err(|_| refuse())?;
    count
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(refuse)
}

impl fmt::Display for RetentionPolicy {
    /// The policy in the form [`RetentionPolicy::parse`] reads, with each age in its
    /// largest whole unit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (status, age) in RETAINABLE.iter().zip(self.ages) {
            let Some(age) = age else { continue };
            if !first {
                f.write_str(",")?;
            }
            first = false;
            let secs = age.as_secs();
            let (n, unit) = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
                .into_iter()
                .find(|(u, _)| secs % u == 0)
                .map(|(u, name)| (secs / u, name))
                .unwrap_or((secs, "s"));
            write!(f, "{}={n}{unit}", status.as_str().to_ascii_lowercase())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_every_unit_and_round_trips() {
        let policy = RetentionPolicy::parse(" Completed = 90m ,failed=2h,cancelled=45s").unwrap();
        assert_eq!(
            policy.max_age(TaskStatus::Completed),
            Some(Duration::from_secs(5_400))
        );
        assert_eq!(
            policy.max_age(TaskStatus::Failed),
            Some(Duration::from_secs(7_200))
        );
        assert_eq!(
            policy.max_age(TaskStatus::Canceled),
            Some(Duration::from_secs(45))
        );
        assert_eq!(policy.max_age(TaskStatus::Paused), None);
        assert_eq!(RetentionPolicy::parse(&policy.to_string()).unwrap(), policy);
        assert!(RetentionPolicy::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn malformed_policies_are_refused_with_the_variable_named() {
        for bad in [
            "completed",
            "completed=",
            "completed=7",
            "completed=7w",
            "completed=-1d",
            "completed=0s",
            "completed=1.5d",
            "completed=7d,",
            "completed=7d,completed=1d",
            "running=1d",
            "paused=1d",
            "done=1d",
            "completed=99999999999999999999d",
            "completed=40000d",
        ] {
            let err = RetentionPolicy::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with(RETENTION_VAR), "{bad}: {err}");
        }
        assert!(RetentionPolicy::parse("running=1d")
            .unwrap_err()
            .reason()
            .contains("never expired"));
    }
}
