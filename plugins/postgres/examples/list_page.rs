//! Times listing pages of the Postgres plugin at two store sizes in one sitting: starts a
//! scratch server (Debian's `postgresql` binaries, as the tests do), loads the plugin
//! library through the host's loader, fills one database per size with tasks of the
//! bench workload's size, and times the first page, a page deep in the walk, and
//! filtered pages. A page should cost about its size, whatever the number of tasks.
//!
//! `cargo run --release -p ta-plugin-postgres --example list_page [SIZES...]`
//! (default: 1000 100000).
use std::sync::Arc;
use std::time::Instant;

use ta_persistence_api::listing::{PageRequest, TaskFilter};
use ta_persistence_api::{
    AgentTask, AgentTaskItem, BoxError, MultiModalItem, Role, TaskPersistenceManager, TaskStatus,
    Timestamp,
};
use ta_persistence_tests::postgres_server::{PostgresServer, ServerOptions};

const PAGE: u32 = 100;
const RUNS: usize = 21;

/// Task `n` of `tasks`: sessions of 100 tasks, users of 1,000 (at least five users), the five statuses in turn,
/// four items of 400 characters, created one second after task `n - 1`. So every filter
/// below fills a page at any size from 1,000 tasks.
fn task(n: usize, tasks: usize) -> Result<AgentTask, BoxError> {
    let created = Timestamp::parse(&(1_700_000_000 + n).to_string())?;
    let id = format!("task-{n:06}");
    let mut task = AgentTask::new(
        id.clone(),
        format!("session-{}", n % (tasks / 100).max(1)),
        format!("user-{}", n % (tasks / 1000).max(5)),
        created,
    );
    task.status = [
        TaskStatus::Running,
        TaskStatus::Paused,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ][n % 5];
    for i in 0..4 {
        let role = [Role::User, Role::Assistant][i % 2];
        let text = MultiModalItem::text("x".repeat(400));
        let item = AgentTaskItem::new(id.clone(), format!("req-{n}-{i}"), role, text, created);
        task.items.push(item);
    }
    Ok(task)
}

/// The median time of one `list_tasks` call over [`RUNS`], in milliseconds, checking
/// that each page is full.
async fn page_ms(
    store: &dyn TaskPersistenceManager,
    filter: &TaskFilter,
    page: &PageRequest,
) -> Result<f64, BoxError> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let got = store.list_tasks(filter, page).await?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        if got.tasks.len() != PAGE as usize {
            return Err(format!("a short page ({} tasks)", got.tasks.len()).into());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[RUNS / 2])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sizes: Vec<usize> = match std::env::args().skip(1).collect::<Vec<_>>() {
        args if args.is_empty() => vec![1000, 100_000],
        args => args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?,
    };
    // Only the fill writes; listing is read-only, so commit flushes do not matter here.
    let server = PostgresServer::maybe_start_with(
        ServerOptions::default().setting("synchronous_commit", "off"),
    )
    .ok_or("no Postgres binaries")?;
    println!("page of {PAGE}, median of {RUNS} calls through the loaded plugin, in ms");
    println!("tasks\tfirst\tdeep\tsession\tuser\tstatus\tuser+status");
    for tasks in sizes {
        let db = server.database("listing");
        let store = Arc::new(server.plugin(
            &db,
            &[
                ("TA_PG_POOL_SIZE", "16"),
                ("TA_PG_CONNECT_TIMEOUT_MS", "60000"),
            ],
        ));
        let mut creates = tokio::task::JoinSet::new();
        for n in 0..tasks {
            let store = Arc::clone(&store);
            let task = task(n, tasks)?;
            creates.spawn(async move { store.create(task).await });
            if creates.len() >= 16 {
                creates.join_next().await.ok_or("no create")???;
            }
        }
        while let Some(created) = creates.join_next().await {
            created??;
        }

        let first = PageRequest::new(PAGE)?;
        let all = TaskFilter::all();
        // The page halfway through the walk.
        let mut deep = first.clone();
        for _ in 0..tasks / PAGE as usize / 2 {
            let page = store.list_tasks(&all, &deep).await?;
            deep = PageRequest::new(PAGE)?.after(page.next.ok_or("the walk ended early")?);
        }
        let mut row = vec![
            page_ms(store.as_ref(), &all, &first).await?,
            page_ms(store.as_ref(), &all, &deep).await?,
        ];
        for filter in [
            TaskFilter::all().session("session-0"),
            TaskFilter::all().user("user-0"),
            TaskFilter::all().statuses([TaskStatus::Failed]),
            // User 3's tasks are those with n = 3 mod 5 (five or a multiple of five users): failed.
            TaskFilter::all()
                .user("user-3")
                .statuses([TaskStatus::Failed]),
        ] {
            row.push(page_ms(store.as_ref(), &filter, &first).await?);
        }
        let cells: Vec<String> = row.iter().map(|ms| format!("{ms:.2}")).collect();
        println!("{tasks}\t{}", cells.join("\t"));
    }
    Ok(())
}
