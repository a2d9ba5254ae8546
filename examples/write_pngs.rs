//! Writes MNIST test digits as 8-bit grayscale PNG files named
//! `NNNNN-label-L.png`, for the predict benchmark.
//!
//! Run: `cargo run --release --example write_pngs -- DIR [COUNT]`

use std::path::PathBuf;

use image::GrayImage;
use mnist::dataset::{Mnist, Split, default_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: write_pngs DIR [COUNT]")?);
    let count: usize = args.next().map(|c| c.to_string_lossy().parse()).transpose()?.unwrap_or(10_000);
    let test = Mnist::load(&default_dir(), Split::Test)?;
    std::fs::create_dir_all(&dir)?;
    for i in 0..count.min(test.len()) {
        let image = GrayImage::from_raw(28, 28, test.image(i).to_vec()).ok_or("bad image")?;
        image.save(dir.join(format!("{i:05}-label-{}.png", test.labels[i])))?;
    }
    println!("wrote {} PNG files to {}", count.min(test.len()), dir.display());
    Ok(())
}
