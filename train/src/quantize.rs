//! Calibration of the int8 model: the range of every weighted layer's input
//! over a few thousand training images, measured with libtorch on the float
//! network (ONNX Runtime's `MinMax` calibration, without Python).

use tch::Tensor;

use crate::{
    Error, Result,
    data::{TensorSet, normalize},
    model::Net,
    onnx::int8::{ActivationRanges, Range},
};

/// Training images the ranges are measured on unless told otherwise:
/// enough that every digit's strokes are seen hundreds of times, few enough
/// to take a second.
pub const DEFAULT_CALIBRATION_IMAGES: usize = 4096;

/// Images per forward pass while calibrating.
const BATCH: usize = 512;

/// Runs the first `images` images of `set` through `net` in inference mode
/// and records the smallest and largest input of each weighted layer.
pub fn activation_ranges(net: &Net, set: &TensorSet, images: usize) -> Result<ActivationRanges> {
    let images = images.min(set.len());
    if images == 0 {
        return Err(Error::Config("int8 calibration needs at least one training image".into()));
    }
    let mut ranges: Option<Vec<Range>> = None;
    tch::no_grad(|| {
        let mut seen = 0;
        for (batch, _) in set.batches(BATCH, false) {
            if seen >= images {
                break;
            }
            let take = (images - seen).min(batch.size()[0] as usize);
            seen += take;
            let batch = batch.narrow(0, 0, take as i64);
            let measured: Vec<Range> = net.layer_inputs(&normalize(&batch)).iter().map(range_of).collect();
            ranges = Some(match ranges.take() {
                None => measured,
                Some(so_far) => so_far
                    .iter()
                    .zip(&measured)
                    .map(|(a, b)| Range { min: a.min.min(b.min), max: a.max.max(b.max) })
                    .collect(),
            });
        }
    });
    let ranges = ranges.ok_or_else(|| Error::Config("no calibration batch was drawn".into()))?;
    Ok(ActivationRanges(net.arch().weighted_layers().map(str::to_string).zip(ranges).collect()))
}

fn range_of(tensor: &Tensor) -> Range {
    Range { min: tensor.min().double_value(&[]) as f32, max: tensor.max().double_value(&[]) as f32 }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, nn::VarStore};

    use crate::model::Arch;

    use super::*;

    #[test]
    fn ranges_cover_what_the_layers_receive() {
        let vs = VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), Arch::ThreeBlock);
        let images = Tensor::rand([600, 1, 28, 28], (Kind::Float, Device::Cpu));
        let set =
            TensorSet { images: images.shallow_clone(), labels: Tensor::zeros([600], (Kind::Int64, Device::Cpu)) };
        let ranges = activation_ranges(&net, &set, 550).unwrap();
        let first = normalize(&images.narrow(0, 0, 550));
        let conv1 = ranges.get("conv1").unwrap();
        assert_eq!(conv1.min, first.min().double_value(&[]) as f32);
        assert_eq!(conv1.max, first.max().double_value(&[]) as f32);
        assert_eq!(ranges.0.keys().collect::<Vec<_>>(), ["conv1", "conv2", "conv3", "fc1", "fc2"]);
        for name in ["conv2", "conv3", "fc1", "fc2"] {
            let range = ranges.get(name).unwrap();
            assert_eq!(range.min, 0.0, "{name} reads a ReLU's output");
            assert!(range.max > 0.0, "{name}");
        }
        assert!(activation_ranges(&net, &set, 0).is_err());
    }
}
