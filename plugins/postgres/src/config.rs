//! `PgConfig`: the plugin's `TA_PG_*` variables, parsed strictly.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TA_PG_URL` | none | a `postgres://user:password@host:port/database?...` URL; excludes the five below |
//! | `TA_PG_HOST` | `localhost` | server host name or address |
//! | `TA_PG_PORT` | `5432` | server port (1-65535) |
//! | `TA_PG_DATABASE` | `postgres` | database name |
//! | `TA_PG_USER` | `postgres` | user name |
//! | `TA_PG_PASSWORD` | none | password; never logged, never shown by `Debug` or in errors |
//! | `TA_PG_POOL_SIZE` | `16` | most connections the plugin keeps open (1-1000) |
//! | `TA_PG_STATEMENT_TIMEOUT_MS` | `5000` | the server cancels any statement running longer |
//! | `TA_PG_CONNECT_TIMEOUT_MS` | `5000` | limit on opening a connection and on waiting for a free one |
//! | `TA_PG_TLS` | `preferred` | `off`, `preferred` (TLS if the server offers it) or `required` |
//! | `TA_PG_CA_CERT` | none | PEM file of the CA to trust for TLS (default: the system's roots) |
//! | `TA_PG_PURGE_BATCH` | `1000` | rows deleted per transaction by `purge` (1-100000) |
//! | `TA_PG_SWEEP_SECS` | `60` | seconds between background purges when a retention policy is set; `0`: none |
//!
//! An empty value is an error naming the variable: unset a variable to get its default.
//! Any other malformed value is an error naming the variable and its value, except for
//! the password and the URL (which may hold one): those values are never repeated.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// `TA_PG_URL`.
pub const URL: &str = "TA_PG_URL";
/// `TA_PG_HOST`.
pub const HOST: &str = "TA_PG_HOST";
/// `TA_PG_PORT`.
pub const PORT: &str = "TA_PG_PORT";
/// `TA_PG_DATABASE`.
pub const DATABASE: &str = "TA_PG_DATABASE";
/// `TA_PG_USER`.
pub const USER: &str = "TA_PG_USER";
/// `TA_PG_PASSWORD`.
pub const PASSWORD: &str = "TA_PG_PASSWORD";
/// `TA_PG_POOL_SIZE`.
pub const POOL_SIZE: &str = "TA_PG_POOL_SIZE";
/// `TA_PG_STATEMENT_TIMEOUT_MS`.
pub const STATEMENT_TIMEOUT_MS: &str = "TA_PG_STATEMENT_TIMEOUT_MS";
/// `TA_PG_CONNECT_TIMEOUT_MS`.
pub const CONNECT_TIMEOUT_MS: &str = "TA_PG_CONNECT_TIMEOUT_MS";
/// `TA_PG_TLS`.
pub const TLS: &str = "TA_PG_TLS";
/// `TA_PG_CA_CERT`.
pub const CA_CERT: &str = "TA_PG_CA_CERT";
/// `TA_PG_PURGE_BATCH`.
pub const PURGE_BATCH: &str = "TA_PG_PURGE_BATCH";
/// `TA_PG_SWEEP_SECS`.
pub const SWEEP_SECS: &str = "TA_PG_SWEEP_SECS";

/// Every variable the plugin reads.
pub const ALL: [&str; 13] = [
    URL,
    HOST,
    PORT,
    DATABASE,
    USER,
    PASSWORD,
    POOL_SIZE,
    STATEMENT_TIMEOUT_MS,
    CONNECT_TIMEOUT_MS,
    TLS,
    CA_CERT,
    PURGE_BATCH,
    SWEEP_SECS,
];

/// The variables a URL replaces.
const PARTS: [&str; 5] = [HOST, PORT, DATABASE, USER, PASSWORD];

/// The `application_name` the plugin's connections carry (unless a URL sets another),
/// so an operator can tell them apart in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "ta-persistence";

/// Whether connections use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsMode {
    /// Never.
    Off,
    /// When the server offers it; plain text when it does not. A server that offers TLS
    /// with a certificate that does not verify is refused, not used in plain text.
    Preferred,
    /// Always: a server without TLS is refused.
    Required,
}

/// How the plugin reaches Postgres and how it uses it.
#[derive(Clone)]
#[non_exhaustive]
pub struct PgConfig {
    /// The connection settings (host, port, database, user, password, options). Its
    /// own `Debug` redacts the password.
    pub pg: tokio_postgres::Config,
    /// Whether connections use TLS.
    pub tls: TlsMode,
    /// PEM file of the CA to trust for TLS; `None`: the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Most connections kept open.
    pub pool_size: usize,
    /// The server cancels any statement running longer than this.
    pub statement_timeout: Duration,
    /// Limit on opening a connection and on waiting for a free one.
    pub connect_timeout: Duration,
    /// Rows deleted per transaction by a purge.
    pub purge_batch: u32,
    /// Time between background purges when a retention policy is set; `None`: none.
    pub sweep_every: Option<Duration>,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("server", &self.describe())
            .field("password", &self.pg.get_password().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("ca_cert", &self.ca_cert)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("purge_batch", &self.purge_batch)
            .field("sweep_every", &self.sweep_every)
            .finish()
    }
}

pub use ta_persistence_api::config::ConfigError;
use ta_persistence_api::config::{invalid, number};

fn millis(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    // An hour at most: longer limits only hide a hung server.
    number(name, value, 1u64, 3_600_000).map(Duration::from_millis)
}

impl PgConfig {
    /// Reads the configuration through `lookup` (a variable's value, if set).
    pub fn from_lookup<'a>(lookup: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ConfigError> {
        for name in ALL {
            if lookup(name) == Some("") {
                return Err(ConfigError {
                    name,
                    value: (name != PASSWORD && name != URL).then(String::new),
                    reason: "the value is empty; unset the variable to use its default".into(),
                });
            }
        }
        let mut pg = match lookup(URL) {
            Some(url) => from_url(url, &lookup)?,
            None => from_parts(&lookup)?,
        };
        let statement_timeout = match lookup(STATEMENT_TIMEOUT_MS) {
            Some(v) => millis(STATEMENT_TIMEOUT_MS, v)?,
            None => Duration::from_secs(5),
        };
        let connect_timeout = match lookup(CONNECT_TIMEOUT_MS) {
            Some(v) => millis(CONNECT_TIMEOUT_MS, v)?,
            None => Duration::from_secs(5),
        };
        // Set as a session parameter at connection start, so the server itself cancels
        // a statement that runs too long, for every connection of the pool.
        let timeout_option = format!("-c statement_timeout={}", statement_timeout.as_millis());
        let options = match pg.get_options() {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {timeout_option}"),
            _ => timeout_option,
        };
        pg.options(options).connect_timeout(connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name(APPLICATION_NAME);
        }
        let tls = match lookup(TLS) {
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "off" | "disable" | "false" => TlsMode::Off,
                "preferred" | "prefer" => TlsMode::Preferred,
                "required" | "require" | "true" => TlsMode::Required,
                _ => return Err(invalid(TLS, v, "expected off, preferred or required")),
            },
            // A URL's `sslmode` counts when the variable is unset.
            None => match pg.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => TlsMode::Off,
                tokio_postgres::config::SslMode::Require => TlsMode::Required,
                _ => TlsMode::Preferred,
            },
        };
        pg.ssl_mode(match tls {
            TlsMode::Off => tokio_postgres::config::SslMode::Disable,
            TlsMode::Preferred => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Required => tokio_postgres::config::SslMode::Require,
        });
        let ca_cert = match lookup(CA_CERT) {
            Some(ca) if tls == TlsMode::Off => {
                return Err(invalid(
                    CA_CERT,
                    ca,
                    format!(
                        "a CA certificate is only used with TLS; set {TLS}=required or preferred"
                    ),
                ))
            }
            Some(ca) => Some(PathBuf::from(ca)),
            None => None,
        };
        let pool_size = match lookup(POOL_SIZE) {
            Some(v) => number(POOL_SIZE, v, 1usize, 1000)?,
            None => 16,
        };
        let purge_batch = match lookup(PURGE_BATCH) {
            Some(v) => number(PURGE_BATCH, v, 1u32, 100_000)?,
            None => 1000,
        };
        let sweep_every = match lookup(SWEEP_SECS) {
            Some(v) => match number(SWEEP_SECS, v, 0u64, 86_400)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            None => Some(Duration::from_secs(60)),
        };
        Ok(PgConfig {
            pg,
            tls,
            ca_cert,
            pool_size,
            statement_timeout,
            connect_timeout,
            purge_batch,
            sweep_every,
        })
    }

    /// The server, database and user, for messages and logs (never the password).
    pub fn describe(&self) -> String {
        use tokio_postgres::config::Host;
        let hosts: Vec<String> = self
            .pg
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = self.pg.get_ports().iter().map(u16::to_string).collect();
        format!(
            "{}:{}/{} as {}",
            hosts.join(","),
            ports.join(","),
            self.pg.get_dbname().unwrap_or(""),
            self.pg.get_user().unwrap_or("")
        )
    }
}

/// The connection settings of a URL, which excludes the variables it replaces.
fn from_url<'a>(
    url: &str,
    lookup: &impl Fn(&str) -> Option<&'a str>,
) -> Result<tokio_postgres::Config, ConfigError> {
    // The URL's value is never repeated: it may hold the password.
    let refuse = |reason: String| ConfigError {
        name: URL,
        value: None,
        reason,
    };
    if let Some(part) = PARTS.into_iter().find(|name| lookup(name).is_some()) {
        return Err(refuse(format!(
            "{URL} and {part} are both set; give the server either as a URL or as {}",
            PARTS.join("/")
        )));
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(refuse(
            "expected a URL starting with postgres:// or postgresql://".into(),
        ));
    }
    let mut pg = tokio_postgres::Config::from_str(url)
        // The parser's messages name the option, never its value.
        .map_err(|e| refuse(format!("not a valid Postgres URL: {e}")))?;
    if pg.get_hosts().is_empty() {
        pg.host("localhost");
    }
    if pg.get_user().is_none() {
        pg.user("postgres");
    }
    if pg.get_dbname().is_none() {
        let user = pg.get_user().unwrap_or("postgres").to_owned();
        pg.dbname(&user);
    }
    Ok(pg)
}

/// The connection settings of the separate variables.
fn from_parts<'a>(
    lookup: &impl Fn(&str) -> Option<&'a str>,
) -> Result<tokio_postgres::Config, ConfigError> {
    let mut pg = tokio_postgres::Config::new();
    let host = lookup(HOST).unwrap_or("localhost");
    if host.trim().is_empty() || host.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(invalid(HOST, host, "expected one host name or address"));
    }
    pg.host(host);
    pg.port(match lookup(PORT) {
        Some(v) => number(PORT, v, 1u16, u16::MAX)?,
        None => 5432,
    });
    pg.dbname(lookup(DATABASE).unwrap_or("postgres"));
    pg.user(lookup(USER).unwrap_or("postgres"));
    if let Some(password) = lookup(PASSWORD) {
        pg.password(password);
    }
    Ok(pg)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<PgConfig, ConfigError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PgConfig::from_lookup(|name| map.get(name).map(String::as_str))
    }

    #[test]
    fn no_variables_give_the_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.describe(), "localhost:5432/postgres as postgres");
        assert_eq!(c.tls, TlsMode::Preferred);
        assert_eq!(c.pool_size, 16);
        assert_eq!(c.statement_timeout, Duration::from_secs(5));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.purge_batch, 1000);
        assert_eq!(c.sweep_every, Some(Duration::from_secs(60)));
        assert_eq!(c.pg.get_options(), Some("-c statement_timeout=5000"));
        assert_eq!(c.pg.get_application_name(), Some(APPLICATION_NAME));
        assert!(c.pg.get_password().is_none());
    }

    #[test]
    fn every_variable_is_read() {
        let c = parse(&[
            (HOST, "db.internal"),
            (PORT, "6543"),
            (DATABASE, "agents"),
            (USER, "agent"),
            (PASSWORD, "s3cret"),
            (POOL_SIZE, "64"),
            (STATEMENT_TIMEOUT_MS, "250"),
            (CONNECT_TIMEOUT_MS, "900"),
            (TLS, "required"),
            (CA_CERT, "/etc/ca.pem"),
            (PURGE_BATCH, "50"),
            (SWEEP_SECS, "0"),
        ])
        .unwrap();
        assert_eq!(c.describe(), "db.internal:6543/agents as agent");
        assert_eq!(c.pg.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(c.pool_size, 64);
        assert_eq!(c.statement_timeout, Duration::from_millis(250));
        assert_eq!(c.pg.get_options(), Some("-c statement_timeout=250"));
        assert_eq!(c.connect_timeout, Duration::from_millis(900));
        assert_eq!(
            c.pg.get_connect_timeout(),
            Some(&Duration::from_millis(900))
        );
        assert_eq!(c.tls, TlsMode::Required);
        assert_eq!(
            c.pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(c.ca_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.purge_batch, 50);
        assert_eq!(c.sweep_every, None);
    }

    #[test]
    fn a_url_gives_the_server_and_keeps_its_options() {
        let c = parse(&[(
            URL,
            "postgres://agent:pw@db.example:5433/tasks?sslmode=disable&options=-c%20work_mem%3D8MB",
        )])
        .unwrap();
        assert_eq!(c.describe(), "db.example:5433/tasks as agent");
        assert_eq!(c.pg.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.tls, TlsMode::Off);
        assert_eq!(
            c.pg.get_options(),
            Some("-c work_mem=8MB -c statement_timeout=5000")
        );
        // The variable wins over the URL's sslmode.
        let c = parse(&[(URL, "postgresql://h/d?sslmode=disable"), (TLS, "required")]).unwrap();
        assert_eq!(c.tls, TlsMode::Required);
    }

    #[test]
    fn a_url_and_separate_parts_together_are_refused() {
        for part in PARTS {
            let err = parse(&[(URL, "postgres://a:secret@h/d"), (part, "x")]).unwrap_err();
            assert_eq!(err.name, URL);
            assert!(err.to_string().contains(part), "{err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        for url in [
            "mysql://u:hunter2@h/d",
            "postgres://u:hunter2@h:notaport/d",
            "postgres://u:hunter2@h/d?sslmode=sometimes",
        ] {
            let err = parse(&[(URL, url)]).unwrap_err();
            assert_eq!(err.name, URL, "{url}");
            assert!(err.value.is_none());
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn an_empty_value_is_an_error_naming_the_variable() {
        for name in ALL {
            let err = parse(&[(name, "")]).unwrap_err();
            assert_eq!(err.name, name);
            let text = err.to_string();
            assert!(text.contains(name) && text.contains("empty"), "{text}");
        }
    }

    #[test]
    fn malformed_values_name_the_variable_and_value() {
        for (name, value) in [
            (PORT, "abc"),
            (PORT, "0"),
            (PORT, "70000"),
            (HOST, "two words"),
            (HOST, "a,b"),
            (POOL_SIZE, "0"),
            (POOL_SIZE, "many"),
            (STATEMENT_TIMEOUT_MS, "0"),
            (STATEMENT_TIMEOUT_MS, "5s"),
            (CONNECT_TIMEOUT_MS, "-1"),
            (TLS, "maybe"),
            (PURGE_BATCH, "0"),
            (SWEEP_SECS, "1d"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name, "{name}={value}");
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(value), "{text}");
        }
    }

    #[test]
    fn a_ca_certificate_needs_tls() {
        let err = parse(&[(TLS, "off"), (CA_CERT, "/ca.pem")]).unwrap_err();
        assert_eq!(err.name, CA_CERT);
        assert!(parse(&[(TLS, "preferred"), (CA_CERT, "/ca.pem")]).is_ok());
    }

    #[test]
    fn debug_redacts_the_password_from_variables_and_urls() {
        for c in [
            parse(&[(PASSWORD, "hunter2-very-secret")]).unwrap(),
            parse(&[(URL, "postgres://u:hunter2-very-secret@h/d")]).unwrap(),
        ] {
            let shown = format!("{c:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(!c.describe().contains("hunter2"));
        }
    }
}
