//! The Open Inference Protocol's REST API (KServe v2, Triton's HTTP
//! endpoints) on `--http-addr`, with axum.
//!
//! Requests are JSON, or JSON followed by binary tensor data (Triton's
//! binary data extension, which `tritonclient.http` uses by default): the
//! `Inference-Header-Content-Length` header says where the JSON ends, and
//! each input with a `binary_data_size` parameter takes that many bytes of
//! what follows, in order. Outputs asked for with `binary_data` (or all of
//! them with the request parameter `binary_data_output`) are answered the
//! same way.
//!
//! The health routes are open, for probes; every other route needs the
//! bearer token when the server has one. Errors are `{"error": "..."}`
//! with the HTTP code of their gRPC status (400, 401, 404, 408, 413, 429, 503, 504).

// Sizes here come from a request's bytes: no arithmetic that could wrap.
#![deny(clippy::arithmetic_side_effects)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use mnist::proto::inference::{DataType, ModelConfig, ModelMetadataResponse, model_input};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    body::{ApiError, ApiPath, BodyReader, require_token},
    oip::{self, InputTensor, OutputData, RequestedOutput, TensorData},
};
use crate::{auth::BearerAuth, core::Core, error::ServerError, metrics};

/// The protocol's name in metrics.
const PROTOCOL: &str = "oip-http";

/// Where the JSON part of a request or response with binary data ends.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    core: Arc<Core>,
    auth: BearerAuth,
    metrics: Option<PrometheusHandle>,
    bodies: BodyReader,
}

/// The REST API over `core`, its bodies read by `bodies`; `/metrics` too
/// when `metrics` is given. (The web page, [`super::web`], is merged beside
/// it by the caller.)
pub fn router(core: Arc<Core>, auth: BearerAuth, metrics: Option<PrometheusHandle>, bodies: BodyReader) -> Router {
    let state = AppState { core, auth, metrics, bodies };
    let mut protected = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready))
        .route("/v2/models/{model}/config", get(model_config))
        .route("/v2/models/{model}/versions/{version}/config", get(model_config))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer))
        .route("/v2/repository/index", post(repository_index));
    if state.metrics.is_some() {
        protected = protected.route("/metrics", get(render_metrics));
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(state.auth.clone(), require_token));
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(ApiError::method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such route; the Open Inference Protocol's are under /v2 (e.g. POST /v2/models/mnist/infer), \
         the web page's at / and /api",
    )
}

/// Health answers carry a JSON body too: KServe's clients read `live` and
/// `ready` from it, Triton's only the status code.
async fn live() -> axum::Json<Value> {
    axum::Json(json!({ "live": true }))
}

/// 200 once the model is warmed up, 503 before and while draining.
fn readiness(core: &Core) -> (StatusCode, bool) {
    let ready = core.is_ready();
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, ready)
}

async fn ready(State(state): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    let (status, ready) = readiness(&state.core);
    (status, axum::Json(json!({ "ready": ready })))
}

/// The model and version of a route; the version is empty when absent.
#[derive(Deserialize)]
struct ModelPath {
    model: String,
    #[serde(default)]
    version: String,
}

impl ModelPath {
    fn find<'a>(&self, core: &'a Core) -> Result<oip::Target<'a>, ServerError> {
        oip::find_model(core, &self.model, &self.version)
    }
}

async fn model_ready(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<ModelPath>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let target = path.find(&state.core)?;
    let (status, ready) = readiness(&state.core);
    Ok((status, axum::Json(json!({ "name": target.name(), "ready": ready }))))
}

/// Triton's repository index request: both fields optional.
#[derive(Deserialize, Default)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

/// `POST /v2/repository/index` (Triton): every served model, as
/// tritonclient's `get_model_repository_index()` reads it.
async fn repository_index(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    let body = state.bodies.read(&headers, body).await?;
    let request: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::from(ServerError::InvalidTensor(format!("the repository index request is not valid JSON: {e}")))
        })?
    };
    let entries = oip::repository_index(&state.core, request.ready);
    Ok(axum::Json(Value::Array(
        entries
            .into_iter()
            .map(|entry| json!({ "name": entry.name, "version": entry.version, "state": entry.state }))
            .collect(),
    )))
}

async fn server_metadata() -> axum::Json<Value> {
    let metadata = oip::server_metadata();
    axum::Json(json!({ "name": metadata.name, "version": metadata.version, "extensions": metadata.extensions }))
}

async fn model_metadata(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<ModelPath>,
) -> Result<axum::Json<Value>, ApiError> {
    let target = path.find(&state.core)?;
    Ok(axum::Json(metadata_json(&oip::model_metadata(target))))
}

async fn model_config(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<ModelPath>,
) -> Result<axum::Json<Value>, ApiError> {
    let target = path.find(&state.core)?;
    let config = oip::model_config(target, &state.core);
    Ok(axum::Json(config_json(&config)))
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.as_ref().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn infer(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<ModelPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut images = 0;
    let result = infer_body(&state.core, &state.bodies, &path, &headers, body, &mut images).await;
    let code = result.as_ref().map_or_else(|e| e.code(), |_| tonic::Code::Ok);
    metrics::request(PROTOCOL, "infer", code, started.elapsed(), images);
    Ok(result?)
}

/// Parses, admits and runs one inference request; `images` is set once known.
async fn infer_body(
    core: &Core,
    bodies: &BodyReader,
    path: &ModelPath,
    headers: &HeaderMap,
    body: Body,
    images: &mut usize,
) -> Result<Response, ServerError> {
    let target = path.find(core)?;
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING).filter(|e| e.as_bytes() != b"identity") {
        return Err(ServerError::InvalidTensor(format!(
            "Content-Encoding {} is not supported: send the request uncompressed",
            String::from_utf8_lossy(encoding.as_bytes())
        )));
    }
    let body = bodies.read(headers, body).await?;
    // Parsing a few MB of JSON takes milliseconds: off the async workers
    // that serve every other call.
    let header_length = headers.get(HEADER_LENGTH).map(|value| value.as_bytes().to_vec());
    let task = target.task;
    let parsed = tokio::task::spawn_blocking(move || parse_infer_body(header_length.as_deref(), body, task))
        .await
        .map_err(|e| ServerError::Inference(format!("parsing task failed: {e}")))??;
    *images = parsed.request.images.len();
    let admission = core.try_take(oip::places(core, &parsed.request, oip::Admitted::AtOnce)?)?;
    let binary = parsed.binary_outputs();
    let answer =
        oip::infer(core, target.model, parsed.request, parsed.deadline, admission, oip::Admitted::AtOnce).await?;
    Ok(response(target, parsed.id, answer, &binary))
}

/// An inference request's body, parsed.
pub struct ParsedBody {
    /// The request's id, echoed in the response.
    pub id: Option<String>,
    /// From the `timeout` parameter (microseconds), as tritonclient sends it.
    pub deadline: Option<Instant>,
    /// The images and the outputs asked for.
    pub request: oip::InferRequest,
    /// Per output named in the request: whether to answer it as binary data.
    binary_outputs: Vec<bool>,
    /// The request's `binary_data_output` parameter.
    binary_by_default: bool,
}

impl ParsedBody {
    /// Whether each output of the answer goes as binary data: as the request
    /// named it, else as `binary_data_output` says (for all three when it
    /// named none).
    fn binary_outputs(&self) -> Vec<bool> {
        if self.binary_outputs.is_empty() {
            vec![self.binary_by_default; self.request.outputs.len()]
        } else {
            self.binary_outputs.clone()
        }
    }
}

/// Parses an inference request's body: JSON, or JSON then binary tensor
/// data when `header_length` (the `Inference-Header-Content-Length` header)
/// says where the JSON ends, for the `task` of the model the path names.
/// All that a body goes through before admission; public so that the
/// fuzzer drives the very code that serves.
pub fn parse_infer_body(header_length: Option<&[u8]>, body: Bytes, task: oip::Task) -> Result<ParsedBody, ServerError> {
    let header_length = match header_length {
        None => body.len(),
        Some(value) => std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                ServerError::InvalidTensor(format!(
                    "Inference-Header-Content-Length must be the length of the JSON part, at most the body's {} bytes",
                    body.len()
                ))
            })?,
    };
    let request: InferBody = serde_json::from_slice(&body[..header_length])
        .map_err(|e| ServerError::InvalidTensor(format!("the request is not a valid inference request: {e}")))?;
    let (id, deadline, binary_by_default) = request_parameters(&request);
    let outputs: Vec<_> = request.outputs.iter().flatten().map(JsonOutput::requested).collect();
    let binary_outputs = request
        .outputs
        .iter()
        .flatten()
        .map(|o| o.parameters.get("binary_data").and_then(Value::as_bool).unwrap_or(binary_by_default))
        .collect();
    let expected_digits = match request.parameters.get("expected_digits") {
        None => None,
        Some(value) => {
            Some(value.as_u64().and_then(|n| usize::try_from(n).ok()).filter(|&n| n > 0).ok_or_else(|| {
                ServerError::InvalidTensor("the parameter expected_digits must be a positive integer".to_string())
            })?)
        }
    };
    let inputs = input_tensors(request.inputs, body.slice(header_length..))?;
    let mut parsed = oip::parse(inputs, &outputs, task)?;
    parsed.expected_digits = expected_digits;
    Ok(ParsedBody { id, deadline, request: parsed, binary_outputs, binary_by_default })
}

/// The JSON part of an inference request.
#[derive(Deserialize)]
struct InferBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<JsonInput>,
    #[serde(default)]
    outputs: Option<Vec<JsonOutput>>,
}

#[derive(Deserialize)]
struct JsonInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    data: Option<JsonElements>,
}

#[derive(Deserialize)]
struct JsonOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

impl JsonOutput {
    fn requested(&self) -> RequestedOutput {
        RequestedOutput {
            name: self.name.clone(),
            classification: self.parameters.get("classification").and_then(Value::as_i64),
        }
    }
}

/// The request's id, deadline (the `timeout` parameter, in microseconds, as
/// tritonclient sends it) and whether outputs are binary by default.
fn request_parameters(request: &InferBody) -> (Option<String>, Option<Instant>, bool) {
    let timeout = request.parameters.get("timeout").and_then(Value::as_u64).map(Duration::from_micros);
    let binary = request.parameters.get("binary_data_output").and_then(Value::as_bool).unwrap_or(false);
    (request.id.clone(), timeout.and_then(|t| Instant::now().checked_add(t)), binary)
}

/// Each input with its data: its share of the binary part when it has a
/// `binary_data_size`, else its JSON `data`.
fn input_tensors(inputs: Vec<JsonInput>, mut binary: Bytes) -> Result<Vec<InputTensor>, ServerError> {
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let size = input.parameters.get("binary_data_size").map(|v| {
            v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                ServerError::InvalidTensor(format!("input '{}': binary_data_size must be a byte count", input.name))
            })
        });
        let data = match (size.transpose()?, input.data) {
            (Some(size), _) => {
                if size > binary.len() {
                    return Err(ServerError::InvalidTensor(format!(
                        "input '{}' has binary_data_size {size}, but only {} bytes of binary data are left",
                        input.name,
                        binary.len()
                    )));
                }
                TensorData::Raw(binary.split_to(size).to_vec())
            }
            (None, Some(data)) => {
                // Refused before any conversion when the count is not the shape's.
                let expected = input.shape.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok()?.checked_mul(n));
                if let Some(expected) = expected.filter(|&expected| expected != data.len()) {
                    return Err(ServerError::InvalidTensor(format!(
                        "input '{}' has {} values of data; its shape calls for {expected}",
                        input.name,
                        data.len()
                    )));
                }
                json_data(&input.name, &input.datatype, data)?
            }
            (None, None) => {
                return Err(ServerError::InvalidTensor(format!(
                    "input '{}' has neither `data` nor a `binary_data_size` parameter",
                    input.name
                )));
            }
        };
        tensors.push(InputTensor { name: input.name, datatype: input.datatype, shape: input.shape, data });
    }
    if !binary.is_empty() {
        return Err(ServerError::InvalidTensor(format!(
            "{} bytes of binary data are not claimed by any input's binary_data_size",
            binary.len()
        )));
    }
    Ok(tensors)
}

/// A tensor's JSON `data` as its data type's elements.
fn json_data(name: &str, datatype: &str, data: JsonElements) -> Result<TensorData, ServerError> {
    let invalid = |i: usize, what: &str| {
        ServerError::InvalidTensor(format!("input '{name}' element {i} is not {what} (data type {datatype})"))
    };
    if let Some(i) = data.unusable {
        let what = match datatype {
            "BYTES" => "a string",
            "FP32" => "a number",
            _ => "a 32-bit unsigned integer",
        };
        return Err(invalid(i, what));
    }
    Ok(match (datatype, data.values) {
        ("BYTES", Values::Strings(strings)) => TensorData::Bytes(strings),
        // Pixels as they were parsed, a byte each.
        ("UINT8", Values::Bytes(bytes)) => TensorData::Raw(bytes),
        ("BYTES", _) => return Err(invalid(0, "a string")),
        (_, Values::Strings(_)) if datatype == "FP32" => return Err(invalid(0, "a number")),
        (_, Values::Strings(_)) => return Err(invalid(0, "a 32-bit unsigned integer")),
        ("FP32", Values::Bytes(bytes)) => TensorData::Fp32(bytes.into_iter().map(f32::from).collect()),
        ("FP32", Values::Numbers(numbers)) => TensorData::Fp32(numbers.into_iter().map(|x| x as f32).collect()),
        // UINT8 and the like: whole numbers 0 to 2^32-1.
        (_, Values::Bytes(bytes)) => TensorData::Uint(bytes.into_iter().map(u32::from).collect()),
        (_, Values::Numbers(numbers)) => TensorData::Uint(
            numbers
                .into_iter()
                .enumerate()
                .map(|(i, x)| {
                    let whole = x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x);
                    if whole { Ok(x as u32) } else { Err(invalid(i, "a 32-bit unsigned integer")) }
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A tensor's JSON `data` (flat or nested row-major arrays), flattened as
/// it is parsed and kept as compactly as its elements allow: bytes while
/// every element is a whole number 0-255 (pixels: one byte each), else
/// numbers, or strings. A `serde_json::Value` tree would take 32 bytes and
/// more per element: a few MB of JSON pixels would become a hundred MB
/// before the request could even be refused.
#[derive(Debug, Default, PartialEq)]
struct JsonElements {
    values: Values,
    /// The first element that is of no data type's kind (a bool, null, an
    /// object, or a string among numbers), by position.
    unusable: Option<usize>,
}

#[derive(Debug, PartialEq)]
enum Values {
    Bytes(Vec<u8>),
    Numbers(Vec<f64>),
    Strings(Vec<Vec<u8>>),
}

impl Default for Values {
    fn default() -> Self {
        Values::Bytes(Vec::new())
    }
}

impl JsonElements {
    fn len(&self) -> usize {
        match &self.values {
            Values::Bytes(v) => v.len(),
            Values::Numbers(v) => v.len(),
            Values::Strings(v) => v.len(),
        }
    }

    fn mark_unusable(&mut self) {
        if self.unusable.is_none() {
            self.unusable = Some(self.len());
        }
    }

    fn push_number(&mut self, x: f64) {
        let byte = x.fract() == 0.0 && (0.0..=255.0).contains(&x);
        match &mut self.values {
            Values::Bytes(bytes) if byte => bytes.push(x as u8),
            Values::Bytes(bytes) => {
                let mut numbers: Vec<f64> = bytes.iter().map(|&b| f64::from(b)).collect();
                numbers.push(x);
                self.values = Values::Numbers(numbers);
            }
            Values::Numbers(numbers) => numbers.push(x),
            _ => self.mark_unusable(),
        }
    }

    fn push_string(&mut self, s: &str) {
        match &mut self.values {
            Values::Strings(strings) => strings.push(s.as_bytes().to_vec()),
            Values::Bytes(bytes) if bytes.is_empty() => self.values = Values::Strings(vec![s.as_bytes().to_vec()]),
            _ => self.mark_unusable(),
        }
    }
}

impl<'de> Deserialize<'de> for JsonElements {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut elements = JsonElements::default();
        serde::de::DeserializeSeed::deserialize(Flatten(&mut elements), deserializer)?;
        Ok(elements)
    }
}

/// Adds one JSON value (an element, or an array of them at any depth) to
/// the elements.
struct Flatten<'a>(&'a mut JsonElements);

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("numbers or strings, in arrays nested to any depth")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push_number(v as f64);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push_number(v as f64);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push_number(v);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push_string(v);
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.mark_unusable();
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.mark_unusable();
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.mark_unusable();
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// The response: JSON, followed by the binary outputs' bytes when any.
fn response(target: oip::Target<'_>, id: Option<String>, answer: oip::InferAnswer, binary: &[bool]) -> Response {
    let mut tail = Vec::new();
    let outputs: Vec<Value> = answer
        .outputs
        .into_iter()
        .zip(binary.iter().copied().chain(std::iter::repeat(false)))
        .map(|(tensor, binary)| {
            let mut output = json!({ "name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape });
            if binary {
                let raw = tensor.data.to_raw();
                output["parameters"] = json!({ "binary_data_size": raw.len() });
                tail.extend_from_slice(&raw);
            } else {
                output["data"] = match tensor.data {
                    OutputData::Fp32(values) => json!(values),
                    OutputData::Int64(values) => json!(values),
                    OutputData::Bytes(values) => {
                        json!(values.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect::<Vec<_>>())
                    }
                };
            }
            output
        })
        .collect();
    let mut body = json!({
        "model_name": target.name(),
        "model_version": target.model.served().version,
        "outputs": outputs,
        "parameters": { oip::MODEL_PARAMETER: answer.models },
    });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    let mut bytes = body.to_string().into_bytes();
    if tail.is_empty() {
        return ([(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    }
    let header_length = bytes.len().to_string();
    bytes.extend_from_slice(&tail);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::HeaderName::from_static(HEADER_LENGTH), header_length),
        ],
        bytes,
    )
        .into_response()
}

/// Model metadata as the REST API writes it.
fn metadata_json(metadata: &ModelMetadataResponse) -> Value {
    let tensors = |tensors: &[mnist::proto::inference::model_metadata_response::TensorMetadata]| {
        tensors.iter().map(|t| json!({ "name": t.name, "datatype": t.datatype, "shape": t.shape })).collect::<Vec<_>>()
    };
    json!({
        "name": metadata.name,
        "versions": metadata.versions,
        "platform": metadata.platform,
        "inputs": tensors(&metadata.inputs),
        "outputs": tensors(&metadata.outputs),
    })
}

/// A model configuration as Triton writes it in JSON (protobuf's JSON
/// mapping with the field names as in the .proto, as tritonclient reads it).
fn config_json(config: &ModelConfig) -> Value {
    let data_type = |t: i32| DataType::try_from(t).map_or("TYPE_INVALID", |t| t.as_str_name());
    let reshape =
        |r: &Option<mnist::proto::inference::ModelTensorReshape>| r.as_ref().map(|r| json!({ "shape": r.shape }));
    let inputs: Vec<Value> = config
        .input
        .iter()
        .map(|input| {
            let format = model_input::Format::try_from(input.format).map_or("FORMAT_NONE", |f| f.as_str_name());
            let mut value = json!({
                "name": input.name, "data_type": data_type(input.data_type), "format": format,
                "dims": input.dims, "optional": input.optional,
            });
            if let Some(reshape) = reshape(&input.reshape) {
                value["reshape"] = reshape;
            }
            value
        })
        .collect();
    let outputs: Vec<Value> = config
        .output
        .iter()
        .map(|output| {
            let mut value =
                json!({ "name": output.name, "data_type": data_type(output.data_type), "dims": output.dims });
            if let Some(reshape) = reshape(&output.reshape) {
                value["reshape"] = reshape;
            }
            value
        })
        .collect();
    let parameters: Map<String, Value> = config
        .parameters
        .iter()
        .map(|(key, value)| (key.clone(), json!({ "string_value": value.string_value })))
        .collect();
    let mut value = json!({
        "name": config.name,
        "platform": config.platform,
        "backend": config.backend,
        "max_batch_size": config.max_batch_size,
        "input": inputs,
        "output": outputs,
        "parameters": parameters,
    });
    if let Some(batching) = &config.dynamic_batching {
        value["dynamic_batching"] = json!({
            "preferred_batch_size": batching.preferred_batch_size,
            "max_queue_delay_microseconds": batching.max_queue_delay_microseconds,
        });
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_parts_go_to_their_inputs_in_order() {
        let inputs = vec![
            JsonInput {
                name: "pixels".into(),
                shape: vec![1, 784],
                datatype: "UINT8".into(),
                parameters: [("binary_data_size".to_string(), json!(3))].into_iter().collect(),
                data: None,
            },
            JsonInput {
                name: "image".into(),
                shape: vec![1],
                datatype: "BYTES".into(),
                parameters: Map::new(),
                data: Some(elements(r#"["abc"]"#)),
            },
        ];
        let tensors = input_tensors(inputs, Bytes::from_static(b"xyz")).unwrap();
        assert_eq!(tensors[0].data, TensorData::Raw(b"xyz".to_vec()));
        assert_eq!(tensors[1].data, TensorData::Bytes(vec![b"abc".to_vec()]));

        let claimed_too_much = vec![JsonInput {
            name: "pixels".into(),
            shape: vec![1, 784],
            datatype: "UINT8".into(),
            parameters: [("binary_data_size".to_string(), json!(784))].into_iter().collect(),
            data: None,
        }];
        let error = input_tensors(claimed_too_much, Bytes::from_static(b"xyz")).err().unwrap();
        assert!(error.to_string().contains("only 3 bytes"), "{error}");
    }

    fn elements(json: &str) -> JsonElements {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn json_data_may_be_nested_and_must_fit_its_type() {
        let data = json_data("pixels", "UINT8", elements("[[1, 2], [3, 255]]")).unwrap();
        assert_eq!(data, TensorData::Raw(vec![1, 2, 3, 255]));
        let data = json_data("pixels", "UINT32", elements("[[1, 2], [3, 255]]")).unwrap();
        assert_eq!(data, TensorData::Uint(vec![1, 2, 3, 255]));
        let error = json_data("pixels", "UINT8", elements("[1, -2]")).unwrap_err();
        assert!(error.to_string().contains("element 1"), "{error}");
        let error = json_data("pixels", "UINT8", elements("[1, 2, 1.5]")).unwrap_err();
        assert!(error.to_string().contains("element 2"), "{error}");
        let error = json_data("pixels", "UINT8", elements("[1, 2, true]")).unwrap_err();
        assert!(error.to_string().contains("element 2"), "{error}");
        assert_eq!(json_data("input", "FP32", elements("[0.5, 1]")).unwrap(), TensorData::Fp32(vec![0.5, 1.0]));
        assert_eq!(json_data("input", "FP32", elements("[[1], [2]]")).unwrap(), TensorData::Fp32(vec![1.0, 2.0]));
        assert!(json_data("image", "BYTES", elements("[1]")).is_err());
        assert_eq!(
            json_data("image", "BYTES", elements(r#"[["ab"], ["c"]]"#)).unwrap(),
            TensorData::Bytes(vec![b"ab".to_vec(), b"c".to_vec()])
        );
        let error = json_data("image", "BYTES", elements(r#"["ab", 3]"#)).unwrap_err();
        assert!(error.to_string().contains("element 1"), "{error}");
    }

    #[test]
    fn json_pixels_take_a_byte_each_while_parsed() {
        // 784 pixels as JSON: kept as 784 bytes, not a tree of values.
        let pixels = elements(&serde_json::to_string(&vec![vec![200u8; 28]; 28]).unwrap());
        assert!(matches!(&pixels.values, Values::Bytes(bytes) if bytes.len() == 784));
        // A value past 255 widens what came before, in order.
        let wide = elements("[1, 2, 70000]");
        assert_eq!(wide.values, Values::Numbers(vec![1.0, 2.0, 70000.0]));
    }
}
