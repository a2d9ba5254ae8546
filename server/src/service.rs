//! The `mnist.v1.Classifier` gRPC service.
//!
//! Each image goes request -> validate -> preprocess -> queue (the
//! [`Batcher`]) -> respond. A `Predict` stream keeps at most
//! `max_in_flight` of its images in the pipeline and answers them in
//! request order; when the window is full it stops reading the stream, so
//! HTTP/2 flow control slows the client instead of the server buffering.

use std::{pin::Pin, sync::Arc, time::Instant};

use futures_util::{Stream, StreamExt, stream::FuturesOrdered};
use mnist::{
    preprocess::{DecodeLimits, check_pixels, preprocess},
    proto::v1::{
        GetModelInfoRequest, ModelInfo, PredictRequest, PredictResponse, classifier_server::Classifier,
        predict_request::Input,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming, metadata::MetadataMap};

use crate::{batcher::Batcher, error::ServerError, metrics};

/// The Classifier service; cheap to clone (one per call).
#[derive(Clone)]
pub struct ClassifierService {
    inner: Arc<Inner>,
}

struct Inner {
    batcher: Batcher,
    info: ModelInfo,
    limits: DecodeLimits,
    max_in_flight: usize,
}

impl ClassifierService {
    /// A service that classifies through `batcher` and describes itself with `info`.
    pub fn new(batcher: Batcher, info: ModelInfo, limits: DecodeLimits, max_in_flight: usize) -> Self {
        Self { inner: Arc::new(Inner { batcher, info, limits, max_in_flight: max_in_flight.max(1) }) }
    }
}

impl Inner {
    /// Validates and preprocesses a request's input into 784 MNIST pixels.
    async fn prepare(&self, input: Option<Input>) -> Result<Vec<u8>, ServerError> {
        match input {
            None => Err(ServerError::EmptyInput),
            Some(Input::Pixels(pixels)) => {
                check_pixels(&pixels)?;
                Ok(pixels)
            }
            Some(Input::Image(bytes)) => {
                // Decoding a large photo takes milliseconds: keep it off the
                // async workers that serve every other call.
                let limits = self.limits;
                tokio::task::spawn_blocking(move || preprocess(&bytes, &limits))
                    .await
                    .map_err(|e| ServerError::Inference(format!("preprocessing task failed: {e}")))?
                    .map_err(ServerError::from)
            }
        }
    }

    async fn classify(
        &self,
        request: PredictRequest,
        deadline: Option<Instant>,
    ) -> Result<PredictResponse, ServerError> {
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
    async fn classify_item(&self, request: PredictRequest, deadline: Option<Instant>) -> PredictResponse {
        let started = Instant::now();
        let id = request.id.clone();
        let response = self.classify(request, deadline).await;
        let code = response.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
        metrics::request("Predict", code, started.elapsed());
        response.unwrap_or_else(|error| PredictResponse {
            id,
            error: Some(error.to_rpc_status()),
            ..Default::default()
        })
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
        let mut inbound = request.into_inner();
        let inner = Arc::clone(&self.inner);
        let window = inner.max_in_flight;
        let (sender, receiver) = mpsc::channel(window);
        tokio::spawn(async move {
            let mut pending = FuturesOrdered::new();
            let mut inbound_open = true;
            loop {
                tokio::select! {
                    // Answer before reading more, so a full window drains first.
                    biased;
                    Some(response) = pending.next(), if !pending.is_empty() => {
                        if sender.send(Ok(response)).await.is_err() {
                            return; // the client went away: dropping `pending` cancels its queued work
                        }
                    }
                    message = inbound.message(), if inbound_open && pending.len() < window => match message {
                        Ok(Some(request)) => {
                            let inner = Arc::clone(&inner);
                            pending.push_back(async move { inner.classify_item(request, deadline).await });
                        }
                        Ok(None) => inbound_open = false,
                        Err(status) => {
                            // The client cancelled or sent garbage: end the call.
                            let _ = sender.send(Err(status)).await;
                            return;
                        }
                    },
                    else => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn predict_one(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        let started = Instant::now();
        let deadline = deadline(request.metadata());
        let result = self.inner.classify(request.into_inner(), deadline).await;
        let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
        metrics::request("PredictOne", code, started.elapsed());
        Ok(Response::new(result?))
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
fn parse_grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    if value.len() < 2 || value.len() > 9 {
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
    }
}
