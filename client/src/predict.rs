//! `mnist-client predict`: classify image files over one Predict stream.
//!
//! Files are read and preprocessed on blocking threads in parallel (one
//! decode in flight per core, twice over), in file order, so the stream
//! keeps the server's batcher fed; each file's answer is matched back by id.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use crate::connect::ServerAddress;
use futures_util::{StreamExt, stream};
use indicatif::ProgressBar;
use mnist::{
    preprocess::{DecodeLimits, decode, view_digit},
    proto::v1::{PredictRequest, predict_request::Input},
    verdict::{DigitNotes, conclude},
};
use serde::Serialize;

use crate::{ClientError, pipeline::stream_predict};

/// Options of one predict run.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Most unanswered images on the stream.
    pub window: usize,
    /// Send the file's bytes for the server to decode, instead of pixels.
    pub send_encoded: bool,
    /// Where to write the 28x28 image the model sees for each file (the
    /// same preprocessing the server runs on encoded files), to see why a
    /// digit was misread.
    pub debug_dir: Option<PathBuf>,
    /// The served model to ask; empty: the server's choice (its default
    /// model for MNIST's own 28x28 form, its photo model for photos and
    /// scans sent encoded).
    pub model: String,
    /// The server's photo model (`ListModelsResponse.photo_model`), named
    /// for files preprocessed here that needed fitting to 28x28 when
    /// `model` is empty: sent as pixels, they would otherwise go to the
    /// default model, not where the server sends the files themselves.
    pub photo_model: Option<String>,
}

impl PredictOptions {
    /// The model a request names for a file whose preprocessing `fitted`
    /// it to 28x28 (a photo or scan) or used it as it was.
    fn model_for(&self, fitted: bool) -> String {
        match &self.photo_model {
            Some(photo) if self.model.is_empty() && fitted => photo.clone(),
            _ => self.model.clone(),
        }
    }
}

/// The name of the 28x28 image written for the `index`th file (in output
/// order) under [`PredictOptions::debug_dir`].
pub fn debug_image_name(index: usize, path: &Path) -> String {
    let name = path.file_name().map_or_else(|| "image".into(), |n| n.to_string_lossy());
    format!("{index:04}-{name}.png")
}

/// The result for one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// The file.
    pub path: PathBuf,
    /// The prediction, or why there is none.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A file's prediction or error.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// Classified.
    Predicted {
        /// The digit.
        digit: u32,
        /// Its probability.
        confidence: f32,
        /// Softmax probabilities of 0-9.
        probabilities: Vec<f32>,
        /// Digit-like marks side by side in the image, when more than one:
        /// it holds a number (`mnist-client read`), and the prediction is
        /// about its largest digit only.
        #[serde(skip_serializing_if = "Option::is_none")]
        digits_side_by_side: Option<usize>,
        /// What preprocessing noted (no digit, cut by the frame, ink
        /// either way round), which the confidence takes into account.
        #[serde(flatten)]
        notes: DigitNotes,
    },
    /// Not classified.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// Classifies `paths` (in that order); `progress` advances once per file.
pub async fn predict_files(
    server: &ServerAddress,
    paths: Vec<PathBuf>,
    options: &PredictOptions,
    progress: ProgressBar,
) -> Result<Vec<FileResult>, ClientError> {
    let results: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new(vec![None; paths.len()]));
    // Per file, what preprocessing here found, and the answers it waits for.
    let pending: Arc<Mutex<Vec<Pending>>> = Arc::new(Mutex::new(vec![Pending::default(); paths.len()]));
    let pending_in = Arc::clone(&pending);
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let send_encoded = options.send_encoded;
    let debug_dir = options.debug_dir.clone();
    let request_options = options.clone();
    let local_results = Arc::clone(&results);
    let local_progress = progress.clone();
    let requests = stream::iter(paths.clone().into_iter().enumerate())
        .map(move |(index, path)| {
            let debug = debug_dir.as_ref().map(|dir| dir.join(debug_image_name(index, &path)));
            async move {
                let input = tokio::task::spawn_blocking(move || load(&path, send_encoded, debug.as_deref()))
                    .await
                    .unwrap_or_else(|e| Err(format!("decoding task failed: {e}")));
                (index, input)
            }
        })
        .buffered(parallel)
        .flat_map(move |(index, input)| {
            let model = input.as_ref().map(|loaded| request_options.model_for(loaded.fitted)).unwrap_or_default();
            let mut requests = Vec::new();
            match input {
                Ok(Loaded { notes, .. }) if notes.no_digit => {
                    // Nothing to ask the model: the answer is already known.
                    if let Ok(mut r) = local_results.lock() {
                        r[index] = Some(predicted(notes, &[], None, 0));
                    }
                    local_progress.inc(1);
                }
                Ok(Loaded { input, other_polarity, digits, notes, .. }) => {
                    if let Ok(mut p) = pending_in.lock() {
                        p[index] = Pending { digits, notes, first: None, other: None };
                    }
                    requests.push(PredictRequest {
                        id: index.to_string(),
                        input: Some(input),
                        model: model.clone(),
                        return_logits: false,
                    });
                    if let Some(pixels) = other_polarity {
                        requests.push(PredictRequest {
                            id: format!("{index}{OTHER_POLARITY}"),
                            input: Some(Input::Pixels(pixels)),
                            model,
                            return_logits: false,
                        });
                    }
                }
                Err(error) => {
                    if let Ok(mut r) = local_results.lock() {
                        r[index] = Some(Outcome::Failed { error });
                    }
                    local_progress.inc(1);
                }
            }
            stream::iter(requests)
        });

    let response_results = Arc::clone(&results);
    stream_predict(server, requests, options.window, move |response| {
        let (index, other) = match response.id.strip_suffix(OTHER_POLARITY) {
            Some(index) => (index.parse::<usize>().ok(), true),
            None => (response.id.parse::<usize>().ok(), false),
        };
        let Some(index) = index else { return };
        let Ok(mut pending) = pending.lock() else { return };
        let Some(waiting) = pending.get_mut(index) else { return };
        let outcome = match response.error {
            Some(status) => {
                Outcome::Failed { error: format!("{:?}: {}", tonic::Code::from(status.code), status.message) }
            }
            None => {
                let answered = if other { &mut waiting.other } else { &mut waiting.first };
                *answered = Some(response.probabilities);
                let Some(first) = &waiting.first else { return };
                if waiting.notes.polarity_uncertain && waiting.other.is_none() {
                    return; // the other reading is still to come
                }
                // Concluded from what preprocessing here noted. Sent
                // encoded, the server concluded from its own notes: only
                // its "no digit" matters here (its probabilities are then 0).
                let concluded_with =
                    DigitNotes { no_digit: waiting.notes.no_digit || response.no_digit, ..waiting.notes };
                let mut outcome = predicted(concluded_with, first, waiting.other.as_deref(), waiting.digits);
                if let Outcome::Predicted { notes, .. } = &mut outcome {
                    *notes = DigitNotes {
                        no_digit: concluded_with.no_digit,
                        cut_by_frame: waiting.notes.cut_by_frame || response.cut_by_frame,
                        polarity_uncertain: waiting.notes.polarity_uncertain || response.polarity_uncertain,
                    };
                }
                outcome
            }
        };
        progress.inc(1);
        if let Ok(mut r) = response_results.lock()
            && let Some(slot) = r.get_mut(index)
            && slot.is_none()
        {
            *slot = Some(outcome);
        }
    })
    .await?;

    let outcomes = std::mem::take(&mut *results.lock().map_err(|_| ClientError::Usage("result lock poisoned".into()))?);
    Ok(paths
        .into_iter()
        .zip(outcomes)
        .map(|(path, outcome)| FileResult {
            path,
            outcome: outcome.unwrap_or(Outcome::Failed { error: "no answer from the server".into() }),
        })
        .collect())
}

/// Suffix of the id of a file's second reading, the other way round.
const OTHER_POLARITY: &str = "/other-polarity";

/// A file sent, waiting for its answers.
#[derive(Debug, Clone, Default)]
struct Pending {
    /// Digit-like marks side by side in it.
    digits: usize,
    /// What preprocessing here noted.
    notes: DigitNotes,
    /// The probabilities of the reading as first seen, once answered.
    first: Option<Vec<f32>>,
    /// ... and of the other way round, when there is one.
    other: Option<Vec<f32>>,
}

/// One digit of several: no claim of certainty about "the" digit.
fn capped(confidence: f32, digits: usize) -> f32 {
    if digits > 1 { confidence.min(1.0 / digits as f32) } else { confidence }
}

/// The outcome concluded from a file's notes and its readings' probabilities.
fn predicted(notes: DigitNotes, first: &[f32], other: Option<&[f32]>, digits: usize) -> Outcome {
    let verdict = conclude(notes, first, other);
    Outcome::Predicted {
        digit: verdict.digit,
        confidence: capped(verdict.confidence, digits),
        probabilities: verdict.probabilities,
        digits_side_by_side: (digits > 1).then_some(digits),
        notes: verdict.notes,
    }
}

/// A file made ready to send.
struct Loaded {
    /// Preprocessed pixels, or the file's bytes.
    input: Input,
    /// The pixels the other way round, when the file's polarity is uncertain.
    other_polarity: Option<Vec<u8>>,
    /// What preprocessing here noted (nothing when the server decodes it).
    notes: DigitNotes,
    /// How many digit-like marks it holds side by side (1 when the server
    /// decodes it).
    digits: usize,
    /// Whether preprocessing here fitted it to 28x28 (a photo or scan),
    /// rather than using it as it was (or the server decodes it).
    fitted: bool,
}

/// Reads a file into the request input. With `debug`, also writes the
/// 28x28 image the model will see there.
fn load(path: &Path, send_encoded: bool, debug: Option<&Path>) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if send_encoded && debug.is_none() {
        return Ok(Loaded {
            input: Input::Image(bytes),
            other_polarity: None,
            notes: DigitNotes::default(),
            digits: 1,
            fitted: false,
        });
    }
    // Local files may be large photos: allow more than the server does.
    let limits = DecodeLimits { max_encoded_bytes: 256 << 20, max_side: 20_000, max_pixels: 100_000_000 };
    let image = decode(&bytes, &limits).map_err(|e| e.to_string())?;
    let view = view_digit(&image);
    if let Some(debug) = debug {
        let side = mnist::IMAGE_SIDE as u32;
        image::save_buffer(debug, &view.pixels, side, side, image::ExtendedColorType::L8)
            .map_err(|e| format!("cannot write {}: {e}", debug.display()))?;
    }
    let fitted = !send_encoded && !mnist::preprocess::is_mnist_size(image.width(), image.height());
    if send_encoded {
        return Ok(Loaded {
            input: Input::Image(bytes),
            other_polarity: None,
            notes: DigitNotes::default(),
            digits: view.digits_side_by_side.max(1),
            fitted,
        });
    }
    Ok(Loaded {
        input: Input::Pixels(view.pixels),
        other_polarity: view.other_polarity,
        notes: view.notes,
        digits: view.digits_side_by_side,
        fitted,
    })
}
