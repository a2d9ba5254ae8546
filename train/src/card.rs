//! The model card (`mnist.json`) that ships beside `mnist.onnx`: what the
//! model scores, how it was trained, and the hash of the exact file.

use serde::{Deserialize, Serialize};

use crate::{calibrate::Calibration, eval::Evaluation, onnx::int8::ActivationRanges, recipe::Recipe, record::Progress};

/// `mnist.json`: read by the server (GetModelInfo) and by people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// The ONNX file this card describes (its name, beside the card).
    pub model_file: String,
    /// Hex SHA-256 of that file.
    pub sha256: String,
    /// Accuracy on the 10,000 MNIST test images: libtorch's for the float
    /// model (the graph computes the same logits), ONNX Runtime's for int8.
    pub test_accuracy: f64,
    /// Accuracy on the validation split (the one figure recipes are chosen
    /// by); absent for runs trained on all 60,000 images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
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
    /// The temperature folded into the graph and the calibration it bought;
    /// absent without a validation split to fit it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// How the int8 model was quantized; absent for the float model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// The tool that made it.
    pub producer: String,
}

/// How an int8 model was made from the float one, and how close it stays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quantization {
    /// The scheme.
    pub format: String,
    /// Training images the activation ranges were measured on.
    pub calibration_images: usize,
    /// The measured input range of each weighted layer.
    pub ranges: ActivationRanges,
    /// The float model it was quantized from.
    pub float_model: String,
    /// That model's test accuracy, for the side-by-side.
    pub float_test_accuracy: f64,
    /// Fraction of test images on which both models predict the same digit.
    pub test_argmax_agreement: f64,
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
    /// Assembles a card for a model file; the caller adds validation,
    /// calibration and quantization figures it has.
    pub fn new(model_file: String, sha256: String, eval: &Evaluation, progress: &Progress) -> Self {
        Self {
            model_file,
            sha256,
            test_accuracy: eval.accuracy(),
            validation_accuracy: None,
            test_images: eval.images(),
            per_class_accuracy: eval.per_class_accuracy(),
            confusion: eval.confusion(),
            recipe: progress.recipe.clone(),
            epochs: progress.completed_epochs,
            training_seconds: progress.training_seconds,
            device: progress.device.clone(),
            normalization: Normalization { mean: mnist::PIXEL_MEAN, std: mnist::PIXEL_STD },
            calibration: None,
            quantization: None,
            producer: format!("mnist-train {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
