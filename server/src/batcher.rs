//! The queue shared by every call, and the inference thread that empties
//! it in batches.
//!
//! Calls [`Batcher::submit`] images from tokio tasks; one OS thread owns the
//! model and loops: wait for work, take up to `max_batch_size` queued images
//! (optionally waiting up to `max_queue_delay` for more), skip those whose
//! caller has gone or whose deadline has passed, run the model once, and
//! answer each caller through its oneshot channel. With no delay configured,
//! a lone request runs at once and batches grow by themselves under load:
//! while the model runs, new images pile up for the next batch.

use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use mnist::{
    IMAGE_PIXELS, NUM_CLASSES, normalize_into, softmax,
    verdict::{DigitNotes, Verdict},
};
use tokio::sync::oneshot;

use crate::{backend::Backend, error::ServerError, metrics};

/// How the batcher groups images.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Most images per inference.
    pub max_batch_size: usize,
    /// Longest wait for a fuller batch (zero: never wait).
    pub max_queue_delay: Duration,
    /// Most images waiting; more are refused with [`ServerError::QueueFull`].
    pub max_queue_size: usize,
}

/// A model ready to run: its runtime session, the pixel normalization it
/// expects, and which model it is.
pub struct LoadedModel {
    /// The runtime session.
    pub backend: Box<dyn Backend>,
    /// Pixel normalization the model expects.
    pub mean: f32,
    /// Pixel normalization the model expects.
    pub std: f32,
    /// SHA-256 of the model file (hex): every prediction says which model made it.
    pub sha256: Arc<str>,
}

/// One image as the model takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelImage {
    /// 784 MNIST pixels (0-255), normalized by the inference thread with the
    /// model's own mean and deviation.
    Pixels(Vec<u8>),
    /// 784 values already normalized: the ONNX graph's input as is (the
    /// Open Inference Protocol's `input` tensor).
    Normalized(Vec<f32>),
}

/// One classified image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The most likely digit.
    pub digit: u32,
    /// Its probability.
    pub confidence: f32,
    /// Softmax probabilities of the digits 0-9.
    pub probabilities: Vec<f32>,
    /// The model's raw outputs for the digits 0-9 (an array: no allocation
    /// per image for what only the Open Inference Protocol reads).
    pub logits: [f32; NUM_CLASSES],
    /// SHA-256 (hex) of the model that made the prediction.
    pub model: Arc<str>,
    /// What preprocessing noted about the image (no digit, cut by the
    /// frame, uncertain polarity): set by the core, which concluded the
    /// answer from them (`mnist::verdict`).
    pub notes: DigitNotes,
}

impl Prediction {
    /// The first 12 hex digits of the model's SHA-256: enough to tell the
    /// models of one deployment apart, short enough for every answer.
    pub fn model_prefix(&self) -> &str {
        self.model.get(..12).unwrap_or(&self.model)
    }

    /// The answer for an image in which preprocessing found no digit: the
    /// model (named by its SHA-256) was not asked.
    pub fn no_digit(model: Arc<str>) -> Self {
        let verdict = mnist::verdict::conclude(DigitNotes { no_digit: true, ..DigitNotes::default() }, &[], None);
        Self {
            digit: verdict.digit,
            confidence: verdict.confidence,
            probabilities: verdict.probabilities,
            logits: [0.0; NUM_CLASSES],
            model,
            notes: verdict.notes,
        }
    }

    /// This prediction with the answer concluded from it: digit,
    /// confidence and probabilities from `verdict`; the logits stay the
    /// model's own for the image as first seen.
    pub fn concluded(self, verdict: Verdict) -> Self {
        Self {
            digit: verdict.digit,
            confidence: verdict.confidence,
            probabilities: verdict.probabilities,
            notes: verdict.notes,
            ..self
        }
    }

    /// `logits` is one image's chunk of the model's output: `NUM_CLASSES` values.
    fn from_logits(logits: &[f32], model: &Arc<str>) -> Self {
        let probabilities = softmax(logits);
        let mut raw = [0.0; NUM_CLASSES];
        raw.iter_mut().zip(logits).for_each(|(to, from)| *to = *from);
        let digit = mnist::argmax(&probabilities).unwrap_or(0);
        Self {
            digit: digit as u32,
            confidence: probabilities[digit],
            probabilities,
            notes: DigitNotes::default(),
            logits: raw,
            model: Arc::clone(model),
        }
    }
}

/// Where a queued image's prediction arrives, or the reason there is none.
pub type PredictionReceiver = oneshot::Receiver<Result<Prediction, ServerError>>;

type Reply = oneshot::Sender<Result<Prediction, ServerError>>;

struct Job {
    image: ModelImage,
    enqueued: Instant,
    deadline: Option<Instant>,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// A model to run from the next batch on ([`Batcher::replace_model`]).
    next_model: Option<LoadedModel>,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    /// The served model's name, for the metrics' `model` label.
    name: Arc<str>,
}

impl Shared {
    /// Locks the queue. A panic elsewhere while holding the lock cannot leave
    /// the queue half-updated (every critical section is a push or pop), so a
    /// poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Handle to the queue; cheap to clone, one per call.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<Shared>,
    max_queue_size: usize,
}

impl Batcher {
    /// Starts the inference thread of the served model `name`, which owns
    /// `model` (and the files that replace it) until [`Batcher::close`] is
    /// called and the queue is drained.
    pub fn start(name: &str, model: LoadedModel, config: BatcherConfig) -> Result<(Self, JoinHandle<()>), ServerError> {
        let shared =
            Arc::new(Shared { queue: Mutex::new(Queue::default()), work: Condvar::new(), name: Arc::from(name) });
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || inference_loop(&thread_shared, model, config))
            .map_err(|e| ServerError::Runtime(format!("cannot start the inference thread: {e}")))?;
        Ok((Self { shared, max_queue_size: config.max_queue_size }, handle))
    }

    /// Queues one image. The returned receiver yields the prediction, or
    /// the reason there is none. Dropping the receiver (the caller went
    /// away) makes the batcher skip the image.
    pub fn submit(&self, image: ModelImage, deadline: Option<Instant>) -> Result<PredictionReceiver, ServerError> {
        let mut receivers = self.submit_all(vec![image], deadline)?;
        receivers.pop().ok_or_else(|| ServerError::Inference("no receiver for a queued image".into()))
    }

    /// Queues the images of one request together, under one lock, so they
    /// stay next to each other in the queue (and usually share a batch): all
    /// are queued, or none.
    pub fn submit_all(
        &self,
        images: Vec<ModelImage>,
        deadline: Option<Instant>,
    ) -> Result<Vec<PredictionReceiver>, ServerError> {
        debug_assert!(images.iter().all(|image| image.len() == IMAGE_PIXELS));
        if expired(deadline, Instant::now()) {
            metrics::dropped(&self.shared.name, "deadline");
            return Err(ServerError::DeadlineExceeded);
        }
        let enqueued = Instant::now();
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(ServerError::ShuttingDown);
        }
        if queue.jobs.len() + images.len() > self.max_queue_size {
            return Err(ServerError::QueueFull { capacity: self.max_queue_size });
        }
        let receivers = images
            .into_iter()
            .map(|image| {
                let (reply, receiver) = oneshot::channel();
                queue.jobs.push_back(Job { image, enqueued, deadline, reply });
                receiver
            })
            .collect();
        metrics::queue_depth(&self.shared.name, queue.jobs.len());
        drop(queue);
        self.shared.work.notify_one();
        Ok(receivers)
    }

    /// Classifies one image, waiting for its batch to run.
    pub async fn predict(&self, image: ModelImage, deadline: Option<Instant>) -> Result<Prediction, ServerError> {
        let receiver = self.submit(image, deadline)?;
        receiver.await.unwrap_or(Err(ServerError::ShuttingDown))
    }

    /// Images waiting now.
    pub fn queue_depth(&self) -> usize {
        self.shared.lock().jobs.len()
    }

    /// Runs `model` from the next batch on. The batch running now finishes
    /// on the model that took it; the old model is dropped (its session
    /// freed) on the inference thread once replaced. A model handed over
    /// and not yet taken is replaced by this one.
    pub fn replace_model(&self, model: LoadedModel) {
        self.shared.lock().next_model = Some(model);
        self.shared.work.notify_all();
    }

    /// Refuses new images; the thread finishes what is queued, then exits.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
    }
}

impl ModelImage {
    /// Values in the image (784 for every image that reaches the queue).
    pub fn len(&self) -> usize {
        match self {
            ModelImage::Pixels(pixels) => pixels.len(),
            ModelImage::Normalized(values) => values.len(),
        }
    }

    /// Whether the image has no values at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a deadline has passed at `now` (no deadline never expires): the
/// one rule for refusing, skipping and not decoding expired work.
pub fn expired(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|deadline| now >= deadline)
}

/// What the inference thread does next.
enum Work {
    /// Run these images.
    Batch(Vec<Job>),
    /// Switch to this model.
    Model(LoadedModel),
}

fn inference_loop(shared: &Shared, mut model: LoadedModel, config: BatcherConfig) {
    let mut input = Vec::with_capacity(config.max_batch_size * IMAGE_PIXELS);
    while let Some(work) = next_work(shared, &config) {
        let batch = match work {
            Work::Model(next) => {
                let previous = std::mem::replace(&mut model, next);
                tracing::info!(model = %shared.name, previous = %previous.sha256, sha256 = %model.sha256, "now running the new model");
                drop(previous); // frees the old session, here, between two batches
                return_freed_memory();
                continue;
            }
            Work::Batch(batch) => batch,
        };
        let started = Instant::now();
        input.clear();
        for job in &batch {
            match &job.image {
                ModelImage::Pixels(pixels) => normalize_into(pixels, model.mean, model.std, &mut input),
                ModelImage::Normalized(values) => input.extend_from_slice(values),
            }
            metrics::queue_wait(&shared.name, started.saturating_duration_since(job.enqueued));
        }
        metrics::batch_size(&shared.name, batch.len());
        let result = model.backend.infer(&input, batch.len());
        metrics::inference_time(&shared.name, started.elapsed());
        match result {
            Ok(logits) if logits.len() == batch.len() * NUM_CLASSES => {
                for (job, logits) in batch.into_iter().zip(logits.chunks_exact(NUM_CLASSES)) {
                    let _ = job.reply.send(Ok(Prediction::from_logits(logits, &model.sha256)));
                }
            }
            Ok(logits) => {
                let reason = format!("backend returned {} logits for {} images", logits.len(), batch.len());
                fail_batch(batch, &reason);
            }
            Err(error) => fail_batch(batch, &error.to_string()),
        }
    }
}

/// Hands the memory freed with an old model back to the system. glibc keeps
/// freed memory in its arenas (the session was built on another thread, in
/// another arena), so without this the RSS would stay about 70 MiB above
/// where it was after the first reloads, although nothing leaks.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of, and
    // between, the heaps' chunks; it takes no pointer and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn fail_batch(batch: Vec<Job>, reason: &str) {
    tracing::error!(images = batch.len(), reason, "inference failed");
    for job in batch {
        let _ = job.reply.send(Err(ServerError::Inference(reason.to_string())));
    }
}

/// Blocks until there is work: a model to switch to (first), else the
/// next batch. Returns `None` once the batcher is closed and the queue is empty.
fn next_work(shared: &Shared, config: &BatcherConfig) -> Option<Work> {
    let mut queue = shared.lock();
    loop {
        if let Some(model) = queue.next_model.take() {
            return Some(Work::Model(model));
        }
        if queue.jobs.is_empty() {
            if queue.closed {
                return None;
            }
            queue = shared.work.wait(queue).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        if !config.max_queue_delay.is_zero() {
            let until = queue.jobs.front().map_or_else(Instant::now, |j| j.enqueued) + config.max_queue_delay;
            while queue.jobs.len() < config.max_batch_size && !queue.closed {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                queue = shared.work.wait_timeout(queue, until - now).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
        let now = Instant::now();
        let mut batch = Vec::with_capacity(config.max_batch_size.min(queue.jobs.len()));
        while batch.len() < config.max_batch_size {
            let Some(job) = queue.jobs.pop_front() else { break };
            if job.reply.is_closed() {
                metrics::dropped(&shared.name, "cancelled");
            } else if expired(job.deadline, now) {
                metrics::dropped(&shared.name, "deadline");
                let _ = job.reply.send(Err(ServerError::DeadlineExceeded));
            } else {
                batch.push(job);
            }
        }
        metrics::queue_depth(&shared.name, queue.jobs.len());
        if !batch.is_empty() {
            return Some(Work::Batch(batch));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Returns logits that make digit (first pixel % 10) win, records batch
    /// sizes, and can be slowed down to let a queue build up.
    struct FakeBackend {
        batches: Arc<Mutex<Vec<usize>>>,
        delay: Duration,
        calls: Arc<AtomicUsize>,
    }

    impl Backend for FakeBackend {
        fn infer(&mut self, input: &[f32], batch_size: usize) -> Result<Vec<f32>, ServerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            self.batches.lock().unwrap().push(batch_size);
            let mut logits = vec![0.0; batch_size * NUM_CLASSES];
            for i in 0..batch_size {
                // Undo the normalization (mean 0, std 1/255 gives raw values).
                let label = input[i * IMAGE_PIXELS].round() as usize % NUM_CLASSES;
                logits[i * NUM_CLASSES + label] = 10.0;
            }
            Ok(logits)
        }
    }

    fn start(
        max_batch: usize,
        delay_us: u64,
        queue: usize,
        infer_delay_ms: u64,
    ) -> (Batcher, Arc<Mutex<Vec<usize>>>, Arc<AtomicUsize>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let backend = FakeBackend {
            batches: batches.clone(),
            delay: Duration::from_millis(infer_delay_ms),
            calls: calls.clone(),
        };
        let config = BatcherConfig {
            max_batch_size: max_batch,
            max_queue_delay: Duration::from_micros(delay_us),
            max_queue_size: queue,
        };
        let (batcher, _thread) = Batcher::start("test", model(backend, "a"), config).unwrap();
        (batcher, batches, calls)
    }

    /// `backend` as a model whose SHA-256 is `name` (normalization undone:
    /// mean 0, std 1/255 give the raw pixel values).
    fn model(backend: impl Backend, name: &str) -> LoadedModel {
        LoadedModel { backend: Box::new(backend), mean: 0.0, std: 1.0 / 255.0, sha256: name.into() }
    }

    fn image(label: u8) -> ModelImage {
        let mut px = vec![0u8; IMAGE_PIXELS];
        px[0] = label;
        ModelImage::Pixels(px)
    }

    #[tokio::test]
    async fn answers_each_caller_with_its_own_prediction() {
        let (batcher, _, _) = start(8, 0, 100, 0);
        let futures: Vec<_> = (0..30u8).map(|i| batcher.predict(image(i), None)).collect();
        for (i, result) in futures_util::future::join_all(futures).await.into_iter().enumerate() {
            let prediction = result.unwrap();
            assert_eq!(prediction.digit, (i % 10) as u32);
            assert!((prediction.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[tokio::test]
    async fn batches_form_under_load_and_respect_the_maximum() {
        let (batcher, batches, _) = start(8, 0, 1000, 5);
        let receivers: Vec<_> = (0..40u8).map(|i| batcher.submit(image(i), None).unwrap()).collect();
        for r in receivers {
            r.await.unwrap().unwrap();
        }
        let sizes = batches.lock().unwrap().clone();
        assert!(sizes.iter().all(|&s| s <= 8), "{sizes:?}");
        assert!(sizes.contains(&8), "queued work should fill batches: {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 40);
    }

    #[tokio::test]
    async fn queue_delay_waits_for_a_fuller_batch() {
        let (batcher, batches, _) = start(4, 200_000, 100, 0);
        let receivers: Vec<_> = (0..4u8).map(|i| batcher.submit(image(i), None).unwrap()).collect();
        for r in receivers {
            r.await.unwrap().unwrap();
        }
        assert_eq!(*batches.lock().unwrap(), vec![4]);
    }

    #[tokio::test]
    async fn full_queue_is_refused_at_once() {
        let (batcher, _, _) = start(1, 0, 3, 200);
        let mut accepted = Vec::new();
        let mut refused = 0;
        for i in 0..10u8 {
            match batcher.submit(image(i), None) {
                Ok(r) => accepted.push(r),
                Err(ServerError::QueueFull { capacity: 3 }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused >= 5, "refused {refused}");
        for r in accepted {
            assert!(r.await.unwrap().is_ok(), "accepted work must be answered");
        }
    }

    #[tokio::test]
    async fn expired_and_cancelled_work_is_not_run() {
        let (batcher, batches, _) = start(16, 0, 100, 100);
        // Occupy the model so the next images wait in the queue.
        let blocker = batcher.submit(image(1), None).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let expired = batcher.submit(image(2), Some(Instant::now() + Duration::from_millis(10))).unwrap();
        let cancelled = batcher.submit(image(3), None).unwrap();
        drop(cancelled);
        let live = batcher.submit(image(4), None).unwrap();
        assert!(blocker.await.unwrap().is_ok());
        assert!(matches!(expired.await.unwrap(), Err(ServerError::DeadlineExceeded)));
        assert_eq!(live.await.unwrap().unwrap().digit, 4);
        assert_eq!(*batches.lock().unwrap(), vec![1, 1], "only the blocker and the live image ran");
    }

    #[tokio::test]
    async fn close_drains_queued_work_then_refuses() {
        let (batcher, _, _) = start(2, 0, 100, 20);
        let receivers: Vec<_> = (0..6u8).map(|i| batcher.submit(image(i), None).unwrap()).collect();
        batcher.close();
        assert!(matches!(batcher.submit(image(0), None), Err(ServerError::ShuttingDown)));
        for r in receivers {
            assert!(r.await.unwrap().is_ok());
        }
    }

    #[tokio::test]
    async fn a_request_is_queued_whole_or_not_at_all() {
        let (batcher, batches, _) = start(64, 0, 5, 20);
        let blocker = batcher.submit(image(9), None).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await; // the model now runs the blocker
        let too_many: Vec<_> = (0..6u8).map(image).collect();
        assert!(matches!(batcher.submit_all(too_many, None), Err(ServerError::QueueFull { capacity: 5 })));
        assert_eq!(batcher.queue_depth(), 0, "nothing of a refused request stays queued");
        let receivers = batcher.submit_all((0..5u8).map(image).collect(), None).unwrap();
        assert!(blocker.await.unwrap().is_ok());
        for (label, receiver) in receivers.into_iter().enumerate() {
            assert_eq!(receiver.await.unwrap().unwrap().digit, label as u32);
        }
        assert_eq!(*batches.lock().unwrap(), vec![1, 5], "a request's images share a batch");
    }

    #[tokio::test]
    async fn normalized_images_reach_the_model_unchanged() {
        let (batcher, _, _) = start(4, 0, 10, 0);
        // The fake model reads the first value as the label: 7.0 stays 7.0.
        let mut values = vec![0.0f32; IMAGE_PIXELS];
        values[0] = 7.0;
        let prediction = batcher.predict(ModelImage::Normalized(values), None).await.unwrap();
        assert_eq!(prediction.digit, 7);
        assert_eq!(prediction.logits.len(), NUM_CLASSES);
        assert_eq!(prediction.logits[7], 10.0);
    }

    #[tokio::test]
    async fn a_new_model_takes_over_between_batches() {
        let (batcher, _, _) = start(4, 0, 100, 30);
        let running = batcher.submit(image(1), None).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await; // the model now runs the first batch
        let waiting = batcher.submit(image(2), None).unwrap();
        let replacement =
            FakeBackend { batches: Default::default(), delay: Duration::ZERO, calls: Arc::new(AtomicUsize::new(0)) };
        batcher.replace_model(model(replacement, "b"));
        let first = running.await.unwrap().unwrap();
        let second = waiting.await.unwrap().unwrap();
        assert_eq!(&*first.model, "a", "a batch finishes on the model that took it");
        assert_eq!(&*second.model, "b", "the next batch runs on the new model");
        assert_eq!(second.digit, 2);
    }
}
