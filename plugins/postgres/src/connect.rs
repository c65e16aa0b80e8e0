//! The plugin's runtime, TLS, the connection pool, and bringing the schema up to date
//! at start-up.
//!
//! Construction is synchronous and may run inside an async runtime, so it never calls
//! `block_on`: the first connection and the migrations run as a task on the plugin
//! runtime's workers, and the constructor waits for them with
//! [`PluginRuntime::wait_for`].

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use ta_persistence_api::runtime::PluginRuntime;
use ta_persistence_api::BoxError;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{PgConfig, TlsMode, CA_CERT};
use crate::error::describe_pool;
use crate::schema::{self, MigrateError};

/// Worker threads of the plugin runtime: the connections' driver tasks and the
/// operations share them; more would only compete with the host for the cores.
const WORKERS: usize = 2;

/// How long start-up may wait for another host that holds the migration lock, beyond
/// the connect timeout.
const MIGRATION_WAIT: Duration = Duration::from_secs(20);

/// Starts the plugin's runtime (threads named `ta-postgres`).
pub(crate) fn start() -> std::io::Result<PluginRuntime> {
    PluginRuntime::builder("ta-postgres")
        .workers(WORKERS)
        .build()
}

/// The TLS connector: the CA file's certificates, or the system's roots. Built even
/// with TLS off (the pool then never uses it), so the pool has one type.
fn tls(config: &PgConfig) -> Result<MakeRustlsConnect, BoxError> {
    // rustls needs a process-wide crypto provider; one installed elsewhere is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_cert {
        Some(path) => {
            let shown = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| format!("{CA_CERT}={shown:?}: cannot read the file: {e}"))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{CA_CERT}={shown:?}: not a PEM file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{CA_CERT}={shown:?}: a certificate is not valid: {e}"))?;
            }
            if roots.is_empty() {
                return Err(
                    format!("{CA_CERT}={shown:?}: the file holds no PEM certificate").into(),
                );
            }
        }
        None if config.tls != TlsMode::Off => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 && config.tls == TlsMode::Required {
                return Err(format!(
                    "TLS is required but the system has no CA certificates; set {CA_CERT}"
                )
                .into());
            }
        }
        None => {}
    }
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(client))
}

/// The pool. It opens connections lazily; a broken one is noticed when it is next taken
/// (`is_closed`) and replaced, so the pool recovers from a restarted server by itself.
pub(crate) fn pool(config: &PgConfig) -> Result<Pool, BoxError> {
    let manager = Manager::from_config(
        config.pg.clone(),
        tls(config)?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let limit = Some(config.connect_timeout);
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: limit,
            create: limit,
            recycle: limit,
        })
        .build()
        .map_err(|e| format!("cannot build the connection pool: {e}").into())
}

/// Opens a first connection and brings the schema up to date; returns the migrations
/// applied.
pub(crate) fn prepare(
    config: &PgConfig,
    pool: &Pool,
    runtime: &PluginRuntime,
) -> Result<Vec<i64>, BoxError> {
    let server = config.describe();
    let pool = pool.clone();
    let connecting = async move {
        let mut client = pool
            .get()
            .await
            .map_err(|e| Failure::Connect(describe_pool(&e)))?;
        schema::migrate(&mut client).await.map_err(Failure::Migrate)
    };
    let limit = config.connect_timeout + MIGRATION_WAIT;
    match runtime.wait_for(connecting, limit) {
        Some(Ok(applied)) => Ok(applied),
        Some(Err(Failure::Connect(why))) => {
            Err(format!("cannot connect to Postgres at {server}: {why}").into())
        }
        Some(Err(Failure::Migrate(e))) => {
            Err(format!("Postgres at {server}: cannot use the schema: {e}").into())
        }
        None => Err(format!(
            "Postgres at {server}: no connection and schema within {} ms (another host may \
             hold the migration lock)",
            limit.as_millis()
        )
        .into()),
    }
}

/// Why start-up failed.
enum Failure {
    Connect(String),
    Migrate(MigrateError),
}
