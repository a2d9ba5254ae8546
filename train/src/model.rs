//! The reference CNN, layer for layer (see `shared/docs/reference.md`).

use tch::{Tensor, nn};

/// Dropout after the convolutions, as in the reference.
pub const DROPOUT_CONV: f64 = 0.25;
/// Dropout after the hidden dense layer, as in the reference.
pub const DROPOUT_DENSE: f64 = 0.5;

/// conv1 (1->32, 3x3) - ReLU - conv2 (32->64, 3x3) - ReLU - maxpool 2 -
/// dropout 0.25 - flatten (9216) - fc1 (->128) - ReLU - dropout 0.5 - fc2 (->10).
///
/// Parameter names (`conv1.weight`, ..., `fc2.bias`) match PyTorch's, so
/// weights can be compared with the reference script.
#[derive(Debug)]
pub struct Net {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Net {
    /// Creates the layers under `root`, initialised as PyTorch does.
    pub fn new(root: &nn::Path) -> Self {
        Self {
            conv1: nn::conv2d(root / "conv1", 1, 32, 3, conv_config(9)),
            conv2: nn::conv2d(root / "conv2", 32, 64, 3, conv_config(32 * 9)),
            fc1: nn::linear(root / "fc1", 9216, 128, linear_config(9216)),
            fc2: nn::linear(root / "fc2", 128, 10, linear_config(128)),
        }
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

impl Net {
    /// What each weighted layer (conv1, conv2, fc1, fc2) receives in
    /// inference mode, for a batch of normalized images: the ranges int8
    /// calibration measures. conv1's input is the image itself; fc1's is the
    /// max-pooled, flattened conv2 activation.
    pub fn layer_inputs(&self, xs: &Tensor) -> [Tensor; 4] {
        let conv2_in = xs.apply(&self.conv1).relu();
        let fc1_in = conv2_in.apply(&self.conv2).relu().max_pool2d_default(2).flatten(1, -1);
        let fc2_in = fc1_in.apply(&self.fc1).relu();
        [xs.shallow_clone(), conv2_in, fc1_in, fc2_in]
    }
}

impl nn::ModuleT for Net {
    /// `xs`: `[N, 1, 28, 28]` normalized pixels. Returns `[N, 10]` logits.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv1)
            .relu()
            .apply(&self.conv2)
            .relu()
            .max_pool2d_default(2)
            .dropout(DROPOUT_CONV, train)
            .flatten(1, -1)
            .apply(&self.fc1)
            .relu()
            .dropout(DROPOUT_DENSE, train)
            .apply(&self.fc2)
    }
}

/// Names of the parameters, in graph order.
pub const PARAMETER_NAMES: [&str; 8] =
    ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"];

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, nn::ModuleT};

    use super::*;

    #[test]
    fn shapes_and_parameter_names_match_the_reference() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root());
        let out = net.forward_t(&Tensor::zeros([3, 1, 28, 28], (Kind::Float, Device::Cpu)), false);
        assert_eq!(out.size(), [3, 10]);
        let vars = vs.variables();
        let mut names: Vec<_> = vars.keys().cloned().collect();
        names.sort();
        let mut expected: Vec<_> = PARAMETER_NAMES.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(vars["fc1.weight"].size(), [128, 9216]);
        let total: i64 = vars.values().map(|t| t.numel() as i64).sum();
        assert_eq!(total, 1_199_882, "reference parameter count");
        // PyTorch's initialisation bound for fc1: 1/sqrt(9216).
        let max = vars["fc1.weight"].abs().max().double_value(&[]);
        assert!(max <= 1.0 / 96.0 && max > 0.9 / 96.0, "fc1 init bound {max}");
    }

    #[test]
    fn layer_inputs_lead_to_the_same_logits() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root());
        let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
        let [image, conv2_in, fc1_in, fc2_in] = net.layer_inputs(&x);
        assert!(image.equal(&x));
        assert_eq!((conv2_in.size(), fc1_in.size(), fc2_in.size()), (vec![2, 32, 26, 26], vec![2, 9216], vec![2, 128]));
        assert!(fc2_in.apply(&net.fc2).allclose(&net.forward_t(&x, false), 1e-6, 1e-6, false));
    }

    #[test]
    fn eval_mode_is_deterministic_and_train_mode_drops_out() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root());
        let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
        let a = net.forward_t(&x, false);
        let b = net.forward_t(&x, false);
        assert!(a.equal(&b));
        let c = net.forward_t(&x, true);
        assert!(!a.equal(&c));
    }
}
