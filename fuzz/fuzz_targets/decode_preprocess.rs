//! Any bytes as an image file: decoding (every enabled format) and MNIST
//! preprocessing must answer with pixels or an error, never panic, hang or
//! allocate past the limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mnist::{
    IMAGE_PIXELS,
    preprocess::{DecodeLimits, preprocess},
};

/// Small limits keep each run fast; the checks are the same as the server's.
const LIMITS: DecodeLimits = DecodeLimits { max_encoded_bytes: 1 << 20, max_side: 2048, max_pixels: 1 << 20 };

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = preprocess(data, &LIMITS) {
        assert_eq!(pixels.len(), IMAGE_PIXELS);
    }
});
