//! Measures the built-in store with one task holding many distinct request ids: how long
//! create, find (by request id), load, update and delete take, and how long a concurrent
//! `load` of an unrelated task waits meanwhile (it shares the store's lock).
//!
//! ```text
//! cargo run --release -p ta-persistence --example many_request_ids -- [ITEMS]   # 100000
//! ```
//!
//! Any writer can store such a task (each item of a task may carry its own request id), so
//! the work per operation must stay linear in the number of items.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ta_persistence::{
    AgentTask, AgentTaskItem, InMemoryPersistenceManager, MultiModalItem, Role, Timestamp,
};
use ta_persistence_api::TaskPersistenceManager;

/// Latency of the concurrent `load`s during one phase.
#[derive(Default)]
struct Probe {
    max_ns: AtomicU64,
    count: AtomicU64,
}

impl Probe {
    fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (max latency, loads completed) since the last call.
    fn take(&self) -> (Duration, u64) {
        (
            Duration::from_nanos(self.max_ns.swap(0, Ordering::Relaxed)),
            self.count.swap(0, Ordering::Relaxed),
        )
    }
}

fn big_task(items: usize, now: Timestamp) -> AgentTask {
    let mut task = AgentTask::new("big", "session", "user", now);
    task.items.reserve(items);
    for n in 0..items {
        task.items.push(AgentTaskItem::new(
            "big",
            format!("request-{n:08}"),
            if n % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            },
            MultiModalItem::text("a short message"),
            now,
        ));
    }
    task
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let items: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 100_000,
    };
    let store = InMemoryPersistenceManager::new();
    let now = Timestamp::now_utc();
    store
        .create(AgentTask::new("small", "session", "user", now))
        .await?;

    // The unrelated reader: its own thread and runtime, loading in a loop.
    let probe = Arc::new(Probe::default());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, probe, stop) = (store.clone(), Arc::clone(&probe), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| e.to_string())?;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let task = runtime
                    .block_on(store.load("small"))
                    .map_err(|e| e.to_string())?;
                probe.record(start.elapsed());
                if task.is_none() {
                    return Err("the small task is gone".to_owned());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(())
        })
    };

    let task = big_task(items, now);
    let middle = format!("request-{:08}", items / 2);
    let mut updated = task.clone();
    updated.items.push(AgentTaskItem::new(
        "big",
        "request-new",
        Role::User,
        MultiModalItem::text("one more"),
        now,
    ));
    println!("one task, {items} items, each with its own request id");
    println!(
        "{:<8} {:>12} {:>22} {:>16}",
        "op", "time", "concurrent load: max", "loads meanwhile"
    );
    probe.take();

    let report = |op: &str, took: Duration| {
        // Let a load that waited through the whole operation finish and be counted.
        std::thread::sleep(Duration::from_millis(20));
        let (max, count) = probe.take();
        println!("{op:<8} {took:>12.3?} {max:>22.3?} {count:>16}");
    };

    let start = Instant::now();
    store.create(task).await?;
    report("create", start.elapsed());

    let start = Instant::now();
    let found = store.load_by_request_id(&middle).await?;
    report("find", start.elapsed());
    if found.map(|t| t.items.len()) != Some(items) {
        return Err("find did not return the big task".into());
    }

    let start = Instant::now();
    let loaded = store.load("big").await?;
    report("load", start.elapsed());
    if loaded.map(|t| t.items.len()) != Some(items) {
        return Err("load did not return the big task".into());
    }

    let start = Instant::now();
    store.update(updated).await?;
    report("update", start.elapsed());

    let start = Instant::now();
    store.delete("big").await?;
    report("delete", start.elapsed());

    stop.store(true, Ordering::Relaxed);
    reader.join().map_err(|_| "the reader panicked")??;
    let stats = store.stats();
    if stats.index_entries != 0 || stats.tasks != 1 {
        return Err(format!("index left behind: {stats:?}").into());
    }
    Ok(())
}
