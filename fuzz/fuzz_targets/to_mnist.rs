//! Preprocessing on decoded images of every pixel type and any size up to
//! 64x64, with arbitrary contents: blank, saturated, one pixel, transparent,
//! 16-bit, floating point (NaN and infinities included). Random bytes seldom
//! decode as a file, so this reaches the arithmetic that
//! `decode_preprocess` rarely gets to.

#![no_main]

use arbitrary::Arbitrary;
use image::{DynamicImage, ImageBuffer};
use libfuzzer_sys::fuzz_target;
use mnist::{IMAGE_PIXELS, preprocess::to_mnist};

#[derive(Debug, Arbitrary)]
struct Image {
    kind: u8,
    width: u8,
    height: u8,
    data: Vec<u8>,
}

fn build(image: &Image) -> Option<DynamicImage> {
    let (w, h) = (u32::from(image.width % 64) + 1, u32::from(image.height % 64) + 1);
    let bytes = |channels: u32| -> Option<Vec<u8>> {
        let needed = (w * h * channels) as usize;
        (image.data.len() >= needed).then(|| image.data[..needed].to_vec())
    };
    let words = |channels: u32| -> Option<Vec<u16>> {
        let raw = bytes(channels * 2)?;
        Some(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
    };
    let floats = |channels: u32| -> Option<Vec<f32>> {
        let raw = bytes(channels * 4)?;
        Some(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    Some(match image.kind % 8 {
        0 => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, bytes(1)?)?),
        1 => DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, bytes(2)?)?),
        2 => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, bytes(3)?)?),
        3 => DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, bytes(4)?)?),
        4 => DynamicImage::ImageLuma16(ImageBuffer::from_raw(w, h, words(1)?)?),
        5 => DynamicImage::ImageRgba16(ImageBuffer::from_raw(w, h, words(4)?)?),
        6 => DynamicImage::ImageRgb32F(ImageBuffer::from_raw(w, h, floats(3)?)?),
        _ => DynamicImage::ImageRgba32F(ImageBuffer::from_raw(w, h, floats(4)?)?),
    })
}

fuzz_target!(|image: Image| {
    if let Some(decoded) = build(&image) {
        assert_eq!(to_mnist(&decoded).len(), IMAGE_PIXELS);
    }
});
