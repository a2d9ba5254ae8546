//! Writes `mnist::synth`'s photos of single digits to a folder, as the
//! second renderer (`scripts/second_renderer.py`) writes its own: one
//! subfolder per condition, `labels.csv` with `file,label,condition`, so
//! both renderers' photos are read and scored the same way (through
//! `mnist-client predict`, `scripts/score_photos.py`,
//! `scripts/eval-renderers.sh`).
//!
//! The digits are MNIST test images from `--first-index` on (default 6000:
//! the photo tests and `photo_accuracy` draw from the first 6,000).
//!
//! Run: `MNIST_DIR=... cargo run --release --features synth --example synth_photos -- OUT_DIR [--per-condition N] [--seed S] [--first-index I]`

use std::{fmt::Write as _, fs, path::PathBuf};

use mnist::{
    dataset::{Mnist, Split, default_dir},
    synth::{Condition, PhotoGenerator},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut out, mut per_condition, mut seed, mut first) = (None::<PathBuf>, 100usize, 2026u64, 6000usize);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--per-condition" => per_condition = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--first-index" => first = value()?.parse()?,
            _ if !arg.starts_with("--") && out.is_none() => out = Some(PathBuf::from(&arg)),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    let out = out.ok_or("usage: synth_photos OUT_DIR [--per-condition N] [--seed S] [--first-index I]")?;
    let test = Mnist::load(&default_dir(), Split::Test)?;
    let mut generator = PhotoGenerator::new(seed, 480);
    let mut labels = String::from("file,label,condition\n");
    let mut index = first;
    let conditions = Condition::ALL.into_iter().chain([Condition::Clean]).chain(Condition::HARDER);
    for condition in conditions {
        fs::create_dir_all(out.join(condition.name()))?;
        for n in 0..per_condition {
            let digit = index % test.len();
            index += 1;
            let label = test.labels[digit];
            let file = format!("{}/{n:04}-{label}.jpg", condition.name());
            fs::write(out.join(&file), generator.photo_jpeg(test.image(digit), condition))?;
            writeln!(labels, "{file},{label},{}", condition.name())?;
        }
    }
    fs::write(out.join("labels.csv"), labels)?;
    eprintln!("{} photos in {}", index - first, out.display());
    Ok(())
}
