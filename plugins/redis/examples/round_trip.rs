//! Times one Redis round trip at concurrency 1 in the ways a caller can reach the
//! connection, next to `redis-benchmark -c 1` on the same server, to show where a
//! plugin's time per operation goes beyond the wire.
//!
//! `cargo run --release -p ta-plugin-redis --example round_trip -- <port> [gets] [rounds]
//! [variant]` against a scratch `redis-server` on `127.0.0.1:<port>` (it writes keys
//! starting `ta-round-trip`); with `variant`, only that one runs (for `perf` or `strace`). Each round runs every variant (and `redis-benchmark`) once, in a
//! rotating order; the medians over the rounds are printed as ratios to `redis-benchmark`.
//!
//! Variants, each `gets` GETs of a 1,600-byte value, one at a time:
//! - `ct`: a current-thread runtime awaits a multiplexed connection directly;
//! - `mt`: the same in a task of a two-worker multi-thread runtime;
//! - `mt>mt`: a task of a two-worker runtime (the host's) awaits, per GET, a task spawned
//!   on a second two-worker runtime that owns the connection (one hand-off);
//! - `mt>mt+cm+2t`: the same through a `ConnectionManager` with a response timeout, the
//!   spawned task under `tokio::time::timeout` as well (what the plugin does);
//! - `mt>ct`: the caller's runtime as above; the connection owned by a current-thread
//!   runtime on a thread of its own, each GET a task spawned there;
//! - `mt>ct+cm+2t`: `mt>ct` through a `ConnectionManager`, with both timeouts;
//! - `plugin`: the plugin's own `load` (the stored text checked to be JSON), linked in:
//!   everything but the boundary and the host's decoding.
//!
//! Run a single variant under `perf stat -e context-switches` or `strace -c -f` to count
//! thread wake-ups and system calls per GET.

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::AsyncCommands as _;
use ta_persistence_api::{BoxError, DocumentStore as _};
use ta_plugin_redis::{RedisConfig, RedisTaskPersistenceManager};
use tokio::runtime::{Builder, Handle, Runtime};

const KEY: &str = "ta-round-trip";
const LIMIT: Duration = Duration::from_secs(5);

fn multi(workers: usize) -> std::io::Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// A current-thread runtime driven by a thread of its own until the returned sender is
/// dropped.
fn dedicated() -> std::io::Result<(Handle, tokio::sync::oneshot::Sender<()>)> {
    let rt = Builder::new_current_thread().enable_all().build()?;
    let handle = rt.handle().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        rt.block_on(async {
            let _ = stopped.await;
        })
    });
    Ok((handle, stop))
}

async fn multiplexed(client: &redis::Client) -> redis::RedisResult<MultiplexedConnection> {
    client.get_multiplexed_async_connection().await
}

async fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    client
        .get_connection_manager_with_config(
            ConnectionManagerConfig::new().set_response_timeout(Some(LIMIT)),
        )
        .await
}

/// `gets` GETs awaited one after the other; operations per second.
async fn direct(mut conn: MultiplexedConnection, gets: usize) -> Result<f64, BoxError> {
    let start = Instant::now();
    for _ in 0..gets {
        let v: Option<Vec<u8>> = conn.get(KEY).await?;
        v.ok_or("the key is missing")?;
    }
    Ok(gets as f64 / start.elapsed().as_secs_f64())
}

/// One GET of the key; whether it was there.
async fn get_once<C: redis::aio::ConnectionLike + Send + Sync>(mut conn: C) -> bool {
    matches!(conn.get::<_, Option<Vec<u8>>>(KEY).await, Ok(Some(_)))
}

/// [`get_once`] under a tokio timeout: the `+2t` variants' timer around each GET.
async fn get_within_limit<C: redis::aio::ConnectionLike + Send + Sync>(conn: C) -> bool {
    tokio::time::timeout(LIMIT, get_once(conn))
        .await
        .unwrap_or(false)
}

/// `gets` GETs, each a task spawned on `owner` built by `get`, awaited from `caller`.
fn handed_off<C, F, Fut>(caller: &Runtime, owner: &Handle, conn: C, gets: usize, get: F) -> f64
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let owner = owner.clone();
    caller
        .block_on(caller.spawn(async move {
            let start = Instant::now();
            for _ in 0..gets {
                let found = owner.spawn(get(conn.clone())).await.unwrap_or(false);
                assert!(found, "the key is missing");
            }
            gets as f64 / start.elapsed().as_secs_f64()
        }))
        .unwrap_or(0.0)
}

fn redis_benchmark(port: u16, gets: usize) -> Result<f64, BoxError> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "get"])
        .args(["-n", &gets.to_string(), "-d", "1600", "-c", "1", "-q"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    text.lines()
        .filter_map(|l| l.strip_prefix("GET: "))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .next_back()
        .ok_or_else(|| format!("no GET figure in redis-benchmark's output: {text}").into())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: round_trip <port> [gets] [rounds]")?
        .parse()?;
    let gets: usize = args.next().map_or(Ok(10_000), |s| s.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |s| s.parse())?;
    let only = args.next();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;

    let ct = Builder::new_current_thread().enable_all().build()?;
    let mt = multi(2)?;
    let host = multi(2)?;
    let owner_mt = multi(2)?;
    let (owner_ct, _stop) = dedicated()?;

    let mut conn = ct.block_on(multiplexed(&client))?;
    ct.block_on(conn.set::<_, _, ()>(KEY, vec![b'x'; 1600]))?;
    let ct_conn = conn;
    let mt_conn = mt.block_on(multiplexed(&client))?;
    let owned_mt = owner_mt.block_on(multiplexed(&client))?;
    let owned_mt_cm = owner_mt.block_on(manager(&client))?;
    let owned_ct = owner_ct.spawn({
        let client = client.clone();
        async move { multiplexed(&client).await }
    });
    let owned_ct = host.block_on(owned_ct)??;
    let owned_ct_cm = owner_ct.spawn({
        let client = client.clone();
        async move { manager(&client).await }
    });
    let owned_ct_cm = host.block_on(owned_ct_cm)??;
    let mut config = RedisConfig::default();
    config.host = "127.0.0.1".into();
    config.port = port;
    config.prefix = "ta-round-trip".into();
    config.timeout = LIMIT;
    let plugin = Arc::new(RedisTaskPersistenceManager::connect(config)?);
    // The plugin reads `{prefix}:task:{id}`: a stored task of about the same size.
    let task = {
        let mut t = ta_persistence_api::AgentTask::new(
            "t",
            "s",
            "u",
            ta_persistence_api::Timestamp::now_utc(),
        );
        t.items.push(ta_persistence_api::AgentTaskItem::new(
            "t",
            "r",
            ta_persistence_api::Role::User,
            ta_persistence_api::MultiModalItem::text("y".repeat(1400)),
            ta_persistence_api::Timestamp::now_utc(),
        ));
        serde_json::to_string(&t)?
    };
    ct.block_on(
        ct_conn
            .clone()
            .set::<_, _, ()>("ta-round-trip:task:t", task),
    )?;

    type Variant<'a> = (&'a str, Box<dyn Fn() -> Result<f64, BoxError> + 'a>);
    let variants: Vec<Variant<'_>> = vec![
        ("redis-benchmark", Box::new(|| redis_benchmark(port, gets))),
        (
            "ct",
            Box::new(|| ct.block_on(direct(ct_conn.clone(), gets))),
        ),
        (
            "mt",
            Box::new(|| {
                mt.block_on(mt.spawn(direct(mt_conn.clone(), gets)))
                    .map_err(|e| -> BoxError { e.into() })?
            }),
        ),
        (
            "mt>mt",
            Box::new(|| {
                Ok(handed_off(
                    &host,
                    owner_mt.handle(),
                    owned_mt.clone(),
                    gets,
                    get_once,
                ))
            }),
        ),
        (
            "mt>mt+cm+2t",
            Box::new(|| {
                Ok(handed_off(
                    &host,
                    owner_mt.handle(),
                    owned_mt_cm.clone(),
                    gets,
                    get_within_limit,
                ))
            }),
        ),
        (
            "mt>ct",
            Box::new(|| {
                Ok(handed_off(
                    &host,
                    &owner_ct,
                    owned_ct.clone(),
                    gets,
                    get_once,
                ))
            }),
        ),
        (
            "mt>ct+cm+2t",
            Box::new(|| {
                Ok(handed_off(
                    &host,
                    &owner_ct,
                    owned_ct_cm.clone(),
                    gets,
                    get_within_limit,
                ))
            }),
        ),
        (
            "plugin",
            Box::new(|| {
                let plugin = Arc::clone(&plugin);
                host.block_on(host.spawn(async move {
                    let start = Instant::now();
                    for _ in 0..gets {
                        plugin.get("t").await?.ok_or("the task is missing")?;
                    }
                    Ok::<_, BoxError>(gets as f64 / start.elapsed().as_secs_f64())
                }))
                .map_err(|e| -> BoxError { e.into() })?
            }),
        ),
    ];

    if let Some(only) = only {
        let (name, run) = variants
            .iter()
            .find(|(name, _)| *name == only)
            .ok_or_else(|| format!("no variant {only}"))?;
        for _ in 0..rounds {
            println!("{name}: {:.0}/s", run()?);
        }
        return Ok(());
    }
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            figures[i].push((variants[i].1)()?);
        }
    }
    // The machine's load changes from round to round: each round's figure is taken
    // relative to redis-benchmark's in the same round, and the median of those is shown.
    let base = figures[0].clone();
    println!(
        "{gets} GETs of 1600 bytes at C=1, {rounds} interleaved rounds: median ops/s, \
         median of the per-round ratios to redis-benchmark (per-round ratios)"
    );
    for ((name, _), runs) in variants.iter().zip(figures) {
        let ratios: Vec<f64> = runs.iter().zip(&base).map(|(r, b)| r / b).collect();
        let text: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "  {name:<16} {:>9.0}/s  {:>5.2}   ({})",
            median(runs),
            median(ratios),
            text.join(" ")
        );
    }
    Ok(())
}
