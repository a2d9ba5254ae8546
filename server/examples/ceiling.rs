//! The in-process ceiling: ONNX Runtime alone, through the server's own
//! backend, with no gRPC, queue or preprocessing. The server's throughput
//! is judged against the best images/s found here.
//!
//! Run: `cargo run --release -p mnist-server --example ceiling -- [--intra-threads N] [--intra-op-spinning] [--seconds S] [BATCH...]`

use std::time::{Duration, Instant};

use mnist::{
    PIXEL_MEAN, PIXEL_STD,
    dataset::{Mnist, Split, default_dir},
};
use mnist_server::{
    backend::{Backend, OnnxBackend, RuntimeOptions},
    config::Device,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut threads = 0usize;
    let mut spinning = false;
    let mut seconds = 3.0f64;
    let mut batches: Vec<usize> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--intra-threads" => threads = args.next().ok_or("--intra-threads N")?.parse()?,
            "--seconds" => seconds = args.next().ok_or("--seconds S")?.parse()?,
            "--intra-op-spinning" => spinning = true,
            n => batches.push(n.parse()?),
        }
    }
    if batches.is_empty() {
        batches = vec![1, 8, 16, 32, 64, 128, 256];
    }
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist.onnx");
    let options = RuntimeOptions { device: Device::Cpu, intra_threads: threads, spinning };
    let (mut backend, _) = OnnxBackend::load(&model, &options)?;
    let test = Mnist::load(&default_dir(), Split::Test)?;
    let mut input = Vec::new();
    mnist::normalize_into(&test.images, PIXEL_MEAN, PIXEL_STD, &mut input);

    println!("| batch | images/s | ms per batch (median) |");
    println!("|---:|---:|---:|");
    let mut best = (0usize, 0.0f64);
    for &batch in &batches {
        let window = batch * 784;
        // Warm up this shape.
        for _ in 0..3 {
            backend.infer(&input[..window], batch)?;
        }
        let mut times = Vec::new();
        let started = Instant::now();
        let mut offset = 0;
        while started.elapsed() < Duration::from_secs_f64(seconds) {
            if offset + window > input.len() {
                offset = 0;
            }
            let t = Instant::now();
            backend.infer(&input[offset..offset + window], batch)?;
            times.push(t.elapsed().as_secs_f64());
            offset += window;
        }
        let total: f64 = times.iter().sum();
        let rate = (times.len() * batch) as f64 / total;
        times.sort_by(f64::total_cmp);
        println!("| {batch} | {rate:.0} | {:.3} |", times[times.len() / 2] * 1e3);
        if rate > best.1 {
            best = (batch, rate);
        }
    }
    println!("\nceiling: {:.0} images/s at batch {}", best.1, best.0);
    Ok(())
}
