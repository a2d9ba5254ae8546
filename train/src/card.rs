//! The model card (`mnist.json`) that ships beside `mnist.onnx`: what the
//! model scores, how it was trained, and the hash of the exact file.

use serde::{Deserialize, Serialize};

use crate::{checkpoint::Progress, eval::Evaluation, recipe::Recipe};

/// `mnist.json`: read by the server (GetModelInfo) and by people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// The ONNX file this card describes (its name, beside the card).
    pub model_file: String,
    /// Hex SHA-256 of that file.
    pub sha256: String,
    /// Accuracy on the 10,000 MNIST test images, evaluated with libtorch.
    pub test_accuracy: f64,
    /// Test images evaluated.
    pub test_images: usize,
    /// Accuracy per digit 0-9.
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// The training recipe.
    pub recipe: Recipe,
    /// Epochs trained.
    pub epochs: usize,
    /// Seconds spent training (evaluation excluded).
    pub training_seconds: f64,
    /// Where it was trained.
    pub device: String,
    /// Normalization the model expects.
    pub normalization: Normalization,
    /// The tool that made it.
    pub producer: String,
}

/// Pixel normalization constants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of [0, 1] pixels.
    pub mean: f32,
    /// Standard deviation of [0, 1] pixels.
    pub std: f32,
}

impl ModelCard {
    /// Assembles a card for a model file.
    pub fn new(model_file: String, sha256: String, eval: &Evaluation, progress: &Progress) -> Self {
        Self {
            model_file,
            sha256,
            test_accuracy: eval.accuracy,
            test_images: eval.images,
            per_class_accuracy: eval.per_class_accuracy.clone(),
            confusion: eval.confusion.clone(),
            recipe: progress.recipe.clone(),
            epochs: progress.completed_epochs,
            training_seconds: progress.training_seconds,
            device: progress.device.clone(),
            normalization: Normalization { mean: mnist::PIXEL_MEAN, std: mnist::PIXEL_STD },
            producer: format!("mnist-train {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
