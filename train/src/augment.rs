//! Random affine augmentation of whole batches on the training device.
//!
//! One `affine_grid` + `grid_sample` per batch: every image gets its own
//! rotation, scale and translation without leaving libtorch or allocating
//! per image. Images cut at the frame take one more, to fit what is left
//! of them again.

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
    /// Share of images with one side of the digit cut off (up to
    /// [`MAX_CUT`] of its extent) and what is left fitted and centred again
    /// as MNIST's digits are: a digit photographed against the frame, which
    /// the preprocessing fits as if it were whole.
    pub cut: f64,
}

/// The deepest cut, as a share of the digit's ink along the cut axis: the
/// test photos' digits reach up to 8 % of their drawing field beyond the
/// frame, about a ninth of their ink.
pub const MAX_CUT: f64 = 0.15;

/// Pixels above this are ink when a digit's extent is measured.
const INK: f64 = 0.1;

/// Side of MNIST's digit box inside its 28x28 frame.
const DIGIT_BOX: f64 = 20.0;

impl Default for Augment {
    /// ±10°, ±2 px, 0.9-1.1: what MNIST's own variation looks like.
    fn default() -> Self {
        Self {
            max_rotation_degrees: 10.0,
            max_translation_pixels: 2.0,
            scale: (0.9, 1.1),
            thicken: 0.0,
            thicken_pixels: 1,
            cut: 0.0,
        }
    }
}

impl Augment {
    /// Transforms `[N, 1, H, W]` images in [0, 1]; areas moved in from
    /// outside the frame are black, like MNIST's background.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        let cut;
        let images = if self.cut > 0.0 {
            cut = self.cut_at_the_frame(images);
            &cut
        } else {
            images
        };
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

    /// Cuts one side (drawn per image) off the digits of a [`Augment::cut`]
    /// share of `images`, up to [`MAX_CUT`] of their ink's extent, and fits
    /// what is left to MNIST's 20-pixel box, its centre of mass at the
    /// frame's centre, as the preprocessing fits a digit cut by a photo's
    /// frame. Blank images and the others are left as they are.
    fn cut_at_the_frame(&self, images: &Tensor) -> Tensor {
        let size = images.size();
        let (n, height, width) = (size[0], size[2], size[3]);
        let opts = (Kind::Float, images.device());
        let rows = Tensor::arange(height, opts).view([1, 1, height, 1]);
        let columns = Tensor::arange(width, opts).view([1, 1, 1, width]);
        let (top, bottom, left, right) = ink_extent(images);
        let inked = bottom.ge_tensor(&top);
        let chosen = Tensor::rand([n, 1, 1, 1], opts).lt(self.cut).logical_and(&inked);
        let side = (Tensor::rand([n, 1, 1, 1], opts) * 4.0).floor();
        let depth = Tensor::rand([n, 1, 1, 1], opts) * MAX_CUT;
        let (tall, wide) = (&bottom - &top + 1.0, &right - &left + 1.0);
        // Each side keeps the pixels past its cut line.
        let keep = [
            columns.ge_tensor(&(&left + &wide * &depth)),
            columns.le_tensor(&(&right - &wide * &depth)),
            rows.ge_tensor(&(&top + &tall * &depth)),
            rows.le_tensor(&(&bottom - &tall * &depth)),
        ];
        let mut kept = keep[3].shallow_clone();
        for (index, mask) in keep.iter().enumerate().take(3) {
            kept = mask.where_self(&side.eq(index as f64), &kept);
        }
        let cut = images.where_self(&kept.logical_or(&chosen.logical_not()), &images.zeros_like());

        // Fit again: zoom so the longer side of what is left is 20 pixels,
        // about its centre of mass, which lands on the frame's centre.
        let (top, bottom, left, right) = ink_extent(&cut);
        let longer = (&bottom - &top + 1.0).maximum(&(&right - &left + 1.0)).clamp_min(1.0);
        let zoom = (longer / DIGIT_BOX).where_self(&chosen, &Tensor::ones_like(&top));
        let mass = cut.sum_dim_intlist([2, 3].as_slice(), true, Kind::Float).clamp_min(1e-6);
        let centre = |coordinate: &Tensor, side: i64| {
            let pixel = (&cut * coordinate).sum_dim_intlist([2, 3].as_slice(), true, Kind::Float) / &mass;
            // Normalized grid coordinates: pixel i's centre is (2i + 1) / side - 1.
            let normalized = (pixel * 2.0 + 1.0) / side as f64 - 1.0;
            normalized.where_self(&chosen, &Tensor::zeros_like(&top))
        };
        let (cx, cy) = (centre(&columns, width), centre(&rows, height));
        let zero = Tensor::zeros_like(&top);
        let theta = Tensor::stack(&[&zoom, &zero, &cx, &zero, &zoom, &cy], 1).view([n, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
        let fitted = cut.grid_sampler(&grid, 0, 0, false);
        fitted.where_self(&chosen, images)
    }
}

/// The first and last inked row and column of each of `images`
/// (`[N, 1, 1, 1]` each, as floats; bottom < top for a blank image).
fn ink_extent(images: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
    let size = images.size();
    let (n, height, width) = (size[0], size[2], size[3]);
    let opts = (Kind::Float, images.device());
    let ink = images.gt(INK);
    let first_and_last = |inked: Tensor, length: i64| {
        let index = Tensor::arange(length, opts).view([1, length]);
        let none_after = Tensor::full([1, length], length as f64, opts);
        let none_before = Tensor::full([1, length], -1.0, opts);
        let first = index.where_self(&inked, &none_after).amin([1].as_slice(), false).view([n, 1, 1, 1]);
        let last = index.where_self(&inked, &none_before).amax([1].as_slice(), false).view([n, 1, 1, 1]);
        (first, last)
    };
    let (top, bottom) = first_and_last(ink.any_dim(3, false).view([n, height]), height);
    let (left, right) = first_and_last(ink.any_dim(2, false).view([n, width]), width);
    (top, bottom, left, right)
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
        cut: 0.0,
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
    fn cut_digits_lose_a_side_and_are_fitted_again() {
        // A bar 20 rows tall and 10 columns wide, its centre of mass a
        // little off the frame's centre, in 64 images all chosen.
        let x = Tensor::zeros([64, 1, 28, 28], (Kind::Float, Device::Cpu));
        let _ = x.narrow(2, 4, 20).narrow(3, 10, 10).fill_(1.0);
        tch::manual_seed(3);
        let y = Augment { cut: 1.0, ..STILL }.apply(&x);
        let (top, bottom, left, right) = ink_extent(&y);
        let (mut narrower, mut shorter_cut) = (0, 0);
        for i in 0..64 {
            let at = |t: &Tensor| t.double_value(&[i, 0, 0, 0]);
            let (tall, wide) = (at(&bottom) - at(&top) + 1.0, at(&right) - at(&left) + 1.0);
            // Fitted again: the longer side fills MNIST's 20-pixel box.
            assert!((19.0..=21.0).contains(&tall), "image {i}: {tall} rows");
            // Cut at most 15 %, then zoomed back: never wider than a zoomed whole bar.
            assert!((8.0..=12.5).contains(&wide), "image {i}: {wide} columns");
            narrower += usize::from(wide < 9.5);
            shorter_cut += usize::from(wide > 10.5);
            // Its centre of mass on the frame's centre (grid_sample's, 13.5).
            let image = y.get(i).get(0);
            let mass = image.sum(Kind::Float).double_value(&[]);
            let columns = Tensor::arange(28, (Kind::Float, Device::Cpu)).view([1, 28]);
            let cx = (&image * &columns).sum(Kind::Float).double_value(&[]) / mass;
            assert!((cx - 13.5).abs() < 0.75, "image {i}: centre of mass at column {cx}");
        }
        // Cut at the left or right: narrower; at the top or bottom: zoomed, so wider.
        assert!(narrower > 8 && shorter_cut > 8, "{narrower} narrower, {shorter_cut} zoomed wider");

        // None chosen, a blank image: unchanged.
        assert!(Augment { cut: 0.0, ..STILL }.apply(&x).allclose(&x, 1e-6, 1e-6, false));
        let blank = Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu));
        assert!(Augment { cut: 1.0, ..STILL }.apply(&blank).allclose(&blank, 1e-6, 1e-6, false));
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
