//! `mnist-client eval`: the MNIST test set through the server, scored.

use std::time::Instant;

use crate::connect::ServerAddress;
use futures_util::stream;
use indicatif::ProgressBar;
use mnist::{
    dataset::Mnist,
    proto::v1::{PredictRequest, predict_request::Input},
    scoring::ConfusionMatrix,
};
use serde::Serialize;

use crate::{ClientError, pipeline::stream_predict};

/// Scores of a served model.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Images sent.
    pub images: usize,
    /// Images answered with a prediction.
    pub answered: usize,
    /// Items the server answered with an error.
    pub errors: usize,
    /// Fraction of sent images predicted right.
    pub accuracy: f64,
    /// Accuracy per digit 0-9.
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Images per second.
    pub images_per_second: f64,
    #[serde(skip)]
    matrix: ConfusionMatrix,
}

/// Streams every image of `data` as pixels and scores the answers.
pub async fn evaluate(
    server: &ServerAddress,
    data: &Mnist,
    window: usize,
    progress: ProgressBar,
) -> Result<EvalReport, ClientError> {
    let requests: Vec<PredictRequest> = (0..data.len())
        .map(|i| PredictRequest { id: i.to_string(), input: Some(Input::Pixels(data.image(i).to_vec())) })
        .collect();
    let mut matrix = ConfusionMatrix::default();
    let (mut answered, mut errors) = (0usize, 0usize);
    let started = Instant::now();
    stream_predict(server, stream::iter(requests), window, |response| {
        progress.inc(1);
        let truth = response.id.parse::<usize>().ok().and_then(|i| data.labels.get(i).copied());
        match (truth, response.error) {
            (Some(truth), None) if matrix.record(usize::from(truth), response.digit as usize) => answered += 1,
            _ => errors += 1,
        }
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(EvalReport {
        images: data.len(),
        answered,
        errors,
        // Over all images sent: an image the server failed on counts as wrong.
        accuracy: if data.is_empty() { 0.0 } else { matrix.correct() as f64 / data.len() as f64 },
        per_class_accuracy: matrix.per_class_accuracy(),
        confusion: matrix.rows(),
        seconds,
        images_per_second: data.len() as f64 / seconds.max(1e-9),
        matrix,
    })
}

impl EvalReport {
    /// The report for people.
    pub fn text(&self) -> String {
        format!(
            "accuracy {:.2}% on {} images ({} errors from the server), {:.1} images/s\n\n{}",
            self.accuracy * 100.0,
            self.images,
            self.errors,
            self.images_per_second,
            self.matrix.report()
        )
    }
}
