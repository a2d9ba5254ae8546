//! Replays the decoding and IDX fuzzers' seeds and every input they ever
//! crashed on (`fuzz/seeds/<target>`, `fuzz/regressions/<target>`) through
//! the same checks as their targets in `fuzz/fuzz_targets/`, so that a
//! fixed crash stays fixed without needing nightly Rust or libFuzzer.

#[path = "../fuzz/common.rs"]
mod fuzz;

use std::path::Path;

use fuzz::LIMITS;
use mnist::{
    IMAGE_PIXELS,
    dataset::{parse_images, parse_labels},
    preprocess::preprocess,
};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    fuzz::stored_inputs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz"), target)
}

#[test]
fn image_seeds_and_past_crashes_decode_or_fail_cleanly() {
    let inputs = inputs("decode_preprocess");
    assert!(inputs.len() >= 10, "the image seeds are missing");
    let mut decoded = 0;
    for (name, bytes) in inputs {
        if let Ok(pixels) = preprocess(&bytes, &LIMITS) {
            assert_eq!(pixels.len(), IMAGE_PIXELS, "{name}");
            decoded += 1;
        }
    }
    // The seeds are valid files in every enabled format.
    assert!(decoded >= 10, "only {decoded} seeds decoded");
}

#[test]
fn idx_seeds_and_past_crashes_parse_or_fail_cleanly() {
    for (name, bytes) in inputs("idx") {
        let path = Path::new(&name);
        if let Ok(images) = parse_images(&bytes, path) {
            assert_eq!(images.len() % IMAGE_PIXELS, 0, "{name}");
        }
        let _ = parse_labels(&bytes, path);
    }
}

#[test]
fn read_seeds_and_past_crashes_read_cleanly() {
    let inputs = inputs("read");
    assert!(!inputs.is_empty(), "the read seeds are missing");
    for (name, bytes) in inputs {
        // The seeds are photo files; the target also wraps them in its
        // arbitrary structure, so raw files are replayed as files.
        let Ok(image) = mnist::preprocess::decode(&bytes, &LIMITS) else { continue };
        for method in [mnist::read::Method::Cuts, mnist::read::Method::Windows] {
            let segmentation = mnist::read::segment(&image, method);
            let uniform = vec![vec![0.0; mnist::NUM_CLASSES]; segmentation.candidates.len()];
            let reading = segmentation.read(&uniform, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(reading.text.len(), reading.digits.len(), "{name}");
            assert!(reading.digits.iter().all(|d| d.bounds.x + d.bounds.width <= image.width()), "{name}");
        }
    }
}
