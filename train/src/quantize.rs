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
    let mut ranges: Option<[Range; 4]> = None;
    tch::no_grad(|| {
        let mut seen = 0;
        for (batch, _) in set.batches(BATCH, false) {
            if seen >= images {
                break;
            }
            let take = (images - seen).min(batch.size()[0] as usize);
            seen += take;
            let batch = batch.narrow(0, 0, take as i64);
            let inputs = net.layer_inputs(&normalize(&batch));
            let measured = inputs.each_ref().map(range_of);
            ranges = Some(match ranges {
                None => measured,
                Some(so_far) => std::array::from_fn(|i| Range {
                    min: so_far[i].min.min(measured[i].min),
                    max: so_far[i].max.max(measured[i].max),
                }),
            });
        }
    });
    let [conv1, conv2, fc1, fc2] = ranges.ok_or_else(|| Error::Config("no calibration batch was drawn".into()))?;
    Ok(ActivationRanges { conv1, conv2, fc1, fc2 })
}

fn range_of(tensor: &Tensor) -> Range {
    Range { min: tensor.min().double_value(&[]) as f32, max: tensor.max().double_value(&[]) as f32 }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, nn::VarStore};

    use super::*;

    #[test]
    fn ranges_cover_what_the_layers_receive() {
        let vs = VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root());
        let images = Tensor::rand([600, 1, 28, 28], (Kind::Float, Device::Cpu));
        let set =
            TensorSet { images: images.shallow_clone(), labels: Tensor::zeros([600], (Kind::Int64, Device::Cpu)) };
        let ranges = activation_ranges(&net, &set, 550).unwrap();
        let first = normalize(&images.narrow(0, 0, 550));
        assert_eq!(ranges.conv1.min, first.min().double_value(&[]) as f32);
        assert_eq!(ranges.conv1.max, first.max().double_value(&[]) as f32);
        assert_eq!((ranges.conv2.min, ranges.fc1.min, ranges.fc2.min), (0.0, 0.0, 0.0), "after ReLU");
        assert!(ranges.conv2.max > 0.0 && ranges.fc1.max > 0.0);
        assert!(activation_ranges(&net, &set, 0).is_err());
    }
}
