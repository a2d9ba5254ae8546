//! Shared core of the MNIST digit service.
//!
//! The server, the client and the trainer all depend on this crate so that
//! they agree, byte for byte, on three things:
//! - the gRPC contract ([`proto`]), generated from `proto/` at build time;
//! - the MNIST data files ([`dataset`]): IDX parsing and checksums;
//! - how an arbitrary image becomes a 28x28 MNIST-style digit
//!   ([`preprocess`]), so that a file sent as encoded bytes and the same file
//!   preprocessed by the client give the same prediction.

pub mod dataset;
#[cfg(feature = "download")]
pub mod download;
mod error;
pub mod preprocess;
pub mod proto;
pub mod read;
pub mod scoring;
#[cfg(feature = "synth")]
pub mod synth;
pub mod verdict;

pub use error::{Error, Result};

/// Side of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;

/// Pixels in one MNIST image (28 x 28).
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Number of classes: the digits 0 to 9.
pub const NUM_CLASSES: usize = 10;

/// Mean of the MNIST training pixels scaled to [0, 1]. The model expects
/// `(pixel / 255 - PIXEL_MEAN) / PIXEL_STD`.
pub const PIXEL_MEAN: f32 = 0.1307;

/// Standard deviation of the MNIST training pixels scaled to [0, 1].
pub const PIXEL_STD: f32 = 0.3081;

/// Normalizes 8-bit MNIST pixels into model input values, appending to `out`.
///
/// `mean` and `std` are usually [`PIXEL_MEAN`] and [`PIXEL_STD`]; the server
/// takes them from the model's metadata so that a model trained with other
/// constants is still fed correctly.
pub fn normalize_into(pixels: &[u8], mean: f32, std: f32, out: &mut Vec<f32>) {
    let scale = 1.0 / (255.0 * std);
    let offset = mean / std;
    out.extend(pixels.iter().map(|&p| f32::from(p) * scale - offset));
}

/// Softmax of `logits`, computed stably (the maximum is subtracted first).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first one on ties); `None` for an empty slice.
pub fn argmax(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f32)>, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_matches_reference_transform() {
        let mut out = Vec::new();
        normalize_into(&[0, 255], PIXEL_MEAN, PIXEL_STD, &mut out);
        assert!((out[0] - (-0.1307 / 0.3081)).abs() < 1e-6);
        assert!((out[1] - ((1.0 - 0.1307) / 0.3081)).abs() < 1e-5);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1001.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), Some(1));
    }

    #[test]
    fn argmax_takes_first_of_ties_and_none_for_empty() {
        assert_eq!(argmax(&[0.5, 0.5]), Some(0));
        assert_eq!(argmax(&[]), None);
    }
}
