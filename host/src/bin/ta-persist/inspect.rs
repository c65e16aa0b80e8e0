//! `info`, `check` and `conformance`: what is loaded, whether a library would load, and
//! whether a backend keeps the contract.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use ta_persistence::api::conformance;
use ta_persistence::config::Config;
use ta_persistence::factory::load_plugin_within_deadline;
use ta_persistence::loader::{open_library_with, to_hex, LoadOptions, CHECKS};
use ta_persistence::{ActiveBackend, InMemoryPersistenceManager, TaskPersistenceManager};

use crate::scratch::{self, Placement};
use ta_persistence::DocumentManager;

/// `info`'s exit code when the configured plugin failed and the built-in store stands in.
const EXIT_FALLBACK: u8 = 9;

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The plugin library to check.
    library: PathBuf,
    /// Also construct this class (checks 7 and 8), with the current TA_* variables.
    #[arg(long)]
    class: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ConformanceArgs {
    /// The plugin library to test; omit it to test the built-in store.
    library: Option<PathBuf>,
    /// The manager class to construct (with the current TA_* variables).
    #[arg(long)]
    class: Option<String>,
    /// Only run cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Run against the store the TA_* variables configure, as it is: every task in it is
    /// removed (the suite clears the store before every case and at the end). Without
    /// it, the Redis plugin runs in a scratch prefix under TA_REDIS_PREFIX (removed at the
    /// end, also after a failure or Ctrl-C), and a plugin without such a namespace is
    /// refused.
    #[arg(long)]
    in_place: bool,
}

pub(crate) async fn info(args: InfoArgs) -> ExitCode {
    let factory = match super::ops::factory() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let health = factory.get_persistence_manager().health().await;
    let health_text = match &health {
        Ok(()) => "ok".to_owned(),
        Err(err) => format!("failing: {}", err.report()),
    };
    let active = factory.active_backend();
    // The pin, if one is configured (the factory was just built from the same
    // environment, so it parses).
    let pin = Config::from_env()
        .ok()
        .and_then(|c| c.module_sha256)
        .map(|d| to_hex(&d));
    let warnings: Vec<String> = factory.warnings().iter().map(ToString::to_string).collect();
    if args.json {
        let mut out = json!({
            "backend": active.kind(),
            "health": health_text,
            "pinned_sha256": pin,
            "warnings": warnings,
        });
        match active {
            ActiveBackend::Plugin {
                path,
                class,
                plugin,
                version,
                classes,
            } => {
                out["path"] = json!(path.display().to_string());
                out["class"] = json!(class);
                out["plugin"] = json!(plugin);
                out["version"] = json!(version);
                out["classes"] = json!(classes);
            }
            ActiveBackend::Fallback {
                path,
                class,
                reason,
            } => {
                out["path"] = json!(path.display().to_string());
                out["class"] = json!(class);
                out["reason"] = json!(reason.to_string());
                out["failed_check"] = json!(reason.step());
            }
            _ => {}
        }
        println!("{out:#}");
    } else {
        match active {
            ActiveBackend::BuiltIn => {
                println!("backend:  built-in in-memory store (TA_PERSISTENCE_MODULE is not set)")
            }
            ActiveBackend::Plugin {
                path,
                class,
                plugin,
                version,
                classes,
            } => {
                // Names come from the plugin: escaped, so they cannot drive the terminal.
                println!(
                    "backend:  plugin {} {}",
                    plugin.escape_debug(),
                    version.escape_debug()
                );
                println!("library:  {}", path.display());
                println!("class:    {}", class.escape_debug());
                println!("exports:  {}", escaped_list(classes));
            }
            ActiveBackend::Fallback {
                path,
                class,
                reason,
            } => {
                println!(
                    "backend:  built-in in-memory store (FALLBACK: the configured plugin failed)"
                );
                println!("library:  {}", path.display());
                let class = class.as_deref().map(str::escape_debug);
                match class {
                    Some(class) => println!("class:    {class}"),
                    None => println!("class:    (not set)"),
                }
                println!("reason:   {reason}");
                println!(
                    "          (check {} of {}: {})",
                    reason.step(),
                    CHECKS.len(),
                    CHECKS[usize::from(reason.step()) - 1]
                );
            }
            _ => println!("backend:  {}", active.kind()),
        }
        if let Some(pin) = &pin {
            println!("pinned:   sha256 {pin}");
        }
        for warning in &warnings {
            println!("warning:  {}", warning.escape_debug());
        }
        println!("health:   {health_text}");
    }
    if health.is_err() {
        ExitCode::from(super::ops::EXIT_BACKEND)
    } else if active.is_fallback() {
        // Serving, but not with the configured backend: a readiness probe should notice.
        ExitCode::from(EXIT_FALLBACK)
    } else {
        ExitCode::SUCCESS
    }
}

/// Names a plugin supplies, escaped (they must not drive the terminal), comma-separated.
fn escaped_list(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| n.escape_debug().to_string()).collect();
    names.join(", ")
}

fn step_line(step: usize, outcome: Result<String, String>) {
    let name = CHECKS[step - 1];
    match outcome {
        Ok(detail) if detail.is_empty() => println!("  [pass] {step}. {name}"),
        Ok(detail) => println!("  [pass] {step}. {name}: {detail}"),
        Err(reason) => println!("  [FAIL] {step}. {name}: {reason}"),
    }
}

pub(crate) async fn check(args: CheckArgs) -> ExitCode {
    println!("checking {}", args.library.display());
    // Hashed, so that step 1 shows the value to pin the file with.
    let options = LoadOptions::default().with_hash(true);
    let (lib, exposures) = match open_library_with(&args.library, &options) {
        Ok(opened) => opened,
        Err(err) => {
            let failed = usize::from(err.step());
            for step in 1..failed {
                step_line(step, Ok(String::new()));
            }
            step_line(failed, Err(err.to_string()));
            for step in failed + 1..=CHECKS.len() {
                println!("  [skip] {step}. {}", CHECKS[step - 1]);
            }
            return ExitCode::from(1);
        }
    };
    // The library passed every check up to the class; the interface version is the
    // step just before the panic-strategy check. Plugin-supplied names are escaped: they
    // must not drive the terminal.
    let class_step = CHECKS.len() - 1;
    let construct_step = CHECKS.len();
    let version_step = class_step - 2;
    for step in 1..class_step {
        let detail = if step == 1 {
            // The value to pin it with (TA_PERSISTENCE_MODULE_SHA256).
            let digest = lib.sha256().map(to_hex).unwrap_or_default();
            let mut detail = format!("sha256 {digest}");
            for exposure in &exposures {
                detail.push_str(&format!("; warning: {exposure}"));
            }
            detail
        } else if step == version_step {
            format!(
                "version {} ({} {})",
                lib.interface_version(),
                lib.name().escape_debug(),
                lib.version().escape_debug()
            )
        } else {
            String::new()
        };
        step_line(step, Ok(detail));
    }
    let Some(class) = args.class else {
        println!("  exports: {}", escaped_list(&lib.classes()));
        println!(
            "  [skip] {class_step}-{construct_step}: pass --class NAME to construct a manager"
        );
        return ExitCode::SUCCESS;
    };
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    // Built as the factory builds it: on a thread of its own, under the deadline, so a
    // constructor or a health check that never returns cannot hang the check itself.
    config.module = Some(args.library.clone());
    config.plugin_dir = None; // the path given is used as it is, like the checks above
    config.class = Some(class.clone());
    match load_plugin_within_deadline(&config)
        .await
        .map(|(_, manager)| manager)
    {
        Ok(manager) => {
            step_line(class_step, Ok(class.escape_debug().to_string()));
            step_line(construct_step, Ok(String::new()));
            match manager.health().await {
                Ok(()) => println!("  health: ok"),
                Err(err) => println!("  health: failing: {}", err.report()),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            let failed = usize::from(err.step());
            if failed == construct_step {
                step_line(class_step, Ok(class.escape_debug().to_string()));
            }
            step_line(failed, Err(err.to_string()));
            ExitCode::from(1)
        }
    }
}

pub(crate) async fn conformance(args: ConformanceArgs) -> ExitCode {
    let (placement, raw): (Placement, Arc<dyn DocumentManager>) = match &args.library {
        None => (
            Placement::Fresh,
            Arc::new(InMemoryPersistenceManager::new()),
        ),
        Some(path) => {
            let config = match Config::from_env() {
                Ok(c) => c,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(1);
                }
            };
            let (placement, vars) = match scratch::place(
                Some(path),
                &config.vars,
                args.in_place,
                "conformance clears its store before every case",
            ) {
                Ok(placed) => placed,
                Err(refused) => {
                    eprintln!("error: {refused}");
                    return ExitCode::from(super::ops::EXIT_INVALID);
                }
            };
            match ta_persistence::loader::load_plugin(path, args.class.as_deref(), &vars) {
                Ok((_, manager)) => (placement, Arc::new(manager)),
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    if placement == Placement::InPlace {
        eprintln!("warning: every task in the configured store is being removed");
    }
    let store = scratch::guard(&placement, &raw, "the suite's tasks");
    let report = conformance::run_suite(
        || {
            let store = Arc::clone(&store);
            async move {
                // Each case starts from an empty store.
                let _ = store.clear().await;
                store
            }
        },
        args.filter.as_deref(),
    )
    .await;
    let cleaned = scratch::clean_up(&placement, raw.as_ref(), true).await;
    println!("{report}");
    if scratch::interrupted() {
        ExitCode::from(scratch::EXIT_INTERRUPTED)
    } else if !report.is_success() {
        ExitCode::from(1)
    } else if !cleaned {
        ExitCode::from(super::ops::EXIT_BACKEND)
    } else {
        ExitCode::SUCCESS
    }
}
