//! Scoring an exported file in ONNX Runtime, the engine `mnist-server`
//! runs. The int8 model's figures come from here rather than from libtorch:
//! integer kernels round differently from a float simulation, and the card
//! must report what users will get.

use std::{path::Path, sync::OnceLock};

use mnist::{IMAGE_PIXELS, PIXEL_MEAN, PIXEL_STD, dataset::Mnist};
use ort::{environment::Environment, session::Session, value::TensorRef};

use crate::{Error, Result};

/// Images per run: large enough to amortize the call, small enough to keep
/// the input buffer at a few MB.
const BATCH: usize = 1000;

/// ONNX Runtime's process-wide environment, loaded once from
/// `$ORT_DYLIB_PATH` (what `scripts/env.sh` sets).
fn environment() -> Result<&'static Environment> {
    static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let library = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).ok_or_else(|| {
                "ORT_DYLIB_PATH is not set: point it at libonnxruntime.so (`source scripts/env.sh` after \
                 `scripts/setup.sh runtime`)"
                    .to_string()
            })?;
            ort::init_from(&library).map_err(|e| e.to_string())?.build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Runtime(e.clone()))
}

/// Loads ONNX Runtime now, so that a missing library is reported before
/// anything is written rather than after.
pub fn ensure_loaded() -> Result<()> {
    environment().map(|_| ())
}

/// Logits of every image of `data` (`len * 10` values, in order) from the
/// ONNX model at `path`.
pub fn logits(path: &Path, data: &Mnist) -> Result<Vec<f32>> {
    let runtime = |e: ort::Error| Error::Runtime(format!("{}: {e}", path.display()));
    let mut session = Session::builder(environment()?).map_err(runtime)?.commit_from_file(path).map_err(runtime)?;
    let mut logits = Vec::with_capacity(data.len() * 10);
    let mut input = Vec::with_capacity(BATCH * IMAGE_PIXELS);
    for pixels in data.images.chunks(BATCH * IMAGE_PIXELS) {
        let images = pixels.len() / IMAGE_PIXELS;
        input.clear();
        mnist::normalize_into(pixels, PIXEL_MEAN, PIXEL_STD, &mut input);
        let tensor = TensorRef::from_array_view(([images, 1, 28, 28], input.as_slice())).map_err(runtime)?;
        let outputs = session.run(ort::inputs!["input" => tensor]).map_err(runtime)?;
        let (shape, values) = outputs["logits"].try_extract_tensor::<f32>().map_err(runtime)?;
        if shape[..] != [images as i64, 10] {
            return Err(Error::Runtime(format!("{}: logits of shape {shape:?} for {images} images", path.display())));
        }
        logits.extend_from_slice(values);
    }
    Ok(logits)
}
