//! What every protocol front shares: admission, limits, preprocessing and
//! the served [`Models`], each with its batcher.
//!
//! The fronts (`api::classifier` for `mnist.v1`, `api::inference` and
//! `api::http` for the Open Inference Protocol) only translate their
//! messages into a model name, [`ImageInput`]s and predictions back;
//! everything that bounds what the server holds or decides whether an image
//! runs is here, once, so images from every protocol for one model wait in
//! the same queue, share batches and are refused by the same rules, and
//! every model draws on one server-wide admission limit.
//!
//! Every image must be admitted first: at most `max_admitted` images are
//! between admission and answer, server-wide. A unary call that cannot be
//! admitted at once is refused (RESOURCE_EXHAUSTED, HTTP 429) for its
//! client to retry with backoff; a stream instead waits for its next
//! message's places before working on it, so HTTP/2 flow control holds the
//! client back and streams take turns fairly (the admission queue is FIFO).
//!
//! **The invariant that keeps admission from deadlocking: nothing waits for
//! places while it holds places.** A stream's message, which waits, takes
//! all the places it can ever need in one step before any work: one per
//! image, and for a reading of a photo its worst case
//! ([`Core::reading_places`]), known before the photo is decoded; after
//! segmenting, a reading gives back what it does not need and never asks
//! for more. A stream waits for message k+1's places only after message k
//! holds all of its own, and those are given back by work that is always
//! polled (`api::stream`). A unary call never waits: it takes its places
//! at once or is refused, and a unary reading takes its candidates' places
//! the same way once it has segmented the photo ([`ReadingPlaces`]). So
//! every holder finishes without waiting on another, and the FIFO waiter
//! at the head of the queue is served as they do. Every wait is bounded by
//! the call's deadline.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use mnist::{
    IMAGE_PIXELS,
    preprocess::{DecodeLimits, check_pixels, decode, view_file},
    read::{MAX_CANDIDATES, Method, Reading, Segmentation, gray_image, segment},
    verdict::{DigitNotes, conclude},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    batcher::{ModelImage, Prediction, expired},
    error::ServerError,
    fair::{DecodeLane, FairSlots},
    metrics,
    models::{Model, Models, Readers},
};

/// What one call, and all calls together, may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bounds on encoded images and their decoded size.
    pub decode: DecodeLimits,
    /// Messages of one stream in the pipeline at once.
    pub max_in_flight_per_stream: usize,
    /// Streams open at once (`Predict` and `ModelStreamInfer` together).
    pub max_streams: usize,
    /// Images admitted and not yet answered, over all calls.
    pub max_admitted: usize,
    /// Images in one request (an Open Inference Protocol tensor of N images).
    pub max_images_per_request: usize,
}

/// One image as a request carries it, before preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageInput {
    /// 784 MNIST pixels, 0-255, row-major.
    Pixels(Vec<u8>),
    /// An encoded image file (PNG, JPEG, ...): a scan or a photo.
    Encoded(Vec<u8>),
    /// 784 values already normalized as the model expects.
    Normalized(Vec<f32>),
}

/// A photo of a handwritten number as a request carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum PageInput {
    /// An encoded image file.
    Encoded(Vec<u8>),
    /// Raw 8-bit gray pixels, `width` x `height`, row-major.
    Gray {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The pixels.
        pixels: Vec<u8>,
    },
}

/// How a reading's places are had ([`Core::read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingPlaces {
    /// It holds its worst case already ([`Core::reading_places`]), taken
    /// before any work: a stream's message, which waited for them. It never
    /// asks for more; with `give_back_unused`, what its candidates do not
    /// need goes back once the photo is segmented (not for a request that
    /// reads more photos with the same places).
    Reserved {
        /// Give back what the candidates do not need.
        give_back_unused: bool,
    },
    /// A unary call holding what it took at once: once the photo is
    /// segmented it takes the places its candidates need, at once, or is
    /// refused (RESOURCE_EXHAUSTED). It never waits, so holding while it
    /// asks blocks no one; and it asks for the candidates it has, not for
    /// the worst case, so concurrent calls are not refused for places they
    /// would never use.
    TakeNow,
}

/// A number read by [`Core::read`].
#[derive(Debug, Clone)]
pub struct NumberReading {
    /// The digits, their confidences and boxes.
    pub reading: Reading,
    /// The segmentation the digits were chosen from (the candidates the
    /// model saw), for callers that show it.
    pub segmentation: Segmentation,
    /// The first 12 hex digits of the answering model's SHA-256.
    pub model: String,
    /// The served name of the model whose reading this is.
    pub model_name: String,
}

/// The shared core; fronts hold it in an `Arc`.
pub struct Core {
    models: Models,
    limits: Limits,
    /// Whether the model has been warmed up and the server is not stopping.
    ready: AtomicBool,
    /// One permit per open stream.
    streams: Arc<Semaphore>,
    /// One permit per admitted, unanswered image.
    admitted: Arc<Semaphore>,
    /// One slot per image being decoded: decoding can take about
    /// `max_pixels` x 12 bytes (16-bit RGBA, then a float plane), so only as
    /// many images as there are cores are decoded at once, whatever the
    /// number of callers; callers take turns for them (`fair`).
    decoding: FairSlots,
}

/// An open stream's place, given back when the stream ends.
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        metrics::stream_closed();
    }
}

/// Places in the server for the images of one request, given back when
/// dropped (when the request has its answer or its caller went away).
pub type Admission = OwnedSemaphorePermit;

impl Core {
    /// A core that classifies with `models`, within `limits`.
    pub fn new(models: Models, limits: Limits) -> Self {
        let max_streams = limits.max_streams.max(1);
        let max_admitted = limits.max_admitted.max(max_streams + 1);
        let limits = Limits {
            max_in_flight_per_stream: limits.max_in_flight_per_stream.max(1),
            max_streams,
            max_admitted,
            // A request larger than the server could never be admitted.
            max_images_per_request: limits.max_images_per_request.clamp(1, max_admitted),
            ..limits
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            models,
            ready: AtomicBool::new(false),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            admitted: Arc::new(Semaphore::new(limits.max_admitted)),
            decoding: FairSlots::new(cores),
            limits,
        }
    }

    /// The served model called `name` (the default one for an empty name),
    /// or NOT_FOUND naming those served.
    pub fn model(&self, name: &str) -> Result<&Arc<Model>, ServerError> {
        self.models.get(name)
    }

    /// Every served model, the default one first.
    pub fn models(&self) -> &Models {
        &self.models
    }

    /// The limits in force (after clamping).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the server takes inference requests: the model is warmed up
    /// and the server is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the server ready (after warm-up) or not (when draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Opens a stream, or refuses it when `max_streams` are open.
    pub fn open_stream(&self) -> Result<StreamSlot, ServerError> {
        let permit = Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| ServerError::TooManyStreams { limit: self.limits.max_streams })?;
        metrics::stream_opened();
        Ok(StreamSlot { _permit: permit })
    }

    /// Refuses a request of more images than one request may carry.
    pub fn check_request_size(&self, images: usize) -> Result<(), ServerError> {
        let limit = self.limits.max_images_per_request;
        if images > limit {
            return Err(ServerError::TooManyImages { count: images, limit });
        }
        Ok(())
    }

    /// Takes places for `images` images at once, or refuses them all when
    /// the server already holds too many (a unary call's admission).
    pub fn try_admit(&self, images: usize) -> Result<Admission, ServerError> {
        self.check_request_size(images)?;
        self.try_take(images)
    }

    /// Takes `places` places at once, or none (RESOURCE_EXHAUSTED).
    pub fn try_take(&self, places: usize) -> Result<Admission, ServerError> {
        Arc::clone(&self.admitted)
            .try_acquire_many_owned(places_u32(places))
            .map_err(|_| ServerError::QueueFull { capacity: self.limits.max_admitted })
    }

    /// Waits for `places` places, all taken in one step (a stream's next
    /// message), until `deadline`. The caller must hold no other places
    /// while it waits (the module's invariant).
    pub async fn take(&self, places: usize, deadline: Option<Instant>) -> Result<Admission, ServerError> {
        if places > self.limits.max_admitted {
            return Err(ServerError::NeverFits { places, capacity: self.limits.max_admitted });
        }
        let acquire = Arc::clone(&self.admitted).acquire_many_owned(places_u32(places));
        let permits = match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(deadline.into(), acquire).await.map_err(|_| ServerError::DeadlineExceeded)?
            }
            None => acquire.await,
        };
        permits.map_err(|_| ServerError::ShuttingDown)
    }

    /// The places a reading of one photo by `readers` takes: every
    /// candidate each reader may be shown ([`MAX_CANDIDATES`]), known before
    /// the photo is decoded. Never more than the server holds: on a server
    /// smaller than one reading, a reading takes every place and its
    /// candidates go through in batches of that many.
    pub fn reading_places(&self, readers: &Readers<'_>) -> usize {
        (readers.models.len().max(1) * MAX_CANDIDATES).min(self.limits.max_admitted)
    }

    /// Classifies one admitted image with `model`.
    pub async fn classify(
        &self,
        model: &Model,
        image: ImageInput,
        deadline: Option<Instant>,
        admission: Admission,
    ) -> Result<Prediction, ServerError> {
        let mut predictions = self.classify_all(model, vec![image], deadline, admission).await?;
        predictions.pop().ok_or_else(|| ServerError::Inference("no prediction for an admitted image".into()))
    }

    /// Classifies one admitted image with `model`, and also returns the
    /// 784 pixels the model saw (after preprocessing): what the web page
    /// shows beside the answer.
    pub async fn classify_and_show(
        &self,
        model: &Model,
        image: ImageInput,
        deadline: Option<Instant>,
        _admission: Admission,
    ) -> Result<(Prediction, Vec<u8>), ServerError> {
        let prepared = self.prepare_all(vec![image], deadline).await?;
        let seen = match prepared.first().map(|p| &p.image) {
            Some(Some(ModelImage::Pixels(pixels))) => pixels.clone(),
            Some(None) => vec![0; IMAGE_PIXELS],
            _ => return Err(ServerError::Inference("an image to show became normalized values".into())),
        };
        let mut predictions = self.conclude_all(model, prepared, deadline).await?;
        let prediction =
            predictions.pop().ok_or_else(|| ServerError::Inference("no prediction for an admitted image".into()))?;
        Ok((prediction, seen))
    }

    /// Classifies the admitted images of one request with `model`: answered
    /// when all are, or with the first failure. Their places are given back
    /// when done.
    pub async fn classify_all(
        &self,
        model: &Model,
        images: Vec<ImageInput>,
        deadline: Option<Instant>,
        _admission: Admission,
    ) -> Result<Vec<Prediction>, ServerError> {
        let prepared = self.prepare_all(images, deadline).await?;
        self.conclude_all(model, prepared, deadline).await
    }

    /// Classifies prepared images and concludes each one's answer from its
    /// notes (`mnist::verdict`): an image without a digit is not
    /// classified; one whose polarity is uncertain is classified both ways
    /// round when a place is free for the second reading (it then counts
    /// for half, unread), so the photos that need it cost two inferences
    /// and no admitted request is refused for it.
    async fn conclude_all(
        &self,
        model: &Model,
        prepared: Vec<PreparedImage>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Prediction>, ServerError> {
        let second_readings = prepared.iter().filter(|p| p.image.is_some() && p.other_polarity.is_some()).count();
        let extra = if second_readings == 0 { None } else { self.try_take(second_readings).ok() };
        metrics::polarity_readings(second_readings, extra.is_some());
        let mut images = Vec::with_capacity(prepared.len() + second_readings);
        let mut plans = Vec::with_capacity(prepared.len());
        for item in prepared {
            let first = item.image.map(|image| {
                images.push(image);
                images.len() - 1
            });
            let other = match (first, item.other_polarity, &extra) {
                (Some(_), Some(image), Some(_)) => {
                    images.push(image);
                    Some(images.len() - 1)
                }
                _ => None,
            };
            plans.push((first, other, item.notes));
        }
        let predictions = self.infer(model, images, deadline).await?;
        drop(extra);
        Ok(plans
            .into_iter()
            .map(|(first, other, notes)| match first.and_then(|i| predictions.get(i)) {
                None => Prediction::no_digit(model.served().info.model_sha256.as_str().into()),
                Some(prediction) => {
                    let other = other.and_then(|i| predictions.get(i)).map(|p| p.probabilities.as_slice());
                    let verdict = conclude(notes, &prediction.probabilities, other);
                    prediction.clone().concluded(verdict)
                }
            })
            .collect())
    }

    /// Reads the handwritten number in one admitted photo with each of
    /// `readers.models` (at least one) and keeps the reading it is surest
    /// of (the first reader's on a tie): the photo is decoded once and
    /// segmented for each on a blocking thread, and each reader's candidates
    /// go through its batcher together, the readers at once. Two readers
    /// that read differently go wrong on different photos, and each is less
    /// sure of itself when it does. Then `readers.checker`, if any,
    /// classifies the reading's digits that stand alone, in one batch
    /// (`mnist::read::check`).
    ///
    /// How `admission` relates to the candidates is `places`' to say
    /// ([`ReadingPlaces`]); either way, candidates beyond the places held
    /// go through in batches of that many.
    pub async fn read(
        &self,
        readers: &Readers<'_>,
        page: PageInput,
        expected_digits: Option<usize>,
        deadline: Option<Instant>,
        admission: &mut Admission,
        places: ReadingPlaces,
    ) -> Result<NumberReading, ServerError> {
        if expired(deadline, Instant::now()) {
            return Err(ServerError::DeadlineExceeded);
        }
        let started = Instant::now();
        let limits = self.limits.decode;
        // The served file decides which images of the line it is shown.
        let methods: Vec<Method> = readers.models.iter().map(|model| model.served().reading_method()).collect();
        let segmented_methods = methods.clone();
        let segmentations = self
            .decoding(move || {
                let image = match page {
                    PageInput::Encoded(bytes) => decode(&bytes, &limits)?,
                    PageInput::Gray { width, height, pixels } => gray_image(width, height, pixels, &limits)?,
                };
                Ok(segmented_methods.iter().map(|&method| segment(&image, method)).collect::<Vec<_>>())
            })
            .await?;
        metrics::stage("segment", started.elapsed());

        // Every candidate is an image in the server: it holds a place.
        let candidates: usize = segmentations.iter().map(|s| s.candidates.len()).sum();
        let needed = candidates.clamp(1, self.limits.max_admitted);
        let held = admission.num_permits();
        match places {
            ReadingPlaces::Reserved { give_back_unused: true } if needed < held => {
                drop(admission.split(held - needed));
            }
            ReadingPlaces::Reserved { .. } => {}
            ReadingPlaces::TakeNow if needed > held => admission.merge(self.try_take(needed - held)?),
            ReadingPlaces::TakeNow => {}
        }
        let held = admission.num_permits().max(1);
        let readings = if candidates <= held {
            futures_util::future::try_join_all(readers.models.iter().zip(segmentations).zip(methods).map(
                |((model, segmentation), method)| {
                    self.read_with(model, segmentation, method, expected_digits, deadline, held)
                },
            ))
            .await?
        } else {
            // A server smaller than the reading: one reader after the other.
            let mut readings = Vec::with_capacity(readers.models.len());
            for ((model, segmentation), method) in readers.models.iter().zip(segmentations).zip(methods) {
                readings.push(self.read_with(model, segmentation, method, expected_digits, deadline, held).await?);
            }
            readings
        };
        let mut surest = readings
            .into_iter()
            .reduce(|surest, other| if other.reading.is_surer_than(&surest.reading) { other } else { surest })
            .ok_or_else(|| ServerError::Inference("no model to read with".into()))?;
        if let Some(checker) = readers.checker {
            self.check(checker, &mut surest.reading, deadline, held).await?;
        }
        Ok(surest)
    }

    /// Checks the digits of `reading` that stand alone with the
    /// single-digit model `checker`, in one batch. They need no places of
    /// their own: each was read in one of the windows whose places the
    /// reading still holds, and those windows are answered.
    async fn check(
        &self,
        checker: &Model,
        reading: &mut Reading,
        deadline: Option<Instant>,
        held: usize,
    ) -> Result<(), ServerError> {
        let alone: Vec<ModelImage> =
            reading.digits_to_check().into_iter().map(|(_, pixels)| ModelImage::Pixels(pixels.to_vec())).collect();
        if alone.is_empty() {
            return Ok(());
        }
        let predictions = self.infer_in_batches(checker, alone, deadline, held).await?;
        let logits: Vec<Vec<f32>> = predictions.iter().map(|p| p.logits.to_vec()).collect();
        reading.check_digits(&logits).map_err(|e| ServerError::Inference(e.to_string()))
    }

    /// One reader's reading of a segmented photo: its candidates through
    /// `model`'s batcher, the digits chosen from their logits.
    async fn read_with(
        &self,
        model: &Arc<Model>,
        segmentation: Segmentation,
        method: Method,
        expected_digits: Option<usize>,
        deadline: Option<Instant>,
        held: usize,
    ) -> Result<NumberReading, ServerError> {
        let candidates =
            segmentation.candidates.iter().map(|candidate| ModelImage::Pixels(candidate.pixels.clone())).collect();
        let predictions = if segmentation.is_empty() {
            Vec::new()
        } else {
            self.infer_in_batches(model, candidates, deadline, held).await?
        };
        let served = model.served();
        let model_prefix = match predictions.first() {
            Some(prediction) => prediction.model_prefix().to_string(),
            None => served.sha256_prefix().to_string(),
        };
        // A file swapped in since segmenting may read another way: its
        // answers would be decoded wrongly.
        if served.reading_method() != method {
            return Err(ServerError::Inference(
                "the model was replaced by one that reads numbers another way during this reading; retry".into(),
            ));
        }
        let logits: Vec<Vec<f32>> = predictions.iter().map(|p| p.logits.to_vec()).collect();
        let reading = segmentation.read(&logits, expected_digits).map_err(|e| ServerError::Inference(e.to_string()))?;
        Ok(NumberReading { reading, segmentation, model: model_prefix, model_name: model.name().to_string() })
    }

    /// Validates and preprocesses the images of one request, together.
    async fn prepare_all(
        &self,
        images: Vec<ImageInput>,
        deadline: Option<Instant>,
    ) -> Result<Vec<PreparedImage>, ServerError> {
        // An image whose deadline has passed is not worth decoding.
        if expired(deadline, Instant::now()) {
            return Err(ServerError::DeadlineExceeded);
        }
        let started = Instant::now();
        let prepared = futures_util::future::try_join_all(images.into_iter().map(|image| self.prepare(image))).await;
        metrics::stage("preprocess", started.elapsed());
        prepared
    }

    /// Queues prepared images on `model`'s batcher, side by side, and
    /// waits for all their predictions.
    async fn infer(
        &self,
        model: &Model,
        prepared: Vec<ModelImage>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Prediction>, ServerError> {
        let receivers = model.batcher().submit_all(prepared, deadline)?;
        let mut predictions = Vec::with_capacity(receivers.len());
        for receiver in receivers {
            predictions.push(receiver.await.unwrap_or(Err(ServerError::ShuttingDown))?);
        }
        Ok(predictions)
    }

    /// [`Core::infer`] for more images than the caller holds places for:
    /// at most `held` of them in the batcher at once.
    async fn infer_in_batches(
        &self,
        model: &Model,
        images: Vec<ModelImage>,
        deadline: Option<Instant>,
        held: usize,
    ) -> Result<Vec<Prediction>, ServerError> {
        if images.len() <= held {
            return self.infer(model, images, deadline).await;
        }
        let mut predictions = Vec::with_capacity(images.len());
        let mut images = images.into_iter().peekable();
        while images.peek().is_some() {
            let batch: Vec<ModelImage> = images.by_ref().take(held.max(1)).collect();
            predictions.extend(self.infer(model, batch, deadline).await?);
        }
        Ok(predictions)
    }

    /// Validates and preprocesses one image; encoded files are decoded on a
    /// blocking thread.
    async fn prepare(&self, image: ImageInput) -> Result<PreparedImage, ServerError> {
        let limits = self.limits.decode;
        if !matches!(image, ImageInput::Encoded(_)) {
            return prepare_image(image, &limits);
        }
        self.decoding(move || prepare_image(image, &limits)).await
    }

    /// Runs `work` (decoding an image, and what follows it) on a blocking
    /// thread once one of the decoding slots is free: decoding a large photo
    /// takes milliseconds, so it stays off the async workers that serve
    /// every other call, and no more photos are decoded at once than there
    /// are cores. Callers take turns for the slots (the running stream's
    /// lane, or a lane of its own for a unary call: `fair`). The slot goes
    /// with the work, which runs to its end even when the caller has gone.
    async fn decoding<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
    ) -> Result<T, ServerError> {
        let slot = self.decoding.acquire(DecodeLane::current()).await;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| ServerError::Inference(format!("decoding task failed: {e}")))?
    }
}

/// A count of places as the semaphore takes it (at least one: a request
/// with nothing in it still holds a place while it is answered).
fn places_u32(places: usize) -> u32 {
    u32::try_from(places.max(1)).unwrap_or(u32::MAX)
}

/// One image made ready for the model, with what preprocessing noted.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedImage {
    /// What the model takes; `None` when there is no digit to classify.
    pub image: Option<ModelImage>,
    /// The photo the other way round, when its polarity is uncertain.
    pub other_polarity: Option<ModelImage>,
    /// What the answer is concluded with (`mnist::verdict`).
    pub notes: DigitNotes,
}

impl PreparedImage {
    /// An image the caller already made ready (pixels or a tensor).
    fn as_given(image: ModelImage) -> Self {
        Self { image: Some(image), other_polarity: None, notes: DigitNotes::default() }
    }
}

/// Validates one image and turns it into what the model takes: all that a
/// request's bytes go through before the model. Blocking for encoded files
/// (they are decoded); public so that the fuzzers drive the very code that
/// serves.
pub fn prepare_image(image: ImageInput, limits: &DecodeLimits) -> Result<PreparedImage, ServerError> {
    match image {
        ImageInput::Pixels(pixels) => {
            check_pixels(&pixels)?;
            Ok(PreparedImage::as_given(ModelImage::Pixels(pixels)))
        }
        ImageInput::Encoded(bytes) => {
            let view = view_file(&bytes, limits)?;
            let image = (!view.notes.no_digit).then_some(ModelImage::Pixels(view.pixels));
            Ok(PreparedImage { image, other_polarity: view.other_polarity.map(ModelImage::Pixels), notes: view.notes })
        }
        ImageInput::Normalized(values) => {
            if values.len() != IMAGE_PIXELS {
                return Err(ServerError::InvalidTensor(format!(
                    "an image of `input` has {} values; expected {IMAGE_PIXELS} (1x28x28)",
                    values.len()
                )));
            }
            if let Some(position) = values.iter().position(|v| !v.is_finite()) {
                return Err(ServerError::InvalidTensor(format!(
                    "`input` value {position} of an image is {}; every value must be finite",
                    values[position]
                )));
            }
            Ok(PreparedImage::as_given(ModelImage::Normalized(values)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_images_must_be_whole_and_finite() {
        let limits = DecodeLimits::default();
        assert!(prepare_image(ImageInput::Normalized(vec![0.5; IMAGE_PIXELS]), &limits).is_ok());
        let short = prepare_image(ImageInput::Normalized(vec![0.5; 10]), &limits).unwrap_err();
        assert!(short.to_string().contains("784"), "{short}");
        let mut values = vec![0.0; IMAGE_PIXELS];
        values[3] = f32::NAN;
        let nan = prepare_image(ImageInput::Normalized(values), &limits).unwrap_err();
        assert_eq!(nan.code(), tonic::Code::InvalidArgument);
        assert!(nan.to_string().contains("value 3"), "{nan}");
        let pixels = prepare_image(ImageInput::Pixels(vec![1; 3]), &limits).unwrap_err();
        assert_eq!(pixels.code(), tonic::Code::InvalidArgument);
    }
}
