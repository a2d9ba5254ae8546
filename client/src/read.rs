//! `mnist-client read`: handwritten numbers, one per file.
//!
//! By default each file is decoded and segmented here, with the very code
//! the server's `Read` runs (`mnist::read`), and only its candidate digits
//! (784 bytes each) travel, over the same `Predict` streams, replicas and
//! failover as `predict`; the digits are then chosen here from the model's
//! raw outputs (`return_logits`). A 12-megapixel photo costs the network a few kilobytes.
//! When the server reads with two models (`ListModelsResponse.second_read_model`),
//! each file is segmented and read for both here too, and the surer reading kept;
//! when it checks the digits standing alone (`ListModelsResponse.check_model`),
//! they go to that model in a second pass over the files, as the server does.
//! With `send_encoded`, each file goes whole to the server's `ReadOne`.
//! Both give the same reading for the same file and models.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use futures_util::{StreamExt, stream};
use image::DynamicImage;
use indicatif::ProgressBar;
use mnist::{
    preprocess::{DecodeLimits, decode},
    proto::v1::{PredictRequest, ReadRequest, predict_request::Input, read_request},
    read::{Method, PixelBox, Reading, Segmentation, draw, segment},
};
use serde::Serialize;

use crate::{ClientError, connect::ServerAddress, pipeline::stream_predict, predict::debug_image_name};

/// Local files may be large photos: allow more than the server does.
const LOCAL_LIMITS: DecodeLimits =
    DecodeLimits { max_encoded_bytes: 256 << 20, max_side: 20_000, max_pixels: 100_000_000 };

/// A model that reads each file, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// The served model's name.
    pub model: String,
    /// How it reads numbers (its metadata's `reading`): which images of each
    /// file are cut here and sent to it.
    pub method: Method,
}

/// Options of one read run.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The models that read each file here, the reading they are surest of
    /// kept (the first's on a tie), as the server's `Read` does with its
    /// reading model and second one (`ListModelsResponse`); at least one,
    /// unless `send_encoded`.
    pub readers: Vec<Reader>,
    /// Most unanswered candidate digits on the stream (or files, with `send_encoded`).
    pub window: usize,
    /// Send each file's bytes for the server to read (`ReadOne`).
    pub send_encoded: bool,
    /// Where to write, for each file, a picture of the photo with the boxes
    /// and digits read drawn on it, and each 28x28 the model saw (files
    /// read here only, not with `send_encoded`).
    pub debug_dir: Option<PathBuf>,
    /// The model `ReadOne` is asked to read with, with `send_encoded`
    /// (empty: the server's readers).
    pub model: String,
    /// The number of digits expected, when the caller knows it.
    pub expected_digits: Option<usize>,
    /// The single-digit model that checks the digits of each reading that
    /// stand alone (`mnist::read::check`), for files read here: the
    /// server's `ListModelsResponse.check_model` when reading with its
    /// readers.
    pub check_model: Option<String>,
}

/// The reading of one file.
#[derive(Debug, Clone, Serialize)]
pub struct ReadResult {
    /// The file.
    pub path: PathBuf,
    /// The reading, or why there is none.
    #[serde(flatten)]
    pub outcome: ReadOutcome,
}

/// A file's reading or error.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ReadOutcome {
    /// Read.
    Read(ReadNumber),
    /// Not read.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// A number read from one file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReadNumber {
    /// The digits, left to right.
    pub text: String,
    /// How sure the reading is as a whole (the server's `confidence`:
    /// the model's probability of this whole text).
    pub confidence: f32,
    /// Each digit.
    pub digits: Vec<NumberDigit>,
    /// Digits of the best reading of any length (see `--expect-digits`).
    pub best_length: usize,
    /// Why the reading may have left part of the line out (a line longer
    /// than a reading takes), when it may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_short: Option<String>,
}

/// One digit of a [`ReadNumber`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NumberDigit {
    /// The digit.
    pub digit: u32,
    /// Its probability.
    pub confidence: f32,
    /// Probabilities of 0-9 (empty when the server was not asked for them).
    #[serde(skip)]
    pub probabilities: Vec<f32>,
    /// Where it is in the file's image.
    #[serde(rename = "box")]
    pub bounds: PixelBox,
    /// Whether the check model read it too (it stands apart from its
    /// neighbours): its confidence combines both models'.
    pub checked: bool,
}

impl From<Reading> for ReadNumber {
    fn from(reading: Reading) -> Self {
        Self {
            text: reading.text,
            confidence: reading.confidence,
            best_length: reading.best_length,
            cut_short: reading.cut_short,
            digits: reading
                .digits
                .into_iter()
                .map(|d| NumberDigit {
                    digit: u32::from(d.digit),
                    confidence: d.confidence,
                    probabilities: d.probabilities,
                    bounds: d.bounds,
                    checked: d.checked,
                })
                .collect(),
        }
    }
}

/// Reads `paths` (in that order); `progress` advances once per file.
pub async fn read_files(
    server: &ServerAddress,
    paths: Vec<PathBuf>,
    options: &ReadOptions,
    progress: ProgressBar,
) -> Result<Vec<ReadResult>, ClientError> {
    let outcomes = if options.send_encoded {
        read_remotely(server, &paths, options, &progress).await?
    } else {
        read_locally(server, &paths, options, &progress).await?
    };
    Ok(paths.into_iter().zip(outcomes).map(|(path, outcome)| ReadResult { path, outcome }).collect())
}

/// A file segmented here, waiting for its candidates' logits.
struct Pending {
    /// One per reader, in the readers' order.
    readings: Vec<PendingReading>,
    /// The decoded image, kept only to draw the debug picture.
    image: Option<DynamicImage>,
}

/// A file segmented for one reader, and its candidates' logits so far.
struct PendingReading {
    segmentation: Segmentation,
    logits: Vec<Option<Vec<f32>>>,
}

impl Pending {
    fn is_complete(&self) -> bool {
        self.readings.iter().all(|r| r.logits.iter().all(Option::is_some))
    }
}

async fn read_locally(
    server: &ServerAddress,
    paths: &[PathBuf],
    options: &ReadOptions,
    progress: &ProgressBar,
) -> Result<Vec<ReadOutcome>, ClientError> {
    if options.readers.is_empty() {
        return Err(ClientError::Usage("no model to read with".into()));
    }
    let pending: Arc<Mutex<HashMap<usize, Pending>>> = Arc::default();
    let failures: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let keep_images = options.debug_dir.is_some();
    let readers = options.readers.clone();
    let methods: Vec<Method> = readers.iter().map(|r| r.method).collect();
    let (pending_in, failures_in, progress_in) = (Arc::clone(&pending), Arc::clone(&failures), progress.clone());
    // The stream outlives this call's borrow of `paths`: it owns its copy.
    let owned: Vec<PathBuf> = paths.to_vec();
    let requests = stream::iter(owned.into_iter().enumerate())
        .map(move |(index, path)| {
            let methods = methods.clone();
            async move {
                let segmented = tokio::task::spawn_blocking(move || load_and_segment(&path, &methods))
                    .await
                    .unwrap_or_else(|e| Err(format!("segmentation task failed: {e}")));
                (index, segmented)
            }
        })
        .buffered(parallel)
        .flat_map(move |(index, segmented)| {
            let requests = match segmented {
                Ok((image, mut segmentations)) => {
                    let mut requests = Vec::new();
                    for (r, (segmentation, reader)) in segmentations.iter_mut().zip(&readers).enumerate() {
                        for (n, candidate) in segmentation.candidates.iter_mut().enumerate() {
                            requests.push(PredictRequest {
                                id: format!("{index}/{r}/{n}"),
                                // The pixels travel; only the debug picture needs them after.
                                input: Some(Input::Pixels(if keep_images {
                                    candidate.pixels.clone()
                                } else {
                                    std::mem::take(&mut candidate.pixels)
                                })),
                                model: reader.model.clone(),
                                // A window model's blank is measured against
                                // the raw outputs: the reading needs them.
                                return_logits: true,
                            });
                        }
                    }
                    if requests.is_empty() {
                        progress_in.inc(1);
                    }
                    let readings = segmentations
                        .into_iter()
                        .map(|segmentation| PendingReading {
                            logits: vec![None; segmentation.candidates.len()],
                            segmentation,
                        })
                        .collect();
                    let waiting = Pending { readings, image: keep_images.then_some(image) };
                    if let Ok(mut map) = pending_in.lock() {
                        map.insert(index, waiting);
                    }
                    requests
                }
                Err(error) => {
                    if let Ok(mut map) = failures_in.lock() {
                        map.insert(index, error);
                    }
                    progress_in.inc(1);
                    Vec::new()
                }
            };
            stream::iter(requests)
        });

    let (pending_out, failures_out, progress_out) = (Arc::clone(&pending), Arc::clone(&failures), progress.clone());
    stream_predict(server, requests, options.window, move |response| {
        let mut parts = response.id.split('/').map(str::parse::<usize>);
        let (Some(Ok(file)), Some(Ok(reader)), Some(Ok(candidate)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if let Some(status) = response.error {
            if let Ok(mut map) = failures_out.lock()
                && !map.contains_key(&file)
            {
                map.insert(file, format!("{:?}: {}", tonic::Code::from(status.code), status.message));
                progress_out.inc(1);
            }
            return;
        }
        if let Ok(mut map) = pending_out.lock()
            && let Some(waiting) = map.get_mut(&file)
            && let Some(slot) = waiting.readings.get_mut(reader).and_then(|r| r.logits.get_mut(candidate))
        {
            *slot = Some(response.logits);
            if waiting.is_complete() {
                progress_out.inc(1);
            }
        }
    })
    .await?;

    let mut pending = std::mem::take(&mut *pending.lock().map_err(|_| ClientError::Usage("lock poisoned".into()))?);
    let failures = std::mem::take(&mut *failures.lock().map_err(|_| ClientError::Usage("lock poisoned".into()))?);
    let mut chosen: Vec<Result<Chosen, String>> = (0..paths.len())
        .map(|index| match (failures.get(&index), pending.remove(&index)) {
            (Some(error), _) => Err(error.clone()),
            (None, Some(waiting)) => choose(waiting, options.expected_digits),
            (None, None) => Err("no answer from the server".into()),
        })
        .collect();
    if let Some(checker) = &options.check_model {
        check_digits(server, checker, &mut chosen, options.window).await?;
    }
    let outcomes = paths
        .iter()
        .zip(chosen)
        .enumerate()
        .map(|(index, (path, chosen))| match chosen.and_then(|c| write_debug_of(index, path, c, options)) {
            Ok(reading) => ReadOutcome::Read(reading.into()),
            Err(error) => ReadOutcome::Failed { error },
        })
        .collect();
    Ok(outcomes)
}

/// A file's reading, chosen among its readers', and what its debug
/// pictures are drawn from.
struct Chosen {
    reading: Reading,
    segmentation: Segmentation,
    image: Option<DynamicImage>,
}

/// Chooses the digits of a file whose candidates all have logits: the
/// reading its readers are surest of.
fn choose(waiting: Pending, expected_digits: Option<usize>) -> Result<Chosen, String> {
    let mut surest: Option<(Reading, Segmentation)> = None;
    for PendingReading { segmentation, logits } in waiting.readings {
        let reading = read_one(&segmentation, logits, expected_digits)?;
        // The first reader's on a tie, as the server chooses.
        if surest.as_ref().is_none_or(|(best, _)| reading.is_surer_than(best)) {
            surest = Some((reading, segmentation));
        }
    }
    let (reading, segmentation) = surest.ok_or("no model read the file")?;
    Ok(Chosen { reading, segmentation, image: waiting.image })
}

/// Sends the digits standing alone of every reading to `checker`, over the
/// same streams as the candidates, and combines its answers with each
/// reading (`Reading::check_digits`); a file whose digits were refused
/// fails with the server's reason.
async fn check_digits(
    server: &ServerAddress,
    checker: &str,
    chosen: &mut [Result<Chosen, String>],
    window: usize,
) -> Result<(), ClientError> {
    let mut requests = Vec::new();
    let mut logits: HashMap<usize, Vec<Option<Vec<f32>>>> = HashMap::new();
    for (file, chosen) in chosen.iter().enumerate() {
        let Ok(chosen) = chosen else { continue };
        let alone = chosen.reading.digits_to_check();
        if alone.is_empty() {
            continue;
        }
        logits.insert(file, vec![None; alone.len()]);
        requests.extend(alone.into_iter().enumerate().map(|(k, (_, pixels))| PredictRequest {
            id: format!("{file}/{k}"),
            input: Some(Input::Pixels(pixels.to_vec())),
            model: checker.to_string(),
            return_logits: true,
        }));
    }
    if requests.is_empty() {
        return Ok(());
    }
    let mut refused: HashMap<usize, String> = HashMap::new();
    stream_predict(server, stream::iter(requests), window, |response| {
        let mut parts = response.id.split('/').map(str::parse::<usize>);
        let (Some(Ok(file)), Some(Ok(k)), None) = (parts.next(), parts.next(), parts.next()) else { return };
        if let Some(status) = response.error {
            refused.entry(file).or_insert_with(|| format!("{:?}: {}", tonic::Code::from(status.code), status.message));
        } else if let Some(slot) = logits.get_mut(&file).and_then(|l| l.get_mut(k)) {
            *slot = Some(response.logits);
        }
    })
    .await?;
    for (file, answers) in logits {
        let Some(entry) = chosen.get_mut(file) else { continue };
        let checked = match (refused.remove(&file), answers.into_iter().collect::<Option<Vec<_>>>()) {
            (Some(error), _) => Err(error),
            (None, None) => Err("the server did not answer every digit checked".to_string()),
            (None, Some(answers)) => match entry {
                Ok(c) => c.reading.check_digits(&answers).map_err(|e| e.to_string()),
                Err(_) => Ok(()),
            },
        };
        if let Err(error) = checked {
            *entry = Err(error);
        }
    }
    Ok(())
}

/// A chosen reading, its debug pictures written when asked for.
fn write_debug_of(index: usize, path: &Path, chosen: Chosen, options: &ReadOptions) -> Result<Reading, String> {
    if let (Some(dir), Some(image)) = (&options.debug_dir, &chosen.image) {
        write_debug(dir, index, path, image, &chosen.segmentation, &chosen.reading)?;
    }
    Ok(chosen.reading)
}

/// One reader's reading of a file, from its candidates' logits.
fn read_one(
    segmentation: &Segmentation,
    logits: Vec<Option<Vec<f32>>>,
    expected_digits: Option<usize>,
) -> Result<Reading, String> {
    let Some(logits) = logits.into_iter().collect::<Option<Vec<_>>>() else {
        return Err("the server did not answer every digit".into());
    };
    if logits.iter().any(|l| l.len() != mnist::NUM_CLASSES) {
        return Err(
            "the server answered no logits (it predates PredictRequest.return_logits): read with --send-encoded".into(),
        );
    }
    segmentation.read(&logits, expected_digits).map_err(|error| error.to_string())
}

/// Writes NNNN-<file>.png (the photo with boxes and digits),
/// NNNN-<file>.digit-K.png (the 28x28 the model saw for digit K),
/// NNNN-<file>.digit-K.alone.png (digit K alone, as the check model saw
/// it, when it stands apart from its neighbours) and, for a
/// model that reads the line whole, NNNN-<file>.line.png (the line's strip
/// and the window each digit was read in).
fn write_debug(
    dir: &Path,
    index: usize,
    path: &Path,
    image: &DynamicImage,
    segmentation: &Segmentation,
    reading: &Reading,
) -> Result<(), String> {
    let name = debug_image_name(index, path);
    let picture = dir.join(&name);
    draw::annotated(image, segmentation, reading)
        .save(&picture)
        .map_err(|e| format!("cannot write {}: {e}", picture.display()))?;
    let stem = name.trim_end_matches(".png");
    if let Some(line) = draw::windows(segmentation, reading) {
        let file = dir.join(format!("{stem}.line.png"));
        line.save(&file).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    for (k, digit) in reading.digits.iter().enumerate() {
        let Some(candidate) = segmentation.candidates.get(digit.candidate) else { continue };
        let side = mnist::IMAGE_SIDE as u32;
        let seen = std::iter::once(("", &candidate.pixels)).chain(digit.alone.as_ref().map(|alone| (".alone", alone)));
        for (suffix, pixels) in seen {
            let file = dir.join(format!("{stem}.digit-{k}{suffix}.png"));
            image::save_buffer(&file, pixels, side, side, image::ExtendedColorType::L8)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
    }
    Ok(())
}

/// Decodes a file and segments it for each reader's method.
fn load_and_segment(path: &Path, methods: &[Method]) -> Result<(DynamicImage, Vec<Segmentation>), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let image = decode(&bytes, &LOCAL_LIMITS).map_err(|e| e.to_string())?;
    let segmentations = methods.iter().map(|&method| segment(&image, method)).collect();
    Ok((image, segmentations))
}

/// Each file to the server's `ReadOne`, a window of them at a time.
async fn read_remotely(
    server: &ServerAddress,
    paths: &[PathBuf],
    options: &ReadOptions,
    progress: &ProgressBar,
) -> Result<Vec<ReadOutcome>, ClientError> {
    let client = server.first_replica().await?.classifier().await?;
    let expected_digits = options.expected_digits.unwrap_or(0) as u32;
    let outcomes = stream::iter(paths.iter().enumerate())
        .map(|(index, path)| {
            let mut client = client.clone();
            let model = options.model.clone();
            async move {
                let outcome = async {
                    let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
                    let request = ReadRequest {
                        id: index.to_string(),
                        input: Some(read_request::Input::Image(bytes)),
                        model,
                        top_k: 10,
                        expected_digits,
                    };
                    let response = client
                        .read_one(request)
                        .await
                        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
                        .into_inner();
                    let number = ReadNumber {
                        best_length: response.best_length as usize,
                        cut_short: Some(response.cut_short).filter(|note| !note.is_empty()),
                        text: response.text,
                        confidence: response.confidence,
                        digits: response
                            .digits
                            .into_iter()
                            .map(|d| {
                                let b = d.r#box.unwrap_or_default();
                                let mut probabilities = vec![0.0; mnist::NUM_CLASSES];
                                for score in &d.top_k {
                                    if let Some(p) = probabilities.get_mut(score.digit as usize) {
                                        *p = score.probability;
                                    }
                                }
                                NumberDigit {
                                    digit: d.digit,
                                    confidence: d.confidence,
                                    probabilities,
                                    bounds: PixelBox { x: b.x, y: b.y, width: b.width, height: b.height },
                                    checked: d.checked,
                                }
                            })
                            .collect(),
                    };
                    Ok::<_, String>(number)
                }
                .await;
                progress.inc(1);
                outcome.map_or_else(|error| ReadOutcome::Failed { error }, ReadOutcome::Read)
            }
        })
        .buffered(options.window.clamp(1, 64))
        .collect()
        .await;
    Ok(outcomes)
}
