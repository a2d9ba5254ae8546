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

/// How a model did on a split: its confusion matrix and mean loss; every
/// score is derived from the matrix, so none can disagree with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    matrix: ConfusionMatrix,
    loss: f64,
}

impl Serialize for Evaluation {
    /// `eval.json`: images, accuracy, loss, per-class accuracy, confusion.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Evaluation", 5)?;
        out.serialize_field("images", &self.images())?;
        out.serialize_field("accuracy", &self.accuracy())?;
        out.serialize_field("loss", &self.loss)?;
        out.serialize_field("per_class_accuracy", &self.per_class_accuracy())?;
        out.serialize_field("confusion", &self.confusion())?;
        out.end()
    }
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
    Evaluation::from_logits(&logits(net, set), &set.labels.to_device(Device::Cpu))
}

impl Evaluation {
    /// Scores `[N, 10]` logits against `[N]` labels, both on the CPU.
    pub fn from_logits(logits: &Tensor, labels: &Tensor) -> Result<Self> {
        let loss = logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0).double_value(&[]);
        let predicted = Vec::<i64>::try_from(logits.argmax(1, false))?;
        let truth = Vec::<i64>::try_from(labels)?;
        Ok(Self::from_predictions(&truth, &predicted, loss))
    }

    /// Builds the scores from true and predicted labels (both 0-9).
    pub fn from_predictions(truth: &[i64], predicted: &[i64], loss: f64) -> Self {
        let mut matrix = ConfusionMatrix::default();
        for (&t, &p) in truth.iter().zip(predicted) {
            matrix.record(t as usize, p as usize);
        }
        Self { matrix, loss }
    }

    /// Images evaluated.
    pub fn images(&self) -> usize {
        self.matrix.total() as usize
    }

    /// Fraction predicted right.
    pub fn accuracy(&self) -> f64 {
        self.matrix.accuracy()
    }

    /// Mean cross-entropy.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// Accuracy on the images of each digit.
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.matrix.per_class_accuracy()
    }

    /// `confusion[true][predicted]` counts.
    pub fn confusion(&self) -> Vec<Vec<u64>> {
        self.matrix.rows()
    }

    /// A human-readable report: accuracy, per-class accuracy, confusion matrix.
    pub fn report(&self) -> String {
        let errors = self.matrix.total() - self.matrix.correct();
        format!(
            "test accuracy {:.2}% ({errors} errors in {} images), loss {:.4}\n\n{}",
            self.accuracy() * 100.0,
            self.images(),
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
        assert_eq!((e.images(), e.accuracy()), (4, 0.75));
        assert_eq!(e.per_class_accuracy()[..2], [0.5, 1.0]);
        assert_eq!(e.confusion()[0][1], 1);
        assert!(e.report().contains("75.00%"));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!((json["images"].as_u64(), json["accuracy"].as_f64()), (Some(4), Some(0.75)));
        assert_eq!(json["confusion"][0][1], 1);
    }
}
