//! The model runtime behind one trait, so the batcher does not care what
//! runs the model (ONNX Runtime on CPU, CUDA or CoreML; a fake in tests).

mod onnx;

use std::collections::BTreeMap;

pub use self::onnx::{OnnxBackend, RuntimeOptions, find_runtime_library};
use crate::error::ServerError;

/// Runs the classifier on batches of images.
///
/// Implementations are owned by the single inference thread, so they may
/// keep mutable state (ONNX Runtime's `Session::run` takes `&mut self`).
pub trait Backend: Send + 'static {
    /// Classifies `batch_size` images: `input` holds `batch_size * 784`
    /// normalized pixels (`[N, 1, 28, 28]`, row-major). Returns
    /// `batch_size * 10` logits.
    fn infer(&mut self, input: &[f32], batch_size: usize) -> Result<Vec<f32>, ServerError>;
}

/// What a loaded model is and how it must be fed.
#[derive(Debug, Clone)]
pub struct ModelDescription {
    /// The execution provider actually running it: "cpu", "cuda" or "coreml".
    pub provider: &'static str,
    /// Pixel mean from the model's metadata (or MNIST's).
    pub mean: f32,
    /// Pixel standard deviation from the model's metadata (or MNIST's).
    pub std: f32,
    /// The model's ONNX metadata properties.
    pub metadata: BTreeMap<String, String>,
    /// Hex SHA-256 of the model file.
    pub sha256: String,
}
