//! What the examples that read numbers share: 28x28 images through a
//! model's ONNX Runtime backend in one batch, as the server's batcher runs
//! them, and the check of a reading's digits standing alone.

use mnist::{PIXEL_MEAN, PIXEL_STD, read::Reading};
use mnist_server::backend::{Backend, OnnxBackend};

/// The ten logits of each image (784 MNIST-style pixels), in one batch.
pub fn logits(backend: &mut OnnxBackend, images: &[&[u8]]) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = Vec::with_capacity(images.len() * mnist::IMAGE_PIXELS);
    mnist::normalize_into(&images.concat(), PIXEL_MEAN, PIXEL_STD, &mut input);
    Ok(backend.infer(&input, images.len())?.chunks(10).map(<[f32]>::to_vec).collect())
}

/// Checks the digits of `reading` that stand alone with the single-digit
/// model `checker`, as the server's `--check-model` does.
pub fn check(checker: &mut OnnxBackend, reading: &mut Reading) -> Result<(), Box<dyn std::error::Error>> {
    let alone: Vec<&[u8]> = reading.digits_to_check().into_iter().map(|(_, pixels)| pixels).collect();
    let logits = logits(checker, &alone)?;
    reading.check_digits(&logits)?;
    Ok(())
}
