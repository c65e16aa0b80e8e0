//! Shared helpers for the workspace's integration tests (`tests/tests/*.rs`): building
//! and locating plugin libraries, and running a real `redis-server`.

pub mod cdylib;
pub mod cli;
pub mod fixtures;
pub mod logs;
pub mod redis_server;
