//! A served model's file: loading it (file -> ONNX Runtime session),
//! describing it (its card `mnist.json`), and replacing it while serving.
//!
//! A reload (SIGHUP, or `--watch-model` seeing the file change) loads each
//! model's file into a new session beside the old one, reads its card, and
//! warms it up on the loading thread; only then does that model's batcher
//! switch to it, between two batches. Anything wrong (missing or truncated
//! file, not ONNX, wrong inputs or outputs, a card that describes another
//! file, a failed warm-up) leaves the old model serving, with an error line
//! in the log and `mnist_model_reloads_total{result="failed"}`; the other
//! models are not touched.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use mnist::{
    IMAGE_PIXELS, NUM_CLASSES,
    dataset::sha256_hex,
    proto::v1::{BatchingConfig, ModelInfo},
};

use crate::{
    backend::{ModelDescription, OnnxBackend, RuntimeOptions},
    batcher::LoadedModel,
    config::Config,
    error::ServerError,
    metrics,
    models::{Model, ModelSpec, ServedModel},
    threads::ModelLoader,
};

/// A model file, loaded: the session for the batcher and its description
/// for the fronts.
pub struct Loaded {
    /// What the batcher runs.
    pub model: LoadedModel,
    /// How the fronts describe it.
    pub served: ServedModel,
    /// The execution provider running it.
    pub provider: &'static str,
}

/// How a model's card is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// At start-up: a card that is not valid JSON or describes another file
    /// is ignored, with a warning (the model still serves).
    Lenient,
    /// On reload: such a card refuses the new model, so that a file and its
    /// card are always swapped together.
    Strict,
}

/// Loads the model `spec` names and its card, with the ONNX Runtime
/// settings `runtime`. Blocking (reads the file and builds the session).
/// `is_default`: whether it answers requests that name no model.
pub fn load(
    spec: &ModelSpec,
    is_default: bool,
    config: &Config,
    runtime: &RuntimeOptions,
    card: Card,
) -> Result<Loaded, ServerError> {
    let (backend, description) = OnnxBackend::load(&spec.path, runtime)?;
    let card = read_card(&spec.path, &description.sha256, card)?;
    let served = served_model(spec, is_default, config, &description, card.as_ref());
    let model = LoadedModel {
        backend: Box::new(backend),
        mean: description.mean,
        std: description.std,
        sha256: description.sha256.as_str().into(),
    };
    Ok(Loaded { model, served, provider: description.provider })
}

/// [`load`], on the loader thread (off the async workers, and at the
/// priority ONNX Runtime's threads must inherit: see [`crate::threads`]).
pub async fn load_on(
    loader: &ModelLoader,
    spec: &ModelSpec,
    is_default: bool,
    config: &Config,
    runtime: RuntimeOptions,
    card: Card,
) -> Result<Loaded, ServerError> {
    let (spec, config) = (spec.clone(), config.clone());
    loader.run(move || load(&spec, is_default, &config, &runtime, card)).await?
}

/// Runs a model once on one image and once on a full batch, directly (not
/// through the batcher), so that it has paid for ONNX Runtime's lazy
/// initialisation before it serves, and is known to produce 10 finite logits.
fn warm_up(model: &mut LoadedModel, max_batch_size: usize) -> Result<(), ServerError> {
    for batch in [1, max_batch_size.max(1)] {
        let logits = model.backend.infer(&vec![0.0; batch * IMAGE_PIXELS], batch)?;
        if logits.len() != batch * NUM_CLASSES || logits.iter().any(|l| !l.is_finite()) {
            return Err(ServerError::Inference(format!(
                "warm-up on a batch of {batch} gave {} values (expected {} finite logits)",
                logits.len(),
                batch * NUM_CLASSES
            )));
        }
    }
    Ok(())
}

/// The model as every front describes it.
fn served_model(
    spec: &ModelSpec,
    is_default: bool,
    config: &Config,
    model: &ModelDescription,
    card: Option<&serde_json::Value>,
) -> ServedModel {
    let version = card
        .and_then(|card| card.get("version"))
        .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "1".to_string());
    let test_accuracy = card.and_then(|card| card.get("test_accuracy")).and_then(|a| a.as_f64());
    ServedModel { info: model_info(spec, is_default, config, model, test_accuracy), version }
}

/// GetModelInfo's answer.
fn model_info(
    spec: &ModelSpec,
    is_default: bool,
    config: &Config,
    model: &ModelDescription,
    test_accuracy: Option<f64>,
) -> ModelInfo {
    ModelInfo {
        name: spec.name.clone(),
        is_default,
        input_shape: vec![-1, 1, 28, 28],
        classes: (0..NUM_CLASSES).map(|d| d.to_string()).collect(),
        model_sha256: model.sha256.clone(),
        test_accuracy,
        execution_provider: model.provider.to_string(),
        batching: Some(BatchingConfig {
            max_batch_size: config.max_batch_size,
            max_queue_delay_us: config.max_queue_delay_us,
            max_queue_size: config.max_queue_size,
            max_in_flight_per_stream: config.max_in_flight_per_stream,
        }),
        model_file: spec.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        model_metadata: model.metadata.clone().into_iter().collect(),
    }
}

/// The model's card (`mnist.json` beside `mnist.onnx`), if there is one.
fn read_card(model: &Path, sha256: &str, mode: Card) -> Result<Option<serde_json::Value>, ServerError> {
    let path = model.with_extension("json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let problem = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(card) => match card.get("sha256").and_then(|s| s.as_str()) {
            Some(described) if !described.eq_ignore_ascii_case(sha256) => {
                format!("describes another file (SHA-256 {described}, the model's is {sha256})")
            }
            _ => return Ok(Some(card)),
        },
        Err(e) => format!("is not valid JSON: {e}"),
    };
    match mode {
        Card::Lenient => {
            tracing::warn!(card = %path.display(), "model card {problem}; ignoring it");
            Ok(None)
        }
        Card::Strict => Err(ServerError::Model { path, reason: format!("the model card {problem}") }),
    }
}

/// Replaces served models' files on request, one reload at a time.
pub struct Reloader {
    config: Config,
    models: Vec<Arc<Model>>,
    /// The settings every model was loaded with (they divide the CPUs
    /// among the served models).
    runtime: RuntimeOptions,
    loader: ModelLoader,
    /// Reloads run one after the other.
    busy: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for `models`, each loaded again from its own file.
    pub fn new(config: Config, models: Vec<Arc<Model>>, loader: ModelLoader) -> Self {
        let runtime = config.runtime_options(models.len());
        Self { config, models, runtime, loader, busy: tokio::sync::Mutex::new(()) }
    }

    /// Loads every model's file again and swaps in those that changed;
    /// a failure leaves that model's old file serving and the others go on.
    /// How many models were replaced.
    pub async fn reload_all(&self, why: &'static str) -> usize {
        let mut replaced = 0;
        for model in &self.models {
            if let Ok(true) = self.reload(model, why).await {
                replaced += 1;
            }
        }
        replaced
    }

    /// Loads `model`'s file again and, if it is a different, working model,
    /// swaps it in. `Ok(false)` when the file holds the model already serving.
    pub async fn reload(&self, model: &Model, why: &'static str) -> Result<bool, ServerError> {
        let _one_at_a_time = self.busy.lock().await;
        let started = std::time::Instant::now();
        let name = model.name().to_string();
        let max_batch = self.config.max_batch_size.min(self.config.max_queue_size) as usize;
        let (config, spec, is_default) = (self.config.clone(), model.spec().clone(), model.served().info.is_default);
        let runtime = self.runtime;
        let loaded = self
            .loader
            .run(move || {
                let mut loaded = load(&spec, is_default, &config, &runtime, Card::Strict)?;
                warm_up(&mut loaded.model, max_batch)?;
                Ok::<_, ServerError>(loaded)
            })
            .await
            .and_then(|loaded| loaded);
        let serving = model.served();
        let (previous, previous_provider) = (&serving.info.model_sha256, &serving.info.execution_provider);
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                metrics::model_reload(&name, "failed");
                tracing::error!(
                    model = %name, why, %error, serving = %previous,
                    "model reload failed: the old model keeps serving"
                );
                return Err(error);
            }
        };
        let sha256 = loaded.model.sha256.to_string();
        if sha256 == *previous {
            metrics::model_reload(&name, "unchanged");
            tracing::info!(model = %name, why, %sha256, "model reload: the file holds the model already serving");
            return Ok(false);
        }
        model.batcher().replace_model(loaded.model);
        model.set_served(loaded.served);
        metrics::model_replaced(&name, previous_provider, previous, loaded.provider, &sha256);
        metrics::model_reload(&name, "ok");
        tracing::info!(
            model = %name,
            why,
            %previous,
            %sha256,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "model reloaded: the next batch runs the new model"
        );
        Ok(true)
    }

    /// Reloads every model on SIGHUP and, every `watch` when given, each
    /// model whose file's modification time and content have changed. Runs
    /// until the server stops.
    pub fn spawn(self: Arc<Self>, watch: Option<Duration>) {
        #[cfg(unix)]
        {
            let reloader = Arc::clone(&self);
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(mut hangups) => {
                    tokio::spawn(async move {
                        while hangups.recv().await.is_some() {
                            reloader.reload_all("SIGHUP").await;
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP: models are reloaded only by --watch-model")
                }
            }
        }
        if let Some(every) = watch {
            tokio::spawn(async move {
                // Nothing seen yet, so the first tick compares each file with
                // its serving model: a file replaced between the model's
                // load and this task's start is not missed.
                let mut seen: Vec<Option<Option<SystemTime>>> = vec![None; self.models.len()];
                let mut ticks = tokio::time::interval(every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    for (model, seen) in self.models.iter().zip(&mut seen) {
                        let path = &model.spec().path;
                        let now = modified(path);
                        if *seen == Some(now) {
                            continue;
                        }
                        *seen = Some(now);
                        // Touched, or rewritten with the same bytes: nothing to do.
                        if file_sha256(path).is_some_and(|sha| sha == model.served().info.model_sha256) {
                            continue;
                        }
                        let _ = self.reload(model, "the model file changed").await;
                    }
                }
            });
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn file_sha256(path: &Path) -> Option<String> {
    Some(sha256_hex(&std::fs::read(path).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_for_another_file_is_ignored_at_start_up_and_refused_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        assert_eq!(read_card(&model, "ab", Card::Strict).unwrap(), None, "no card is fine");
        std::fs::write(dir.path().join("m.json"), r#"{"sha256": "cd", "test_accuracy": 0.99}"#).unwrap();
        assert_eq!(read_card(&model, "ab", Card::Lenient).unwrap(), None);
        let error = read_card(&model, "ab", Card::Strict).unwrap_err().to_string();
        assert!(error.contains("describes another file") && error.contains("cd"), "{error}");
        let card = read_card(&model, "CD", Card::Strict).unwrap().unwrap();
        assert_eq!(card["test_accuracy"], 0.99);
        std::fs::write(dir.path().join("m.json"), "{not json").unwrap();
        assert!(read_card(&model, "cd", Card::Strict).unwrap_err().to_string().contains("not valid JSON"));
    }
}
