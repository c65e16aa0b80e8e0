//! What a plugin's configuration parser reports: a variable whose value it does not
//! accept, named, with the value unless it may hold a secret. Plugins read their own
//! variables; this is the shared shape of their errors and a helper for numbers.

use std::fmt;
use std::str::FromStr;

/// A variable with a value the plugin does not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// Its value, or `None` when the value is (or may hold) a secret.
    pub value: Option<String>,
    /// What is accepted instead.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value:?} is not valid: {}", self.name, self.reason),
            None => write!(f, "{} is not valid: {}", self.name, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Variable `name` refused with its (non-secret) `value` and why.
pub fn invalid(name: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        value: Some(value.to_owned()),
        reason: reason.into(),
    }
}

/// `value` of variable `name` read as a whole number from `min` to `max`.
pub fn number<T>(name: &'static str, value: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|n| *n >= min && *n <= max)
        .ok_or_else(|| {
            invalid(
                name,
                value,
                format!("expected a number from {min} to {max}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_variable_and_shows_only_values_that_are_not_secret() {
        let shown = invalid("TA_X_PORT", "70000", "expected a port");
        assert_eq!(
            shown.to_string(),
            "TA_X_PORT=\"70000\" is not valid: expected a port"
        );
        let hidden = ConfigError {
            name: "TA_X_PASSWORD",
            value: None,
            reason: "empty".into(),
        };
        assert_eq!(hidden.to_string(), "TA_X_PASSWORD is not valid: empty");
    }

    #[test]
    fn numbers_are_read_within_their_bounds() {
        assert_eq!(number("N", " 7 ", 1u32, 10), Ok(7));
        for bad in ["0", "11", "x", "-1", ""] {
            let err = number("N", bad, 1u32, 10).unwrap_err();
            assert_eq!(err.reason, "expected a number from 1 to 10", "{bad}");
        }
    }
}
