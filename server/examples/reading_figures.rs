//! Draws the figures of docs/reading-numbers.md: for a photo of a number
//! of each spacing, the line's strip and the windows each digit was read in
//! (a window model; the pieces `mnist::read` cut it into, for a model that
//! reads cuts) on top, and the digits read, with the 28x28 each was read
//! from, beneath. The photos are
//! seeded `mnist::synth` numbers of MNIST test digits; the classifier is
//! the shipped reading model, in-process. And the check of digits standing
//! alone (`reading-checked.png`): a photo the window model misreads
//! (server/tests/fixtures/number-4289856.jpg), its reading before the
//! check and after it, and the digits alone with both readings.
//!
//! Run: `cargo run --release -p mnist-server --example reading_figures -- [OUT_DIR]` (default docs/img)

#[path = "support/logits.rs"]
mod support;

use std::path::PathBuf;

use image::{Rgb, RgbImage, imageops};
use mnist::{
    dataset::{Mnist, Split, default_dir},
    preprocess::{DecodeLimits, decode},
    read::{Method, draw, segment},
    synth::{Condition, PhotoGenerator, Spacing},
};
use mnist_server::{
    backend::{OnnxBackend, RuntimeOptions},
    config::Device,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::args().nth(1).map_or_else(|| root.join("docs/img"), PathBuf::from);
    std::fs::create_dir_all(&out)?;
    let options = RuntimeOptions { device: Device::Cpu, intra_threads: 0, spinning: false, sessions: 1 };
    let (mut backend, description) = OnnxBackend::load(&root.join("models/mnist-reader.onnx"), &options)?;
    let method = Method::of_model(&description.metadata);
    let data = Mnist::load(&default_dir(), Split::Test)?;
    let cases = [
        (Spacing::Wide, Condition::Ruled, [3usize, 14, 15, 92, 65]),
        (Spacing::Normal, Condition::UnevenLight, [26, 53, 58, 97, 93]),
        (Spacing::Touching, Condition::Clean, [23, 84, 62, 64, 33]),
        (Spacing::Touching, Condition::FaintPencil, [8, 32, 79, 50, 28]),
    ];
    for (n, (spacing, condition, indices)) in cases.into_iter().enumerate() {
        let mut generator = PhotoGenerator::new(40 + n as u64, 640);
        let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
        let photo = generator.number_jpeg(&digits, spacing, condition);
        let image = decode(&photo, &DecodeLimits::default())?;
        let segmentation = segment(&image, method);
        let pixels: Vec<&[u8]> = segmentation.candidates.iter().map(|c| c.pixels.as_slice()).collect();
        let reading = segmentation.read(&support::logits(&mut backend, &pixels)?, None)?;
        // A window model reads the line's strip: show it and the windows
        // each digit was read in; cuts show the pieces.
        let top = draw::windows(&segmentation, &reading).unwrap_or_else(|| draw::pieces(&image, &segmentation));
        let bottom = draw::annotated(&image, &segmentation, &reading);
        let mut figure =
            RgbImage::from_pixel(top.width().max(bottom.width()), top.height() + 8 + bottom.height(), Rgb([255; 3]));
        imageops::overlay(&mut figure, &top, 0, 0);
        imageops::overlay(&mut figure, &bottom, 0, i64::from(top.height() + 8));
        let truth: String = indices.iter().map(|&i| char::from(b'0' + data.labels[i])).collect();
        let name = format!("reading-{}-{}.png", spacing.name(), condition.name());
        figure.save(out.join(&name))?;
        println!(
            "{name}: {truth} read as {} (confidence {:.3}, {} pieces, {} candidates)",
            reading.text,
            reading.confidence,
            segmentation.piece_bounds.len(),
            segmentation.candidates.len()
        );
    }
    checked_figure(&root, &out, &mut backend, method, &options)
}

/// `reading-checked.png`: the fixture photo read by the window model alone
/// (top), its digits standing alone with the digit read before and after
/// the check by `mnist-three-block`, and the checked reading (bottom).
fn checked_figure(
    root: &std::path::Path,
    out: &std::path::Path,
    reader: &mut OnnxBackend,
    method: Method,
    options: &RuntimeOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut checker, _) = OnnxBackend::load(&root.join("models/mnist-three-block.onnx"), options)?;
    let photo = std::fs::read(root.join("server/tests/fixtures/number-4289856.jpg"))?;
    let image = decode(&photo, &DecodeLimits::default())?;
    let segmentation = segment(&image, method);
    let pixels: Vec<&[u8]> = segmentation.candidates.iter().map(|c| c.pixels.as_slice()).collect();
    let unchecked = segmentation.read(&support::logits(reader, &pixels)?, None)?;
    let mut checked = unchecked.clone();
    support::check(&mut checker, &mut checked)?;
    let parts = [
        draw::annotated(&image, &segmentation, &unchecked),
        draw::checked(&unchecked, &checked).ok_or("no digit stands alone")?,
        draw::annotated(&image, &segmentation, &checked),
    ];
    let width = parts.iter().map(RgbImage::width).max().unwrap_or(0);
    let height = parts.iter().map(|p| p.height() + 12).sum();
    let mut figure = RgbImage::from_pixel(width, height, Rgb([255; 3]));
    let mut top = 0;
    for part in &parts {
        imageops::overlay(&mut figure, part, 0, top);
        top += i64::from(part.height() + 12);
    }
    figure.save(out.join("reading-checked.png"))?;
    println!(
        "reading-checked.png: 4289856 read as {} by the window model alone ({:.3}), {} checked ({:.3})",
        unchecked.text, unchecked.confidence, checked.text, checked.confidence
    );
    Ok(())
}
