//! Export of the trained network to ONNX, without Python.
//!
//! The graph is written node by node from the weights: the same operators
//! PyTorch's exporter emits for this network in inference mode (dropout is
//! the identity there, so it is left out). Input `input` is float32
//! `[N, 1, 28, 28]` of normalized pixels with `N` dynamic; output `logits`
//! is float32 `[N, 10]`. Normalization stays outside the graph and its
//! constants travel in the model's metadata, which the server reads.

pub mod import;
pub mod int8;
pub mod proto;

use std::{collections::BTreeMap, fs, path::Path};

use mnist::{PIXEL_MEAN, PIXEL_STD};
use prost::Message;
use tch::{Device, Kind, Tensor, nn::VarStore};

use self::proto::*;
use crate::{
    Error, Result,
    error::io_error,
    model::{Arch, Layer, batch_norm_name},
};

/// Name of the graph's input.
pub const INPUT_NAME: &str = "input";
/// Name of the graph's output.
pub const OUTPUT_NAME: &str = "logits";
/// ONNX IR version written (ONNX 1.10+, ONNX Runtime 1.10+).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written.
pub const OPSET: i64 = 17;

/// The network's parameters as the exporter writes them: float32 values
/// on the CPU by PyTorch name, with every batch normalization folded into
/// the convolution before it and the temperature folded into the output
/// layer.
#[derive(Debug, Clone)]
pub struct Weights {
    arch: Arch,
    tensors: BTreeMap<String, (Vec<i64>, Vec<f32>)>,
    temperature: f64,
}

/// libtorch's default `eps` of batch normalization (`BatchNormConfig`).
pub(crate) const BATCH_NORM_EPS: f64 = 1e-5;

impl Weights {
    /// Copies the parameters of the `arch` network in `vs`, folding each
    /// batch normalization into its convolution (inference mode: the
    /// running statistics) and dividing the last layer's weights and bias
    /// by `temperature`: the graph then outputs `logits / T` at no cost.
    pub fn from_var_store(vs: &VarStore, arch: Arch, temperature: f64) -> Result<Self> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::Config(format!("temperature must be a positive number, not {temperature}")));
        }
        let vars = vs.variables();
        let get = |name: &str| -> Result<Tensor> {
            Ok(vars
                .get(name)
                .ok_or_else(|| Error::Config(format!("the model has no parameter {name}")))?
                .to_device(Device::Cpu)
                .to_kind(Kind::Double))
        };
        let output_layer = arch.weighted_layers().last();
        let mut tensors = BTreeMap::new();
        for layer in arch.layers() {
            let (is_conv, name) = match layer {
                Layer::Conv(w) => (true, w.name),
                Layer::Dense(w) => (false, w.name),
                _ => continue,
            };
            let (mut weight, mut bias) = (get(&format!("{name}.weight"))?, get(&format!("{name}.bias"))?);
            if is_conv && arch.batch_norm() {
                let bn = batch_norm_name(name);
                let [gamma, beta, mean, var] =
                    ["weight", "bias", "running_mean", "running_var"].map(|part| get(&format!("{bn}.{part}")));
                let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
                let scale = gamma / (var + BATCH_NORM_EPS).sqrt();
                weight = &weight * scale.view([-1, 1, 1, 1]);
                bias = (bias - mean) * &scale + beta;
            }
            if Some(name) == output_layer {
                weight /= temperature;
                bias /= temperature;
            }
            for (part, tensor) in [("weight", weight), ("bias", bias)] {
                let tensor = tensor.to_kind(Kind::Float).contiguous();
                tensors.insert(format!("{name}.{part}"), (tensor.size(), Vec::<f32>::try_from(tensor.flatten(0, -1))?));
            }
        }
        Ok(Self { arch, tensors, temperature })
    }

    /// The architecture the weights belong to.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The temperature folded into the output layer.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// A parameter's dims and values.
    pub fn get(&self, name: &str) -> Result<(&[i64], &[f32])> {
        self.tensors
            .get(name)
            .map(|(dims, values)| (dims.as_slice(), values.as_slice()))
            .ok_or_else(|| Error::Config(format!("the model has no parameter {name}")))
    }

    fn initializer(&self, name: &str) -> Result<TensorProto> {
        let (dims, values) = self.get(name)?;
        Ok(float_tensor(name, dims, values))
    }
}

/// Builds the float ONNX model of the network `weights` belong to, layer
/// by layer. `metadata` is added to the model's properties, after the
/// normalization constants.
pub fn build_model(weights: &Weights, metadata: &BTreeMap<String, String>) -> Result<ModelProto> {
    let arch = weights.arch();
    let initializer =
        arch.parameter_names().iter().map(|name| weights.initializer(name)).collect::<Result<Vec<_>>>()?;
    let layers = arch.layers();
    let mut node = Vec::with_capacity(layers.len());
    let mut value = INPUT_NAME.to_string();
    let mut names = NodeNames::default();
    for (i, layer) in layers.iter().enumerate() {
        let name = names.of(layer);
        let (op, attributes) = operator(layer);
        let output = if i + 1 == layers.len() { OUTPUT_NAME.to_string() } else { format!("{name}_out") };
        let mut inputs = vec![value];
        if let Some(weighted) = layer.weighted() {
            inputs.extend([format!("{}.weight", weighted.name), format!("{}.bias", weighted.name)]);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        node.push(self::node(&name, op, &inputs, &output, attributes));
        value = output;
    }
    let graph = GraphProto {
        node,
        name: "mnist_cnn".into(),
        initializer,
        doc_string: format!("{}; dropout removed for inference.", arch.description()),
        input: vec![tensor_value(INPUT_NAME, &[None, Some(1), Some(28), Some(28)])],
        output: vec![tensor_value(OUTPUT_NAME, &[None, Some(10)])],
    };
    Ok(model_proto(graph, weights, metadata))
}

/// The ONNX operator a layer is written as, with its attributes: the one
/// mapping both the float and the int8 graph use.
fn operator(layer: &Layer) -> (&'static str, Vec<AttributeProto>) {
    match layer {
        Layer::Conv(_) => ("Conv", conv_attributes()),
        Layer::Dense(_) => ("Gemm", vec![int("transB", 1)]),
        Layer::Relu => ("Relu", vec![]),
        Layer::MaxPool => ("MaxPool", pool_attributes()),
        Layer::Flatten => ("Flatten", vec![int("axis", 1)]),
    }
}

/// Node names: a weighted layer is named after its parameters (`conv1`),
/// the others are numbered by kind in graph order (`relu1`, `pool1`, ...).
#[derive(Default)]
struct NodeNames {
    counts: BTreeMap<&'static str, usize>,
}

impl NodeNames {
    fn of(&mut self, layer: &Layer) -> String {
        let kind = match layer {
            Layer::Conv(weighted) | Layer::Dense(weighted) => return weighted.name.to_string(),
            Layer::Relu => "relu",
            Layer::MaxPool => "pool",
            Layer::Flatten => "flatten",
        };
        let count = self.counts.entry(kind).or_default();
        *count += 1;
        format!("{kind}{count}")
    }
}

/// Wraps `graph` in a model with the properties every exported graph
/// carries (normalization, classes, the folded temperature) and `metadata`.
fn model_proto(graph: GraphProto, weights: &Weights, metadata: &BTreeMap<String, String>) -> ModelProto {
    let mut props = vec![
        entry("normalization_mean", &PIXEL_MEAN.to_string()),
        entry("normalization_std", &PIXEL_STD.to_string()),
        entry(
            "input_format",
            "float32 [N,1,28,28]: (pixel / 255 - normalization_mean) / normalization_std, MNIST polarity (ink bright)",
        ),
        entry("classes", "0,1,2,3,4,5,6,7,8,9"),
        entry("temperature", &weights.temperature().to_string()),
    ];
    props.extend(metadata.iter().map(|(k, v)| entry(k, v)));
    ModelProto {
        ir_version: IR_VERSION,
        producer_name: "mnist-train".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        model_version: 1,
        doc_string: "MNIST digit classifier. Input: normalized 28x28 grayscale digits. Output: logits of digits 0-9, \
                     divided by the calibrated temperature (metadata `temperature`)."
            .into(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: props,
    }
}

fn conv_attributes() -> Vec<AttributeProto> {
    vec![
        ints("kernel_shape", &[3, 3]),
        ints("strides", &[1, 1]),
        ints("pads", &[0, 0, 0, 0]),
        ints("dilations", &[1, 1]),
        int("group", 1),
    ]
}

fn pool_attributes() -> Vec<AttributeProto> {
    vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: DATA_TYPE_FLOAT,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Writes the model's protobuf encoding to `path` (via a temporary file).
pub fn write(model: &ModelProto, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let tmp = path.with_extension("onnx.tmp");
    fs::write(&tmp, model.encode_to_vec()).map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: name.to_string(),
        op_type: op.to_string(),
        attribute,
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.to_vec(),
        r#type: AttributeType::Ints as i32,
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: value, r#type: AttributeType::Int as i32, ..Default::default() }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: key.into(), value: value.into() }
}

/// A float tensor value; `None` dimensions are the dynamic batch size `N`.
fn tensor_value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => DimensionValue::DimValue(*n),
                None => DimensionValue::DimParam("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type: DATA_TYPE_FLOAT, shape: Some(TensorShapeProto { dim }) }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::ModuleT;

    use super::*;
    use crate::model::Net;

    #[test]
    fn graph_has_the_contract_and_all_weights() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root(), Arch::Reference);
        let weights = Weights::from_var_store(&vs, Arch::Reference, 1.0).unwrap();
        let model = build_model(&weights, &BTreeMap::from([("test_accuracy".into(), "0.99".into())])).unwrap();
        let bytes = model.encode_to_vec();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = decoded.graph.unwrap();
        assert_eq!(graph.input[0].name, "input");
        assert_eq!(graph.output[0].name, "logits");
        assert_eq!(graph.initializer.len(), 8);
        let weights: usize = graph.initializer.iter().map(|t| t.raw_data.len() / 4).sum();
        assert_eq!(weights, 1_199_882);
        let ops: Vec<_> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Conv", "Relu", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"]);
        // Each node reads the previous one's output.
        for pair in graph.node.windows(2) {
            assert_eq!(pair[1].input[0], pair[0].output[0]);
        }
        assert!(decoded.metadata_props.iter().any(|p| p.key == "normalization_mean" && p.value == "0.1307"));
        assert!(decoded.metadata_props.iter().any(|p| p.key == "test_accuracy"));
        assert!(decoded.opset_import[0].version >= 13);
    }

    #[test]
    fn the_three_block_graph_has_no_batch_norm_node() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root(), Arch::ThreeBlock);
        let weights = Weights::from_var_store(&vs, Arch::ThreeBlock, 1.0).unwrap();
        let graph = build_model(&weights, &BTreeMap::new()).unwrap().graph.unwrap();
        let ops: Vec<_> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            ["Conv", "Relu", "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"]
        );
        assert_eq!(graph.initializer.len(), 10);
        assert_eq!(graph.node.last().unwrap().output[0], OUTPUT_NAME);
    }

    #[test]
    fn batch_norm_folds_into_the_convolution() {
        let vs = VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), Arch::ThreeBlock);
        // Move the running statistics and the affine parameters off their start.
        for _ in 0..3 {
            let _ = net.forward_t(&(Tensor::rand([16, 1, 28, 28], (Kind::Float, Device::Cpu)) * 3.0), true);
        }
        tch::no_grad(|| {
            for (name, value) in vs.variables() {
                if name.starts_with("bn") && (name.ends_with(".weight") || name.ends_with(".bias")) {
                    let mut value = value;
                    value.copy_(&(Tensor::rand(value.size(), (Kind::Float, Device::Cpu)) + 0.5));
                }
            }
        });
        let weights = Weights::from_var_store(&vs, Arch::ThreeBlock, 1.0).unwrap();
        let x = Tensor::rand([4, 1, 28, 28], (Kind::Float, Device::Cpu));
        let tensor = |name: &str| {
            let (dims, values) = weights.get(name).unwrap();
            Tensor::from_slice(values).view(dims)
        };
        let folded = x.conv2d(&tensor("conv1.weight"), Some(&tensor("conv1.bias")), [1, 1], [0, 0], [1, 1], 1);
        let vars = vs.variables();
        let unfolded =
            x.conv2d(&vars["conv1.weight"], Some(&vars["conv1.bias"]), [1, 1], [0, 0], [1, 1], 1).batch_norm(
                Some(&vars["bn1.weight"]),
                Some(&vars["bn1.bias"]),
                Some(&vars["bn1.running_mean"]),
                Some(&vars["bn1.running_var"]),
                false,
                0.1,
                BATCH_NORM_EPS,
                false,
            );
        assert!(folded.allclose(&unfolded, 1e-5, 1e-5, false));
    }

    #[test]
    fn the_temperature_divides_the_last_layer_only() {
        for arch in [Arch::Reference, Arch::ThreeBlock] {
            let vs = VarStore::new(Device::Cpu);
            let _ = Net::new(&vs.root(), arch);
            let plain = Weights::from_var_store(&vs, arch, 1.0).unwrap();
            let folded = Weights::from_var_store(&vs, arch, 0.5).unwrap();
            for name in arch.parameter_names() {
                let (a, b) = (plain.get(&name).unwrap().1, folded.get(&name).unwrap().1);
                let factor = if name.starts_with("fc2.") { 2.0 } else { 1.0 };
                assert!(a.iter().zip(b).all(|(x, y)| (x * factor - y).abs() <= 1e-7), "{name}");
            }
            assert!(Weights::from_var_store(&vs, arch, 0.0).is_err());
            assert!(Weights::from_var_store(&vs, arch, f64::NAN).is_err());
        }
    }
}
