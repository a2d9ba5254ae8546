//! Command-line flags, each also settable through an environment variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// The folder of models served when no `--model` or `--model-repository`
/// is given, looked for beside the working directory, then beside the
/// binary (the container's `/models`, a checkout's `target/release/../../models`).
pub const DEFAULT_MODELS_DIR: &str = "models";

/// The model that answers requests naming none, of the default folder.
pub const DEFAULT_MODEL_NAME: &str = "mnist";

const EXAMPLES: &str = "\
Examples:
  # Serve every shipped model (the models/ folder here or beside the binary) on localhost:50051,
  # as scripts/serve.sh does:
  mnist-server

  # Serve three models; requests name one (`model`), or get the first:
  mnist-server --model models/mnist-three-block.onnx --model models/mnist.onnx --model models/mnist-int8.onnx

  # Serve every model of a folder, `mnist` answering requests that name none:
  mnist-server --model-repository models --default-model mnist

  # In a container, with Prometheus metrics and JSON logs:
  mnist-server --addr 0.0.0.0:50051 --metrics-addr 0.0.0.0:9464 --log-format json

  # Also speak the Open Inference Protocol over HTTP (Triton / KServe clients):
  mnist-server --http-addr 127.0.0.1:8000

  # Wait up to 2 ms to fill batches of up to 128 images:
  mnist-server --max-batch-size 128 --max-queue-delay-us 2000

  # Exposed to a network: TLS, client certificates and a bearer token (see docs/security.md):
  mnist-server --addr 0.0.0.0:50051 --tls-cert server.pem --tls-key server.key \\
    --tls-client-ca clients-ca.pem --auth-token-file /run/secrets/mnist-tokens";

/// Serves the MNIST digit classifier over gRPC, micro-batching images from
/// all concurrent calls into one ONNX Runtime inference.
#[derive(Debug, Clone, Parser)]
// A flag given twice takes its last value, so that wrappers (scripts, tests) can set
// defaults that a later flag overrides.
#[command(name = "mnist-server", version, after_help = EXAMPLES, args_override_self = true)]
pub struct Config {
    /// Address to listen on. Use 0.0.0.0:50051 to accept connections from other hosts (containers).
    #[arg(long, env = "MNIST_ADDR", default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,

    /// A model to serve: PATH (named after the file: models/mnist-int8.onnx is `mnist-int8`) or
    /// NAME=PATH. Give it several times (or a comma-separated list in the variable) to serve
    /// several models; the first is the default for requests that name none. Its card (same
    /// name, .json) is read when present. Default: every model of the models/ folder in the
    /// working directory or beside the binary, `mnist` answering requests that name none (as
    /// scripts/serve.sh).
    #[arg(long, env = "MNIST_MODEL", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub model: Vec<String>,

    /// Also serve every *.onnx file of this folder (with its card), named after the files, after
    /// the --model ones, in the order of their names.
    #[arg(long, env = "MNIST_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,

    /// The model that answers requests naming none (default: the first one given).
    #[arg(long, env = "MNIST_DEFAULT_MODEL")]
    pub default_model: Option<String>,

    /// The model that classifies photos and scans (image files of any size but 28x28) for
    /// requests that name none (default: `mnist-photo` when it is served, trained on rotated and
    /// marker-thick digits; `none`: the default model). MNIST's own form (pixels, a 28x28 image)
    /// naming no model stays with the default model (docs/preprocessing.md#which-model-reads-a-photo).
    #[arg(long, env = "MNIST_PHOTO_MODEL")]
    pub photo_model: Option<String>,

    /// The model Read uses for requests that name none (default: `mnist-reader` when it is
    /// served, a model trained to read numbers; else the default model).
    #[arg(long, env = "MNIST_READ_MODEL")]
    pub read_model: Option<String>,

    /// A second model Read reads each photo with too, for requests that name none, keeping the
    /// reading it is surer of (`mnist-reader-cuts`, the shipped model that reads between cuts):
    /// a second segmentation and batch per photo, for few if any more numbers read right with the
    /// shipped window model (docs/reading-numbers.md#two-readers; default, `none`: one reader).
    #[arg(long, env = "MNIST_SECOND_READ_MODEL")]
    pub second_read_model: Option<String>,

    /// The single-digit model that checks each digit a window model reads with blank paper on
    /// both sides, for Read requests that name no model (default: `mnist-three-block` when it is
    /// served, else none; `none`: no check). One more small batch per photo, of its digits that
    /// stand alone (docs/reading-numbers.md#checking-digits-that-stand-alone).
    #[arg(long, env = "MNIST_CHECK_MODEL")]
    pub check_model: Option<String>,

    /// Execution provider: auto tries CUDA (Linux, Windows) or CoreML (macOS) and falls back to the CPU;
    /// naming one that cannot be used is an error.
    #[arg(long, env = "MNIST_DEVICE", value_enum, default_value_t = Device::Auto)]
    pub device: Device,

    /// Threads ONNX Runtime uses inside one inference (0: one per core; fewer when the process may
    /// use fewer CPUs: its CPU affinity, a container's CPU limit; with several models, the cores
    /// divided among them, at least one each).
    #[arg(long, env = "MNIST_INTRA_THREADS", default_value_t = 0)]
    pub intra_threads: usize,

    /// Let ONNX Runtime's idle threads spin waiting for work (lower latency on
    /// dedicated cores, worse when the cores are shared with the network threads).
    #[arg(long, env = "MNIST_INTRA_OP_SPINNING")]
    pub intra_op_spinning: bool,

    /// How many nice steps the network threads (HTTP/2, TLS, protobuf, refusals) run below
    /// inference, so that under overload the cores answer admitted images before reading
    /// more requests (Linux only; 0: same priority).
    #[arg(long, env = "MNIST_NETWORK_NICE", default_value_t = 6, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub network_nice: u8,

    /// Most images in one inference.
    #[arg(long, env = "MNIST_MAX_BATCH_SIZE", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_batch_size: u32,

    /// Longest wait, in microseconds, for a fuller batch. 0: never wait; take whatever is queued
    /// whenever the model is free.
    #[arg(long, env = "MNIST_MAX_QUEUE_DELAY_US", default_value_t = 0)]
    pub max_queue_delay_us: u64,

    /// Most images admitted and not yet answered (being decoded, queued or running), server-wide.
    /// When it is reached, PredictOne calls fail at once with RESOURCE_EXHAUSTED and streams wait
    /// (HTTP/2 flow control holds their clients back). Bounds the server's memory and latency.
    #[arg(long, env = "MNIST_MAX_QUEUE_SIZE", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queue_size: u32,

    /// Most items of one Predict stream being processed at once; a faster client is slowed by
    /// flow control.
    #[arg(long, env = "MNIST_MAX_IN_FLIGHT_PER_STREAM", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_in_flight_per_stream: u32,

    /// Most images in one Open Inference Protocol request (the N of its input tensor); a larger
    /// request is refused with INVALID_ARGUMENT (HTTP 400). At most --max-queue-size.
    #[arg(long, env = "MNIST_MAX_IMAGES_PER_REQUEST", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_images_per_request: u32,

    /// Most streams (Predict, Read and ModelStreamInfer) open at once, server-wide; a stream beyond
    /// it fails at once with RESOURCE_EXHAUSTED. Must be below --max-queue-size, so that every open
    /// stream can have a message admitted at once.
    #[arg(long, env = "MNIST_MAX_STREAMS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,

    /// Seconds an HTTP client has to send a request's whole body; a client trickling it is answered
    /// 408 and its memory freed.
    #[arg(long, env = "MNIST_HTTP_BODY_TIMEOUT", default_value_t = 20.0)]
    pub http_body_timeout: f64,

    /// Most gRPC calls (HTTP/2 streams) open at once on one connection; a client opening more
    /// waits for one to end (HTTP/2 flow control). A unary call's message is read whole before it
    /// can be admitted, so this times --max-message-bytes bounds what one connection makes the
    /// server buffer.
    #[arg(long, env = "MNIST_MAX_CALLS_PER_CONNECTION", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_calls_per_connection: u32,

    /// Largest gRPC message or HTTP request body accepted, in bytes (bounds encoded images too).
    #[arg(long, env = "MNIST_MAX_MESSAGE_BYTES", default_value_t = 4 << 20)]
    pub max_message_bytes: usize,

    /// Largest decoded image accepted, in pixels (width x height), checked before decoding.
    #[arg(long, env = "MNIST_MAX_IMAGE_PIXELS", default_value_t = 16_777_216)]
    pub max_image_pixels: u64,

    /// Check the model file every this many seconds, and load it again when its modification
    /// time and content have changed (as on SIGHUP); 0: only on SIGHUP.
    #[arg(long, env = "MNIST_WATCH_MODEL", default_value_t = 0.0)]
    pub watch_model: f64,

    /// Seconds to let in-flight calls finish after SIGINT/SIGTERM before exiting.
    #[arg(long, env = "MNIST_SHUTDOWN_TIMEOUT", default_value_t = 10.0)]
    pub shutdown_timeout: f64,

    /// Serve Prometheus metrics over HTTP on this address (e.g. 127.0.0.1:9464); off when unset.
    #[arg(long, env = "MNIST_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve the Open Inference Protocol's REST API (KServe v2, Triton: /v2/...) on this address
    /// (e.g. 0.0.0.0:8000), with the same TLS, token and limits as the gRPC port; off when unset.
    #[arg(long, env = "MNIST_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// Most connections open at once on the HTTP port; further clients wait in the listen backlog
    /// until one closes. Each may be receiving one body of up to --max-message-bytes.
    #[arg(long, env = "MNIST_MAX_HTTP_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_http_connections: u32,

    /// Serve the HTTP API without the web page (by default the HTTP port also serves, at /, a
    /// page to draw or photograph digits and see the model's answer).
    #[arg(long, env = "MNIST_NO_WEB_PAGE")]
    pub no_web_page: bool,

    /// Also serve Prometheus metrics on the HTTP port, at /metrics (behind the token, if any).
    #[arg(long, env = "MNIST_HTTP_METRICS", requires = "http_addr")]
    pub http_metrics: bool,

    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, env = "MNIST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "MNIST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by these CAs (PEM): mutual TLS.
    #[arg(long, env = "MNIST_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Require `authorization: Bearer <token>` on every call but health checks; the file holds
    /// the accepted tokens, one per line (several during a rotation).
    #[arg(long, env = "MNIST_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// Do not serve gRPC reflection (grpcurl and ghz then need the .proto file).
    #[arg(long, env = "MNIST_NO_REFLECTION")]
    pub no_reflection: bool,

    /// Log format; the level is set with RUST_LOG (default: info).
    #[arg(long, env = "MNIST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// Checks the settings that depend on each other (the models are
    /// checked where they are resolved, by [`Config::models`]).
    pub fn validate(&self) -> Result<(), crate::error::ServerError> {
        if self.max_streams >= self.max_queue_size {
            return Err(crate::error::ServerError::Config(format!(
                "--max-streams ({}) must be smaller than --max-queue-size ({}): every open stream must be able to \
                 have a message admitted at once, with a place left for unary calls",
                self.max_streams, self.max_queue_size
            )));
        }
        Ok(())
    }

    /// The models to serve, the default one first: the `--model`s, then
    /// the repository's files; the shipped model when neither is given.
    pub fn models(&self) -> Result<Vec<crate::models::ModelSpec>, crate::error::ServerError> {
        use crate::models::{self, ModelSpec};
        let mut specs = self.model.iter().map(|text| ModelSpec::parse(text)).collect::<Result<Vec<_>, _>>()?;
        if let Some(dir) = &self.model_repository {
            specs.extend(models::repository(dir)?);
        }
        let mut default = self.default_model.as_deref();
        if specs.is_empty() {
            // The bare binary serves what scripts/serve.sh serves: every
            // model of the shipped folder, `mnist` answering by default.
            let dir = default_models_dir().ok_or_else(|| {
                crate::error::ServerError::Config(format!(
                    "no models to serve: give --model PATH or --model-repository DIR (no {DEFAULT_MODELS_DIR}/ folder \
                     with .onnx files in the working directory or beside the binary)"
                ))
            })?;
            tracing::info!(folder = %dir.display(), "no model flags: serving every model of the folder");
            specs = models::repository(&dir)?;
            if default.is_none() && specs.iter().any(|spec| spec.name == DEFAULT_MODEL_NAME) {
                default = Some(DEFAULT_MODEL_NAME);
            }
        }
        models::order(specs, default)
    }

    /// The ONNX Runtime settings for each of `sessions` served models.
    pub fn runtime_options(&self, sessions: usize) -> crate::backend::RuntimeOptions {
        crate::backend::RuntimeOptions {
            device: self.device,
            intra_threads: self.intra_threads,
            spinning: self.intra_op_spinning,
            sessions,
        }
    }

    /// The TLS files, when TLS is on.
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles<'_>> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.as_deref()?,
            key: self.tls_key.as_deref()?,
            client_ca: self.tls_client_ca.as_deref(),
        })
    }

    /// The shutdown timeout as a duration (negative or NaN values count as 0).
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.shutdown_timeout).unwrap_or(Duration::ZERO)
    }

    /// The HTTP body deadline as a duration (at least a millisecond).
    pub fn http_body_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.http_body_timeout).unwrap_or(Duration::ZERO).max(Duration::from_millis(1))
    }

    /// The batch wait as a duration.
    /// How often to check the model file, when asked to.
    pub fn watch_model(&self) -> Option<Duration> {
        Duration::try_from_secs_f64(self.watch_model).ok().filter(|d| !d.is_zero())
    }

    pub fn max_queue_delay(&self) -> Duration {
        Duration::from_micros(self.max_queue_delay_us)
    }
}

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The platform's accelerator when it works, else the CPU.
    Auto,
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// NVIDIA GPUs (needs the onnxruntime-gpu library).
    Cuda,
    /// Apple's CoreML (macOS).
    Coreml,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The first [`DEFAULT_MODELS_DIR`] holding an `.onnx` file: in the working
/// directory, then beside the binary and up to three folders above it (a
/// checkout's `target/release/`, a test's `target/debug/deps/`).
fn default_models_dir() -> Option<std::path::PathBuf> {
    let here = std::path::PathBuf::from(DEFAULT_MODELS_DIR);
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .map(|exe| exe.ancestors().skip(1).take(4).map(|dir| dir.join(DEFAULT_MODELS_DIR)).collect::<Vec<_>>());
    std::iter::once(here).chain(beside_binary.into_iter().flatten()).find(|dir| holds_onnx(dir))
}

fn holds_onnx(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|entry| entry.path().extension().is_some_and(|ext| ext == "onnx")))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(args: &[&str]) -> Result<Vec<String>, String> {
        let config = Config::try_parse_from(std::iter::once("mnist-server").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Ok(config.models().map_err(|e| e.to_string())?.into_iter().map(|spec| spec.name).collect())
    }

    #[test]
    fn models_are_given_several_times_named_or_by_file() {
        let shipped = names(&[]).unwrap();
        assert_eq!(shipped[0], "mnist", "every shipped model by default, mnist first: {shipped:?}");
        assert!(shipped.iter().any(|name| name == "mnist-reader"), "{shipped:?}");
        assert_eq!(
            names(&["--model", "models/mnist.onnx", "--model", "fast=models/mnist-int8.onnx"]).unwrap(),
            ["mnist", "fast"]
        );
        assert_eq!(names(&["--model", "a=x.onnx", "--model", "b=y.onnx", "--default-model", "b"]).unwrap(), ["b", "a"]);
        assert!(names(&["--model", "x.onnx", "--model", "dir/x.onnx"]).unwrap_err().contains("two models"));
        assert!(names(&["--default-model", "nope"]).unwrap_err().contains("'mnist'"));
    }

    #[test]
    fn a_repository_adds_its_files_after_the_named_models() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["b.onnx", "a.onnx"] {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        let repository = dir.path().to_str().unwrap();
        assert_eq!(names(&["--model-repository", repository]).unwrap(), ["a", "b"]);
        assert_eq!(names(&["--model", "c=c.onnx", "--model-repository", repository]).unwrap(), ["c", "a", "b"]);
    }
}
