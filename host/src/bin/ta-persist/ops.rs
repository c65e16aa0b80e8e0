//! Operator commands: read and write tasks in the configured store, JSON in and out.
//!
//! Exit codes: 0 success, 3 not found, 4 already exists, 5 invalid input, 6 backend
//! failure, 7 conflict, 1 anything else (including configuration errors).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ta_persistence::api::{ErrorKind, PersistenceError, TaskDocument};
use ta_persistence::{ActiveBackend, PersistenceFactory};

/// Exit code for a missing task.
pub(crate) const EXIT_NOT_FOUND: u8 = 3;
/// Exit code for a create of an existing task.
pub(crate) const EXIT_EXISTS: u8 = 4;
/// Exit code for bad input.
pub(crate) const EXIT_INVALID: u8 = 5;
/// Exit code for a backend failure.
pub(crate) const EXIT_BACKEND: u8 = 6;
/// Exit code for an ETag conflict.
pub(crate) const EXIT_CONFLICT: u8 = 7;

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The task id (for `find`, the request id).
    id: String,
}

#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// A JSON file holding one task, or `-` for standard input.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ClearArgs {
    /// Confirm: every task of the configured store is removed.
    #[arg(long)]
    yes: bool,
}

fn error_exit(err: &PersistenceError) -> ExitCode {
    eprintln!("error: {}", err.report());
    ExitCode::from(match err.kind() {
        ErrorKind::NotFound => EXIT_NOT_FOUND,
        ErrorKind::AlreadyExists => EXIT_EXISTS,
        ErrorKind::InvalidInput => EXIT_INVALID,
        ErrorKind::Conflict => EXIT_CONFLICT,
        _ => EXIT_BACKEND,
    })
}

/// Builds the configured store; prints the reason and gives the exit code on failure.
pub(crate) fn factory() -> Result<PersistenceFactory, ExitCode> {
    PersistenceFactory::from_env().map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::from(1)
    })
}

/// The configured store for a task command. A fallback store is refused: reading or
/// writing an empty, process-local stand-in would only mislead.
fn store_factory() -> Result<PersistenceFactory, ExitCode> {
    let factory = factory()?;
    if let ActiveBackend::Fallback { reason, .. } = factory.active_backend() {
        eprintln!("error: the configured plugin cannot be used: {reason}");
        return Err(ExitCode::from(EXIT_BACKEND));
    }
    Ok(factory)
}

fn print_document(doc: Option<TaskDocument>, what: &str, id: &str) -> ExitCode {
    match doc {
        Some(doc) => {
            println!("{}", doc.json());
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: no task {what} '{id}'");
            ExitCode::from(EXIT_NOT_FOUND)
        }
    }
}

pub(crate) async fn get(args: IdArgs) -> ExitCode {
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    match factory
        .get_persistence_manager()
        .load_document(&args.id)
        .await
    {
        Ok(doc) => print_document(doc, "with id", &args.id),
        Err(err) => error_exit(&err),
    }
}

pub(crate) async fn find(args: IdArgs) -> ExitCode {
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let store = factory.get_persistence_manager();
    match store.load_document_by_request_id(&args.id).await {
        Ok(doc) => print_document(doc, "with request id", &args.id),
        Err(err) => error_exit(&err),
    }
}

fn read_document(file: &PathBuf) -> Result<TaskDocument, ExitCode> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    if let Err(err) = read {
        eprintln!("error: cannot read {}: {err}", file.display());
        return Err(ExitCode::from(EXIT_INVALID));
    }
    let task = match ta_persistence::AgentTask::from_json(&text) {
        Ok(task) => task,
        Err(err) => {
            eprintln!("error: {}: {err}", file.display());
            return Err(ExitCode::from(EXIT_INVALID));
        }
    };
    // Store the canonical form, whatever whitespace or key order the file had.
    Ok(TaskDocument::from_task(&task))
}

pub(crate) async fn put(args: FileArgs) -> ExitCode {
    write(args, true).await
}

pub(crate) async fn update(args: FileArgs) -> ExitCode {
    write(args, false).await
}

async fn write(args: FileArgs, create: bool) -> ExitCode {
    let doc = match read_document(&args.file) {
        Ok(doc) => doc,
        Err(code) => return code,
    };
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let store = factory.get_persistence_manager();
    let id = doc.task_id().to_owned();
    let outcome = if create {
        store.create_document(doc).await
    } else {
        store.update_document(doc).await
    };
    match outcome {
        Ok(()) => {
            eprintln!("{} task '{id}'", if create { "created" } else { "updated" });
            ExitCode::SUCCESS
        }
        Err(err) => error_exit(&err),
    }
}

pub(crate) async fn delete(args: IdArgs) -> ExitCode {
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    match factory.get_persistence_manager().delete(&args.id).await {
        Ok(()) => {
            eprintln!("deleted task '{}'", args.id);
            ExitCode::SUCCESS
        }
        Err(err) => error_exit(&err),
    }
}

pub(crate) async fn clear(args: ClearArgs) -> ExitCode {
    if !args.yes {
        eprintln!("error: clear removes every task of the configured store; pass --yes to confirm");
        return ExitCode::from(EXIT_INVALID);
    }
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    match factory.get_persistence_manager().clear().await {
        Ok(n) => {
            println!("{n}");
            eprintln!("removed {n} tasks ({})", factory.active_backend().kind());
            ExitCode::SUCCESS
        }
        Err(err) => error_exit(&err),
    }
}
