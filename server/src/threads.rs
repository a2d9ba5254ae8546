//! Which threads do what, and at what CPU priority.
//!
//! The server's cores go to two kinds of work: the network (tokio's
//! threads: HTTP/2, TLS, protobuf, admission and refusals) and inference
//! (the inference thread and ONNX Runtime's intra-op threads). When both
//! want a core, inference should win: under overload every core-second spent
//! reading a request that will be refused is taken from the batches that
//! answer the admitted ones (docs/benchmarks.md, "Network threads at a lower
//! priority"). So on Linux the network threads run `--network-nice` steps
//! below the process's own priority, and the inference threads at it.
//!
//! A thread inherits its creator's nice value, and an unprivileged process
//! cannot raise a thread's priority again. ONNX Runtime creates its
//! intra-op threads inside the thread that builds a session, so sessions
//! must never be built on a network thread: every model load, and the
//! inference thread itself, run on the [`ModelLoader`] thread, which is
//! started before the network threads and never lowered.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::mpsc,
};

use crate::error::ServerError;

/// The tokio runtime for the network, its threads (workers and blocking
/// pool alike) `network_nice` steps below the calling thread's priority.
/// 0 leaves them at it.
pub fn network_runtime(network_nice: u8) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if network_nice > 0 && cfg!(target_os = "linux") {
        // An absolute target, not a step from the new thread's own value: a
        // blocking thread started by a worker inherits the worker's lowered
        // value, and stepping again would lower it twice.
        let target = (current_thread_nice()? + i32::from(network_nice)).min(MAX_NICE);
        builder.on_thread_start(move || {
            if let Err(error) = set_current_thread_nice(target) {
                tracing::warn!(%error, nice = target, "cannot lower a network thread's priority");
            }
        });
    } else if network_nice > 0 {
        tracing::info!(network_nice, "network threads keep inference's priority: per-thread priorities are Linux only");
    }
    builder.build()
}

/// The lowest priority Linux has (the highest nice value).
const MAX_NICE: i32 = 19;

/// Sets the calling thread's nice value, leaving the process's other
/// threads as they are. Only raising it (lowering the priority) needs no
/// privilege.
#[cfg(target_os = "linux")]
pub fn set_current_thread_nice(nice: i32) -> std::io::Result<()> {
    // On Linux the nice value is per thread, and PRIO_PROCESS with a thread
    // id addresses that thread alone (setpriority(2), "BUGS").
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, current_thread_id(), nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Elsewhere priorities are per process (macOS) or not nice values
/// (Windows): changing them would slow inference too, so nothing changes.
#[cfg(not(target_os = "linux"))]
pub fn set_current_thread_nice(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "per-thread priorities are only set on Linux"))
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn current_thread_nice() -> std::io::Result<i32> {
    let tid = current_thread_id();
    // getpriority may return -1 as a value: errno tells the two apart.
    // SAFETY: __errno_location returns this thread's errno, always valid;
    // getpriority takes plain integers.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
        if nice == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(nice)
    }
}

/// Elsewhere there is no per-thread nice value to read.
#[cfg(not(target_os = "linux"))]
pub fn current_thread_nice() -> std::io::Result<i32> {
    Ok(0)
}

#[cfg(target_os = "linux")]
fn current_thread_id() -> libc::id_t {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    tid as libc::id_t
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs model loads (and starts the inference thread), so
/// that ONNX Runtime's threads inherit the process's priority rather than
/// a network thread's. Cheap to clone; the thread ends when the last clone
/// is dropped.
#[derive(Clone)]
pub struct ModelLoader {
    jobs: mpsc::Sender<Job>,
}

impl ModelLoader {
    /// Starts the loader thread. Call it before lowering any priority, from
    /// a thread at the process's own (`main`).
    pub fn start() -> Result<Self, ServerError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("model-loader".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .map_err(|e| ServerError::Runtime(format!("cannot start the model loader thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the loader thread and waits for its result without
    /// blocking an async worker. A panic in `work` is an error here; the
    /// loader thread survives it.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ServerError> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(value) = catch_unwind(AssertUnwindSafe(work)) {
                let _ = reply.send(value);
            }
        });
        self.jobs.send(job).map_err(|_| ServerError::Runtime("the model loader thread has stopped".into()))?;
        result.await.map_err(|_| ServerError::Runtime("loading the model panicked".into()))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn network_threads_are_lowered_and_the_loader_and_its_children_are_not() {
        let base = current_thread_nice().unwrap();
        let loader = ModelLoader::start().unwrap();
        let runtime = network_runtime(5).unwrap();
        let (worker, blocking, loader_thread, born_on_loader) = runtime.block_on(async {
            let worker = tokio::spawn(async { current_thread_nice().unwrap() }).await.unwrap();
            let blocking = tokio::task::spawn_blocking(|| current_thread_nice().unwrap()).await.unwrap();
            // Started by a worker, whose lowered value it inherits: lowered once, not twice.
            let blocking_from_worker =
                tokio::spawn(async { tokio::task::spawn_blocking(|| current_thread_nice().unwrap()).await.unwrap() })
                    .await
                    .unwrap();
            assert_eq!(blocking_from_worker, (base + 5).min(19));
            let loader_thread = loader.run(|| current_thread_nice().unwrap()).await.unwrap();
            // What ONNX Runtime does when a session is built on the loader.
            let born_on_loader =
                loader.run(|| std::thread::spawn(|| current_thread_nice().unwrap()).join().unwrap()).await.unwrap();
            (worker, blocking, loader_thread, born_on_loader)
        });
        assert_eq!(worker, (base + 5).min(19));
        assert_eq!(blocking, (base + 5).min(19));
        assert_eq!(loader_thread, base);
        assert_eq!(born_on_loader, base);
    }

    #[test]
    fn zero_leaves_the_network_threads_alone() {
        let base = current_thread_nice().unwrap();
        let runtime = network_runtime(0).unwrap();
        let worker = runtime.block_on(async { tokio::spawn(async { current_thread_nice().unwrap() }).await.unwrap() });
        assert_eq!(worker, base);
    }

    #[test]
    fn a_panicking_load_is_an_error_and_the_loader_lives_on() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let loader = ModelLoader::start().unwrap();
        runtime.block_on(async {
            let error = loader.run(|| -> u32 { panic!("bad model") }).await.unwrap_err();
            assert!(error.to_string().contains("panicked"), "{error}");
            assert_eq!(loader.run(|| 7).await.unwrap(), 7);
        });
    }
}
