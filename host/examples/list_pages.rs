//! Measures one page of a listing on the built-in store at 1,000 and at 100,000 stored
//! tasks: the page should cost about its size, not the number of tasks.
//!
//! ```text
//! cargo run --release -p ta-persistence --example list_pages -- [PAGE]   # 100
//! ```
//!
//! Tasks are spread over 10 sessions, 5 users and the five statuses (so that even the
//! small store fills a page of 100 under each filter). For each store
//! size it prints the median time of a page (of `PAGE` tasks) reached by walking cursors
//! from the start, for no filter, a session, a user and one status, and the ratio of the
//! large store's figure to the small one's.

use std::time::{Duration, Instant};

use ta_persistence::{
    InMemoryPersistenceManager, PageRequest, TaskFilter, TaskPersistenceManager, TaskStatus,
    Timestamp,
};
use ta_persistence_api::AgentTask;

const STATUSES: [TaskStatus; 5] = [
    TaskStatus::Running,
    TaskStatus::Paused,
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Canceled,
];

/// Pages walked per measurement (fewer if the listing ends first).
const PAGES: usize = 50;

fn filled(n: usize) -> InMemoryPersistenceManager {
    let store = InMemoryPersistenceManager::new();
    let base = Timestamp::parse("2025-01-01T00:00:00").expect("a valid time");
    futures_block_on(async {
        for i in 0..n {
            let mut task = AgentTask::new(
                format!("task-{i}"),
                format!("session-{}", i % 10),
                format!("user-{}", i % 5),
                base,
            );
            // Distinct times, so the order is by time: the most common case.
            task.created_at = Timestamp::parse(&format!(
                "2025-01-01T{:02}:{:02}:{:02}.{:06}",
                (i / 3_600_000_000) % 24,
                (i / 60_000_000) % 60,
                (i / 1_000_000) % 60,
                i % 1_000_000
            ))
            .expect("a valid time");
            task.status = STATUSES[i % STATUSES.len()];
            store.create(task).await.expect("created");
        }
    });
    store
}

/// The median time of a page over a walk of up to [`PAGES`] pages.
fn median_page(store: &InMemoryPersistenceManager, filter: &TaskFilter, size: u32) -> Duration {
    let mut times = Vec::with_capacity(PAGES);
    let mut request = PageRequest::new(size).expect("a valid size");
    futures_block_on(async {
        for _ in 0..PAGES {
            let started = Instant::now();
            let page = store.list_tasks(filter, &request).await.expect("a page");
            times.push(started.elapsed());
            std::hint::black_box(&page.tasks);
            match page.next {
                Some(next) => request = PageRequest::new(size).expect("valid").after(next),
                None => break,
            }
        }
    });
    times.sort();
    times[times.len() / 2]
}

fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn main() {
    let size: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PAGE is a number from 1 to 1000"))
        .unwrap_or(100);
    let filters = [
        ("all", TaskFilter::all()),
        ("session", TaskFilter::all().session("session-7")),
        ("user", TaskFilter::all().user("user-3")),
        ("status", TaskFilter::all().statuses([TaskStatus::Failed])),
        (
            "user+status",
            TaskFilter::all()
                .user("user-3")
                .statuses([TaskStatus::Failed, TaskStatus::Completed]),
        ),
    ];
    let small = filled(1_000);
    let large = filled(100_000);
    println!("page of {size}: median over a walk of up to {PAGES} pages");
    println!(
        "{:<12} {:>12} {:>12} {:>8}",
        "filter", "1k tasks", "100k tasks", "ratio"
    );
    for (name, filter) in &filters {
        let a = median_page(&small, filter, size);
        let b = median_page(&large, filter, size);
        println!(
            "{name:<12} {:>10.1}us {:>10.1}us {:>8.2}",
            a.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
