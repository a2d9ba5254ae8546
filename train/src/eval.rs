//! Scoring a model on a split: accuracy, loss, per-class accuracy and the
//! confusion matrix.

use mnist::scoring::ConfusionMatrix;
use serde::Serialize;
use tch::{Device, Kind, Reduction, Tensor, nn::ModuleT};

use crate::{
    Result,
    data::{TensorSet, normalize},
    model::Net,
};

/// Images per forward pass when evaluating.
const EVAL_BATCH: usize = 1000;

/// How a model did on a split.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Fraction predicted right.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy on the images of each digit.
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    #[serde(skip)]
    matrix: ConfusionMatrix,
}

/// Logits of every image of `set`, in order, on the CPU (`[N, 10]`).
pub fn logits(net: &Net, set: &TensorSet) -> Tensor {
    tch::no_grad(|| {
        let parts: Vec<Tensor> = set
            .batches(EVAL_BATCH, false)
            .map(|(x, _)| net.forward_t(&normalize(&x), false).to_device(Device::Cpu))
            .collect();
        Tensor::cat(&parts, 0)
    })
}

/// Evaluates `net` on `set` in inference mode (no dropout).
pub fn evaluate(net: &Net, set: &TensorSet) -> Result<Evaluation> {
    let logits = logits(net, set);
    let labels = set.labels.to_device(Device::Cpu);
    let loss = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0).double_value(&[]);
    let predicted = Vec::<i64>::try_from(logits.argmax(1, false))?;
    let truth = Vec::<i64>::try_from(&labels)?;
    Ok(Evaluation::from_predictions(&truth, &predicted, loss))
}

impl Evaluation {
    /// Builds the scores from true and predicted labels (both 0-9).
    pub fn from_predictions(truth: &[i64], predicted: &[i64], loss: f64) -> Self {
        let mut matrix = ConfusionMatrix::default();
        for (&t, &p) in truth.iter().zip(predicted) {
            matrix.record(t as usize, p as usize);
        }
        Self {
            images: truth.len(),
            accuracy: matrix.accuracy(),
            loss,
            per_class_accuracy: matrix.per_class_accuracy(),
            confusion: matrix.rows(),
            matrix,
        }
    }

    /// A human-readable report: accuracy, per-class accuracy, confusion matrix.
    pub fn report(&self) -> String {
        let errors = self.matrix.total() - self.matrix.correct();
        format!(
            "test accuracy {:.2}% ({errors} errors in {} images), loss {:.4}\n\n{}",
            self.accuracy * 100.0,
            self.images,
            self.loss,
            self.matrix.report()
        )
    }
}

/// Float32 logits of every image of `set`, in order (`N * 10` values), for parity checks.
pub fn logits_f32(net: &Net, set: &TensorSet) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(logits(net, set).to_kind(Kind::Float).flatten(0, -1))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_from_predictions() {
        let e = Evaluation::from_predictions(&[0, 0, 1, 1], &[0, 1, 1, 1], 0.5);
        assert_eq!(e.accuracy, 0.75);
        assert_eq!(e.per_class_accuracy[0], 0.5);
        assert_eq!(e.per_class_accuracy[1], 1.0);
        assert_eq!(e.confusion[0][1], 1);
        assert!(e.report().contains("75.00%"));
    }
}
