//! Random affine augmentation of whole batches on the training device.
//!
//! One `affine_grid` + `grid_sample` per batch: every image gets its own
//! rotation, scale and translation without leaving libtorch or allocating
//! per image.

use std::f64::consts::PI;

use tch::{Kind, Tensor};

/// Ranges of the random transforms.
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    /// Largest rotation either way, in degrees.
    pub max_rotation_degrees: f64,
    /// Largest shift either way, in pixels.
    pub max_translation_pixels: f64,
    /// Scale range (zoom out, zoom in).
    pub scale: (f64, f64),
    /// Share of images whose strokes are thickened by a pixel each side
    /// (a 3x3 grayscale dilation): marker and felt-tip strokes, which
    /// MNIST's pen strokes are not.
    pub thicken: f64,
    /// How far a thickened image's strokes grow: 1 to this many pixels each
    /// side, drawn per image (1: always one, a 3x3 dilation).
    pub thicken_pixels: u32,
}

impl Default for Augment {
    /// ±10°, ±2 px, 0.9-1.1: what MNIST's own variation looks like.
    fn default() -> Self {
        Self {
            max_rotation_degrees: 10.0,
            max_translation_pixels: 2.0,
            scale: (0.9, 1.1),
            thicken: 0.0,
            thicken_pixels: 1,
        }
    }
}

impl Augment {
    /// Transforms `[N, 1, H, W]` images in [0, 1]; areas moved in from
    /// outside the frame are black, like MNIST's background.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        let size = images.size();
        let (n, height) = (size[0], size[2] as f64);
        let opts = (Kind::Float, images.device());
        let uniform = |low: f64, high: f64| Tensor::rand([n], opts) * (high - low) + low;
        let angle = uniform(-self.max_rotation_degrees, self.max_rotation_degrees) * (PI / 180.0);
        let scale = uniform(self.scale.0, self.scale.1);
        // Grid coordinates span [-1, 1] over the image: one pixel is 2/H.
        let shift = self.max_translation_pixels * 2.0 / height;
        let (tx, ty) = (uniform(-shift, shift), uniform(-shift, shift));
        // affine_grid maps each output point to the input point it samples,
        // so dividing by `scale` samples a smaller area: the digit grows.
        let (cos, sin) = (angle.cos() / &scale, angle.sin() / &scale);
        let theta = Tensor::stack(&[&cos, &(-&sin), &tx, &sin, &cos, &ty], 1).view([n, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
        // Bilinear sampling, zero padding.
        let moved = images.grid_sampler(&grid, 0, 0, false);
        if self.thicken <= 0.0 {
            return moved;
        }
        let chosen = Tensor::rand([n, 1, 1, 1], opts).lt(self.thicken);
        // Each chosen image grows by `pixels` in 1..=thicken_pixels: repeated
        // 3x3 dilations, each image taking the one its draw names.
        let most = i64::from(self.thicken_pixels.max(1));
        let pixels = (Tensor::rand([n, 1, 1, 1], opts) * most as f64).floor() + 1.0;
        let (mut thick, mut out) = (moved.shallow_clone(), moved.shallow_clone());
        for grown in 1..=most {
            thick = thick.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false);
            let here = chosen.logical_and(&pixels.eq(grown as f64));
            out = thick.where_self(&here, &out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;

    /// No rotation, translation, scaling or thickening.
    const STILL: Augment = Augment {
        max_rotation_degrees: 0.0,
        max_translation_pixels: 0.0,
        scale: (1.0, 1.0),
        thicken: 0.0,
        thicken_pixels: 1,
    };

    #[test]
    fn identity_ranges_leave_images_unchanged() {
        let x = Tensor::rand([4, 1, 28, 28], (Kind::Float, Device::Cpu));
        let y = STILL.apply(&x);
        assert!(y.allclose(&x, 1e-5, 1e-5, false));
    }

    #[test]
    fn augmentation_changes_images_but_keeps_shape_and_range() {
        tch::manual_seed(1);
        let x = Tensor::rand([8, 1, 28, 28], (Kind::Float, Device::Cpu));
        let y = Augment::default().apply(&x);
        assert_eq!(y.size(), x.size());
        assert!(!y.allclose(&x, 1e-3, 1e-3, false));
        assert!(y.min().double_value(&[]) >= 0.0 && y.max().double_value(&[]) <= 1.0 + 1e-6);
    }

    #[test]
    fn translation_only_moves_a_centered_blob_without_losing_it() {
        let shift = Augment { max_translation_pixels: 2.0, ..STILL };
        let x = Tensor::zeros([16, 1, 28, 28], (Kind::Float, Device::Cpu));
        let _ = x.narrow(2, 10, 8).narrow(3, 10, 8).fill_(1.0);
        tch::manual_seed(5);
        let y = shift.apply(&x);
        let mass_in = x.sum(Kind::Float).double_value(&[]);
        let mass_out = y.sum(Kind::Float).double_value(&[]);
        assert!((mass_in - mass_out).abs() / mass_in < 1e-3, "{mass_in} vs {mass_out}");
        assert!(!y.allclose(&x, 1e-3, 1e-3, false));
    }

    #[test]
    fn thickening_widens_strokes_of_the_chosen_share() {
        let thicken = Augment { thicken: 1.0, ..STILL };
        // A 2-pixel-wide vertical bar becomes 4 pixels wide, keeping its peak.
        let x = Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu));
        let _ = x.narrow(2, 6, 16).narrow(3, 13, 2).fill_(1.0);
        let y = thicken.apply(&x);
        let width = |t: &Tensor| t.get(0).get(0).get(14).gt(0.5).sum(Kind::Int64).int64_value(&[]);
        assert_eq!((width(&x), width(&y)), (2, 4));
        assert!((y.max().double_value(&[]) - 1.0).abs() < 1e-6);
        let none = Augment { thicken: 0.0, ..thicken };
        assert_eq!(width(&none.apply(&x)), 2);

        // Up to 3 pixels each side: the bar grows to 4, 6 or 8 pixels, each drawn.
        let x = Tensor::zeros([64, 1, 28, 28], (Kind::Float, Device::Cpu));
        let _ = x.narrow(2, 6, 16).narrow(3, 13, 2).fill_(1.0);
        tch::manual_seed(2);
        let y = Augment { thicken_pixels: 3, ..thicken }.apply(&x);
        let mut widths: Vec<i64> =
            (0..64).map(|i| y.get(i).get(0).get(14).gt(0.5).sum(Kind::Int64).int64_value(&[])).collect();
        widths.sort_unstable();
        widths.dedup();
        assert_eq!(widths, [4, 6, 8]);
    }
}
