//! The way back: a float ONNX model this trainer exported, turned into
//! trainable weights, so that a shipped model can be fine-tuned
//! (`mnist-train train --init models/NAME.onnx`) when its run directory is
//! gone.
//!
//! Export folds two things into the graph that training keeps apart; both
//! are undone here:
//! - **The temperature** divides the output layer. Its value travels in the
//!   model's metadata (`temperature`), so the output layer is multiplied
//!   back: the network then outputs the logits it was trained to.
//! - **Batch normalization** is folded into each convolution, its four
//!   vectors lost. The convolution takes the folded weights, and the
//!   normalization after it is set so that it changes nothing: in inference
//!   mode exactly (its running statistics are the convolution's own output
//!   statistics and its scale and shift give them back), and in training
//!   mode on batches like the calibration inputs (which normalize with
//!   their own statistics, close to those). The statistics are measured on
//!   `calibration`, inputs of the kind the run trains on (digits, or strips
//!   for a window model); without it the first training steps would start
//!   from another function than the model's.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use prost::Message;
use tch::{Device, Kind, Tensor, nn::VarStore};

use super::{
    BATCH_NORM_EPS,
    proto::{DATA_TYPE_FLOAT, ModelProto},
};
use crate::{
    Error, Result,
    checkpoint::copy_into,
    error::io_error,
    model::{Arch, Layer, Net, batch_norm_name},
};

/// The parameters of an exported float model, batch normalization still
/// folded in but the temperature taken out of the output layer.
#[derive(Debug)]
pub struct Imported {
    path: PathBuf,
    arch: Arch,
    tensors: HashMap<String, Tensor>,
    temperature: f64,
}

impl Imported {
    /// Reads the model at `path`. Only float graphs this trainer wrote are
    /// understood: their initializers are the network's parameters by name.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(io_error(path))?;
        let invalid = |reason: String| Error::Checkpoint { path: path.to_path_buf(), reason };
        let model = ModelProto::decode(bytes.as_slice()).map_err(|e| invalid(format!("not an ONNX model ({e})")))?;
        let graph = model.graph.ok_or_else(|| invalid("the ONNX model has no graph".into()))?;
        let arch = [Arch::Reference, Arch::ThreeBlock]
            .into_iter()
            .find(|arch| {
                let mut names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
                names.sort_unstable();
                let mut wanted = arch.parameter_names();
                wanted.sort_unstable();
                names == wanted.iter().map(String::as_str).collect::<Vec<_>>()
            })
            .ok_or_else(|| {
                invalid(
                    "its initializers are not the parameters of a network mnist-train exports \
                     (an int8 model cannot be fine-tuned: use the float one)"
                        .into(),
                )
            })?;
        let temperature = match model.metadata_props.iter().find(|p| p.key == "temperature") {
            Some(prop) => prop
                .value
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0)
                .ok_or_else(|| invalid(format!("metadata temperature {:?} is not a positive number", prop.value)))?,
            None => 1.0,
        };
        let mut tensors = HashMap::new();
        for init in &graph.initializer {
            let count: i64 = init.dims.iter().product();
            if init.data_type != DATA_TYPE_FLOAT || init.raw_data.len() as i64 != count * 4 {
                return Err(invalid(format!("initializer {} is not {count} float32 values", init.name)));
            }
            let values: Vec<f32> =
                init.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            tensors.insert(init.name.clone(), Tensor::from_slice(&values).view(init.dims.as_slice()));
        }
        // The output layer was divided by the temperature on export.
        if let Some(last) = arch.weighted_layers().last() {
            for part in ["weight", "bias"] {
                if let Some(tensor) = tensors.get_mut(&format!("{last}.{part}")) {
                    *tensor = &*tensor * temperature;
                }
            }
        }
        Ok(Self { path: path.to_path_buf(), arch, tensors, temperature })
    }

    /// The architecture the model was exported from.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The temperature that was folded into the output layer.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// Copies the parameters into `vs`, the variables of `net`, which must
    /// be of the same architecture; with batch normalization, sets each one
    /// to pass its convolution's output through unchanged, measured on
    /// `calibration` (normalized inputs, `[N, 1, 28, W]`).
    pub fn load_into(&self, vs: &mut VarStore, net: &Net, calibration: &Tensor) -> Result<()> {
        if net.arch() != self.arch {
            return Err(Error::Config(format!(
                "the ONNX model is a {:?} network and the run trains a {:?} one (set --arch to match)",
                self.arch,
                net.arch()
            )));
        }
        let mut tensors: HashMap<String, Tensor> =
            self.tensors.iter().map(|(name, tensor)| (name.clone(), tensor.shallow_clone())).collect();
        if !self.arch.batch_norm() {
            return copy_into(vs, &tensors, &self.path);
        }
        // First the identity in inference mode (mean 0, variance 1 - eps,
        // scale 1, shift 0), so that the network computes the ONNX graph;
        // then each convolution's output statistics on the calibration
        // inputs, through that network.
        let convs: Vec<&str> = self
            .arch
            .layers()
            .iter()
            .filter_map(|l| if let Layer::Conv(w) = l { Some(w.name) } else { None })
            .collect();
        for conv in &convs {
            let bn = batch_norm_name(conv);
            let channels = self.tensors[&format!("{conv}.bias")].size()[0];
            let options = (Kind::Float, Device::Cpu);
            tensors.insert(format!("{bn}.running_mean"), Tensor::zeros([channels], options));
            tensors.insert(format!("{bn}.running_var"), Tensor::full([channels], 1.0 - BATCH_NORM_EPS, options));
            tensors.insert(format!("{bn}.weight"), Tensor::ones([channels], options));
            tensors.insert(format!("{bn}.bias"), Tensor::zeros([channels], options));
        }
        copy_into(vs, &tensors, &self.path)?;
        let outputs = tch::no_grad(|| net.conv_outputs(&calibration.to_device(vs.device()), false));
        for (conv, output) in convs.iter().zip(&outputs) {
            let bn = batch_norm_name(conv);
            let output = output.to_kind(Kind::Double).to_device(Device::Cpu);
            let mean = output.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Double);
            let var = output.var_dim([0i64, 2, 3].as_slice(), false, false);
            // Eval: scale * (y - mean) / sqrt(var + eps) + shift = y.
            let scale = (&var + BATCH_NORM_EPS).sqrt();
            for (part, value) in [("running_mean", &mean), ("running_var", &var), ("weight", &scale), ("bias", &mean)] {
                tensors.insert(format!("{bn}.{part}"), value.to_kind(Kind::Float));
            }
        }
        copy_into(vs, &tensors, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tch::nn::ModuleT;

    use super::*;
    use crate::onnx::{Weights, build_model, write};

    fn exported(arch: Arch, temperature: f64, dir: &Path) -> (VarStore, Net, std::path::PathBuf) {
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), arch);
        // Running statistics other than 0 and 1, as a trained network has.
        for (name, var) in vs.variables() {
            if name.contains("running") {
                let mut var = var.shallow_clone();
                tch::no_grad(|| var.copy_(&(Tensor::rand_like(&var) + 0.5)));
            }
        }
        let weights = Weights::from_var_store(&vs, arch, temperature).unwrap();
        let path = dir.join("model.onnx");
        write(&build_model(&weights, &BTreeMap::new()).unwrap(), &path).unwrap();
        (vs, net, path)
    }

    /// A fresh `arch` network with the model at `path` imported into it.
    fn imported_net(path: &Path, arch: Arch, calibration: &Tensor) -> Result<(VarStore, Net)> {
        let mut vs = VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), arch);
        Imported::read(path)?.load_into(&mut vs, &net, calibration)?;
        Ok((vs, net))
    }

    fn images(n: i64) -> Tensor {
        tch::manual_seed(5);
        Tensor::randn([n, 1, 28, 28], (Kind::Float, Device::Cpu))
    }

    #[test]
    fn an_imported_model_computes_what_was_exported_with_the_temperature_taken_back_out() {
        for arch in [Arch::Reference, Arch::ThreeBlock] {
            let dir = tempfile::tempdir().unwrap();
            let (_, original, path) = exported(arch, 1.7, dir.path());
            let imported = Imported::read(&path).unwrap();
            assert_eq!(imported.arch(), arch);
            assert!((imported.temperature() - 1.7).abs() < 1e-12);

            let (_, net) = imported_net(&path, arch, &images(64)).unwrap();
            let xs = images(16);
            let (want, got) = (original.forward_t(&xs, false), net.forward_t(&xs, false));
            let diff = (&want - &got).abs().max().double_value(&[]);
            assert!(diff < 1e-3, "{arch:?}: logits differ by {diff}");
        }
    }

    #[test]
    fn training_mode_starts_from_the_same_function_on_inputs_like_the_calibration() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, path) = exported(Arch::ThreeBlock, 1.0, dir.path());
        let calibration = images(64);
        let (_, net) = imported_net(&path, Arch::ThreeBlock, &calibration).unwrap();
        // Training mode normalizes with the batch's own statistics: on the
        // calibration batch they are the measured ones, so every
        // convolution receives and gives what it does in inference mode.
        let (eval, train) =
            tch::no_grad(|| (net.conv_outputs(&calibration, false), net.conv_outputs(&calibration, true)));
        for (i, (eval, train)) in eval.iter().zip(&train).enumerate() {
            let diff = (eval - train).abs().max().double_value(&[]);
            assert!(diff < 1e-3, "conv{}: training mode differs by {diff}", i + 1);
        }
    }

    #[test]
    fn a_model_of_another_network_or_not_an_onnx_model_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, path) = exported(Arch::Reference, 1.0, dir.path());
        let err = imported_net(&path, Arch::ThreeBlock, &images(4)).unwrap_err();
        assert!(err.to_string().contains("--arch"), "{err}");

        let junk = dir.path().join("junk.onnx");
        fs::write(&junk, b"\x0a\xff\xff not a model").unwrap();
        let err = Imported::read(&junk).unwrap_err();
        assert!(err.to_string().contains("junk.onnx"), "{err}");
    }
}
