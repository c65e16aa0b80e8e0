//! A real Redis Cluster for tests: `redis-server --cluster-enabled yes` on free loopback
//! ports, joined with `redis-cli --cluster create`, killed on drop.
//!
//! [`RedisCluster::maybe_start`] starts 3 masters with one replica each and waits until
//! every node reports `cluster_state:ok` and every master has its replica attached.
//! Without `redis-server` or `redis-cli` it prints a loud notice and returns `None`; with
//! `CI` set it panics instead. The `redis-cli` binary is `$TA_TEST_REDIS_CLI`, else the
//! one beside the server binary, else `redis-cli` on the `PATH`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::redis_server::{loud_notice, server_binary, RedisServer, ServerOptions, SERVER_VAR};

/// The variable naming the `redis-cli` binary to use.
pub const CLI_VAR: &str = "TA_TEST_REDIS_CLI";

/// How long a cluster may take to form, or to fail over.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

/// Milliseconds after which a silent master is failed over (`cluster-node-timeout`).
pub const NODE_TIMEOUT_MS: u64 = 1500;

/// The `redis-cli` binary, if there is one.
pub fn cli_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(CLI_VAR) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    if let Some(beside) = server_binary()
        .and_then(|s| s.parent().map(|d| d.join("redis-cli")))
        .filter(|p| p.is_file())
    {
        return Some(beside);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-cli"))
            .find(|p| p.is_file())
    })
}

/// A running cluster of masters and replicas on loopback.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    cli: PathBuf,
}

impl RedisCluster {
    /// Starts 3 masters with one replica each, or returns `None` (after a loud notice)
    /// when `redis-server` or `redis-cli` is missing and `CI` is unset. Panics when `CI`
    /// is set and one is missing, or when the cluster does not form.
    pub fn maybe_start() -> Option<Self> {
        let (Some(_), Some(cli)) = (server_binary(), cli_binary()) else {
            let why = format!(
                "no redis-server or redis-cli found (install redis, or set {SERVER_VAR} and {CLI_VAR})"
            );
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but there is {why}");
            }
            loud_notice(&format!(
                "SKIPPED: {why}; the Redis Cluster tests did not run"
            ));
            return None;
        };
        Some(Self::start(3, 1, cli))
    }

    fn start(masters: usize, replicas: usize, cli: PathBuf) -> Self {
        let timeout = NODE_TIMEOUT_MS.to_string();
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(ServerOptions::default().args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    &timeout,
                    // A replica may be promoted however far behind: the tests check what
                    // is and is not kept across a failover.
                    "--cluster-replica-validity-factor",
                    "0",
                ]))
            })
            .collect();
        let cluster = RedisCluster { nodes, cli };
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port())),
        );
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let out = cluster.cli(&args);
        assert!(
            out.contains("All 16384 slots covered"),
            "redis-cli --cluster create failed:\n{out}"
        );
        cluster.wait_until_healthy();
        cluster
    }

    /// Runs `redis-cli` with `args`; its standard output and error.
    pub fn cli(&self, args: &[String]) -> String {
        let out = Command::new(&self.cli)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.cli.display()));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits until every running node reports `cluster_state:ok` and agrees on one
    /// master per slot range, each with a replica attached.
    pub fn wait_until_healthy(&self) {
        let started = Instant::now();
        loop {
            let ok = self.running().all(|node| {
                let replication = info(node, "INFO", &["replication"]);
                let paired = (replication.contains("role:slave")
                    && replication.contains("master_link_status:up"))
                    || (replication.contains("role:master")
                        && replication.contains("connected_slaves:1"));
                paired && info(node, "CLUSTER", &["INFO"]).contains("cluster_state:ok")
            });
            if ok {
                return;
            }
            assert!(
                started.elapsed() < SETTLE_WITHIN,
                "the cluster did not become healthy within {SETTLE_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every running node reports `cluster_state:ok` (replicas may be
    /// missing, as after a master was killed).
    pub fn wait_until_ok(&self) {
        let started = Instant::now();
        while !self
            .running()
            .all(|node| info(node, "CLUSTER", &["INFO"]).contains("cluster_state:ok"))
        {
            assert!(
                started.elapsed() < SETTLE_WITHIN,
                "the cluster did not reach cluster_state:ok within {SETTLE_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// The nodes, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The `TA_REDIS_*` variables that put the plugin in cluster mode on this cluster.
    pub fn vars(&self, prefix: &str) -> BTreeMap<String, String> {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        BTreeMap::from([
            ("TA_REDIS_CLUSTER".to_owned(), "true".to_owned()),
            ("TA_REDIS_NODES".to_owned(), seeds.join(",")),
            ("TA_REDIS_PREFIX".to_owned(), prefix.to_owned()),
        ])
    }

    /// `CLUSTER KEYSLOT key`, asked of a running node.
    pub fn keyslot(&self, key: &str) -> u16 {
        let node = self.running().next().expect("a running node");
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut node.conn())
            .expect("CLUSTER KEYSLOT")
    }

    /// The index of the running master that serves `slot`.
    pub fn master_of(&self, slot: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| {
                n.is_running()
                    && info(n, "INFO", &["replication"]).contains("role:master")
                    && owns(n, slot)
            })
            .unwrap_or_else(|| panic!("no running master serves slot {slot}"))
    }

    /// The node id of a node (`CLUSTER MYID`).
    pub fn node_id(&self, index: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[index].conn())
            .expect("CLUSTER MYID")
    }

    /// The indexes of the running masters.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].is_running()
                    && info(&self.nodes[i], "INFO", &["replication"]).contains("role:master")
            })
            .collect()
    }

    /// Every key on every running master whose name matches `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut all = Vec::new();
        for i in self.masters() {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut self.nodes[i].conn())
                .expect("KEYS");
            all.extend(keys);
        }
        all.sort();
        all
    }

    /// Kills a node (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Total calls of each command (lowercase) over the running masters since the last
    /// [`RedisCluster::reset_stats`].
    pub fn command_calls(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for i in self.masters() {
            for (name, calls) in self.nodes[i].command_calls() {
                *total.entry(name).or_insert(0) += calls;
            }
        }
        total
    }

    /// `CONFIG RESETSTAT` on every running node.
    pub fn reset_stats(&self) {
        for node in self.running() {
            node.reset_stats();
        }
    }
}

/// A command's reply as text (`CLUSTER INFO`, `INFO replication`), or "" on error.
fn info(node: &RedisServer, cmd: &str, args: &[&str]) -> String {
    let mut c = redis::cmd(cmd);
    for a in args {
        c.arg(*a);
    }
    node.client()
        .get_connection_with_timeout(Duration::from_secs(2))
        .and_then(|mut conn| c.query::<String>(&mut conn))
        .unwrap_or_default()
}

/// Whether a node's own view says it serves `slot` (`CLUSTER SHARDS` is 7.0+, so
/// `CLUSTER NODES`' `myself` line).
fn owns(node: &RedisServer, slot: u16) -> bool {
    let nodes = info(node, "CLUSTER", &["NODES"]);
    let Some(mine) = nodes.lines().find(|l| l.contains("myself")) else {
        return false;
    };
    mine.split_whitespace().skip(8).any(|range| {
        if range.starts_with('[') {
            return false;
        }
        match range.split_once('-') {
            Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                _ => false,
            },
            None => range.parse::<u16>() == Ok(slot),
        }
    })
}
