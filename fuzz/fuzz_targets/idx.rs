//! MNIST IDX files (images and labels) as training reads them: a corrupt or
//! truncated file gives an error naming it, never a panic or a huge
//! allocation from a lying header.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mnist::dataset::{parse_images, parse_labels};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    if let Ok(images) = parse_images(data, path) {
        assert_eq!(images.len() % mnist::IMAGE_PIXELS, 0);
    }
    let _ = parse_labels(data, path);
});
