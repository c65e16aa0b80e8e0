//! Time per `GET` at one operation in flight through redis-rs's multiplexed connection
//! to one server and through its cluster client, to one master and spread over every
//! master: separates the cluster client's own cost from the cost of reaching several
//! server processes. Short rounds alternate the three, so a busy machine disturbs each
//! alike; the medians are printed.
//!
//! ```sh
//! cargo run --release -p ta-plugin-redis --example cluster_get_probe -- \
//!     127.0.0.1:6379 127.0.0.1:7000   # a single server, then any cluster node
//! ```

use std::error::Error;
use std::time::Instant;

/// `GET`s per round and variant.
const CALLS: usize = 1_000;
/// Rounds.
const ROUNDS: usize = 41;
/// Keys for the spread measurement: their hash tags fall on every master of a
/// 3-master cluster many times over.
const KEYS: usize = 99;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(single), Some(node)) = (args.next(), args.next()) else {
        return Err("usage: cluster_get_probe <single host:port> <cluster node host:port>".into());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut one = redis::Client::open(format!("redis://{single}"))?
            .get_multiplexed_async_connection()
            .await?;
        let mut cluster = redis::cluster::ClusterClient::new(vec![format!("redis://{node}")])?
            .get_async_connection()
            .await?;
        let keys: Vec<String> = (0..KEYS).map(|i| format!("probe:{{{i}}}")).collect();
        for key in &keys {
            redis::cmd("SET")
                .arg(key)
                .arg("v")
                .query_async::<()>(&mut one)
                .await?;
            redis::cmd("SET")
                .arg(key)
                .arg("v")
                .query_async::<()>(&mut cluster)
                .await?;
        }
        let variants = [
            ("single server", KEYS),
            ("cluster, one master", 1),
            ("cluster, every master", KEYS),
        ];
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..ROUNDS {
            for (n, (name, spread)) in variants.iter().copied().enumerate() {
                let started = Instant::now();
                for i in 0..CALLS {
                    let mut get = redis::cmd("GET");
                    get.arg(&keys[i % spread]);
                    let _: Option<String> = if name == "single server" {
                        get.query_async(&mut one).await?
                    } else {
                        get.query_async(&mut cluster).await?
                    };
                }
                times[n].push(started.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
            }
        }
        for ((name, _), mut t) in variants.iter().zip(times) {
            t.sort_by(f64::total_cmp);
            println!("{name:<24} median {:.1} us per GET", t[t.len() / 2]);
        }
        for key in &keys {
            redis::cmd("DEL")
                .arg(key)
                .query_async::<()>(&mut one)
                .await?;
            redis::cmd("DEL")
                .arg(key)
                .query_async::<()>(&mut cluster)
                .await?;
        }
        Ok(())
    })
}
