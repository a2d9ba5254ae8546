//! The `mnist.v1.Classifier` gRPC service.
//!
//! Each image goes request -> admit -> validate -> preprocess -> queue (the
//! [`Batcher`]) -> respond. A `Predict` stream keeps at most
//! `max_in_flight_per_stream` of its images in the pipeline and answers
//! them in request order; when the window is full it stops reading the
//! stream, so HTTP/2 flow control slows the client instead of the server
//! buffering.
//!
//! Every image must be admitted first: at most `max_admitted` images are
//! between admission and answer, server-wide, so what the server holds is
//! bounded whatever the clients do. Overload is handled per kind of call:
//! - a `Predict` stream beyond `max_streams` fails at once with
//!   RESOURCE_EXHAUSTED;
//! - an open stream does not read its next image until that image can be
//!   admitted, so HTTP/2 flow control holds the client back: no refusals to
//!   retry in a loop (which would spend the CPU the admitted images need),
//!   and streams take turns fairly (the admission queue is FIFO);
//! - a `PredictOne` call that cannot be admitted at once fails with
//!   RESOURCE_EXHAUSTED, for the client to retry with backoff.

use std::{pin::Pin, sync::Arc, time::Instant};

use futures_util::{
    FutureExt, Stream, StreamExt,
    future::{Fuse, FusedFuture},
    stream::FuturesOrdered,
};
use mnist::{
    preprocess::{DecodeLimits, check_pixels, preprocess},
    proto::v1::{
        GetModelInfoRequest, ModelInfo, PredictRequest, PredictResponse, classifier_server::Classifier,
        predict_request::Input,
    },
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming, metadata::MetadataMap};

use crate::{
    batcher::{Batcher, expired},
    error::ServerError,
    message_limit, metrics, timing,
};

/// The Classifier service; cheap to clone (one per call).
#[derive(Clone)]
pub struct ClassifierService {
    inner: Arc<Inner>,
}

/// What one call, and all calls together, may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bounds on encoded images and their decoded size.
    pub decode: DecodeLimits,
    /// Images of one stream in the pipeline at once.
    pub max_in_flight_per_stream: usize,
    /// Predict streams open at once.
    pub max_streams: usize,
    /// Images admitted and not yet answered, over all calls.
    pub max_admitted: usize,
}

struct Inner {
    batcher: Batcher,
    info: ModelInfo,
    limits: Limits,
    /// One permit per open Predict stream.
    streams: Arc<Semaphore>,
    /// One permit per admitted, unanswered image.
    admitted: Arc<Semaphore>,
    /// One permit per image being decoded: decoding can take about
    /// `max_pixels` x 12 bytes (16-bit RGBA, then a float plane), so only as
    /// many images as there are cores are decoded at once, whatever the
    /// number of callers.
    decoding: Arc<Semaphore>,
}

impl ClassifierService {
    /// A service that classifies through `batcher` and describes itself with `info`.
    pub fn new(batcher: Batcher, info: ModelInfo, limits: Limits) -> Self {
        let limits = Limits {
            max_in_flight_per_stream: limits.max_in_flight_per_stream.max(1),
            max_streams: limits.max_streams.max(1),
            max_admitted: limits.max_admitted.max(1),
            ..limits
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                batcher,
                info,
                streams: Arc::new(Semaphore::new(limits.max_streams)),
                admitted: Arc::new(Semaphore::new(limits.max_admitted)),
                decoding: Arc::new(Semaphore::new(cores)),
                limits,
            }),
        }
    }
}

/// An open stream's place, given back when the stream ends.
struct StreamSlot {
    _permit: OwnedSemaphorePermit,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        metrics::stream_closed();
    }
}

impl Inner {
    fn open_stream(&self) -> Result<StreamSlot, ServerError> {
        let permit = Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| ServerError::TooManyStreams { limit: self.limits.max_streams })?;
        metrics::stream_opened();
        Ok(StreamSlot { _permit: permit })
    }

    /// Takes a place for one image, or refuses it when the server already
    /// holds as many as it may.
    fn try_admit(&self) -> Result<OwnedSemaphorePermit, ServerError> {
        Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| ServerError::QueueFull { capacity: self.limits.max_admitted })
    }

    /// Validates and preprocesses a request's input into 784 MNIST pixels.
    async fn prepare(&self, input: Option<Input>) -> Result<Vec<u8>, ServerError> {
        let started = Instant::now();
        let pixels = self.prepare_off_the_workers(input).await;
        metrics::stage("preprocess", started.elapsed());
        pixels
    }

    /// [`prepare_input`], on a blocking thread for encoded images.
    async fn prepare_off_the_workers(&self, input: Option<Input>) -> Result<Vec<u8>, ServerError> {
        let limits = self.limits.decode;
        if !matches!(input, Some(Input::Image(_))) {
            return prepare_input(input, &limits);
        }
        let slot = Arc::clone(&self.decoding).acquire_owned().await.map_err(|_| ServerError::ShuttingDown)?;
        // Decoding a large photo takes milliseconds: keep it off the async
        // workers that serve every other call. The slot goes with the
        // decoding, which runs to its end even when the caller has gone.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            prepare_input(input, &limits)
        })
        .await
        .map_err(|e| ServerError::Inference(format!("preprocessing task failed: {e}")))?
    }

    /// Classifies one admitted image; its place is given back when done.
    async fn classify(
        &self,
        request: PredictRequest,
        deadline: Option<Instant>,
        _admitted: OwnedSemaphorePermit,
    ) -> Result<PredictResponse, ServerError> {
        // An image whose deadline has passed is not worth decoding.
        if expired(deadline, Instant::now()) {
            return Err(ServerError::DeadlineExceeded);
        }
        let pixels = self.prepare(request.input).await?;
        let prediction = self.batcher.predict(pixels, deadline).await?;
        Ok(PredictResponse {
            id: request.id,
            digit: prediction.digit,
            confidence: prediction.confidence,
            probabilities: prediction.probabilities,
            error: None,
        })
    }

    /// One stream item: errors go into the response, not the stream.
    async fn classify_item(
        &self,
        request: PredictRequest,
        deadline: Option<Instant>,
        admitted: OwnedSemaphorePermit,
    ) -> PredictResponse {
        let started = Instant::now();
        let id = request.id.clone();
        let response = self.classify(request, deadline, admitted).await;
        let code = response.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
        metrics::request("Predict", code, started.elapsed());
        response.unwrap_or_else(|error| PredictResponse {
            id,
            error: Some(error.to_rpc_status()),
            ..Default::default()
        })
    }
}

/// Validates a request's input and turns it into 784 MNIST pixels: all that
/// a request's bytes go through before the model. Blocking for images (they
/// are decoded); public so that the fuzzer drives the very code that serves.
pub fn prepare_input(input: Option<Input>, limits: &DecodeLimits) -> Result<Vec<u8>, ServerError> {
    match input {
        None => Err(ServerError::EmptyInput),
        Some(Input::Pixels(pixels)) => {
            check_pixels(&pixels)?;
            Ok(pixels)
        }
        Some(Input::Image(bytes)) => Ok(preprocess(&bytes, limits)?),
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<PredictResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Classifier for ClassifierService {
    type PredictStream = ResponseStream;

    async fn predict(
        &self,
        request: Request<Streaming<PredictRequest>>,
    ) -> Result<Response<Self::PredictStream>, Status> {
        let deadline = deadline(request.metadata());
        let slot = self.inner.open_stream().inspect_err(|error| {
            metrics::request("Predict", error.code(), std::time::Duration::ZERO);
        })?;
        let mut inbound = request.into_inner();
        let inner = Arc::clone(&self.inner);
        let window = inner.limits.max_in_flight_per_stream;
        let (sender, receiver) = mpsc::channel(window);
        tokio::spawn(async move {
            let mut pending = FuturesOrdered::new();
            let mut inbound_open = true;
            // The place for the next image, taken before reading it. The
            // wait is kept across loop turns so the stream keeps its turn
            // in the admission queue.
            let mut admitted: Option<OwnedSemaphorePermit> = None;
            let mut admitting = std::pin::pin!(Fuse::terminated());
            // Why the client's side ended, when it did not end cleanly.
            let mut inbound_error = None;
            let failure = loop {
                if !inbound_open && pending.is_empty() {
                    break inbound_error; // every image read has been answered
                }
                let wants_more = inbound_open && pending.len() < window;
                if wants_more && admitted.is_none() && admitting.is_terminated() {
                    admitting.set(Arc::clone(&inner.admitted).acquire_owned().fuse());
                }
                tokio::select! {
                    biased;
                    // The client cancelled or its connection died: tonic drops
                    // the response stream, which closes the channel even while
                    // no answer is ready to be sent.
                    () = sender.closed() => break None,
                    // Answer before reading more, so a full window drains first.
                    Some(response) = pending.next(), if !pending.is_empty() => {
                        if sender.send(Ok(response)).await.is_err() {
                            break None; // the client went away
                        }
                    }
                    permit = &mut admitting, if !admitting.is_terminated() => {
                        match permit {
                            Ok(permit) => admitted = Some(permit),
                            Err(_) => break Some(ServerError::ShuttingDown.into()),
                        }
                    }
                    message = inbound.message(), if wants_more && admitted.is_some() => match message {
                        Ok(Some(request)) => {
                            // The branch runs only with a place.
                            let Some(place) = admitted.take() else {
                                break Some(Status::internal("stream read an image without admitting it"));
                            };
                            let inner = Arc::clone(&inner);
                            pending.push_back(async move { inner.classify_item(request, deadline, place).await });
                        }
                        Ok(None) => inbound_open = false,
                        // A message that cannot be decoded (too large, garbage): answer
                        // the images read before it, then end the call with its status.
                        // (A client that cancelled is seen by `sender.closed()`.)
                        Err(status) => {
                            inbound_open = false;
                            inbound_error = Some(message_limit::rewrite(status, inner.limits.decode.max_encoded_bytes));
                        }
                    },
                }
            };
            // Dropping `pending` cancels the work still queued; the stream's
            // place is given back before the client can see the stream end,
            // so a client that opens its next stream at once finds it free.
            drop((pending, admitted));
            admitting.set(Fuse::terminated());
            drop(slot);
            if let Some(status) = failure {
                let _ = sender.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn predict_one(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        let started = Instant::now();
        timing::received(&request);
        let deadline = deadline(request.metadata());
        let result = match self.inner.try_admit() {
            Ok(admitted) => self.inner.classify(request.into_inner(), deadline, admitted).await,
            Err(error) => Err(error),
        };
        let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
        metrics::request("PredictOne", code, started.elapsed());
        Ok(timing::answered(Response::new(result?)))
    }

    async fn get_model_info(&self, _request: Request<GetModelInfoRequest>) -> Result<Response<ModelInfo>, Status> {
        Ok(Response::new(self.inner.info.clone()))
    }
}

/// tonic enforces `grpc-timeout` as well, from the moment the request
/// arrived, and answers CANCELLED when its timer fires while the handler is
/// still waiting. Ending our own wait this much earlier (tokio's timer
/// granularity) lets the handler answer first, with the DEADLINE_EXCEEDED
/// that gRPC clients expect.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(1);

/// The call's deadline, from the `grpc-timeout` header that gRPC clients
/// send when a deadline is set (less [`DEADLINE_MARGIN`]).
fn deadline(metadata: &MetadataMap) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    Some(Instant::now() + parse_grpc_timeout(value)?.saturating_sub(DEADLINE_MARGIN))
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    // Header values reach here as visible ASCII, but the check makes the
    // byte split below safe for any string (found by the request fuzzer).
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        // Regression (fuzz/regressions/request): a multi-byte character
        // across the unit's position used to panic in `split_at`.
        assert_eq!(parse_grpc_timeout("1\u{62c}"), None);
        assert_eq!(parse_grpc_timeout("\u{1f600}"), None);
    }
}
