//! Synthetic phone-style photos of MNIST digits, for testing and measuring
//! [`crate::preprocess`] on what people photograph: digits on ruled or
//! squared paper, in uneven light, in faint pencil, small among dust specks.
//!
//! Each photo is an MNIST test digit drawn as ink on paper (its 28x28
//! intensities are the ink's coverage, upscaled smoothly), then the
//! condition's paper, light, lines and noise, then JPEG compression as a
//! phone would save it. Everything is drawn from a seeded generator, so a
//! seed gives the same photos on every machine: tests can assert on them.

use image::{DynamicImage, Rgb, RgbImage, imageops};
use imageproc::{
    geometric_transformations::{Border, Interpolation, Projection, rotate_about_center, warp},
    morphology::Mask,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::IMAGE_SIDE;

/// What makes a photo hard to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// Coloured ink (blue, red, green, violet) on tinted paper.
    ColouredInk,
    /// A blurred photo saved as a strongly compressed JPEG.
    BlurredJpeg,
    /// Faint pencil: ink 110-160 on paper 215-250, with paper grain.
    FaintPencil,
    /// Ruled notebook paper: thin gray lines every 20-30 % of the page.
    Ruled,
    /// Brightness falling off across the page by 60-110 levels, plus a
    /// soft shadow.
    UnevenLight,
    /// Squared paper: a grid of thin lines.
    Squared,
    /// A small digit (a few % of the page) with dust specks around it.
    SmallWithSpecks,
    /// A shadow on ruled paper.
    ShadowOnRuled,
    /// Faint pencil with dust specks.
    PencilWithSpecks,
    /// Dark ink on plain light paper, evenly lit: a scan.
    Clean,
    /// A margin rule or a table border, darker and thicker than a ruled
    /// line, that stops short of the page's edges and touches the digit.
    ShortRule,
    /// Strokes 2-3 times MNIST's width, as a felt-tip marker draws them.
    Marker,
    /// The digit turned by 15-30 degrees either way.
    Rotated,
    /// The digit touching the photo's frame, a little of it cut off.
    AtTheFrame,
    /// Grainy light chalk on a dark board, unevenly lit and smudged.
    Chalkboard,
    /// A tiny crop (24-48 px) around the digit, saved as a rough JPEG.
    TinyCrop,
    /// The page seen at a slant: a mild perspective.
    Perspective,
}

impl Condition {
    /// Every condition, the single ones first.
    pub const ALL: [Condition; 9] = [
        Condition::ColouredInk,
        Condition::BlurredJpeg,
        Condition::FaintPencil,
        Condition::Ruled,
        Condition::UnevenLight,
        Condition::Squared,
        Condition::SmallWithSpecks,
        Condition::ShadowOnRuled,
        Condition::PencilWithSpecks,
    ];

    /// The conditions single digits still failed under (rules and borders
    /// that stop short, marker strokes), and the ones they read right under
    /// that must stay so.
    pub const HARDER: [Condition; 7] = [
        Condition::ShortRule,
        Condition::Marker,
        Condition::Rotated,
        Condition::AtTheFrame,
        Condition::Chalkboard,
        Condition::TinyCrop,
        Condition::Perspective,
    ];

    /// The conditions numbers are written under ([`PhotoGenerator::number`]).
    pub const NUMBERS: [Condition; 5] =
        [Condition::Clean, Condition::Ruled, Condition::UnevenLight, Condition::FaintPencil, Condition::BlurredJpeg];

    /// A short name for file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            Condition::ColouredInk => "coloured-ink",
            Condition::BlurredJpeg => "blurred-jpeg",
            Condition::FaintPencil => "faint-pencil",
            Condition::Ruled => "ruled",
            Condition::UnevenLight => "uneven-light",
            Condition::Squared => "squared",
            Condition::SmallWithSpecks => "small-specks",
            Condition::ShadowOnRuled => "shadow-ruled",
            Condition::PencilWithSpecks => "pencil-specks",
            Condition::Clean => "clean",
            Condition::ShortRule => "short-rule",
            Condition::Marker => "marker",
            Condition::Rotated => "rotated",
            Condition::AtTheFrame => "at-the-frame",
            Condition::Chalkboard => "chalkboard",
            Condition::TinyCrop => "tiny-crop",
            Condition::Perspective => "perspective",
        }
    }

    fn has(self, feature: Feature) -> bool {
        use Condition::*;
        match feature {
            Feature::Colour => self == ColouredInk,
            Feature::Pencil => matches!(self, FaintPencil | PencilWithSpecks),
            Feature::RuledLines => matches!(self, Ruled | ShadowOnRuled),
            Feature::Grid => self == Squared,
            Feature::Gradient => matches!(self, UnevenLight | Chalkboard),
            Feature::Shadow => matches!(self, UnevenLight | ShadowOnRuled),
            Feature::Specks => matches!(self, SmallWithSpecks | PencilWithSpecks),
            Feature::SmallDigit => self == SmallWithSpecks,
            Feature::Blur => self == BlurredJpeg,
            Feature::Smudges => self == Chalkboard,
        }
    }
}

#[derive(Clone, Copy)]
enum Feature {
    Colour,
    Pencil,
    RuledLines,
    Grid,
    Gradient,
    Shadow,
    Specks,
    SmallDigit,
    Blur,
    Smudges,
}

/// Draws photos; one generator per seed.
pub struct PhotoGenerator {
    rng: StdRng,
    /// Longest side of the pages drawn, in pixels.
    pub page_side: u32,
}

impl PhotoGenerator {
    /// A generator of pages whose longer side is `page_side` pixels.
    pub fn new(seed: u64, page_side: u32) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), page_side: page_side.max(64) }
    }

    /// Draws one MNIST digit (784 bytes, bright ink on black) as a photo
    /// under `condition`, and returns it JPEG-encoded.
    pub fn photo_jpeg(&mut self, digit: &[u8], condition: Condition) -> Vec<u8> {
        let quality = self.jpeg_quality(condition);
        let page = self.photo(digit, condition);
        jpeg(page, quality)
    }

    /// Draws one MNIST digit as a photo under `condition` (not encoded).
    pub fn photo(&mut self, digit: &[u8], condition: Condition) -> RgbImage {
        let rng = &mut self.rng;
        // Pages are portrait or landscape, 3:4 to 1:1.
        let long = if condition == Condition::TinyCrop { rng.random_range(24..=48) } else { self.page_side };
        let short = (long as f32 * rng.random_range(0.75..=1.0)) as u32;
        let (width, height) = if rng.random_bool(0.5) { (long, short) } else { (short, long) };

        let (paper, ink) = colours(rng, condition);
        let mut page = RgbImage::from_pixel(width, height, Rgb(paper));
        draw_paper_lines(&mut page, rng, condition, height as f32 * 0.20..=height as f32 * 0.30);

        // The digit: a 28x28 coverage map scaled up and laid on the paper
        // as ink. MNIST digits fill a 20x20 box inside the 28x28 field.
        let digit_height = if condition.has(Feature::SmallDigit) {
            height.min(width) as f32 * rng.random_range(0.10..=0.17)
        } else if condition == Condition::TinyCrop {
            height.min(width) as f32 * rng.random_range(0.55..=0.75)
        } else {
            height.min(width) as f32 * rng.random_range(0.35..=0.65)
        };
        let field = ((digit_height * IMAGE_SIDE as f32 / 20.0) as u32).max(IMAGE_SIDE as u32);
        let margin = field / 7; // the field's own empty border
        let max_x = width.saturating_sub(field - margin).max(1);
        let max_y = height.saturating_sub(field - margin).max(1);
        let mut x0 = rng.random_range(0..max_x) as i64 - i64::from(margin / 2);
        let mut y0 = rng.random_range(0..max_y) as i64 - i64::from(margin / 2);
        let strength = if condition.has(Feature::Pencil) { rng.random_range(0.75..=0.95) } else { 1.0 };
        let mut coverage = scaled_coverage(digit, field);
        // Where the digit's ink is within its field, in page pixels.
        let cell = |c: usize| (c as f32 * field as f32 / IMAGE_SIDE as f32) as i64;
        let ((c0, c1), (r0, r1)) = (ink_columns(digit), ink_rows(digit));
        match condition {
            Condition::Marker => {
                let radius = (field as f32 * rng.random_range(0.035..=0.06)).round().clamp(1.0, 255.0) as u8;
                coverage = imageproc::morphology::grayscale_dilate(&coverage, &Mask::disk(radius));
            }
            Condition::Rotated => {
                let degrees = rng.random_range(15.0..=30.0f32) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                coverage = rotate_about_center(
                    &coverage,
                    degrees.to_radians(),
                    Interpolation::Bilinear,
                    Border::Constant(image::Luma([0])),
                );
            }
            Condition::Chalkboard => {
                // Chalk leaves grainy strokes: each pixel's coverage thinned at random.
                for value in coverage.iter_mut() {
                    *value = (f32::from(*value) * rng.random_range(0.45..=1.0f32)) as u8;
                }
            }
            Condition::AtTheFrame => {
                // The ink's first or last column or row on the frame, up
                // to 8 % of the field beyond it.
                let beyond = (field as f32 * rng.random_range(0.0..=0.08)) as i64;
                match rng.random_range(0..4) {
                    0 => x0 = -cell(c0) - beyond,
                    1 => x0 = i64::from(width) - cell(c1 + 1) + beyond,
                    2 => y0 = -cell(r0) - beyond,
                    _ => y0 = i64::from(height) - cell(r1 + 1) + beyond,
                }
            }
            Condition::ShortRule => {
                let ink_box = [x0 + cell(c0), y0 + cell(r0), x0 + cell(c1 + 1), y0 + cell(r1 + 1)];
                draw_short_rule(&mut page, rng, ink_box);
            }
            _ => {}
        }
        lay_coverage(&mut page, &coverage, (x0, y0), ink, strength);
        finish(&mut page, rng, condition);
        if condition == Condition::Perspective {
            page = slanted(&page, rng);
        }
        page
    }

    /// Draws a handwritten number, one MNIST digit (784 bytes each) after
    /// the other on one line, under `condition`, and returns it
    /// JPEG-encoded. See [`PhotoGenerator::number`].
    pub fn number_jpeg(&mut self, digits: &[&[u8]], spacing: Spacing, condition: Condition) -> Vec<u8> {
        let quality = self.jpeg_quality(condition);
        let (page, _) = self.number(digits, spacing, condition);
        jpeg(page, quality)
    }

    /// [`PhotoGenerator::number_jpeg`], with where each digit's ink is on
    /// the page: `[x0, y0, x1, y1]` (exclusive ends), in the digits' order.
    pub fn number_jpeg_with_boxes(
        &mut self,
        digits: &[&[u8]],
        spacing: Spacing,
        condition: Condition,
    ) -> (Vec<u8>, Vec<[u32; 4]>) {
        let quality = self.jpeg_quality(condition);
        let (page, boxes) = self.number(digits, spacing, condition);
        (jpeg(page, quality), boxes)
    }

    /// Draws a handwritten number as a photo (not encoded): the digits left
    /// to right, their inked parts `spacing` apart (overlapping a little
    /// when touching), each 0.85-1.15x the line's size, the baseline
    /// wobbling by up to a tenth of the height, with margins around; the
    /// page's longer side is `page_side`. Ruled lines run every 1.1-1.5
    /// digit heights and may cross the digits. Also returns each digit's
    /// ink box, `[x0, y0, x1, y1]`.
    pub fn number(&mut self, digits: &[&[u8]], spacing: Spacing, condition: Condition) -> (RgbImage, Vec<[u32; 4]>) {
        let rng = &mut self.rng;
        // The layout in digit heights (the 20-pixel box of MNIST = 1.0).
        let sizes: Vec<f32> = digits.iter().map(|_| rng.random_range(0.85..=1.15f32)).collect();
        let inks: Vec<(usize, usize)> = digits.iter().map(|d| ink_columns(d)).collect();
        let (gap_low, gap_high) = spacing.gap();
        let gaps: Vec<f32> = digits.iter().skip(1).map(|_| rng.random_range(gap_low..=gap_high)).collect();
        let side_margin = rng.random_range(0.3..=0.9f32);
        let mut lefts = Vec::with_capacity(digits.len());
        let mut at = side_margin;
        for (n, (&(c0, c1), &size)) in inks.iter().zip(&sizes).enumerate() {
            lefts.push(at - c0 as f32 / 20.0 * size);
            at += (c1 + 1 - c0) as f32 / 20.0 * size + gaps.get(n).copied().unwrap_or(0.0);
        }
        let width_units = at + side_margin;
        let height_units = rng.random_range(1.6..=2.4f32);
        let unit = self.page_side as f32 / width_units.max(height_units);
        let (width, height) = ((width_units * unit).round() as u32, (height_units * unit).round() as u32);

        let (paper, ink) = colours(rng, condition);
        let mut page = RgbImage::from_pixel(width.max(1), height.max(1), Rgb(paper));
        draw_paper_lines(&mut page, rng, condition, unit * 1.1..=unit * 1.5);

        let strength = if condition.has(Feature::Pencil) { rng.random_range(0.75..=0.95) } else { 1.0 };
        let wobble = rng.random_range(0.0..=0.1f32);
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        let frequency = rng.random_range(0.5..=1.5f32);
        let mut boxes = Vec::with_capacity(digits.len());
        for (n, digit) in digits.iter().enumerate() {
            let field_units = sizes[n] * IMAGE_SIDE as f32 / 20.0;
            let field = ((field_units * unit) as u32).max(IMAGE_SIDE as u32);
            let middle = height_units / 2.0 + wobble * (phase + frequency * n as f32).sin();
            let x0 = (lefts[n] * unit) as i64;
            let y0 = ((middle - field_units / 2.0) * unit) as i64;
            lay_coverage(&mut page, &scaled_coverage(digit, field), (x0, y0), ink, strength);
            let (c0, c1) = inks[n];
            let (r0, r1) = ink_rows(digit);
            let at = |origin: i64, cell: usize| {
                (origin + (cell as f32 * field as f32 / IMAGE_SIDE as f32) as i64).max(0) as u32
            };
            boxes.push([at(x0, c0), at(y0, r0), at(x0, c1 + 1), at(y0, r1 + 1)]);
        }
        finish(&mut page, rng, condition);
        (page, boxes)
    }

    /// Picks the digits of a number: 2 to 8 indices below `available` (of
    /// a dataset's images), at random.
    pub fn pick_number(&mut self, available: usize) -> Vec<usize> {
        let length = self.rng.random_range(2..=8usize);
        (0..length).map(|_| self.rng.random_range(0..available.max(1))).collect()
    }

    /// The JPEG quality a phone would save a page with: strongly
    /// compressed when `condition` blurs.
    fn jpeg_quality(&mut self, condition: Condition) -> u8 {
        match condition {
            _ if condition.has(Feature::Blur) => self.rng.random_range(12..=30),
            Condition::TinyCrop => self.rng.random_range(35..=70),
            _ => 88,
        }
    }
}

fn jpeg(page: RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
    // Encoding an in-memory RGB image into a Vec cannot fail.
    let _ = DynamicImage::ImageRgb8(page).write_with_encoder(encoder);
    bytes
}

/// How far apart the digits of a number are written: the gap between the
/// inked parts of neighbours, in digit heights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Spacing {
    /// 0.35-0.6 of a digit's height apart.
    Wide,
    /// 0.12-0.3 apart: how most people write numbers.
    Normal,
    /// 0.02-0.1 apart.
    Close,
    /// Inked parts overlapping by 0.03-0.12 of a digit's height: strokes
    /// of neighbours touch or cross.
    Touching,
}

impl Spacing {
    /// Every spacing, widest first.
    pub const ALL: [Spacing; 4] = [Spacing::Wide, Spacing::Normal, Spacing::Close, Spacing::Touching];

    /// A short name for file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            Spacing::Wide => "wide",
            Spacing::Normal => "normal",
            Spacing::Close => "close",
            Spacing::Touching => "touching",
        }
    }

    fn gap(self) -> (f32, f32) {
        match self {
            Spacing::Wide => (0.35, 0.6),
            Spacing::Normal => (0.12, 0.3),
            Spacing::Close => (0.02, 0.1),
            Spacing::Touching => (-0.12, -0.03),
        }
    }
}

/// The first and last column of a 28x28 digit holding clear ink (0..28
/// when it holds none).
fn ink_columns(digit: &[u8]) -> (usize, usize) {
    let inked = |x: usize| (0..IMAGE_SIDE).any(|y| digit.get(y * IMAGE_SIDE + x).is_some_and(|&v| v > 64));
    let first = (0..IMAGE_SIDE).find(|&x| inked(x)).unwrap_or(0);
    let last = (0..IMAGE_SIDE).rev().find(|&x| inked(x)).unwrap_or(IMAGE_SIDE - 1);
    (first, last.max(first))
}

/// The first and last row of a 28x28 digit holding clear ink.
fn ink_rows(digit: &[u8]) -> (usize, usize) {
    let inked = |y: usize| (0..IMAGE_SIDE).any(|x| digit.get(y * IMAGE_SIDE + x).is_some_and(|&v| v > 64));
    let first = (0..IMAGE_SIDE).find(|&y| inked(y)).unwrap_or(0);
    let last = (0..IMAGE_SIDE).rev().find(|&y| inked(y)).unwrap_or(IMAGE_SIDE - 1);
    (first, last.max(first))
}

/// Ruled or squared paper's lines, as `condition` has them: horizontal
/// rules spaced within `rule_spacing` (pixels), or a grid.
fn draw_paper_lines(
    page: &mut RgbImage,
    rng: &mut StdRng,
    condition: Condition,
    rule_spacing: std::ops::RangeInclusive<f32>,
) {
    let (width, height) = page.dimensions();
    if condition.has(Feature::RuledLines) {
        let spacing = rng.random_range(rule_spacing).max(2.0);
        let offset = rng.random_range(0.0..spacing);
        let thickness = rng.random_range(1..=3u32.max(height / 250));
        let level = rng.random_range(120.0..=180.0f32);
        let mut y = offset;
        while (y as u32) < height {
            draw_line(page, true, y as u32, thickness, level, 0.6);
            y += spacing;
        }
    }
    if condition.has(Feature::Grid) {
        let spacing = width.min(height) as f32 * rng.random_range(0.10..=0.20);
        let thickness = rng.random_range(1..=2u32.max(height / 300));
        let level = rng.random_range(130.0..=190.0f32);
        for horizontal in [true, false] {
            let extent = if horizontal { height } else { width };
            let mut at = rng.random_range(0.0..spacing);
            while (at as u32) < extent {
                draw_line(page, horizontal, at as u32, thickness, level, 0.5);
                at += spacing;
            }
        }
    }
}

/// A digit's 28x28 coverage map scaled smoothly to `field` pixels square.
fn scaled_coverage(digit: &[u8], field: u32) -> image::GrayImage {
    image::GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, digit.to_vec())
        .map(|d| imageops::resize(&d, field, field, imageops::FilterType::CatmullRom))
        .unwrap_or_else(|| image::GrayImage::new(field, field))
}

/// Lays a coverage map on the page as ink, its top left corner at `origin`.
fn lay_coverage(page: &mut RgbImage, coverage: &image::GrayImage, origin: (i64, i64), ink: [f32; 3], strength: f32) {
    let (width, height) = page.dimensions();
    for (x, y, c) in coverage.enumerate_pixels() {
        let (px, py) = (origin.0 + i64::from(x), origin.1 + i64::from(y));
        if px < 0 || py < 0 || px >= i64::from(width) || py >= i64::from(height) {
            continue;
        }
        let alpha = f32::from(c.0[0]) / 255.0 * strength;
        if alpha > 0.0 {
            let pixel = page.get_pixel_mut(px as u32, py as u32);
            for (channel, ink) in pixel.0.iter_mut().zip(ink) {
                *channel = (f32::from(*channel) * (1.0 - alpha) + ink * alpha) as u8;
            }
        }
    }
}

/// What comes after the ink: dust specks, light (a gradient, a shadow),
/// sensor noise and blur, as `condition` has them.
fn finish(page: &mut RgbImage, rng: &mut StdRng, condition: Condition) {
    let (width, height) = page.dimensions();
    if condition.has(Feature::Specks) {
        let count = rng.random_range(8..=30);
        for _ in 0..count {
            let (cx, cy) = (rng.random_range(0..width) as i64, rng.random_range(0..height) as i64);
            let radius = rng.random_range(0.8..=(2.5f32.max(width as f32 / 250.0)));
            let level = rng.random_range(20.0..=110.0f32);
            let r = radius.ceil() as i64;
            for dy in -r..=r {
                for dx in -r..=r {
                    let (px, py) = (cx + dx, cy + dy);
                    if px < 0 || py < 0 || px >= i64::from(width) || py >= i64::from(height) {
                        continue;
                    }
                    let distance = ((dx * dx + dy * dy) as f32).sqrt();
                    let alpha = (radius + 0.5 - distance).clamp(0.0, 1.0);
                    let pixel = page.get_pixel_mut(px as u32, py as u32);
                    for channel in &mut pixel.0 {
                        *channel = (f32::from(*channel) * (1.0 - alpha) + level * alpha) as u8;
                    }
                }
            }
        }
    }

    if condition.has(Feature::Smudges) {
        // Wiped chalk: soft light blotches, each up to a third of the page.
        for _ in 0..rng.random_range(3..=6) {
            let (cx, cy) = (rng.random_range(0..width) as f32, rng.random_range(0..height) as f32);
            let radius = rng.random_range(0.1..=0.33) * width.max(height) as f32;
            let lift = rng.random_range(12.0..=35.0f32);
            for (x, y, pixel) in page.enumerate_pixels_mut() {
                let distance = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt() / radius;
                let amount = lift * (1.0 - smoothstep(0.0, 1.0, distance));
                for channel in &mut pixel.0 {
                    *channel = (f32::from(*channel) + amount).min(255.0) as u8;
                }
            }
        }
    }

    // Light: a gradient across the page and/or a soft shadow, as
    // multiplicative factors on what the camera saw.
    let gradient = condition.has(Feature::Gradient).then(|| {
        let angle = rng.random_range(0.0..std::f32::consts::TAU);
        let drop = rng.random_range(60.0..=110.0f32) / 255.0;
        (angle.cos(), angle.sin(), drop)
    });
    let shadow = condition.has(Feature::Shadow).then(|| {
        // A soft-edged half-plane through a random point.
        let angle = rng.random_range(0.0..std::f32::consts::TAU);
        let (px, py) = (rng.random_range(0.2..0.8) * width as f32, rng.random_range(0.2..0.8) * height as f32);
        let softness = rng.random_range(0.05..=0.15) * width.max(height) as f32;
        let depth = rng.random_range(0.25..=0.45f32);
        (angle.cos(), angle.sin(), px, py, softness, depth)
    });
    let grain = if condition.has(Feature::Pencil) { 8.0 } else { 3.0 };
    let (w, h) = (width as f32, height as f32);
    for (x, y, pixel) in page.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32, y as f32);
        let mut light = 1.0;
        if let Some((dx, dy, drop)) = gradient {
            // 0 at the brightest corner, 1 at the darkest.
            let along = ((fx / w - 0.5) * dx + (fy / h - 0.5) * dy) / std::f32::consts::SQRT_2 + 0.5;
            light -= drop * along.clamp(0.0, 1.0);
        }
        if let Some((dx, dy, px, py, softness, depth)) = shadow {
            let signed = (fx - px) * dx + (fy - py) * dy;
            light -= depth * smoothstep(-softness, softness, signed);
        }
        let noise = (rng.random::<f32>() + rng.random::<f32>() - 1.0) * grain;
        for channel in &mut pixel.0 {
            *channel = (f32::from(*channel) * light + noise).clamp(0.0, 255.0) as u8;
        }
    }

    if condition.has(Feature::Blur) {
        let sigma = rng.random_range(1.0..=2.2) * width.max(height) as f32 / 400.0;
        *page = imageops::blur(page, sigma);
    }
}

/// Paper and ink colours (RGB, 0-255) for a condition.
fn colours(rng: &mut StdRng, condition: Condition) -> ([u8; 3], [f32; 3]) {
    if condition.has(Feature::Colour) {
        let papers = [[245, 235, 200], [215, 230, 245], [245, 220, 225], [225, 240, 215], [238, 238, 230]];
        let inks = [[30.0, 50.0, 160.0], [170.0, 30.0, 40.0], [30.0, 110.0, 50.0], [90.0, 40.0, 140.0]];
        let paper = papers[rng.random_range(0..papers.len())];
        return (paper, inks[rng.random_range(0..inks.len())]);
    }
    if condition == Condition::Chalkboard {
        let boards = [[40, 62, 52], [34, 38, 42], [52, 58, 50], [28, 48, 40]];
        let chalk = rng.random_range(200.0..=240.0f32);
        return (boards[rng.random_range(0..boards.len())], [chalk; 3]);
    }
    if condition.has(Feature::Pencil) {
        let paper = rng.random_range(215..=250u8);
        let ink = rng.random_range(110.0..=160.0f32);
        return ([paper; 3], [ink; 3]);
    }
    let paper = rng.random_range(200..=250u8);
    let ink = rng.random_range(15.0..=70.0f32);
    ([paper; 3], [ink; 3])
}

/// Draws a straight line across the page, `thickness` pixels thick, at
/// gray `level` with opacity `alpha`.
fn draw_line(page: &mut RgbImage, horizontal: bool, at: u32, thickness: u32, level: f32, alpha: f32) {
    let (width, height) = page.dimensions();
    for t in 0..thickness {
        let line = at + t;
        let (count, limit) = if horizontal { (width, height) } else { (height, width) };
        if line >= limit {
            return;
        }
        for i in 0..count {
            let (x, y) = if horizontal { (i, line) } else { (line, i) };
            let pixel = page.get_pixel_mut(x, y);
            for channel in &mut pixel.0 {
                *channel = (f32::from(*channel) * (1.0 - alpha) + level * alpha) as u8;
            }
        }
    }
}

fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Draws a margin rule or a table border through or beside the digit whose
/// ink is `ink_box` (`[x0, y0, x1, y1]`): vertical or horizontal, darker and
/// thicker than a ruled line, touching the ink (on its edge or up to a
/// quarter into it), and ending short of the page's edges on both sides.
fn draw_short_rule(page: &mut RgbImage, rng: &mut StdRng, ink_box: [i64; 4]) {
    let (width, height) = page.dimensions();
    let vertical = rng.random_bool(0.5);
    let (across_from, across_to, along_from, along_to, along_extent) = if vertical {
        (ink_box[0], ink_box[2], ink_box[1], ink_box[3], i64::from(height))
    } else {
        (ink_box[1], ink_box[3], ink_box[0], ink_box[2], i64::from(width))
    };
    let thickness = rng.random_range(2..=3u32.max(width.max(height) / 120)) as i64;
    let ink_width = (across_to - across_from).max(1) as f32;
    let into = (rng.random_range(-0.05..=0.25f32) * ink_width) as i64;
    let at = if rng.random_bool(0.5) { across_from + into - thickness / 2 } else { across_to - into - thickness / 2 };
    let reach = (0.3 * along_extent as f32) as i64;
    let start = rng.random_range((along_from - reach).max(1)..=along_from.max(1));
    let end = rng.random_range(along_to.min(along_extent - 2)..=(along_to + reach).min(along_extent - 2).max(along_to));
    let level = rng.random_range(40.0..=140.0f32);
    for line in at..at + thickness {
        for i in start..end {
            let (x, y) = if vertical { (line, i) } else { (i, line) };
            if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
                continue;
            }
            let pixel = page.get_pixel_mut(x as u32, y as u32);
            for channel in &mut pixel.0 {
                *channel = (f32::from(*channel) * 0.15 + level * 0.85) as u8;
            }
        }
    }
}

/// The page as a camera held at a slant sees it: each corner of the photo
/// shows a point up to 8 % of the page in from that corner (a mild
/// perspective), the page filling the frame.
fn slanted(page: &RgbImage, rng: &mut StdRng) -> RgbImage {
    let (w, h) = (page.width() as f32, page.height() as f32);
    let mut inset = || (rng.random_range(0.0..=0.08f32) * w, rng.random_range(0.0..=0.08f32) * h);
    let ((ax, ay), (bx, by), (cx, cy), (dx, dy)) = (inset(), inset(), inset(), inset());
    let from = [(ax, ay), (w - 1.0 - bx, by), (w - 1.0 - cx, h - 1.0 - cy), (dx, h - 1.0 - dy)];
    let to = [(0.0, 0.0), (w - 1.0, 0.0), (w - 1.0, h - 1.0), (0.0, h - 1.0)];
    match Projection::from_control_points(from, to) {
        Some(projection) => warp(page, projection, Interpolation::Bilinear, Border::Replicate),
        None => page.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain stroke digit: a vertical bar with a foot, 28x28.
    fn digit() -> Vec<u8> {
        let mut pixels = vec![0u8; IMAGE_SIDE * IMAGE_SIDE];
        for y in 4..24 {
            for x in 12..16 {
                pixels[y * IMAGE_SIDE + x] = 255;
            }
        }
        for x in 8..20 {
            pixels[23 * IMAGE_SIDE + x] = 255;
        }
        pixels
    }

    fn darkest(page: &RgbImage, pixels: impl Iterator<Item = (u32, u32)>) -> u8 {
        pixels.map(|(x, y)| page.get_pixel(x, y).0[0]).min().unwrap_or(255)
    }

    #[test]
    fn the_harder_conditions_are_what_they_say() {
        let digit = digit();
        let mut generator = PhotoGenerator::new(3, 320);
        for _ in 0..8 {
            let tiny = generator.photo(&digit, Condition::TinyCrop);
            assert!(tiny.width().max(tiny.height()) <= 48, "{:?}", tiny.dimensions());

            let board = generator.photo(&digit, Condition::Chalkboard);
            let mean = board.pixels().map(|p| f32::from(p.0[1])).sum::<f32>() / (board.width() * board.height()) as f32;
            assert!(mean < 128.0, "a chalkboard is dark: mean {mean}");
            assert!(board.pixels().any(|p| p.0[1] > 150), "chalk is light");

            // At the frame: some ink on the photo's border.
            let framed = generator.photo(&digit, Condition::AtTheFrame);
            let (w, h) = framed.dimensions();
            let border = (0..w).flat_map(|x| [(x, 0), (x, h - 1)]).chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]));
            assert!(darkest(&framed, border) < 120, "the digit does not reach the frame");

            // Marker strokes: more dark pixels than the same digit's clean photo.
            let dark = |page: &RgbImage| page.pixels().filter(|p| p.0[0] < 120).count() as f32 / page.len() as f32;
            let (marker, clean) =
                (generator.photo(&digit, Condition::Marker), generator.photo(&digit, Condition::Clean));
            assert!(dark(&marker) > dark(&clean), "{} vs {}", dark(&marker), dark(&clean));
        }
    }

    #[test]
    fn a_short_rule_ends_inside_the_page_and_touches_the_digit() {
        let digit = digit();
        let mut generator = PhotoGenerator::new(5, 320);
        for _ in 0..8 {
            let page = generator.photo(&digit, Condition::ShortRule);
            let (w, h) = page.dimensions();
            // A rule is a dark row or column run longer than the digit is
            // tall or wide; none reaches both of the page's opposite edges.
            let dark = |x: u32, y: u32| page.get_pixel(x, y).0[0] < 160;
            let longest = |lines: u32, length: u32, at: &dyn Fn(u32, u32) -> bool| {
                (0..lines)
                    .map(|line| {
                        let (mut run, mut best, mut spans) = (0u32, 0u32, false);
                        for along in 0..length {
                            run = if at(line, along) { run + 1 } else { 0 };
                            best = best.max(run);
                            spans |= run == length;
                        }
                        (best, spans)
                    })
                    .fold((0, false), |a, b| (a.0.max(b.0), a.1 || b.1))
            };
            let rows = longest(h, w, &|y, x| dark(x, y));
            let columns = longest(w, h, &|x, y| dark(x, y));
            assert!(rows.0.max(columns.0) as f32 > 0.2 * w.min(h) as f32, "no rule: {rows:?} {columns:?}");
            assert!(!rows.1 && !columns.1, "a rule spans the page");
        }
    }

    #[test]
    fn photos_are_the_same_for_the_same_seed() {
        let digit = digit();
        for condition in Condition::HARDER {
            let a = PhotoGenerator::new(9, 200).photo_jpeg(&digit, condition);
            let b = PhotoGenerator::new(9, 200).photo_jpeg(&digit, condition);
            assert_eq!(a, b, "{}", condition.name());
        }
    }
}
