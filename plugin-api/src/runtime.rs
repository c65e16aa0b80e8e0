//! [`PluginRuntime`]: the tokio runtime a plugin with I/O owns, and the bridge from the
//! host's await to work running there (feature `runtime`).
//!
//! A plugin library links its own copy of tokio, which cannot see the host's runtime (if
//! the host uses tokio at all), so a plugin that needs tokio, or that makes blocking
//! calls, owns a small runtime. Each operation is spawned there and the future handed to
//! the host only awaits the spawned task's `JoinHandle`, which any executor can poll: the
//! host's executor never matters, and the host's workers never block on the plugin's I/O.
//!
//! ```
//! use ta_persistence_api::runtime::PluginRuntime;
//! use ta_persistence_api::{Operation, PersistenceError, Result};
//!
//! struct Store {
//!     dir: std::path::PathBuf,
//!     runtime: PluginRuntime, // last: dropped after what runs on it
//! }
//!
//! impl Store {
//!     // The body of a trait method: the blocking read runs on the plugin's threads.
//!     async fn size(&self, task_id: &str) -> Result<u64> {
//!         let path = self.dir.join(task_id);
//!         let id = task_id.to_owned();
//!         self.runtime
//!             .run_blocking(Operation::Load, task_id, move || {
//!                 let meta = std::fs::metadata(path)
//!                     .map_err(|e| PersistenceError::backend(Operation::Load, id, e))?;
//!                 Ok(meta.len())
//!             })
//!             .await
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! let store = Store {
//!     dir: std::path::PathBuf::from("."),
//!     runtime: PluginRuntime::builder("ta-example").workers(1).build()?,
//! };
//! // The host awaits it on its own executor (here a current-thread tokio runtime).
//! let host = tokio::runtime::Builder::new_current_thread().build()?;
//! let err = host.block_on(store.size("no-such-file")).unwrap_err();
//! assert!(err.report().contains("no-such-file"));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::{JoinError, JoinHandle};

use crate::error::{Operation, PersistenceError, Result};

/// Worker threads unless [`PluginRuntimeBuilder::workers`] says otherwise: enough for a
/// connection to be driven while a reply is decoded; more would only compete with the
/// host for the cores.
pub const DEFAULT_WORKERS: usize = 2;

/// Threads the runtime may start for blocking calls unless
/// [`PluginRuntimeBuilder::max_blocking_threads`] says otherwise.
pub const DEFAULT_MAX_BLOCKING_THREADS: usize = 64;

/// How to build a [`PluginRuntime`]; from [`PluginRuntime::builder`].
#[derive(Debug, Clone)]
pub struct PluginRuntimeBuilder {
    name: String,
    workers: usize,
    max_blocking: usize,
}

impl PluginRuntimeBuilder {
    /// The number of async worker threads (at least one; 0 is read as 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The most threads kept for [`PluginRuntime::run_blocking`] calls at once (at least
    /// one); further calls queue.
    pub fn max_blocking_threads(mut self, threads: usize) -> Self {
        self.max_blocking = threads.max(1);
        self
    }

    /// Starts the runtime's threads, named after the builder's name (so they can be told
    /// apart from the host's in a debugger or `top -H`).
    pub fn build(self) -> std::io::Result<PluginRuntime> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(self.workers)
            .max_blocking_threads(self.max_blocking)
            .thread_name(self.name.clone())
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(PluginRuntime {
            runtime: Some(runtime),
            handle,
            name: self.name,
        })
    }
}

/// A plugin's own multi-thread tokio runtime.
///
/// - [`run`](Self::run) runs a future there and [`run_blocking`](Self::run_blocking) a
///   blocking call; both return a future that any executor can await, and turn a panic
///   or a cancellation into a [`PersistenceError`] naming the operation.
/// - [`wait_for`](Self::wait_for) waits for a future synchronously, with a time limit:
///   for a constructor ([`FromConfig`](crate::ffi::FromConfig) is not async), which may be
///   called on a thread inside an async runtime where `block_on` is forbidden.
/// - Dropping it never blocks and never panics, also inside an async context: the
///   workers are told to stop and left to finish on their own; work still running is
///   cancelled, and its awaiting callers get an error.
///
/// Keep it as the **last** field of your store, so that whatever runs on it (a
/// connection and its driver task) is dropped first.
pub struct PluginRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
    name: String,
}

impl fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("name", &self.name)
            .field("workers", &self.handle.metrics().num_workers())
            .finish()
    }
}

impl PluginRuntime {
    /// A builder with [`DEFAULT_WORKERS`] workers whose threads are named `name`.
    pub fn builder(name: impl Into<String>) -> PluginRuntimeBuilder {
        PluginRuntimeBuilder {
            name: name.into(),
            workers: DEFAULT_WORKERS,
            max_blocking: DEFAULT_MAX_BLOCKING_THREADS,
        }
    }

    /// A runtime with the default settings and threads named `name`.
    pub fn new(name: impl Into<String>) -> std::io::Result<Self> {
        Self::builder(name).build()
    }

    /// The name of its threads.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle to the runtime, to spawn on it from elsewhere (a handle does not keep
    /// the runtime alive: after the runtime is dropped, spawned work is cancelled).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a future on the runtime and returns its `JoinHandle` (for work that is not
    /// one operation, such as a background task).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs operation `op` on the runtime: `future` starts at once, and the returned
    /// future (which borrows nothing) waits for its result. A panic, or the runtime's
    /// shutdown before it finishes, is a [`PersistenceError::Plugin`] of `op` and `id`.
    pub fn run<T, F>(
        &self,
        op: Operation,
        id: impl Into<String>,
        future: F,
    ) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let id = id.into();
        let task = self.handle.spawn(future);
        async move { task.await.unwrap_or_else(|e| Err(joined(op, &id, e))) }
    }

    /// [`run`](Self::run) with a time limit: if `future` does not finish within `limit`
    /// it is cancelled and the result is a [`PersistenceError::Timeout`] of `op` and `id`
    /// (for a write, with an unknown outcome: it may have been applied before the limit).
    pub fn run_within<T, F>(
        &self,
        op: Operation,
        id: impl Into<String>,
        limit: Duration,
        future: F,
    ) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let id = id.into();
        // The limit is kept by the SDK's deadline thread, not a tokio timer: a timer per
        // call would also wake one of this runtime's idle workers each time.
        let task = self
            .handle
            .spawn(async move { crate::deadline::within(limit, future).await.ok() });
        async move {
            match task.await {
                Ok(Some(result)) => result,
                Ok(None) => Err(PersistenceError::timeout(op, id, limit)),
                Err(e) => Err(joined(op, &id, e)),
            }
        }
    }

    /// Runs a blocking call (file or socket I/O, a synchronous client) on the runtime's
    /// blocking threads; the returned future waits for its result, with the same errors as
    /// [`run`](Self::run). The call cannot be interrupted once it has started: after the
    /// runtime is dropped it runs to its end, but nobody waits for it.
    pub fn run_blocking<T, F>(
        &self,
        op: Operation,
        id: impl Into<String>,
        call: F,
    ) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let id = id.into();
        let task = self.handle.spawn_blocking(call);
        async move { task.await.unwrap_or_else(|e| Err(joined(op, &id, e))) }
    }

    /// Runs `future` on the runtime and waits for its output on the calling thread, for
    /// at most `limit`; `None` if it did not finish in time (it is then cancelled) or
    /// panicked. Never calls `block_on`, so it may be called from a thread that is inside
    /// an async runtime (the host constructs plugins on its own thread, but a test that
    /// links a plugin may not); it must not be called from this runtime's own workers.
    pub fn wait_for<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
        limit: Duration,
    ) -> Option<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let task = self.handle.spawn(async move {
            // The receiver is gone only when the caller stopped waiting.
            let _ = tx.send(future.await);
        });
        let outcome = rx.recv_timeout(limit).ok();
        if outcome.is_none() {
            task.abort();
        }
        outcome
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        // `shutdown_background` neither waits for the workers nor panics in an async
        // context, where dropping a `Runtime` the ordinary way would.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The error of an operation whose task did not finish: it panicked, or the runtime shut
/// down first.
fn joined(op: Operation, id: &str, err: JoinError) -> PersistenceError {
    let why = if err.is_panic() {
        let payload = err.into_panic();
        format!(
            "{} panicked on the plugin runtime: {}",
            op.as_str(),
            crate::ffi::panic_message(payload.as_ref())
        )
    } else {
        format!(
            "{} was cancelled: the plugin runtime is shutting down",
            op.as_str()
        )
    };
    PersistenceError::plugin(op, id, why)
}

#[cfg(test)]
mod tests {
    // An executor that is not tokio: polls on this thread, parks in between.
    use futures::executor::block_on;

    use super::*;
    use crate::error::ErrorKind;

    fn runtime() -> PluginRuntime {
        PluginRuntime::builder("ta-test-rt")
            .workers(1)
            .build()
            .unwrap()
    }

    #[test]
    fn a_future_runs_on_the_named_threads_and_any_executor_awaits_it() {
        let rt = runtime();
        let name = block_on(rt.run(Operation::Load, "t", async {
            Ok(std::thread::current().name().map(str::to_owned))
        }))
        .unwrap();
        assert_eq!(name.as_deref(), Some("ta-test-rt"));
        assert_eq!(rt.handle().metrics().num_workers(), 1);
    }

    #[test]
    fn a_blocking_call_runs_off_the_callers_thread_and_returns_its_error() {
        let rt = runtime();
        let caller = std::thread::current().id();
        let elsewhere = block_on(rt.run_blocking(Operation::Load, "t", {
            move || Ok(std::thread::current().id() != caller)
        }))
        .unwrap();
        assert!(elsewhere);
        let err = block_on(rt.run_blocking(Operation::Delete, "t", || {
            Err::<(), _>(PersistenceError::not_found(Operation::Delete, "t"))
        }))
        .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[tokio::test]
    async fn panics_become_plugin_errors_naming_the_operation_and_the_runtime_goes_on() {
        let rt = runtime();
        let err = rt
            .run(Operation::Update, "task-9", async {
                if true {
                    panic!("boom in a future");
                }
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Plugin);
        assert_eq!(err.operation(), Operation::Update);
        assert_eq!(err.id(), "task-9");
        assert!(
            err.report().contains("boom in a future"),
            "{}",
            err.report()
        );
        let err = rt
            .run_blocking(Operation::Create, "task-8", || -> Result<()> {
                panic!("boom in a blocking call")
            })
            .await
            .unwrap_err();
        assert_eq!(err.operation(), Operation::Create);
        assert!(
            err.report().contains("boom in a blocking call"),
            "{}",
            err.report()
        );
        assert_eq!(
            rt.run(Operation::Health, "", async { Ok(5) })
                .await
                .unwrap(),
            5
        );
    }

    #[tokio::test]
    async fn a_slow_operation_is_a_timeout_of_its_operation() {
        let rt = runtime();
        let err = rt
            .run_within(
                Operation::Load,
                "slow",
                Duration::from_millis(10),
                std::future::pending::<Result<()>>(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, PersistenceError::Timeout { op: Operation::Load, ref id, after, .. }
                if id == "slow" && after == Duration::from_millis(10)),
            "{err:?}"
        );
        let quick = rt.run_within(Operation::Load, "q", Duration::from_secs(60), async {
            Ok(1)
        });
        assert_eq!(quick.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn dropping_it_inside_async_code_cancels_pending_work_with_an_error() {
        let rt = runtime();
        let pending = rt.run(
            Operation::Load,
            "never",
            std::future::pending::<Result<()>>(),
        );
        drop(rt); // would panic if it dropped the runtime the ordinary way
        let err = pending.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Plugin);
        assert!(err.report().contains("shutting down"), "{}", err.report());
    }

    #[test]
    fn dropping_it_does_not_wait_for_a_blocking_call() {
        let rt = runtime();
        let (release, blocked) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let call = rt.run_blocking(Operation::Clear, "", move || {
            let _ = started_tx.send(());
            // Holds its thread until the test releases it.
            let _ = blocked.recv();
            Ok(())
        });
        started.recv().unwrap();
        // Drop on another thread: if the drop waited for the call, `dropped` would never
        // arrive while the call is still held.
        let (dropped_tx, dropped) = mpsc::channel();
        std::thread::spawn(move || {
            drop(rt);
            let _ = dropped_tx.send(());
        });
        let returned = dropped.recv_timeout(Duration::from_secs(30));
        release.send(()).unwrap();
        assert!(
            returned.is_ok(),
            "dropping the runtime waited for a blocking call"
        );
        drop(call);
    }

    #[test]
    fn wait_for_returns_the_output_or_none_after_the_limit() {
        let rt = runtime();
        assert_eq!(rt.wait_for(async { 7 }, Duration::from_secs(30)), Some(7));
        let never = std::future::pending::<()>();
        assert_eq!(rt.wait_for(never, Duration::from_millis(20)), None);
    }

    #[tokio::test]
    async fn wait_for_works_on_a_thread_inside_an_async_runtime() {
        let rt = runtime();
        assert_eq!(rt.wait_for(async { 3 }, Duration::from_secs(30)), Some(3));
    }
}
