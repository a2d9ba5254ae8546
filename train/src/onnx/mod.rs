//! Export of the trained network to ONNX, without Python.
//!
//! The graph is written node by node from the weights: the same operators
//! PyTorch's exporter emits for this network in inference mode (dropout is
//! the identity there, so it is left out). Input `input` is float32
//! `[N, 1, 28, 28]` of normalized pixels with `N` dynamic; output `logits`
//! is float32 `[N, 10]`. Normalization stays outside the graph and its
//! constants travel in the model's metadata, which the server reads.

pub mod int8;
pub mod proto;

use std::{collections::BTreeMap, fs, path::Path};

use mnist::{PIXEL_MEAN, PIXEL_STD};
use prost::Message;
use tch::{Device, Kind, nn::VarStore};

use self::proto::*;
use crate::{Error, Result, error::io_error};

/// Name of the graph's input.
pub const INPUT_NAME: &str = "input";
/// Name of the graph's output.
pub const OUTPUT_NAME: &str = "logits";
/// ONNX IR version written (ONNX 1.10+, ONNX Runtime 1.10+).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written.
pub const OPSET: i64 = 17;

/// The network's parameters as the exporter writes them: float32 values
/// on the CPU by PyTorch name, with the temperature already folded in.
#[derive(Debug, Clone)]
pub struct Weights {
    tensors: BTreeMap<String, (Vec<i64>, Vec<f32>)>,
    temperature: f64,
}

impl Weights {
    /// Copies `vs`'s parameters, dividing the last layer's weights and bias
    /// by `temperature`: the graph then outputs `logits / T` at no cost.
    pub fn from_var_store(vs: &VarStore, temperature: f64) -> Result<Self> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::Config(format!("temperature must be a positive number, not {temperature}")));
        }
        let vars = vs.variables();
        let tensors = crate::model::PARAMETER_NAMES
            .iter()
            .map(|name| {
                let mut tensor = vars
                    .get(*name)
                    .ok_or_else(|| Error::Config(format!("the model has no parameter {name}")))?
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous();
                if name.starts_with("fc2.") {
                    // Not in place: the tensor may share the variable's storage.
                    tensor = tensor.divide_scalar(temperature);
                }
                Ok((name.to_string(), (tensor.size(), Vec::<f32>::try_from(tensor.flatten(0, -1))?)))
            })
            .collect::<Result<_>>()?;
        Ok(Self { tensors, temperature })
    }

    /// The temperature folded into `fc2`.
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

/// Builds the float ONNX model of the reference network from `weights`.
/// `metadata` is added to the model's properties, after the normalization
/// constants.
pub fn build_model(weights: &Weights, metadata: &BTreeMap<String, String>) -> Result<ModelProto> {
    let initializer =
        crate::model::PARAMETER_NAMES.iter().map(|name| weights.initializer(name)).collect::<Result<Vec<_>>>()?;
    let node = vec![
        node("conv1", "Conv", &[INPUT_NAME, "conv1.weight", "conv1.bias"], "conv1_out", conv_attributes()),
        node("relu1", "Relu", &["conv1_out"], "relu1_out", vec![]),
        node("conv2", "Conv", &["relu1_out", "conv2.weight", "conv2.bias"], "conv2_out", conv_attributes()),
        node("relu2", "Relu", &["conv2_out"], "relu2_out", vec![]),
        node("pool", "MaxPool", &["relu2_out"], "pool_out", pool_attributes()),
        node("flatten", "Flatten", &["pool_out"], "flat", vec![int("axis", 1)]),
        node("fc1", "Gemm", &["flat", "fc1.weight", "fc1.bias"], "fc1_out", vec![int("transB", 1)]),
        node("relu3", "Relu", &["fc1_out"], "relu3_out", vec![]),
        node("fc2", "Gemm", &["relu3_out", "fc2.weight", "fc2.bias"], OUTPUT_NAME, vec![int("transB", 1)]),
    ];
    let graph = GraphProto {
        node,
        name: "mnist_cnn".into(),
        initializer,
        doc_string: "Reference MNIST CNN (conv 32, conv 64, maxpool, fc 128, fc 10); dropout removed for inference."
            .into(),
        input: vec![tensor_value(INPUT_NAME, &[None, Some(1), Some(28), Some(28)])],
        output: vec![tensor_value(OUTPUT_NAME, &[None, Some(10)])],
    };
    Ok(model_proto(graph, weights, metadata))
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
    use super::*;
    use crate::model::Net;

    #[test]
    fn graph_has_the_contract_and_all_weights() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root());
        let weights = Weights::from_var_store(&vs, 1.0).unwrap();
        let model = build_model(&weights, &BTreeMap::from([("test_accuracy".into(), "0.99".into())])).unwrap();
        let bytes = model.encode_to_vec();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = decoded.graph.unwrap();
        assert_eq!(graph.input[0].name, "input");
        assert_eq!(graph.output[0].name, "logits");
        assert_eq!(graph.initializer.len(), 8);
        let weights: usize = graph.initializer.iter().map(|t| t.raw_data.len() / 4).sum();
        assert_eq!(weights, 1_199_882);
        assert!(!graph.node.iter().any(|n| n.op_type == "Dropout"));
        assert!(decoded.metadata_props.iter().any(|p| p.key == "normalization_mean" && p.value == "0.1307"));
        assert!(decoded.metadata_props.iter().any(|p| p.key == "test_accuracy"));
        assert!(decoded.opset_import[0].version >= 13);
    }

    #[test]
    fn the_temperature_divides_the_last_layer_only() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root());
        let plain = Weights::from_var_store(&vs, 1.0).unwrap();
        let folded = Weights::from_var_store(&vs, 0.5).unwrap();
        for name in crate::model::PARAMETER_NAMES {
            let (a, b) = (plain.get(name).unwrap().1, folded.get(name).unwrap().1);
            let factor = if name.starts_with("fc2.") { 2.0 } else { 1.0 };
            assert!(a.iter().zip(b).all(|(x, y)| (x * factor - y).abs() <= 1e-7), "{name}");
        }
        assert!(Weights::from_var_store(&vs, 0.0).is_err());
        assert!(Weights::from_var_store(&vs, f64::NAN).is_err());
    }
}
