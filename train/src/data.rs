//! MNIST as tensors, and shuffled batches drawn from them without any
//! per-image allocation.

use std::path::Path;

use mnist::{
    IMAGE_SIDE, PIXEL_MEAN, PIXEL_STD,
    dataset::{Mnist, Split},
};
use tch::{Device, Kind, Tensor};

use crate::Result;

/// A split held as two tensors on the training device.
#[derive(Debug)]
pub struct TensorSet {
    /// `[N, 1, 28, 28]` float pixels in [0, 1] (not yet normalized, so that
    /// augmentation pads with true black).
    pub images: Tensor,
    /// `[N]` int64 labels.
    pub labels: Tensor,
}

impl TensorSet {
    /// Copies a loaded split to `device`.
    pub fn new(data: &Mnist, device: Device) -> Self {
        let n = data.len() as i64;
        let side = IMAGE_SIDE as i64;
        let images = Tensor::from_slice(&data.images)
            .view([n, 1, side, side])
            .to_kind(Kind::Float)
            .divide_scalar(255.0)
            .to(device);
        let labels = Tensor::from_slice(&data.labels).to_kind(Kind::Int64).to(device);
        Self { images, labels }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batches of `batch_size` (the last one smaller), in a random order
    /// drawn from libtorch's generator when `shuffle`, else in order.
    pub fn batches(&self, batch_size: usize, shuffle: bool) -> Batches<'_> {
        let n = self.len() as i64;
        let device = self.images.device();
        let order = if shuffle {
            Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to(device)
        } else {
            Tensor::arange(n, (Kind::Int64, device))
        };
        Batches { set: self, order, batch_size: batch_size as i64, next: 0 }
    }
}

/// Iterator over `(images, labels)` batches; see [`TensorSet::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    set: &'a TensorSet,
    order: Tensor,
    batch_size: i64,
    next: i64,
}

impl Batches<'_> {
    /// Number of batches in total.
    pub fn batch_count(&self) -> usize {
        let n = self.set.len() as i64;
        ((n + self.batch_size - 1) / self.batch_size) as usize
    }
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.set.len() as i64;
        if self.next >= n {
            return None;
        }
        let len = self.batch_size.min(n - self.next);
        let idx = self.order.narrow(0, self.next, len);
        self.next += len;
        Some((self.set.images.index_select(0, &idx), self.set.labels.index_select(0, &idx)))
    }
}

/// Maps [0, 1] pixels to the model's input: `(x - 0.1307) / 0.3081`.
pub fn normalize(images: &Tensor) -> Tensor {
    (images - f64::from(PIXEL_MEAN)) / f64::from(PIXEL_STD)
}

/// Loads both splits from `dir`, downloading missing files first when
/// `download` is set.
pub fn load(dir: &Path, download: bool, quiet: bool) -> Result<(Mnist, Mnist)> {
    if download {
        mnist::download::ensure_downloaded(dir, quiet)?;
    }
    Ok((Mnist::load(dir, Split::Train)?, Mnist::load(dir, Split::Test)?))
}

/// The training images followed by a reading set's candidates
/// (`reading-images-idx3-ubyte`, `reading-labels-idx1-ubyte` in `dir`;
/// label 10 = not one digit).
pub fn with_reading_set(mut train: Mnist, dir: &Path) -> Result<Mnist> {
    let images_path = dir.join("reading-images-idx3-ubyte");
    let labels_path = dir.join("reading-labels-idx1-ubyte");
    let read = |path: &Path| std::fs::read(path).map_err(crate::error::io_error(path));
    let images = mnist::dataset::parse_images(&read(&images_path)?, &images_path)?;
    // Not `parse_labels`: it rightly refuses MNIST labels above 9.
    let label_file = read(&labels_path)?;
    let labels = match label_file.get(..8) {
        Some(header) if header[..4] == [0, 0, 8, 1] => label_file[8..].to_vec(),
        _ => return Err(crate::Error::Config(format!("{}: not an IDX label file", labels_path.display()))),
    };
    if images.len() != labels.len() * mnist::IMAGE_PIXELS || labels.iter().any(|&l| l > NOT_A_DIGIT) {
        return Err(crate::Error::Config(format!(
            "{}: {} images but {} labels, or a label above {NOT_A_DIGIT}",
            dir.display(),
            images.len() / mnist::IMAGE_PIXELS,
            labels.len()
        )));
    }
    train.images.extend_from_slice(&images);
    train.labels.extend_from_slice(&labels);
    Ok(train)
}

/// The label of a reading set's candidates that are not one digit.
pub const NOT_A_DIGIT: u8 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(n: usize) -> Mnist {
        Mnist {
            images: (0..n * 784).map(|i| (i / 784) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        }
    }

    #[test]
    fn batches_cover_every_image_once() {
        let set = TensorSet::new(&tiny(10), Device::Cpu);
        tch::manual_seed(3);
        let batches = set.batches(4, true);
        assert_eq!(batches.batch_count(), 3);
        let mut seen: Vec<i64> = Vec::new();
        for (x, y) in batches {
            assert_eq!(x.size()[1..], [1, 28, 28]);
            // Each image's pixels encode its index; labels must follow it.
            for i in 0..x.size()[0] {
                let index = (x.double_value(&[i, 0, 0, 0]) * 255.0).round() as i64;
                assert_eq!(y.int64_value(&[i]), index % 10);
                seen.push(index);
            }
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_order() {
        let set = TensorSet::new(&tiny(50), Device::Cpu);
        let order = |seed| {
            tch::manual_seed(seed);
            set.batches(50, true).next().map(|(_, y)| Vec::<i64>::try_from(y).unwrap()).unwrap()
        };
        assert_eq!(order(7), order(7));
        assert_ne!(order(7), order(8));
    }
}
