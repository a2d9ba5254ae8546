//! Writes the line set: the strips `mnist::read::line` makes of seeded
//! photos of handwritten numbers (`mnist::synth`), with the numbers they
//! hold, for `mnist-train train --line-set` (a window model read with CTC).
//! Training strips hold digits of the first 55,000 MNIST training images,
//! validation strips digits of the last 5,000 (the split every model holds
//! out), so the choice of model never sees the test digits.
//!
//! Run: `MNIST_DIR=... cargo run --release --features synth --example line_set -- DIR [--photos N] [--validation N] [--seed S]`
//! Writes, for each of `train` and `validation`, `DIR/SPLIT-strips` (each
//! strip's 28 rows one after the other, 8-bit, row-major) and
//! `DIR/SPLIT-index.tsv` (`offset`, `width` and `text` of each strip).

use std::{fmt::Write as _, path::PathBuf};

use mnist::{
    dataset::{Mnist, Split, VALIDATION_IMAGES, default_dir},
    preprocess::{DecodeLimits, decode},
    read::line_strip,
    synth::{Condition, PhotoGenerator, Spacing},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut photos, mut validation, mut seed) = (None, 40_000usize, 2_000usize, 4242u64);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--photos" => photos = value()?.parse()?,
            "--validation" => validation = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            other if !other.starts_with('-') && dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = dir.ok_or("usage: line_set DIR [--photos N] [--validation N] [--seed S]")?;
    std::fs::create_dir_all(&dir)?;
    let data = Mnist::load(&default_dir(), Split::Train)?;
    let training_images = data.len().saturating_sub(VALIDATION_IMAGES);
    write_split(&dir, "train", &data, 0..training_images, photos, seed)?;
    write_split(&dir, "validation", &data, training_images..data.len(), validation, seed + 1_000)?;
    Ok(())
}

/// Writes `count` strips of numbers whose digits are MNIST training images
/// `images`.
fn write_split(
    dir: &std::path::Path,
    name: &str,
    data: &Mnist,
    images: std::ops::Range<usize>,
    count: usize,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let limits = DecodeLimits::default();
    let sides = [320u32, 480, 640, 960];
    let mut generators: Vec<PhotoGenerator> =
        sides.iter().enumerate().map(|(i, &side)| PhotoGenerator::new(seed + i as u64, side)).collect();
    // Touching and close digits twice as often: they are the hard part.
    let spacings =
        [Spacing::Wide, Spacing::Normal, Spacing::Close, Spacing::Close, Spacing::Touching, Spacing::Touching];
    let (mut strips, mut index) = (Vec::new(), String::from("offset\twidth\ttext\n"));
    let mut skipped = 0;
    for n in 0..count {
        let generator = &mut generators[n % sides.len()];
        let spacing = spacings[(n / sides.len()) % spacings.len()];
        let condition = Condition::NUMBERS[(n / (sides.len() * spacings.len())) % Condition::NUMBERS.len()];
        let picked: Vec<usize> = generator.pick_number(images.len()).into_iter().map(|i| images.start + i).collect();
        let digits: Vec<&[u8]> = picked.iter().map(|&i| data.image(i)).collect();
        let text: String = picked.iter().map(|&i| char::from(b'0' + data.labels[i])).collect();
        let (photo, _) = generator.number_jpeg_with_boxes(&digits, spacing, condition);
        let Some(strip) = line_strip(&decode(&photo, &limits)?) else {
            skipped += 1;
            continue;
        };
        writeln!(index, "{}\t{}\t{text}", strips.len(), strip.width)?;
        strips.extend_from_slice(&strip.pixels);
        if (n + 1) % 5000 == 0 {
            eprintln!("{name}: {} photos", n + 1);
        }
    }
    std::fs::write(dir.join(format!("{name}-strips")), &strips)?;
    std::fs::write(dir.join(format!("{name}-index.tsv")), index)?;
    println!("{name}: {} strips ({skipped} photos without a line) in {}", count - skipped, dir.display());
    Ok(())
}
