//! From the model's probabilities to the answer a caller gets, for what the
//! model cannot know: that preprocessing found no digit, that the digit
//! runs into the frame, or that the photo's ink could be either way round.
//!
//! The server (on images it decodes) and the client (on files it
//! preprocesses itself) both conclude here, so both answer alike.

use serde::{Deserialize, Serialize};

use crate::NUM_CLASSES;

/// What preprocessing noted about an image of one digit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigitNotes {
    /// Nothing in the image could be a digit (blank paper, a black frame, a
    /// plain gradient, specks): the answer is "no digit", confidence 0,
    /// and the model is not asked.
    pub no_digit: bool,
    /// The digit's strokes run into the image's edge: part of it may be cut
    /// off, and the confidence is lowered accordingly.
    pub cut_by_frame: bool,
    /// The strokes did not say clearly whether the ink is dark on light or
    /// light on dark: the image was read both ways.
    pub polarity_uncertain: bool,
}

/// The answer about one image of a digit.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The likeliest digit (0 when there is no digit).
    pub digit: u32,
    /// Its probability (0 when there is no digit).
    pub confidence: f32,
    /// The probability of each digit (all 0 when there is no digit).
    pub probabilities: Vec<f32>,
    /// The notes it was concluded with.
    pub notes: DigitNotes,
}

/// Temperature applied to the probabilities of a digit cut by the frame:
/// the model was calibrated on whole digits, and is as sure of a 6 missing
/// its left side as of a whole 5. A prior, not a fit: `mnist::synth`'s
/// at-the-frame digits (at most 8 % of the field cut) are all read right,
/// which leaves nothing to fit on. Checked on the second renderer's cut
/// photos (10-25 % cut; docs/preprocessing.md, "Two renderers"): at 1.5
/// none of them is wrong at 0.99 or above (3 of 100 at 1.0), and the mean
/// confidence (0.89) stays below the share read right (0.92).
pub const CUT_TEMPERATURE: f32 = 1.5;

/// How strongly the model's own certainty arbitrates between the two ways
/// round of a photo whose polarity is uncertain: each reading is weighted
/// by its top probability to this power. A reading of the board taken for
/// ink is a blot the model is unsure of; the right way round gives a digit
/// it is sure of. Two sure readings of different digits share the weight,
/// so the answer is never surer than half.
pub const ARBITRATION_POWER: f32 = 2.0;

/// The answer for `notes`, from the model's probabilities for the image as
/// preprocessing first saw it (`first`) and, for an uncertain polarity, the
/// other way round (`other`; `None` when it could not be classified: the
/// first reading then counts for half, the other half knowing nothing).
pub fn conclude(notes: DigitNotes, first: &[f32], other: Option<&[f32]>) -> Verdict {
    if notes.no_digit || first.is_empty() {
        return Verdict {
            digit: 0,
            confidence: 0.0,
            probabilities: vec![0.0; NUM_CLASSES],
            notes: DigitNotes { no_digit: true, ..notes },
        };
    }
    let mut probabilities = first.to_vec();
    if notes.polarity_uncertain {
        let uniform = 1.0 / first.len() as f32;
        probabilities = match other.filter(|o| o.len() == first.len()) {
            Some(other) => {
                let weight = |p: &[f32]| p.iter().copied().fold(0.0f32, f32::max).powf(ARBITRATION_POWER);
                let (a, b) = (weight(first), weight(other));
                let total = (a + b).max(f32::MIN_POSITIVE);
                first.iter().zip(other).map(|(p, q)| (a * p + b * q) / total).collect()
            }
            None => first.iter().map(|p| 0.5 * p + 0.5 * uniform).collect(),
        };
    }
    if notes.cut_by_frame {
        probabilities = soften(&probabilities, CUT_TEMPERATURE);
    }
    // The first of equal maxima, as the server's batcher picks it.
    let digit = crate::argmax(&probabilities).unwrap_or(0);
    let confidence = probabilities.get(digit).copied().unwrap_or(0.0);
    Verdict { digit: u32::try_from(digit).unwrap_or(0), confidence, probabilities, notes }
}

/// Probabilities at `temperature`: softmax(logits / T), computed from the
/// probabilities themselves (their logs are the logits up to a constant,
/// which softmax ignores), so callers that only have probabilities can.
pub fn soften(probabilities: &[f32], temperature: f32) -> Vec<f32> {
    let powered: Vec<f64> =
        probabilities.iter().map(|&p| f64::from(p.max(1e-30)).powf(1.0 / f64::from(temperature))).collect();
    let total: f64 = powered.iter().sum();
    powered.iter().map(|&p| (p / total) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sure(digit: usize, p: f32) -> Vec<f32> {
        let mut v = vec![(1.0 - p) / 9.0; 10];
        v[digit] = p;
        v
    }

    #[test]
    fn plain_notes_leave_the_model_answer() {
        let v = conclude(DigitNotes::default(), &sure(3, 0.97), None);
        assert_eq!((v.digit, v.confidence), (3, 0.97));
    }

    #[test]
    fn no_digit_answers_nothing_with_confidence_zero() {
        let v = conclude(DigitNotes { no_digit: true, ..Default::default() }, &[], None);
        assert_eq!((v.digit, v.confidence, v.notes.no_digit), (0, 0.0, true));
        assert_eq!(v.probabilities, vec![0.0; 10]);
    }

    #[test]
    fn two_sure_readings_of_an_uncertain_polarity_that_disagree_are_not_sure() {
        let notes = DigitNotes { polarity_uncertain: true, ..Default::default() };
        let v = conclude(notes, &sure(0, 0.994), Some(&sure(5, 0.99)));
        assert!(v.confidence < 0.6, "{v:?}");
        // The classifier arbitrates: a blot it is unsure of loses to a digit.
        let v = conclude(notes, &sure(0, 0.35), Some(&sure(5, 0.99)));
        assert_eq!(v.digit, 5);
        assert!(v.confidence > 0.85, "{v:?}");
        // Agreeing readings stay sure.
        let v = conclude(notes, &sure(5, 0.98), Some(&sure(5, 0.99)));
        assert!(v.digit == 5 && v.confidence > 0.97, "{v:?}");
        // Unread, the other way round counts as knowing nothing.
        let v = conclude(notes, &sure(5, 0.99), None);
        assert!(v.confidence < 0.95, "{v:?}");
    }

    #[test]
    fn a_cut_digit_is_less_sure_but_keeps_its_digit() {
        let notes = DigitNotes { cut_by_frame: true, ..Default::default() };
        let v = conclude(notes, &sure(6, 0.99), None);
        assert_eq!(v.digit, 6);
        assert!(v.confidence < 0.99 && v.confidence > 0.5, "{v:?}");
        let sum: f32 = v.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }

    #[test]
    fn soften_at_one_is_the_identity() {
        let p = sure(2, 0.8);
        for (a, b) in soften(&p, 1.0).iter().zip(&p) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
