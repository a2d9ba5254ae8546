//! Command-line interface of `mnist-train`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mnist_train::{
    device::DeviceChoice,
    model::Arch,
    recipe::{OptimizerKind, Recipe, Schedule},
};

const EXAMPLES: &str = "\
Examples:
  # The reference recipe (15 epochs of AdamW at 0.001), into runs/mnist:
  mnist-train train --data-dir ../shared/data/mnist

  # The shipped models' recipe (float and int8, temperature-calibrated):
  mnist-train train --augment --schedule onecycle --lr 0.003 --label-smoothing 0.05 --int8 --out runs/best

  # The stronger network (three convolution blocks, batch normalization):
  mnist-train train --arch three-block --augment --schedule onecycle --lr 0.003 --label-smoothing 0.05 --int8 --out runs/three-block

  # Fine-tune a shipped model (its run directory gone) with rotations:
  mnist-train train --arch three-block --init models/mnist-three-block.onnx --augment --rotation 30 --lr 0.0003 --epochs 3 --out runs/tuned

  # Continue an interrupted run:
  mnist-train train --out runs/best --augment --schedule onecycle --lr 0.003 --label-smoothing 0.05 --resume

  # Score a run and write its charts; export it to ship:
  mnist-train eval --run runs/best
  mnist-train export --run runs/best --int8 --out-dir models
  mnist-train export --run runs/three-block --int8 --name mnist-three-block --out-dir models";

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
    /// Export a run's weights to ONNX with its model card (mnist.onnx, mnist.json; --int8 adds mnist-int8.*).
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

/// What to ship besides the float model.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Also write mnist-int8.onnx (int8 QDQ, activation ranges calibrated on
    /// training images) and its card, scored in ONNX Runtime ($ORT_DYLIB_PATH).
    #[arg(long)]
    pub int8: bool,
    /// Training images the int8 activation ranges are measured on.
    #[arg(long, default_value_t = mnist_train::quantize::DEFAULT_CALIBRATION_IMAGES)]
    pub calibration_images: usize,
    /// The files' name: NAME.onnx and NAME-int8.onnx, with their cards (the server names each
    /// model after its file).
    #[arg(long, default_value = mnist_train::export::DEFAULT_NAME)]
    pub name: String,
}

impl ShipArgs {
    pub fn options(&self) -> mnist_train::export::ExportOptions {
        mnist_train::export::ExportOptions {
            int8: self.int8,
            calibration_images: self.calibration_images,
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[command(flatten)]
    pub ship: ShipArgs,
    /// Run directory: checkpoint, metrics, charts and the exported model.
    #[arg(long, default_value = "runs/mnist")]
    pub out: PathBuf,
    /// The network: the reference CNN, or three convolution blocks with batch normalization.
    #[arg(long, value_enum, default_value_t = Arch::Reference)]
    pub arch: Arch,
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
    /// With --augment: rotate training images by up to DEG degrees either way.
    #[arg(long, value_name = "DEG", default_value_t = Recipe::default().rotation)]
    pub rotation: f64,
    /// With --augment: thicken the strokes of this share of training images (marker strokes).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub thicken: f64,
    /// With --thicken: grow thickened strokes by 1 to N pixels each side, drawn per image
    /// (marker strokes are 2-3 times MNIST's pen strokes).
    #[arg(long, value_name = "N", default_value_t = Recipe::default().thicken_pixels)]
    pub thicken_pixels: u32,
    /// With --augment: cut one side off the digits of this share of training images (by up
    /// to 15 % of their ink) and fit what is left again: digits photographed against the frame.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub cut: f64,
    /// Seed of all randomness; CPU runs with the same seed and threads are identical.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Hold out the last N training images for validation: the per-epoch
    /// evaluation and the temperature use them, and the test set is scored
    /// once, at the end. 0 trains on all 60,000 and evaluates every epoch on
    /// the test set, as the reference does.
    #[arg(long, default_value_t = Recipe::default().validation_images)]
    pub validation_images: usize,
    /// Also train on the reading set in DIR (written by `cargo run --example reading_set`):
    /// candidates cut from photos of numbers, digits and not-digits, for the model that
    /// mnist-server's Read uses.
    #[arg(long, value_name = "DIR")]
    pub reading_set: Option<PathBuf>,
    /// Train a window model on the line set in DIR (written by `cargo run --example line_set`)
    /// instead of on single digits: strips of handwritten numbers and the CTC loss. The model
    /// reads numbers whole (its metadata says `reading: windows`); MNIST's test digits still
    /// score it as a classifier of centred digits. Repeat to train on several sets (each
    /// generator run uses one core: two runs with other seeds make a set twice as large in
    /// the same time).
    #[arg(long, value_name = "DIR", conflicts_with = "reading_set")]
    pub line_set: Vec<PathBuf>,
    /// Start from the weights in FILE (another run's weights.safetensors or
    /// checkpoint.safetensors, or a float .onnx model mnist-train exported,
    /// such as models/mnist-three-block.onnx; same --arch) instead of a
    /// random initialisation: fine-tune a trained model on more or other
    /// data in a few epochs, typically with a lower --lr.
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Evaluate on the first N test images only (faster runs for experiments).
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
            arch: self.arch,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer: self.optimizer,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            schedule: self.schedule,
            label_smoothing: self.label_smoothing,
            augment: self.augment,
            rotation: self.rotation,
            thicken: self.thicken,
            thicken_pixels: self.thicken_pixels,
            cut: self.cut,
            seed: self.seed,
            train_images: self.train_images,
            validation_images: self.validation_images,
            reading_set: self.reading_set.clone(),
            line_set: self.line_set.clone(),
            init: self.init.clone(),
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
    #[command(flatten)]
    pub ship: ShipArgs,
    /// Run directory holding weights.safetensors and run.json.
    #[arg(long, default_value = "runs/mnist")]
    pub run: PathBuf,
    /// Where to write the models and their cards (default: the run directory).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}
