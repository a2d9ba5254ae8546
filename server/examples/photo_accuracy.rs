//! How well preprocessing and the model read phone-style photos, per
//! condition (`mnist::synth`): each photo is an MNIST test digit (or, with
//! `--split validation`, one of the 5,000 training images every model holds
//! out for validation, to choose between models without the test set) on ruled or
//! squared paper, in uneven light, in faint pencil, small among specks, on a
//! clean scan, and under `Condition::HARDER` (short rules, marker strokes,
//! rotation, the frame, chalk, tiny crops, perspective)...
//! It also times the preprocessing of a 28x28 input, a 500x500 photo and a
//! 4000x3000 photo. Inference runs in-process through the server's own
//! backend, on the same 784 pixels the client would send first: a photo
//! whose polarity is uncertain (about 2 %) is read one way here, where the
//! client and the server read it both ways and arbitrate, and a photo with
//! no digit is counted as misread. `scripts/eval-renderers.sh` measures the
//! served answer.
//!
//! Run: `cargo run --release -p mnist-server --example photo_accuracy -- [--per-condition N] [--page-side PX] [--seed S] [--split test|validation] [--model PATH] [--write DIR]`
//! (`--write DIR` also saves each photo and the 28x28 image the model saw;
//! `--model` defaults to `models/mnist-photo.onnx`, the model that
//! classifies image files naming no model when the server serves it.)

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use mnist::{
    PIXEL_MEAN, PIXEL_STD,
    dataset::{Mnist, Split, VALIDATION_IMAGES, default_dir},
    preprocess::{DecodeLimits, preprocess},
    synth::{Condition, PhotoGenerator},
};
use mnist_server::{
    backend::{Backend, OnnxBackend, RuntimeOptions},
    config::Device,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut per_condition, mut page_side, mut seed, mut write) = (200usize, 480u32, 1u64, None::<PathBuf>);
    let mut validation = false;
    // The model a server serving the shipped models classifies files with.
    let mut model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist-photo.onnx");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--per-condition" => per_condition = value()?.parse()?,
            "--page-side" => page_side = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--split" => {
                validation = match value()?.as_str() {
                    "test" => false,
                    "validation" => true,
                    other => return Err(format!("--split is test or validation, not {other}").into()),
                }
            }
            "--write" => write = Some(PathBuf::from(value()?)),
            "--model" => model = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let options = RuntimeOptions { device: Device::Cpu, intra_threads: 0, spinning: false, sessions: 1 };
    let (mut backend, _) = OnnxBackend::load(&model, &options)?;
    let test = if validation {
        Mnist::load(&default_dir(), Split::Train)?.split_off_last(VALIDATION_IMAGES)
    } else {
        Mnist::load(&default_dir(), Split::Test)?
    };
    let limits = DecodeLimits::default();
    let mut generator = PhotoGenerator::new(seed, page_side);

    println!(
        "{per_condition} photos per condition of MNIST {} digits, pages of {page_side} px (longer side), seed {seed}, model {}\n",
        if validation { "validation" } else { "test" },
        model.file_name().and_then(|n| n.to_str()).unwrap_or("?")
    );
    // The last column reads the same digits as MNIST's own 28x28 images:
    // what the photo lost, apart from how hard the digits are.
    println!("| condition | right | share right | preprocessing ms per photo (mean) | the digits as 28x28 |");
    println!("|---|---:|---:|---:|---:|");
    let (mut all_right, mut all_total, mut all_digits_right) = (0usize, 0usize, 0usize);
    let mut rows = BTreeMap::new();
    // The phone-photo conditions, clean scans, then the harder ones
    // (`Condition::HARDER`): each gets its own slice of the test set.
    let conditions = Condition::ALL.into_iter().chain([Condition::Clean]).chain(Condition::HARDER);
    for (c, condition) in conditions.enumerate() {
        let mut pixels = Vec::with_capacity(per_condition * 784);
        let mut digits = Vec::with_capacity(per_condition * 784);
        let mut labels = Vec::with_capacity(per_condition);
        let mut preprocessing = Duration::ZERO;
        for n in 0..per_condition {
            // A different slice of the test set for each condition.
            let index = (c * per_condition + n) % test.len();
            let photo = generator.photo_jpeg(test.image(index), condition);
            let started = Instant::now();
            let digit = preprocess(&photo, &limits)?;
            preprocessing += started.elapsed();
            if let Some(dir) = &write {
                let dir = dir.join(condition.name());
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(format!("{n:04}-label-{}.jpg", test.labels[index])), &photo)?;
                image::GrayImage::from_raw(28, 28, digit.clone())
                    .ok_or("not 28x28")?
                    .save(dir.join(format!("{n:04}-label-{}.seen.png", test.labels[index])))?;
            }
            pixels.extend_from_slice(&digit);
            digits.extend_from_slice(test.image(index));
            labels.push(test.labels[index]);
        }
        let predictions = classify(&mut backend, &pixels)?;
        let right = predictions.iter().zip(&labels).filter(|(p, l)| **p == usize::from(**l)).count();
        let digits_right =
            classify(&mut backend, &digits)?.iter().zip(&labels).filter(|(p, l)| **p == usize::from(**l)).count();
        all_digits_right += digits_right;
        if let Some(dir) = &write {
            let misread: Vec<String> = predictions
                .iter()
                .zip(&labels)
                .enumerate()
                .filter(|(_, (p, l))| **p != usize::from(**l))
                .map(|(n, (p, l))| format!("{n:04}-label-{l}.jpg read as {p}\n"))
                .collect();
            std::fs::write(dir.join(condition.name()).join("misread.txt"), misread.concat())?;
        }
        all_right += right;
        all_total += labels.len();
        let ms = preprocessing.as_secs_f64() * 1e3 / per_condition.max(1) as f64;
        rows.insert(condition.name(), right as f64 / labels.len().max(1) as f64);
        println!(
            "| {} | {right}/{} | {:.3} | {ms:.2} | {:.3} |",
            condition.name(),
            labels.len(),
            right as f64 / labels.len() as f64,
            digits_right as f64 / labels.len() as f64
        );
    }
    println!(
        "| **all** | {all_right}/{all_total} | **{:.4}** | | {:.4} |",
        all_right as f64 / all_total as f64,
        all_digits_right as f64 / all_total as f64
    );
    let worst = rows.iter().min_by(|a, b| a.1.total_cmp(b.1)).map(|(n, v)| format!("{n} {v:.3}")).unwrap_or_default();
    println!("\nworst condition: {worst}");

    println!("\n| input | preprocessing ms (median of 9) |");
    println!("|---|---:|");
    let digit = test.image(0);
    let mut square = PhotoGenerator::new(seed, 500);
    let mut big = PhotoGenerator::new(seed, 4000);
    let inputs = [
        ("28x28 MNIST PNG", png_28(digit)?),
        ("500x500 photo (JPEG)", jpeg_square(&mut square, digit)),
        ("4000x3000 photo (JPEG)", big.photo_jpeg(digit, Condition::UnevenLight)),
    ];
    for (name, bytes) in inputs {
        let mut times: Vec<f64> = (0..9)
            .map(|_| {
                let started = Instant::now();
                let _ = preprocess(&bytes, &limits);
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("| {name} | {:.2} |", times[4]);
    }
    Ok(())
}

/// The most likely digit of each 784-pixel image.
fn classify(backend: &mut OnnxBackend, pixels: &[u8]) -> Result<Vec<usize>, Box<dyn std::error::Error>> {
    let mut predictions = Vec::new();
    for chunk in pixels.chunks(64 * 784) {
        let mut input = Vec::with_capacity(chunk.len());
        mnist::normalize_into(chunk, PIXEL_MEAN, PIXEL_STD, &mut input);
        let logits = backend.infer(&input, chunk.len() / 784)?;
        predictions.extend(logits.chunks(10).map(|l| mnist::argmax(l).unwrap_or(0)));
    }
    Ok(predictions)
}

fn png_28(digit: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut bytes = Vec::new();
    image::GrayImage::from_raw(28, 28, digit.to_vec())
        .ok_or("not 28x28")?
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    Ok(bytes)
}

/// A 500x500 photo: the generator's page, cropped square.
fn jpeg_square(generator: &mut PhotoGenerator, digit: &[u8]) -> Vec<u8> {
    let page = generator.photo(digit, Condition::Ruled);
    let side = page.width().min(page.height());
    let square = image::imageops::crop_imm(&page, 0, 0, side, side).to_image();
    let mut bytes = Vec::new();
    let _ = image::DynamicImage::ImageRgb8(square)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg);
    bytes
}
