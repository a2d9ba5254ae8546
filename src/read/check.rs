//! Step 4 of reading, optional: a second opinion on the digits that stand
//! alone.
//!
//! The window model reads a line whole, which is what finds touching
//! digits; but as a classifier of one digit it is weaker than the models
//! trained on single digits (99.2 % against `mnist-three-block`'s 99.6 % on
//! MNIST's test set), and most numbers it misreads have every digit found
//! and one of them wrong. A digit with blank paper on both sides is exactly
//! what a single-digit model is good at: [`Reading::digits_to_check`] gives
//! each such digit alone (fitted and centred as a single digit is), the
//! caller classifies them with such a model, in one batch, and
//! [`Reading::check_digits`] combines the two models' probabilities. Digits
//! touching a neighbour are left to the window model: cut out, they carry
//! a sliver of their neighbour, and a single-digit model reads them worse.

use super::Reading;
use crate::{Error, NUM_CLASSES, Result, softmax};

/// The weight of the single-digit model's log-probabilities beside the
/// window model's (1): a digit becomes the one maximizing
/// `ln p_window(d) + CHECK_WEIGHT * ln p_single(d)`. Chosen among 0.25,
/// 0.5, 1, 2 and alone (docs/reading-numbers.md, "Checking digits that
/// stand alone"): on numbers of held-out training digits every weight is
/// within a few numbers in 3,000 of reading without a check; on numbers of
/// test digits, whose writers no model has seen, 2 read the most right.
pub const CHECK_WEIGHT: f32 = 2.0;

impl Reading {
    /// The digits a single-digit model can check: each digit's index in
    /// [`Reading::digits`] and its 784 pixels alone, left to right.
    pub fn digits_to_check(&self) -> Vec<(usize, &[u8])> {
        self.digits.iter().enumerate().filter_map(|(i, d)| d.alone.as_deref().map(|pixels| (i, pixels))).collect()
    }

    /// Combines a single-digit model's `logits` for the digits of
    /// [`Reading::digits_to_check`] (one vector of ten per digit, in that
    /// order) with what the reading's model said of them: each checked
    /// digit becomes the likeliest under both ([`CHECK_WEIGHT`]), its
    /// probabilities the two models' renormalized product. The reading's
    /// confidence follows each digit's: multiplied by the combined
    /// probability of the digit now read over the reading model's
    /// probability of the digit it read, so that two models agreeing keep
    /// it and a digit they dispute lowers it (at most 1).
    pub fn check_digits(&mut self, logits: &[Vec<f32>]) -> Result<()> {
        let checked: Vec<usize> = self.digits_to_check().into_iter().map(|(i, _)| i).collect();
        if logits.len() != checked.len() {
            return Err(Error::Reading(format!(
                "{} digits to check but {} logit vectors",
                checked.len(),
                logits.len()
            )));
        }
        if let Some(bad) = logits.iter().find(|l| l.len() != NUM_CLASSES) {
            return Err(Error::Reading(format!("a logit vector has {} values, not {NUM_CLASSES}", bad.len())));
        }
        for (&index, logits) in checked.iter().zip(logits) {
            let digit = &mut self.digits[index];
            let single = softmax(logits);
            let log_combined: Vec<f32> = digit
                .probabilities
                .iter()
                .zip(&single)
                .map(|(&window, &single)| window.max(1e-12).ln() + CHECK_WEIGHT * single.max(1e-12).ln())
                .collect();
            let combined = softmax(&log_combined);
            let Some((best, &probability)) = combined.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) else {
                continue;
            };
            let before = digit.probabilities.get(usize::from(digit.digit)).copied().unwrap_or(digit.confidence);
            self.confidence = (self.confidence * probability / before.max(1e-12)).min(1.0);
            digit.digit = best as u8;
            digit.confidence = probability;
            digit.probabilities = combined;
            digit.checked = true;
        }
        self.text = super::text_of(&self.digits);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{PixelBox, ReadDigit};

    /// A digit the window model gives `probabilities`, alone or touching.
    fn digit(probabilities: [f32; NUM_CLASSES], alone: bool) -> ReadDigit {
        let (best, &confidence) =
            probabilities.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &0.0));
        ReadDigit {
            digit: best as u8,
            confidence,
            probabilities: probabilities.to_vec(),
            bounds: PixelBox::default(),
            candidate: 0,
            alone: alone.then(|| vec![0; crate::IMAGE_PIXELS]),
            checked: false,
        }
    }

    /// Ten logits that make `digit` likely with probability about `p`.
    fn logits_for(digit: usize, p: f32) -> Vec<f32> {
        let other = (1.0 - p) / 9.0;
        (0..NUM_CLASSES).map(|d| if d == digit { p.ln() } else { other.ln() }).collect()
    }

    fn unsure(first: usize, second: usize) -> [f32; NUM_CLASSES] {
        let mut p = [0.0; NUM_CLASSES];
        p[first] = 0.6;
        p[second] = 0.4;
        p
    }

    fn sure(digit: usize) -> [f32; NUM_CLASSES] {
        let mut p = [0.0001; NUM_CLASSES];
        p[digit] = 1.0 - 0.0009;
        p
    }

    fn reading(digits: Vec<ReadDigit>, confidence: f32) -> Reading {
        let text = crate::read::text_of(&digits);
        Reading { text, confidence, digits, best_length: 2, cut_short: None }
    }

    #[test]
    fn a_sure_single_digit_model_settles_a_digit_the_reader_doubts() {
        // The reader leans 3 over 5; the single-digit model is sure of 5.
        let mut read = reading(vec![digit(sure(7), true), digit(unsure(3, 5), true)], 0.55);
        assert_eq!(read.digits_to_check().len(), 2);
        read.check_digits(&[logits_for(7, 0.99), logits_for(5, 0.95)]).expect("two digits, two logit vectors");
        assert_eq!(read.text, "75");
        assert!(read.digits[1].confidence > 0.9, "{}", read.digits[1].confidence);
        // The 3 at 0.6 became a 5 at nearly 1: the reading is surer, not certain.
        assert!(read.confidence > 0.55 && read.confidence <= 1.0, "{}", read.confidence);
        let total: f32 = read.digits[1].probabilities.iter().sum();
        assert!((total - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_sure_reader_is_not_overruled_by_a_doubtful_single_digit_model() {
        let mut read = reading(vec![digit(sure(1), true), digit(sure(4), true)], 0.99);
        read.check_digits(&[logits_for(1, 0.99), logits_for(9, 0.5)]).expect("two digits, two logit vectors");
        assert_eq!(read.text, "14");
    }

    #[test]
    fn digits_touching_a_neighbour_are_not_checked() {
        let mut read = reading(vec![digit(unsure(3, 5), false), digit(sure(4), true)], 0.5);
        let to_check = read.digits_to_check();
        assert_eq!(to_check.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
        read.check_digits(&[logits_for(4, 0.99)]).expect("one digit alone, one logit vector");
        assert_eq!(read.text, "34", "the touching digit keeps the reader's reading");
        assert_eq!(read.digits.iter().map(|d| d.checked).collect::<Vec<_>>(), [false, true]);
    }

    #[test]
    fn logits_that_do_not_match_the_digits_are_refused() {
        let mut read = reading(vec![digit(sure(1), true), digit(sure(4), true)], 0.99);
        assert!(read.check_digits(&[logits_for(1, 0.99)]).is_err(), "one vector for two digits");
        assert!(read.check_digits(&[vec![0.0; 3], vec![0.0; 3]]).is_err(), "three logits, not ten");
        assert_eq!(read.text, "14", "a refused check changes nothing");
    }
}
