//! `bench --compare FILE`: this run's figures beside those of an earlier `bench --json`
//! result, phase by phase, as ratios, so two builds or two backends can be compared in
//! one sitting (run the baseline, then the candidate, on the same machine).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::workload::RunResult;

/// The most a baseline file may hold: a `--json` result is a few kilobytes.
const MAX_BASELINE_BYTES: u64 = 16 << 20;

/// An earlier result, read from a `bench --json` file.
#[derive(Debug)]
pub(crate) struct Baseline {
    path: PathBuf,
    saved: Saved,
}

#[derive(Debug, Deserialize)]
struct Saved {
    backend: String,
    tasks: usize,
    runs: Vec<SavedRun>,
}

#[derive(Debug, Deserialize)]
struct SavedRun {
    concurrency: usize,
    result: SavedResult,
}

#[derive(Debug, Deserialize)]
struct SavedResult {
    phases: Vec<SavedPhase>,
}

#[derive(Debug, Deserialize)]
struct SavedPhase {
    phase: String,
    ops_per_sec: f64,
}

/// One phase of this run beside the baseline's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compared {
    /// The concurrency of both runs.
    pub(crate) concurrency: usize,
    /// The phase.
    pub(crate) phase: &'static str,
    /// This run's ops/s.
    pub(crate) now: f64,
    /// The baseline's ops/s, if it ran this phase at this concurrency.
    pub(crate) then: Option<f64>,
}

impl Compared {
    /// This run's ops/s over the baseline's.
    pub(crate) fn ratio(&self) -> Option<f64> {
        self.then.filter(|t| *t > 0.0).map(|t| self.now / t)
    }
}

impl Baseline {
    /// Reads a `bench --json` result; the error names the file and what is wrong.
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the baseline {shown}: {e}"))?
            .len();
        if size > MAX_BASELINE_BYTES {
            return Err(format!(
                "the baseline {shown} holds {size} bytes: not a `bench --json` result"
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the baseline {shown}: {e}"))?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, String> {
        let saved: Saved = serde_json::from_str(text).map_err(|e| {
            format!(
                "the baseline {} is not a `bench --json` result: {e}",
                path.display()
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            saved,
        })
    }

    fn ops(&self, concurrency: usize, phase: &str) -> Option<f64> {
        self.saved
            .runs
            .iter()
            .find(|r| r.concurrency == concurrency)?
            .result
            .phases
            .iter()
            .find(|p| p.phase == phase)
            .map(|p| p.ops_per_sec)
    }

    /// Every phase of `runs` beside the baseline's figure for it.
    pub(crate) fn compare<'a>(
        &self,
        runs: impl IntoIterator<Item = &'a RunResult>,
    ) -> Vec<Compared> {
        runs.into_iter()
            .flat_map(|run| {
                run.phases.iter().map(move |p| Compared {
                    concurrency: run.concurrency,
                    phase: p.phase.as_str(),
                    now: p.ops_per_sec,
                    then: self.ops(run.concurrency, p.phase.as_str()),
                })
            })
            .collect()
    }

    /// The comparison as the JSON report's `compare` field.
    pub(crate) fn to_json(&self, compared: &[Compared]) -> Value {
        json!({
            "file": self.path.display().to_string(),
            "backend": self.saved.backend,
            "tasks": self.saved.tasks,
            "phases": compared.iter().map(|c| json!({
                "concurrency": c.concurrency,
                "phase": c.phase,
                "ops_per_sec": c.now,
                "baseline_ops_per_sec": c.then,
                "ratio": c.ratio(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The comparison as a table.
    pub(crate) fn print(&self, backend: &str, compared: &[Compared]) {
        println!();
        println!(
            "compared with {} (backend {}, {} tasks)",
            self.path.display(),
            self.saved.backend.escape_debug(),
            self.saved.tasks
        );
        println!(
            "{:>4} {:<8} {:>12} {:>12} {:>8}",
            "C", "phase", "ops/s", "baseline", "ratio"
        );
        for c in compared {
            let then = c.then.map_or_else(|| "-".to_owned(), |t| format!("{t:.0}"));
            let ratio = c
                .ratio()
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
            println!(
                "{:>4} {:<8} {:>12.0} {:>12} {:>8}",
                c.concurrency, c.phase, c.now, then, ratio
            );
        }
        println!("(ratio = {backend} ops/s now / baseline ops/s; run both on the same machine, in one sitting)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workload::{Phase, PhaseResult};

    fn run(concurrency: usize, figures: &[(Phase, f64)]) -> RunResult {
        RunResult {
            backend: "memory".to_owned(),
            tasks: 10,
            concurrency,
            phases: figures
                .iter()
                .map(|&(phase, ops_per_sec)| PhaseResult {
                    phase,
                    ops: 10,
                    ops_per_sec,
                    p50_us: 1.0,
                    p99_us: 2.0,
                })
                .collect(),
            memory: None,
        }
    }

    #[test]
    fn a_saved_result_is_read_back_and_each_phase_gets_its_ratio() {
        // What `bench --json` writes for the same runs, then read back as a baseline.
        let before = [run(1, &[(Phase::Create, 100.0), (Phase::Load, 400.0)])];
        let saved = json!({
            "backend": "memory", "tasks": 10, "warmup": true, "memory": null,
            "runs": before.iter().map(|r| json!({"concurrency": r.concurrency, "result": r, "builtin": null})).collect::<Vec<_>>(),
        });
        let baseline = Baseline::parse(Path::new("before.json"), &saved.to_string()).unwrap();

        let now = [
            run(1, &[(Phase::Create, 250.0), (Phase::Load, 100.0)]),
            run(64, &[(Phase::Create, 900.0)]),
        ];
        let compared = baseline.compare(&now);
        let ratios: Vec<_> = compared
            .iter()
            .map(|c| (c.concurrency, c.phase, c.ratio()))
            .collect();
        assert_eq!(
            ratios,
            [
                (1, "create", Some(2.5)),
                (1, "load", Some(0.25)),
                (64, "create", None),
            ]
        );
        let out = baseline.to_json(&compared);
        assert_eq!(out["phases"][0]["ratio"], 2.5);
        assert_eq!(out["phases"][2]["baseline_ops_per_sec"], Value::Null);
    }

    #[test]
    fn a_file_that_is_not_a_result_is_refused_naming_it() {
        let err = Baseline::parse(Path::new("notes.txt"), "{\"hello\": 1}").unwrap_err();
        assert!(
            err.contains("notes.txt") && err.contains("not a `bench --json` result"),
            "{err}"
        );
    }
}
