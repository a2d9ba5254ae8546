//! Prometheus metrics: names, help texts and buckets in one place.
//!
//! Recording goes through the `metrics` facade, which is a no-op until
//! [`install`] sets up the exporter, so tests and embedders pay nothing.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use metrics::{SharedString, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ServerError;

const REQUESTS: &str = "mnist_requests_total";
const IMAGES: &str = "mnist_images_total";
const REQUEST_SECONDS: &str = "mnist_request_duration_seconds";
const QUEUE_WAIT_SECONDS: &str = "mnist_queue_wait_seconds";
const INFERENCE_SECONDS: &str = "mnist_inference_duration_seconds";
const BATCH_SIZE: &str = "mnist_batch_size";
const QUEUE_DEPTH: &str = "mnist_queue_depth";
const DROPPED: &str = "mnist_dropped_total";
const MODEL_INFO: &str = "mnist_model_info";
const UNAUTHENTICATED: &str = "mnist_unauthenticated_total";
const OPEN_STREAMS: &str = "mnist_open_streams";
const STAGE_SECONDS: &str = "mnist_stage_duration_seconds";
const MODEL_RELOADS: &str = "mnist_model_reloads_total";
const POLARITY_READINGS: &str = "mnist_polarity_second_readings_total";

/// Records metrics from now on, serving `/metrics` in Prometheus text
/// format on `listen` when given; the handle renders them for other
/// endpoints (the HTTP port's `/metrics`). Must run inside the tokio runtime.
pub fn install(listen: Option<SocketAddr>) -> Result<PrometheusHandle, ServerError> {
    let latency = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
    let batch = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
    let error = |e: metrics_exporter_prometheus::BuildError| ServerError::Metrics(e.to_string());
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .map_err(error)?
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &batch)
        .map_err(error)?;
    let handle = match listen {
        Some(addr) => {
            // `build` also starts the recorder's periodic upkeep.
            let (recorder, exporter) = builder.with_http_listener(addr).build().map_err(error)?;
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| ServerError::Metrics(e.to_string()))?;
            tokio::spawn(async move {
                if let Err(error) = exporter.await {
                    tracing::error!(?error, "the metrics endpoint stopped");
                }
            });
            tracing::info!(%addr, "serving Prometheus metrics on /metrics");
            handle
        }
        None => {
            let handle = builder.install_recorder().map_err(error)?;
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
            handle
        }
    };
    describe_counter!(REQUESTS, "Requests answered, by protocol, method and gRPC status code.");
    describe_counter!(IMAGES, "Images in the requests answered, by protocol and gRPC status code.");
    describe_histogram!(REQUEST_SECONDS, metrics::Unit::Seconds, "Time from receiving a request to its answer.");
    describe_histogram!(QUEUE_WAIT_SECONDS, metrics::Unit::Seconds, "Time images wait in the queue before inference.");
    describe_histogram!(INFERENCE_SECONDS, metrics::Unit::Seconds, "Time of one model run (one batch).");
    describe_histogram!(BATCH_SIZE, "Images per model run.");
    describe_gauge!(QUEUE_DEPTH, "Images waiting for inference.");
    describe_counter!(DROPPED, "Queued images dropped before inference, by reason (cancelled, deadline).");
    describe_counter!(UNAUTHENTICATED, "Calls refused for a missing or invalid bearer token.");
    describe_gauge!(OPEN_STREAMS, "Streams open (Predict and ModelStreamInfer).");
    describe_histogram!(
        STAGE_SECONDS,
        metrics::Unit::Seconds,
        "Time in one stage of a call: receive (arrival to handler, PredictOne), preprocess (validate or \
         decode one image), respond (answer to last frame, PredictOne)."
    );
    describe_gauge!(MODEL_INFO, "1 for the model being served (0 for the ones it replaced); labels describe it.");
    describe_counter!(
        POLARITY_READINGS,
        "Photos whose ink could be either way round, by whether the second reading ran (read) or found no free place (skipped)."
    );
    describe_counter!(MODEL_RELOADS, "Model reloads (SIGHUP, --watch-model), by result: ok, unchanged, failed.");
    Ok(handle)
}

/// Records the served model `model`'s file and the execution provider that runs it.
pub fn model_info(model: &str, provider: &'static str, sha256: &str) {
    gauge!(MODEL_INFO, "model" => model.to_string(), "provider" => provider, "sha256" => sha256.to_string()).set(1.0);
}

/// Records that the model `model`'s file `old` was replaced by `new`.
pub fn model_replaced(model: &str, old_provider: &str, old: &str, new_provider: &'static str, new: &str) {
    gauge!(MODEL_INFO, "model" => model.to_string(), "provider" => old_provider.to_string(), "sha256" => old.to_string())
        .set(0.0);
    model_info(model, new_provider, new);
}

/// Counts a reload of model `model` by result (`ok`, `unchanged`, `failed`).
pub fn model_reload(model: &str, result: &'static str) {
    counter!(MODEL_RELOADS, "model" => model.to_string(), "result" => result).increment(1);
}

/// Records one request's outcome and latency, by protocol (`mnist.v1`,
/// `oip-grpc`, `oip-http`) and method; `images` is how many images it
/// carried (one per `mnist.v1` request; N for an Open Inference Protocol
/// tensor; 0 when refused before they were counted).
pub fn request(protocol: &'static str, method: &'static str, code: tonic::Code, elapsed: Duration, images: usize) {
    let code = code_name(code);
    counter!(REQUESTS, "protocol" => protocol, "method" => method, "code" => code).increment(1);
    counter!(IMAGES, "protocol" => protocol, "code" => code).increment(images as u64);
    histogram!(REQUEST_SECONDS, "protocol" => protocol, "method" => method).record(elapsed.as_secs_f64());
}

/// Records the time one image or call spent in one stage (see [`crate::timing`]).
pub(crate) fn stage(stage: &'static str, elapsed: Duration) {
    histogram!(STAGE_SECONDS, "stage" => stage).record(elapsed.as_secs_f64());
}

// The batcher's figures are per model: each model has its own queue and
// inference thread.

pub(crate) fn queue_wait(model: &Arc<str>, wait: Duration) {
    histogram!(QUEUE_WAIT_SECONDS, "model" => SharedString::from(Arc::clone(model))).record(wait.as_secs_f64());
}

pub(crate) fn inference_time(model: &Arc<str>, elapsed: Duration) {
    histogram!(INFERENCE_SECONDS, "model" => SharedString::from(Arc::clone(model))).record(elapsed.as_secs_f64());
}

pub(crate) fn batch_size(model: &Arc<str>, size: usize) {
    histogram!(BATCH_SIZE, "model" => SharedString::from(Arc::clone(model))).record(size as f64);
}

pub(crate) fn queue_depth(model: &Arc<str>, depth: usize) {
    gauge!(QUEUE_DEPTH, "model" => SharedString::from(Arc::clone(model))).set(depth as f64);
}

pub(crate) fn dropped(model: &Arc<str>, reason: &'static str) {
    counter!(DROPPED, "model" => SharedString::from(Arc::clone(model)), "reason" => reason).increment(1);
}

pub(crate) fn polarity_readings(photos: usize, read: bool) {
    if photos > 0 {
        counter!(POLARITY_READINGS, "result" => if read { "read" } else { "skipped" }).increment(photos as u64);
    }
}

pub(crate) fn unauthenticated() {
    counter!(UNAUTHENTICATED).increment(1);
}

pub(crate) fn stream_opened() {
    gauge!(OPEN_STREAMS).increment(1.0);
}

pub(crate) fn stream_closed() {
    gauge!(OPEN_STREAMS).decrement(1.0);
}

/// The status code's canonical name, as gRPC tooling prints it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
