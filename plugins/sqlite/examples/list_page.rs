//! Times listing pages and start-up over a large store: fills a fresh database with
//! `TASKS` tasks (default 100,000) of the bench workload's size, then times the first
//! page, a page deep in the walk, filtered pages, and re-opening the file (its
//! start-up check reads every page).
//!
//! `cargo run --release -p ta-plugin-sqlite --example list_page [TASKS] [DIR]`
use std::sync::Arc;
use std::time::Instant;

use ta_persistence_api::listing::{PageRequest, TaskFilter};
use ta_persistence_api::{
    AgentTask, AgentTaskItem, BoxError, MultiModalItem, Role, TaskPersistenceManager, TaskStatus,
    Timestamp,
};
use ta_plugin_sqlite::{Settings, SqliteTaskPersistenceManager, Synchronous};

const STATUSES: [TaskStatus; 5] = [
    TaskStatus::Running,
    TaskStatus::Paused,
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Canceled,
];

fn task(n: usize) -> AgentTask {
    let created = Timestamp::parse(&format!("{}", 1_700_000_000 + n))
        .unwrap_or_else(|_| Timestamp::now_utc());
    let id = format!("task-{n:06}");
    let mut task = AgentTask::new(
        id.clone(),
        format!("session-{}", n % 1000),
        format!("user-{}", n % 97),
        created,
    );
    task.status = STATUSES[n % STATUSES.len()];
    for i in 0..4 {
        task.items.push(AgentTaskItem::new(
            id.clone(),
            format!("req-{n}-{i}"),
            if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            },
            MultiModalItem::text("x".repeat(400)),
            created,
        ));
    }
    task
}

/// The median of `runs` timings of `f`, in milliseconds.
async fn median_ms<F, Fut>(runs: usize, mut f: F) -> Result<f64, BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        f().await?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let dir = args.next().map_or_else(std::env::temp_dir, Into::into);
    let path = dir.join(format!("ta-sqlite-list-{}.db", std::process::id()));
    let settings = Settings::new(&path).synchronous(Synchronous::Normal);
    let store = Arc::new(SqliteTaskPersistenceManager::open(settings.clone())?);

    let start = Instant::now();
    let mut creates = tokio::task::JoinSet::new();
    for n in 0..tasks {
        let store = Arc::clone(&store);
        creates.spawn(async move { store.create(task(n)).await });
        if creates.len() >= 256 {
            creates.join_next().await.ok_or("no create")???;
        }
    }
    while let Some(created) = creates.join_next().await {
        created??;
    }
    println!(
        "filled {tasks} tasks in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let size = 100;
    let first = PageRequest::new(size)?;
    let all = TaskFilter::all();
    let ms = median_ms(21, || async {
        let page = store.list_tasks(&all, &first).await?;
        if page.tasks.len() != size as usize {
            return Err("a short first page".into());
        }
        Ok(())
    })
    .await?;
    println!("first page of {size}, no filter: {ms:.2} ms");

    // The page after 500 others: a cursor deep in the walk.
    let mut request = first.clone();
    for _ in 0..500 {
        let page = store.list_tasks(&all, &request).await?;
        request = PageRequest::new(size)?.after(page.next.ok_or("the walk ended early")?);
    }
    let ms = median_ms(21, || async {
        store.list_tasks(&all, &request).await?;
        Ok(())
    })
    .await?;
    println!("page 501 of {size} (50,000 tasks in), no filter: {ms:.2} ms");

    for (name, filter) in [
        ("session", TaskFilter::all().session("session-7")),
        ("user", TaskFilter::all().user("user-7")),
        ("status", TaskFilter::all().statuses([TaskStatus::Failed])),
        (
            "user+status",
            TaskFilter::all()
                .user("user-7")
                .statuses([TaskStatus::Failed]),
        ),
    ] {
        let ms = median_ms(21, || async {
            let page = store.list_tasks(&filter, &first).await?;
            if page.tasks.len() != size as usize {
                return Err(format!("a short page for the {name} filter").into());
            }
            Ok(())
        })
        .await?;
        println!("first page of {size}, {name} filter: {ms:.2} ms");
    }

    drop(store);
    let start = Instant::now();
    let reopened = SqliteTaskPersistenceManager::open(settings)?;
    let size_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
    println!(
        "re-open ({size_mb:.0} MB file, quick_check included): {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    drop(reopened);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
