//! `mnist-client eval`: the MNIST test set through the server, scored.

use std::time::Instant;

use futures_util::stream;
use indicatif::ProgressBar;
use mnist::{
    NUM_CLASSES,
    dataset::Mnist,
    proto::v1::{PredictRequest, classifier_client::ClassifierClient, predict_request::Input},
};
use serde::Serialize;
use tonic::transport::Channel;

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
}

/// Streams every image of `data` as pixels and scores the answers.
pub async fn evaluate(
    client: &mut ClassifierClient<Channel>,
    data: &Mnist,
    window: usize,
    progress: ProgressBar,
) -> Result<EvalReport, ClientError> {
    let requests: Vec<PredictRequest> = (0..data.len())
        .map(|i| PredictRequest { id: i.to_string(), input: Some(Input::Pixels(data.image(i).to_vec())) })
        .collect();
    let mut confusion = vec![vec![0u64; NUM_CLASSES]; NUM_CLASSES];
    let (mut answered, mut errors) = (0usize, 0usize);
    let started = Instant::now();
    stream_predict(client, stream::iter(requests), window, |response| {
        progress.inc(1);
        let truth = response.id.parse::<usize>().ok().and_then(|i| data.labels.get(i).copied());
        match (truth, response.error) {
            (Some(truth), None) if (response.digit as usize) < NUM_CLASSES => {
                confusion[truth as usize][response.digit as usize] += 1;
                answered += 1;
            }
            _ => errors += 1,
        }
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let correct: u64 = (0..NUM_CLASSES).map(|d| confusion[d][d]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(d, row)| {
            let n: u64 = row.iter().sum();
            if n == 0 { 0.0 } else { row[d] as f64 / n as f64 }
        })
        .collect();
    Ok(EvalReport {
        images: data.len(),
        answered,
        errors,
        accuracy: if data.is_empty() { 0.0 } else { correct as f64 / data.len() as f64 },
        per_class_accuracy,
        confusion,
        seconds,
        images_per_second: data.len() as f64 / seconds.max(1e-9),
    })
}

impl EvalReport {
    /// The report for people.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "accuracy {:.2}% on {} images ({} errors from the server), {:.1} images/s",
            self.accuracy * 100.0,
            self.images,
            self.errors,
            self.images_per_second
        );
        let _ = writeln!(s, "\nper class:");
        for (d, a) in self.per_class_accuracy.iter().enumerate() {
            let _ = writeln!(s, "  {d}: {:.2}%", a * 100.0);
        }
        let _ = writeln!(s, "\nconfusion matrix (rows: true digit, columns: predicted):");
        let _ = writeln!(s, "     {}", (0..NUM_CLASSES).map(|d| format!("{d:>6}")).collect::<String>());
        for (d, row) in self.confusion.iter().enumerate() {
            let _ = writeln!(s, "  {d}: {}", row.iter().map(|c| format!("{c:>6}")).collect::<String>());
        }
        s
    }
}
