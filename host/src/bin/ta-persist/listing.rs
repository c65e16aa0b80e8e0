//! `list` and `purge`: page through the configured store's tasks, and remove (or count)
//! the ones its retention policy has expired.
//!
//! Exit codes as in `ops`: a bad status, limit or cursor is invalid input (5); a backend
//! that cannot list or purge (a plugin built before these operations) is a backend
//! failure (6).

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use ta_persistence::api::listing::{Cursor, PageRequest, TaskFilter, TaskSummary, MAX_PAGE_SIZE};
use ta_persistence::api::retention::RETENTION_VAR;
use ta_persistence::api::{TaskStatus, Timestamp};
use ta_persistence::Config;

use crate::ops::{error_exit, store_factory, EXIT_INVALID};

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks of this session.
    #[arg(long)]
    session: Option<String>,
    /// Only tasks of this user.
    #[arg(long)]
    user: Option<String>,
    /// Only tasks in one of these statuses (comma-separated, any case: running, paused,
    /// completed, failed, canceled).
    #[arg(long, value_delimiter = ',')]
    status: Option<Vec<String>>,
    /// Tasks per page, 1 to 1000.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Start after this cursor (printed at the end of the previous page).
    #[arg(long)]
    cursor: Option<String>,
    /// Every page to the end, printed as each arrives.
    #[arg(long)]
    all: bool,
    /// One JSON object per line: each task's summary, then `{"next_cursor": ...}` when
    /// another page follows.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Remove nothing: count, per retained status, the tasks whose `last_updated` is older
    /// than the policy's maximum age (an estimate: see the README).
    #[arg(long)]
    dry_run: bool,
}

/// A status as an operator types it: its wire name in any case.
fn parse_status(text: &str) -> Result<TaskStatus, String> {
    let wanted = text.trim();
    (0..=u8::MAX)
        .map_while(TaskStatus::from_ordinal)
        .find(|s| s.as_str().eq_ignore_ascii_case(wanted))
        .ok_or_else(|| {
            format!(
                "{:?} is not a status (running, paused, completed, failed or canceled)",
                wanted
            )
        })
}

fn invalid(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_INVALID)
}

/// One summary as a JSON line.
#[derive(Serialize)]
struct SummaryLine<'a> {
    task_id: &'a str,
    session_id: &'a str,
    user_id: &'a str,
    status: &'static str,
    created_at: String,
    last_updated: String,
    item_count: u64,
}

impl<'a> SummaryLine<'a> {
    fn of(s: &'a TaskSummary) -> Self {
        SummaryLine {
            task_id: &s.task_id,
            session_id: &s.session_id,
            user_id: &s.user_id,
            status: s.status.as_str(),
            created_at: s.created_at.to_string(),
            last_updated: s.last_updated.to_string(),
            item_count: s.item_count,
        }
    }
}

/// An id in a table cell: control characters escaped, so a row stays one line.
fn cell(id: &str) -> String {
    id.escape_debug().to_string()
}

const HEADER: [&str; 7] = [
    "TASK ID",
    "SESSION",
    "USER",
    "STATUS",
    "CREATED",
    "LAST UPDATED",
    "ITEMS",
];

/// Prints one page; `header` once, before the first.
fn print_page(
    out: &mut impl std::io::Write,
    tasks: &[TaskSummary],
    json: bool,
    header: bool,
) -> std::io::Result<()> {
    if json {
        for task in tasks {
            let line =
                serde_json::to_string(&SummaryLine::of(task)).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 7]> = tasks
        .iter()
        .map(|t| {
            [
                cell(&t.task_id),
                cell(&t.session_id),
                cell(&t.user_id),
                t.status.as_str().to_owned(),
                t.created_at.to_string(),
                t.last_updated.to_string(),
                t.item_count.to_string(),
            ]
        })
        .collect();
    // Widths per page (pages stream, so later rows are not known); never narrower
    // than the header.
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(c);
            } else {
                text.push_str(&format!("{c:<w$}  "));
            }
        }
        text
    };
    if header {
        writeln!(out, "{}", line(&HEADER))?;
    }
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

pub(crate) async fn list(args: ListArgs) -> ExitCode {
    let mut filter = TaskFilter::all();
    if let Some(session) = args.session {
        filter = filter.session(session);
    }
    if let Some(user) = args.user {
        filter = filter.user(user);
    }
    if let Some(names) = &args.status {
        match names
            .iter()
            .map(|n| parse_status(n))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(statuses) => filter = filter.statuses(statuses),
            Err(message) => return invalid(&message),
        }
    }
    let mut request = match PageRequest::new(args.limit) {
        Ok(r) => r,
        Err(_) => {
            return invalid(&format!(
                "--limit {} is out of range: a page holds 1 to {MAX_PAGE_SIZE} tasks",
                args.limit
            ))
        }
    };
    if let Some(cursor) = args.cursor {
        let cursor = Cursor::from_string(cursor);
        // Checked here too, so that a bad cursor is refused before the store is opened.
        if let Err(err) = cursor.decode(&filter, ta_persistence::api::Operation::List) {
            return invalid(&format!(
                "{} (a cursor is only valid with the same --session, --user and --status it was printed for)",
                err.report()
            ));
        }
        request = request.after(cursor);
    }
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let store = factory.get_persistence_manager();
    let stdout = std::io::stdout();
    let mut first = true;
    loop {
        let page = match store.list_tasks(&filter, &request).await {
            Ok(page) => page,
            Err(err) => return error_exit(&err),
        };
        let mut out = stdout.lock();
        let mut written = print_page(&mut out, &page.tasks, args.json, first);
        first = false;
        let next = page.next;
        if !args.all {
            if let (Some(next), Ok(())) = (&next, &written) {
                written = if args.json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({ "next_cursor": next.as_str() })
                    )
                } else {
                    writeln!(out, "next cursor: {next}")
                };
            }
        }
        written = written.and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            // The reader went away (`| head`): that is how a pager says it has enough.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: cannot write the listing: {err}");
                return ExitCode::from(1);
            }
        }
        match next {
            Some(next) if args.all => request = PageRequest::from_parts(args.limit, Some(next)),
            _ => return ExitCode::SUCCESS,
        }
    }
}

pub(crate) async fn purge(args: PurgeArgs) -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    let factory = match store_factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let store = factory.get_persistence_manager();
    if !args.dry_run {
        return match store.purge().await {
            Ok(n) => {
                println!("{n}");
                eprintln!(
                    "removed {n} expired tasks ({})",
                    factory.active_backend().kind()
                );
                ExitCode::SUCCESS
            }
            Err(err) => error_exit(&err),
        };
    }
    let policy = config.retention;
    if policy.is_empty() {
        println!("policy: none ({RETENTION_VAR} is not set): nothing expires");
        println!("total 0");
        return ExitCode::SUCCESS;
    }
    println!("policy: {policy}");
    let retained: Vec<TaskStatus> = (0..=u8::MAX)
        .map_while(TaskStatus::from_ordinal)
        .filter(|s| policy.max_age(*s).is_some())
        .collect();
    let now = Timestamp::now_utc().utc_micros();
    let mut counts = vec![0u64; retained.len()];
    let filter = TaskFilter::all().statuses(retained.iter().copied());
    let mut request = PageRequest::from_parts(MAX_PAGE_SIZE, None);
    loop {
        let page = match store.list_tasks(&filter, &request).await {
            Ok(page) => page,
            Err(err) => return error_exit(&err),
        };
        for task in &page.tasks {
            let Some(at) = retained.iter().position(|s| *s == task.status) else {
                continue;
            };
            if is_older(now, task.last_updated, policy.max_age(task.status)) {
                counts[at] += 1;
            }
        }
        match page.next {
            Some(next) => request = PageRequest::from_parts(MAX_PAGE_SIZE, Some(next)),
            None => break,
        }
    }
    for (status, n) in retained.iter().zip(&counts) {
        println!("{} {n}", status.as_str().to_ascii_lowercase());
    }
    println!("total {}", counts.iter().sum::<u64>());
    eprintln!(
        "dry run: counted by last_updated on this machine's clock; the store expires by its own clock from each task's last write, so `purge` may remove a different number"
    );
    ExitCode::SUCCESS
}

/// Whether a task last updated at `last_updated` is older than `max_age` at `now` (both
/// in microseconds since the epoch, naive times read as UTC).
fn is_older(now: i64, last_updated: Timestamp, max_age: Option<std::time::Duration>) -> bool {
    let Some(max_age) = max_age else { return false };
    let age = i128::from(now) - i128::from(last_updated.utc_micros());
    age > i128::try_from(max_age.as_micros()).unwrap_or(i128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_in_any_case_and_others_refused() {
        assert_eq!(parse_status("completed"), Ok(TaskStatus::Completed));
        assert_eq!(parse_status(" CANCELED "), Ok(TaskStatus::Canceled));
        assert!(parse_status("done").unwrap_err().contains("not a status"));
    }

    #[test]
    fn a_page_prints_as_an_aligned_table_or_json_lines() {
        let at = Timestamp::parse("2025-01-01T00:00:00").unwrap();
        let tasks = [
            TaskSummary::new("t-1", "s", "u", TaskStatus::Running, at, at, 2),
            TaskSummary::new("a\nb", "session-2", "u", TaskStatus::Failed, at, at, 0),
        ];
        let mut table = Vec::new();
        print_page(&mut table, &tasks, false, true).unwrap();
        let table = String::from_utf8(table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("TASK ID  SESSION    USER  STATUS   CREATED"));
        // The newline in the id is escaped: one row per task.
        assert!(lines[2].starts_with("a\\nb     session-2  u     Failed   2025-01-01T00:00:00"));
        assert!(lines[1].ends_with(" 2"));
        let mut json = Vec::new();
        print_page(&mut json, &tasks, true, true).unwrap();
        let json = String::from_utf8(json).unwrap();
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            serde_json::json!({
                "task_id": "t-1", "session_id": "s", "user_id": "u", "status": "Running",
                "created_at": "2025-01-01T00:00:00", "last_updated": "2025-01-01T00:00:00",
                "item_count": 2
            })
        );
        assert_eq!(json.lines().count(), 2);
    }

    #[test]
    fn age_is_compared_with_the_maximum() {
        let t = Timestamp::parse("2025-01-01T00:00:00").unwrap();
        let micros = t.utc_micros();
        let hour = Some(std::time::Duration::from_secs(3600));
        assert!(!is_older(micros + 3_600_000_000, t, hour));
        assert!(is_older(micros + 3_600_000_001, t, hour));
        assert!(!is_older(micros + 10 * 3_600_000_000, t, None));
    }
}
