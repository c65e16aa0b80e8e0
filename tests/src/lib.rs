//! Shared helpers for the workspace's integration tests (`tests/tests/*.rs`): building
//! and locating plugin libraries, and running a real `redis-server`, Redis Cluster and
//! Postgres.

pub mod cdylib;
pub mod cli;
pub mod fixtures;
pub mod logs;
pub mod postgres_server;
pub mod redis_cluster;
pub mod redis_server;
pub mod released;

/// The host's README example, compiled and run as a doctest here, where the host is a
/// dependency as it is in an application.
#[cfg(doctest)]
#[doc = include_str!("../../host/README.md")]
pub struct HostReadmeExample;
