//! Operation metrics as an operator sees them: the `metrics` example started as its own
//! process and scraped over HTTP while it works (with a plugin that loads and with one
//! that fails), `ta-persist bench --metrics` paying for a recorder, and the outcomes a
//! misbehaving plugin's calls are recorded with.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use ta_persistence::config::Config;
use ta_persistence::instrument::{FALLBACK_ACTIVE, OPERATION_DURATION, PLUGIN_INFO, PLUGIN_LOADS};
use ta_persistence::{ErrorKind, PersistenceFactory};
use ta_persistence_tests::cdylib::{host_example, plugin, ta_persist};
use ta_persistence_tests::redis_server::free_port;

const MEMORY_CLASS: &str = "MemoryTaskPersistenceManager";

/// The example's process, killed when the test ends, also when it fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(module: &Path, port: u16) -> Running {
    let child = Command::new(host_example("metrics"))
        .env("TA_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("TA_PERSISTENCE_MODULE", module)
        .env("TA_PERSISTENCE_CLASS", MEMORY_CLASS)
        .env_remove("TA_PERSISTENCE_STRICT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example starts");
    Running(child)
}

/// One `GET /metrics` over a plain connection; the body, or why there is none.
fn get_metrics(port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no end of headers")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("not a 200: {head}"));
    }
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    Ok(if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    })
}

fn dechunk(mut body: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("a truncated chunk")?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or("a short chunk")?);
        body = rest.get(size + 2..).ok_or("a chunk without its end")?;
    }
}

/// A sample: its metric name, its labels in order, and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of a Prometheus text page (label values here hold no `,` or `"`).
fn parse(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closed labels");
                    let labels = inner
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, Vec::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

fn has(sample: &Sample, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| sample.labels.iter().any(|(sk, sv)| sk == k && sv == v))
}

/// The value of the one sample of `name` with (at least) the labels `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && has(s, want))
        .collect();
    assert!(found.len() <= 1, "several {name} {want:?}: {found:?}");
    found.first().map(|s| s.value)
}

/// Scrapes until every operation of a round has been counted (the example works a
/// round every 50 ms), or fails after a while with the last page.
fn scrape_until_worked(port: u16, backend: &str) -> Vec<Sample> {
    let count = format!("{OPERATION_DURATION}_count");
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(page) = get_metrics(port) {
            let samples = parse(&page);
            let counted = |op, outcome| {
                value(
                    &samples,
                    &count,
                    &[
                        ("operation", op),
                        ("backend", backend),
                        ("outcome", outcome),
                    ],
                )
                .unwrap_or(0.0)
            };
            let all = [
                ("create", "ok"),
                ("load", "ok"),
                ("update", "ok"),
                ("delete", "ok"),
                ("delete", "not_found"),
            ];
            if all.iter().all(|(op, outcome)| counted(op, outcome) >= 2.0) {
                return samples;
            }
            last = page;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the example's metrics never showed its work; last page:\n{last}");
}

#[test]
fn a_scrape_shows_the_plugins_operations_and_load() {
    let module = plugin("ta-plugin-memory");
    let port = free_port();
    let _example = start(&module, port);
    let samples = scrape_until_worked(port, "ta-plugin-memory");

    let labels = [
        ("plugin", "ta-plugin-memory"),
        ("class", MEMORY_CLASS),
        (
            "interface_version",
            &ta_persistence::api::ffi::INTERFACE_VERSION.to_string(),
        ),
    ];
    assert_eq!(
        value(&samples, PLUGIN_INFO, &labels),
        Some(1.0),
        "{samples:?}"
    );
    let info = samples.iter().find(|s| s.name == PLUGIN_INFO).unwrap();
    let version = info
        .labels
        .iter()
        .find(|(k, _)| k == "version")
        .map(|(_, v)| v.as_str());
    assert!(version.is_some_and(|v| !v.is_empty()), "{info:?}");
    assert_eq!(
        value(&samples, PLUGIN_LOADS, &[("outcome", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, PLUGIN_LOADS, &[("outcome", "failed")]),
        None
    );
    assert_eq!(value(&samples, FALLBACK_ACTIVE, &[]), Some(0.0));
    // A real histogram: buckets up to +Inf, which holds every call.
    let create = [
        ("operation", "create"),
        ("backend", "ta-plugin-memory"),
        ("outcome", "ok"),
    ];
    let bucket = format!("{OPERATION_DURATION}_bucket");
    let inf = value(
        &samples,
        &bucket,
        &[create[0], create[1], create[2], ("le", "+Inf")],
    );
    let count = value(&samples, &format!("{OPERATION_DURATION}_count"), &create);
    assert!(inf.is_some() && inf == count, "{inf:?} vs {count:?}");
    let sum = value(&samples, &format!("{OPERATION_DURATION}_sum"), &create).unwrap();
    assert!(sum > 0.0, "{sum}");
    // Only the built-in store would be labelled `memory`.
    assert!(!samples
        .iter()
        .any(|s| s.name.starts_with(OPERATION_DURATION) && has(s, &[("backend", "memory")])));
}

#[test]
fn a_scrape_shows_the_fallback() {
    let missing = std::env::temp_dir().join(format!("no-such-plugin-{}.so", std::process::id()));
    let port = free_port();
    let _example = start(&missing, port);
    let samples = scrape_until_worked(port, "memory");
    assert_eq!(value(&samples, FALLBACK_ACTIVE, &[]), Some(1.0));
    assert_eq!(
        value(&samples, PLUGIN_LOADS, &[("outcome", "failed")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, PLUGIN_LOADS, &[("outcome", "ok")]), None);
    assert!(
        !samples.iter().any(|s| s.name == PLUGIN_INFO),
        "{samples:?}"
    );
}

/// Runs a small `bench --json` on the built-in store and returns its report.
fn bench(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(ta_persist())
        .args([
            "bench",
            "--tasks",
            "20",
            "--concurrency",
            "1",
            "--no-warmup",
            "--no-memory",
            "--json",
        ])
        .args(extra)
        .env_remove("TA_PERSISTENCE_MODULE")
        .env_remove("TA_PERSISTENCE_CLASS")
        .output()
        .expect("ta-persist runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[test]
fn bench_with_metrics_records_every_operation() {
    let with = bench(&["--metrics"]);
    let recorded = with["metrics"]["operations_recorded"]
        .as_u64()
        .expect("a count");
    // Each of 20 tasks is created, loaded, found, loaded and updated, and deleted.
    assert!(recorded >= 20 * 6, "{with:#}");
    let without = bench(&[]);
    assert!(without["metrics"].is_null(), "{without:#}");
}

/// What a recorder captured: a histogram's value is its number of samples.
fn captured(snapshotter: &Snapshotter) -> Vec<Sample> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let value = match value {
                DebugValue::Histogram(samples) => samples.len() as f64,
                DebugValue::Gauge(v) => v.0,
                DebugValue::Counter(n) => n as f64,
            };
            Sample {
                name: key.name().to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// The sum of the values of `name` with (at least) the labels `want`.
fn recorded(found: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    found
        .iter()
        .filter(|s| s.name == name && has(s, want))
        .map(|s| s.value)
        .sum()
}

#[test]
fn a_plugins_failures_are_recorded_by_kind() {
    let misbehaving = plugin("ta-fixture-misbehaving");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let hanging =
            Config::plugin(&misbehaving, "HangingManager").with_timeout(Duration::from_millis(100));
        let factory = PersistenceFactory::from_config(&hanging).unwrap();
        let store = factory.get_persistence_manager();
        let err = runtime.block_on(store.load("t1")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

        let panicking = Config::plugin(&misbehaving, "PanickingManager");
        let factory = PersistenceFactory::from_config(&panicking).unwrap();
        let store = factory.get_persistence_manager();
        let err = runtime.block_on(store.load("panic-later")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
        assert!(runtime.block_on(store.load("t1")).unwrap().is_none());
    });
    let found = captured(&snapshotter);
    let duration = |outcome| {
        recorded(
            &found,
            OPERATION_DURATION,
            &[
                ("operation", "load"),
                ("backend", "misbehaving"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(duration("timeout"), 1.0, "{found:?}");
    assert_eq!(duration("plugin"), 1.0, "{found:?}");
    assert_eq!(duration("ok"), 1.0, "{found:?}");
    let interface = ta_persistence::api::ffi::INTERFACE_VERSION.to_string();
    for class in ["HangingManager", "PanickingManager"] {
        let info = [
            ("plugin", "misbehaving"),
            ("version", "0.0.0"),
            ("interface_version", interface.as_str()),
            ("class", class),
        ];
        assert_eq!(recorded(&found, PLUGIN_INFO, &info), 1.0, "{found:?}");
    }
    assert_eq!(recorded(&found, PLUGIN_LOADS, &[("outcome", "ok")]), 2.0);
    assert_eq!(recorded(&found, FALLBACK_ACTIVE, &[]), 0.0);
}
