//! The training loop: epochs of shuffled, optionally augmented batches, an
//! evaluation and a checkpoint after each, and a clean stop on Ctrl-C.

use std::{
    fs,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tch::{Device, Kind, Reduction, Tensor, nn::ModuleT, nn::VarStore};

use crate::{
    Error, Result,
    augment::Augment,
    checkpoint,
    data::{NOT_A_DIGIT, TensorSet, normalize},
    device,
    error::io_error,
    eval::evaluate,
    lines::{self, LineBatch, LineSet},
    model::Net,
    onnx::import::Imported,
    optim::{Optimizer, learning_rate},
    recipe::Recipe,
    record::{EpochRecord, EvalSplit, Progress},
};

/// How to run training.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The recipe.
    pub recipe: Recipe,
    /// Where to train.
    pub device: Device,
    /// Directory for checkpoints, logs and results.
    pub run_dir: PathBuf,
    /// Continue from the run directory's checkpoint.
    pub resume: bool,
    /// What `eval_set` holds, for the record and the logs.
    pub eval_split: EvalSplit,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
}

/// A trained network with its variables and the run's record.
#[derive(Debug)]
pub struct Trained {
    /// The variables (weights).
    pub vs: VarStore,
    /// The network over them.
    pub net: Net,
    /// The run's progress, complete.
    pub progress: Progress,
}

/// Trains per `config` on `train_set`, evaluating on `eval_set` after every
/// epoch (the validation split when the recipe holds one out). `stop` is polled between steps: when it is set, the
/// run ends with [`Error::Interrupted`] and the last completed epoch's
/// checkpoint stays on disk for `--resume`.
///
/// Runs with the same seed and thread count are identical on the CPU, as
/// long as only one run at a time uses libtorch's (process-global) random
/// generator.
pub fn train(config: &TrainConfig, train_set: &TensorSet, eval_set: &TensorSet, stop: &AtomicBool) -> Result<Trained> {
    train_on(config, &Examples::Images { train: train_set, eval: eval_set }, stop)
}

/// Trains a window model per `config` on the strips of `train_set` with
/// the CTC loss ([`crate::lines`]), evaluating on `eval_set` (exact
/// readings) after every epoch; otherwise as [`train`].
pub fn train_lines(
    config: &TrainConfig,
    train_set: &LineSet,
    eval_set: &LineSet,
    stop: &AtomicBool,
) -> Result<Trained> {
    train_on(config, &Examples::Lines { train: train_set, eval: eval_set }, stop)
}

/// Images an imported model's batch normalization is measured on.
const CALIBRATION_IMAGES: i64 = 2048;
/// Strips the same is measured on for a window model (each holds tens of
/// windows).
const CALIBRATION_STRIPS: usize = 256;

/// What a run learns from: single images with labels, or lines of digits.
enum Examples<'a> {
    Images { train: &'a TensorSet, eval: &'a TensorSet },
    Lines { train: &'a LineSet, eval: &'a LineSet },
}

impl Examples<'_> {
    fn len(&self) -> usize {
        match self {
            Examples::Images { train, .. } => train.len(),
            Examples::Lines { train, .. } => train.len(),
        }
    }

    /// Normalized inputs of the kind the run trains on (the first training
    /// images, or the first strips), on which importing an ONNX model
    /// measures its batch normalization ([`crate::onnx::import`]).
    fn calibration_inputs(&self) -> Tensor {
        match self {
            Examples::Images { train, .. } => {
                normalize(&train.images.narrow(0, 0, (train.len() as i64).min(CALIBRATION_IMAGES)))
            }
            Examples::Lines { train, .. } => {
                let first: Vec<usize> = (0..train.len().min(CALIBRATION_STRIPS)).collect();
                train.batch(&first).images
            }
        }
    }

    /// The held-out loss and accuracy (exact readings, for lines).
    fn evaluate(&self, net: &Net) -> Result<(f64, f64)> {
        match self {
            Examples::Images { eval, .. } => evaluate(net, eval).map(|e| (e.loss(), e.accuracy())),
            Examples::Lines { eval, .. } => Ok(lines::evaluate(net, eval)),
        }
    }
}

fn train_on(config: &TrainConfig, examples: &Examples<'_>, stop: &AtomicBool) -> Result<Trained> {
    let recipe = &config.recipe;
    recipe.validate()?;
    fs::create_dir_all(&config.run_dir).map_err(io_error(&config.run_dir))?;

    tch::manual_seed(recipe.seed as i64);
    let mut vs = VarStore::new(config.device);
    let net = Net::new(&vs.root(), recipe.arch);
    let mut optimizer = Optimizer::new(&vs, recipe);
    let checkpoint_path = checkpoint::checkpoint_path(&config.run_dir);

    let mut progress = if config.resume && checkpoint_path.is_file() {
        let saved = checkpoint::load(&checkpoint_path, &mut vs, &mut optimizer)?;
        if !saved.recipe.resumable_by(recipe) {
            return Err(Error::Checkpoint {
                path: checkpoint_path,
                reason: format!(
                    "it was made with another recipe ({}); resume with the same flags or use another --out",
                    saved.recipe.summary()
                ),
            });
        }
        if !config.quiet {
            eprintln!("resuming {} after epoch {}", config.run_dir.display(), saved.completed_epochs);
        }
        Progress { recipe: recipe.clone(), ..saved }
    } else {
        if config.resume {
            return Err(Error::Checkpoint { path: checkpoint_path, reason: "not found: nothing to resume".into() });
        }
        // Only a fresh run starts from `init`: a resumed one's checkpoint
        // already holds the weights that grew from it.
        if let Some(init) = &recipe.init {
            if init.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("onnx")) {
                Imported::read(init)?.load_into(&mut vs, &net, &examples.calibration_inputs())?;
            } else {
                checkpoint::load_weights(init, &mut vs)?;
            }
            if !config.quiet {
                eprintln!("starting from the weights in {}", init.display());
            }
        }
        Progress {
            recipe: recipe.clone(),
            eval_split: config.eval_split,
            completed_epochs: 0,
            steps: 0,
            training_seconds: 0.0,
            device: device::name(config.device),
            history: Vec::new(),
        }
    };

    let augment = recipe.augment.then(|| Augment {
        max_rotation_degrees: recipe.rotation,
        thicken: recipe.thicken,
        thicken_pixels: recipe.thicken_pixels,
        cut: recipe.cut,
        ..Augment::default()
    });
    let steps_per_epoch = examples.len().div_ceil(recipe.batch_size);
    let total_steps = steps_per_epoch * recipe.epochs;

    for epoch in progress.completed_epochs..recipe.epochs {
        // Reseeding per epoch makes epoch k's shuffling, dropout and
        // augmentation independent of how the run got there, so a resumed
        // run repeats an uninterrupted one exactly.
        tch::manual_seed(recipe.seed.wrapping_add(1 + epoch as u64) as i64);
        let bar = epoch_bar(epoch + 1, recipe.epochs, steps_per_epoch, config.quiet);
        let started = Instant::now();
        let (mut loss_sum, mut batches, mut lr) = (0.0, 0usize, recipe.lr);

        let epoch_batches: Box<dyn Iterator<Item = Batch>> = match examples {
            Examples::Images { train, .. } => {
                Box::new(train.batches(recipe.batch_size, true).map(|(images, labels)| Batch::Images(images, labels)))
            }
            Examples::Lines { train, .. } => Box::new(
                train.batches(recipe.batch_size, true).into_iter().map(|indices| Batch::Lines(train.batch(&indices))),
            ),
        };
        for batch in epoch_batches {
            if stop.load(Ordering::Relaxed) {
                bar.abandon();
                return Err(Error::Interrupted { completed_epochs: progress.completed_epochs });
            }
            let loss = match batch {
                Batch::Images(images, labels) => {
                    let images = match &augment {
                        Some(a) => a.apply(&images),
                        None => images,
                    };
                    let logits = net.forward_t(&normalize(&images), true);
                    loss(&logits, &labels, recipe.label_smoothing)
                }
                Batch::Lines(lines) => lines::loss(&net, &lines, true),
            };
            lr = learning_rate(recipe.schedule, recipe.lr, progress.steps as usize, total_steps);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step(lr);
            progress.steps = optimizer.steps();

            loss_sum += loss.double_value(&[]);
            batches += 1;
            bar.inc(1);
            if batches % 10 == 0 {
                let rate = (batches * recipe.batch_size) as f64 / started.elapsed().as_secs_f64();
                bar.set_message(format!("loss {:.4}  {rate:.0} img/s", loss_sum / batches as f64));
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();

        let (eval_loss, eval_accuracy) = examples.evaluate(&net)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / batches.max(1) as f64,
            eval_loss,
            eval_accuracy,
            seconds,
            images_per_second: examples.len() as f64 / seconds,
            lr,
        };
        if !config.quiet {
            eprintln!(
                "epoch {:>2}/{}  train loss {:.4}  {split} loss {:.4}  {split} accuracy {:.2}%  {:.1}s ({:.0} img/s)",
                record.epoch,
                recipe.epochs,
                record.train_loss,
                record.eval_loss,
                record.eval_accuracy * 100.0,
                record.seconds,
                record.images_per_second,
                split = progress.eval_split.name(),
            );
        }
        progress.history.push(record);
        progress.completed_epochs = epoch + 1;
        progress.training_seconds += seconds;
        checkpoint::save(&checkpoint_path, &vs, &optimizer, &progress)?;
        write_metrics(config, &progress)?;
    }
    Ok(Trained { vs, net, progress })
}

/// One training step's examples.
enum Batch {
    Images(Tensor, Tensor),
    Lines(LineBatch),
}

/// The training loss: cross-entropy (with label smoothing), and for a
/// reading set's candidates that are not one digit, cross-entropy against
/// equal probabilities for all ten (outlier exposure, Hendrycks et al.
/// 2019): the model learns to be unsure of them.
fn loss(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    let not_digit = labels.ge(i64::from(NOT_A_DIGIT));
    if not_digit.any().int64_value(&[]) == 0 {
        return logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, smoothing);
    }
    let log_p = logits.log_softmax(-1, Kind::Float);
    let digit = labels.clamp_max(i64::from(NOT_A_DIGIT) - 1).unsqueeze(1);
    let nll = log_p.gather(1, &digit, false).squeeze_dim(1).neg();
    let spread = log_p.mean_dim(&[1i64][..], false, Kind::Float).neg();
    let digit_loss = nll * (1.0 - smoothing) + &spread * smoothing;
    digit_loss.where_self(&not_digit.logical_not(), &spread).mean(Kind::Float)
}

/// Rewrites `metrics.jsonl` (one JSON object per epoch) and `run.json`.
fn write_metrics(config: &TrainConfig, progress: &Progress) -> Result<()> {
    let lines: Vec<String> = progress.history.iter().filter_map(|r| serde_json::to_string(r).ok()).collect();
    let path = config.run_dir.join("metrics.jsonl");
    fs::write(&path, lines.join("\n") + "\n").map_err(io_error(&path))?;
    let path = config.run_dir.join("run.json");
    let json = serde_json::to_string_pretty(progress).map_err(|e| Error::Config(e.to_string()))?;
    fs::write(&path, json).map_err(io_error(&path))
}

fn epoch_bar(epoch: usize, epochs: usize, steps: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_digit_is_trained_towards_equal_probabilities() {
        let even = Tensor::zeros([1, 10], (Kind::Float, Device::Cpu));
        let not_digit = Tensor::from_slice(&[i64::from(NOT_A_DIGIT)]);
        // Equal logits are what a not-digit should get: ln 10, the least its loss can be.
        let at_best = loss(&even, &not_digit, 0.0).double_value(&[]);
        assert!((at_best - 10f64.ln()).abs() < 1e-5, "{at_best}");
        let sure = Tensor::from_slice(&[9.0f32, 0., 0., 0., 0., 0., 0., 0., 0., 0.]).view([1, 10]);
        assert!(loss(&sure, &not_digit, 0.0).double_value(&[]) > at_best + 1.0, "a sure answer costs more");
        // A digit in the same batch keeps its cross-entropy.
        let both = Tensor::cat(&[&sure, &even], 0);
        let labels = Tensor::from_slice(&[0i64, i64::from(NOT_A_DIGIT)]);
        let digit_loss = -sure.log_softmax(-1, Kind::Float).double_value(&[0, 0]);
        let mixed = loss(&both, &labels, 0.0).double_value(&[]);
        assert!((mixed - (digit_loss + at_best) / 2.0).abs() < 1e-5, "{mixed}");
        // Without not-digits, the loss is libtorch's own cross-entropy.
        let plain = loss(&sure, &Tensor::from_slice(&[3i64]), 0.05).double_value(&[]);
        let reference =
            sure.cross_entropy_loss::<Tensor>(&Tensor::from_slice(&[3i64]), None, Reduction::Mean, -100, 0.05);
        assert!((plain - reference.double_value(&[])).abs() < 1e-6);
    }
}
