//! `mnist-client bench`: a ghz-like load generator for both RPCs.
//!
//! `concurrency` workers share `connections` HTTP/2 connections. In unary
//! mode each worker sends PredictOne calls back to back; in stream mode each
//! worker holds one Predict stream with up to `window` images unanswered.
//! Latency is measured per image, from send to answer.
//!
//! With a `rate`, images are sent on a fixed schedule (image `n` at `n /
//! rate` seconds) instead of as fast as answers come back: the load for
//! soak tests. A worker whose stream is refused or broken (an overloaded
//! server answers RESOURCE_EXHAUSTED) counts the error and opens a new one
//! after a backoff, as a well-behaved client would, so overload runs keep
//! their concurrency. The report has a timeline per `interval`, to see
//! latency drift in a soak and recovery after an overload.

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
    /// Images per second over all workers; none: as fast as possible.
    pub rate: Option<f64>,
    /// Width of the timeline's buckets.
    pub interval: Duration,
    /// The served model to load (empty: the server's default model).
    pub model: String,
}

/// What the workers send: the images, cycled through, to one model.
struct Workload {
    data: Arc<Mnist>,
    model: String,
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
    /// Answers per replica, so that the spread shows.
    pub replicas: Vec<ReplicaCount>,
    /// Throughput, errors and latency per interval.
    pub timeline: Vec<Interval>,
}

/// What one replica answered.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaCount {
    /// Its URL.
    pub server: String,
    /// Images it answered with a prediction.
    pub ok: u64,
    /// Failures it answered.
    pub errors: u64,
}

/// One bucket of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Seconds from the start of measuring to the start of this bucket.
    pub start_s: f64,
    /// Successful images per second in the bucket.
    pub throughput: f64,
    /// Failures in the bucket.
    pub errors: u64,
    /// Median latency of the bucket's successes, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency of the bucket's successes, in milliseconds.
    pub p99_ms: f64,
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

/// One finished image.
struct Sample {
    /// Which replica answered (an index into the resolved servers).
    replica: usize,
    /// When it finished, from the start of the run.
    finished: Duration,
    /// Latency in microseconds, or the error code's name.
    outcome: Result<u32, String>,
}

/// Sends finished images to the collector, time-stamped.
#[derive(Clone)]
struct Recorder {
    started: Instant,
    replica: usize,
    sink: mpsc::UnboundedSender<Sample>,
}

impl Recorder {
    fn ok(&self, sent: Instant) {
        let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        self.record(Ok(micros));
    }

    fn error(&self, code: tonic::Code) {
        self.record(Err(format!("{code:?}")));
    }

    fn record(&self, outcome: Result<u32, String>) {
        let _ = self.sink.send(Sample { replica: self.replica, finished: self.started.elapsed(), outcome });
    }
}

/// Hands out image numbers until the budget is spent, each with the time it
/// is due when a rate is set.
struct Schedule {
    issued: AtomicU64,
    limit: u64,
    started: Instant,
    deadline: Option<Instant>,
    rate: Option<f64>,
}

impl Schedule {
    fn next(&self) -> Option<(u64, Option<Instant>)> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if n >= self.limit {
            return None;
        }
        let due = self.rate.map(|rate| self.started + Duration::from_secs_f64(n as f64 / rate));
        Some((n, due))
    }

    fn finished(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d) || self.issued.load(Ordering::Relaxed) >= self.limit
    }
}

/// Runs the load test against `server`, cycling through `data`'s images.
pub async fn run(server: &ServerAddress, data: Arc<Mnist>, options: &BenchOptions) -> Result<BenchReport, ClientError> {
    if data.is_empty() {
        return Err(ClientError::Usage("no images to send".into()));
    }
    // Connections over every replica, round-robin (at least one each);
    // workers take them in turn, so each replica gets its share of the load.
    let target = server.target()?;
    let urls = target.resolve().await?;
    let mut channels = Vec::new();
    for i in 0..options.connections.max(urls.len()) {
        let replica = i % urls.len();
        channels.push((replica, server.replica(&urls[replica], &target).channel().await?));
    }
    let work = Arc::new(Workload { data, model: options.model.clone() });
    if options.warmup > 0 {
        let warm = BenchOptions { budget: Budget::Requests(options.warmup), warmup: 0, ..options.clone() };
        drive(&channels, &work, &warm).await;
    }
    let started = Instant::now();
    let samples = drive(&channels, &work, options).await;
    let seconds = started.elapsed().as_secs_f64();

    let timeline = timeline(&samples, options.interval);
    let mut latencies = Vec::with_capacity(samples.len());
    let mut errors = BTreeMap::new();
    let mut replicas: Vec<ReplicaCount> =
        urls.iter().map(|server| ReplicaCount { server: server.clone(), ok: 0, errors: 0 }).collect();
    for sample in samples {
        match sample.outcome {
            Ok(micros) => {
                latencies.push(micros);
                replicas[sample.replica].ok += 1;
            }
            Err(code) => {
                *errors.entry(code).or_insert(0) += 1;
                replicas[sample.replica].errors += 1;
            }
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
        replicas,
        timeline,
    })
}

/// Buckets the samples by the time they finished.
fn timeline(samples: &[Sample], interval: Duration) -> Vec<Interval> {
    let width = interval.as_secs_f64().max(1e-3);
    let mut buckets: Vec<(Vec<u32>, u64)> = Vec::new();
    for sample in samples {
        let index = (sample.finished.as_secs_f64() / width) as usize;
        if buckets.len() <= index {
            buckets.resize_with(index + 1, Default::default);
        }
        match sample.outcome {
            Ok(micros) => buckets[index].0.push(micros),
            Err(_) => buckets[index].1 += 1,
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, (latencies, errors))| {
            let throughput = latencies.len() as f64 / width;
            let percentiles = Percentiles::from_micros(latencies);
            Interval { start_s: i as f64 * width, throughput, errors, p50_ms: percentiles.p50, p99_ms: percentiles.p99 }
        })
        .collect()
}

/// Runs the workers until the budget is spent; returns every sample.
async fn drive(channels: &[(usize, ServerChannel)], data: &Arc<Workload>, options: &BenchOptions) -> Vec<Sample> {
    let started = Instant::now();
    let schedule = Arc::new(Schedule {
        issued: AtomicU64::new(0),
        limit: match options.budget {
            Budget::Requests(n) => n,
            Budget::Duration(_) => u64::MAX,
        },
        started,
        deadline: match options.budget {
            Budget::Duration(d) => Some(started + d),
            Budget::Requests(_) => None,
        },
        rate: options.rate.filter(|r| r.is_finite() && *r > 0.0),
    });
    let (sink, mut samples) = mpsc::unbounded_channel();
    let recorder = Recorder { started, replica: 0, sink };
    let mut workers = Vec::new();
    for worker in 0..options.concurrency.max(1) {
        let (replica, channel) = channels[worker % channels.len()].clone();
        let client = ClassifierClient::new(channel);
        let recorder = Recorder { replica, ..recorder.clone() };
        let (data, schedule) = (Arc::clone(data), Arc::clone(&schedule));
        let (mode, window) = (options.mode, options.window.max(1));
        workers.push(tokio::spawn(async move {
            match mode {
                Mode::Unary => unary_worker(client, &data, &schedule, &recorder).await,
                Mode::Stream => stream_worker(client, data, schedule, window, recorder).await,
            }
        }));
    }
    drop(recorder);
    let mut all = Vec::new();
    while let Some(sample) = samples.recv().await {
        all.push(sample);
    }
    for worker in workers {
        let _ = worker.await;
    }
    all
}

fn request(work: &Workload, n: u64) -> PredictRequest {
    let index = (n % work.data.len() as u64) as usize;
    PredictRequest {
        id: n.to_string(),
        input: Some(Input::Pixels(work.data.image(index).to_vec())),
        model: work.model.clone(),
        return_logits: false,
    }
}

/// Waits until an image is due (no wait without a rate).
async fn wait_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}

async fn unary_worker(
    mut client: ClassifierClient<ServerChannel>,
    data: &Workload,
    schedule: &Schedule,
    recorder: &Recorder,
) {
    while let Some((n, due)) = schedule.next() {
        wait_until(due).await;
        let sent = Instant::now();
        match client.predict_one(request(data, n)).await {
            Ok(_) => recorder.ok(sent),
            Err(status) => recorder.error(status.code()),
        }
    }
}

/// First and longest waits before reopening a refused or broken stream.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

async fn stream_worker(
    mut client: ClassifierClient<ServerChannel>,
    data: Arc<Workload>,
    schedule: Arc<Schedule>,
    window: usize,
    recorder: Recorder,
) {
    let mut backoff = FIRST_BACKOFF;
    while !schedule.finished() {
        let answered = run_stream(&mut client, &data, &schedule, window, &recorder).await;
        if answered > 0 {
            backoff = FIRST_BACKOFF;
        }
        if schedule.finished() {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One Predict stream, until the budget is spent or the stream fails;
/// returns how many images were answered.
async fn run_stream(
    client: &mut ClassifierClient<ServerChannel>,
    data: &Arc<Workload>,
    schedule: &Arc<Schedule>,
    window: usize,
    recorder: &Recorder,
) -> u64 {
    // Send times, in order: responses come back in request order.
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let sender_permits = Arc::clone(&permits);
    let (data, schedule) = (Arc::clone(data), Arc::clone(schedule));
    let outbound = futures_util::stream::unfold((), move |()| {
        let (permits, schedule, data, sent_tx) =
            (Arc::clone(&sender_permits), Arc::clone(&schedule), Arc::clone(&data), sent_tx.clone());
        async move {
            if let Ok(permit) = permits.acquire_owned().await {
                permit.forget();
            }
            let (n, due) = schedule.next()?;
            wait_until(due).await;
            let _ = sent_tx.send(Instant::now());
            Some((request(&data, n), ()))
        }
    });
    let mut inbound = match client.predict(outbound).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            recorder.error(status.code());
            return 0;
        }
    };
    let mut answered = 0;
    loop {
        match inbound.next().await {
            Some(Ok(response)) => {
                permits.add_permits(1);
                let sent = sent_rx.recv().await.unwrap_or_else(Instant::now);
                match response.error {
                    None => recorder.ok(sent),
                    Some(status) => recorder.error(tonic::Code::from(status.code)),
                }
                answered += 1;
            }
            Some(Err(status)) => {
                recorder.error(status.code());
                return answered;
            }
            None => return answered,
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
        if self.replicas.len() > 1 {
            for replica in &self.replicas {
                let _ = writeln!(s, "  replica:     {}  ok {}  errors {}", replica.server, replica.ok, replica.errors);
            }
        }
        if self.timeline.len() > 1 {
            let _ = writeln!(s, "  timeline:    start_s  images/s  errors  p50_ms  p99_ms");
            for i in &self.timeline {
                let _ = writeln!(
                    s,
                    "               {:7.1}  {:8.1}  {:6}  {:6.3}  {:6.3}",
                    i.start_s, i.throughput, i.errors, i.p50_ms, i.p99_ms
                );
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

    #[test]
    fn timeline_buckets_by_finish_time() {
        let sample =
            |ms: u64, outcome: Result<u32, String>| Sample { replica: 0, finished: Duration::from_millis(ms), outcome };
        let samples = vec![
            sample(100, Ok(1000)),
            sample(900, Ok(3000)),
            sample(1500, Err("ResourceExhausted".into())),
            sample(2100, Ok(2000)),
        ];
        let timeline = timeline(&samples, Duration::from_secs(1));
        assert_eq!(timeline.len(), 3);
        assert_eq!((timeline[0].throughput, timeline[0].errors), (2.0, 0));
        assert_eq!((timeline[1].throughput, timeline[1].errors), (0.0, 1));
        assert_eq!(timeline[2].p50_ms, 2.0);
    }

    #[test]
    fn a_rate_spaces_the_images_evenly() {
        let started = Instant::now();
        let schedule = Schedule { issued: AtomicU64::new(0), limit: 3, started, deadline: None, rate: Some(100.0) };
        let due: Vec<_> = std::iter::from_fn(|| schedule.next()).map(|(_, due)| due.unwrap() - started).collect();
        assert_eq!(due, [Duration::ZERO, Duration::from_millis(10), Duration::from_millis(20)]);
        assert!(schedule.finished());
    }
}
