//! Reading numbers (`mnist::read`) on arbitrary input: encoded files of any
//! size within the limits, and decoded images of every pixel type up to
//! 512x128 with arbitrary contents. Segmentation must not panic, must give
//! a bounded number of candidates, and the reading chosen from any
//! classifier output must be consistent (as many characters as digits,
//! boxes inside the image, one candidate per digit), before and after its
//! digits standing alone are checked with any other output.

#![no_main]

#[path = "../common.rs"]
mod common;

use arbitrary::Arbitrary;
use image::{DynamicImage, ImageBuffer};
use libfuzzer_sys::fuzz_target;
use mnist::{
    IMAGE_PIXELS, NUM_CLASSES,
    preprocess::decode,
    read::{
        MAX_PIECES, MAX_PIECES_PER_DIGIT, Method,
        line::{MAX_DIGITS, MAX_FRAMES, READING_VIEWS},
        segment,
    },
};

#[derive(Debug, Arbitrary)]
enum Input {
    /// File bytes, decoded with the server's checks.
    Encoded(Vec<u8>),
    /// An image built directly.
    Built { kind: u8, width: u16, height: u8, fill: u8, data: Vec<u8> },
}

#[derive(Debug, Arbitrary)]
struct Case {
    input: Input,
    expected_digits: Option<u8>,
    /// Seeds the stand-in classifier's probabilities.
    scores: Vec<u8>,
}

fn build(kind: u8, width: u16, height: u8, fill: u8, data: &[u8]) -> Option<DynamicImage> {
    let (w, h) = (u32::from(width % 512) + 1, u32::from(height % 128) + 1);
    // Short data repeats `fill`: large images without large inputs.
    let bytes = |channels: u32| -> Vec<u8> {
        let needed = (w * h * channels) as usize;
        data.iter().copied().chain(std::iter::repeat(fill)).take(needed).collect()
    };
    Some(match kind % 4 {
        0 => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, bytes(1))?),
        1 => DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, bytes(2))?),
        2 => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, bytes(3))?),
        _ => DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, bytes(4))?),
    })
}

fuzz_target!(|case: Case| {
    let image = match &case.input {
        Input::Encoded(bytes) => match decode(bytes, &common::LIMITS) {
            Ok(image) => image,
            Err(_) => return,
        },
        Input::Built { kind, width, height, fill, data } => match build(*kind, *width, *height, *fill, data) {
            Some(image) => image,
            None => return,
        },
    };
    for method in [Method::Cuts, Method::Windows] {
        let segmentation = segment(&image, method);
        let (most_candidates, most_digits) = match method {
            Method::Cuts => (MAX_PIECES * MAX_PIECES_PER_DIGIT, MAX_PIECES),
            Method::Windows => (MAX_FRAMES * READING_VIEWS.len(), MAX_DIGITS),
        };
        assert!(segmentation.candidates.len() <= most_candidates);
        // Arbitrary logits, from -8 to 8.
        let logits: Vec<Vec<f32>> = (0..segmentation.candidates.len())
            .map(|i| {
                (0..NUM_CLASSES)
                    .map(|d| f32::from(case.scores.get(i * NUM_CLASSES + d).copied().unwrap_or(128)) / 16.0 - 8.0)
                    .collect()
            })
            .collect();
        let mut reading = segmentation
            .read(&logits, case.expected_digits.map(usize::from))
            .expect("logits of the right shape are read");
        // The check of the digits standing alone, with other arbitrary logits:
        // which digit may change, never how many nor where.
        let alone = reading.digits_to_check();
        assert!(alone.iter().all(|(_, pixels)| pixels.len() == IMAGE_PIXELS));
        let check: Vec<Vec<f32>> = (0..alone.len())
            .map(|i| {
                (0..NUM_CLASSES)
                    .map(|d| f32::from(case.scores.get(i * NUM_CLASSES + d).copied().unwrap_or(128)) / 16.0 - 8.0)
                    .rev()
                    .collect()
            })
            .collect();
        let before: Vec<_> = reading.digits.iter().map(|d| d.bounds).collect();
        reading.check_digits(&check).expect("one logit vector per digit alone is accepted");
        assert_eq!(reading.digits.iter().map(|d| d.bounds).collect::<Vec<_>>(), before);
        assert!((0.0..=1.0).contains(&reading.confidence), "{}", reading.confidence);
        assert_eq!(reading.text.len(), reading.digits.len());
        assert!(reading.digits.len() <= most_digits);
        for digit in &reading.digits {
            let b = digit.bounds;
            assert!(b.x + b.width <= image.width() && b.y + b.height <= image.height());
            assert_eq!(segmentation.candidates[digit.candidate].pixels.len(), IMAGE_PIXELS);
        }
    }
});
