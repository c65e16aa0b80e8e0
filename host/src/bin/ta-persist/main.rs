//! `ta-persist`: the command-line front of the ta-persistence host.
//!
//! Runs the standard benchmark, shows which backend the environment selects, checks a
//! plugin library, lists a plugin directory, runs the conformance suite against a
//! backend, reads or writes tasks, lists them, purges expired ones, and rebuilds the
//! Redis plugin's indexes.

mod bench;
mod inspect;
mod listing;
mod ops;
mod plugins;
mod reindex;
mod scratch;

use std::io::IsTerminal as _;
use std::process::ExitCode;

// The in-memory store's operations are a few allocations each, so the allocator sets
// their speed; mimalloc is markedly faster than the system allocator for this. The
// counting wrapper gives `bench` its exact heap bytes per task (off, it costs one relaxed
// load per allocation). Plugin libraries keep their own allocator: every buffer that
// crosses carries its deallocator.
#[global_allocator]
static ALLOCATOR: bench::heap::CountingAllocator<mimalloc::MiMalloc> =
    bench::heap::CountingAllocator::new(mimalloc::MiMalloc);

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The ta-persistence host's command line.
#[derive(Debug, Parser)]
#[command(name = "ta-persist", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the standard agent-turns workload against the configured backend (by default
    /// in a scratch namespace, never among its tasks: see --in-place).
    Bench(bench::BenchArgs),
    /// Show the active backend (from TA_PERSISTENCE_* variables), why, and its health.
    Info(inspect::InfoArgs),
    /// Run every load check on a plugin library, without configuring anything.
    Check(inspect::CheckArgs),
    /// List the plugin libraries in a directory (default: TA_PERSISTENCE_PLUGIN_DIR), with
    /// their names, versions, classes and whether they pass the loader's checks.
    Plugins(plugins::PluginsArgs),
    /// Open one library and answer in JSON (what `plugins` runs in a child process).
    #[command(name = "probe-library", hide = true)]
    ProbeLibrary(plugins::ProbeArgs),
    /// Run the conformance suite against a plugin library (or the built-in store); by
    /// default in a scratch namespace, never among the configured store's tasks (see
    /// --in-place).
    Conformance(inspect::ConformanceArgs),
    /// Print a task as JSON.
    Get(ops::IdArgs),
    /// Print the task that holds a request id, as JSON.
    Find(ops::IdArgs),
    /// Create a task from a JSON file (or `-` for standard input).
    Put(ops::FileArgs),
    /// Replace a task from a JSON file (or `-` for standard input).
    Update(ops::FileArgs),
    /// Delete a task.
    Delete(ops::IdArgs),
    /// Remove every task of the configured store.
    Clear(ops::ClearArgs),
    /// List tasks, newest first: one page and the cursor of the next, or every page.
    List(listing::ListArgs),
    /// Remove the tasks the retention policy (TA_PERSISTENCE_RETENTION) has expired.
    Purge(listing::PurgeArgs),
    /// Rebuild the Redis plugin's listing and request-id indexes from a scan of its task
    /// keys (the server of the TA_REDIS_* variables), for tasks that writers without
    /// those indexes stored. Safe while writers run.
    Reindex(reindex::ReindexArgs),
}

/// Whether stderr may carry ANSI colour: only on a terminal, and not when `NO_COLOR` is
/// set to anything but the empty string (<https://no-color.org>). A log file or a pipe
/// gets plain text.
fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Bench(args) => bench::run(args).await,
            Command::Info(args) => inspect::info(args).await,
            Command::Check(args) => inspect::check(args).await,
            Command::Plugins(args) => plugins::list(args).await,
            Command::ProbeLibrary(args) => plugins::probe(args).await,
            Command::Conformance(args) => inspect::conformance(args).await,
            Command::Get(args) => ops::get(args).await,
            Command::Find(args) => ops::find(args).await,
            Command::Put(args) => ops::put(args).await,
            Command::Update(args) => ops::update(args).await,
            Command::Delete(args) => ops::delete(args).await,
            Command::Clear(args) => ops::clear(args).await,
            Command::List(args) => listing::list(args).await,
            Command::Purge(args) => listing::purge(args).await,
            Command::Reindex(args) => reindex::run(args).await,
        }
    });
    // Plugin runtimes and connections are released when their managers drop, which
    // happened inside `block_on`; shut the host runtime down without waiting on
    // anything a plugin may have left behind.
    runtime.shutdown_background();
    code
}
