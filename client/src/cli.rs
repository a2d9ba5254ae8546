//! Command-line interface of `mnist-client`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use mnist_client::{bench::Mode, output::Format};

/// Classifies handwritten digits with an mnist-server, evaluates it and load-tests it.
///
/// Exit codes: 0 success; 1 some files failed, or the server is not SERVING (health);
/// 2 the command could not run (server unreachable, bad arguments, missing data).
#[derive(Debug, Parser)]
#[command(name = "mnist-client", version)]
pub struct Cli {
    /// Server URL; several, comma-separated (`http://a:50051,http://b:50051`); or `dns:///host:port`
    /// to use every address of a name, resolved again as work goes on (a Kubernetes headless
    /// Service). predict, eval and bench spread their work over all of them; predict and eval move
    /// the images of a replica that fails to the others, so none is lost or answered twice.
    #[arg(long, global = true, env = "MNIST_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    /// Deadline of each call, in seconds.
    #[arg(long, global = true, env = "MNIST_TIMEOUT")]
    pub timeout: Option<f64>,

    /// Trust these CA certificates (PEM) for https:// servers instead of the system's.
    #[arg(long, global = true, env = "MNIST_CA_CERT", help_heading = "Security")]
    pub ca_cert: Option<PathBuf>,

    /// Client certificate (PEM) for servers that require mutual TLS; needs --key.
    #[arg(long, global = true, env = "MNIST_CLIENT_CERT", requires = "key", help_heading = "Security")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(long, global = true, env = "MNIST_CLIENT_KEY", requires = "cert", help_heading = "Security")]
    pub key: Option<PathBuf>,

    /// Verify the server's certificate against this name instead of the URL's host.
    #[arg(long, global = true, env = "MNIST_TLS_DOMAIN", help_heading = "Security")]
    pub tls_domain: Option<String>,

    /// File whose first line is the bearer token for servers started with --auth-token-file.
    #[arg(long, global = true, env = "MNIST_TOKEN_FILE", conflicts_with = "token", help_heading = "Security")]
    pub token_file: Option<PathBuf>,

    /// The bearer token itself (prefer the environment variable or --token-file: command lines
    /// are visible to other users).
    #[arg(long, global = true, env = "MNIST_TOKEN", hide_env_values = true, help_heading = "Security")]
    pub token: Option<String>,

    /// The served model to use, by name (`mnist-client info` lists them); default: the server's
    /// default model.
    #[arg(long, global = true, env = "MNIST_MODEL_NAME", default_value = "")]
    pub model: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify image files and directories.
    #[command(after_help = "\
Examples:
  mnist-client predict digit.png
  mnist-client predict scans/ -r --format csv > predictions.csv
  mnist-client predict photos/ --top-k 3 --min-confidence 0.9
  mnist-client predict examples/digits --send-encoded     # let the server decode")]
    Predict(PredictArgs),

    /// Read handwritten numbers: one line of digits per image (a meter reading, a form field, a zip
    /// code), left to right.
    #[command(after_help = "\
Examples:
  mnist-client read meter.jpg
  mnist-client read forms/ -r --format csv > numbers.csv
  mnist-client read zip-codes/ --expect-digits 5 --min-confidence 0.9
  mnist-client read photo.jpg --debug-preprocess debug/     # see where each digit was cut")]
    Read(ReadArgs),

    /// Stream the MNIST test set through the server: accuracy, per-class accuracy, confusion, throughput.
    #[command(after_help = "\
Examples:
  mnist-client eval --data-dir data/mnist
  mnist-client eval --limit 1000 --format json")]
    Eval(EvalArgs),

    /// Load-test the server (like ghz): throughput, latency percentiles, errors by status.
    #[command(after_help = "\
Examples:
  mnist-client bench --mode stream --concurrency 64 --duration 10
  mnist-client bench --mode unary --concurrency 1 --requests 2000 --format json
  mnist-client bench --concurrency 16 --window 8 --rate 8000 --duration 600 --interval 60   # soak")]
    Bench(BenchArgs),

    /// Show the served models (ListModels; GetModelInfo of one with --model).
    #[command(after_help = "Examples:\n  mnist-client info\n  mnist-client info --model mnist-int8 --format json")]
    Info(InfoArgs),

    /// Check the server's health; exit code 0 only when SERVING (for probes and scripts).
    #[command(after_help = "Example:\n  mnist-client health && echo ready")]
    Health(HealthArgs),

    /// Print a shell completion script.
    #[command(after_help = "Example:\n  mnist-client completions bash > /etc/bash_completion.d/mnist-client")]
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// The images a command works on.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// Image files or directories (any format: PNG, JPEG, BMP, GIF, WebP, PNM, TIFF).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Descend into subdirectories.
    #[arg(short, long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Most images in flight on the stream (more keeps the server's batcher fed;
    /// HTTP/2 flow control bounds what is buffered).
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Send each file's bytes for the server to decode, instead of preprocessing locally.
    #[arg(long)]
    pub send_encoded: bool,
    /// Write the 28x28 image the model sees for each file into DIR (NNNN-<file name>.png,
    /// NNNN its row in the output), to see why a digit was misread.
    #[arg(long, value_name = "DIR")]
    pub debug_preprocess: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also show the N likeliest digits with their probabilities.
    #[arg(long, default_value_t = 1)]
    pub top_k: usize,
    /// Flag predictions whose confidence is below this as uncertain.
    #[arg(long)]
    pub min_confidence: Option<f32>,
    /// No progress bar or summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Most windows or candidate digits in flight on the stream (files, with --send-encoded).
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Send each file's bytes for the server to read (ReadOne), instead of segmenting locally
    /// and sending only the digits.
    #[arg(long, conflicts_with = "debug_preprocess")]
    pub send_encoded: bool,
    /// The number of digits every image holds, when known: the best reading of that length, and
    /// readings of another length flagged as uncertain.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=48))]
    pub expect_digits: Option<u32>,
    /// Write, for each file, a picture of it with the boxes and digits read drawn on it
    /// (NNNN-<file name>.png, NNNN its row in the output) and each 28x28 the model saw
    /// (NNNN-<file name>.digit-K.png).
    #[arg(long, value_name = "DIR")]
    pub debug_preprocess: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Flag readings whose confidence is below this as uncertain.
    #[arg(long)]
    pub min_confidence: Option<f32>,
    /// No progress bar or summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Directory of the MNIST files (downloaded there when missing).
    #[arg(long, env = "MNIST_DIR", default_value = "data/mnist")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Most images in flight on the stream.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// RPC to load.
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    pub mode: Mode,
    /// Concurrent workers: streams (stream mode) or callers (unary mode).
    #[arg(short, long, default_value_t = 8)]
    pub concurrency: usize,
    /// HTTP/2 connections the workers share.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Unanswered images per stream (stream mode).
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Total images to send.
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Seconds to run (default 10 when --requests is not given).
    #[arg(short = 'z', long)]
    pub duration: Option<f64>,
    /// Images sent before measuring.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// Send this many images per second in all, on a fixed schedule (default: as fast as answered).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds per row of the report's timeline.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Service to check ("" for the whole server).
    #[arg(long, default_value = "")]
    pub service: String,
}

/// Format of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// JSON for scripts.
    Json,
}
