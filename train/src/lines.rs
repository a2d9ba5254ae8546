//! Lines of handwritten digits for a window model (`--line-set`): strips
//! 28 pixels high made by `mnist::read::line` (`cargo run --example
//! line_set`), each with the number it holds, and the CTC loss that
//! teaches a 28x28 classifier to say, window by window, which digit is
//! centred in it or that none is (the blank, an eleventh class whose logit
//! is fixed at zero so that the exported model keeps ten outputs).

use std::{
    fs,
    path::{Path, PathBuf},
};

use mnist::{IMAGE_SIDE, read::line::FRAME_STRIDE};
use tch::{Device, Kind, Reduction, Tensor};

use crate::{Error, Result, data::normalize, error::io_error, model::Net};

/// CTC's blank: after the ten digits.
const BLANK: i64 = 10;

/// One strip of a line set.
#[derive(Debug, Clone)]
struct Strip {
    offset: usize,
    width: usize,
    digits: Vec<i64>,
}

/// One split of a line set, in memory.
#[derive(Debug)]
pub struct LineSet {
    pixels: Vec<u8>,
    strips: Vec<Strip>,
    device: Device,
}

/// A batch of strips, padded to the widest.
#[derive(Debug)]
pub struct LineBatch {
    /// `[N, 1, 28, W]` normalized pixels.
    pub images: Tensor,
    /// `[N, S]` digits, padded with blanks.
    pub targets: Tensor,
    /// Windows of each strip (the rest of its row is padding).
    pub frames: Vec<i64>,
    /// Digits of each strip.
    pub lengths: Vec<i64>,
}

impl LineSet {
    /// Loads split `name` (`train`, `validation`) of the line sets in
    /// `dirs`, one after the other.
    pub fn load(dirs: &[PathBuf], name: &str, device: Device) -> Result<Self> {
        let mut set = Self { pixels: Vec::new(), strips: Vec::new(), device };
        for dir in dirs {
            let (pixels, strips) = Self::load_one(dir, name)?;
            let shift = set.pixels.len();
            set.pixels.extend_from_slice(&pixels);
            set.strips.extend(strips.into_iter().map(|strip| Strip { offset: strip.offset + shift, ..strip }));
        }
        if set.strips.is_empty() {
            return Err(Error::Config(format!("no {name} strips in the line sets")));
        }
        Ok(set)
    }

    /// The pixels and strips of split `name` of the line set in `dir`.
    fn load_one(dir: &Path, name: &str) -> Result<(Vec<u8>, Vec<Strip>)> {
        let pixels_path = dir.join(format!("{name}-strips"));
        let index_path = dir.join(format!("{name}-index.tsv"));
        let pixels = fs::read(&pixels_path).map_err(io_error(&pixels_path))?;
        let index = fs::read_to_string(&index_path).map_err(io_error(&index_path))?;
        let bad = |line: usize, why: &str| Error::Config(format!("{}:{}: {why}", index_path.display(), line + 1));
        let mut strips = Vec::new();
        for (n, row) in index.lines().enumerate().skip(1) {
            let mut fields = row.split('\t');
            let (Some(offset), Some(width), Some(text), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad(n, "expected offset, width and text"));
            };
            let offset: usize = offset.parse().map_err(|_| bad(n, "bad offset"))?;
            let width: usize = width.parse().map_err(|_| bad(n, "bad width"))?;
            let digits: Vec<i64> = text.bytes().map(|b| i64::from(b) - i64::from(b'0')).collect();
            if digits.is_empty() || digits.iter().any(|d| !(0..BLANK).contains(d)) {
                return Err(bad(n, "the text must be digits"));
            }
            let frames = width.checked_sub(IMAGE_SIDE).map(|extra| extra / FRAME_STRIDE + 1);
            if !width.is_multiple_of(FRAME_STRIDE) || frames.is_none_or(|f| f < digits.len()) {
                return Err(bad(n, "the strip is not a whole number of windows for its digits"));
            }
            if offset + IMAGE_SIDE * width > pixels.len() {
                return Err(bad(n, "the strip runs past the end of the pixels"));
            }
            strips.push(Strip { offset, width, digits });
        }
        if strips.is_empty() {
            return Err(Error::Config(format!("{} holds no strips", index_path.display())));
        }
        Ok((pixels, strips))
    }

    /// Number of strips.
    pub fn len(&self) -> usize {
        self.strips.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.strips.is_empty()
    }

    /// Batches of strip indices covering every strip once. Shuffled (with
    /// libtorch's generator, so that seeds repeat runs), strips of similar
    /// widths share a batch: padding costs time.
    pub fn batches(&self, batch_size: usize, shuffle: bool) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = if shuffle {
            Vec::<i64>::try_from(Tensor::randperm(self.len() as i64, (Kind::Int64, Device::Cpu)))
                .unwrap_or_default()
                .into_iter()
                .map(|i| i as usize)
                .collect()
        } else {
            (0..self.len()).collect()
        };
        let pool = batch_size.max(1) * 32;
        for chunk in order.chunks_mut(pool) {
            chunk.sort_by_key(|&i| self.strips[i].width);
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
        if shuffle {
            let mix = Vec::<i64>::try_from(Tensor::randperm(batches.len() as i64, (Kind::Int64, Device::Cpu)))
                .unwrap_or_default();
            batches = mix.into_iter().map(|i| std::mem::take(&mut batches[i as usize])).collect();
        }
        batches
    }

    /// The strips `indices`, padded with paper to the widest.
    pub fn batch(&self, indices: &[usize]) -> LineBatch {
        let widest = indices.iter().map(|&i| self.strips[i].width).max().unwrap_or(IMAGE_SIDE);
        let longest = indices.iter().map(|&i| self.strips[i].digits.len()).max().unwrap_or(1);
        let mut pixels = vec![0u8; indices.len() * IMAGE_SIDE * widest];
        let mut targets = vec![BLANK; indices.len() * longest];
        let (mut frames, mut lengths) = (Vec::new(), Vec::new());
        for (n, &i) in indices.iter().enumerate() {
            let strip = &self.strips[i];
            for row in 0..IMAGE_SIDE {
                let from = strip.offset + row * strip.width;
                let to = (n * IMAGE_SIDE + row) * widest;
                pixels[to..to + strip.width].copy_from_slice(&self.pixels[from..from + strip.width]);
            }
            targets[n * longest..n * longest + strip.digits.len()].copy_from_slice(&strip.digits);
            frames.push(((strip.width - IMAGE_SIDE) / FRAME_STRIDE + 1) as i64);
            lengths.push(strip.digits.len() as i64);
        }
        let images = Tensor::from_slice(&pixels)
            .view([indices.len() as i64, 1, IMAGE_SIDE as i64, widest as i64])
            .to_device(self.device)
            .to_kind(Kind::Float)
            / 255.0;
        let targets = Tensor::from_slice(&targets).view([indices.len() as i64, longest as i64]).to_device(self.device);
        LineBatch { images: normalize(&images), targets, frames, lengths }
    }
}

/// The window model's `[T, N, 10]` logits with the blank's, fixed at zero,
/// as `[T, N, 11]` log-probabilities.
fn with_blank(frames: &Tensor) -> Tensor {
    let size = frames.size();
    let blank = Tensor::zeros([size[0], size[1], 1], (Kind::Float, frames.device()));
    Tensor::cat(&[frames, &blank], 2).log_softmax(2, Kind::Float)
}

/// CTC loss of `net` on a batch (per digit, averaged over the strips).
pub fn loss(net: &Net, batch: &LineBatch, train: bool) -> Tensor {
    let frames = net.frames_t(&batch.images, FRAME_STRIDE as i64, train);
    Tensor::ctc_loss(
        &with_blank(&frames),
        &batch.targets,
        batch.frames.as_slice(),
        batch.lengths.as_slice(),
        BLANK,
        Reduction::Mean,
        true,
    )
}

/// The numbers `net` reads in a batch: the likeliest symbol of each window,
/// repeats merged and blanks dropped (CTC's best path).
pub fn read(net: &Net, batch: &LineBatch) -> Vec<Vec<i64>> {
    let frames = net.frames_t(&batch.images, FRAME_STRIDE as i64, false);
    let best = with_blank(&frames).argmax(2, false).transpose(0, 1).contiguous();
    let best: Vec<i64> = Vec::try_from(best.view([-1])).unwrap_or_default();
    let per_strip = frames.size()[0] as usize;
    best.chunks(per_strip.max(1))
        .zip(&batch.frames)
        .map(|(symbols, &count)| {
            let mut digits = Vec::new();
            let mut previous = BLANK;
            for &s in &symbols[..(count as usize).min(symbols.len())] {
                if s != BLANK && s != previous {
                    digits.push(s);
                }
                previous = s;
            }
            digits
        })
        .collect()
}

/// CTC loss and the share of numbers read exactly, over a whole set.
pub fn evaluate(net: &Net, set: &LineSet) -> (f64, f64) {
    let _no_grad = tch::no_grad_guard();
    let (mut loss_sum, mut right, mut batches) = (0.0, 0usize, 0usize);
    for indices in set.batches(256, false) {
        let batch = set.batch(&indices);
        loss_sum += loss(net, &batch, false).double_value(&[]);
        batches += 1;
        right +=
            read(net, &batch).iter().zip(&indices).filter(|(digits, i)| **digits == set.strips[**i].digits).count();
    }
    (loss_sum / batches.max(1) as f64, right as f64 / set.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use tch::nn::{self, VarStore};

    use super::*;
    use crate::model::Arch;

    fn tiny_set(dir: &Path) -> LineSet {
        // Two strips: 2 windows for "7", 4 windows for "12".
        let (w1, w2) = (IMAGE_SIDE + FRAME_STRIDE, IMAGE_SIDE + 3 * FRAME_STRIDE);
        let mut pixels = vec![0u8; IMAGE_SIDE * w1];
        pixels.extend((0..IMAGE_SIDE * w2).map(|i| (i % 7 * 30) as u8));
        fs::write(dir.join("train-strips"), &pixels).unwrap();
        let index = format!("offset\twidth\ttext\n0\t{w1}\t7\n{}\t{w2}\t12\n", IMAGE_SIDE * w1);
        fs::write(dir.join("train-index.tsv"), index).unwrap();
        LineSet::load(&[dir.to_path_buf()], "train", Device::Cpu).unwrap()
    }

    #[test]
    fn batches_pad_strips_and_count_their_windows() {
        let dir = tempfile::tempdir().unwrap();
        let set = tiny_set(dir.path());
        let batch = set.batch(&[0, 1]);
        assert_eq!(batch.images.size(), [2, 1, 28, (IMAGE_SIDE + 3 * FRAME_STRIDE) as i64]);
        assert_eq!(batch.frames, [2, 4]);
        assert_eq!(batch.lengths, [1, 2]);
        assert_eq!(Vec::<i64>::try_from(batch.targets.view([-1])).unwrap(), [7, BLANK, 1, 2]);
        // The narrow strip's padding is paper, normalized like its own.
        let corner = batch.images.double_value(&[0, 0, 0, 0]);
        let padding = batch.images.double_value(&[0, 0, 0, (IMAGE_SIDE + 2 * FRAME_STRIDE) as i64]);
        assert!((corner - padding).abs() < 1e-6);
        let mut seen: Vec<usize> = set.batches(1, true).concat();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1]);
    }

    #[test]
    fn ctc_loss_falls_as_the_right_reading_grows_likelier() {
        let dir = tempfile::tempdir().unwrap();
        let set = tiny_set(dir.path());
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), Arch::Reference);
        let batch = set.batch(&[0, 1]);
        let mut optimizer = nn::OptimizerConfig::build(nn::Adam::default(), &vs, 1e-3).unwrap();
        let first = loss(&net, &batch, false).double_value(&[]);
        for _ in 0..60 {
            let l = loss(&net, &batch, false);
            optimizer.backward_step(&l);
        }
        let last = loss(&net, &batch, false).double_value(&[]);
        assert!(last < first * 0.2, "CTC loss {first} -> {last}");
        assert_eq!(read(&net, &batch), [vec![7], vec![1, 2]]);
        assert_eq!(evaluate(&net, &set).1, 1.0);
    }

    #[test]
    fn bad_indexes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("train-strips"), vec![0u8; IMAGE_SIDE * 32]).unwrap();
        for index in ["0\t32\t7\n", "0\t32\t7x\n", "0\t30\t7\n", "0\t32\t123\n", "10\t32\t7\n"] {
            fs::write(dir.path().join("train-index.tsv"), format!("offset\twidth\ttext\n{index}")).unwrap();
            let result = LineSet::load(&[dir.path().to_path_buf()], "train", Device::Cpu);
            assert!(result.is_err() != index.starts_with("0\t32\t7\n"), "{index:?}");
        }
    }
}
