//! The hyperparameters of a run: what `--help` sets, what checkpoints check
//! on resume, and what the model card records.

use serde::{Deserialize, Serialize};

use crate::model::Arch;

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW (betas 0.9/0.999, eps 1e-8), the reference's.
    Adamw,
    /// SGD with momentum.
    Sgd,
    /// RMSprop (alpha 0.99, eps 1e-8).
    Rmsprop,
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout, the reference's.
    Constant,
    /// Cosine decay from `lr` to 0 over all steps.
    Cosine,
    /// One-cycle: warm up from lr/25 to lr over 30% of the steps, then
    /// anneal to lr/250000 (PyTorch's OneCycleLR defaults).
    Onecycle,
}

/// Everything that determines what a run learns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// The network (runs made before this field trained the reference).
    #[serde(default)]
    pub arch: Arch,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Learning rate (the peak rate for one-cycle).
    pub lr: f64,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Decoupled weight decay for AdamW, L2 for SGD and RMSprop.
    pub weight_decay: f64,
    /// Momentum for SGD.
    pub momentum: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Label smoothing of the cross-entropy, 0 for none.
    pub label_smoothing: f64,
    /// Random rotation (±10° unless `rotation` says), translation (±2 px)
    /// and scale (0.9-1.1).
    pub augment: bool,
    /// Largest augmentation rotation either way, in degrees (with
    /// `augment`): photos are turned further than MNIST's digits are.
    #[serde(default = "default_rotation")]
    pub rotation: f64,
    /// Share of augmented images whose strokes are thickened (with
    /// `augment`; see [`crate::augment::Augment::thicken`]).
    #[serde(default)]
    pub thicken: f64,
    /// How far thickened strokes grow: 1 to this many pixels each side,
    /// drawn per image ([`crate::augment::Augment::thicken_pixels`]).
    #[serde(default = "default_thicken_pixels")]
    pub thicken_pixels: u32,
    /// Share of augmented images cut at one side and fitted again (with
    /// `augment`; see [`crate::augment::Augment::cut`]).
    #[serde(default)]
    pub cut: f64,
    /// Seed of every random draw: initialisation, shuffling, dropout, augmentation.
    pub seed: u64,
    /// Train on only the first N training images (quick experiments, tests).
    pub train_images: Option<usize>,
    /// The last N images of the training files are held out for validation:
    /// never trained on, they drive every choice (recipe, epoch, temperature)
    /// so that the test set is looked at once, for the final figure. 0 trains
    /// on all 60,000 as the reference does (and as runs made before this
    /// field did).
    #[serde(default)]
    pub validation_images: usize,
    /// A reading set (`examples/reading_set.rs`) trained on besides MNIST:
    /// candidate digits cut from photos of numbers, each labelled with its
    /// digit or as not one digit (label 10, trained towards equal
    /// probabilities), so the model is unsure of what `mnist::read` must
    /// not take for a digit.
    #[serde(default)]
    pub reading_set: Option<std::path::PathBuf>,
    /// A line set (`examples/line_set.rs`) to train a window model on
    /// instead of single digits: strips of handwritten numbers, the CTC
    /// loss over 28x28 windows ([`crate::lines`]); the model reads numbers
    /// whole (`mnist::read::Method::Windows`).
    #[serde(default)]
    pub line_set: Vec<std::path::PathBuf>,
    /// Weights the run starts from instead of a random initialisation (a
    /// `weights.safetensors` or `checkpoint.safetensors` of a run with the
    /// same network, or a float `.onnx` model mnist-train exported, such as
    /// a shipped one: [`crate::onnx::import`]): fine-tuning a trained model on more or other data
    /// costs a few epochs where training it again from scratch costs all.
    #[serde(default)]
    pub init: Option<std::path::PathBuf>,
}

/// The augmentation's rotation before `Recipe::rotation` existed.
fn default_rotation() -> f64 {
    10.0
}

/// Thickening's growth before `Recipe::thicken_pixels` existed.
fn default_thicken_pixels() -> u32 {
    1
}

/// The most `--thicken-pixels` allows: beyond, a 28x28 digit's loops close.
pub const MAX_THICKEN_PIXELS: u32 = 4;

impl Default for Recipe {
    /// The reference recipe: AdamW at 0.001 (PyTorch's default weight decay
    /// 0.01), batch 128, 15 epochs, no schedule, no augmentation.
    fn default() -> Self {
        Self {
            arch: Arch::Reference,
            epochs: 15,
            batch_size: 128,
            lr: 1e-3,
            optimizer: OptimizerKind::Adamw,
            weight_decay: 0.01,
            momentum: 0.9,
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            augment: false,
            rotation: default_rotation(),
            thicken: 0.0,
            thicken_pixels: default_thicken_pixels(),
            cut: 0.0,
            seed: 0,
            train_images: None,
            validation_images: mnist::dataset::VALIDATION_IMAGES,
            reading_set: None,
            line_set: Vec::new(),
            init: None,
        }
    }
}

impl Recipe {
    /// Checks ranges that would otherwise fail deep inside libtorch.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_string()));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("--lr must be a positive number");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("--label-smoothing must be in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("--weight-decay must be non-negative");
        }
        if !(self.rotation.is_finite() && (0.0..=90.0).contains(&self.rotation)) {
            return bad("--rotation must be between 0 and 90 degrees");
        }
        if !(0.0..=1.0).contains(&self.thicken) {
            return bad("--thicken must be a share between 0 and 1");
        }
        if !(1..=MAX_THICKEN_PIXELS).contains(&self.thicken_pixels) {
            return bad(&format!("--thicken-pixels must be between 1 and {MAX_THICKEN_PIXELS}"));
        }
        if !(0.0..=1.0).contains(&self.cut) {
            return bad("--cut must be a share between 0 and 1");
        }
        if !self.augment && (self.rotation != default_rotation() || self.thicken > 0.0 || self.cut > 0.0) {
            return bad("--rotation, --thicken and --cut shape the augmentation: add --augment");
        }
        if self.train_images == Some(0) {
            return bad("--train-images must be at least 1");
        }
        if self.validation_images >= mnist::dataset::TRAIN_IMAGES {
            return bad("--validation-images must leave training images (at most 59999)");
        }
        Ok(())
    }

    /// True when `other` may resume a run made with `self`: everything equal
    /// except, for a constant schedule, the number of epochs (a run can be
    /// extended; a schedule's shape depends on the total, so it cannot).
    pub fn resumable_by(&self, other: &Recipe) -> bool {
        let same_epochs_or_free = self.epochs == other.epochs || self.schedule == Schedule::Constant;
        Recipe { epochs: other.epochs, ..self.clone() } == *other && same_epochs_or_free
    }

    /// A one-line summary for logs and charts.
    pub fn summary(&self) -> String {
        format!(
            "{}{:?} lr {} {:?} batch {} epochs {}{}{}{}{}{}",
            match self.arch {
                Arch::Reference => "",
                Arch::ThreeBlock => "three-block ",
            },
            self.optimizer,
            self.lr,
            self.schedule,
            self.batch_size,
            self.epochs,
            match (self.augment, self.rotation != default_rotation(), self.thicken > 0.0) {
                (false, _, _) => String::new(),
                (true, false, false) => " +augment".to_string(),
                (true, _, _) if self.thicken_pixels > 1 => format!(
                    " +augment (rotation {}, thicken {} by 1-{} px)",
                    self.rotation, self.thicken, self.thicken_pixels
                ),
                (true, _, _) => format!(" +augment (rotation {}, thicken {})", self.rotation, self.thicken),
            } + &if self.augment && self.cut > 0.0 { format!(" +cut {}", self.cut) } else { String::new() },
            if self.label_smoothing > 0.0 { format!(" +smoothing {}", self.label_smoothing) } else { String::new() },
            if self.validation_images > 0 {
                format!(" (validation {})", self.validation_images)
            } else {
                String::new()
            },
            if self.reading_set.is_some() {
                " +reading set"
            } else if !self.line_set.is_empty() {
                " lines"
            } else {
                ""
            },
            if self.init.is_some() { " +init" } else { "" },
        )
        .to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmentation_shares_need_augment_and_a_share() {
        let augmented = Recipe { augment: true, thicken: 0.4, thicken_pixels: 2, cut: 0.3, ..Recipe::default() };
        assert!(augmented.validate().is_ok());
        for bad in [
            Recipe { augment: false, ..augmented.clone() },
            Recipe { cut: 1.5, ..augmented.clone() },
            Recipe { cut: -0.1, ..augmented.clone() },
            Recipe { thicken_pixels: MAX_THICKEN_PIXELS + 1, ..augmented.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        // A recipe written before --cut existed reads as no cut.
        let mut old = serde_json::to_value(&augmented).expect("a recipe serializes");
        old.as_object_mut().expect("an object").remove("cut");
        let read: Recipe = serde_json::from_value(old).expect("an older recipe reads");
        assert_eq!(read.cut, 0.0);
    }
}
