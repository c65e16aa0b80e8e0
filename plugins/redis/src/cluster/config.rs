//! `ClusterConfig`: the variables of Redis Cluster mode, parsed strictly.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TA_REDIS_CLUSTER` | `false` | `true`: the server is a Redis Cluster (the key layout changes, see the crate docs) |
//! | `TA_REDIS_NODES` | none | in cluster mode (and only there): seed nodes, `host:port,host:port,...` |
//! | `TA_REDIS_WAIT_REPLICAS` | `0` | in cluster mode: after each write, `WAIT` (up to half of `TA_REDIS_TIMEOUT_MS`) for this many replicas of every master written to |
//!
//! In cluster mode `TA_REDIS_HOST`, `TA_REDIS_PORT` and `TA_REDIS_DB` must be unset (a
//! cluster has only database 0, and its nodes are the seed list), and the prefix may not
//! hold `{` or `}`, which would change the hash tags of every key. Password, user name,
//! TLS, CA certificate, TTL, retention policy, prefix and time limit mean what they mean
//! for a single node.

use crate::config::{parse_bool, ConfigError, DB, HOST, PORT, PREFIX};
use ta_persistence_api::config::invalid;

/// `TA_REDIS_CLUSTER`.
pub const CLUSTER: &str = "TA_REDIS_CLUSTER";
/// `TA_REDIS_NODES`.
pub const NODES: &str = "TA_REDIS_NODES";
/// `TA_REDIS_WAIT_REPLICAS`.
pub const WAIT_REPLICAS: &str = "TA_REDIS_WAIT_REPLICAS";

/// Every cluster-mode variable.
pub const ALL: [&str; 3] = [CLUSTER, NODES, WAIT_REPLICAS];

/// How the plugin reaches a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Seed nodes (host, port); the client learns the rest of the cluster from them.
    pub nodes: Vec<(String, u16)>,
    /// Replicas each write waits for (`WAIT`), per master it wrote to; 0: no wait.
    pub wait_replicas: u32,
}

/// Parses one `host:port` (an IPv6 address in brackets: `[::1]:7000`).
fn parse_node(list: &str, node: &str) -> Result<(String, u16), ConfigError> {
    let bad = |why: &str| invalid(NODES, list, format!("{node:?}: {why}"));
    let (host, port) = node
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(bad("expected a host name or address before the port"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("expected a port number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("expected a port number from 1 to 65535"));
    }
    Ok((host.to_owned(), port))
}

/// Reads the cluster-mode variables through `lookup`: `None` in single-node mode.
/// `prefix` is the key prefix already read.
pub(crate) fn from_lookup<'a>(
    lookup: impl Fn(&str) -> Option<&'a str>,
    prefix: &str,
) -> Result<Option<ClusterConfig>, ConfigError> {
    for name in ALL {
        if lookup(name) == Some("") {
            return Err(invalid(
                name,
                "",
                "the value is empty; unset the variable to use its default",
            ));
        }
    }
    let cluster = match lookup(CLUSTER) {
        Some(value) => parse_bool(CLUSTER, value)?,
        None => false,
    };
    if !cluster {
        for name in [NODES, WAIT_REPLICAS] {
            if let Some(value) = lookup(name) {
                return Err(invalid(
                    name,
                    value,
                    format!("only used in cluster mode; set {CLUSTER}=true"),
                ));
            }
        }
        return Ok(None);
    }
    for name in [HOST, PORT, DB] {
        if let Some(value) = lookup(name) {
            return Err(invalid(
                name,
                value,
                format!("not used in cluster mode (nodes come from {NODES}, and a cluster has only database 0); unset it"),
            ));
        }
    }
    if prefix.contains(['{', '}']) {
        return Err(invalid(
            PREFIX,
            prefix,
            "in cluster mode the prefix may not hold '{' or '}' (they would change the keys' hash tags)",
        ));
    }
    let list = lookup(NODES).ok_or_else(|| ConfigError {
        name: NODES,
        value: None,
        reason: format!(
            "cluster mode ({CLUSTER}=true) needs the seed nodes: host:port,host:port,..."
        ),
    })?;
    let nodes = list
        .split(',')
        .map(|node| parse_node(list, node.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let wait_replicas = match lookup(WAIT_REPLICAS) {
        Some(value) => value.trim().parse().map_err(|_| {
            invalid(
                WAIT_REPLICAS,
                value,
                "expected a number of replicas (0 or more)",
            )
        })?,
        None => 0,
    };
    Ok(Some(ClusterConfig {
        nodes,
        wait_replicas,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::RedisConfig;

    fn parse(vars: &[(&str, &str)]) -> Result<RedisConfig, ConfigError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RedisConfig::from_lookup(|name| map.get(name).map(String::as_str))
    }

    #[test]
    fn single_node_mode_is_the_default() {
        assert_eq!(parse(&[]).unwrap().cluster, None);
        assert_eq!(parse(&[(CLUSTER, "false")]).unwrap().cluster, None);
    }

    #[test]
    fn cluster_mode_reads_the_seed_nodes_and_the_replica_wait() {
        let c = parse(&[
            (CLUSTER, "true"),
            (NODES, "10.0.0.1:7000, redis-b:7001,[::1]:7002"),
            (WAIT_REPLICAS, "1"),
        ])
        .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(
            cluster.nodes,
            vec![
                ("10.0.0.1".to_owned(), 7000),
                ("redis-b".to_owned(), 7001),
                ("::1".to_owned(), 7002)
            ]
        );
        assert_eq!(cluster.wait_replicas, 1);
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        for (vars, name) in [
            (vec![(CLUSTER, "perhaps")], CLUSTER),
            (vec![(CLUSTER, "true")], NODES),
            (vec![(CLUSTER, "true"), (NODES, "host")], NODES),
            (vec![(CLUSTER, "true"), (NODES, "host:0")], NODES),
            (vec![(CLUSTER, "true"), (NODES, "a:1,,b:2")], NODES),
            (vec![(CLUSTER, "true"), (NODES, ":7000")], NODES),
            (
                vec![(CLUSTER, "true"), (NODES, "a:1"), (WAIT_REPLICAS, "-1")],
                WAIT_REPLICAS,
            ),
            (vec![(CLUSTER, "true"), (NODES, "")], NODES),
            (vec![(NODES, "a:1")], NODES),
            (vec![(WAIT_REPLICAS, "1")], WAIT_REPLICAS),
            (vec![(CLUSTER, "true"), (NODES, "a:1"), (HOST, "h")], HOST),
            (vec![(CLUSTER, "true"), (NODES, "a:1"), (PORT, "1")], PORT),
            (vec![(CLUSTER, "true"), (NODES, "a:1"), (DB, "0")], DB),
            (
                vec![(CLUSTER, "true"), (NODES, "a:1"), (PREFIX, "p{x}")],
                PREFIX,
            ),
        ] {
            let err = parse(&vars).unwrap_err();
            assert_eq!(err.name, name, "{vars:?}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
