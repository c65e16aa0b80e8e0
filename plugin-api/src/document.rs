//! `TaskDocument`: a task as its JSON text plus the fields a store indexes.
//!
//! This is the form in which a task crosses the plugin boundary and the form a store that
//! keeps JSON (Redis) works in: the host encodes a task once, and such a store writes the
//! text as it is without decoding and re-encoding it.

use crate::error::Operation;
use crate::error::{validate_id, PersistenceError, Result};
use crate::model::{AgentTask, WireError};

/// A task's JSON document together with its indexed fields.
///
/// The fields always agree with the JSON: every constructor derives them from it (or
/// from the task it was encoded from), so a store can trust them without decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDocument {
    task_id: String,
    request_ids: Vec<String>,
    created_at_micros: i64,
    json: String,
}

impl TaskDocument {
    /// Encodes a task.
    pub fn from_task(task: &AgentTask) -> Self {
        Self {
            task_id: task.task_id.clone(),
            request_ids: task.request_ids().into_iter().map(str::to_owned).collect(),
            created_at_micros: task.created_at.utc_micros(),
            json: task.to_json(),
        }
    }

    /// Reads a document from its JSON text, checking that it is a valid task.
    ///
    /// The text is kept as given; use [`TaskDocument::from_task`] on the decoded task to
    /// get the canonical form.
    pub fn from_json(json: String) -> Result<Self, WireError> {
        let task = AgentTask::from_json(&json)?;
        Ok(Self {
            task_id: task.task_id.clone(),
            request_ids: task.request_ids().into_iter().map(str::to_owned).collect(),
            created_at_micros: task.created_at.utc_micros(),
            json,
        })
    }

    /// Assembles a document from parts that are already known to agree with each other
    /// (they were produced by [`TaskDocument::from_task`] on the other side of the plugin
    /// boundary).
    #[doc(hidden)]
    pub fn from_trusted_parts(
        task_id: String,
        request_ids: Vec<String>,
        created_at_micros: i64,
        json: String,
    ) -> Self {
        Self {
            task_id,
            request_ids,
            created_at_micros,
            json,
        }
    }

    /// Decodes the task.
    pub fn to_task(&self) -> Result<AgentTask, WireError> {
        AgentTask::from_json(&self.json)
    }

    /// Decodes a document a store read back; one that does not decode is reported as
    /// [`PersistenceError::Corrupt`] of `op`, naming the task.
    pub fn into_stored_task(self, op: Operation) -> Result<AgentTask> {
        self.to_task().map_err(|e| PersistenceError::Corrupt {
            op,
            task_id: self.task_id,
            source: Box::new(e),
        })
    }

    /// The task id.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The distinct request ids of the task's items, in first-seen order.
    pub fn request_ids(&self) -> &[String] {
        &self.request_ids
    }

    /// `created_at` as microseconds since the Unix epoch (a naive time read as UTC):
    /// the key that orders tasks sharing a request id.
    pub fn created_at_micros(&self) -> i64 {
        self.created_at_micros
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Takes the parts apart: `(task_id, request_ids, created_at_micros, json)`.
    pub fn into_parts(self) -> (String, Vec<String>, i64, String) {
        (
            self.task_id,
            self.request_ids,
            self.created_at_micros,
            self.json,
        )
    }

    /// Checks the ids a store is asked to keep: the task id and every request id.
    pub fn validate_ids(&self, op: Operation) -> Result<()> {
        validate_id(op, "task id", &self.task_id)?;
        for request_id in &self.request_ids {
            validate_id(op, "request id", request_id).map_err(|e| with_task(e, &self.task_id))?;
        }
        Ok(())
    }
}

/// Checks the ids of a task a store is asked to keep: the task id and every request id.
pub fn validate_task_ids(op: Operation, task: &AgentTask) -> Result<()> {
    validate_id(op, "task id", &task.task_id)?;
    for item in &task.items {
        validate_id(op, "request id", &item.request_id).map_err(|e| with_task(e, &task.task_id))?;
    }
    Ok(())
}

/// Re-targets an invalid-request-id error at the task that carried it.
fn with_task(err: PersistenceError, task_id: &str) -> PersistenceError {
    match err {
        PersistenceError::InvalidInput { op, reason, .. } => PersistenceError::InvalidInput {
            op,
            id: task_id.to_owned(),
            reason: format!("an item's {reason}"),
        },
        other => other,
    }
}
