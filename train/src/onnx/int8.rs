//! The int8 graph: post-training static quantization in the QDQ format.
//!
//! Every weighted layer (conv1, conv2, fc1, fc2) reads its input through a
//! QuantizeLinear/DequantizeLinear pair with a scale calibrated on training
//! images, and its weights and bias through DequantizeLinear from int8
//! (per output channel, symmetric) and int32 initializers. The graph stays
//! a float graph that any ONNX runtime can run; ONNX Runtime's QDQ
//! transformers recognise the pattern and run QLinearConv and QGemm with
//! integer arithmetic (VNNI where the CPU has it). The layout follows ONNX
//! Runtime's own quantizer (`quantize_static`, QDQ, per-channel), so its
//! fusions apply:
//!
//! - activations are uint8 (u8 x s8 is the fast path of its x86 kernels);
//!   ReLU outputs use zero point 0, which lets the runtime drop the ReLU
//!   into the quantization (`Relu -> QuantizeLinear` with zero point 0 is
//!   the same clamp);
//! - MaxPool and Flatten sit between Q/DQ pairs of one scale, so they run
//!   on the uint8 tensor;
//! - the output stays float: the last Gemm dequantizes into `logits`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    INPUT_NAME, NodeNames, OUTPUT_NAME, Weights, float_tensor, int, model_proto, node, operator, proto::*, tensor_value,
};
use crate::{Error, Result, model::Layer};

/// The smallest and largest value a layer's input took on the calibration
/// images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
}

impl Range {
    /// The uint8 affine quantization covering this range: `(scale, zero
    /// point)`. The range is widened to include 0 so that zero (ReLU's
    /// floor) is represented exactly, as ONNX Runtime's quantizer does.
    pub fn uint8_parameters(&self) -> Result<(f32, u8)> {
        let (min, max) = (self.min.min(0.0), self.max.max(0.0));
        if !(min.is_finite() && max.is_finite()) || max - min <= f32::EPSILON {
            return Err(Error::Config(format!("cannot quantize the activation range [{}, {}]", self.min, self.max)));
        }
        let scale = (max - min) / 255.0;
        let zero_point = (-min / scale).round().clamp(0.0, 255.0) as u8;
        Ok((scale, zero_point))
    }
}

/// The calibrated input range of each weighted layer, by layer name:
/// `conv1` reads the normalized image; a layer after max pooling reads what
/// the pooling picked, so its range is also the scale of the ReLU output
/// before the pooling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActivationRanges(pub BTreeMap<String, Range>);

impl ActivationRanges {
    /// The input range of layer `name`.
    pub fn get(&self, name: &str) -> Result<Range> {
        self.0.get(name).copied().ok_or_else(|| Error::Config(format!("no calibrated input range for layer {name}")))
    }
}

/// Symmetric int8 quantization per output channel (the first dimension):
/// `(values, one scale per channel)`. The range is [-127, 127], as ONNX
/// Runtime's quantizer uses for weights, so that negating never overflows.
pub fn quantize_per_channel(values: &[f32], channels: usize) -> Result<(Vec<i8>, Vec<f32>)> {
    if channels == 0 || !values.len().is_multiple_of(channels) {
        return Err(Error::Config(format!("{} weights do not split into {channels} channels", values.len())));
    }
    let per_channel = values.len() / channels;
    let mut quantized = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(channels);
    for channel in values.chunks(per_channel) {
        let largest = channel.iter().fold(0f32, |m, v| m.max(v.abs()));
        // An all-zero channel keeps a harmless positive scale.
        let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        quantized.extend(channel.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    Ok((quantized, scales))
}

/// The bias in int32 at scale `input_scale * weight_scale[c]`, the
/// accumulator's scale, so that the runtime adds it to the integer sums.
pub fn quantize_bias(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = weight_scales.iter().map(|w| w * input_scale).collect();
    let quantized = bias
        .iter()
        .zip(&scales)
        .map(|(b, s)| (f64::from(*b) / f64::from(*s)).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
        .collect();
    (quantized, scales)
}

/// Builds the int8 QDQ model from the float `weights` and the calibrated
/// `ranges`, layer by layer; same input, output and metadata contract as
/// the float model.
pub fn build_int8_model(
    weights: &Weights,
    ranges: &ActivationRanges,
    metadata: &BTreeMap<String, String>,
) -> Result<ModelProto> {
    let arch = weights.arch();
    let layers = arch.layers();
    // The range each value is quantized over: that of the next weighted
    // layer, which is what eventually reads it.
    let next_weighted = |from: usize| layers[from..].iter().find_map(|layer| layer.weighted().map(|w| w.name));
    let mut graph = Int8Graph::default();
    let first = next_weighted(0).ok_or_else(|| Error::Config("the network has no weighted layer".into()))?;
    let mut range = ranges.get(first)?;
    let mut value = graph.quantized_activation("input", INPUT_NAME, range)?;
    let mut names = NodeNames::default();
    for (i, layer) in layers.iter().enumerate() {
        let name = names.of(layer);
        let (op, attributes) = operator(layer);
        value = match layer.weighted() {
            Some(_) => graph.layer(&name, op, &value, weights, attributes)?,
            None => {
                let output = format!("{name}_out");
                graph.nodes.push(node(&name, op, &[&value], &output, attributes));
                // After a ReLU, a new scale: the next layer's input range.
                // Pooling and flattening only move uint8 values around, so
                // they keep their input's scale.
                let scale_from = match layer {
                    Layer::Relu => next_weighted(i).map(|next| ranges.get(next)).transpose()?,
                    _ => Some(range),
                };
                match scale_from {
                    Some(next) => {
                        range = next;
                        graph.quantized_activation(&name, &output, range)?
                    }
                    // No weighted layer reads it: it stays float.
                    None => output,
                }
            }
        };
    }
    graph.nodes.push(node("output", "Identity", &[&value], OUTPUT_NAME, vec![]));

    let graph = GraphProto {
        node: graph.nodes,
        name: "mnist_cnn_int8".into(),
        initializer: graph.initializers,
        doc_string: format!(
            "{}, int8 QDQ: per-channel int8 weights, uint8 activations calibrated on training images; dropout \
             removed for inference.",
            arch.description()
        ),
        input: vec![tensor_value(INPUT_NAME, &[None, Some(1), Some(28), Some(28)])],
        output: vec![tensor_value(OUTPUT_NAME, &[None, Some(10)])],
    };
    let mut metadata = metadata.clone();
    metadata.insert("quantization".into(), "int8 QDQ: per-channel symmetric int8 weights, uint8 activations".into());
    Ok(model_proto(graph, weights, &metadata))
}

/// Nodes and initializers, with the scale each quantized activation got.
#[derive(Default)]
struct Int8Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Scale of each quantized activation, by the name of its dequantized value.
    scales: BTreeMap<String, f32>,
}

impl Int8Graph {
    /// Quantizes `value` to uint8 over `range` and dequantizes it again;
    /// returns the name of the dequantized value.
    fn quantized_activation(&mut self, prefix: &str, value: &str, range: Range) -> Result<String> {
        let (scale, zero_point) = range.uint8_parameters()?;
        let (scale_name, zero_name) = (format!("{prefix}_scale"), format!("{prefix}_zero_point"));
        self.initializers.push(float_tensor(&scale_name, &[], &[scale]));
        self.initializers.push(TensorProto {
            dims: vec![],
            data_type: DATA_TYPE_UINT8,
            name: zero_name.clone(),
            raw_data: vec![zero_point],
        });
        let (quantized, dequantized) = (format!("{prefix}_quantized"), format!("{prefix}_dequantized"));
        self.nodes.push(node(
            &format!("{prefix}_quantize"),
            "QuantizeLinear",
            &[value, &scale_name, &zero_name],
            &quantized,
            vec![],
        ));
        self.nodes.push(node(
            &format!("{prefix}_dequantize"),
            "DequantizeLinear",
            &[&quantized, &scale_name, &zero_name],
            &dequantized,
            vec![],
        ));
        self.scales.insert(dequantized.clone(), scale);
        Ok(dequantized)
    }

    /// The layer `name` (`Conv` or `Gemm`) on the dequantized `input`, with
    /// int8 weights and int32 bias dequantized per output channel; returns
    /// the name of its float output.
    fn layer(
        &mut self,
        name: &str,
        op: &str,
        input: &str,
        weights: &Weights,
        attributes: Vec<AttributeProto>,
    ) -> Result<String> {
        let input_scale =
            *self.scales.get(input).ok_or_else(|| Error::Config(format!("{name}'s input {input} is not quantized")))?;
        let (dims, values) = weights.get(&format!("{name}.weight"))?;
        let channels = dims.first().copied().unwrap_or(0) as usize;
        let (weight_q, weight_scales) = quantize_per_channel(values, channels)?;
        let (_, bias) = weights.get(&format!("{name}.bias"))?;
        let (bias_q, bias_scales) = quantize_bias(bias, input_scale, &weight_scales);

        let weight = self.per_channel(
            &format!("{name}.weight"),
            TensorProto {
                dims: dims.to_vec(),
                data_type: DATA_TYPE_INT8,
                name: format!("{name}.weight_quantized"),
                raw_data: weight_q.iter().map(|v| *v as u8).collect(),
            },
            &weight_scales,
            Some(DATA_TYPE_INT8),
        );
        let bias = self.per_channel(
            &format!("{name}.bias"),
            TensorProto {
                dims: vec![channels as i64],
                data_type: DATA_TYPE_INT32,
                name: format!("{name}.bias_quantized"),
                raw_data: bias_q.iter().flat_map(|v| v.to_le_bytes()).collect(),
            },
            &bias_scales,
            None,
        );
        let output = format!("{name}_out");
        self.nodes.push(node(name, op, &[input, &weight, &bias], &output, attributes));
        Ok(output)
    }

    /// Adds the quantized initializer and a DequantizeLinear on axis 0 with
    /// one scale (and, when `zero_type` is given, a zero zero-point) per
    /// channel; returns the dequantized value's name.
    fn per_channel(&mut self, name: &str, quantized: TensorProto, scales: &[f32], zero_type: Option<i32>) -> String {
        let channels = scales.len() as i64;
        let scale_name = format!("{name}_scale");
        self.initializers.push(float_tensor(&scale_name, &[channels], scales));
        let mut inputs = vec![quantized.name.clone(), scale_name];
        if let Some(data_type) = zero_type {
            let zero_name = format!("{name}_zero_point");
            self.initializers.push(TensorProto {
                dims: vec![channels],
                data_type,
                name: zero_name.clone(),
                raw_data: vec![0; scales.len()],
            });
            inputs.push(zero_name);
        }
        self.initializers.push(quantized);
        let output = format!("{name}_dequantized");
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.nodes.push(node(
            &format!("{name}_dequantize"),
            "DequantizeLinear",
            &inputs,
            &output,
            vec![int("axis", 0)],
        ));
        output
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tch::{Device, nn::VarStore};

    use super::*;
    use crate::model::{Arch, Net};

    #[test]
    fn per_channel_weights_round_trip_within_half_a_step() {
        let values = [0.5, -1.0, 0.25, 0.0, 0.02, -0.01, 0.0, 0.0];
        let (q, scales) = quantize_per_channel(&values, 4).unwrap();
        assert_eq!(q[..2], [64, -127]);
        assert_eq!((scales[1], scales[2]), (0.25 / 127.0, 0.02 / 127.0));
        assert_eq!((q[6], q[7], scales[3]), (0, 0, 1.0), "an all-zero channel");
        for (i, (v, q)) in values.iter().zip(&q).enumerate() {
            let scale = scales[i / 2];
            assert!((v - f32::from(*q) * scale).abs() <= scale / 2.0 + 1e-9, "weight {i}");
        }
        assert!(quantize_per_channel(&values, 3).is_err());
    }

    #[test]
    fn activation_ranges_include_zero_and_map_it_exactly() {
        let (scale, zero) = Range { min: 0.0, max: 5.1 }.uint8_parameters().unwrap();
        assert_eq!((scale, zero), (0.02, 0));
        let (scale, zero) = Range { min: -0.4242, max: 2.8215 }.uint8_parameters().unwrap();
        assert!((f32::from(zero) * scale - 0.4242).abs() < scale, "zero point {zero}");
        assert_eq!(Range { min: 1.0, max: 2.0 }.uint8_parameters().unwrap().1, 0);
        assert!(Range { min: 0.0, max: 0.0 }.uint8_parameters().is_err());
        assert!(Range { min: 0.0, max: f32::NAN }.uint8_parameters().is_err());
    }

    #[test]
    fn bias_is_at_the_accumulators_scale() {
        let (q, scales) = quantize_bias(&[0.3, -0.06], 0.1, &[0.01, 0.02]);
        assert_eq!(q, [300, -30]);
        assert!((scales[0] - 0.001).abs() < 1e-9);
    }

    fn ranges(arch: Arch) -> ActivationRanges {
        ActivationRanges(
            arch.weighted_layers()
                .enumerate()
                .map(|(i, name)| {
                    let min = if i == 0 { -0.42 } else { 0.0 };
                    (name.to_string(), Range { min, max: 3.0 * (i + 1) as f32 })
                })
                .collect(),
        )
    }

    #[test]
    fn graph_quantizes_every_weighted_layer_and_keeps_the_contract() {
        for (arch, layers, quantize_nodes, parameters) in
            [(Arch::Reference, 4, 6, 1_199_648), (Arch::ThreeBlock, 5, 8, 503_328)]
        {
            let vs = VarStore::new(Device::Cpu);
            let _ = Net::new(&vs.root(), arch);
            let weights = Weights::from_var_store(&vs, arch, 1.0).unwrap();
            let model = build_int8_model(&weights, &ranges(arch), &BTreeMap::new()).unwrap();
            let decoded = ModelProto::decode(model.encode_to_vec().as_slice()).unwrap();
            let graph = decoded.graph.unwrap();
            assert_eq!((graph.input[0].name.as_str(), graph.output[0].name.as_str()), ("input", "logits"));
            let count = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
            assert_eq!((count("Conv") + count("Gemm"), count("QuantizeLinear")), (layers, quantize_nodes), "{arch:?}");
            // Every weighted layer, pooling and flattening reads its input
            // (and weights) through DequantizeLinear.
            let producers: BTreeMap<&str, &str> =
                graph.node.iter().map(|n| (n.output[0].as_str(), n.op_type.as_str())).collect();
            for layer in
                graph.node.iter().filter(|n| ["Conv", "Gemm", "MaxPool", "Flatten"].contains(&n.op_type.as_str()))
            {
                for input in &layer.input {
                    assert_eq!(producers.get(input.as_str()), Some(&"DequantizeLinear"), "{}: {input}", layer.name);
                }
            }
            let int8_weights: usize = graph
                .initializer
                .iter()
                .filter(|t| t.data_type == DATA_TYPE_INT8 && t.dims.len() > 1)
                .map(|t| t.raw_data.len())
                .sum();
            assert_eq!(int8_weights, parameters, "{arch:?}: every weight in int8 (biases are int32)");
            assert!(decoded.metadata_props.iter().any(|p| p.key == "quantization"));
        }
    }

    #[test]
    fn a_missing_range_is_an_error() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root(), Arch::ThreeBlock);
        let weights = Weights::from_var_store(&vs, Arch::ThreeBlock, 1.0).unwrap();
        let mut ranges = ranges(Arch::ThreeBlock);
        ranges.0.remove("conv3");
        let error = build_int8_model(&weights, &ranges, &BTreeMap::new()).unwrap_err().to_string();
        assert!(error.contains("conv3"), "{error}");
    }
}
