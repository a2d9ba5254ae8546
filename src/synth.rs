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
        }
    }

    fn has(self, feature: Feature) -> bool {
        use Condition::*;
        match feature {
            Feature::Colour => self == ColouredInk,
            Feature::Pencil => matches!(self, FaintPencil | PencilWithSpecks),
            Feature::RuledLines => matches!(self, Ruled | ShadowOnRuled),
            Feature::Grid => self == Squared,
            Feature::Gradient => self == UnevenLight,
            Feature::Shadow => matches!(self, UnevenLight | ShadowOnRuled),
            Feature::Specks => matches!(self, SmallWithSpecks | PencilWithSpecks),
            Feature::SmallDigit => self == SmallWithSpecks,
            Feature::Blur => self == BlurredJpeg,
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
        let long = self.page_side;
        let short = (long as f32 * rng.random_range(0.75..=1.0)) as u32;
        let (width, height) = if rng.random_bool(0.5) { (long, short) } else { (short, long) };

        let (paper, ink) = colours(rng, condition);
        let mut page = RgbImage::from_pixel(width, height, Rgb(paper));
        draw_paper_lines(&mut page, rng, condition, height as f32 * 0.20..=height as f32 * 0.30);

        // The digit: a 28x28 coverage map scaled up and laid on the paper
        // as ink. MNIST digits fill a 20x20 box inside the 28x28 field.
        let digit_height = if condition.has(Feature::SmallDigit) {
            height.min(width) as f32 * rng.random_range(0.10..=0.17)
        } else {
            height.min(width) as f32 * rng.random_range(0.35..=0.65)
        };
        let field = ((digit_height * IMAGE_SIDE as f32 / 20.0) as u32).max(IMAGE_SIDE as u32);
        let margin = field / 7; // the field's own empty border
        let max_x = width.saturating_sub(field - margin).max(1);
        let max_y = height.saturating_sub(field - margin).max(1);
        let x0 = rng.random_range(0..max_x) as i64 - i64::from(margin / 2);
        let y0 = rng.random_range(0..max_y) as i64 - i64::from(margin / 2);
        let strength = if condition.has(Feature::Pencil) { rng.random_range(0.75..=0.95) } else { 1.0 };
        lay_ink(&mut page, digit, field, (x0, y0), ink, strength);
        finish(&mut page, rng, condition);
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
            lay_ink(&mut page, digit, field, (x0, y0), ink, strength);
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
        if condition.has(Feature::Blur) { self.rng.random_range(12..=30) } else { 88 }
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

/// Lays one digit on the page as ink: its 28x28 coverage map scaled
/// smoothly to `field` pixels square with its top left corner at `origin`.
fn lay_ink(page: &mut RgbImage, digit: &[u8], field: u32, origin: (i64, i64), ink: [f32; 3], strength: f32) {
    let (width, height) = page.dimensions();
    let coverage = image::GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, digit.to_vec())
        .map(|d| imageops::resize(&d, field, field, imageops::FilterType::CatmullRom))
        .unwrap_or_else(|| image::GrayImage::new(field, field));
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
