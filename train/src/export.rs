//! From trained weights to the files that ship: the temperature fitted on
//! the validation split and folded into the float graph (`mnist.onnx`), the
//! int8 graph calibrated on training images (`mnist-int8.onnx`), a card
//! beside each, and the reliability diagram.
//!
//! Every figure on a card is measured, never copied: the float model's on
//! libtorch (the exported graph computes the same logits, which CI checks),
//! the int8 model's in ONNX Runtime, the engine the server runs it on.

use std::{collections::BTreeMap, fs, path::Path};

use mnist::{
    dataset::{Mnist, sha256_hex},
    read::Method,
};
use tch::{Device, Kind, Tensor, nn::VarStore};

use crate::{
    Error, Result,
    calibrate::{self, Calibration},
    card::{ModelCard, Quantization},
    data::TensorSet,
    error::io_error,
    eval::{self, Evaluation},
    model::Net,
    onnx::{self, Weights, int8::build_int8_model},
    plot, quantize,
    record::Progress,
    runtime,
};

/// The models' name unless told otherwise: `mnist.onnx` and `mnist-int8.onnx`.
pub const DEFAULT_NAME: &str = "mnist";

/// A held-out split (validation or test), as bytes (for ONNX Runtime) and
/// as tensors (for libtorch).
#[derive(Debug)]
pub struct HeldOut {
    /// The images and labels as loaded.
    pub data: Mnist,
    /// The same on the training device.
    pub set: TensorSet,
}

impl HeldOut {
    /// Copies `data` to `device` as well.
    pub fn new(data: Mnist, device: Device) -> Self {
        let set = TensorSet::new(&data, device);
        Self { data, set }
    }

    fn labels(&self) -> Tensor {
        self.set.labels.to_device(Device::Cpu)
    }
}

/// What exporting reads.
#[derive(Debug)]
pub struct Splits<'a> {
    /// Training images: the int8 calibration draws from their start.
    pub train: &'a TensorSet,
    /// The held-out validation images, which the temperature is fitted on
    /// (`None`: no temperature, `T = 1`).
    pub validation: Option<&'a HeldOut>,
    /// The test images, scored once for the cards.
    pub test: &'a HeldOut,
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Also write the int8 model.
    pub int8: bool,
    /// Training images the int8 activation ranges are measured on.
    pub calibration_images: usize,
    /// The files' name: `NAME.onnx` and `NAME-int8.onnx` (the server names
    /// each model after its file).
    pub name: String,
}

/// The cards written.
#[derive(Debug)]
pub struct Exported {
    /// `mnist.json`.
    pub float: ModelCard,
    /// `mnist-int8.json`, when asked for.
    pub int8: Option<ModelCard>,
}

/// Fits the temperature, writes `NAME.onnx` and `NAME.json` (and, with
/// `options.int8`, `NAME-int8.onnx` and `NAME-int8.json`) to `dir`, and
/// draws `reliability.png` there when there is a validation split.
pub fn export(
    net: &Net,
    vs: &VarStore,
    progress: &Progress,
    splits: &Splits,
    dir: &Path,
    options: ExportOptions,
) -> Result<Exported> {
    if options.int8 {
        runtime::ensure_loaded()?;
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let test_logits = eval::logits(net, &splits.test.set).to_kind(Kind::Double);
    let test_labels = splits.test.labels();
    let test_eval = Evaluation::from_logits(&test_logits, &test_labels)?;

    // Validation labels once, on the CPU: the float and int8 figures both
    // read them. A window model (trained on lines) is not calibrated on
    // single digits: its blank, the eleventh class, is not among them.
    let reads_lines = !progress.recipe.line_set.is_empty();
    let validation = splits.validation.filter(|_| !reads_lines).map(|v| (v, v.labels()));
    let (calibration, validation_eval) = match &validation {
        Some((validation, labels)) => {
            let logits = eval::logits(net, &validation.set).to_kind(Kind::Double);
            let calibration = Calibration::fit((&logits, labels), (&test_logits, &test_labels))?;
            draw_reliability(&test_logits, &test_labels, calibration.temperature, dir)?;
            (Some(calibration), Some(Evaluation::from_logits(&logits, labels)?))
        }
        None => (None, None),
    };
    let temperature = calibration.map_or(1.0, |c| c.temperature);
    let weights = Weights::from_var_store(vs, net.arch(), temperature)?;

    let metadata = |eval: &Evaluation| -> Result<BTreeMap<String, String>> {
        let mut metadata = BTreeMap::from([
            ("test_accuracy".to_string(), format!("{:.4}", eval.accuracy())),
            ("recipe".to_string(), serde_json::to_string(&progress.recipe).map_err(|e| Error::Config(e.to_string()))?),
            ("epochs".to_string(), progress.completed_epochs.to_string()),
        ]);
        // Models that say nothing read numbers by cuts.
        if reads_lines {
            metadata.insert(Method::METADATA_KEY.to_string(), Method::Windows.name().to_string());
        }
        Ok(metadata)
    };
    let (float_file, int8_file) = (format!("{}.onnx", options.name), format!("{}-int8.onnx", options.name));
    let float_path = dir.join(&float_file);
    onnx::write(&onnx::build_model(&weights, &metadata(&test_eval)?)?, &float_path)?;
    let mut float_card = ModelCard::new(float_file.clone(), file_sha256(&float_path)?, &test_eval, progress);
    float_card.validation_accuracy = validation_eval.as_ref().map(|e| e.accuracy());
    float_card.calibration = calibration;
    write_card(&float_card, &float_path)?;

    let int8_card = if options.int8 {
        let ranges = quantize::activation_ranges(net, splits.train, options.calibration_images)?;
        let int8_path = dir.join(&int8_file);
        // The metadata's accuracy is the float model's until the int8 file
        // has been scored; the card, written after, has its own.
        let model = build_int8_model(&weights, &ranges, &metadata(&test_eval)?)?;
        onnx::write(&model, &int8_path)?;

        let unfolded =
            |logits: Vec<f32>| Tensor::from_slice(&logits).view([-1, 10]).to_kind(Kind::Double) * temperature;
        let int8_test = unfolded(runtime::logits(&int8_path, &splits.test.data)?);
        let int8_eval = Evaluation::from_logits(&int8_test, &test_labels)?;
        let agreement = int8_test.argmax(1, false).eq_tensor(&test_logits.argmax(1, false)).to_kind(Kind::Double);
        let mut card = ModelCard::new(int8_file.clone(), file_sha256(&int8_path)?, &int8_eval, progress);
        if let (Some((validation, labels)), Some(float_calibration)) = (&validation, calibration) {
            let int8_validation = unfolded(runtime::logits(&int8_path, &validation.data)?);
            card.validation_accuracy = Some(Evaluation::from_logits(&int8_validation, labels)?.accuracy());
            card.calibration = Some(Calibration::with_temperature(
                float_calibration.temperature,
                (&int8_validation, labels),
                (&int8_test, &test_labels),
            )?);
        }
        card.quantization = Some(Quantization {
            format: "QDQ: per-channel symmetric int8 weights, int32 biases, uint8 activations (MinMax)".into(),
            calibration_images: options.calibration_images.min(splits.train.len()),
            ranges,
            float_model: float_file.clone(),
            float_test_accuracy: test_eval.accuracy(),
            test_argmax_agreement: agreement.mean(Kind::Double).double_value(&[]),
        });
        write_card(&card, &int8_path)?;
        Some(card)
    } else {
        None
    };
    Ok(Exported { float: float_card, int8: int8_card })
}

fn draw_reliability(logits: &Tensor, labels: &Tensor, temperature: f64, dir: &Path) -> Result<()> {
    let before = calibrate::reliability(logits, labels, 1.0)?;
    let after = calibrate::reliability(logits, labels, temperature)?;
    let title = format!("reliability on the {} test images (T fitted on the validation split)", labels.size()[0]);
    plot::reliability_diagram(&before, &after, temperature, &title, &dir.join("reliability.png"))
}

fn file_sha256(path: &Path) -> Result<String> {
    Ok(sha256_hex(&fs::read(path).map_err(io_error(path))?))
}

/// Writes `card` beside `model` (same name, `.json`).
fn write_card(card: &ModelCard, model: &Path) -> Result<()> {
    let path = model.with_extension("json");
    let json = serde_json::to_string_pretty(card).map_err(|e| Error::Config(e.to_string()))? + "\n";
    fs::write(&path, json).map_err(io_error(&path))
}
