//! `mnist.v1.Classifier`: the service's own gRPC API, one image per message,
//! each for the model it names (the default model when it names none).
//!
//! Overload, per kind of call (the rules are the [`Core`]'s):
//! - a `Predict` stream beyond `max_streams` fails at once with
//!   RESOURCE_EXHAUSTED;
//! - an open stream does not read its next image until that image can be
//!   admitted, so HTTP/2 flow control holds the client back: no refusals to
//!   retry in a loop (which would spend the CPU the admitted images need);
//! - a `PredictOne` call that cannot be admitted at once fails with
//!   RESOURCE_EXHAUSTED, for the client to retry with backoff.

use std::{sync::Arc, time::Instant};

use mnist::{
    preprocess::{DecodeLimits, needs_fitting},
    proto::v1::{
        GetModelInfoRequest, ListModelsRequest, ListModelsResponse, ModelInfo, PredictRequest, PredictResponse,
        ReadRequest, ReadResponse, classifier_server::Classifier, predict_request::Input,
    },
};
use tonic::{Request, Response, Status, Streaming};

use super::{
    reader,
    stream::{self, ResponseStream},
};
use crate::{
    batcher::{ModelImage, Prediction},
    core::{Admission, Core, ImageInput, ReadingPlaces, prepare_image},
    error::ServerError,
    metrics, timing,
};

/// The protocol's name in metrics.
const PROTOCOL: &str = "mnist.v1";

/// The Classifier service; cheap to clone (one per call).
#[derive(Clone)]
pub struct ClassifierService {
    core: Arc<Core>,
}

impl ClassifierService {
    /// The service, over the shared core.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

/// A request's image, in the core's terms.
fn image_input(input: Option<Input>) -> Result<ImageInput, ServerError> {
    match input {
        None => Err(ServerError::EmptyInput),
        Some(Input::Pixels(pixels)) => Ok(ImageInput::Pixels(pixels)),
        Some(Input::Image(bytes)) => Ok(ImageInput::Encoded(bytes)),
    }
}

/// Validates a request's input and turns it into 784 MNIST pixels: all that
/// a request's bytes go through before the model. Blocking for images (they
/// are decoded); public so that the fuzzer drives the very code that serves.
pub fn prepare_input(input: Option<Input>, limits: &DecodeLimits) -> Result<Vec<u8>, ServerError> {
    match prepare_image(image_input(input)?, limits)?.image {
        Some(ModelImage::Pixels(pixels)) => Ok(pixels),
        None => Ok(vec![0; mnist::IMAGE_PIXELS]),
        Some(ModelImage::Normalized(_)) => {
            Err(ServerError::Inference("mnist.v1 input became normalized values".into()))
        }
    }
}

fn response(id: String, model_name: &str, prediction: Prediction, return_logits: bool) -> PredictResponse {
    PredictResponse {
        id,
        digit: prediction.digit,
        confidence: prediction.confidence,
        model: prediction.model_prefix().to_string(),
        model_name: model_name.to_string(),
        logits: if return_logits { prediction.logits.to_vec() } else { Vec::new() },
        probabilities: prediction.probabilities,
        error: None,
        no_digit: prediction.notes.no_digit,
        cut_by_frame: prediction.notes.cut_by_frame,
        polarity_uncertain: prediction.notes.polarity_uncertain,
    }
}

/// Classifies one admitted image with the model the request names.
async fn classify(
    core: &Core,
    request: PredictRequest,
    deadline: Option<Instant>,
    admission: Admission,
) -> Result<PredictResponse, ServerError> {
    let image = image_input(request.input)?;
    let photo = matches!(&image, ImageInput::Encoded(bytes) if needs_fitting(bytes));
    let model = core.models().classifier(&request.model, photo)?;
    let prediction = core.classify(model, image, deadline, admission).await?;
    Ok(response(request.id, model.name(), prediction, request.return_logits))
}

/// One `Predict` stream item: errors go into the response, not the stream.
async fn classify_item(
    core: Arc<Core>,
    request: PredictRequest,
    deadline: Option<Instant>,
    admission: Result<Admission, ServerError>,
) -> PredictResponse {
    let started = Instant::now();
    let id = request.id.clone();
    let result = match admission {
        Ok(admission) => classify(&core, request, deadline, admission).await,
        Err(error) => Err(error),
    };
    let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
    metrics::request(PROTOCOL, "Predict", code, started.elapsed(), 1);
    result.unwrap_or_else(|error| PredictResponse { id, error: Some(error.to_rpc_status()), ..Default::default() })
}

#[tonic::async_trait]
impl Classifier for ClassifierService {
    type PredictStream = ResponseStream<PredictResponse>;

    async fn predict(
        &self,
        request: Request<Streaming<PredictRequest>>,
    ) -> Result<Response<Self::PredictStream>, Status> {
        let deadline = super::deadline(request.metadata());
        let slot = stream::open(&self.core, PROTOCOL, "Predict")?;
        let answers = stream::serve(
            Arc::clone(&self.core),
            slot,
            request.into_inner(),
            deadline,
            |_, request| (request, 1),
            move |core, request, admission| classify_item(core, request, deadline, admission),
        );
        Ok(Response::new(answers))
    }

    async fn predict_one(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        let started = Instant::now();
        timing::received(&request);
        let deadline = super::deadline(request.metadata());
        let result = match self.core.try_admit(1) {
            Ok(admission) => classify(&self.core, request.into_inner(), deadline, admission).await,
            Err(error) => Err(error),
        };
        let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
        metrics::request(PROTOCOL, "PredictOne", code, started.elapsed(), 1);
        Ok(timing::answered(Response::new(result?)))
    }

    type ReadStream = ResponseStream<ReadResponse>;

    async fn read(&self, request: Request<Streaming<ReadRequest>>) -> Result<Response<Self::ReadStream>, Status> {
        let deadline = super::deadline(request.metadata());
        let slot = stream::open(&self.core, PROTOCOL, "Read")?;
        let answers = stream::serve(
            Arc::clone(&self.core),
            slot,
            request.into_inner(),
            deadline,
            |core, request| {
                let places = reader::stream_places(core, &request);
                (request, places)
            },
            move |core, request, admission| reader::read_item(core, request, deadline, admission),
        );
        Ok(Response::new(answers))
    }

    async fn read_one(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        let started = Instant::now();
        timing::received(&request);
        let deadline = super::deadline(request.metadata());
        let result = match self.core.try_admit(1) {
            Ok(admission) => {
                reader::read(&self.core, request.into_inner(), deadline, admission, ReadingPlaces::TakeNow).await
            }
            Err(error) => Err(error),
        };
        let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
        metrics::request(PROTOCOL, "ReadOne", code, started.elapsed(), 1);
        Ok(timing::answered(Response::new(result?)))
    }

    async fn get_model_info(&self, request: Request<GetModelInfoRequest>) -> Result<Response<ModelInfo>, Status> {
        let model = self.core.model(&request.get_ref().model)?;
        Ok(Response::new(model.served().info.clone()))
    }

    async fn list_models(&self, _request: Request<ListModelsRequest>) -> Result<Response<ListModelsResponse>, Status> {
        let models = self.core.models().iter().map(|model| model.served().info.clone()).collect();
        let read_model = self.core.models().reading_model().name().to_string();
        let second_read_model =
            self.core.models().second_reading_model().map(|model| model.name().to_string()).unwrap_or_default();
        let check_model = self.core.models().check_model().map(|model| model.name().to_string()).unwrap_or_default();
        let photo_model = self.core.models().photo_model().name().to_string();
        Ok(Response::new(ListModelsResponse { models, read_model, second_read_model, check_model, photo_model }))
    }
}
