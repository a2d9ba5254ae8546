//! Any bytes as an image file: decoding (every enabled format) and MNIST
//! preprocessing must answer with pixels or an error, never panic, hang or
//! allocate past the limits.

#![no_main]

#[path = "../common.rs"]
mod common;

use common::LIMITS;
use libfuzzer_sys::fuzz_target;
use mnist::{IMAGE_PIXELS, preprocess::preprocess};

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = preprocess(data, &LIMITS) {
        assert_eq!(pixels.len(), IMAGE_PIXELS);
    }
});
