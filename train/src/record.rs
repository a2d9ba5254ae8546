//! What a run records as it goes: one line per epoch and where the run
//! stands. The training loop writes these, checkpoints carry them, and the
//! model card and charts read them; keeping them here lets each of those
//! modules depend on the record instead of on one another.

use serde::{Deserialize, Serialize};

use crate::recipe::Recipe;

/// What one epoch did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Mean loss on the run's evaluation split (see [`Progress::eval_split`]) after the epoch.
    #[serde(alias = "test_loss")]
    pub eval_loss: f64,
    /// Accuracy on the run's evaluation split after the epoch.
    #[serde(alias = "test_accuracy")]
    pub eval_accuracy: f64,
    /// Seconds of training (evaluation excluded).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
}

/// Where a run stands, saved with its checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// The run's recipe.
    pub recipe: Recipe,
    /// Which images the per-epoch evaluation used: `validation` (images held
    /// out of the training set, so that choices made while watching the
    /// curves never see the test set) or `test` (runs without a validation
    /// split, and runs made before there was one).
    #[serde(default)]
    pub eval_split: EvalSplit,
    /// Epochs completed.
    pub completed_epochs: usize,
    /// Optimizer updates applied.
    pub steps: i64,
    /// Seconds spent training so far (evaluation excluded).
    pub training_seconds: f64,
    /// The device it ran on.
    pub device: String,
    /// One record per completed epoch.
    pub history: Vec<EpochRecord>,
}

/// The images a run is evaluated on after every epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The last `validation_images` of the training files, never trained on.
    Validation,
    /// The test files.
    #[default]
    Test,
}

impl EvalSplit {
    /// The split's name in logs and charts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Test => "test",
        }
    }
}
