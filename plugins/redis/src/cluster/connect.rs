//! Connecting in cluster mode: the seed nodes are checked to be cluster nodes, then
//! redis-rs's async cluster client (slot map, MOVED/ASK, topology refresh) is built with
//! the TLS and credentials of single-node mode.

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use ta_persistence_api::runtime::PluginRuntime;
use ta_persistence_api::BoxError;

use super::config::{ClusterConfig, CLUSTER, NODES};
use crate::config::{RedisConfig, CA_CERT};

/// Retries the client makes by itself on a redirection (MOVED, ASK), `TRYAGAIN`,
/// `CLUSTERDOWN` or a broken connection, waiting a little longer each time (from
/// [`MIN_RETRY_WAIT_MS`] to [`MAX_RETRY_WAIT_MS`]); the operation's time limit bounds the
/// whole.
const RETRIES: u32 = 8;
const MIN_RETRY_WAIT_MS: u64 = 20;
const MAX_RETRY_WAIT_MS: u64 = 500;

fn node_info(config: &RedisConfig, host: &str, port: u16) -> Result<ConnectionInfo, BoxError> {
    let mut settings = RedisConnectionInfo::default();
    if let Some(username) = &config.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password);
    }
    let addr = if config.tls {
        // rustls needs a process-wide crypto provider; one installed already is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    };
    Ok(addr.into_connection_info()?.set_redis_settings(settings))
}

/// Whether the server a seed connection reaches runs in cluster mode, from `INFO
/// cluster`; `None` when the server does not allow `INFO` (then the cluster client's own
/// start decides).
async fn cluster_enabled(
    config: &RedisConfig,
    host: &str,
    port: u16,
) -> Result<Option<bool>, redis::RedisError> {
    let single = RedisConfig {
        host: host.to_owned(),
        port,
        cluster: None,
        ..config.clone()
    };
    let client = crate::runtime::client(&single).map_err(|e| {
        redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "", e.to_string()))
    })?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.timeout))
                .set_response_timeout(Some(config.timeout)),
        )
        .await?;
    let info: redis::RedisResult<String> = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await;
    match info {
        Ok(info) => Ok(Some(info.lines().any(|l| l.trim() == "cluster_enabled:1"))),
        Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Connects to the cluster on the plugin runtime: first checks that a seed node answers
/// and is a cluster node (a single server is refused with a message saying how to use it),
/// then builds the cluster client and checks it with `PING`, all within the time limit.
pub(crate) fn connect(
    config: &RedisConfig,
    cluster: &ClusterConfig,
    runtime: &PluginRuntime,
) -> Result<ClusterConnection, BoxError> {
    let nodes = cluster
        .nodes
        .iter()
        .map(|(host, port)| node_info(config, host, *port))
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = ClusterClientBuilder::new(nodes)
        .retries(RETRIES)
        .min_retry_wait(MIN_RETRY_WAIT_MS)
        .max_retry_wait(MAX_RETRY_WAIT_MS)
        .connection_timeout(config.timeout)
        .response_timeout(config.timeout);
    if let Some(username) = &config.username {
        builder = builder.username(username);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password);
    }
    if let Some(path) = &config.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| format!("{CA_CERT}={:?}: cannot read the file: {e}", path.display()))?;
        crate::runtime::check_ca_pem(&pem)
            .map_err(|why| format!("{CA_CERT}={:?}: {why}", path.display()))?;
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
    }
    let client = builder.build()?;
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .map(|(h, p)| format!("{h}:{p}"))
        .collect();
    let where_to = format!(
        "the Redis Cluster at {} (TLS {})",
        seeds.join(","),
        if config.tls { "on" } else { "off" }
    );
    let limit = config.timeout;
    let config = config.clone();
    let seed_nodes = cluster.nodes.clone();
    let connecting = async move {
        // The first seed that answers decides: a cluster node, or a refusal.
        let mut last_error = None;
        let mut checked = false;
        for (host, port) in &seed_nodes {
            match cluster_enabled(&config, host, *port).await {
                Ok(Some(true) | None) => {
                    checked = true;
                    break;
                }
                Ok(Some(false)) => {
                    return Err(format!(
                        "{CLUSTER}=true, but {host}:{port} is a single Redis server, not a cluster node (cluster_enabled:0); unset {CLUSTER} and {NODES} and use TA_REDIS_HOST/TA_REDIS_PORT for it"
                    ));
                }
                Err(e) => last_error = Some(e),
            }
        }
        if !checked {
            return Err(match last_error {
                Some(e) => format!("no seed node answers: {e}"),
                None => "no seed node".to_owned(),
            });
        }
        let mut conn = client
            .get_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(conn)
    };
    match runtime.wait_for(connecting, limit) {
        Some(Ok(conn)) => Ok(conn),
        Some(Err(why)) => Err(format!("cannot connect to {where_to}: {why}").into()),
        None => Err(format!(
            "cannot connect to {where_to}: no answer within {} ms",
            limit.as_millis()
        )
        .into()),
    }
}
