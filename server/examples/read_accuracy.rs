//! How well `mnist::read` and the model read handwritten numbers
//! (`mnist::synth` number photos of 2-8 MNIST digits), per spacing and per
//! condition: the share of numbers read exactly, digit for digit, and how
//! well the reading's confidence is calibrated. Inference runs in-process
//! through the server's own backend, on the same candidates the server's
//! `Read` batches.
//!
//! Run: `cargo run --release -p mnist-server --example read_accuracy -- [--per-cell N] [--page-side PX] [--seed S] [--split test|train|validation] [--model PATH] [--second-model PATH] [--check-model PATH|none] [--write DIR]`
//! (`--write DIR` saves each misread photo and its annotated reading, and
//! each photo the check read right that the reader alone misread;
//! `--second-model PATH` also reads each photo with that model, the way
//! its metadata says, and keeps the surer of the two readings: the
//! ensemble docs/reading-numbers.md measures; `--check-model` is the
//! single-digit model that checks the digits standing alone, as the server
//! does with `--check-model`: `models/mnist-three-block.onnx` unless
//! `none`; the table also says how many were read right before the check.)
//! `--split validation` draws
//! the digits from the last 5,000 training images, which neither the
//! digit models nor the line sets' training strips contain: models trained
//! on more training strips are compared there without the test digits.

#[path = "support/logits.rs"]
mod support;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use mnist::{
    dataset::{Mnist, Split, VALIDATION_IMAGES, default_dir},
    preprocess::{DecodeLimits, decode},
    read::{Method, Reading, Segmentation, draw, segment},
    synth::{Condition, PhotoGenerator, Spacing},
};
use mnist_server::{
    backend::{OnnxBackend, RuntimeOptions},
    config::Device,
};

type AnyError = Box<dyn std::error::Error>;

/// Which MNIST digits the numbers are written with.
#[derive(Debug, Clone, Copy)]
enum Digits {
    Test,
    /// All 60,000 training images (the training strips' digits among them).
    Train,
    /// The last 5,000 training images, held out by every model.
    Validation,
}

/// One number read: its spacing and condition, whether it was read exactly,
/// the reading's confidence and the number of digits.
type Outcome = (Spacing, Condition, bool, f32, usize);

fn main() -> Result<(), AnyError> {
    let (mut per_cell, mut page_side, mut seed, mut split, mut write) = (20usize, 640u32, 7u64, Digits::Test, None);
    let mut model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist.onnx");
    let mut second = None;
    let mut check = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist-three-block.onnx"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--per-cell" => per_cell = value()?.parse()?,
            "--page-side" => page_side = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--split" => {
                split = match value()?.as_str() {
                    "test" => Digits::Test,
                    "train" => Digits::Train,
                    "validation" => Digits::Validation,
                    other => return Err(format!("--split is test, train or validation, not {other}").into()),
                }
            }
            "--model" => model = PathBuf::from(value()?),
            "--write" => write = Some(PathBuf::from(value()?)),
            "--second-model" => second = Some(PathBuf::from(value()?)),
            "--check-model" => {
                check = match value()?.as_str() {
                    "none" => None,
                    path => Some(PathBuf::from(path)),
                }
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let options = RuntimeOptions { device: Device::Cpu, intra_threads: 0, spinning: false, sessions: 1 };
    // Each model file says how it reads (its ONNX metadata); cuts if it does not.
    let mut readers = Vec::new();
    for path in std::iter::once(&model).chain(&second) {
        let (backend, description) = OnnxBackend::load(path, &options)?;
        readers.push((backend, Method::of_model(&description.metadata)));
    }
    let method = readers[0].1;
    let mut checker = match &check {
        Some(path) => Some(OnnxBackend::load(path, &options)?.0),
        None => None,
    };
    let data = match split {
        Digits::Test => Mnist::load(&default_dir(), Split::Test)?,
        Digits::Train => Mnist::load(&default_dir(), Split::Train)?,
        Digits::Validation => Mnist::load(&default_dir(), Split::Train)?.split_off_last(VALIDATION_IMAGES),
    };
    let mut generator = PhotoGenerator::new(seed, page_side);
    let limits = DecodeLimits::default();

    let name = |path: &PathBuf| path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
    let mut also = match (&second, readers.get(1)) {
        (Some(path), Some((_, method))) => {
            format!(", and {} (reads {}), the surer reading kept", name(path), method.name())
        }
        _ => String::new(),
    };
    if let Some(path) = &check {
        also += &format!("; digits standing alone checked by {}", name(path));
    }
    println!(
        "{per_cell} numbers per spacing and condition, 2-8 digits from MNIST {split:?}, pages of {page_side} px, seed {seed}, model {} (reads {}){also}\n",
        name(&model),
        method.name()
    );
    let mut results: Vec<Outcome> = Vec::new();
    // Numbers read exactly before the check, by spacing.
    let mut right_unchecked = std::collections::BTreeMap::new();
    let (mut segmenting, mut photos) = (Duration::ZERO, 0u32);
    // Misread numbers whose every digit had a candidate matching it.
    let mut misread_with_candidates = std::collections::BTreeMap::new();
    // Misread numbers by what went wrong: a digit lost, one too many, one misread.
    let mut misread_kinds = std::collections::BTreeMap::new();
    for spacing in Spacing::ALL {
        for condition in Condition::NUMBERS {
            for n in 0..per_cell {
                let indices = generator.pick_number(data.len());
                let length = indices.len();
                let truth: String = indices.iter().map(|&i| char::from(b'0' + data.labels[i])).collect();
                let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
                let (photo, boxes) = generator.number_jpeg_with_boxes(&digits, spacing, condition);
                let started = Instant::now();
                let image = decode(&photo, &limits)?;
                let decoding = started.elapsed();
                let Read { segmentation, reading, unchecked, segmenting: segmented, .. } =
                    read_surest(&mut readers, checker.as_mut(), &image)?;
                *right_unchecked.entry(spacing.name()).or_insert(0usize) += usize::from(unchecked == truth);
                segmenting += decoding + segmented;
                photos += 1;
                let right = reading.text == truth;
                if !right {
                    let covered = boxes.iter().all(|b| {
                        segmentation.candidates.iter().any(|c| {
                            let r = c.bounds;
                            overlap([r.x, r.y, r.x + r.width, r.y + r.height], *b) >= 0.6
                        })
                    });
                    *misread_with_candidates.entry(spacing.name()).or_insert(0) += usize::from(covered);
                    let kind = if reading.text.len() < truth.len() {
                        "too few digits"
                    } else if reading.text.len() > truth.len() {
                        "too many digits"
                    } else {
                        "a digit misread"
                    };
                    *misread_kinds.entry((spacing.name(), kind)).or_insert(0usize) += 1;
                }
                if let (Some(dir), true) = (&write, right && unchecked != truth) {
                    // A photo the check read right: server/tests/fixtures holds one.
                    let name =
                        format!("checked-{}-{}-{n:03}-{truth}-unchecked-{unchecked}", spacing.name(), condition.name());
                    std::fs::create_dir_all(dir)?;
                    std::fs::write(dir.join(format!("{name}.jpg")), &photo)?;
                }
                if let (Some(dir), false) = (&write, right) {
                    let name = format!("{}-{}-{n:03}-{truth}-read-{}", spacing.name(), condition.name(), reading.text);
                    std::fs::create_dir_all(dir)?;
                    std::fs::write(dir.join(format!("{name}.jpg")), &photo)?;
                    draw::annotated(&image, &segmentation, &reading).save(dir.join(format!("{name}.png")))?;
                }
                results.push((spacing, condition, right, reading.confidence, length));
            }
        }
    }

    let share = |filter: &dyn Fn(&Outcome) -> bool| {
        let chosen: Vec<_> = results.iter().filter(|r| filter(r)).collect();
        let right = chosen.iter().filter(|r| r.2).count();
        (right, chosen.len())
    };
    println!("| spacing | {} | all |", Condition::NUMBERS.map(|c| c.name()).join(" | "));
    println!("|---|{}---:|", "---:|".repeat(Condition::NUMBERS.len()));
    for spacing in Spacing::ALL {
        let cells: Vec<String> = Condition::NUMBERS
            .iter()
            .map(|&c| {
                let (right, total) = share(&|r| r.0 == spacing && r.1 == c);
                format!("{right}/{total}")
            })
            .collect();
        let (right, total) = share(&|r| r.0 == spacing);
        println!("| {} | {} | **{:.3}** ({right}/{total}) |", spacing.name(), cells.join(" | "), ratio(right, total));
    }
    let (right, total) = share(&|_| true);
    println!("| **all** | | | | | | **{:.4}** ({right}/{total}) |", ratio(right, total));
    println!("\n| digits | exact |\n|---:|---:|");
    for length in 2..=8 {
        let (right, total) = share(&|r| r.4 == length);
        println!("| {length} | {:.3} ({right}/{total}) |", ratio(right, total));
    }

    // Calibration: numbers binned by confidence, the share right in each.
    println!("\n| confidence | numbers | mean confidence | share right |\n|---|---:|---:|---:|");
    let bins = [0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.01];
    let mut ece = 0.0;
    for edge in bins.windows(2) {
        let chosen: Vec<_> = results.iter().filter(|r| f64::from(r.3) >= edge[0] && f64::from(r.3) < edge[1]).collect();
        if chosen.is_empty() {
            continue;
        }
        let mean = chosen.iter().map(|r| f64::from(r.3)).sum::<f64>() / chosen.len() as f64;
        let right = chosen.iter().filter(|r| r.2).count() as f64 / chosen.len() as f64;
        ece += (mean - right).abs() * chosen.len() as f64 / results.len() as f64;
        println!("| {:.2}-{:.2} | {} | {mean:.3} | {right:.3} |", edge[0], edge[1].min(1.0), chosen.len());
    }
    println!(
        "\nmisread although every digit had a matching candidate (a choosing error; every window of a line matches): {misread_with_candidates:?}"
    );
    println!("\nmisreads by kind: {misread_kinds:?}");
    if check.is_some() {
        let all: usize = right_unchecked.values().sum();
        println!("\nread exactly before the check of digits standing alone: {all} {right_unchecked:?}");
    }
    println!("\nexpected calibration error (these bins): {ece:.3}");
    println!(
        "segmentation: {:.1} ms per photo (mean, decode included)",
        segmenting.as_secs_f64() * 1e3 / f64::from(photos)
    );
    time_by_size(&mut readers, checker.as_mut(), &data, seed, write.as_deref())
}

/// Time per photo of a 6-digit number, by size: decoding, segmenting,
/// classifying every candidate in one batch and choosing (medians of 9).
/// The 4000x3000 photo is a phone's 4:3 frame with the number across it.
fn time_by_size(
    readers: &mut [(OnnxBackend, Method)],
    mut checker: Option<&mut OnnxBackend>,
    data: &Mnist,
    seed: u64,
    write: Option<&std::path::Path>,
) -> Result<(), AnyError> {
    let limits = DecodeLimits::default();
    let digits: Vec<&[u8]> = (0..6).map(|i| data.image(i)).collect();
    let truth: String = (0..6).map(|i| char::from(b'0' + data.labels[i])).collect();
    println!("\n| photo | read (of {truth}) | candidates | decode ms | segment ms | classify + choose ms | read ms |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (name, side) in [("640 px", 640u32), ("4000x3000", 4000)] {
        let mut generator = PhotoGenerator::new(seed, 640);
        let (page, _) = generator.number(&digits, Spacing::Normal, Condition::UnevenLight);
        let page = if side > 640 {
            let (w, h) = (3600, page.height() * 3600 / page.width());
            let mut frame = image::RgbImage::from_pixel(4000, 3000, image::Rgb([225, 225, 220]));
            let number = image::imageops::resize(&page, w, h, image::imageops::FilterType::Triangle);
            image::imageops::overlay(&mut frame, &number, 200, i64::from((3000 - h) / 2));
            frame
        } else {
            page
        };
        let mut bytes = Vec::new();
        image::DynamicImage::ImageRgb8(page)
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)?;
        let (mut decoding, mut segmenting, mut classifying, mut candidates) = (Vec::new(), Vec::new(), Vec::new(), 0);
        let mut text = String::new();
        for _ in 0..9 {
            let started = Instant::now();
            let image = decode(&bytes, &limits)?;
            let decoded = started.elapsed();
            let read = read_surest(readers, checker.as_deref_mut(), &image)?;
            let (segmentation, reading) = (read.segmentation, read.reading);
            if let (Some(dir), true) = (write, reading.text != truth && text.is_empty()) {
                std::fs::create_dir_all(dir)?;
                let name = format!("size-{side}-{truth}-read-{}", reading.text);
                std::fs::write(dir.join(format!("{name}.jpg")), &bytes)?;
                draw::annotated(&image, &segmentation, &reading).save(dir.join(format!("{name}.png")))?;
            }
            text = reading.text;
            decoding.push(decoded.as_secs_f64() * 1e3);
            segmenting.push(read.segmenting.as_secs_f64() * 1e3);
            classifying.push(read.classifying.as_secs_f64() * 1e3);
            candidates = read.candidates;
        }
        let (d, g, c) = (median(&mut decoding), median(&mut segmenting), median(&mut classifying));
        println!("| {name} | {text} | {candidates} | {d:.1} | {g:.1} | {c:.1} | **{:.1}** |", d + g + c);
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes.
fn overlap(a: [u32; 4], b: [u32; 4]) -> f32 {
    let w = a[2].min(b[2]).saturating_sub(a[0].max(b[0]));
    let h = a[3].min(b[3]).saturating_sub(a[1].max(b[1]));
    let inter = (w * h) as f32;
    let area = |r: [u32; 4]| ((r[2] - r[0]) * (r[3] - r[1])) as f32;
    inter / (area(a) + area(b) - inter).max(1.0)
}

fn ratio(right: usize, total: usize) -> f64 {
    right as f64 / total.max(1) as f64
}

/// One photo read by every reader: the surest reading (the first reader's
/// on a tie), as the server chooses, its digits standing alone checked,
/// and what it cost.
struct Read {
    segmentation: Segmentation,
    reading: Reading,
    /// The reading's text before the check.
    unchecked: String,
    /// Candidates of all readers.
    candidates: usize,
    /// Segmenting, for all readers.
    segmenting: Duration,
    /// Classifying every candidate and choosing, for all readers, and the check.
    classifying: Duration,
}

fn read_surest(
    readers: &mut [(OnnxBackend, Method)],
    checker: Option<&mut OnnxBackend>,
    image: &image::DynamicImage,
) -> Result<Read, AnyError> {
    let mut surest: Option<(Segmentation, Reading)> = None;
    let (mut candidates, mut segmenting, mut classifying) = (0, Duration::ZERO, Duration::ZERO);
    for (backend, method) in readers.iter_mut() {
        let started = Instant::now();
        let segmentation = segment(image, *method);
        let segmented = Instant::now();
        let pixels: Vec<&[u8]> = segmentation.candidates.iter().map(|c| c.pixels.as_slice()).collect();
        let logits = support::logits(backend, &pixels)?;
        let reading = segmentation.read(&logits, None)?;
        segmenting += segmented - started;
        classifying += segmented.elapsed();
        candidates += segmentation.candidates.len();
        if surest.as_ref().is_none_or(|(_, best)| reading.is_surer_than(best)) {
            surest = Some((segmentation, reading));
        }
    }
    let (segmentation, mut reading) = surest.ok_or("no model to read with")?;
    let unchecked = reading.text.clone();
    if let Some(checker) = checker {
        let started = Instant::now();
        support::check(checker, &mut reading)?;
        classifying += started.elapsed();
    }
    Ok(Read { segmentation, reading, unchecked, candidates, segmenting, classifying })
}
