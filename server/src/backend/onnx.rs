//! ONNX Runtime through `ort`, loaded dynamically at run time.

use std::{
    collections::BTreeMap,
    env,
    path::{Path, PathBuf},
    sync::Mutex,
};

use mnist::{IMAGE_SIDE, NUM_CLASSES, PIXEL_MEAN, PIXEL_STD, dataset::sha256_hex};
use ort::{
    environment::{Environment, ThreadManager},
    ep::{self, ExecutionProvider, ExecutionProviderDispatch},
    session::{Session, builder::GraphOptimizationLevel},
    value::{TensorElementType, TensorRef, ValueType},
};

use super::{Backend, ModelDescription};
use crate::{config::Device, error::ServerError};

/// Name of ONNX Runtime's intra-op threads (the inference thread is the first of them).
const INTRA_OP_THREAD_NAME: &str = "ort-intra-op";

/// The ONNX Runtime version `ort` is built against (api-22: 1.22 or newer).
const MIN_RUNTIME: &str = "1.22";

/// How ONNX Runtime runs the model.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeOptions {
    /// Execution provider.
    pub device: Device,
    /// Threads inside one inference (0: one per core this process may use,
    /// see [`RuntimeOptions::intra_op_threads`]).
    pub intra_threads: usize,
    /// Let idle intra-op threads spin waiting for work. Off by default: the
    /// spinning threads take the cores the server's network threads need.
    pub spinning: bool,
    /// Sessions running side by side (the served models), each with its
    /// own inference thread: with `intra_threads` 0 they divide the CPUs.
    pub sessions: usize,
}

impl RuntimeOptions {
    /// The intra-op thread count to ask ONNX Runtime for; `None` leaves the
    /// choice to it.
    ///
    /// Left to itself, ONNX Runtime starts one thread per physical core of
    /// the machine and pins each to a core, which measured best here when
    /// the process may use every CPU (docs/benchmarks.md). When it may use
    /// fewer (a CPU affinity such as `taskset`'s, a container's CPU quota),
    /// that would start threads for CPUs it cannot have, so 0 then means
    /// as many threads as Rust's `available_parallelism` counts.
    ///
    /// Several sessions (several served models) divide the CPUs the process
    /// may use between them, at least one thread each: each session's
    /// threads on every core would make a lone request to one model wait
    /// for the operating system to give it a core back from another
    /// model's batch (a lone caller's p99 beside a flooded model: 6.0x its
    /// unloaded p99 with two threads each, 2.6x with one; docs/benchmarks.md).
    pub fn intra_op_threads(&self) -> Option<usize> {
        match self.intra_threads {
            0 => {
                let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
                if self.sessions > 1 {
                    return Some((usable / self.sessions).max(1));
                }
                (usable < online_cpus().unwrap_or(usable)).then_some(usable)
            }
            n => Some(n),
        }
    }
}

/// The CPUs online on this machine, whether or not this process may use them.
#[cfg(unix)]
fn online_cpus() -> Option<usize> {
    // SAFETY: sysconf takes an integer and reads no memory of ours.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).ok().filter(|&n| n > 0)
}

#[cfg(not(unix))]
fn online_cpus() -> Option<usize> {
    None
}

/// A model session owned by the inference thread.
pub struct OnnxBackend {
    session: Session,
    input_name: String,
    output_name: String,
    // Sessions are created from the environment; keep it alive with them.
    _environment: Environment,
}

impl OnnxBackend {
    /// Loads ONNX Runtime and the model at `path` as `options` say, checking
    /// that the model takes `[N, 1, 28, 28]` float32 and returns `[N, 10]`.
    pub fn load(path: &Path, options: &RuntimeOptions) -> Result<(Self, ModelDescription), ServerError> {
        let RuntimeOptions { device, .. } = *options;
        let environment = shared_environment()?;
        let model_error = |reason: String| ServerError::Model { path: path.to_path_buf(), reason };
        let bytes = std::fs::read(path).map_err(|e| {
            model_error(format!(
                "{e} (train one with mnist-train, or pass --model; the repository ships models/mnist.onnx)"
            ))
        })?;

        let (session, provider) = match device {
            Device::Cpu => (build_session(&environment, &bytes, options, None).map_err(model_error)?, "cpu"),
            Device::Cuda => accelerated(&environment, &bytes, options, "cuda", ep::CUDA::default().build())?,
            Device::Coreml => accelerated(&environment, &bytes, options, "coreml", ep::CoreML::default().build())?,
            Device::Auto => {
                let (name, available, dispatch) = platform_accelerator();
                let attempt = if available {
                    build_session(&environment, &bytes, options, Some(dispatch.error_on_failure()))
                } else {
                    Err(format!("this ONNX Runtime library has no {name} provider"))
                };
                match attempt {
                    Ok(session) => (session, name),
                    Err(reason) => {
                        tracing::info!(provider = name, %reason, "accelerator not used, running on the CPU");
                        (build_session(&environment, &bytes, options, None).map_err(model_error)?, "cpu")
                    }
                }
            }
        };

        let (input_name, output_name) = check_signature(&session).map_err(model_error)?;
        let metadata = read_metadata(&session);
        let constant = |key: &str, default: f32| {
            metadata.get(key).and_then(|v| v.parse::<f32>().ok()).filter(|v| v.is_finite()).unwrap_or(default)
        };
        let description = ModelDescription {
            provider,
            mean: constant("normalization_mean", PIXEL_MEAN),
            std: constant("normalization_std", PIXEL_STD),
            sha256: sha256_hex(&bytes),
            metadata,
        };
        if description.std <= 0.0 {
            return Err(model_error(format!("normalization_std is {}, must be positive", description.std)));
        }
        Ok((Self { session, input_name, output_name, _environment: environment }, description))
    }
}

impl Backend for OnnxBackend {
    fn infer(&mut self, input: &[f32], batch_size: usize) -> Result<Vec<f32>, ServerError> {
        let shape = [batch_size, 1, IMAGE_SIDE, IMAGE_SIDE];
        let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| ServerError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| ServerError::Inference(e.to_string()))?;
        let (out_shape, logits) = outputs[self.output_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ServerError::Inference(e.to_string()))?;
        if out_shape[..] != [batch_size as i64, NUM_CLASSES as i64] {
            return Err(ServerError::Inference(format!("model returned shape {:?}", &out_shape[..])));
        }
        Ok(logits.to_vec())
    }
}

/// ONNX Runtime allows one environment per process: it is created with the
/// first model and shared by every session after it.
fn shared_environment() -> Result<Environment, ServerError> {
    static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);
    let mut shared = ENVIRONMENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(environment) = shared.as_ref() {
        return Ok(environment.clone());
    }
    let library = find_runtime_library()?;
    let environment = ort::init_from(&library)
        .map_err(|e| {
            ServerError::Runtime(format!(
                "cannot load {}: {e} (mnist-server needs ONNX Runtime {MIN_RUNTIME} or newer)",
                library.display()
            ))
        })?
        .with_name("mnist-server")
        .build()
        .map_err(|e| ServerError::Runtime(e.to_string()))?;
    tracing::debug!(library = %library.display(), "loaded ONNX Runtime");
    *shared = Some(environment.clone());
    Ok(environment)
}

/// The accelerator `auto` tries on this platform.
fn platform_accelerator() -> (&'static str, bool, ExecutionProviderDispatch) {
    if cfg!(target_os = "macos") {
        ("coreml", ep::CoreML::is_available().unwrap_or(false), ep::CoreML::default().build())
    } else {
        ("cuda", ep::CUDA::is_available().unwrap_or(false), ep::CUDA::default().build())
    }
}

/// A session on an explicitly requested accelerator: failing to use it is an error.
fn accelerated(
    environment: &Environment,
    bytes: &[u8],
    options: &RuntimeOptions,
    name: &'static str,
    dispatch: ExecutionProviderDispatch,
) -> Result<(Session, &'static str), ServerError> {
    build_session(environment, bytes, options, Some(dispatch.error_on_failure()))
        .map(|session| (session, name))
        .map_err(|reason| ServerError::Device { provider: name, reason })
}

fn build_session(
    environment: &Environment,
    bytes: &[u8],
    options: &RuntimeOptions,
    provider: Option<ExecutionProviderDispatch>,
) -> Result<Session, String> {
    let mut builder = Session::builder(environment)
        .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
        .and_then(|b| Ok(b.with_intra_op_spinning(options.spinning)?))
        .and_then(|b| Ok(b.with_thread_manager(NamedThreads)?))
        .map_err(|e| e.to_string())?;
    if let Some(threads) = options.intra_op_threads() {
        builder = builder.with_intra_threads(threads).map_err(|e| e.to_string())?;
    }
    if let Some(provider) = provider {
        builder = builder.with_execution_providers([provider]).map_err(|e| e.to_string())?;
    }
    builder.commit_from_memory(bytes).map_err(|e| e.to_string())
}

/// Starts ONNX Runtime's intra-op threads under their own name.
///
/// Without it they inherit the name of whichever thread built the session
/// (once a tokio thread, so that `top -H`, `perf` and per-thread CPU
/// figures counted inference as network work).
struct NamedThreads;

impl ThreadManager for NamedThreads {
    type Thread = std::thread::JoinHandle<()>;

    fn create(&self, work: impl FnOnce() + Send + 'static) -> ort::Result<Self::Thread> {
        std::thread::Builder::new()
            .name(INTRA_OP_THREAD_NAME.into())
            .spawn(work)
            .map_err(|e| ort::Error::new(format!("cannot start an ONNX Runtime thread: {e}")))
    }

    fn join(thread: Self::Thread) -> ort::Result<()> {
        thread.join().map_err(|_| ort::Error::new("an ONNX Runtime thread panicked"))
    }
}

/// Checks the model's one input and one output; returns their names.
fn check_signature(session: &Session) -> Result<(String, String), String> {
    let [input] = session.inputs() else {
        return Err(format!("expected 1 input, found {}", session.inputs().len()));
    };
    let [output] = session.outputs() else {
        return Err(format!("expected 1 output, found {}", session.outputs().len()));
    };
    let tensor = |value: &ValueType| match value {
        ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } => Some(shape.to_vec()),
        _ => None,
    };
    let side = IMAGE_SIDE as i64;
    let input_ok = tensor(input.dtype()).is_some_and(|s| s.len() == 4 && s[1..] == [1, side, side]);
    if !input_ok {
        return Err(format!("input `{}` is {:?}, expected float32 [N, 1, 28, 28]", input.name(), input.dtype()));
    }
    let output_ok = tensor(output.dtype()).is_some_and(|s| s.len() == 2 && s[1] == NUM_CLASSES as i64);
    if !output_ok {
        return Err(format!("output `{}` is {:?}, expected float32 [N, 10]", output.name(), output.dtype()));
    }
    Ok((input.name().to_string(), output.name().to_string()))
}

fn read_metadata(session: &Session) -> BTreeMap<String, String> {
    let Ok(metadata) = session.metadata() else {
        return BTreeMap::new();
    };
    let keys = metadata.custom_keys().unwrap_or_default();
    keys.into_iter().filter_map(|k| metadata.custom(&k).map(|v| (k, v))).collect()
}

/// Finds the ONNX Runtime shared library: `$ORT_DYLIB_PATH`, else the
/// `onnxruntime` Python package in the project venv (`.venv`, which
/// `scripts/setup.sh runtime` fills) next to the working directory or the
/// executable, else the system's loader path.
pub fn find_runtime_library() -> Result<PathBuf, ServerError> {
    if let Some(path) = env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ServerError::Runtime(format!("ORT_DYLIB_PATH points to {}, which does not exist", path.display())))
        };
    }
    let mut roots: Vec<PathBuf> = env::current_dir().into_iter().collect();
    if let Ok(exe) = env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    for root in roots {
        if let Some(found) = venv_library(&root.join(".venv")) {
            return Ok(found);
        }
    }
    if let Some(found) = system_library() {
        return Ok(found);
    }
    Err(ServerError::Runtime(
        "library not found. Install it with `scripts/setup.sh runtime` (PyPI's onnxruntime wheel into .venv), \
         or set ORT_DYLIB_PATH to libonnxruntime.so / .dylib / onnxruntime.dll (version 1.22 or newer)"
            .into(),
    ))
}

fn venv_library(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let python_dirs = std::fs::read_dir(&lib).ok()?;
    let mut candidates: Vec<PathBuf> = python_dirs
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flat_map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| is_runtime_library(p))
        .collect();
    candidates.sort();
    candidates.pop()
}

fn is_runtime_library(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("libonnxruntime.so.") || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib"))
}

fn system_library() -> Option<PathBuf> {
    ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/opt/homebrew/lib"]
        .iter()
        .flat_map(|dir| ["libonnxruntime.so", "libonnxruntime.dylib"].map(|n| Path::new(dir).join(n)))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_sessions_divide_the_cpus_and_an_explicit_count_wins() {
        let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
        let options =
            |intra_threads, sessions| RuntimeOptions { device: Device::Cpu, intra_threads, spinning: false, sessions };
        assert_eq!(options(0, 2).intra_op_threads(), Some((usable / 2).max(1)));
        assert_eq!(options(0, usable + 5).intra_op_threads(), Some(1), "at least one thread each");
        assert_eq!(options(3, 2).intra_op_threads(), Some(3));
        if usable == online_cpus().unwrap_or(usable) {
            assert_eq!(options(0, 1).intra_op_threads(), None, "one session: ONNX Runtime's own choice");
        }
    }
}
