//! The in-process ceiling: ONNX Runtime alone, through the server's own
//! backend, with no gRPC, queue or preprocessing. The server's throughput
//! is judged against the best images/s found here.
//!
//! Run: `cargo run --release -p mnist-server --example ceiling -- [--model PATH]... [--intra-threads N] [--intra-op-spinning] [--seconds S] [BATCH...]`
//!
//! With several `--model`s, each batch size is measured on every model in
//! turn, so that the ratio between them (int8 against float) comes from the
//! same minutes of the same machine.

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
    let mut models: Vec<std::path::PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--intra-threads" => threads = args.next().ok_or("--intra-threads N")?.parse()?,
            "--seconds" => seconds = args.next().ok_or("--seconds S")?.parse()?,
            "--intra-op-spinning" => spinning = true,
            "--model" => models.push(args.next().ok_or("--model PATH")?.into()),
            n => batches.push(n.parse()?),
        }
    }
    if batches.is_empty() {
        batches = vec![1, 8, 16, 32, 64, 128, 256];
    }
    if models.is_empty() {
        models.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist.onnx"));
    }
    let options = RuntimeOptions { device: Device::Cpu, intra_threads: threads, spinning, sessions: 1 };
    let mut backends = Vec::new();
    for model in &models {
        backends.push(OnnxBackend::load(model, &options)?.0);
    }
    let test = Mnist::load(&default_dir(), Split::Test)?;
    let mut input = Vec::new();
    mnist::normalize_into(&test.images, PIXEL_MEAN, PIXEL_STD, &mut input);

    println!("| model | batch | images/s | ms per batch (median) |");
    println!("|---|---:|---:|---:|");
    let mut best = vec![(0usize, 0.0f64); models.len()];
    for &batch in &batches {
        let window = batch * 784;
        for (m, backend) in backends.iter_mut().enumerate() {
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
            let name = models[m].file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            println!("| {name} | {batch} | {rate:.0} | {:.3} |", times[times.len() / 2] * 1e3);
            if rate > best[m].1 {
                best[m] = (batch, rate);
            }
        }
    }
    println!();
    for (model, (batch, rate)) in models.iter().zip(&best) {
        println!("ceiling of {}: {rate:.0} images/s at batch {batch}", model.display());
    }
    if let [(_, first), .., (_, last)] = best.as_slice() {
        println!("ratio of the last model's ceiling to the first's: {:.2}", last / first);
    }
    Ok(())
}
