//! Scoring digit predictions against labels: the confusion matrix and what
//! follows from it, shared by `mnist-train eval` and `mnist-client eval`.

use std::fmt::Write as _;

use crate::NUM_CLASSES;

/// `counts[true][predicted]` over the ten digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    counts: [[u64; NUM_CLASSES]; NUM_CLASSES],
}

impl Default for ConfusionMatrix {
    fn default() -> Self {
        Self { counts: [[0; NUM_CLASSES]; NUM_CLASSES] }
    }
}

impl ConfusionMatrix {
    /// Counts one prediction; digits outside 0-9 are ignored and reported.
    pub fn record(&mut self, truth: usize, predicted: usize) -> bool {
        match self.counts.get_mut(truth).and_then(|row| row.get_mut(predicted)) {
            Some(count) => {
                *count += 1;
                true
            }
            None => false,
        }
    }

    /// Predictions counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Predictions that were right.
    pub fn correct(&self) -> u64 {
        (0..NUM_CLASSES).map(|d| self.counts[d][d]).sum()
    }

    /// Fraction right, 0 when nothing was counted.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// Accuracy on the images of each digit.
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.counts.iter().enumerate().map(|(d, row)| ratio(row[d], row.iter().sum())).collect()
    }

    /// The counts as rows (true digit) of columns (predicted digit).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts.iter().map(|row| row.to_vec()).collect()
    }

    /// Per-class accuracy and the matrix, as text for people.
    pub fn report(&self) -> String {
        let mut s = String::from("per class:\n");
        for (d, accuracy) in self.per_class_accuracy().iter().enumerate() {
            let _ = writeln!(s, "  {d}: {:.2}%", accuracy * 100.0);
        }
        let _ = writeln!(s, "\nconfusion matrix (rows: true digit, columns: predicted):");
        let _ = writeln!(s, "     {}", (0..NUM_CLASSES).map(|d| format!("{d:>6}")).collect::<String>());
        for (d, row) in self.counts.iter().enumerate() {
            let _ = writeln!(s, "  {d}: {}", row.iter().map(|c| format!("{c:>6}")).collect::<String>());
        }
        s
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_from_counts() {
        let mut m = ConfusionMatrix::default();
        for (t, p) in [(0, 0), (0, 1), (1, 1), (1, 1)] {
            assert!(m.record(t, p));
        }
        assert!(!m.record(3, 10), "out-of-range digits are refused");
        assert_eq!(m.total(), 4);
        assert_eq!(m.accuracy(), 0.75);
        assert_eq!(m.per_class_accuracy()[..2], [0.5, 1.0]);
        assert_eq!(m.per_class_accuracy()[2], 0.0);
        assert_eq!(m.rows()[0][1], 1);
        assert!(m.report().contains("  1: 100.00%"));
    }
}
