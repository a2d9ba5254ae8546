//! `mnist.v1.Classifier`'s `Read` and `ReadOne`: handwritten numbers. The
//! translation between their messages and [`Core::read`], which does the
//! work (segmenting with `mnist::read`, classifying every candidate digit of
//! a photo in one batch).

use std::{sync::Arc, time::Instant};

use mnist::{
    proto::v1::{Box as DigitBox, DigitScore, ReadDigit, ReadRequest, ReadResponse, read_request::Input},
    read::Reading,
};

use crate::{
    core::{Admission, Core, PageInput, ReadingPlaces},
    error::ServerError,
    metrics,
};

/// The protocol's name in metrics.
const PROTOCOL: &str = "mnist.v1";

/// A request's photo, in the core's terms.
fn page_input(input: Option<Input>) -> Result<PageInput, ServerError> {
    match input {
        None => Err(ServerError::EmptyInput),
        Some(Input::Image(bytes)) => Ok(PageInput::Encoded(bytes)),
        Some(Input::Pixels(gray)) => {
            Ok(PageInput::Gray { width: gray.width, height: gray.height, pixels: gray.pixels })
        }
    }
}

/// The places a `Read` stream's message waits for: all a reading can need
/// (one when it names a model that is not served: it is refused before any
/// work).
pub fn stream_places(core: &Core, request: &ReadRequest) -> usize {
    core.models().readers(&request.model).map_or(1, |readers| core.reading_places(&readers))
}

/// Reads one admitted photo with the model the request names (or, naming
/// none, the server's readers, the surest reading kept); `places` says
/// how its admission was had.
pub async fn read(
    core: &Core,
    request: ReadRequest,
    deadline: Option<Instant>,
    mut admission: Admission,
    places: ReadingPlaces,
) -> Result<ReadResponse, ServerError> {
    let readers = core.models().readers(&request.model)?;
    let page = page_input(request.input)?;
    let expected = (request.expected_digits > 0).then_some(request.expected_digits as usize);
    let top_k = request.top_k.min(10) as usize;
    let read = core.read(&readers, page, expected, deadline, &mut admission, places).await?;
    Ok(ReadResponse {
        id: request.id,
        text: read.reading.text.clone(),
        confidence: read.reading.confidence,
        digits: digits(&read.reading, top_k),
        error: None,
        model: read.model,
        model_name: read.model_name,
        best_length: read.reading.best_length as u32,
        cut_short: read.reading.cut_short.clone().unwrap_or_default(),
    })
}

/// One `Read` stream item: errors go into the response, not the stream.
pub async fn read_item(
    core: Arc<Core>,
    request: ReadRequest,
    deadline: Option<Instant>,
    admission: Result<Admission, ServerError>,
) -> ReadResponse {
    let started = Instant::now();
    let id = request.id.clone();
    let result = match admission {
        Ok(admission) => {
            read(&core, request, deadline, admission, ReadingPlaces::Reserved { give_back_unused: true }).await
        }
        Err(error) => Err(error),
    };
    let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
    metrics::request(PROTOCOL, "Read", code, started.elapsed(), 1);
    result.unwrap_or_else(|error| ReadResponse { id, error: Some(error.to_rpc_status()), ..Default::default() })
}

fn digits(reading: &Reading, top_k: usize) -> Vec<ReadDigit> {
    reading
        .digits
        .iter()
        .map(|digit| {
            let mut ranked: Vec<(usize, f32)> = digit.probabilities.iter().copied().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            ReadDigit {
                digit: u32::from(digit.digit),
                confidence: digit.confidence,
                top_k: ranked
                    .into_iter()
                    .take(top_k)
                    .map(|(digit, probability)| DigitScore { digit: digit as u32, probability })
                    .collect(),
                r#box: Some(DigitBox {
                    x: digit.bounds.x,
                    y: digit.bounds.y,
                    width: digit.bounds.width,
                    height: digit.bounds.height,
                }),
                checked: digit.checked,
            }
        })
        .collect()
}
