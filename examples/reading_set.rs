//! Writes the reading set: 28x28 candidates cut by `mnist::read` from
//! seeded photos of handwritten numbers (`mnist::synth`, digits from the
//! first 55,000 MNIST training images, so the validation split stays
//! unseen), labelled by where the generator put each digit. A candidate that
//! is one whole digit is labelled with it (a cut digit with a sliver of its
//! neighbour teaches the model what cut digits look like); one that is not a
//! digit at all (half a digit, two digits squeezed into one box) is labelled
//! 10: `mnist-train --reading-set` teaches the model to be unsure of those,
//! which is what lets `mnist::read` choose between cuts. Candidates between
//! the two (nearly a digit) are left out.
//!
//! Run: `MNIST_DIR=... cargo run --release --features synth --example reading_set -- DIR [--photos N] [--seed S]`
//! Writes `DIR/reading-images-idx3-ubyte` and `DIR/reading-labels-idx1-ubyte`.

use std::path::PathBuf;

use mnist::{
    IMAGE_PIXELS,
    dataset::{Mnist, Split, default_dir},
    preprocess::{DecodeLimits, decode},
    read::{Method, segment},
    synth::{Condition, PhotoGenerator, Spacing},
};

/// The training images numbers are drawn from (the rest is validation).
const TRAINING_IMAGES: usize = 55_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut photos, mut seed) = (None, 8000usize, 2024u64);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--photos" => photos = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            other if !other.starts_with('-') && dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = dir.ok_or("usage: reading_set DIR [--photos N] [--seed S]")?;
    std::fs::create_dir_all(&dir)?;
    let data = Mnist::load(&default_dir(), Split::Train)?;
    let limits = DecodeLimits::default();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let sides = [320u32, 480, 640, 960];
    let mut generators: Vec<PhotoGenerator> =
        sides.iter().enumerate().map(|(i, &side)| PhotoGenerator::new(seed + i as u64, side)).collect();
    for n in 0..photos {
        let generator = &mut generators[n % sides.len()];
        // Touching digits three times as often: they are where cuts are chosen.
        let spacings =
            [Spacing::Wide, Spacing::Normal, Spacing::Close, Spacing::Touching, Spacing::Touching, Spacing::Touching];
        let spacing = spacings[(n / sides.len()) % spacings.len()];
        let condition = Condition::NUMBERS[(n / (sides.len() * spacings.len())) % Condition::NUMBERS.len()];
        let indices = generator.pick_number(TRAINING_IMAGES.min(data.len()));
        let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
        let (photo, boxes) = generator.number_jpeg_with_boxes(&digits, spacing, condition);
        let segmentation = segment(&decode(&photo, &limits)?, Method::Cuts);
        for candidate in &segmentation.candidates {
            let b = candidate.bounds;
            let found = [b.x, b.y, b.x + b.width, b.y + b.height];
            let overlaps: Vec<f32> = boxes.iter().map(|&truth| iou(found, truth)).collect();
            let (best, best_iou) =
                overlaps.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0));
            let covers_another = boxes
                .iter()
                .enumerate()
                .any(|(i, &truth)| i != best && intersection(found, truth) > 0.25 * area(truth));
            let label = if best_iou >= 0.7 && !covers_another {
                data.labels[indices[best]]
            } else if best_iou < 0.45 || covers_another {
                10
            } else {
                continue;
            };
            images.extend_from_slice(&candidate.pixels);
            labels.push(label);
        }
        if (n + 1) % 1000 == 0 {
            eprintln!("{} photos, {} candidates", n + 1, labels.len());
        }
    }
    let count = labels.len() as u32;
    let mut image_file = vec![0, 0, 8, 3];
    for v in [count, 28, 28] {
        image_file.extend_from_slice(&v.to_be_bytes());
    }
    image_file.extend_from_slice(&images);
    let mut label_file = vec![0, 0, 8, 1];
    label_file.extend_from_slice(&count.to_be_bytes());
    label_file.extend_from_slice(&labels);
    std::fs::write(dir.join("reading-images-idx3-ubyte"), image_file)?;
    std::fs::write(dir.join("reading-labels-idx1-ubyte"), label_file)?;
    let negatives = labels.iter().filter(|&&l| l == 10).count();
    println!(
        "wrote {count} candidates ({} digits, {negatives} not digits) from {photos} photos to {}",
        labels.len() - negatives,
        dir.display()
    );
    assert_eq!(images.len(), labels.len() * IMAGE_PIXELS);
    Ok(())
}

fn area(r: [u32; 4]) -> f32 {
    (r[2].saturating_sub(r[0]) * r[3].saturating_sub(r[1])) as f32
}

fn intersection(a: [u32; 4], b: [u32; 4]) -> f32 {
    let w = a[2].min(b[2]).saturating_sub(a[0].max(b[0]));
    let h = a[3].min(b[3]).saturating_sub(a[1].max(b[1]));
    (w * h) as f32
}

fn iou(a: [u32; 4], b: [u32; 4]) -> f32 {
    let inter = intersection(a, b);
    inter / (area(a) + area(b) - inter).max(1.0)
}
