//! Saving and restoring weights and whole runs in safetensors files.
//!
//! A checkpoint holds the weights, the optimizer state and, in the file's
//! metadata, the run's progress, all in one file written to a temporary
//! name and renamed into place: an interruption at any moment leaves either
//! the previous checkpoint or the new one, never a mix.

use std::{
    borrow::Cow,
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use safetensors::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor, nn::VarStore};

use crate::{Error, Result, error::io_error, optim::Optimizer, recipe::Recipe, record::Progress};

const PROGRESS_KEY: &str = "mnist_train_progress";
const RECIPE_KEY: &str = "mnist_train_recipe";

/// The checkpoint file of a run directory.
pub fn checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint.safetensors")
}

/// Saves weights, optimizer state and progress atomically.
pub fn save(path: &Path, vs: &VarStore, optimizer: &Optimizer, progress: &Progress) -> Result<()> {
    let mut tensors = named_variables(vs);
    tensors.extend(optimizer.state_tensors());
    let json = serde_json::to_string(progress).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(path, &tensors, HashMap::from([(PROGRESS_KEY.to_string(), json)]))
}

/// Restores a checkpoint into `vs` and `optimizer`, returning its progress.
pub fn load(path: &Path, vs: &mut VarStore, optimizer: &mut Optimizer) -> Result<Progress> {
    let (tensors, metadata) = read(path)?;
    let progress: Progress = metadata
        .get(PROGRESS_KEY)
        .ok_or_else(|| checkpoint_error(path, "no progress record: not a mnist-train checkpoint"))
        .and_then(|json| serde_json::from_str(json).map_err(|e| checkpoint_error(path, &e.to_string())))?;
    copy_into(vs, &tensors, path)?;
    optimizer.load_state(&tensors, progress.steps).map_err(|e| checkpoint_error(path, &e.to_string()))?;
    Ok(progress)
}

/// Saves only the weights (PyTorch's parameter names), with the recipe.
pub fn save_weights(path: &Path, vs: &VarStore, recipe: &Recipe) -> Result<()> {
    let json = serde_json::to_string(recipe).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(path, &named_variables(vs), HashMap::from([(RECIPE_KEY.to_string(), json)]))
}

/// Loads weights saved by [`save_weights`] or [`save`] into `vs`.
pub fn load_weights(path: &Path, vs: &mut VarStore) -> Result<()> {
    let (tensors, _) = read(path)?;
    copy_into(vs, &tensors, path)
}

fn named_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Copies `tensors` (read from `path`) into every variable of `vs`, after
/// checking that each is there with the variable's shape; errors name
/// every problem and `path`.
pub(crate) fn copy_into(vs: &mut VarStore, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let device = vs.device();
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    // Check everything before copying anything, and name every problem.
    let problems: Vec<String> = variables
        .iter()
        .filter_map(|(name, var)| match tensors.get(name) {
            None => Some(format!("tensor {name} missing")),
            Some(saved) if saved.size() != var.size() => {
                Some(format!("tensor {name} has shape {:?}, the model needs {:?}", saved.size(), var.size()))
            }
            Some(_) => None,
        })
        .collect();
    if !problems.is_empty() {
        return Err(checkpoint_error(path, &problems.join("; ")));
    }
    for (name, mut var) in variables {
        tch::no_grad(|| var.copy_(&tensors[&name].to(device)));
    }
    Ok(())
}

fn checkpoint_error(path: &Path, reason: &str) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), reason: reason.to_string() }
}

/// An f32 tensor copied to the CPU, in the form safetensors serialises.
struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl F32View {
    fn new(tensor: &Tensor) -> Result<Self> {
        let cpu = tensor.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let shape = cpu.size().iter().map(|&d| d as usize).collect();
        let values = Vec::<f32>::try_from(cpu.flatten(0, -1))?;
        Ok(Self { shape, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() })
    }
}

impl View for &F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn write_atomic(path: &Path, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let views = tensors.iter().map(|(n, t)| Ok((n.clone(), F32View::new(t)?))).collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), Some(metadata))
        .map_err(|e| checkpoint_error(path, &e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))
}

type Loaded = (HashMap<String, Tensor>, HashMap<String, String>);

fn read(path: &Path) -> Result<Loaded> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| checkpoint_error(path, &e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| checkpoint_error(path, &e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(checkpoint_error(path, &format!("tensor {name} is {:?}, expected F32", view.dtype())));
        }
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        tensors.insert(name, Tensor::from_slice(&values).view(shape.as_slice()));
    }
    Ok((tensors, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Net;

    #[test]
    fn weights_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root(), crate::model::Arch::ThreeBlock);
        save_weights(&path, &vs, &Recipe::default()).unwrap();
        let mut other = VarStore::new(Device::Cpu);
        let _ = Net::new(&other.root(), crate::model::Arch::ThreeBlock);
        load_weights(&path, &mut other).unwrap();
        let (a, b) = (vs.variables(), other.variables());
        assert!(a.iter().all(|(k, t)| t.equal(&b[k])));
    }

    #[test]
    fn wrong_or_corrupt_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        fs::write(&path, b"garbage").unwrap();
        let mut vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root(), crate::model::Arch::ThreeBlock);
        let err = load_weights(&path, &mut vs).unwrap_err();
        assert!(matches!(err, Error::Checkpoint { .. }), "{err}");

        // Weights of another shape.
        let small = VarStore::new(Device::Cpu);
        let _ = small.root().sub("conv1").zeros("weight", &[1]);
        save_weights(&path, &small, &Recipe::default()).unwrap();
        let err = load_weights(&path, &mut vs).unwrap_err().to_string();
        assert!(err.contains("conv1.weight"), "{err}");
    }
}
