//! `mnist-client bench`: a ghz-like load generator for both RPCs.
//!
//! `concurrency` workers share `connections` HTTP/2 connections. In unary
//! mode each worker sends PredictOne calls back to back; in stream mode each
//! worker holds one Predict stream with up to `window` images unanswered.
//! Latency is measured per image, from send to answer.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::connect::ServerChannel;
use futures_util::StreamExt;
use mnist::{
    dataset::Mnist,
    proto::v1::{PredictRequest, classifier_client::ClassifierClient, predict_request::Input},
};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::{ClientError, connect::ServerAddress};

/// Which RPC to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Predict: one bidirectional stream per worker.
    Stream,
    /// PredictOne: one call at a time per worker.
    Unary,
}

/// How long to run.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many images in all.
    Requests(u64),
    /// For this long.
    Duration(Duration),
}

/// A load test.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// RPC.
    pub mode: Mode,
    /// Concurrent workers (streams or unary callers).
    pub concurrency: usize,
    /// HTTP/2 connections shared by the workers.
    pub connections: usize,
    /// Unanswered images per stream (stream mode).
    pub window: usize,
    /// When to stop.
    pub budget: Budget,
    /// Images sent before measuring starts, to warm up both sides.
    pub warmup: u64,
}

/// What a load test measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// RPC.
    pub mode: Mode,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Connections.
    pub connections: usize,
    /// Images answered with a prediction.
    pub ok: u64,
    /// Failures by gRPC status code name.
    pub errors: BTreeMap<String, u64>,
    /// Measured wall-clock seconds.
    pub seconds: f64,
    /// Successful images per second.
    pub throughput: f64,
    /// Latency percentiles of successful images, in milliseconds.
    pub latency_ms: Percentiles,
}

/// Latency summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Percentiles {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    fn from_micros(mut samples: Vec<u32>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| f64::from(samples[((samples.len() - 1) as f64 * q).round() as usize]) / 1000.0;
        let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / samples.len() as f64 / 1000.0;
        Self { mean, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) }
    }
}

/// One finished image: latency in microseconds, or the error code's name.
type Sample = Result<u32, String>;

/// Runs the load test against `server`, cycling through `data`'s images.
pub async fn run(server: &ServerAddress, data: Arc<Mnist>, options: &BenchOptions) -> Result<BenchReport, ClientError> {
    if data.is_empty() {
        return Err(ClientError::Usage("no images to send".into()));
    }
    let mut channels = Vec::new();
    for _ in 0..options.connections.max(1) {
        channels.push(server.channel().await?);
    }
    if options.warmup > 0 {
        let warm = BenchOptions { budget: Budget::Requests(options.warmup), warmup: 0, ..options.clone() };
        drive(&channels, &data, &warm).await;
    }
    let started = Instant::now();
    let samples = drive(&channels, &data, options).await;
    let seconds = started.elapsed().as_secs_f64();

    let mut latencies = Vec::with_capacity(samples.len());
    let mut errors = BTreeMap::new();
    for sample in samples {
        match sample {
            Ok(micros) => latencies.push(micros),
            Err(code) => *errors.entry(code).or_insert(0) += 1,
        }
    }
    let ok = latencies.len() as u64;
    Ok(BenchReport {
        mode: options.mode,
        concurrency: options.concurrency,
        connections: channels.len(),
        ok,
        errors,
        seconds,
        throughput: ok as f64 / seconds.max(1e-9),
        latency_ms: Percentiles::from_micros(latencies),
    })
}

/// Runs the workers until the budget is spent; returns every sample.
async fn drive(channels: &[ServerChannel], data: &Arc<Mnist>, options: &BenchOptions) -> Vec<Sample> {
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = match options.budget {
        Budget::Duration(d) => Some(Instant::now() + d),
        Budget::Requests(_) => None,
    };
    let limit = match options.budget {
        Budget::Requests(n) => n,
        Budget::Duration(_) => u64::MAX,
    };
    // Hands out image indices until the budget is spent.
    let next = move |issued: &AtomicU64| -> Option<u64> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = issued.fetch_add(1, Ordering::Relaxed);
        (n < limit).then_some(n)
    };
    let (sink, mut samples) = mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for worker in 0..options.concurrency.max(1) {
        let client = ClassifierClient::new(channels[worker % channels.len()].clone());
        let (data, issued, sink) = (Arc::clone(data), Arc::clone(&issued), sink.clone());
        let (mode, window) = (options.mode, options.window.max(1));
        workers.push(tokio::spawn(async move {
            match mode {
                Mode::Unary => unary_worker(client, &data, &issued, next, &sink).await,
                Mode::Stream => stream_worker(client, data, issued, next, window, sink).await,
            }
        }));
    }
    drop(sink);
    let mut all = Vec::new();
    while let Some(sample) = samples.recv().await {
        all.push(sample);
    }
    for worker in workers {
        let _ = worker.await;
    }
    all
}

fn request(data: &Mnist, n: u64) -> PredictRequest {
    let index = (n % data.len() as u64) as usize;
    PredictRequest { id: n.to_string(), input: Some(Input::Pixels(data.image(index).to_vec())) }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

async fn unary_worker(
    mut client: ClassifierClient<ServerChannel>,
    data: &Mnist,
    issued: &AtomicU64,
    next: impl Fn(&AtomicU64) -> Option<u64>,
    sink: &mpsc::UnboundedSender<Sample>,
) {
    while let Some(n) = next(issued) {
        let started = Instant::now();
        let sample = match client.predict_one(request(data, n)).await {
            Ok(_) => Ok(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
            Err(status) => Err(code_name(status.code())),
        };
        let _ = sink.send(sample);
    }
}

async fn stream_worker(
    mut client: ClassifierClient<ServerChannel>,
    data: Arc<Mnist>,
    issued: Arc<AtomicU64>,
    next: impl Fn(&AtomicU64) -> Option<u64> + Send + 'static,
    window: usize,
    sink: mpsc::UnboundedSender<Sample>,
) {
    // Send times, in order: responses come back in request order.
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let sender_permits = Arc::clone(&permits);
    let outbound = futures_util::stream::unfold((), move |()| {
        let (permits, issued, data, sent_tx) =
            (Arc::clone(&sender_permits), Arc::clone(&issued), Arc::clone(&data), sent_tx.clone());
        let next = next(&issued);
        async move {
            let n = next?;
            if let Ok(permit) = permits.acquire_owned().await {
                permit.forget();
            }
            let _ = sent_tx.send(Instant::now());
            Some((request(&data, n), ()))
        }
    });
    let mut inbound = match client.predict(outbound).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let _ = sink.send(Err(code_name(status.code())));
            return;
        }
    };
    loop {
        match inbound.next().await {
            Some(Ok(response)) => {
                permits.add_permits(1);
                let started = sent_rx.recv().await.unwrap_or_else(Instant::now);
                let sample = match response.error {
                    None => Ok(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                    Some(status) => Err(code_name(tonic::Code::from(status.code))),
                };
                let _ = sink.send(sample);
            }
            Some(Err(status)) => {
                let _ = sink.send(Err(code_name(status.code())));
                return;
            }
            None => return,
        }
    }
}

impl BenchReport {
    /// The report for people, ghz-style.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(s, "mode {:?}, {} workers on {} connection(s)", self.mode, self.concurrency, self.connections);
        let _ = writeln!(s, "  ok:          {} in {:.2} s", self.ok, self.seconds);
        let _ = writeln!(s, "  throughput:  {:.1} images/s", self.throughput);
        let _ = writeln!(
            s,
            "  latency ms:  mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            l.mean, l.p50, l.p90, l.p99, l.max
        );
        if self.errors.is_empty() {
            let _ = writeln!(s, "  errors:      none");
        } else {
            for (code, count) in &self.errors {
                let _ = writeln!(s, "  errors:      {code}: {count}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let p = Percentiles::from_micros((1..=100).map(|v| v * 1000).collect());
        assert_eq!(p.p50, 51.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert!((p.mean - 50.5).abs() < 1e-9);
    }
}
