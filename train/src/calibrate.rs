//! Confidence that means what it says: temperature scaling (Guo et al.,
//! 2017) fitted on the validation split, and the measures that show whether
//! it worked (negative log-likelihood, expected calibration error, the
//! reliability diagram's bins).
//!
//! One scalar `T` divides every logit: the ranking of the classes, hence
//! every prediction and the accuracy, stays the same; only the softmax's
//! sharpness changes. Label smoothing, which the shipped recipe trains with,
//! caps a clear digit's confidence near 0.96; a fitted `T < 1` undoes that.
//! The exporter folds `1 / T` into the last layer, so it costs nothing at
//! run time.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::{Error, Result};

/// Bins of the expected calibration error, the literature's usual 15.
pub const ECE_BINS: usize = 15;

/// The range searched for `T`; far wider than any network that trained.
const TEMPERATURE_RANGE: (f64, f64) = (0.05, 20.0);

/// Calibration measures of one set of logits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationScores {
    /// Mean negative log-likelihood of the true class.
    pub nll: f64,
    /// Expected calibration error over [`ECE_BINS`] equal-width confidence
    /// bins: the images-weighted mean gap between accuracy and confidence.
    pub ece: f64,
    /// Mean confidence (largest probability).
    pub mean_confidence: f64,
}

/// Before and after dividing the logits by the temperature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BeforeAfter {
    /// With `T = 1` (the network as trained).
    pub before: CalibrationScores,
    /// With the fitted temperature.
    pub after: CalibrationScores,
}

/// The fitted temperature and what it changed, as the model card records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The fitted `T`; the exported graph's logits are the network's divided by it.
    pub temperature: f64,
    /// Images of the validation split it was fitted on.
    pub validation_images: usize,
    /// Scores on the validation split (where `T` was fitted).
    pub validation: BeforeAfter,
    /// Scores on the test split (never used to choose anything).
    pub test: BeforeAfter,
}

impl Calibration {
    /// Fits `T` on the validation logits and scores both splits with it.
    /// Logits are `[N, 10]`, labels `[N]` int64, both on the CPU.
    pub fn fit(validation: (&Tensor, &Tensor), test: (&Tensor, &Tensor)) -> Result<Self> {
        Self::with_temperature(fit_temperature(validation.0, validation.1)?, validation, test)
    }

    /// Scores both splits' logits (as the network computes them, before any
    /// temperature) with `T = 1` and with `temperature`.
    pub fn with_temperature(
        temperature: f64,
        validation: (&Tensor, &Tensor),
        test: (&Tensor, &Tensor),
    ) -> Result<Self> {
        let both = |(logits, labels): (&Tensor, &Tensor)| -> Result<BeforeAfter> {
            Ok(BeforeAfter { before: scores(logits, labels, 1.0)?, after: scores(logits, labels, temperature)? })
        };
        Ok(Self {
            temperature,
            validation_images: validation.1.size()[0] as usize,
            validation: both(validation)?,
            test: both(test)?,
        })
    }
}

/// The temperature minimizing the mean negative log-likelihood of `labels`
/// under `softmax(logits / T)`.
///
/// The NLL is convex in `1 / T` and so unimodal in `ln T`: a golden-section
/// search on `ln T` finds the minimum to well under 1e-6 in 60 steps, with
/// no learning rate to tune (LBFGS, the usual choice, needs one).
pub fn fit_temperature(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    if logits.size().first().copied().unwrap_or(0) == 0 {
        return Err(Error::Config("cannot fit a temperature on no images".into()));
    }
    let logits = logits.to_kind(Kind::Double);
    let nll = |log_t: f64| nll(&logits, labels, log_t.exp());
    let (mut low, mut high) = (TEMPERATURE_RANGE.0.ln(), TEMPERATURE_RANGE.1.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = high - ratio * (high - low);
    let mut b = low + ratio * (high - low);
    let (mut fa, mut fb) = (nll(a)?, nll(b)?);
    for _ in 0..60 {
        if fa < fb {
            high = b;
            (b, fb) = (a, fa);
            a = high - ratio * (high - low);
            fa = nll(a)?;
        } else {
            low = a;
            (a, fa) = (b, fb);
            b = low + ratio * (high - low);
            fb = nll(b)?;
        }
    }
    Ok(((low + high) / 2.0).exp())
}

fn nll(logits: &Tensor, labels: &Tensor, temperature: f64) -> Result<f64> {
    let loss = (logits / temperature).cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0);
    Ok(loss.double_value(&[]))
}

/// NLL, ECE and mean confidence of `softmax(logits / temperature)`.
pub fn scores(logits: &Tensor, labels: &Tensor, temperature: f64) -> Result<CalibrationScores> {
    let logits = logits.to_kind(Kind::Double);
    let bins = reliability(&logits, labels, temperature)?;
    let images: usize = bins.iter().map(|b| b.images).sum();
    let mean_confidence = bins.iter().map(|b| b.images as f64 * b.confidence).sum::<f64>() / images as f64;
    Ok(CalibrationScores {
        nll: nll(&logits, labels, temperature)?,
        ece: expected_calibration_error(&bins),
        mean_confidence,
    })
}

/// The expected calibration error of `bins`: the images-weighted mean gap
/// between each bin's accuracy and its confidence (0 when there are none).
pub fn expected_calibration_error(bins: &[Bin]) -> f64 {
    let images: usize = bins.iter().map(|b| b.images).sum();
    if images == 0 {
        return 0.0;
    }
    bins.iter().map(|b| b.images as f64 * (b.accuracy - b.confidence).abs()).sum::<f64>() / images as f64
}

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower edge of the bin's confidence range.
    pub low: f64,
    /// Upper edge.
    pub high: f64,
    /// Images whose confidence fell in the bin.
    pub images: usize,
    /// Their mean confidence (0 when empty).
    pub confidence: f64,
    /// The fraction of them predicted right (0 when empty).
    pub accuracy: f64,
}

/// The [`ECE_BINS`] equal-width bins of `softmax(logits / temperature)`'s
/// confidence, with each bin's mean confidence and accuracy.
pub fn reliability(logits: &Tensor, labels: &Tensor, temperature: f64) -> Result<Vec<Bin>> {
    let probabilities = (logits.to_kind(Kind::Double) / temperature).softmax(1, Kind::Double);
    let (confidence, predicted) = probabilities.max_dim(1, false);
    let confidence = Vec::<f64>::try_from(confidence)?;
    let right: Vec<bool> =
        Vec::<i64>::try_from(predicted.eq_tensor(labels).to_kind(Kind::Int64))?.into_iter().map(|r| r == 1).collect();
    Ok(bin(&confidence, &right))
}

/// Sorts (confidence, right) pairs into [`ECE_BINS`] bins; a confidence of
/// exactly 1 falls in the last bin, as the literature's implementation does.
fn bin(confidence: &[f64], right: &[bool]) -> Vec<Bin> {
    let width = 1.0 / ECE_BINS as f64;
    let mut sums = vec![(0usize, 0.0f64, 0usize); ECE_BINS];
    for (&c, &r) in confidence.iter().zip(right) {
        let index = ((c / width).ceil() as usize).clamp(1, ECE_BINS) - 1;
        sums[index].0 += 1;
        sums[index].1 += c;
        sums[index].2 += usize::from(r);
    }
    sums.iter()
        .enumerate()
        .map(|(i, &(images, confidence_sum, right))| {
            let mean = |x: f64| if images == 0 { 0.0 } else { x / images as f64 };
            Bin {
                low: i as f64 * width,
                high: (i + 1) as f64 * width,
                images,
                confidence: mean(confidence_sum),
                accuracy: mean(right as f64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_split_confidence_and_score_each_part() {
        let bins = bin(&[0.95, 0.97, 1.0, 0.5, 0.51], &[true, false, true, true, true]);
        assert_eq!(bins.len(), ECE_BINS);
        let last = bins[ECE_BINS - 1];
        assert_eq!(last.images, 3);
        assert!((last.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!((last.confidence - (0.95 + 0.97 + 1.0) / 3.0).abs() < 1e-12);
        // 0.5 and 0.51 both fall in (7/15, 8/15].
        assert_eq!(bins[7].images, 2);
        assert_eq!(bins.iter().map(|b| b.images).sum::<usize>(), 5);
    }

    #[test]
    fn the_fitted_temperature_undoes_a_known_scaling() {
        // Logits drawn so that softmax(z) is calibrated, then sharpened 3x:
        // the fit must find T close to 3 and lower the NLL.
        tch::manual_seed(7);
        let n = 20_000;
        let calibrated = Tensor::randn([n, 10], (Kind::Double, tch::Device::Cpu)) * 2.0;
        let labels = calibrated.softmax(1, Kind::Double).multinomial(1, true).squeeze_dim(1);
        let sharpened = &calibrated * 3.0;
        let t = fit_temperature(&sharpened, &labels).unwrap();
        assert!((t - 3.0).abs() < 0.15, "fitted T = {t}");
        let before = scores(&sharpened, &labels, 1.0).unwrap();
        let after = scores(&sharpened, &labels, t).unwrap();
        assert!(after.nll < before.nll && after.ece < before.ece, "{before:?} -> {after:?}");
        assert!(after.ece < 0.02, "{after:?}");
    }

    #[test]
    fn no_images_is_an_error_not_a_nan() {
        let empty = Tensor::zeros([0, 10], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu));
        assert!(fit_temperature(&empty, &labels).is_err());
    }
}
