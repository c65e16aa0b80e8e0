//! Operation metrics for Prometheus: works a store at a modest rate and serves the
//! Prometheus text format at `http://$TA_METRICS_ADDR/metrics` (default
//! `127.0.0.1:9464`) until Ctrl-C.
//!
//! ```text
//! cargo run --example metrics                     # the built-in in-memory store
//! TA_PERSISTENCE_MODULE=target/debug/libta_plugin_memory.so \
//! TA_PERSISTENCE_CLASS=MemoryTaskPersistenceManager cargo run --example metrics
//! curl -s http://127.0.0.1:9464/metrics | grep ta_persistence
//! ```
//!
//! The host records through the `metrics` facade; this application picks the exporter
//! and installs it before it builds the factory, so the load's own metrics are kept.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use ta_persistence::instrument::{DURATION_BUCKETS, OPERATION_DURATION};
use ta_persistence::{
    AgentTask, AgentTaskItem, MultiModalItem, PersistenceFactory, Role, TaskPersistenceManager,
    Timestamp,
};

/// The variable naming the address to serve on.
const ADDR_VAR: &str = "TA_METRICS_ADDR";
/// Pause between rounds: a round is five calls, so about a hundred calls a second.
const ROUND: Duration = Duration::from_millis(50);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let raw = std::env::var(ADDR_VAR).unwrap_or_else(|_| "127.0.0.1:9464".to_owned());
    let addr: SocketAddr = match raw.parse() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("error: {ADDR_VAR}={raw:?} is not an address such as 127.0.0.1:9464: {err}");
            return ExitCode::from(2);
        }
    };
    // Buckets make the duration a Prometheus histogram; without them this exporter
    // renders a summary.
    let installed = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full(OPERATION_DURATION.to_owned()),
            DURATION_BUCKETS,
        )
        .and_then(PrometheusBuilder::install);
    if let Err(err) = installed {
        eprintln!("error: cannot serve metrics on {addr}: {err}");
        return ExitCode::from(1);
    }
    let factory = match PersistenceFactory::from_env_async().await {
        Ok(factory) => factory,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    println!("persistence: {}", factory.active_backend());
    println!("serving http://{addr}/metrics; Ctrl-C to stop");
    let store = factory.get_persistence_manager();

    let mut tick = tokio::time::interval(ROUND);
    // A slow scrape or a paused process must not be followed by a burst of rounds.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        // Each round deletes the task it created, so the store stays small however
        // long this runs.
        if let Err(err) = work(store.as_ref(), round).await {
            eprintln!("round {round}: {err}");
        }
        round += 1;
    }
    println!("stopped after {round} rounds");
    ExitCode::SUCCESS
}

/// One round: create, load, update and delete a task, and one delete of a task that is
/// not there (so that an error outcome shows up beside the successes).
async fn work(
    store: &dyn TaskPersistenceManager,
    round: u64,
) -> Result<(), ta_persistence::PersistenceError> {
    let id = format!("metrics-example-{round}");
    let now = Timestamp::now_utc();
    let mut task = AgentTask::new(id.as_str(), "session", "user", now);
    task.items.push(AgentTaskItem::new(
        id.as_str(),
        format!("request-{round}"),
        Role::User,
        MultiModalItem::text("hello"),
        now,
    ));
    store.create(task).await?;
    if let Some(mut task) = store.load(&id).await? {
        task.items.push(AgentTaskItem::new(
            id.as_str(),
            format!("request-{round}"),
            Role::Assistant,
            MultiModalItem::text("hi"),
            Timestamp::now_utc(),
        ));
        store.update(task).await?;
    }
    store.delete(&id).await?;
    match store.delete(&id).await {
        Err(err) if err.is_not_found() => Ok(()),
        other => other,
    }
}
