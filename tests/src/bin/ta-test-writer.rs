//! A child process for durability tests: loads a plugin library through the host's
//! loader and creates tasks with several callers at once, printing one line per answer
//! as soon as it has it: `ok <id>` (acknowledged), `lost <id>` (`AlreadyExists`) or
//! `error <id> <kind>`.
//!
//! `ta-test-writer <library> <class> <prefix> <count> <callers> <session>`: the plugin's
//! settings come from this process's `TA_*` variables; tasks `<prefix>-0 ..` are created
//! with session id `<session>`, handed out to the callers in order. It prints `ready`
//! once the store is constructed and waits for a line on standard input before it
//! starts, so a test can start several processes at the same moment.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ta_persistence::loader::load_plugin;
use ta_persistence::{AgentTask, ErrorKind, TaskPersistenceManager, Timestamp};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [library, class, prefix, count, callers, session] = args.as_slice() else {
        return Err(
            "usage: ta-test-writer <library> <class> <prefix> <count> <callers> <session>".into(),
        );
    };
    let count: u64 = count.parse().map_err(|e| format!("count: {e}"))?;
    let callers: usize = callers.parse().map_err(|e| format!("callers: {e}"))?;
    let vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("TA_"))
        .collect();
    let (_, manager) =
        load_plugin(&PathBuf::from(library), Some(class), &vars).map_err(|e| e.to_string())?;
    let manager: Arc<dyn TaskPersistenceManager> = Arc::new(manager);
    println!("ready");
    let mut go = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut go)
        .map_err(|e| e.to_string())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .map_err(|e| e.to_string())?;
    let next = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let (manager, next) = (Arc::clone(&manager), Arc::clone(&next));
            let (prefix, session) = (prefix.clone(), session.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let id = format!("{prefix}-{n}");
                    let task =
                        AgentTask::new(id.clone(), session.clone(), "u", Timestamp::now_utc());
                    // `println!` writes a whole line at once and flushes it at its end.
                    match manager.create(task).await {
                        Ok(()) => println!("ok {id}"),
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => println!("lost {id}"),
                        Err(e) => println!("error {id} {:?}", e.kind()),
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    Ok(())
}
