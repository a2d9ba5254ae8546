//! `inference.GRPCInferenceService`: the Open Inference Protocol over gRPC,
//! on the same port as `mnist.v1`, so Triton and KServe clients call the
//! server unchanged.
//!
//! This module only moves data between the protocol's messages and
//! [`oip`]'s tensors; admission, limits and batching are the [`Core`]'s,
//! shared with every other front. As Triton does, a request that sent its
//! inputs as raw bytes is answered with raw outputs.

use std::{sync::Arc, time::Instant};

use mnist::proto::inference::{
    InferParameter, InferTensorContents, ModelConfigRequest, ModelConfigResponse, ModelInferRequest,
    ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse, ModelReadyRequest, ModelReadyResponse,
    ModelStreamInferResponse, RepositoryIndexRequest, RepositoryIndexResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
    grpc_inference_service_server::GrpcInferenceService, infer_parameter::ParameterChoice,
    model_infer_request::InferInputTensor, model_infer_response::InferOutputTensor,
    repository_index_response::ModelIndex,
};
use tonic::{Request, Response, Status, Streaming};

use super::{
    oip::{self, InputTensor, OutputData, RequestedOutput, TensorData},
    stream::{self, ResponseStream},
};
use crate::{
    core::{Admission, Core},
    error::ServerError,
    metrics,
    models::Model,
    timing,
};

/// The protocol's name in metrics.
const PROTOCOL: &str = "oip-grpc";

/// The Open Inference Protocol's gRPC service; cheap to clone.
#[derive(Clone)]
pub struct InferenceService {
    core: Arc<Core>,
}

impl InferenceService {
    /// The service, over the shared core.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

/// A request, validated: its tensors parsed.
pub struct Parsed {
    /// The request's id, echoed in the response.
    pub id: String,
    /// Whether to answer in `raw_output_contents` (the request used raw inputs).
    pub raw_outputs: bool,
    /// The images and the outputs asked for.
    pub request: oip::InferRequest,
}

/// The served model a request names, its tensors parsed, and the places it
/// takes before any work ([`oip::places`]).
fn parse(
    core: &Core,
    request: ModelInferRequest,
    admitted: oip::Admitted,
) -> Result<(Arc<Model>, Parsed, usize), ServerError> {
    let model = Arc::clone(oip::find_model(core, &request.model_name, &request.model_version)?.model);
    let parsed = parse_tensors(request)?;
    let places = oip::places(core, &parsed.request, admitted)?;
    Ok((model, parsed, places))
}

/// Parses a request's tensors (all but the model's version) for the task
/// its model name stands for: all that a request's bytes go through before
/// admission. Public so that the fuzzer drives the very code that serves.
pub fn parse_tensors(request: ModelInferRequest) -> Result<Parsed, ServerError> {
    let task = oip::Task::of(&request.model_name);
    let expected_digits = request.parameters.get("expected_digits").map(expected_digits).transpose()?;
    let raw_outputs = !request.raw_input_contents.is_empty();
    let inputs = input_tensors(request.inputs, request.raw_input_contents)?;
    let outputs: Vec<_> = request
        .outputs
        .into_iter()
        .map(|output| RequestedOutput {
            classification: output.parameters.get("classification").and_then(integer),
            name: output.name,
        })
        .collect();
    let mut parsed = oip::parse(inputs, &outputs, task)?;
    parsed.expected_digits = expected_digits;
    Ok(Parsed { id: request.id, raw_outputs, request: parsed })
}

/// The `expected_digits` request parameter: a positive integer.
fn expected_digits(parameter: &InferParameter) -> Result<usize, ServerError> {
    integer(parameter).and_then(|n| usize::try_from(n).ok()).filter(|&n| n > 0).ok_or_else(|| {
        ServerError::InvalidTensor("the parameter expected_digits must be a positive integer".to_string())
    })
}

/// Pairs each input with its data: the raw entry of the same position when
/// the request used `raw_input_contents`, else the typed contents that
/// match its data type.
fn input_tensors(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> Result<Vec<InputTensor>, ServerError> {
    if !raw.is_empty() && raw.len() != inputs.len() {
        return Err(ServerError::InvalidTensor(format!(
            "{} raw_input_contents for {} inputs: send one per input, or none",
            raw.len(),
            inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    Ok(inputs
        .into_iter()
        .map(|input| {
            let contents = input.contents.unwrap_or_default();
            let data = match raw.next() {
                Some(bytes) => TensorData::Raw(bytes),
                None => match input.datatype.as_str() {
                    "FP32" => TensorData::Fp32(contents.fp32_contents),
                    "BYTES" => TensorData::Bytes(contents.bytes_contents),
                    _ => TensorData::Uint(contents.uint_contents),
                },
            };
            InputTensor { name: input.name, datatype: input.datatype, shape: input.shape, data }
        })
        .collect())
}

/// An integer parameter (tritonclient sends `classification` as int64).
fn integer(parameter: &InferParameter) -> Option<i64> {
    match parameter.parameter_choice.as_ref()? {
        ParameterChoice::Int64Param(value) => Some(*value),
        ParameterChoice::Uint64Param(value) => i64::try_from(*value).ok(),
        _ => None,
    }
}

fn response(
    model: &Arc<Model>,
    task: oip::Task,
    id: String,
    answer: oip::InferAnswer,
    raw_outputs: bool,
) -> ModelInferResponse {
    let mut raw_output_contents = Vec::new();
    let outputs = answer
        .outputs
        .into_iter()
        .map(|tensor| {
            let contents = if raw_outputs {
                raw_output_contents.push(tensor.data.to_raw());
                None
            } else {
                Some(match tensor.data {
                    OutputData::Fp32(values) => InferTensorContents { fp32_contents: values, ..Default::default() },
                    OutputData::Int64(values) => InferTensorContents { int64_contents: values, ..Default::default() },
                    OutputData::Bytes(values) => InferTensorContents { bytes_contents: values, ..Default::default() },
                })
            };
            InferOutputTensor {
                name: tensor.name.to_string(),
                datatype: tensor.datatype.to_string(),
                shape: tensor.shape,
                parameters: Default::default(),
                contents,
            }
        })
        .collect();
    ModelInferResponse {
        model_name: oip::Target { model, task }.name().to_string(),
        model_version: model.served().version.clone(),
        id,
        parameters: [(
            oip::MODEL_PARAMETER.to_string(),
            InferParameter { parameter_choice: Some(ParameterChoice::StringParam(answer.models)) },
        )]
        .into(),
        outputs,
        raw_output_contents,
    }
}

/// Runs one parsed, admitted request on `model`.
async fn infer(
    core: &Core,
    model: &Arc<Model>,
    parsed: Parsed,
    deadline: Option<Instant>,
    admission: Admission,
    admitted: oip::Admitted,
) -> Result<ModelInferResponse, ServerError> {
    let Parsed { id, raw_outputs, request } = parsed;
    let task = request.task;
    let answer = oip::infer(core, model, request, deadline, admission, admitted).await?;
    Ok(response(model, task, id, answer, raw_outputs))
}

/// A `ModelStreamInfer` message as the stream plans it: parsed, with the
/// places it takes (one, for a message refused before any work).
type Planned = Result<(Arc<Model>, Parsed), ServerError>;

fn plan(core: &Core, request: ModelInferRequest) -> (Planned, usize) {
    match parse(core, request, oip::Admitted::Waiting) {
        Ok((model, parsed, places)) => (Ok((model, parsed)), places),
        Err(error) => (Err(error), 1),
    }
}

/// One `ModelStreamInfer` message with its places. Errors go into the
/// answer, not the stream.
async fn infer_item(
    core: Arc<Core>,
    planned: Planned,
    deadline: Option<Instant>,
    admission: Result<Admission, ServerError>,
) -> ModelStreamInferResponse {
    let started = Instant::now();
    let mut images = 0;
    let result = async {
        let (model, parsed) = planned?;
        images = parsed.request.images.len();
        infer(&core, &model, parsed, deadline, admission?, oip::Admitted::Waiting).await
    }
    .await;
    let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
    metrics::request(PROTOCOL, "ModelStreamInfer", code, started.elapsed(), images);
    match result {
        Ok(response) => ModelStreamInferResponse { error_message: String::new(), infer_response: Some(response) },
        Err(error) => ModelStreamInferResponse { error_message: error.to_string(), infer_response: None },
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    type ModelStreamInferStream = ResponseStream<ModelStreamInferResponse>;

    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: self.core.is_ready() }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        oip::find_model(&self.core, &request.name, &request.version)?;
        Ok(Response::new(ModelReadyResponse { ready: self.core.is_ready() }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(oip::server_metadata()))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let target = oip::find_model(&self.core, &request.name, &request.version)?;
        Ok(Response::new(oip::model_metadata(target)))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let target = oip::find_model(&self.core, &request.name, &request.version)?;
        let config = oip::model_config(target, &self.core);
        Ok(Response::new(ModelConfigResponse { config: Some(config) }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let models = oip::repository_index(&self.core, request.get_ref().ready)
            .into_iter()
            .map(|entry| ModelIndex {
                name: entry.name,
                version: entry.version,
                state: entry.state.into(),
                reason: String::new(),
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let started = Instant::now();
        timing::received(&request);
        let deadline = super::deadline(request.metadata());
        let mut images = 0;
        let result = match parse(&self.core, request.into_inner(), oip::Admitted::AtOnce) {
            Ok((model, parsed, places)) => {
                images = parsed.request.images.len();
                match self.core.try_take(places) {
                    Ok(admission) => {
                        infer(&self.core, &model, parsed, deadline, admission, oip::Admitted::AtOnce).await
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
        metrics::request(PROTOCOL, "ModelInfer", code, started.elapsed(), images);
        Ok(timing::answered(Response::new(result?)))
    }

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let deadline = super::deadline(request.metadata());
        let slot = stream::open(&self.core, PROTOCOL, "ModelStreamInfer")?;
        let answers = stream::serve(
            Arc::clone(&self.core),
            slot,
            request.into_inner(),
            deadline,
            plan,
            move |core, planned, admission| infer_item(core, planned, deadline, admission),
        );
        Ok(Response::new(answers))
    }
}
