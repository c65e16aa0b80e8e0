//! The plugin's tokio runtime, and connecting to Redis on it.
//!
//! A plugin library has its own copy of tokio, which cannot see the host's runtime, so
//! the plugin owns a small multi-threaded runtime: the SDK's [`PluginRuntime`]. The
//! connection (its driver task, its reconnections and its timers) lives there, every
//! operation is spawned there, and the future the host awaits only waits for the spawned
//! task: the host's executor never matters.
//!
//! Construction is synchronous and may run on a host's async worker (or, with the crate
//! linked in a test, inside a tokio runtime, where `block_on` is forbidden). So it never
//! calls `block_on`: the connect runs as a task on the plugin runtime's own workers and
//! the constructor waits for its result with [`PluginRuntime::wait_for`], within the
//! configured limit.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, TlsCertificates};
use ta_persistence_api::runtime::PluginRuntime;
use ta_persistence_api::BoxError;

use crate::config::{RedisConfig, CA_CERT};

/// Worker threads of the plugin runtime. Two measured slightly faster than one on the
/// standard workload (a reply can be decoded while the connection is driven); more would
/// only compete with the host and the server for the cores.
const WORKERS: usize = 2;

/// Starts the plugin's runtime (threads named `ta-redis`).
pub(crate) fn start() -> std::io::Result<PluginRuntime> {
    PluginRuntime::builder("ta-redis").workers(WORKERS).build()
}

/// How the connection reconnects: a few quick attempts, then the pending commands fail
/// (as `Unavailable`) and the next command starts over, so a restarted server is used
/// again within a second of coming back.
///
/// The connection has no response timeout of its own: every operation, and each round
/// trip of the long ones, already has the configured limit (`run_within`, `limited`),
/// kept by the SDK's deadline thread. A second limit per request would be a tokio timer
/// per command, and registering one wakes an idle worker of the plugin runtime: a
/// thread wake-up per operation for nothing.
fn manager_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(None)
}

/// The client for the configured server; reads the CA file for TLS.
pub(crate) fn client(config: &RedisConfig) -> Result<Client, BoxError> {
    let mut settings = RedisConnectionInfo::default().set_db(i64::from(config.db));
    if let Some(username) = &config.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password);
    }
    let addr = if config.tls {
        // rustls needs a process-wide crypto provider; another part of the process may
        // have installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ConnectionAddr::TcpTls {
            host: config.host.clone(),
            port: config.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(config.host.clone(), config.port)
    };
    let info = addr.into_connection_info()?.set_redis_settings(settings);
    match &config.ca_cert {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                format!("{CA_CERT}={:?}: cannot read the file: {e}", path.display())
            })?;
            // The client takes a file without any certificate as an empty trust store,
            // and the mistake shows only later, as an unknown issuer at every connection.
            check_ca_pem(&pem).map_err(|why| format!("{CA_CERT}={:?}: {why}", path.display()))?;
            let certificates = TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            Client::build_with_tls(info, certificates)
                .map_err(|e| format!("{CA_CERT}={:?}: {e}", path.display()).into())
        }
        None => Ok(Client::open(info)?),
    }
}

/// Checks that a CA file holds at least one PEM certificate and that each one parses as
/// a trust anchor.
pub(crate) fn check_ca_pem(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate file: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in the file is not valid: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the file holds no PEM certificate".to_owned());
    }
    Ok(())
}

/// Connects to the configured server on the plugin runtime and checks it with `PING`,
/// within the configured time limit.
pub(crate) fn connect(
    config: &RedisConfig,
    runtime: &PluginRuntime,
) -> Result<ConnectionManager, BoxError> {
    let client = client(config)?;
    let manager_config = manager_config(config);
    let connecting = async move {
        let mut conn = client
            .get_connection_manager_with_config(manager_config)
            .await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        // A cluster node would answer MOVED for most keys: refuse it plainly. (A server
        // that does not allow INFO is taken as it is.)
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut conn)
            .await;
        if info.is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_enabled:1")) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "it is a Redis Cluster node",
                "set TA_REDIS_CLUSTER=true and TA_REDIS_NODES (instead of TA_REDIS_HOST/TA_REDIS_PORT) to use a cluster".to_owned(),
            )));
        }
        Ok::<_, redis::RedisError>(conn)
    };
    let where_to = format!(
        "Redis at {}:{} (db {}, TLS {})",
        config.host,
        config.port,
        config.db,
        if config.tls { "on" } else { "off" }
    );
    match runtime.wait_for(connecting, config.timeout) {
        Some(Ok(conn)) => Ok(conn),
        Some(Err(e)) => Err(format!("cannot connect to {where_to}: {e}").into()),
        None => Err(format!(
            "cannot connect to {where_to}: no answer within {} ms",
            config.timeout.as_millis()
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_runtime_has_named_threads_and_can_be_dropped_inside_async_code() {
        let rt = start().unwrap();
        let name = rt
            .run(ta_persistence_api::Operation::Health, "", async {
                Ok(std::thread::current().name().map(str::to_owned))
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("ta-redis"));
        drop(rt);
    }

    #[test]
    fn a_missing_ca_file_is_an_error_naming_the_variable() {
        let config = RedisConfig {
            tls: true,
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..RedisConfig::default()
        };
        let err = client(&config).unwrap_err().to_string();
        assert!(
            err.contains(CA_CERT) && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn a_ca_file_without_a_valid_certificate_is_refused() {
        assert!(check_ca_pem(b"")
            .unwrap_err()
            .contains("no PEM certificate"));
        assert!(check_ca_pem(b"just some text\n")
            .unwrap_err()
            .contains("no PEM certificate"));
        // A key is PEM, but not a certificate.
        let key =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert!(check_ca_pem(key)
            .unwrap_err()
            .contains("no PEM certificate"));
        // A certificate section whose content is not a certificate.
        let fake = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(check_ca_pem(fake).unwrap_err().contains("not valid"));

        let dir = std::env::temp_dir().join(format!("ta-redis-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "this is not a certificate").unwrap();
        let config = RedisConfig {
            tls: true,
            ca_cert: Some(garbage.clone()),
            ..RedisConfig::default()
        };
        let err = client(&config).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains(CA_CERT) && err.contains("no PEM certificate"),
            "{err}"
        );
    }

    #[test]
    fn a_closed_port_is_a_constructor_error_naming_the_server() {
        // Bind and drop a listener to find a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = RedisConfig {
            host: "127.0.0.1".into(),
            port,
            password: Some("pw-never-shown".into()),
            timeout: Duration::from_secs(3),
            ..RedisConfig::default()
        };
        let rt = start().unwrap();
        let err = connect(&config, &rt).unwrap_err().to_string();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.contains("pw-never-shown"), "{err}");
    }
}
