//! `ta-persist bench`: the standard workload, with a table or JSON out.

mod compare;
pub(crate) mod heap;
mod workload;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use ta_persistence::config::Config;
use ta_persistence::instrument::{BUILT_IN_BACKEND, DURATION_BUCKETS, OPERATION_DURATION};
use ta_persistence::{
    ActiveBackend, DocumentManager, InMemoryPersistenceManager, InstrumentedManager,
    PersistenceFactory,
};

use crate::ops;
use crate::scratch;
use workload::{Floors, MemoryFigures, Phase, RunResult, Workload, PHASES};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Number of tasks (T).
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Operations in flight (C): one value or several, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also run the built-in store in the same process, after each run of the configured
    /// backend, and print the ratios.
    #[arg(long)]
    with_builtin: bool,
    /// Skip the untimed warm-up run. Without it, the first run also pays for the
    /// process's first touches of fresh memory, which on a VM can dominate a fast phase.
    #[arg(long)]
    no_warmup: bool,
    /// Skip the memory run (an untimed run of the built-in store at C=1, after the timed
    /// ones, that measures heap and resident bytes per stored task).
    #[arg(long)]
    no_memory: bool,
    /// Run against the configured store as it is. Without it, a plugin's store is never
    /// touched: the Redis plugin runs in a scratch prefix under TA_REDIS_PREFIX (removed
    /// at the end, also after a failure or Ctrl-C), a plugin without such a namespace is
    /// refused. With it, the run writes tasks task-0 .. task-{T-1} into the store and
    /// deletes the ones it created, also when it fails; an existing task of such an id
    /// makes it fail, and is kept.
    #[arg(long)]
    in_place: bool,
    /// Install a Prometheus metrics recorder (without an HTTP listener) before the store
    /// is built, so the runs pay for recording every operation: run with and without it
    /// to measure what metrics cost.
    #[arg(long)]
    metrics: bool,
    /// Compare with an earlier `bench --json` result: print each phase's ops/s beside the
    /// saved figure and their ratio (in the JSON, a `compare` field).
    #[arg(long, value_name = "FILE")]
    compare: Option<std::path::PathBuf>,
}

/// A Prometheus recorder installed for the process, kept as the exporter's HTTP listener
/// would keep it: its histograms drained every few seconds.
struct Recording {
    handle: PrometheusHandle,
    upkeep: tokio::task::JoinHandle<()>,
}

impl Recording {
    fn install() -> Result<Self, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(OPERATION_DURATION.to_owned()),
                DURATION_BUCKETS,
            )
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(|err| format!("cannot install the metrics recorder: {err}"))?;
        let kept = handle.clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                kept.run_upkeep();
            }
        });
        Ok(Recording { handle, upkeep })
    }

    /// How many operations the recorder counted: proof that the runs paid for it.
    fn operations(&self) -> u64 {
        let count = format!("{OPERATION_DURATION}_count");
        self.handle
            .render()
            .lines()
            .filter(|line| line.starts_with(&count))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.upkeep.abort();
    }
}

fn progress_bar(multi: &MultiProgress, tasks: usize, label: String) -> ProgressBar {
    let bar = multi.add(ProgressBar::new((tasks * PHASES.len()) as u64));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label);
    bar
}

async fn run_one(
    store: Arc<dyn DocumentManager>,
    backend: &str,
    workload: &Workload,
    multi: &MultiProgress,
) -> Result<RunResult, workload::BenchError> {
    let bar = progress_bar(
        multi,
        workload.tasks,
        format!("{backend} C={}", workload.concurrency),
    );
    let progress_bar = bar.clone();
    let progress: workload::Progress = Arc::new(move |phase: Phase, n| {
        progress_bar.set_message(phase.as_str());
        progress_bar.inc(n as u64);
    });
    let result = workload::run(store, backend, workload, Some(progress)).await;
    bar.finish_and_clear();
    result
}

/// Time per `health()` call: for a plugin whose health check does no I/O (the memory
/// plugin), the cost of the boundary itself. At most `calls` calls or about a second.
async fn boundary_ns(store: &dyn DocumentManager, calls: u32) -> Option<f64> {
    let started = Instant::now();
    let mut made = 0u32;
    while made < calls {
        store.health().await.ok()?;
        made += 1;
        if made.is_multiple_of(1024) && started.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    Some(started.elapsed().as_nanos() as f64 / f64::from(made.max(1)))
}

pub(crate) async fn run(args: BenchArgs) -> ExitCode {
    // Read first: a wrong file is reported before any work.
    let baseline = match args
        .compare
        .as_deref()
        .map(compare::Baseline::read)
        .transpose()
    {
        Ok(b) => b,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(ops::EXIT_INVALID);
        }
    };
    // Before the factory: the load's own metrics are recorded too.
    let recording = if args.metrics {
        match Recording::install() {
            Ok(r) => Some(r),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    let (placement, vars) = match scratch::place(
        config.module.as_deref(),
        &config.vars,
        args.in_place,
        "bench writes and deletes tasks task-0, task-1, ...",
    ) {
        Ok(placed) => placed,
        Err(refused) => {
            eprintln!("error: {refused}");
            return ExitCode::from(ops::EXIT_INVALID);
        }
    };
    config.vars = vars;
    let factory = match PersistenceFactory::from_config(&config) {
        Ok(f) => f,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    let raw = factory.document_manager();
    let store = scratch::guard(&placement, &raw, "tasks task-N of this run");
    let code = run_with(
        &args,
        &factory,
        store,
        raw.as_ref(),
        recording.as_ref(),
        baseline.as_ref(),
    )
    .await;
    let cleaned = scratch::clean_up(&placement, raw.as_ref(), false).await;
    if scratch::interrupted() {
        ExitCode::from(scratch::EXIT_INTERRUPTED)
    } else if !cleaned && code == ExitCode::SUCCESS {
        ExitCode::from(ops::EXIT_BACKEND)
    } else {
        code
    }
}

/// The runs and the report, against `store` (`raw`: the same store, unguarded, for the
/// boundary's timing).
async fn run_with(
    args: &BenchArgs,
    factory: &PersistenceFactory,
    store: Arc<dyn DocumentManager>,
    raw: &dyn DocumentManager,
    recording: Option<&Recording>,
    baseline: Option<&compare::Baseline>,
) -> ExitCode {
    let active = factory.active_backend().clone();
    let backend = match &active {
        ActiveBackend::Plugin { plugin, class, .. } => format!("{plugin}/{class}"),
        other => other.kind().to_owned(),
    };
    let is_plugin = matches!(active, ActiveBackend::Plugin { .. });
    if active.is_fallback() {
        eprintln!("warning: the configured plugin failed; benchmarking the built-in fallback (see `ta-persist info`)");
    }
    let multi = MultiProgress::with_draw_target(if args.json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    if !args.no_warmup {
        let first = args.concurrency.first().copied().unwrap_or(1);
        let warmup = Workload::new(args.tasks, first);
        let mut stores = vec![Arc::clone(&store)];
        if args.with_builtin {
            stores.push(Arc::new(InMemoryPersistenceManager::new()));
        }
        for s in stores {
            if let Err(err) = workload::run(s, "warm-up", &warmup, None).await {
                eprintln!("error: warm-up run: {}", chain(&err));
                return ExitCode::from(1);
            }
        }
    }
    let mut runs: Vec<(RunResult, Option<RunResult>)> = Vec::new();
    for &c in &args.concurrency {
        let workload = Workload::new(args.tasks, c);
        let main = match run_one(Arc::clone(&store), &backend, &workload, &multi).await {
            Ok(r) => r,
            Err(err) => {
                eprintln!("error: {backend} C={c}: {}", chain(&err));
                return ExitCode::from(1);
            }
        };
        let builtin = if args.with_builtin {
            let mem: Arc<dyn DocumentManager> = Arc::new(InMemoryPersistenceManager::new());
            match run_one(mem, "built-in", &workload, &multi).await {
                Ok(r) => Some(r),
                Err(err) => {
                    eprintln!("error: built-in C={c}: {}", chain(&err));
                    return ExitCode::from(1);
                }
            }
        } else {
            None
        };
        runs.push((main, builtin));
    }
    // Memory is measured in a run of its own, after the timed ones: counting the heap and
    // returning freed pages to the system (so the RSS counts live memory) both cost time.
    // Only the built-in store's memory is this process's to measure: a plugin allocates
    // through its own allocator (and Redis keeps its data in the server).
    let memory = if args.no_memory || is_plugin {
        None
    } else {
        let workload = Workload::new(args.tasks, 1).counting_heap();
        // Measured on a fresh store, so its tables' growth is counted too (the shared one
        // kept its capacity from the timed runs).
        let fresh: Arc<dyn DocumentManager> = Arc::new(InMemoryPersistenceManager::new());
        match workload::run(fresh, &backend, &workload, None).await {
            Ok(result) => result.memory,
            Err(err) => {
                eprintln!("error: memory run: {}", chain(&err));
                return ExitCode::from(1);
            }
        }
    };
    let boundary = if matches!(active, ActiveBackend::Plugin { .. }) {
        // Instrumented as the factory's manager is, so that the difference is only the
        // boundary's.
        let builtin = InstrumentedManager::new(
            Arc::new(InMemoryPersistenceManager::new()),
            BUILT_IN_BACKEND,
        );
        let calls = 200_000;
        match (
            boundary_ns(raw, calls).await,
            boundary_ns(&builtin, calls).await,
        ) {
            (Some(p), Some(b)) => Some((p, b)),
            _ => None,
        }
    } else {
        None
    };

    let floors = Floors::measure(args.tasks);

    if args.json {
        let out = json!({
            "backend": backend,
            "tasks": args.tasks,
            "warmup": !args.no_warmup,
            "memory": memory,
            "runs": runs.iter().map(|(main, builtin)| json!({
                "concurrency": main.concurrency,
                "result": main,
                "builtin": builtin,
            })).collect::<Vec<_>>(),
            "boundary_ns_per_call": boundary.map(|(p, b)| json!({"plugin": p, "builtin": b})),
            "floors_ns_per_task": floors,
            "metrics": recording.map(|r| json!({"operations_recorded": r.operations()})),
            "compare": baseline.map(|b| b.to_json(&b.compare(runs.iter().map(|(main, _)| main)))),
        });
        println!("{out:#}");
    } else {
        print_tables(
            &backend,
            args.tasks,
            !args.no_warmup,
            memory,
            &runs,
            boundary,
            floors,
        );
        if let Some(b) = baseline {
            b.print(&backend, &b.compare(runs.iter().map(|(main, _)| main)));
        }
        if let Some(r) = recording {
            println!();
            println!(
                "metrics: a Prometheus recorder was installed; it recorded {} operations",
                r.operations()
            );
        }
    }
    ExitCode::SUCCESS
}

/// An error with its causes, `: `-separated (a cause that repeats the text before it,
/// as wrapped I/O errors often do, is shown once).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

fn print_tables(
    backend: &str,
    tasks: usize,
    warmup: bool,
    memory: Option<MemoryFigures>,
    runs: &[(RunResult, Option<RunResult>)],
    boundary: Option<(f64, f64)>,
    floors: Floors,
) {
    println!(
        "agent-turns workload: {tasks} tasks, backend {backend}{}",
        if warmup {
            " (after an untimed warm-up run)"
        } else {
            ""
        }
    );
    println!("phases: create each task, load it by id, find it by request id, one agent turn (load, add two items, update), delete it");
    for (main, builtin) in runs {
        println!();
        println!("C={} (operations in flight)", main.concurrency);
        match builtin {
            None => {
                println!(
                    "{:<8} {:>12} {:>10} {:>10}",
                    "phase", "ops/s", "p50 us", "p99 us"
                );
                for p in &main.phases {
                    println!(
                        "{:<8} {:>12.0} {:>10.1} {:>10.1}",
                        p.phase.as_str(),
                        p.ops_per_sec,
                        p.p50_us,
                        p.p99_us
                    );
                }
            }
            Some(b) => {
                println!(
                    "{:<8} {:>12} {:>10} {:>10} {:>12} {:>10} {:>9}",
                    "phase", "ops/s", "p50 us", "p99 us", "built-in", "p50 us", "ratio"
                );
                for (p, q) in main.phases.iter().zip(&b.phases) {
                    println!(
                        "{:<8} {:>12.0} {:>10.1} {:>10.1} {:>12.0} {:>10.1} {:>9.3}",
                        p.phase.as_str(),
                        p.ops_per_sec,
                        p.p50_us,
                        p.p99_us,
                        q.ops_per_sec,
                        q.p50_us,
                        p.ops_per_sec / q.ops_per_sec.max(f64::EPSILON)
                    );
                }
                println!("(ratio = {backend} ops/s / built-in ops/s, same process, same workload)");
            }
        }
    }
    if let Some(m) = memory {
        println!();
        let heap = m
            .heap_bytes_per_task
            .map_or_else(String::new, |h| format!("heap {h} B/task, "));
        println!(
            "memory per stored task (create phase of a C=1 run): {heap}RSS +{} B/task ({:.1} -> {:.1} MiB), peak RSS {:.1} MiB",
            m.bytes_per_task,
            m.rss_before_kib as f64 / 1024.0,
            m.rss_after_create_kib as f64 / 1024.0,
            m.peak_rss_kib as f64 / 1024.0
        );
    }
    if let Some((plugin, builtin)) = boundary {
        println!();
        println!(
            "health(): {plugin:.0} ns/call through the plugin, {builtin:.0} ns/call built-in; \
             for a plugin whose health() does no I/O, the {:.0} ns difference is the boundary's cost",
            plugin - builtin
        );
    }
    println!();
    println!(
        "one workload task, no store: copy {:.0} ns, encode to JSON {:.0} ns, decode from JSON {:.0} ns \
         (a built-in load costs at least the copy; a plugin's load the decode, its create or update the encode)",
        floors.copy_ns, floors.encode_ns, floors.decode_ns
    );
}
