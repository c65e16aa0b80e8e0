//! `ta-persist reindex`: rebuilds the Redis plugin's listing and request-id indexes.
//!
//! The plugin boundary carries the store contract only, and rebuilding indexes is
//! maintenance of one backend's layout, so this command links the Redis plugin's crate
//! directly (it is part of this workspace) and runs its `reindex` against the server the
//! `TA_REDIS_*` variables name, the same variables the loaded plugin reads.

use std::process::ExitCode;

use clap::Args;
use ta_persistence::api::ffi::{FromConfig as _, PluginConfig};
use ta_plugin_redis::RedisTaskPersistenceManager;

use crate::ops::{error_exit, EXIT_BACKEND};

#[derive(Debug, Args)]
pub(crate) struct ReindexArgs {}

/// Connects with the `TA_*` variables of the environment, reindexes, and prints the
/// report as one JSON object.
pub(crate) async fn run(_args: ReindexArgs) -> ExitCode {
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("TA_"));
    let config = PluginConfig::new(vars);
    // Connecting blocks (it has its own runtime and time limit): keep it off this one.
    let store = match tokio::task::spawn_blocking(move || {
        RedisTaskPersistenceManager::from_config(&config)
    })
    .await
    {
        Ok(Ok(store)) => store,
        Ok(Err(err)) => {
            eprintln!("error: cannot reach Redis: {err}");
            return ExitCode::from(EXIT_BACKEND);
        }
        Err(err) => {
            eprintln!("error: connecting to Redis failed: {err}");
            return ExitCode::from(EXIT_BACKEND);
        }
    };
    match store.reindex().await {
        Ok(report) => {
            let json = serde_json::json!({
                "scanned": report.scanned,
                "indexed": report.indexed,
                "changed": report.changed,
                "unreadable": report.unreadable,
                "wrong_type": report.wrong_type,
                "pruned": report.pruned,
            });
            println!("{json}");
            eprintln!(
                "indexed {} of {} tasks ({} changed meanwhile, {} unreadable, {} blocked by a key of another type); removed {} stale entries",
                report.indexed,
                report.scanned,
                report.changed,
                report.unreadable,
                report.wrong_type,
                report.pruned
            );
            ExitCode::SUCCESS
        }
        Err(err) => error_exit(&err),
    }
}
