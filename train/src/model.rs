//! The networks `mnist-train` trains: the reference CNN, layer for layer
//! (see `shared/docs/reference.md`), and a deeper one with batch
//! normalization and a third convolution block.
//!
//! Both are described once, as the sequence of inference-time [`Layer`]s
//! the exporters write: in inference mode dropout is the identity and each
//! batch normalization folds into the convolution before it, so every
//! architecture exports to the same five ONNX operators (Conv, Relu,
//! MaxPool, Flatten, Gemm), with the same input, output and normalization.
//! A new architecture is a new [`Arch`] and its layer list; the exporters,
//! the int8 calibration and the checkpoints follow from it.

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// Dropout after the convolutions, as in the reference.
pub const DROPOUT_CONV: f64 = 0.25;
/// Dropout after the hidden dense layer, as in the reference.
pub const DROPOUT_DENSE: f64 = 0.5;

/// Which network to train.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The reference CNN: conv 32 - conv 64 - maxpool - fc 128 - fc 10
    /// (1,199,882 parameters).
    #[default]
    Reference,
    /// Three convolution blocks with batch normalization: conv 32 - BN -
    /// conv 64 - BN - maxpool - conv 128 - BN - maxpool - fc 128 - fc 10
    /// (about 0.5 M parameters: the third block shrinks what fc1 reads from
    /// 9,216 to 3,200 values).
    ThreeBlock,
}

/// One step of a network in inference mode, as the exporters write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A 3x3 convolution, stride 1, no padding (batch normalization, if
    /// any, folded in).
    Conv(Weighted),
    /// ReLU.
    Relu,
    /// 2x2 max pooling, stride 2.
    MaxPool,
    /// `[N, C, H, W]` to `[N, C*H*W]`.
    Flatten,
    /// A fully connected layer.
    Dense(Weighted),
}

/// A layer with parameters: their name prefix and the layer's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weighted {
    /// `conv1`: the parameters are `conv1.weight` and `conv1.bias`.
    pub name: &'static str,
    /// Input channels (convolutions) or features (dense layers).
    pub inputs: i64,
    /// Output channels or features.
    pub outputs: i64,
}

const fn conv(name: &'static str, inputs: i64, outputs: i64) -> Layer {
    Layer::Conv(Weighted { name, inputs, outputs })
}

const fn dense(name: &'static str, inputs: i64, outputs: i64) -> Layer {
    Layer::Dense(Weighted { name, inputs, outputs })
}

use Layer::{Flatten, MaxPool, Relu};

const REFERENCE_LAYERS: &[Layer] = &[
    conv("conv1", 1, 32),
    Relu,
    conv("conv2", 32, 64),
    Relu,
    MaxPool,
    Flatten,
    dense("fc1", 9216, 128),
    Relu,
    dense("fc2", 128, 10),
];

/// 28 -> 26 -> 24 -> pool 12 -> 10 -> pool 5: fc1 reads 128 x 5 x 5.
const THREE_BLOCK_LAYERS: &[Layer] = &[
    conv("conv1", 1, 32),
    Relu,
    conv("conv2", 32, 64),
    Relu,
    MaxPool,
    conv("conv3", 64, 128),
    Relu,
    MaxPool,
    Flatten,
    dense("fc1", 3200, 128),
    Relu,
    dense("fc2", 128, 10),
];

impl Layer {
    /// The layer's parameters, when it has any.
    pub fn weighted(&self) -> Option<&Weighted> {
        match self {
            Layer::Conv(w) | Layer::Dense(w) => Some(w),
            _ => None,
        }
    }
}

impl Arch {
    /// The network in inference mode, input to logits.
    pub fn layers(self) -> &'static [Layer] {
        match self {
            Arch::Reference => REFERENCE_LAYERS,
            Arch::ThreeBlock => THREE_BLOCK_LAYERS,
        }
    }

    /// Whether each convolution is followed by batch normalization.
    pub fn batch_norm(self) -> bool {
        self == Arch::ThreeBlock
    }

    /// The names of the weighted layers, in graph order.
    pub fn weighted_layers(self) -> impl Iterator<Item = &'static str> {
        self.layers().iter().filter_map(|layer| layer.weighted().map(|w| w.name))
    }

    /// The exported parameters (`conv1.weight`, `conv1.bias`, ...), in
    /// graph order: what the ONNX graph holds, batch normalization folded.
    pub fn parameter_names(self) -> Vec<String> {
        self.weighted_layers().flat_map(|name| [format!("{name}.weight"), format!("{name}.bias")]).collect()
    }

    /// One line for the ONNX graph's documentation.
    pub fn description(self) -> &'static str {
        match self {
            Arch::Reference => "Reference MNIST CNN (conv 32, conv 64, maxpool, fc 128, fc 10)",
            Arch::ThreeBlock => {
                "MNIST CNN with three convolution blocks (conv 32, conv 64, maxpool, conv 128, maxpool, fc 128, \
                 fc 10), batch normalization folded into the convolutions"
            }
        }
    }
}

/// The batch normalization after convolution `conv`: `bn1` after `conv1`.
pub fn batch_norm_name(conv: &str) -> String {
    format!("bn{}", conv.trim_start_matches("conv"))
}

/// One built step of a [`Net`].
#[derive(Debug)]
enum Step {
    /// Boxed: a convolution and its batch normalization are ten times the
    /// size of the other steps.
    Conv(Box<(nn::Conv2D, Option<nn::BatchNorm>)>),
    Relu,
    MaxPool,
    Flatten,
    /// `last`: the output layer, which the reference precedes with dropout.
    Dense(nn::Linear, bool),
}

/// A network of one [`Arch`], over the variables of a `VarStore`.
///
/// Parameter names (`conv1.weight`, ..., `fc2.bias`, and `bn1.weight`,
/// `bn1.running_mean`, ... with batch normalization) match PyTorch's, so
/// weights can be compared with the reference script.
#[derive(Debug)]
pub struct Net {
    arch: Arch,
    steps: Vec<Step>,
}

impl Net {
    /// Creates the layers of `arch` under `root`, initialised as PyTorch does.
    pub fn new(root: &nn::Path, arch: Arch) -> Self {
        let layers = arch.layers();
        let last = layers.iter().rposition(|layer| matches!(layer, Layer::Dense(_)));
        let steps = layers
            .iter()
            .enumerate()
            .map(|(i, layer)| match *layer {
                Layer::Conv(w) => {
                    let conv = nn::conv2d(root / w.name, w.inputs, w.outputs, 3, conv_config(w.inputs * 9));
                    let bn = arch
                        .batch_norm()
                        .then(|| nn::batch_norm2d(root / batch_norm_name(w.name), w.outputs, Default::default()));
                    Step::Conv(Box::new((conv, bn)))
                }
                Layer::Dense(w) => Step::Dense(
                    nn::linear(root / w.name, w.inputs, w.outputs, linear_config(w.inputs)),
                    Some(i) == last,
                ),
                Relu => Step::Relu,
                MaxPool => Step::MaxPool,
                Flatten => Step::Flatten,
            })
            .collect();
        Self { arch, steps }
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Runs the steps; `seen` is called with the input of every weighted
    /// layer, in order.
    fn run(&self, xs: &Tensor, train: bool, mut seen: impl FnMut(&Tensor)) -> Tensor {
        let mut x = xs.shallow_clone();
        for step in &self.steps {
            x = match step {
                Step::Conv(layer) => {
                    let (conv, bn) = layer.as_ref();
                    seen(&x);
                    let out = x.apply(conv);
                    match bn {
                        Some(bn) => out.apply_t(bn, train),
                        None => out,
                    }
                }
                Step::Relu => x.relu(),
                Step::MaxPool => x.max_pool2d_default(2),
                Step::Flatten => x.dropout(DROPOUT_CONV, train).flatten(1, -1),
                Step::Dense(linear, last) => {
                    let x = if *last { x.dropout(DROPOUT_DENSE, train) } else { x };
                    seen(&x);
                    x.apply(linear)
                }
            };
        }
        x
    }

    /// The logits of every 28x28 window of `strips` (`[N, 1, 28, W]`,
    /// normalized), windows `stride` columns apart: `[T, N, 10]` with
    /// `T = (W - 28) / stride + 1`, what [`nn::ModuleT::forward_t`] gives
    /// each window on its own (up to dropout masks), computed at once. The
    /// convolutions have no padding, so a window's feature maps are a slice
    /// of the strip's; the first dense layer is then a convolution as large
    /// as a window's map, the next ones 1x1 convolutions. `stride` must be
    /// a multiple of the pooling (2 per max pool) so that windows pool as
    /// the strip does.
    pub fn frames_t(&self, strips: &Tensor, stride: i64, train: bool) -> Tensor {
        let mut x = strips.shallow_clone();
        let mut pooling = 1;
        for step in &self.steps {
            x = match step {
                Step::Conv(layer) => {
                    let (conv, bn) = layer.as_ref();
                    let out = x.apply(conv);
                    match bn {
                        Some(bn) => out.apply_t(bn, train),
                        None => out,
                    }
                }
                Step::Relu => x.relu(),
                Step::MaxPool => {
                    pooling *= 2;
                    x.max_pool2d_default(2)
                }
                Step::Flatten => x.dropout(DROPOUT_CONV, train),
                Step::Dense(linear, last) => {
                    let x = if *last { x.dropout(DROPOUT_DENSE, train) } else { x };
                    let side = x.size()[2];
                    let (outputs, inputs) = linear.ws.size2().unwrap_or((0, 0));
                    let kernel = linear.ws.view([outputs, inputs / (side * side), side, side]);
                    let step = if side > 1 { stride / pooling } else { 1 };
                    x.conv2d(&kernel, linear.bs.as_ref(), [1, step], [0, 0], [1, 1], 1)
                }
            };
        }
        x.squeeze_dim(2).permute([2, 0, 1])
    }

    /// What each convolution outputs, before its batch normalization, for
    /// normalized inputs `[N, 1, 28, W]` of any width (the convolutions
    /// have no padding): the statistics importing a model measures
    /// ([`crate::onnx::import`]).
    pub fn conv_outputs(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        let mut outputs = Vec::new();
        let mut x = xs.shallow_clone();
        for step in &self.steps {
            x = match step {
                Step::Conv(layer) => {
                    let (conv, bn) = layer.as_ref();
                    let out = x.apply(conv);
                    outputs.push(out.shallow_clone());
                    match bn {
                        Some(bn) => out.apply_t(bn, train),
                        None => out,
                    }
                }
                Step::Relu => x.relu(),
                Step::MaxPool => x.max_pool2d_default(2),
                Step::Flatten | Step::Dense(..) => break,
            };
        }
        outputs
    }

    /// What each weighted layer receives in inference mode, for a batch of
    /// normalized images, in graph order: the ranges int8 calibration
    /// measures. The first is the image itself.
    pub fn layer_inputs(&self, xs: &Tensor) -> Vec<Tensor> {
        let mut inputs = Vec::new();
        let _ = self.run(xs, false, |x| inputs.push(x.shallow_clone()));
        inputs
    }
}

/// PyTorch's default for conv and linear layers: weights from
/// kaiming_uniform(a = sqrt(5)) and biases alike, which both come to
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)). tch's own default (Kaiming for ReLU,
/// zero conv biases) starts 2.4 times larger and trains differently.
fn pytorch_uniform(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

fn conv_config(fan_in: i64) -> nn::ConvConfig {
    nn::ConvConfig { ws_init: pytorch_uniform(fan_in), bs_init: pytorch_uniform(fan_in), ..Default::default() }
}

fn linear_config(fan_in: i64) -> nn::LinearConfig {
    nn::LinearConfig { ws_init: pytorch_uniform(fan_in), bs_init: Some(pytorch_uniform(fan_in)), bias: true }
}

impl nn::ModuleT for Net {
    /// `xs`: `[N, 1, 28, 28]` normalized pixels. Returns `[N, 10]` logits.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, |_| {})
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, nn::ModuleT};

    use super::*;

    fn parameter_count(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    #[test]
    fn shapes_and_parameter_names_match_the_reference() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), Arch::Reference);
        let out = net.forward_t(&Tensor::zeros([3, 1, 28, 28], (Kind::Float, Device::Cpu)), false);
        assert_eq!(out.size(), [3, 10]);
        let vars = vs.variables();
        let mut names: Vec<_> = vars.keys().cloned().collect();
        names.sort();
        let mut expected = Arch::Reference.parameter_names();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(vars["fc1.weight"].size(), [128, 9216]);
        assert_eq!(parameter_count(&vs), 1_199_882, "reference parameter count");
        // PyTorch's initialisation bound for fc1: 1/sqrt(9216).
        let max = vars["fc1.weight"].abs().max().double_value(&[]);
        assert!(max <= 1.0 / 96.0 && max > 0.9 / 96.0, "fc1 init bound {max}");
    }

    #[test]
    fn the_three_block_network_has_batch_norm_after_each_convolution() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), Arch::ThreeBlock);
        let out = net.forward_t(&Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu)), true);
        assert_eq!(out.size(), [3, 10]);
        let vars = vs.variables();
        for bn in ["bn1", "bn2", "bn3"] {
            for part in ["weight", "bias", "running_mean", "running_var"] {
                assert!(vars.contains_key(&format!("{bn}.{part}")), "{bn}.{part}");
            }
        }
        assert_eq!(vars["fc1.weight"].size(), [128, 3200]);
        // conv 320 + 18,496 + 73,856, BN 2 x (32 + 64 + 128), fc 409,728 + 1,290.
        assert_eq!(parameter_count(&vs), 504_138);
        // Training mode moved the running statistics off their start.
        assert!(vars["bn1.running_mean"].abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn layer_inputs_lead_to_the_same_logits() {
        for arch in [Arch::Reference, Arch::ThreeBlock] {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = Net::new(&vs.root(), arch);
            let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
            let inputs = net.layer_inputs(&x);
            assert_eq!(inputs.len(), arch.weighted_layers().count());
            assert!(inputs[0].equal(&x));
            let fc2 = vs.variables();
            let last = inputs.last().unwrap().linear(&fc2["fc2.weight"], Some(&fc2["fc2.bias"]));
            assert!(last.allclose(&net.forward_t(&x, false), 1e-6, 1e-6, false), "{arch:?}");
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), Arch::Reference);
        let sizes: Vec<_> = net
            .layer_inputs(&Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu)))
            .iter()
            .map(Tensor::size)
            .collect();
        assert_eq!(sizes, [vec![2, 1, 28, 28], vec![2, 32, 26, 26], vec![2, 9216], vec![2, 128]]);
    }

    #[test]
    fn frames_are_the_windows_classified_one_by_one() {
        for arch in [Arch::Reference, Arch::ThreeBlock] {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = Net::new(&vs.root(), arch);
            let _ = net.forward_t(&Tensor::rand([4, 1, 28, 28], (Kind::Float, Device::Cpu)), true);
            let strips = Tensor::rand([2, 1, 28, 28 + 4 * 5], (Kind::Float, Device::Cpu));
            let frames = net.frames_t(&strips, 4, false);
            assert_eq!(frames.size(), [6, 2, 10], "{arch:?}");
            for t in 0..6 {
                let window = strips.narrow(3, 4 * t, 28);
                let one_by_one = net.forward_t(&window, false);
                assert!(frames.get(t).allclose(&one_by_one, 1e-4, 1e-5, false), "{arch:?} frame {t}");
            }
        }
    }

    #[test]
    fn eval_mode_is_deterministic_and_train_mode_drops_out() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), Arch::Reference);
        let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
        let a = net.forward_t(&x, false);
        let b = net.forward_t(&x, false);
        assert!(a.equal(&b));
        let c = net.forward_t(&x, true);
        assert!(!a.equal(&c));
    }
}
