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

/// Scores of a served model. The scores are derived from the confusion
/// matrix when asked for, so they cannot disagree with it.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Images sent.
    pub images: usize,
    /// Images answered with a prediction.
    pub answered: usize,
    /// Items the server answered with an error.
    pub errors: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// `confusion[true][predicted]` of the answered images.
    pub matrix: ConfusionMatrix,
}

impl EvalReport {
    /// Fraction of sent images predicted right: an image the server failed
    /// on counts as wrong.
    pub fn accuracy(&self) -> f64 {
        if self.images == 0 { 0.0 } else { self.matrix.correct() as f64 / self.images as f64 }
    }

    /// Images per second.
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }

    /// The report for people.
    pub fn text(&self) -> String {
        format!(
            "accuracy {:.2}% on {} images ({} errors from the server), {:.1} images/s\n\n{}",
            self.accuracy() * 100.0,
            self.images,
            self.errors,
            self.images_per_second(),
            self.matrix.report()
        )
    }
}

/// The JSON report: the counts and every score derived from the matrix.
impl Serialize for EvalReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut report = serializer.serialize_struct("EvalReport", 8)?;
        report.serialize_field("images", &self.images)?;
        report.serialize_field("answered", &self.answered)?;
        report.serialize_field("errors", &self.errors)?;
        report.serialize_field("accuracy", &self.accuracy())?;
        report.serialize_field("per_class_accuracy", &self.matrix.per_class_accuracy())?;
        report.serialize_field("confusion", &self.matrix.rows())?;
        report.serialize_field("seconds", &self.seconds)?;
        report.serialize_field("images_per_second", &self.images_per_second())?;
        report.end()
    }
}

/// Streams every image of `data` as pixels to the served model `model`
/// (empty: the server's default model) and scores the answers.
pub async fn evaluate(
    server: &ServerAddress,
    model: &str,
    data: &Mnist,
    window: usize,
    progress: ProgressBar,
) -> Result<EvalReport, ClientError> {
    let requests: Vec<PredictRequest> = (0..data.len())
        .map(|i| PredictRequest {
            id: i.to_string(),
            input: Some(Input::Pixels(data.image(i).to_vec())),
            model: model.to_string(),
            return_logits: false,
        })
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
    Ok(EvalReport { images: data.len(), answered, errors, seconds: started.elapsed().as_secs_f64(), matrix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_report_derives_every_score_from_the_matrix() {
        let mut matrix = ConfusionMatrix::default();
        for (truth, predicted) in [(0, 0), (1, 1), (1, 7), (3, 3)] {
            assert!(matrix.record(truth, predicted));
        }
        // Five sent, one failed on the server: it counts as wrong.
        let report = EvalReport { images: 5, answered: 4, errors: 1, seconds: 2.0, matrix };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["accuracy"], 0.6);
        assert_eq!(json["images_per_second"], 2.5);
        assert_eq!(json["confusion"][1][7], 1);
        assert_eq!(json["per_class_accuracy"][1], 0.5);
        assert_eq!(
            (json["images"].as_u64(), json["answered"].as_u64(), json["errors"].as_u64()),
            (Some(5), Some(4), Some(1))
        );
        assert!(report.text().starts_with("accuracy 60.00% on 5 images (1 errors from the server), 2.5 images/s"));
    }
}
