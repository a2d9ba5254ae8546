//! The Open Inference Protocol (KServe v2, Triton) as both of its fronts
//! speak it: the model's tensors, the translation of input tensors into
//! images and of predictions into output tensors, and the model's
//! metadata and configuration.
//!
//! The gRPC front ([`super::inference`]) and the HTTP front ([`super::http`])
//! only move data between their wire format and [`InputTensor`] /
//! [`OutputTensor`]; every rule about names, data types and shapes is here.
//!
//! The model takes one of three inputs (a request sends exactly one):
//! - `input`, FP32 `[N,1,28,28]`: the ONNX graph's own input, already
//!   normalized;
//! - `pixels`, UINT8 `[N,28,28]` or `[N,784]`: raw pixels (0 = background),
//!   normalized by the server;
//! - `image`, BYTES `[N]` (or `[N,1]`): encoded files (PNG, JPEG, ...),
//!   preprocessed like `mnist.v1`'s `image`.
//!
//! and answers with `logits` FP32 `[N,10]`, `probabilities` FP32 `[N,10]`
//! and `digit` INT64 `[N]` (all three unless the request names some).
//!
//! Besides the served models, [`READ_MODEL`] reads whole numbers
//! ([`reading`]).

// Every size here comes from a request: no arithmetic that could wrap
// (a shape of 2^60 x 784 wrapped to one image's size once).
#![deny(clippy::arithmetic_side_effects)]

mod reading;

pub use reading::READ_MODEL;

use std::time::Instant;

use mnist::{
    IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES,
    proto::inference::{
        DataType, ModelConfig, ModelDynamicBatching, ModelInput, ModelMetadataResponse, ModelOutput, ModelParameter,
        ModelTensorReshape, ServerMetadataResponse, model_input, model_metadata_response::TensorMetadata,
    },
};

use std::sync::Arc;

use crate::{
    batcher::Prediction,
    core::{Admission, Core, ImageInput},
    error::{ServerError, quoted},
    models::Model,
};

/// Triton's name for a model run by ONNX Runtime.
const PLATFORM: &str = "onnxruntime_onnx";

/// Protocol extensions served (`ServerMetadata`, `GET /v2`).
const EXTENSIONS: [&str; 3] = ["classification", "model_configuration", "binary_tensor_data"];

const INPUT: &str = "input";
const PIXELS: &str = "pixels";
const IMAGE: &str = "image";
const INPUT_NAMES: &str = "`input` (FP32 [N,1,28,28]), `pixels` (UINT8 [N,28,28] or [N,784]) or `image` (BYTES [N])";

const LOGITS: &str = "logits";
const PROBABILITIES: &str = "probabilities";
const DIGIT: &str = "digit";

/// An input tensor's data as a request carried it.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Little-endian bytes (gRPC `raw_input_contents`, HTTP binary data);
    /// BYTES elements each prefixed by their 4-byte little-endian length.
    Raw(Vec<u8>),
    /// FP32 elements.
    Fp32(Vec<f32>),
    /// Unsigned integer elements (UINT8 data in gRPC's `uint_contents`, as
    /// the protocol carries it, or JSON).
    Uint(Vec<u32>),
    /// BYTES elements.
    Bytes(Vec<Vec<u8>>),
}

/// An input tensor of an inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// The tensor's name: `input`, `pixels` or `image`.
    pub name: String,
    /// Its data type ("FP32", "UINT8", "BYTES").
    pub datatype: String,
    /// Its shape, batch dimension first.
    pub shape: Vec<i64>,
    /// Its elements.
    pub data: TensorData,
}

/// An output a request asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestedOutput {
    /// `logits`, `probabilities` or `digit`.
    pub name: String,
    /// Triton's classification extension: the top k classes instead of the
    /// tensor (`classification` parameter).
    pub classification: Option<i64>,
}

/// The outputs of the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Logits,
    Probabilities,
    Digit,
    /// [`READ_MODEL`]'s.
    Text,
    Confidence,
    Digits,
}

/// One output to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSpec {
    output: Output,
    /// Top-k classification instead of the tensor.
    classes: Option<usize>,
}

/// An inference request, validated: its images and the outputs to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The images, in the request's order.
    pub images: Vec<ImageInput>,
    /// The outputs, in the request's order (all three when it named none).
    pub outputs: Vec<OutputSpec>,
    /// Classifying digits or reading numbers.
    pub task: Task,
    /// For reading: the number of digits the caller knows the number has
    /// (the `expected_digits` request parameter).
    pub expected_digits: Option<usize>,
}

/// What a request's model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A served model classifies single digits.
    Classify,
    /// [`READ_MODEL`]: the server's reading model reads whole numbers.
    Read,
}

impl Task {
    /// The task of the model a request names.
    pub fn of(model_name: &str) -> Self {
        if model_name == READ_MODEL { Task::Read } else { Task::Classify }
    }
}

/// The model a request names, found: the served model that answers, and
/// what it does.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The served model.
    pub model: &'a Arc<Model>,
    /// What it does for this name.
    pub task: Task,
}

impl Target<'_> {
    /// The name the request used.
    pub fn name(&self) -> &str {
        match self.task {
            Task::Classify => self.model.name(),
            Task::Read => READ_MODEL,
        }
    }
}

/// The data of an output tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    /// FP32 elements.
    Fp32(Vec<f32>),
    /// INT64 elements.
    Int64(Vec<i64>),
    /// BYTES elements (classification strings).
    Bytes(Vec<Vec<u8>>),
}

/// An output tensor of an inference response.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// The tensor's name.
    pub name: &'static str,
    /// Its data type.
    pub datatype: &'static str,
    /// Its shape, batch dimension first.
    pub shape: Vec<i64>,
    /// Its elements.
    pub data: OutputData,
}

impl OutputData {
    /// The elements as little-endian bytes (BYTES elements length-prefixed),
    /// for gRPC's `raw_output_contents` and HTTP's binary data.
    pub fn to_raw(&self) -> Vec<u8> {
        match self {
            OutputData::Fp32(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            OutputData::Int64(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            OutputData::Bytes(elements) => {
                let mut raw = Vec::with_capacity(elements.iter().map(|e| e.len().saturating_add(4)).sum());
                for element in elements {
                    raw.extend_from_slice(&(element.len() as u32).to_le_bytes());
                    raw.extend_from_slice(element);
                }
                raw
            }
        }
    }
}

/// The served model a request names (the protocol always names one; for
/// [`READ_MODEL`], the reading model), or NOT_FOUND naming those that are
/// served. An empty version means the served one.
pub fn find_model<'a>(core: &'a Core, name: &str, version: &str) -> Result<Target<'a>, ServerError> {
    if name.is_empty() {
        return Err(ServerError::ModelNotFound(format!(
            "the request names no model; this server serves {} and '{READ_MODEL}'",
            core.models().names()
        )));
    }
    let task = Task::of(name);
    let model = match task {
        Task::Read => core.models().reading_model(),
        Task::Classify => core.model(name)?,
    };
    let served = model.served();
    if version.is_empty() || version == served.version {
        return Ok(Target { model, task });
    }
    Err(ServerError::ModelNotFound(format!(
        "model '{}' version '{}' is not served; this server serves version '{}' of it",
        quoted(name),
        quoted(version),
        served.version
    )))
}

/// One entry of Triton's repository index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The model's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `READY`, or `UNAVAILABLE` while the server warms up or shuts down.
    pub state: &'static str,
}

/// Triton's repository index: every served model (the default one first)
/// with its version and state, then [`READ_MODEL`] (the reading model's
/// version); with `ready_only`, only the ready ones.
pub fn repository_index(core: &Core, ready_only: bool) -> Vec<IndexEntry> {
    let ready = core.is_ready();
    if ready_only && !ready {
        return Vec::new();
    }
    let state = if ready { "READY" } else { "UNAVAILABLE" };
    let reading = core.models().reading_model();
    core.models()
        .iter()
        .map(|model| (model.name(), model))
        .chain([(READ_MODEL, reading)])
        .map(|(name, model)| IndexEntry { name: name.to_string(), version: model.served().version.clone(), state })
        .collect()
}

/// Validates a request's tensors for `task` and turns them into images and
/// outputs.
pub fn parse(inputs: Vec<InputTensor>, outputs: &[RequestedOutput], task: Task) -> Result<InferRequest, ServerError> {
    let outputs = select_outputs(outputs, task)?;
    let mut inputs = inputs.into_iter();
    let (Some(input), None) = (inputs.next(), inputs.next()) else {
        return Err(ServerError::InvalidTensor(match task {
            Task::Classify => format!("send exactly one input tensor: {INPUT_NAMES}"),
            Task::Read => format!("send exactly one input tensor: `{IMAGE}` (BYTES [N])"),
        }));
    };
    if task == Task::Read && input.name != IMAGE {
        return Err(ServerError::InvalidTensor(format!(
            "model '{READ_MODEL}' reads encoded photos: send input `{IMAGE}` (BYTES [N]), not '{}'",
            input.name
        )));
    }
    Ok(InferRequest { images: images(input)?, outputs, task, expected_digits: None })
}

/// An inference request's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InferAnswer {
    /// The output tensors, in the request's order.
    pub outputs: Vec<OutputTensor>,
    /// Which model answered: its SHA-256 prefix (the `model_sha256`
    /// response parameter); two, comma-separated, when a model reload fell
    /// between the request's batches.
    pub models: String,
}

/// How a request gets its places: a stream's message waits for them
/// before any work, a unary call takes them at once or is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Waited for [`places`]` (.., Admitted::Waiting)`: all it can need.
    Waiting,
    /// Took [`places`]` (.., Admitted::AtOnce)`; a reading takes its
    /// candidates' places once it has them
    /// ([`crate::core::ReadingPlaces::TakeNow`]).
    AtOnce,
}

/// The places a request takes before any work: one per image to classify;
/// for reading, the worst case of one photo ([`Core::reading_places`]: its
/// photos are read one after the other with the same places) when it waits
/// for them, one when it takes them at once. Refuses more images than a
/// request may carry.
pub fn places(core: &Core, request: &InferRequest, admitted: Admitted) -> Result<usize, ServerError> {
    core.check_request_size(request.images.len())?;
    match (request.task, admitted) {
        (Task::Read, Admitted::Waiting) => Ok(core.reading_places(&core.models().readers("")?)),
        (Task::Read, Admitted::AtOnce) => Ok(1),
        (Task::Classify, _) => Ok(request.images.len()),
    }
}

/// Runs a request admitted for its [`places`] through the core, on `model`.
pub async fn infer(
    core: &Core,
    model: &Model,
    request: InferRequest,
    deadline: Option<Instant>,
    admission: Admission,
    admitted: Admitted,
) -> Result<InferAnswer, ServerError> {
    if request.task == Task::Read {
        return reading::infer(core, request, deadline, admission, admitted).await;
    }
    let predictions = core.classify_all(model, request.images, deadline, admission).await?;
    let mut models: Vec<&str> = predictions.iter().map(Prediction::model_prefix).collect();
    models.dedup();
    Ok(InferAnswer {
        outputs: request.outputs.iter().map(|spec| output_tensor(*spec, &predictions)).collect(),
        models: models.join(","),
    })
}

/// The response parameter naming the model that answered.
pub const MODEL_PARAMETER: &str = "model_sha256";

/// The images of an input tensor.
fn images(tensor: InputTensor) -> Result<Vec<ImageInput>, ServerError> {
    let InputTensor { name, datatype, shape, data } = tensor;
    let expected = match name.as_str() {
        INPUT => "FP32",
        PIXELS => "UINT8",
        IMAGE => "BYTES",
        other => {
            return Err(ServerError::InvalidTensor(format!("unknown input '{}'; send {INPUT_NAMES}", quoted(other))));
        }
    };
    if datatype != expected {
        return Err(ServerError::InvalidTensor(format!(
            "input '{name}' has data type {datatype}; expected {expected}"
        )));
    }
    let count = batch_size(&name, &shape)?;
    match name.as_str() {
        INPUT => {
            let values = match data {
                TensorData::Fp32(values) => values,
                TensorData::Raw(raw) => {
                    check_len(&name, raw.len(), elements(&name, count, IMAGE_PIXELS * 4)?, "bytes")?;
                    raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                other => return Err(wrong_contents(&name, &other)),
            };
            check_len(&name, values.len(), elements(&name, count, IMAGE_PIXELS)?, "values")?;
            Ok(values.chunks_exact(IMAGE_PIXELS).map(|image| ImageInput::Normalized(image.to_vec())).collect())
        }
        PIXELS => {
            let pixels = match data {
                TensorData::Raw(raw) => raw,
                TensorData::Uint(values) => values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        u8::try_from(v).map_err(|_| {
                            ServerError::InvalidTensor(format!("input 'pixels' value {i} is {v}; UINT8 is 0-255"))
                        })
                    })
                    .collect::<Result<Vec<u8>, _>>()?,
                other => return Err(wrong_contents(&name, &other)),
            };
            check_len(&name, pixels.len(), elements(&name, count, IMAGE_PIXELS)?, "values")?;
            if count == 1 {
                return Ok(vec![ImageInput::Pixels(pixels)]); // the common case, without a copy
            }
            Ok(pixels.chunks_exact(IMAGE_PIXELS).map(|image| ImageInput::Pixels(image.to_vec())).collect())
        }
        _ => {
            let files = match data {
                TensorData::Bytes(files) => files,
                TensorData::Raw(raw) => split_bytes(&raw)?,
                other => return Err(wrong_contents(&name, &other)),
            };
            check_len(&name, files.len(), count, "elements")?;
            Ok(files.into_iter().map(ImageInput::Encoded).collect())
        }
    }
}

/// The number of images a shape holds, once it is checked against the
/// input's accepted shapes.
fn batch_size(name: &str, shape: &[i64]) -> Result<usize, ServerError> {
    let side = IMAGE_SIDE as i64;
    let (fits, expected) = match name {
        INPUT => (matches!(shape, [_, 1, h, w] if *h == side && *w == side), "[N,1,28,28]"),
        PIXELS => (
            matches!(shape, [_, h, w] if *h == side && *w == side)
                || matches!(shape, [_, n] if *n == IMAGE_PIXELS as i64),
            "[N,28,28] or [N,784]",
        ),
        _ => (matches!(shape, [_] | [_, 1]), "[N] or [N,1]"),
    };
    let count = shape.first().copied().unwrap_or(0);
    if !fits || count < 1 {
        return Err(ServerError::InvalidTensor(format!(
            "input '{name}' has shape {shape:?}; expected {expected} with N >= 1"
        )));
    }
    usize::try_from(count).map_err(|_| ServerError::InvalidTensor(format!("input '{name}': N = {count} is too large")))
}

/// The elements `count` images of `per_image` each take; a shape whose
/// product does not fit a machine word is refused, never wrapped.
fn elements(name: &str, count: usize, per_image: usize) -> Result<usize, ServerError> {
    count.checked_mul(per_image).ok_or_else(|| {
        ServerError::InvalidTensor(format!("input '{name}': N = {count} images is more than any request can carry"))
    })
}

fn check_len(name: &str, found: usize, expected: usize, what: &str) -> Result<(), ServerError> {
    if found == expected {
        return Ok(());
    }
    Err(ServerError::InvalidTensor(format!(
        "input '{name}' has {found} {what} of data; its shape calls for {expected}"
    )))
}

fn wrong_contents(name: &str, data: &TensorData) -> ServerError {
    let found = match data {
        TensorData::Raw(_) => "raw bytes",
        TensorData::Fp32(_) => "FP32 contents",
        TensorData::Uint(_) => "unsigned integer contents",
        TensorData::Bytes(_) => "BYTES contents",
    };
    let expected = match name {
        INPUT => "FP32 values (fp32_contents) or raw little-endian bytes",
        PIXELS => "UINT8 values (uint_contents) or raw bytes",
        _ => "BYTES elements (bytes_contents) or raw length-prefixed bytes",
    };
    ServerError::InvalidTensor(format!("input '{name}' carries {found}; expected {expected}"))
}

/// Splits raw BYTES data: each element is a 4-byte little-endian length
/// followed by that many bytes.
fn split_bytes(mut raw: &[u8]) -> Result<Vec<Vec<u8>>, ServerError> {
    let malformed = || {
        ServerError::InvalidTensor(
            "input 'image' raw data is malformed: each element is a 4-byte little-endian length, then its bytes"
                .to_string(),
        )
    };
    let mut elements = Vec::new();
    while !raw.is_empty() {
        let (length, rest) = raw.split_first_chunk::<4>().ok_or_else(malformed)?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(malformed());
        }
        let (element, rest) = rest.split_at(length);
        elements.push(element.to_vec());
        raw = rest;
    }
    Ok(elements)
}

/// Each task's outputs, by name, in the order of an answer to a request
/// that names none.
fn outputs_of(task: Task) -> &'static [(&'static str, Output)] {
    match task {
        Task::Classify => &[(LOGITS, Output::Logits), (PROBABILITIES, Output::Probabilities), (DIGIT, Output::Digit)],
        Task::Read => reading::OUTPUTS,
    }
}

/// The outputs to answer with: those named, in order, or all of the task's.
fn select_outputs(requested: &[RequestedOutput], task: Task) -> Result<Vec<OutputSpec>, ServerError> {
    let known = outputs_of(task);
    if requested.is_empty() {
        return Ok(known.iter().map(|&(_, output)| OutputSpec { output, classes: None }).collect());
    }
    requested
        .iter()
        .map(|request| {
            let Some(&(_, output)) = known.iter().find(|(name, _)| *name == request.name) else {
                let names: Vec<String> = known.iter().map(|(name, _)| format!("`{name}`")).collect();
                let model = if task == Task::Read { format!(" of model '{READ_MODEL}'") } else { String::new() };
                return Err(ServerError::InvalidTensor(format!(
                    "unknown output '{}'{model}; ask for {}",
                    quoted(&request.name),
                    names.join(", ")
                )));
            };
            let scores = matches!(output, Output::Logits | Output::Probabilities);
            let classes = match request.classification {
                None | Some(0) => None,
                Some(k) if scores && (1..=NUM_CLASSES as i64).contains(&k) => Some(k as usize),
                Some(k) => {
                    return Err(ServerError::InvalidTensor(format!(
                        "classification {k} on output '{}': ask for 1 to {NUM_CLASSES} classes of `logits` or \
                         `probabilities`",
                        request.name
                    )));
                }
            };
            Ok(OutputSpec { output, classes })
        })
        .collect()
}

fn output_tensor(spec: OutputSpec, predictions: &[Prediction]) -> OutputTensor {
    let n = predictions.len() as i64;
    let (name, values): (&'static str, fn(&Prediction) -> &[f32]) = match spec.output {
        // `select_outputs` gives a classifying request none of the reading outputs.
        Output::Text | Output::Confidence | Output::Digits => (PROBABILITIES, |p| &p.probabilities),
        Output::Digit => {
            return OutputTensor {
                name: DIGIT,
                datatype: "INT64",
                shape: vec![n],
                data: OutputData::Int64(predictions.iter().map(|p| i64::from(p.digit)).collect()),
            };
        }
        Output::Logits => (LOGITS, |p| &p.logits[..]),
        Output::Probabilities => (PROBABILITIES, |p| &p.probabilities),
    };
    match spec.classes {
        None => OutputTensor {
            name,
            datatype: "FP32",
            shape: vec![n, NUM_CLASSES as i64],
            data: OutputData::Fp32(predictions.iter().flat_map(|p| values(p).iter().copied()).collect()),
        },
        Some(k) => OutputTensor {
            name,
            datatype: "BYTES",
            shape: vec![n, k as i64],
            data: OutputData::Bytes(predictions.iter().flat_map(|p| top_classes(values(p), k)).collect()),
        },
    }
}

/// Triton's classification strings, "score:index:label", best first (the
/// label of digit d is "d").
fn top_classes(values: &[f32], k: usize) -> Vec<Vec<u8>> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.into_iter().take(k).map(|i| format!("{:.6}:{i}:{i}", values[i]).into_bytes()).collect()
}

/// `ServerMetadata` / `GET /v2`.
pub fn server_metadata() -> ServerMetadataResponse {
    ServerMetadataResponse {
        name: "mnist-server".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
    }
}

/// `ModelMetadata` / `GET /v2/models/{name}`: shapes with -1 for N.
pub fn model_metadata(target: Target<'_>) -> ModelMetadataResponse {
    let model = target.model;
    if target.task == Task::Read {
        return reading::metadata(model);
    }
    let tensor = |name: &str, datatype: &str, shape: &[i64]| TensorMetadata {
        name: name.to_string(),
        datatype: datatype.to_string(),
        shape: shape.to_vec(),
    };
    let (side, classes) = (IMAGE_SIDE as i64, NUM_CLASSES as i64);
    ModelMetadataResponse {
        name: model.name().to_string(),
        versions: vec![model.served().version.clone()],
        platform: PLATFORM.to_string(),
        inputs: vec![
            tensor(INPUT, "FP32", &[-1, 1, side, side]),
            tensor(PIXELS, "UINT8", &[-1, side, side]),
            tensor(IMAGE, "BYTES", &[-1]),
        ],
        outputs: vec![
            tensor(LOGITS, "FP32", &[-1, classes]),
            tensor(PROBABILITIES, "FP32", &[-1, classes]),
            tensor(DIGIT, "INT64", &[-1]),
        ],
    }
}

/// `ModelConfig` / `GET /v2/models/{name}/config`, in Triton's terms: dims
/// without the batch dimension, `[N]` tensors as dims `[1]` reshaped to `[]`.
pub fn model_config(target: Target<'_>, core: &Core) -> ModelConfig {
    let model = target.model;
    let max_images_per_request = core.limits().max_images_per_request;
    if target.task == Task::Read {
        let second = core.models().second_reading_model().map(|m| m.as_ref());
        let check = core.models().check_model().map(|m| m.as_ref());
        return reading::config(model, second, check, max_images_per_request);
    }
    let scalar = || Some(ModelTensorReshape { shape: vec![] });
    let input = |name: &str, data_type: DataType, format: model_input::Format, dims: &[i64], reshape| ModelInput {
        name: name.to_string(),
        data_type: data_type as i32,
        format: format as i32,
        dims: dims.to_vec(),
        reshape,
        optional: true,
    };
    let output = |name: &str, data_type: DataType, dims: &[i64], reshape| ModelOutput {
        name: name.to_string(),
        data_type: data_type as i32,
        dims: dims.to_vec(),
        reshape,
    };
    let (side, classes) = (IMAGE_SIDE as i64, NUM_CLASSES as i64);
    let served = model.served();
    let batching = served.info.batching.unwrap_or_default();
    ModelConfig {
        name: model.name().to_string(),
        platform: PLATFORM.to_string(),
        backend: "onnxruntime".to_string(),
        // What one request may carry; the batcher runs up to
        // `preferred_batch_size` images per inference, across requests.
        max_batch_size: i32::try_from(max_images_per_request).unwrap_or(i32::MAX),
        input: vec![
            input(INPUT, DataType::TypeFp32, model_input::Format::Nchw, &[1, side, side], None),
            input(PIXELS, DataType::TypeUint8, model_input::Format::None, &[side, side], None),
            input(IMAGE, DataType::TypeString, model_input::Format::None, &[1], scalar()),
        ],
        output: vec![
            output(LOGITS, DataType::TypeFp32, &[classes], None),
            output(PROBABILITIES, DataType::TypeFp32, &[classes], None),
            output(DIGIT, DataType::TypeInt64, &[1], scalar()),
        ],
        dynamic_batching: Some(ModelDynamicBatching {
            preferred_batch_size: vec![i32::try_from(batching.max_batch_size).unwrap_or(i32::MAX)],
            max_queue_delay_microseconds: batching.max_queue_delay_us,
        }),
        parameters: served
            .info
            .model_metadata
            .iter()
            .map(|(key, value)| (key.clone(), ModelParameter { string_value: value.clone() }))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, datatype: &str, shape: &[i64], data: TensorData) -> InputTensor {
        InputTensor { name: name.into(), datatype: datatype.into(), shape: shape.to_vec(), data }
    }

    fn error(inputs: Vec<InputTensor>) -> String {
        let error = parse(inputs, &[], Task::Classify).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
        error.to_string()
    }

    #[test]
    fn every_input_form_gives_the_same_images() {
        let pixels: Vec<u8> = (0..2 * IMAGE_PIXELS).map(|i| (i % 251) as u8).collect();
        let raw =
            parse(vec![tensor(PIXELS, "UINT8", &[2, 28, 28], TensorData::Raw(pixels.clone()))], &[], Task::Classify)
                .unwrap();
        let typed = TensorData::Uint(pixels.iter().map(|&p| u32::from(p)).collect());
        let flat = parse(vec![tensor(PIXELS, "UINT8", &[2, 784], typed)], &[], Task::Classify).unwrap();
        assert_eq!(raw, flat);
        assert_eq!(raw.images.len(), 2);
        assert_eq!(raw.images[1], ImageInput::Pixels(pixels[IMAGE_PIXELS..].to_vec()));
        assert_eq!(raw.outputs.len(), 3, "all outputs when none is named");

        let values: Vec<f32> = (0..IMAGE_PIXELS).map(|i| i as f32 / 100.0).collect();
        let le = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let raw =
            parse(vec![tensor(INPUT, "FP32", &[1, 1, 28, 28], TensorData::Raw(le))], &[], Task::Classify).unwrap();
        let typed =
            parse(vec![tensor(INPUT, "FP32", &[1, 1, 28, 28], TensorData::Fp32(values.clone()))], &[], Task::Classify)
                .unwrap();
        assert_eq!(raw, typed);
        assert_eq!(raw.images, vec![ImageInput::Normalized(values)]);

        let files = vec![b"png".to_vec(), Vec::new(), b"jpeg!".to_vec()];
        let raw = OutputData::Bytes(files.clone()).to_raw();
        let split = parse(vec![tensor(IMAGE, "BYTES", &[3], TensorData::Raw(raw))], &[], Task::Classify).unwrap();
        let typed = parse(vec![tensor(IMAGE, "BYTES", &[3, 1], TensorData::Bytes(files.clone()))], &[], Task::Classify)
            .unwrap();
        assert_eq!(split, typed);
        assert_eq!(split.images, files.into_iter().map(ImageInput::Encoded).collect::<Vec<_>>());
    }

    #[test]
    fn a_shape_whose_size_wraps_a_machine_word_is_refused_not_wrapped() {
        // 1152921504606846977 x 784 wraps to 784 in 64 bits: one image's data.
        let huge = 1_152_921_504_606_846_977_i64;
        let message = error(vec![tensor(PIXELS, "UINT8", &[huge, 784], TensorData::Raw(vec![0; 784]))]);
        assert!(message.contains("more than any request can carry"), "{message}");
        let message = error(vec![tensor(INPUT, "FP32", &[huge / 4 + 1, 1, 28, 28], TensorData::Raw(vec![0; 3136]))]);
        assert!(message.contains("more than any request can carry"), "{message}");
    }

    #[test]
    fn wrong_tensors_are_refused_naming_what_is_expected() {
        let message = error(vec![tensor("x", "FP32", &[1], TensorData::Fp32(vec![0.0]))]);
        assert!(message.contains("unknown input 'x'") && message.contains("pixels"), "{message}");
        let message = error(vec![tensor(PIXELS, "FP32", &[1, 784], TensorData::Fp32(vec![0.0; 784]))]);
        assert!(message.contains("expected UINT8"), "{message}");
        let message = error(vec![tensor(PIXELS, "UINT8", &[1, 27, 28], TensorData::Raw(vec![0; 756]))]);
        assert!(message.contains("[N,28,28] or [N,784]"), "{message}");
        let message = error(vec![tensor(PIXELS, "UINT8", &[0, 784], TensorData::Raw(vec![]))]);
        assert!(message.contains("N >= 1"), "{message}");
        let message = error(vec![tensor(PIXELS, "UINT8", &[2, 784], TensorData::Raw(vec![0; 784]))]);
        assert!(message.contains("784 values") && message.contains("1568"), "{message}");
        let message = error(vec![tensor(PIXELS, "UINT8", &[1, 784], TensorData::Uint(vec![256; 784]))]);
        assert!(message.contains("0-255"), "{message}");
        let message = error(vec![tensor(INPUT, "FP32", &[1, 1, 28, 28], TensorData::Raw(vec![0; 5]))]);
        assert!(message.contains("5 bytes"), "{message}");
        let message = error(vec![tensor(IMAGE, "BYTES", &[1], TensorData::Raw(vec![9, 0, 0, 0, 1]))]);
        assert!(message.contains("malformed"), "{message}");
        let message = error(vec![tensor(IMAGE, "BYTES", &[1], TensorData::Fp32(vec![1.0]))]);
        assert!(message.contains("carries FP32 contents"), "{message}");
        let message = error(vec![]);
        assert!(message.contains("exactly one input"), "{message}");

        let wrong_output = |name: &str, classification| {
            parse(
                vec![tensor(PIXELS, "UINT8", &[1, 784], TensorData::Raw(vec![0; 784]))],
                &[RequestedOutput { name: name.into(), classification }],
                Task::Classify,
            )
            .unwrap_err()
            .to_string()
        };
        assert!(wrong_output("scores", None).contains("unknown output 'scores'"));
        assert!(wrong_output(DIGIT, Some(2)).contains("classification 2"));
        assert!(wrong_output(LOGITS, Some(11)).contains("1 to 10"));
    }

    #[test]
    fn the_reading_model_takes_photos_and_answers_text() {
        let photos = || vec![tensor(IMAGE, "BYTES", &[1], TensorData::Bytes(vec![b"jpeg".to_vec()]))];
        let request = parse(photos(), &[], Task::Read).unwrap();
        let outputs: Vec<Output> = request.outputs.iter().map(|spec| spec.output).collect();
        assert_eq!(outputs, [Output::Text, Output::Confidence, Output::Digits]);
        let pixels = vec![tensor(PIXELS, "UINT8", &[1, 784], TensorData::Raw(vec![0; 784]))];
        let message = parse(pixels, &[], Task::Read).unwrap_err().to_string();
        assert!(message.contains("encoded photos"), "{message}");
        let asked = |name: &str| RequestedOutput { name: name.into(), classification: None };
        let message = parse(photos(), &[asked(DIGIT)], Task::Read).unwrap_err().to_string();
        assert!(message.contains("'mnist-read'") && message.contains("`text`"), "{message}");
        let message = parse(photos(), &[asked("text")], Task::Classify).unwrap_err().to_string();
        assert!(message.contains("unknown output 'text'") && message.contains("`logits`"), "{message}");
    }

    #[test]
    fn outputs_follow_the_request() {
        let prediction = |digit: u32| {
            let mut logits = [0.0; NUM_CLASSES];
            logits[digit as usize] = 5.0;
            logits[(digit as usize + 1) % NUM_CLASSES] = 2.0;
            let probabilities = mnist::softmax(&logits);
            Prediction {
                digit,
                confidence: probabilities[digit as usize],
                probabilities,
                logits,
                model: "m".into(),
                notes: Default::default(),
            }
        };
        let predictions = [prediction(3), prediction(9)];
        let specs = select_outputs(
            &[
                RequestedOutput { name: DIGIT.into(), classification: None },
                RequestedOutput { name: PROBABILITIES.into(), classification: Some(2) },
            ],
            Task::Classify,
        )
        .unwrap();
        let tensors: Vec<_> = specs.iter().map(|spec| output_tensor(*spec, &predictions)).collect();
        assert_eq!(tensors[0].shape, vec![2]);
        assert_eq!(tensors[0].data, OutputData::Int64(vec![3, 9]));
        assert_eq!((tensors[1].datatype, tensors[1].shape.clone()), ("BYTES", vec![2, 2]));
        let OutputData::Bytes(classes) = &tensors[1].data else { panic!("{:?}", tensors[1]) };
        let classes: Vec<_> = classes.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        assert!(classes[0].ends_with(":3:3") && classes[1].ends_with(":4:4"), "{classes:?}");
        assert!(classes[2].ends_with(":9:9") && classes[3].ends_with(":0:0"), "{classes:?}");
        let score: f32 = classes[0].split(':').next().unwrap().parse().unwrap();
        assert!((score - predictions[0].confidence).abs() < 1e-6);
        assert_eq!(
            OutputData::Int64(vec![1, -1]).to_raw(),
            [1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]
        );
    }
}
