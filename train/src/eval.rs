//! Scoring a model on a split: accuracy, loss, per-class accuracy and the
//! confusion matrix.

use std::fmt::Write as _;

use mnist::NUM_CLASSES;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor, nn::ModuleT};

use crate::{
    Result,
    data::{TensorSet, normalize},
    model::Net,
};

/// Images per forward pass when evaluating.
const EVAL_BATCH: usize = 1000;

/// How a model did on a split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
        let mut confusion = vec![vec![0u64; NUM_CLASSES]; NUM_CLASSES];
        for (&t, &p) in truth.iter().zip(predicted) {
            confusion[t as usize][p as usize] += 1;
        }
        let correct: u64 = (0..NUM_CLASSES).map(|d| confusion[d][d]).sum();
        let per_class_accuracy = confusion
            .iter()
            .enumerate()
            .map(|(d, row)| {
                let n: u64 = row.iter().sum();
                if n == 0 { 0.0 } else { row[d] as f64 / n as f64 }
            })
            .collect();
        let images = truth.len();
        Self {
            images,
            accuracy: if images == 0 { 0.0 } else { correct as f64 / images as f64 },
            loss,
            per_class_accuracy,
            confusion,
        }
    }

    /// A human-readable report: accuracy, per-class accuracy, confusion matrix.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let errors = self.images - (self.accuracy * self.images as f64).round() as usize;
        let _ = writeln!(
            s,
            "test accuracy {:.2}% ({} errors in {} images), loss {:.4}",
            self.accuracy * 100.0,
            errors,
            self.images,
            self.loss
        );
        let _ = writeln!(s, "\nper class:");
        for (d, acc) in self.per_class_accuracy.iter().enumerate() {
            let _ = writeln!(s, "  {d}: {:.2}%", acc * 100.0);
        }
        let _ = writeln!(s, "\nconfusion matrix (rows: true digit, columns: predicted):");
        let _ = write!(s, "     ");
        for d in 0..NUM_CLASSES {
            let _ = write!(s, "{d:>6}");
        }
        let _ = writeln!(s);
        for (d, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "  {d}: ");
            for count in row {
                let _ = write!(s, "{count:>6}");
            }
            let _ = writeln!(s);
        }
        s
    }
}

/// Float32 logits of the first `n` images, for exporters' parity checks.
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
