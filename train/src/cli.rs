//! Command-line interface of `mnist-train`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mnist_train::{
    device::DeviceChoice,
    recipe::{OptimizerKind, Recipe, Schedule},
};

const EXAMPLES: &str = "\
Examples:
  # The reference recipe (15 epochs of AdamW at 0.001), into runs/mnist:
  mnist-train train --data-dir ../shared/data/mnist

  # The shipped model's recipe:
  mnist-train train --augment --schedule onecycle --lr 0.003 --label-smoothing 0.05 --out runs/best

  # Continue an interrupted run:
  mnist-train train --out runs/best --augment --schedule onecycle --lr 0.003 --label-smoothing 0.05 --resume

  # Score a run and write its charts; export it to ship:
  mnist-train eval --run runs/best
  mnist-train export --run runs/best --out-dir models";

/// Trains the reference MNIST CNN with libtorch, evaluates it, and exports ONNX.
#[derive(Debug, Parser)]
#[command(name = "mnist-train", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model; writes checkpoints, metrics, charts, mnist.onnx and mnist.json to --out.
    Train(TrainArgs),
    /// Evaluate a run's weights on the test set: accuracy, per-class accuracy, confusion matrix, charts.
    Eval(EvalArgs),
    /// Export a run's weights to ONNX with its model card (mnist.onnx, mnist.json).
    Export(ExportArgs),
    /// Download the MNIST files that are missing from --data-dir.
    Download(DataArgs),
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Directory of the four MNIST IDX files (gzipped or raw).
    #[arg(long, env = "MNIST_DIR", default_value = "data/mnist")]
    pub data_dir: PathBuf,
    /// Fail instead of downloading missing files.
    #[arg(long)]
    pub no_download: bool,
}

#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// Where to compute: auto picks CUDA, else MPS on Apple, else the CPU.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long)]
    pub threads: Option<i32>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Run directory: checkpoint, metrics, charts and the exported model.
    #[arg(long, default_value = "runs/mnist")]
    pub out: PathBuf,
    /// Passes over the training set.
    #[arg(long, default_value_t = Recipe::default().epochs)]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = Recipe::default().batch_size)]
    pub batch_size: usize,
    /// Learning rate (the peak for --schedule onecycle).
    #[arg(long, default_value_t = Recipe::default().lr)]
    pub lr: f64,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adamw)]
    pub optimizer: OptimizerKind,
    /// Weight decay (decoupled for AdamW).
    #[arg(long, default_value_t = Recipe::default().weight_decay)]
    pub weight_decay: f64,
    /// Momentum for SGD.
    #[arg(long, default_value_t = Recipe::default().momentum)]
    pub momentum: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Constant)]
    pub schedule: Schedule,
    /// Label smoothing for the cross-entropy (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Random rotation (±10°), translation (±2 px) and scale (0.9-1.1) of training images.
    #[arg(long)]
    pub augment: bool,
    /// Seed of all randomness; CPU runs with the same seed and threads are identical.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Evaluate on the first N test images only (faster epochs for experiments).
    #[arg(long)]
    pub test_images: Option<usize>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Skip the ONNX export and model card at the end.
    #[arg(long)]
    pub no_export: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

impl TrainArgs {
    pub fn recipe(&self) -> Recipe {
        Recipe {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer: self.optimizer,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            schedule: self.schedule,
            label_smoothing: self.label_smoothing,
            augment: self.augment,
            seed: self.seed,
            train_images: self.train_images,
        }
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Run directory holding weights.safetensors; eval.json and the charts are written there.
    #[arg(long, default_value = "runs/mnist")]
    pub run: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Run directory holding weights.safetensors and run.json.
    #[arg(long, default_value = "runs/mnist")]
    pub run: PathBuf,
    /// Where to write mnist.onnx and mnist.json (default: the run directory).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}
