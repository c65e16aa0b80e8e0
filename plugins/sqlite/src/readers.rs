//! `Readers`: the reader connections. In WAL mode readers never wait for the writer nor
//! for each other, so each read takes an idle connection (or opens one) on a blocking
//! thread of the plugin's runtime, which allows at most `readers` at once.

use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;
use ta_persistence_api::{Operation, Result};

use crate::config::Settings;
use crate::schema::{self, Role};
use crate::sql;

/// Idle reader connections, reused.
#[derive(Debug)]
pub(crate) struct Readers {
    settings: Settings,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(settings: Settings) -> Self {
        Readers {
            settings,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on a reader connection (blocking: call it on a blocking thread).
    pub(crate) fn with<T>(
        &self,
        op: Operation,
        id: &str,
        read: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        // The list holds no invariant a panic could break: a poisoned lock is still good.
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => schema::connect(&self.settings, Role::Reader)
                .map_err(|e| sql::db_error(op, id, &e))?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.settings.readers {
            idle.push(conn);
        }
        result
    }
}
