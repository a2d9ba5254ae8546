//! The models one server serves, by name.
//!
//! Each served model is one [`Model`] entry below the one [`crate::core::Core`]:
//! its own file, description (card, digest, provider) and [`Batcher`] (a
//! queue and an inference thread running its ONNX Runtime session). What
//! every model shares stays in the core: admission (one limit server-wide),
//! streams, decoding. Separate inference threads are what keep one model's
//! flood from starving another's lone caller: the operating system shares
//! the cores between the threads with work, instead of the lone image
//! waiting behind the flooded model's batches in one queue.
//!
//! The first model given is the default one, which answers requests that
//! name none (`--default-model` picks another).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use mnist::{proto::v1::ModelInfo, read::Method};

use crate::{batcher::Batcher, error::ServerError};

/// A model to serve, as the flags name it: `NAME=PATH`, or a path whose
/// file stem is the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// What requests call it.
    pub name: String,
    /// The ONNX file (its card is the `.json` beside it).
    pub path: PathBuf,
}

impl ModelSpec {
    /// Parses `NAME=PATH` or `PATH`. An `=` counts as the separator only
    /// when what precedes it is a valid name (so a path with `=` in a
    /// directory name still works).
    pub fn parse(text: &str) -> Result<Self, ServerError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ServerError::Config("--model needs a path (or NAME=PATH)".into()));
        }
        if let Some((name, path)) = text.split_once('=')
            && check_name(name).is_ok()
        {
            if path.is_empty() {
                return Err(ServerError::Config(format!("--model {text}: the path after '{name}=' is empty")));
            }
            return Ok(Self { name: name.to_string(), path: PathBuf::from(path) });
        }
        Self::from_path(Path::new(text))
    }

    /// The model at `path`, named after its file stem (`mnist-int8` for
    /// `models/mnist-int8.onnx`).
    pub fn from_path(path: &Path) -> Result<Self, ServerError> {
        let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
        check_name(name).map_err(|reason| {
            ServerError::Config(format!(
                "--model {}: cannot name the model after its file ({reason}); give it a name: --model NAME={}",
                path.display(),
                path.display()
            ))
        })?;
        Ok(Self { name: name.to_string(), path: path.to_path_buf() })
    }
}

/// Model names travel in URLs (`/v2/models/{name}`), metrics labels and
/// logs: letters, digits, `-`, `_` and `.`, not starting with `.`, at most
/// 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a model name cannot be empty".into());
    }
    if name.len() > 64 {
        return Err(format!("model name '{name}' is longer than 64 characters"));
    }
    if name.starts_with('.') || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(format!("model name '{name}' may hold only letters, digits, '-', '_' and '.', not first"));
    }
    Ok(())
}

/// The `*.onnx` files of a model repository folder, in the order of the
/// models' names (`mnist` before `mnist-int8`: sorting the file names would
/// put `mnist-int8.onnx` first, since `-` sorts before `.`).
pub fn repository(dir: &Path) -> Result<Vec<ModelSpec>, ServerError> {
    let unreadable =
        |e: std::io::Error| ServerError::Config(format!("--model-repository {}: cannot read it: {e}", dir.display()));
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|ext| ext == "onnx") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(ServerError::Config(format!("--model-repository {}: holds no .onnx file", dir.display())));
    }
    let mut specs = paths.iter().map(|path| ModelSpec::from_path(path)).collect::<Result<Vec<_>, _>>()?;
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(specs)
}

/// Puts `default` (a name) first and checks that names are unique.
pub fn order(mut specs: Vec<ModelSpec>, default: Option<&str>) -> Result<Vec<ModelSpec>, ServerError> {
    for (i, spec) in specs.iter().enumerate() {
        if let Some(other) = specs[..i].iter().find(|other| other.name == spec.name) {
            return Err(ServerError::Config(format!(
                "two models are named '{}' ({} and {}); name one: --model NAME=PATH",
                spec.name,
                other.path.display(),
                spec.path.display()
            )));
        }
    }
    if let Some(name) = default {
        let position = specs.iter().position(|spec| spec.name == name).ok_or_else(|| {
            ServerError::Config(format!("--default-model {name}: no such model; served: {}", names(&specs)))
        })?;
        let spec = specs.remove(position);
        specs.insert(0, spec);
    }
    Ok(specs)
}

fn names(specs: &[ModelSpec]) -> String {
    specs.iter().map(|spec| format!("'{}'", spec.name)).collect::<Vec<_>>().join(", ")
}

/// A served model as every front describes it.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// `mnist.v1`'s description (name, shape, classes, digest, batching, metadata).
    pub info: ModelInfo,
    /// The model's version (the model card's `version`, else "1").
    pub version: String,
}

impl ServedModel {
    /// The first 12 hex digits of the model file's SHA-256 (as answers carry it).
    pub fn sha256_prefix(&self) -> &str {
        self.info.model_sha256.get(..12).unwrap_or(&self.info.model_sha256)
    }

    /// How the model reads numbers, as its ONNX metadata says (cuts when
    /// it says nothing).
    pub fn reading_method(&self) -> Method {
        Method::of_model(&self.info.model_metadata)
    }
}

/// One served model: its file, its description and the batcher that runs it.
pub struct Model {
    spec: ModelSpec,
    batcher: Batcher,
    /// Replaced whole when a new file is swapped in.
    served: RwLock<Arc<ServedModel>>,
}

impl Model {
    /// An entry for the model `spec` names, run by `batcher`, described by `served`.
    pub fn new(spec: ModelSpec, batcher: Batcher, served: ServedModel) -> Self {
        Self { spec, batcher, served: RwLock::new(Arc::new(served)) }
    }

    /// What requests call it.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its file and name.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Its queue and inference thread.
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// How the fronts describe it now.
    pub fn served(&self) -> Arc<ServedModel> {
        Arc::clone(&self.served.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Describes a new file from now on (the batcher runs it from its next batch).
    pub fn set_served(&self, served: ServedModel) {
        *self.served.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(served);
    }
}

/// The model that reads numbers when a request names none and `--read-model`
/// names none either, if it is served: trained to be unsure of what is not
/// one digit (`mnist-train --reading-set`).
pub const READING_MODEL: &str = "mnist-reader";

/// The shipped model that can read each photo too (`--second-read-model`):
/// it reads between cuts where the reading model reads the line whole, and
/// the two go wrong on different photos.
pub const SECOND_READING_MODEL: &str = "mnist-reader-cuts";

/// The shipped single-digit model that checks the digits a window model
/// reads standing alone (`--check-model`), when it is served: the strongest
/// single-digit classifier shipped (`mnist::read::check`).
pub const CHECK_MODEL: &str = "mnist-three-block";

/// The shipped model that classifies photos and scans (image files that
/// preprocessing fits to 28x28) for requests naming no model
/// (`--photo-model`), when it is served: the three-block network
/// fine-tuned on rotated and thickened digits, which reads photos (marker
/// strokes, rotation) better than the reference and costs little there
/// (decoding and preprocessing one takes 15-20 times its inference: about
/// 2 % fewer photos a second, docs/benchmarks.md).
pub const PHOTO_MODEL: &str = "mnist-photo";

/// The served models' names for the roles they play for requests that name
/// no model, as the server was started (`--photo-model`, `--read-model`,
/// `--second-read-model`, `--check-model`); `None` for the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roles<'a> {
    /// The model that classifies photos and scans.
    pub photo: Option<&'a str>,
    /// The model that reads numbers.
    pub read: Option<&'a str>,
    /// The model that reads them too.
    pub second: Option<&'a str>,
    /// The single-digit model that checks the digits standing alone.
    pub check: Option<&'a str>,
}

/// The models that read one photo: each reads it, the surest reading is
/// kept, and `checker`, if any, checks its digits that stand alone.
pub struct Readers<'a> {
    /// At least one.
    pub models: Vec<&'a Arc<Model>>,
    /// The single-digit model that checks the reading.
    pub checker: Option<&'a Arc<Model>>,
}

/// Every served model, the default one first.
pub struct Models {
    entries: Vec<Arc<Model>>,
    /// Index of the model that classifies photos and scans for requests
    /// naming none; `None`: the default model does.
    photo: Option<usize>,
    /// Index of the model `Read` uses when a request names none.
    reader: usize,
    /// Index of the model that reads each such photo too, if any.
    second_reader: Option<usize>,
    /// Index of the single-digit model that checks such readings, if any.
    checker: Option<usize>,
}

impl Models {
    /// The models, the default one first; at least one. For requests
    /// naming no model, `roles.photo` names the one that classifies image
    /// files (default: [`PHOTO_MODEL`] when served; `none`: the default
    /// model); `roles.read` the one that reads numbers (default:
    /// [`READING_MODEL`] when served, else the default model);
    /// `roles.second` the one that reads them too (default and `none`:
    /// none; with the shipped models a second reading costs a second
    /// segmentation and batch for few if any more numbers read right);
    /// `roles.check` the single-digit model that checks their digits
    /// standing alone (default: [`CHECK_MODEL`] when served; `none`: none).
    pub fn new(entries: Vec<Arc<Model>>, roles: Roles<'_>) -> Result<Self, ServerError> {
        let Roles { photo: photo_model, read: read_model, second: second_read_model, check: check_model } = roles;
        if entries.is_empty() {
            return Err(ServerError::Config("no model to serve".into()));
        }
        let position = |name: &str| entries.iter().position(|model| model.name() == name);
        let served = |flag: &str, name: &str| {
            position(name)
                .ok_or_else(|| ServerError::Config(format!("--{flag} '{name}' is not one of the served models")))
        };
        let photo = match photo_model {
            None => position(PHOTO_MODEL),
            Some("none") => None,
            Some(name) => Some(served("photo-model", name)?),
        };
        let reader = match read_model {
            Some(name) => served("read-model", name)?,
            None => position(READING_MODEL).unwrap_or(0),
        };
        let second_reader = match second_read_model {
            None | Some("none") => None,
            Some(name) => Some(served("second-read-model", name)?),
        };
        // A model reading twice would only double the work.
        let second_reader = second_reader.filter(|&second| second != reader);
        let checker = match check_model {
            None => position(CHECK_MODEL),
            Some("none") => None,
            Some(name) => Some(served("check-model", name)?),
        };
        Ok(Self { entries, photo, reader, second_reader, checker })
    }

    /// The model that classifies image files for requests that name none:
    /// the photo model, else the default one.
    pub fn photo_model(&self) -> &Arc<Model> {
        &self.entries[self.photo.unwrap_or(0)]
    }

    /// The model that classifies an image for a request naming `name`: the
    /// one named; for an empty name, the photo model for a `photo` (an
    /// image file preprocessing fits to 28x28), the default model for
    /// MNIST's own form (pixels, a 28x28 image), whose answers stay the
    /// reference's. Photos and scans the photo model reads better.
    pub fn classifier(&self, name: &str, photo: bool) -> Result<&Arc<Model>, ServerError> {
        if name.is_empty() && photo {
            return Ok(self.photo_model());
        }
        self.get(name)
    }

    /// The model `Read` uses for requests that name none.
    pub fn reading_model(&self) -> &Arc<Model> {
        &self.entries[self.reader]
    }

    /// The model that also reads each photo for requests that name none.
    pub fn second_reading_model(&self) -> Option<&Arc<Model>> {
        self.second_reader.map(|index| &self.entries[index])
    }

    /// The single-digit model that checks the digits standing alone of
    /// readings for requests that name no model.
    pub fn check_model(&self) -> Option<&Arc<Model>> {
        self.checker.map(|index| &self.entries[index])
    }

    /// The models that read a photo for a request naming `name`, surest
    /// reading kept: the reading model and the second one for an empty
    /// name, checked by the check model; else the model called `name`
    /// alone, unchecked (a caller naming a model gets that model's reading).
    pub fn readers(&self, name: &str) -> Result<Readers<'_>, ServerError> {
        if name.is_empty() {
            let models = std::iter::once(self.reading_model()).chain(self.second_reading_model()).collect();
            Ok(Readers { models, checker: self.check_model() })
        } else {
            Ok(Readers { models: vec![self.get(name)?], checker: None })
        }
    }

    /// The model requests get when they name none.
    pub fn default_model(&self) -> &Arc<Model> {
        // `new` refuses an empty list.
        &self.entries[0]
    }

    /// The model called `name`; the default one for an empty name;
    /// NOT_FOUND naming the served models otherwise.
    pub fn get(&self, name: &str) -> Result<&Arc<Model>, ServerError> {
        if name.is_empty() {
            return Ok(self.default_model());
        }
        self.entries.iter().find(|model| model.name() == name).ok_or_else(|| {
            ServerError::ModelNotFound(format!(
                "model '{}' is not served; this server serves {}",
                crate::error::quoted(name),
                self.names()
            ))
        })
    }

    /// Every model, the default one first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.entries.iter()
    }

    /// Refuses new images on every model; each inference thread finishes
    /// what is queued, then exits.
    pub fn close(&self) {
        self.entries.iter().for_each(|model| model.batcher().close());
    }

    /// `'mnist', 'mnist-int8'`: for messages.
    pub fn names(&self) -> String {
        self.entries.iter().map(|model| format!("'{}'", model.name())).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ModelSpec {
        ModelSpec::parse(text).unwrap()
    }

    #[test]
    fn a_model_is_named_after_its_file_or_explicitly() {
        assert_eq!(
            spec("models/mnist-int8.onnx"),
            ModelSpec { name: "mnist-int8".into(), path: "models/mnist-int8.onnx".into() }
        );
        assert_eq!(
            spec("fast=models/mnist-int8.onnx"),
            ModelSpec { name: "fast".into(), path: "models/mnist-int8.onnx".into() }
        );
        // An '=' in a directory is part of the path.
        assert_eq!(spec("runs/lr=0.1/mnist.onnx").name, "mnist");
        assert!(ModelSpec::parse("").is_err());
        assert!(ModelSpec::parse("fast=").unwrap_err().to_string().contains("empty"));
        let error = ModelSpec::parse("models/my model.onnx").unwrap_err().to_string();
        assert!(error.contains("--model NAME=models/my model.onnx"), "{error}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("mnist-int8_v2.1").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_names_are_refused_and_the_default_goes_first() {
        let specs = vec![spec("a=x.onnx"), spec("b=y.onnx"), spec("c=z.onnx")];
        let ordered = order(specs.clone(), Some("b")).unwrap();
        assert_eq!(ordered.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(order(specs.clone(), None).unwrap(), specs);
        let error = order(specs.clone(), Some("d")).unwrap_err().to_string();
        assert!(error.contains("'a', 'b', 'c'"), "{error}");
        let error = order(vec![spec("m.onnx"), spec("other/m.onnx")], None).unwrap_err().to_string();
        assert!(error.contains("two models are named 'm'"), "{error}");
    }

    #[test]
    fn a_repository_serves_its_onnx_files_in_model_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["b.onnx", "a-int8.onnx", "a.onnx", "a.json", "notes.txt"] {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("c.onnx")).unwrap();
        let specs = repository(dir.path()).unwrap();
        assert_eq!(specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "a-int8", "b"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(repository(empty.path()).unwrap_err().to_string().contains("no .onnx"));
        assert!(repository(&empty.path().join("missing")).is_err());
    }
}
