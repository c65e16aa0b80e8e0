//! Times listing pages at a given number of stored tasks, to show a page costs about its
//! size, not the number of tasks (`scripts/bench-redis-listing.sh` runs it at two sizes).
//!
//! `cargo run --release -p ta-plugin-redis --example listing_cost -- <tasks> [pages]`,
//! with `TA_REDIS_*` naming the server. It clears the store's prefix first (use a
//! scratch prefix or server), stores `<tasks>` tasks over 10 sessions and 1000 users,
//! then times `[pages]` (default 200) pages of 100 for: the first page of everything, a
//! page deep in the listing (from a cursor), a session's first page, and a page filtered
//! by status (a third of the tasks match). Needs at least 1000 tasks (full pages). Prints the median and 90th percentile per kind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _};
use ta_persistence_api::ffi::{FromConfig as _, PluginConfig};
use ta_persistence_api::listing::{PageRequest, TaskFilter};
use ta_persistence_api::{
    AgentTask, BoxError, DocumentStore as _, TaskPersistenceManager as _, TaskStatus, Timestamp,
};
use ta_plugin_redis::RedisTaskPersistenceManager;

fn task(n: usize) -> Result<AgentTask, BoxError> {
    let created = Timestamp::parse(&format!(
        "2025-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        1 + n % 12,
        1 + n % 28,
        n % 24,
        n % 60,
        (n / 60) % 60,
        n % 1_000_000
    ))?;
    let mut task = AgentTask::new(
        format!("task-{n:07}"),
        format!("session-{}", n % 10),
        format!("user-{}", n % 1000),
        created,
    );
    // Not n % 3: months follow n % 12, so the newest month would hold one status only.
    task.status = [
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
    ][(n / 12) % 3];
    Ok(task)
}

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    (at(50), at(90))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args
        .next()
        .ok_or("usage: listing_cost <tasks> [pages]")?
        .parse()?;
    let pages: usize = args.next().map_or(Ok(200), |p| p.parse())?;
    let vars = std::env::vars().filter(|(k, _)| k.starts_with("TA_"));
    let store = Arc::new(RedisTaskPersistenceManager::from_config(
        &PluginConfig::new(vars),
    )?);
    store.clear().await?;
    let started = Instant::now();
    let failures = stream::iter(0..tasks)
        .map(|n| {
            let store = Arc::clone(&store);
            async move { store.create(task(n)?).await.map_err(BoxError::from) }
        })
        .buffer_unordered(64)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    if failures > 0 {
        return Err(format!("{failures} creates failed").into());
    }
    eprintln!("stored {tasks} tasks in {:.1?}", started.elapsed());

    let page = PageRequest::new(100)?;
    // A cursor half-way through the listing of everything.
    let mut deep = page.clone();
    for _ in 0..(tasks / 200) {
        match store.list(&TaskFilter::all(), &deep).await?.next {
            Some(next) => deep = PageRequest::new(100)?.after(next),
            None => break,
        }
    }
    let kinds = [
        ("first page, no filter", TaskFilter::all(), page.clone()),
        ("page half-way, no filter", TaskFilter::all(), deep),
        (
            "first page of a session",
            TaskFilter::all().session("session-7"),
            page.clone(),
        ),
        (
            "first page, status completed",
            TaskFilter::all().statuses([TaskStatus::Completed]),
            page,
        ),
    ];
    println!("tasks={tasks} page=100 runs={pages}");
    for (name, filter, request) in kinds {
        let mut times = Vec::with_capacity(pages);
        for _ in 0..pages {
            let at = Instant::now();
            let listed = store.list(&filter, &request).await?;
            times.push(at.elapsed());
            if listed.tasks.len() != 100 {
                return Err(format!("{name}: {} tasks listed", listed.tasks.len()).into());
            }
        }
        let (median, p90) = percentiles(times);
        println!(
            "{name:<30} median {:>8.1} us  p90 {:>8.1} us",
            median.as_secs_f64() * 1e6,
            p90.as_secs_f64() * 1e6
        );
    }
    store.clear().await?;
    Ok(())
}
