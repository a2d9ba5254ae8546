//! Downloads the MNIST files missing from a directory and verifies all four.
//!
//! Run: `cargo run --example fetch_mnist --features download -- data/mnist`

use std::path::PathBuf;

use mnist::dataset::{Mnist, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(mnist::dataset::default_dir);
    mnist::download::ensure_downloaded(&dir, false)?;
    Mnist::load(&dir, Split::Train)?;
    Mnist::load(&dir, Split::Test)?;
    println!("MNIST is complete and verified in {}", dir.display());
    Ok(())
}
