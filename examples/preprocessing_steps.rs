//! Draws the pictures of `docs/preprocessing.md`: one hard photo (a digit on
//! ruled paper under a shadow, from `mnist::synth`) and every intermediate
//! image of the preprocessing (`mnist::preprocess::to_mnist_steps`), plus
//! the same for a small digit among dust specks.
//!
//! Run: `MNIST_DIR=... cargo run --release --features synth --example preprocessing_steps -- [OUT_DIR]`
//! (default `docs/img/preprocessing`).

use std::path::PathBuf;

use image::{DynamicImage, imageops};
use mnist::{
    dataset::{Mnist, Split, default_dir},
    preprocess::to_mnist_steps,
    synth::{Condition, PhotoGenerator},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs/img/preprocessing".into()));
    std::fs::create_dir_all(&out)?;
    let test = Mnist::load(&default_dir(), Split::Test)?;
    for (name, condition, index, seed) in
        [("shadow-ruled", Condition::ShadowOnRuled, 11, 3), ("small-specks", Condition::SmallWithSpecks, 21, 5)]
    {
        let mut generator = PhotoGenerator::new(seed, 480);
        let photo = image::load_from_memory(&generator.photo_jpeg(test.image(index), condition))?;
        photo.save(out.join(format!("{name}-0-photo.png")))?;
        for (step, (what, image)) in to_mnist_steps(&photo).into_iter().enumerate() {
            // The 28x28 result is drawn large enough to see its pixels.
            let image = if image.width() == 28 {
                imageops::resize(&image, 168, 168, imageops::FilterType::Nearest)
            } else {
                image
            };
            DynamicImage::ImageLuma8(image).save(out.join(format!("{name}-{}.png", step + 1)))?;
            println!("{name}-{}.png: {what}", step + 1);
        }
        println!("{name}: label {}", test.labels[index]);
    }
    Ok(())
}
