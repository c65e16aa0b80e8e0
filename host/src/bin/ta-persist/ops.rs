//! Operator commands: read and write tasks in the configured store, JSON in and out.
//!
//! Exit codes: 0 success, 3 not found, 4 already exists, 5 invalid input, 6 backend
//! failure, 7 conflict, 1 anything else (including configuration errors).

use std::io::Read as _;
use std::path::{Path, PathBuf};
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
    /// Read at most this much: bytes, or with a suffix K, M or G (KiB, MiB, GiB). A larger
    /// input is refused before anything is stored.
    #[arg(long, env = MAX_INPUT_VAR, default_value = "64M", value_parser = parse_size)]
    max_size: u64,
}

/// The variable that sets `put`'s and `update`'s input limit.
const MAX_INPUT_VAR: &str = "TA_PERSIST_MAX_INPUT";

/// Parses a size: `1048576`, `512K`, `64M`, `1G` (binary units; `KiB`, `MiB`, `GiB` too).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 1048576, 512K, 64M or 1G"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("{text:?}: unknown unit (use K, M or G)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A size as people read it: `64 MiB`, `1536 KiB`, `100 bytes`.
fn show_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// An id as messages show it: quoted, with newlines and control characters escaped, so
/// that it can neither forge a line nor drive the terminal.
pub(crate) fn quoted(id: &str) -> String {
    format!("'{}'", id.escape_debug())
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
            eprintln!("error: no task {what} {}", quoted(id));
            ExitCode::from(EXIT_NOT_FOUND)
        }
    }
}

pub(crate) async fn get(args: IdArgs) -> ExitCode {
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    match factory.document_manager().load_document(&args.id).await {
        Ok(doc) => print_document(doc, "with id", &args.id),
        Err(err) => error_exit(&err),
    }
}

pub(crate) async fn find(args: IdArgs) -> ExitCode {
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let store = factory.document_manager();
    match store.load_document_by_request_id(&args.id).await {
        Ok(doc) => print_document(doc, "with request id", &args.id),
        Err(err) => error_exit(&err),
    }
}

/// Reads at most `limit` bytes of `file` (`-`: standard input); more is an error that
/// names the limit.
fn read_input(file: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let too_large = || {
        format!(
            "{} is larger than the {} limit on a task document (set by --max-size or {MAX_INPUT_VAR})",
            file.display(),
            show_size(limit)
        )
    };
    let cannot = |err: std::io::Error| format!("cannot read {}: {err}", file.display());
    let (reader, size): (Box<dyn std::io::Read>, u64) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let opened = std::fs::File::open(file).map_err(cannot)?;
        // A regular file's size is known: refuse a large one without reading it, and read
        // a small one into a buffer of its exact size (no growth, no spare capacity).
        let size = opened
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map_or(0, |m| m.len());
        if size > limit {
            return Err(too_large());
        }
        (Box::new(opened), size)
    };
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte more than the limit tells "exactly at the limit" from "over it".
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

fn read_document(file: &Path, limit: u64) -> Result<TaskDocument, ExitCode> {
    let bytes = read_input(file, limit).map_err(|message| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_INVALID)
    })?;
    let task = ta_persistence::AgentTask::from_json_slice(&bytes).map_err(|err| {
        eprintln!("error: {}: {err}", file.display());
        ExitCode::from(EXIT_INVALID)
    })?;
    // A large task exists as text, as a task and as canonical JSON, but never as all
    // three at once: the text goes before the JSON is written, the task after it, and the
    // allocator returns their pages before the store makes its own copies.
    drop(bytes);
    crate::bench::heap::release();
    // Store the canonical form, whatever whitespace or key order the file had.
    let doc = TaskDocument::from_task(&task);
    drop(task);
    crate::bench::heap::release();
    Ok(doc)
}

pub(crate) async fn put(args: FileArgs) -> ExitCode {
    write(args, true).await
}

pub(crate) async fn update(args: FileArgs) -> ExitCode {
    write(args, false).await
}

async fn write(args: FileArgs, create: bool) -> ExitCode {
    let doc = match read_document(&args.file, args.max_size) {
        Ok(doc) => doc,
        Err(code) => return code,
    };
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let store = factory.document_manager();
    let id = doc.task_id().to_owned();
    let outcome = if create {
        store.create_document(doc).await
    } else {
        store.update_document(doc).await
    };
    match outcome {
        Ok(()) => {
            let done = if create { "created" } else { "updated" };
            eprintln!("{done} task {}", quoted(&id));
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
    match factory.document_manager().delete(&args.id).await {
        Ok(()) => {
            eprintln!("deleted task {}", quoted(&args.id));
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
    match factory.document_manager().clear().await {
        Ok(n) => {
            println!("{n}");
            eprintln!("removed {n} tasks ({})", factory.active_backend().kind());
            ExitCode::SUCCESS
        }
        Err(err) => error_exit(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_in_binary_units_and_shown_back() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 2 g "), Ok(2 << 30));
        assert!(parse_size("64X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size("18446744073709551615G").is_err());
        assert_eq!(show_size(64 << 20), "64 MiB");
        assert_eq!(show_size(1536 << 10), "1536 KiB");
        assert_eq!(show_size(100), "100 bytes");
    }

    #[test]
    fn quoted_ids_cannot_break_a_line() {
        assert_eq!(quoted("task-1"), "'task-1'");
        assert_eq!(quoted("a\nERROR b\u{1b}[31m"), r"'a\nERROR b\u{1b}[31m'");
    }
}
