//! Writes seeded photos of handwritten numbers (`mnist::synth`): 2-8 MNIST
//! digits in a row, for every spacing and condition in turn, each file named
//! after what it shows: `NNNN-<spacing>-<condition>-<digits>.jpg`. The
//! tests, `scripts/read-peer.sh` (Tesseract side by side) and the README use
//! them.
//!
//! Run: `MNIST_DIR=... cargo run --release --features synth --example number_photos -- DIR [--count N] [--seed S] [--page-side PX] [--split test|train]`

use std::path::PathBuf;

use mnist::{
    dataset::{Mnist, Split, default_dir},
    synth::{Condition, PhotoGenerator, Spacing},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut count, mut seed, mut page_side, mut split) = (None, 40usize, 11u64, 640u32, Split::Test);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--count" => count = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--page-side" => page_side = value()?.parse()?,
            "--split" => split = if value()? == "train" { Split::Train } else { Split::Test },
            other if !other.starts_with('-') && dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = dir.ok_or("usage: number_photos DIR [--count N] [--seed S] [--page-side PX] [--split test|train]")?;
    std::fs::create_dir_all(&dir)?;
    let data = Mnist::load(&default_dir(), split)?;
    let mut generator = PhotoGenerator::new(seed, page_side);
    let cells: Vec<(Spacing, Condition)> =
        Spacing::ALL.iter().flat_map(|&s| Condition::NUMBERS.iter().map(move |&c| (s, c))).collect();
    for n in 0..count {
        let (spacing, condition) = cells[n % cells.len()];
        let indices = generator.pick_number(data.len());
        let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
        let text: String = indices.iter().map(|&i| char::from(b'0' + data.labels[i])).collect();
        let photo = generator.number_jpeg(&digits, spacing, condition);
        std::fs::write(dir.join(format!("{n:04}-{}-{}-{text}.jpg", spacing.name(), condition.name())), photo)?;
    }
    println!("wrote {count} photos of numbers to {}", dir.display());
    Ok(())
}
