//! `RedisConfig`: the plugin's `TA_REDIS_*` variables, parsed strictly.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TA_REDIS_HOST` | `localhost` | server host name or address |
//! | `TA_REDIS_PORT` | `6379` | server port (1-65535) |
//! | `TA_REDIS_DB` | `0` | database number |
//! | `TA_REDIS_USERNAME` | none | ACL user name (needs a password) |
//! | `TA_REDIS_PWD` | none | password; never logged, never shown by `Debug` |
//! | `TA_REDIS_SSL` | `false` | `true`: connect with TLS (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`) |
//! | `TA_REDIS_CA_CERT` | none | PEM file of the CA to trust for TLS (default: the system's roots) |
//! | `TA_REDIS_TTL` | `3600` | seconds a task lives after its last write; `0`: no expiry |
//! | `TA_REDIS_PREFIX` | `task_persistence` | key namespace, the Python original's by default |
//! | `TA_REDIS_TIMEOUT_MS` | `5000` | limit on each operation, connecting included |
//! | `TA_PERSISTENCE_RETENTION` | none | the host's retention policy (`completed=7d,...`); a status it names gets its age as TTL instead of `TA_REDIS_TTL` |
//! | `TA_REDIS_CLUSTER`, `TA_REDIS_NODES`, `TA_REDIS_WAIT_REPLICAS` | | Redis Cluster mode: see [`crate::cluster::config`] |
//!
//! An empty value is an error naming the variable, as it is for the host's own
//! variables: unset a variable to get its default. (The Python original's configuration
//! read empty strings as unset; a variable set by mistake to nothing, say an empty
//! password or prefix, is better refused at start-up than silently replaced by a
//! default.) Any other malformed value is an error that names the variable and its value
//! (except the password's, which is never repeated).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ta_persistence_api::retention::{RetentionPolicy, RETENTION_VAR};

/// `TA_REDIS_HOST`.
pub const HOST: &str = "TA_REDIS_HOST";
/// `TA_REDIS_PORT`.
pub const PORT: &str = "TA_REDIS_PORT";
/// `TA_REDIS_DB`.
pub const DB: &str = "TA_REDIS_DB";
/// `TA_REDIS_USERNAME`.
pub const USERNAME: &str = "TA_REDIS_USERNAME";
/// `TA_REDIS_PWD`.
pub const PASSWORD: &str = "TA_REDIS_PWD";
/// `TA_REDIS_SSL`.
pub const SSL: &str = "TA_REDIS_SSL";
/// `TA_REDIS_CA_CERT`.
pub const CA_CERT: &str = "TA_REDIS_CA_CERT";
/// `TA_REDIS_TTL`.
pub const TTL: &str = "TA_REDIS_TTL";
/// `TA_REDIS_PREFIX`.
pub const PREFIX: &str = "TA_REDIS_PREFIX";
/// `TA_REDIS_TIMEOUT_MS`.
pub const TIMEOUT_MS: &str = "TA_REDIS_TIMEOUT_MS";

/// Every variable the plugin reads.
pub const ALL: [&str; 10] = [
    HOST, PORT, DB, USERNAME, PASSWORD, SSL, CA_CERT, TTL, PREFIX, TIMEOUT_MS,
];

/// The key namespace of the Python original.
pub const DEFAULT_PREFIX: &str = "task_persistence";

/// How the plugin reaches Redis and how it keeps tasks there.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database number.
    pub db: u32,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any. Never logged; `Debug` shows it redacted.
    pub password: Option<String>,
    /// Connect with TLS.
    pub tls: bool,
    /// PEM file of the CA to trust for TLS; `None`: the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Seconds a task (and every index set listing it) lives after its last write;
    /// 0: no expiry.
    pub ttl_secs: u64,
    /// Key namespace: keys are `{prefix}:task:{id}`, `{prefix}:request_index:{id}` and
    /// `{prefix}:quarantine:{id}`.
    pub prefix: String,
    /// Limit on each operation (and on connecting).
    pub timeout: Duration,
    /// How long a task in a finished status lives after its last write; a status the
    /// policy names gets that age as its TTL instead of `ttl_secs`.
    pub retention: RetentionPolicy,
    /// Redis Cluster mode, when `TA_REDIS_CLUSTER=true`; `None`: a single server.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            host: "localhost".to_owned(),
            port: 6379,
            db: 0,
            username: None,
            password: None,
            tls: false,
            ca_cert: None,
            ttl_secs: 3600,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: Duration::from_millis(5000),
            retention: RetentionPolicy::none(),
            cluster: None,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("ca_cert", &self.ca_cert)
            .field("ttl_secs", &self.ttl_secs)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("retention", &self.retention)
            .field("cluster", &self.cluster)
            .finish()
    }
}

use ta_persistence_api::config::invalid;
pub use ta_persistence_api::config::ConfigError;

/// Parses a boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case (the
/// same words the host accepts for its own switches).
pub fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, value, "expected true or false")),
    }
}

fn parse_number<T: std::str::FromStr>(
    name: &'static str,
    value: &str,
    expected: &str,
) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, value, format!("expected {expected}")))
}

impl RedisConfig {
    /// Reads the configuration through `lookup` (a variable's value, if set).
    pub fn from_lookup<'a>(lookup: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ConfigError> {
        for name in ALL {
            if lookup(name) == Some("") {
                return Err(ConfigError {
                    name,
                    value: (name != PASSWORD).then(String::new),
                    reason: "the value is empty; unset the variable to use its default".into(),
                });
            }
        }
        let get = |name: &str| lookup(name);
        let mut config = RedisConfig::default();
        if let Some(host) = get(HOST) {
            if host.trim().is_empty() || host.chars().any(char::is_whitespace) {
                return Err(invalid(HOST, host, "expected a host name or address"));
            }
            config.host = host.to_owned();
        }
        if let Some(port) = get(PORT) {
            config.port = parse_number(PORT, port, "a port number from 1 to 65535")?;
            if config.port == 0 {
                return Err(invalid(
                    PORT,
                    port,
                    "expected a port number from 1 to 65535",
                ));
            }
        }
        if let Some(db) = get(DB) {
            config.db = parse_number(DB, db, "a database number (0 or more)")?;
        }
        config.username = get(USERNAME).map(str::to_owned);
        config.password = get(PASSWORD).map(str::to_owned);
        if config.username.is_some() && config.password.is_none() {
            return Err(ConfigError {
                name: USERNAME,
                value: config.username.clone(),
                reason: format!("a user name needs a password ({PASSWORD})"),
            });
        }
        if let Some(ssl) = get(SSL) {
            config.tls = parse_bool(SSL, ssl)?;
        }
        if let Some(ca) = get(CA_CERT) {
            if !config.tls {
                return Err(invalid(
                    CA_CERT,
                    ca,
                    format!("a CA certificate is only used with TLS; set {SSL}=true"),
                ));
            }
            config.ca_cert = Some(PathBuf::from(ca));
        }
        if let Some(ttl) = get(TTL) {
            config.ttl_secs = parse_number(TTL, ttl, "a number of seconds (0: no expiry)")?;
            // Redis keeps expiry times in milliseconds as a signed 64-bit number.
            if config.ttl_secs > i64::MAX as u64 / 1000 {
                return Err(invalid(TTL, ttl, "the number of seconds is too large"));
            }
        }
        if let Some(prefix) = get(PREFIX) {
            if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    PREFIX,
                    prefix,
                    "expected a key prefix without spaces or control characters",
                ));
            }
            config.prefix = prefix.to_owned();
        }
        if let Some(timeout) = get(TIMEOUT_MS) {
            let ms: u64 = parse_number(TIMEOUT_MS, timeout, "a number of milliseconds above 0")?;
            if ms == 0 {
                return Err(invalid(
                    TIMEOUT_MS,
                    timeout,
                    "expected a number of milliseconds above 0",
                ));
            }
            config.timeout = Duration::from_millis(ms);
        }
        if let Some(policy) = get(RETENTION_VAR) {
            config.retention = RetentionPolicy::parse(policy).map_err(|e| ConfigError {
                name: RETENTION_VAR,
                value: Some(policy.to_owned()),
                reason: e.reason().to_owned(),
            })?;
        }
        config.cluster = crate::cluster::config::from_lookup(&lookup, &config.prefix)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<RedisConfig, ConfigError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RedisConfig::from_lookup(|name| map.get(name).map(String::as_str))
    }

    #[test]
    fn cluster_mode_takes_a_retention_policy() {
        let c = parse(&[
            ("TA_REDIS_CLUSTER", "true"),
            ("TA_REDIS_NODES", "127.0.0.1:7000"),
            (RETENTION_VAR, "completed=1d"),
        ])
        .unwrap();
        assert!(c.cluster.is_some());
        assert_eq!(
            c.retention
                .max_age(ta_persistence_api::TaskStatus::Completed),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn no_variables_give_the_python_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, RedisConfig::default());
        assert_eq!((c.host.as_str(), c.port, c.db), ("localhost", 6379, 0));
        assert_eq!(c.ttl_secs, 3600);
        assert!(!c.tls);
        assert_eq!(c.prefix, "task_persistence");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert!(c.retention.is_empty());
    }

    #[test]
    fn the_retention_policy_is_read_strictly() {
        let c = parse(&[(RETENTION_VAR, "completed=2h, canceled=1s")]).unwrap();
        assert_eq!(
            c.retention
                .max_age(ta_persistence_api::TaskStatus::Completed),
            Some(Duration::from_secs(7200))
        );
        let e = parse(&[(RETENTION_VAR, "running=1d")]).unwrap_err();
        assert_eq!(e.name, RETENTION_VAR);
        assert!(e.to_string().contains("running=1d"), "{e}");
    }

    #[test]
    fn every_variable_is_read() {
        let c = parse(&[
            (HOST, "redis.internal"),
            (PORT, "6380"),
            (DB, "3"),
            (USERNAME, "agent"),
            (PASSWORD, "s3cret"),
            (SSL, "true"),
            (CA_CERT, "/etc/ca.pem"),
            (TTL, "0"),
            (PREFIX, "agent-a:v1"),
            (TIMEOUT_MS, "250"),
        ])
        .unwrap();
        assert_eq!(c.host, "redis.internal");
        assert_eq!((c.port, c.db), (6380, 3));
        assert_eq!(c.username.as_deref(), Some("agent"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert!(c.tls);
        assert_eq!(c.ca_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.ttl_secs, 0);
        assert_eq!(c.prefix, "agent-a:v1");
        assert_eq!(c.timeout, Duration::from_millis(250));
    }

    #[test]
    fn an_empty_value_is_an_error_naming_the_variable() {
        for name in ALL {
            let err = parse(&[(name, "")]).unwrap_err();
            assert_eq!(err.name, name);
            let text = err.to_string();
            assert!(text.contains(name) && text.contains("empty"), "{text}");
        }
        // Unset, each takes its default.
        assert_eq!(parse(&[]).unwrap(), RedisConfig::default());
    }

    #[test]
    fn ssl_is_parsed_strictly_and_not_inverted() {
        for (value, tls) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("false", false),
            ("0", false),
            ("No", false),
        ] {
            assert_eq!(parse(&[(SSL, value)]).unwrap().tls, tls, "{value}");
        }
        let err = parse(&[(SSL, "maybe")]).unwrap_err();
        assert_eq!(err.name, SSL);
        assert_eq!(
            err.to_string(),
            "TA_REDIS_SSL=\"maybe\" is not valid: expected true or false"
        );
    }

    #[test]
    fn malformed_values_name_the_variable_and_value() {
        for (name, value) in [
            (PORT, "abc"),
            (PORT, "0"),
            (PORT, "70000"),
            (DB, "-1"),
            (TTL, "1h"),
            (TTL, "-5"),
            (TTL, "99999999999999999"),
            (TIMEOUT_MS, "0"),
            (TIMEOUT_MS, "fast"),
            (HOST, "two words"),
            (PREFIX, "a b"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name, "{name}={value}");
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(value), "{text}");
        }
    }

    #[test]
    fn a_ca_certificate_needs_tls_and_a_user_name_needs_a_password() {
        let err = parse(&[(CA_CERT, "/ca.pem")]).unwrap_err();
        assert_eq!(err.name, CA_CERT);
        let err = parse(&[(USERNAME, "agent")]).unwrap_err();
        assert_eq!(err.name, USERNAME);
        assert!(parse(&[(USERNAME, "agent"), (PASSWORD, "pw")]).is_ok());
    }

    #[test]
    fn debug_redacts_the_password() {
        let c = parse(&[(PASSWORD, "hunter2-very-secret")]).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let none = format!("{:?}", RedisConfig::default());
        assert!(none.contains("password: None"), "{none}");
    }
}
