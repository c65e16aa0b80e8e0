//! `plugins`: lists the plugin libraries in a directory, each with what it is and whether
//! it passes the loader's checks, without risking this process on any of them.
//!
//! Checks 1 and 2 (the file, and its headers) only read the file, so they run here: a
//! damaged file is reported as such and never reaches the dynamic loader. A file that
//! passes them is then opened in a child process (this executable, re-invoked with the
//! hidden `probe-library` command), because opening a library runs its static
//! initialisers: one that crashes, hangs or exits takes only the child with it.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use ta_persistence::config::{
    has_library_suffix, parse_timeout, ConfigError, DEFAULT_TIMEOUT, PLUGIN_DIR_VAR, TIMEOUT_VAR,
};
use ta_persistence::loader::{check_file, open_library_with, to_hex, LoadError, LoadOptions};

/// Exit code when the directory is not given or cannot be read.
const EXIT_NO_DIR: u8 = 2;

#[derive(Debug, Args)]
pub(crate) struct PluginsArgs {
    /// The directory to list (default: TA_PERSISTENCE_PLUGIN_DIR).
    dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// The library to open.
    library: PathBuf,
}

/// The hidden command the lister runs in a child process: checks 1 to 8 on one library,
/// answered as one JSON object on stdout.
pub(crate) async fn probe(args: ProbeArgs) -> ExitCode {
    let options = LoadOptions::default().with_hash(true);
    let answer = match open_library_with(&args.library, &options) {
        Ok((lib, exposures)) => json!({
            "status": "ok",
            "plugin": lib.name(),
            "version": lib.version(),
            "interface_version": lib.interface_version(),
            "classes": lib.classes(),
            "sha256": lib.sha256().map(to_hex),
            "exposures": exposures.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        Err(err) => refusal(&err),
    };
    println!("{answer}");
    ExitCode::SUCCESS
}

/// A failed check as the listing shows it.
fn refusal(err: &LoadError) -> Value {
    let status = match err {
        LoadError::Damaged { .. } => "damaged",
        LoadError::NotASharedLibrary { .. } => "not-a-library",
        _ => "refused",
    };
    let mut out =
        json!({ "status": status, "failed_check": err.step(), "reason": err.to_string() });
    // Refused for its interface version, it is still a plugin: say which version it has.
    if let LoadError::InterfaceVersion { found, .. } = err {
        out["interface_version"] = json!(found);
    }
    out
}

/// How long a child may take to open one library: `TA_PERSISTENCE_TIMEOUT_MS`, parsed
/// as strictly as the host parses it.
fn probe_deadline() -> Result<Duration, ConfigError> {
    match std::env::var(TIMEOUT_VAR) {
        Ok(v) => parse_timeout(TIMEOUT_VAR, &v),
        Err(_) => Ok(DEFAULT_TIMEOUT),
    }
}

/// Opens `path` in a child process and returns its answer, or what became of the child.
async fn probe_in_child(path: &Path, deadline: Duration) -> Value {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            return json!({ "status": "unchecked", "reason": format!("cannot find this executable to run the check in a child process: {err}") })
        }
    };
    let child = tokio::process::Command::new(exe)
        .arg("probe-library")
        .arg(path)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A child that misses its deadline is killed when its future is dropped.
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(err) => {
            return json!({ "status": "unchecked", "reason": format!("cannot start a child process to check it: {err}") })
        }
    };
    let out = match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(err)) => {
            return json!({ "status": "unchecked", "reason": format!("lost the child process checking it: {err}") })
        }
        Err(_) => {
            return json!({ "status": "hung", "reason": format!("opening it did not finish within {} ms ({TIMEOUT_VAR}); its initialisers may hang", deadline.as_millis()) })
        }
    };
    let answer = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["status"].is_string());
    match answer {
        Some(answer) if out.status.success() => answer,
        _ => {
            json!({ "status": "crashed", "reason": format!("opening it ended the process that tried ({}); its initialisers misbehave", describe(&out.status)) })
        }
    }
}

fn describe(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}

pub(crate) async fn list(args: PluginsArgs) -> ExitCode {
    let Some(dir) = args
        .dir
        .or_else(|| std::env::var_os(PLUGIN_DIR_VAR).map(PathBuf::from))
    else {
        eprintln!("error: no directory to list: give one, or set {PLUGIN_DIR_VAR}");
        return ExitCode::from(EXIT_NO_DIR);
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) => {
            eprintln!("error: cannot read {}: {err}", dir.display());
            return ExitCode::from(EXIT_NO_DIR);
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    let (candidates, ignored): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.into_iter().partition(|p| has_library_suffix(p));
    let deadline = match probe_deadline() {
        Ok(deadline) => deadline,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    let mut listed = Vec::new();
    for path in &candidates {
        // Checks 1 and 2 read the file and never run it: safe in this process.
        let mut entry = match check_file(path, &LoadOptions::default()) {
            Ok(_) => probe_in_child(path, deadline).await,
            Err(err) => refusal(&err),
        };
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
        entry["file"] = json!(file);
        entry["path"] = json!(path.display().to_string());
        listed.push(entry);
    }
    let passing = listed.iter().filter(|e| e["status"] == "ok").count();
    let ignored: Vec<String> = ignored
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .collect();
    if args.json {
        let out = json!({
            "dir": dir.display().to_string(),
            "libraries": listed,
            "ignored": ignored,
        });
        println!("{out:#}");
    } else {
        print_text(&dir, &listed, passing, ignored.len());
    }
    if passing == listed.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The text listing. Names come from the files and the plugins: escaped, so that they
/// cannot drive the terminal.
fn print_text(dir: &Path, listed: &[Value], passing: usize, ignored: usize) {
    let text = |v: &Value| v.as_str().unwrap_or("?").escape_debug().to_string();
    println!("plugins in {}", dir.display().to_string().escape_debug());
    for entry in listed {
        let file = text(&entry["file"]);
        let status = entry["status"].as_str().unwrap_or("?");
        if status == "ok" {
            let classes: Vec<String> = entry["classes"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            println!(
                "  {file}: ok: {} {}, interface {}, classes: {}",
                text(&entry["plugin"]),
                text(&entry["version"]),
                entry["interface_version"],
                classes.join(", ")
            );
            println!("      sha256 {}", text(&entry["sha256"]));
            for exposure in entry["exposures"].as_array().into_iter().flatten() {
                println!("      warning: {}", text(exposure));
            }
        } else {
            let check = match entry["failed_check"].as_u64() {
                Some(step) => format!(" (check {step})"),
                None => String::new(),
            };
            println!(
                "  {file}: {}{check}: {}",
                status.to_uppercase(),
                text(&entry["reason"])
            );
        }
    }
    println!(
        "{} libraries, {passing} pass the loader's checks; {ignored} other files ignored",
        listed.len()
    );
}
