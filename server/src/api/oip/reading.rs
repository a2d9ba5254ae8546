//! Reading numbers over the Open Inference Protocol: the [`READ_MODEL`]
//! model, so that tritonclient, KServe and curl can call what `mnist.v1`'s
//! `ReadOne` does.
//!
//! It takes `image`, BYTES `[N]` (or `[N,1]`): encoded photos, each of one
//! handwritten number; the request parameter `expected_digits` (an integer)
//! asks for readings of that length when the marks allow one. It answers
//! with, per photo:
//! - `text`, BYTES `[N]`: the digits read ("" when the photo holds none);
//! - `confidence`, FP32 `[N]`: how sure the reading is as a whole (as
//!   `ReadResponse.confidence`: the model's probability of the whole text);
//! - `digits`, BYTES `[N]`: each digit as JSON, `[{"digit", "confidence",
//!   "box": {"x", "y", "width", "height"}, "checked"}]`, boxes in the
//!   photo's pixels, `checked` when the check model read the digit too.
//!
//! (all three unless the request names some). Each photo is segmented and
//! all its candidate digits go through the reading model's batcher
//! together, as for `ReadOne`; the photos of one request are read one
//! after the other.

use std::time::Instant;

use mnist::proto::inference::{
    DataType, ModelConfig, ModelDynamicBatching, ModelInput, ModelMetadataResponse, ModelOutput, ModelParameter,
    ModelTensorReshape, model_input, model_metadata_response::TensorMetadata,
};
use serde_json::json;

use super::{IMAGE, InferAnswer, InferRequest, Output, OutputData, OutputTensor};
use crate::{
    core::{Admission, Core, ImageInput, PageInput, ReadingPlaces},
    error::ServerError,
    models::Model,
};

/// The name reading numbers is served under.
pub const READ_MODEL: &str = "mnist-read";

/// Triton's platform name for a pipeline of steps (here segmentation, then
/// the reading model on every candidate).
const PLATFORM: &str = "ensemble";

const TEXT: &str = "text";
const CONFIDENCE: &str = "confidence";
const DIGITS: &str = "digits";

/// The outputs, by name (see [`super::outputs_of`]).
pub(super) const OUTPUTS: &[(&str, Output)] =
    &[(TEXT, Output::Text), (CONFIDENCE, Output::Confidence), (DIGITS, Output::Digits)];

/// Reads each photo of an admitted request with the server's readers (the
/// reading model and the second one, if any), the surest reading kept.
pub(super) async fn infer(
    core: &Core,
    request: InferRequest,
    deadline: Option<Instant>,
    mut admission: Admission,
    admitted: super::Admitted,
) -> Result<InferAnswer, ServerError> {
    let readers = core.models().readers("")?;
    let mut readings = Vec::with_capacity(request.images.len());
    let photos = request.images.len();
    for (index, image) in request.images.into_iter().enumerate() {
        let ImageInput::Encoded(bytes) = image else {
            return Err(ServerError::InvalidTensor(format!(
                "model '{READ_MODEL}' reads encoded photos: send input `{IMAGE}` (BYTES [N])"
            )));
        };
        let page = PageInput::Encoded(bytes);
        let places = match admitted {
            // The places are kept for the next photo: waiting for them
            // again would wait while holding.
            super::Admitted::Waiting => ReadingPlaces::Reserved { give_back_unused: index == photos.saturating_sub(1) },
            super::Admitted::AtOnce => ReadingPlaces::TakeNow,
        };
        readings.push(core.read(&readers, page, request.expected_digits, deadline, &mut admission, places).await?);
    }
    let n = readings.len() as i64;
    let mut models: Vec<&str> = readings.iter().map(|r| r.model.as_str()).collect();
    models.dedup();
    let outputs = request
        .outputs
        .iter()
        .map(|spec| match spec.output {
            Output::Confidence => OutputTensor {
                name: CONFIDENCE,
                datatype: "FP32",
                shape: vec![n],
                data: OutputData::Fp32(readings.iter().map(|r| r.reading.confidence).collect()),
            },
            Output::Digits => OutputTensor {
                name: DIGITS,
                datatype: "BYTES",
                shape: vec![n],
                data: OutputData::Bytes(
                    readings
                        .iter()
                        .map(|r| {
                            let digits: Vec<_> = r
                                .reading
                                .digits
                                .iter()
                                .map(|d| {
                                    json!({
                                        "digit": d.digit,
                                        "confidence": d.confidence,
                                        "box": d.bounds,
                                        "checked": d.checked,
                                    })
                                })
                                .collect();
                            serde_json::Value::Array(digits).to_string().into_bytes()
                        })
                        .collect(),
                ),
            },
            // `OUTPUTS` are a reading request's only outputs.
            _ => OutputTensor {
                name: TEXT,
                datatype: "BYTES",
                shape: vec![n],
                data: OutputData::Bytes(readings.iter().map(|r| r.reading.text.clone().into_bytes()).collect()),
            },
        })
        .collect();
    Ok(InferAnswer { outputs, models: models.join(",") })
}

/// `ModelMetadata` of [`READ_MODEL`]; its version is the reading model's.
pub(super) fn metadata(model: &Model) -> ModelMetadataResponse {
    let tensor = |name: &str, datatype: &str| TensorMetadata {
        name: name.to_string(),
        datatype: datatype.to_string(),
        shape: vec![-1],
    };
    ModelMetadataResponse {
        name: READ_MODEL.to_string(),
        versions: vec![model.served().version.clone()],
        platform: PLATFORM.to_string(),
        inputs: vec![tensor(IMAGE, "BYTES")],
        outputs: vec![tensor(TEXT, "BYTES"), tensor(CONFIDENCE, "FP32"), tensor(DIGITS, "BYTES")],
    }
}

/// `ModelConfig` of [`READ_MODEL`], in Triton's terms (see
/// [`super::model_config`]); the parameters name the reading model, the
/// second one and the check model (empty when there is none).
pub(super) fn config(
    model: &Model,
    second: Option<&Model>,
    check: Option<&Model>,
    max_images_per_request: usize,
) -> ModelConfig {
    let scalar = || Some(ModelTensorReshape { shape: vec![] });
    let output = |name: &str, data_type: DataType| ModelOutput {
        name: name.to_string(),
        data_type: data_type as i32,
        dims: vec![1],
        reshape: scalar(),
    };
    let served = model.served();
    let batching = served.info.batching.unwrap_or_default();
    ModelConfig {
        name: READ_MODEL.to_string(),
        platform: PLATFORM.to_string(),
        backend: String::new(),
        max_batch_size: i32::try_from(max_images_per_request).unwrap_or(i32::MAX),
        input: vec![ModelInput {
            name: IMAGE.to_string(),
            data_type: DataType::TypeString as i32,
            format: model_input::Format::None as i32,
            dims: vec![1],
            reshape: scalar(),
            optional: false,
        }],
        output: vec![
            output(TEXT, DataType::TypeString),
            output(CONFIDENCE, DataType::TypeFp32),
            output(DIGITS, DataType::TypeString),
        ],
        dynamic_batching: Some(ModelDynamicBatching {
            preferred_batch_size: vec![i32::try_from(batching.max_batch_size).unwrap_or(i32::MAX)],
            max_queue_delay_microseconds: batching.max_queue_delay_us,
        }),
        parameters: [
            ("reading_model".to_string(), ModelParameter { string_value: model.name().to_string() }),
            (
                "second_reading_model".to_string(),
                ModelParameter { string_value: second.map(|m| m.name().to_string()).unwrap_or_default() },
            ),
            (
                "check_model".to_string(),
                ModelParameter { string_value: check.map(|m| m.name().to_string()).unwrap_or_default() },
            ),
        ]
        .into(),
    }
}
