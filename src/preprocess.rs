//! Turns any image into a 28x28 digit in MNIST's convention.
//!
//! MNIST digits are bright ink on a black background, scaled to fit a 20x20
//! box with antialiasing, and placed in a 28x28 field with their center of
//! mass at the center. A model trained on them misreads photos of dark ink
//! on paper unless each image is brought to that convention first, which is
//! what [`to_mnist`] does (`docs/preprocessing.md` shows each step):
//!
//! 1. flatten to one gray channel (alpha composited over a contrasting
//!    background, any bit depth scaled to [0, 1]) and shrink to at most 320
//!    pixels a side, so a 12-megapixel photo costs little more than a
//!    scan; make the paper light: invert light ink on a dark ground, which
//!    way round the ink is being decided by the strokes (`polarity`), and
//!    read both ways when they do not say clearly;
//! 2. estimate the paper, shadows and gradients included (a grayscale
//!    closing on a low-resolution copy), and divide it out: what remains is
//!    how much darker than its paper each pixel is, the ink;
//! 3. threshold the ink (Otsu) into a mask, remove ruled and grid lines
//!    from it (restoring the strokes that cross them), and keep the
//!    connected components that group into the most ink, pieces near
//!    pieces (a broken stroke, the bar of a 5), so specks and marks
//!    elsewhere do not count; the mask selects pixels, the ink keeps its
//!    gray levels, stretched to full range; no such ink is an answer (no
//!    digit), and ink running into the frame is noted (a cut digit);
//! 4. crop to the digit, scale it to fit 20x20 keeping its aspect ratio,
//!    and center it by its center of mass.
//!
//! A 28x28 image is taken to be an MNIST-style digit already and is only
//! flattened and, if its border is light, inverted, so MNIST's own digits
//! pass through bit-exact.
//!
//! The server runs this on `image` inputs and the client on files it sends as
//! `pixels`: both give the same result for the same file.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageBuffer, ImageReader, Luma, imageops::FilterType};
use imageproc::distance_transform::Norm;

use crate::{Error, IMAGE_PIXELS, IMAGE_SIDE, Result, verdict::DigitNotes};

mod polarity;

/// Side of the box the digit is scaled to fit, as in MNIST.
const DIGIT_BOX: f32 = 20.0;

/// Where MNIST puts the digit's center of mass (row and column index).
const CENTER_OF_MASS: f32 = 14.0;

/// Fraction of the ink mass allowed outside the bounding box on each side,
/// so that a stray anti-aliased pixel does not widen the crop.
const CROP_TRIM: f32 = 0.002;

/// Longest side at which a photo is cleaned up. A digit that a person can
/// read in a photo is still tens of pixels tall at this size, and the work
/// no longer grows with the camera's resolution: a 12-megapixel photo is
/// shrunk (area-averaged) before anything else is done to it.
const WORK_SIDE: u32 = 320;

/// Longest side of the low-resolution copy on which the paper (its colour,
/// shadows and gradients) is estimated.
const PAPER_SIDE: u32 = 64;

/// Largest closing radius the paper estimate grows to for wide strokes
/// (see `GrayPlane::paper_radius_for_strokes`), on its low-resolution copy.
const MAX_PAPER_RADIUS: u32 = 16;

/// A digit whose full-strength strokes (half the stretched ink and more)
/// cover fewer pixels than this, at the work size, is a speck: no digit.
/// The smallest digits of `mnist::synth`'s photos (a few % of the page)
/// cover 60 and more.
const MIN_DIGIT_PIXELS: usize = 24;

/// A digit with at least this many full-strength pixels on the image's
/// outermost row or column runs into the frame: it is cut.
const CUT_MIN_PIXELS: usize = 2;

/// A 28x28 image whose every pixel is below this (after making the ink
/// bright) holds no digit.
const NO_INK_BYTE: u8 = 32;

/// Fewer ink pixels than this say nothing about the strokes' width.
const MIN_STROKE_PIXELS: usize = 64;

/// Ink fainter than this (after the paper is divided out) is never the
/// digit: paper grain, JPEG ringing.
const MIN_INK: f32 = 0.08;

/// A row (column) whose ink covers at least this share of the page's width
/// (height) is a ruled or grid line, not part of a digit.
const LINE_COVERAGE: f32 = 0.7;

/// A straight run of ink at least this share of the page long may be a
/// rule that stops short of the edges (see [`remove_short_rules`]).
const RULE_MIN_RUN: f32 = 0.2;

/// ... and at least this many pixels long.
const RULE_MIN_PIXELS: usize = 48;

/// A rule is at most this share of the page's short side across.
const RULE_MAX_WIDTH: f32 = 0.02;

/// Share of a run's length that must be thin for it to be a rule.
const RULE_THIN_SHARE: f32 = 0.6;

/// Components with less ink than this share of the digit's are specks.
const MIN_PART_MASS: f32 = 0.04;

/// How far (as a share of the larger side of either) two pieces may lie
/// apart and still be parts of one digit: the detached bar of a 5, a broken 4.
const MAX_PART_GAP: f32 = 0.3;

/// Most components grouped into the digit (the heaviest ones): the grouping
/// compares every pair, so this bounds its work on a page of noise.
const MAX_PARTS: usize = 64;

/// Bounds on what [`decode`] accepts, checked before pixels are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded file, in bytes.
    pub max_encoded_bytes: usize,
    /// Longest side, in pixels.
    pub max_side: u32,
    /// Most pixels (width x height).
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 16 MiB files, 8192 pixels a side, 24 megapixels: a phone photo fits,
    /// a decompression bomb does not.
    fn default() -> Self {
        Self { max_encoded_bytes: 16 << 20, max_side: 8192, max_pixels: 24_000_000 }
    }
}

/// Decodes an image file in any supported format (PNG, JPEG, BMP, GIF, WebP,
/// PNM, TIFF), refusing files and dimensions over `limits` before decoding
/// their pixels.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage> {
    if bytes.len() > limits.max_encoded_bytes {
        return Err(Error::ImageTooLarge { size: bytes.len(), limit: limits.max_encoded_bytes });
    }
    let reader =
        || ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::Decode(e.to_string()));
    let (width, height) = reader()?.into_dimensions().map_err(|e| Error::Decode(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(Error::EmptyImage { width, height });
    }
    if width > limits.max_side || height > limits.max_side || u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(Error::ImageDimensions { width, height, max_side: limits.max_side, max_pixels: limits.max_pixels });
    }
    let mut reader = reader()?;
    // A backstop for formats whose header understates what decoding allocates.
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16));
    reader.limits(decoder_limits);
    reader.decode().map_err(|e| Error::Decode(e.to_string()))
}

/// Whether an image of `width` x `height` is in MNIST's own form, 28x28,
/// which preprocessing uses unchanged (only its polarity is checked);
/// every other size is a photo or scan, fitted to 28x28.
pub fn is_mnist_size(width: u32, height: u32) -> bool {
    let side = IMAGE_SIDE as u32;
    (width, height) == (side, side)
}

/// Whether an image file is a photo or scan that preprocessing fits to
/// MNIST's 28x28 (not [`is_mnist_size`]): read from its header only. A
/// file whose header cannot be read counts as one (decoding it reports why).
pub fn needs_fitting(bytes: &[u8]) -> bool {
    let dimensions =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok().and_then(|r| r.into_dimensions().ok());
    !dimensions.is_some_and(|(width, height)| is_mnist_size(width, height))
}

/// Decodes an image file and converts it to 784 MNIST-style pixels.
pub fn preprocess(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>> {
    Ok(to_mnist(&decode(bytes, limits)?))
}

/// Checks that raw pixels hold exactly one 28x28 image.
pub fn check_pixels(pixels: &[u8]) -> Result<()> {
    if pixels.len() == IMAGE_PIXELS { Ok(()) } else { Err(Error::PixelCount(pixels.len())) }
}

/// Converts a decoded image into 784 bytes, row-major, in MNIST's convention
/// (see the module documentation): [`view_digit`]'s first view.
pub fn to_mnist(image: &DynamicImage) -> Vec<u8> {
    view_digit(image).pixels
}

/// What preprocessing made of an image of one digit: what the model is to
/// see, and what the model cannot know (no digit at all, a digit cut by the
/// frame, ink whose way round is uncertain). [`crate::verdict::conclude`]
/// turns the model's answers on it into the answer a caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitView {
    /// The 784 pixels the model sees (all 0 when there is no digit).
    pub pixels: Vec<u8>,
    /// The image read the other way round (light ink taken for dark, or
    /// the reverse), when its strokes do not say clearly which way the ink
    /// is: the model sees both and the likelier wins.
    pub other_polarity: Option<Vec<u8>>,
    /// What the caller should be told beside the digit.
    pub notes: DigitNotes,
    /// How many digit-like marks stand side by side: more than one means
    /// the image holds a number (read it with [`crate::read`]), and the
    /// pixels are only its largest digit.
    pub digits_side_by_side: usize,
}

impl DigitView {
    /// The view of an image that holds no digit: nothing for the model.
    fn no_digit() -> Self {
        let notes = DigitNotes { no_digit: true, ..DigitNotes::default() };
        Self { pixels: vec![0; IMAGE_PIXELS], other_polarity: None, notes, digits_side_by_side: 0 }
    }
}

/// Preprocesses a decoded image of one digit: its 28x28 view(s) and notes.
pub fn view_digit(image: &DynamicImage) -> DigitView {
    view_digit_with_steps(image, &mut |_, _| {})
}

/// Decodes an image file and views it as one digit ([`view_digit`]).
pub fn view_file(bytes: &[u8], limits: &DecodeLimits) -> Result<DigitView> {
    Ok(view_digit(&decode(bytes, limits)?))
}

/// A page of one polarity, seen as one digit.
struct OneWay {
    pixels: Vec<u8>,
    cut_by_frame: bool,
    digits_side_by_side: usize,
}

fn view_digit_with_steps(image: &DynamicImage, steps: &mut Steps<'_>) -> DigitView {
    if is_mnist_size(image.width(), image.height()) {
        let mut plane = GrayPlane::from_image(image);
        plane.make_ink_bright();
        let pixels = plane.to_bytes();
        let no_digit = pixels.iter().all(|&p| p < NO_INK_BYTE);
        let notes = DigitNotes { no_digit, ..DigitNotes::default() };
        return DigitView { pixels, other_polarity: None, notes, digits_side_by_side: usize::from(!no_digit) };
    }
    let image = shrink_to_work_size(image, WORK_SIDE);
    let plane = GrayPlane::from_image(&image);
    let polarity = plane.polarity();
    if !polarity.has_marks() {
        // Nothing stands out from its ground either way: blank paper, a
        // black frame, a gradient.
        return DigitView::no_digit();
    }
    let light_ink = polarity.light_ink();
    let other_way = (!polarity.certain()).then(|| plane.clone().into_oriented(!light_ink));
    let first = plane.into_oriented(light_ink).one_digit(steps);
    let second = other_way.and_then(|plane| plane.one_digit(&mut |_, _| {}));
    let (primary, other) = match (first, second) {
        (Some(first), second) => (Some(first), second),
        // Read one way the page has no digit at all: the other way it is.
        (None, second) => (second, None),
    };
    let Some(primary) = primary else { return DigitView::no_digit() };
    let notes = DigitNotes { no_digit: false, cut_by_frame: primary.cut_by_frame, polarity_uncertain: other.is_some() };
    DigitView {
        pixels: primary.pixels,
        other_polarity: other.map(|o| o.pixels),
        notes,
        digits_side_by_side: primary.digits_side_by_side,
    }
}

/// Every intermediate image of [`to_mnist`], in order, each with what it
/// shows: for documentation (`docs/preprocessing.md` is drawn from it) and
/// for seeing why a photo was misread. The last one is what the model sees.
pub fn to_mnist_steps(image: &DynamicImage) -> Vec<(&'static str, GrayImage)> {
    let mut steps = Vec::new();
    let pixels = view_digit_with_steps(image, &mut |name, plane| steps.push((name, plane.to_gray_image()))).pixels;
    let side = IMAGE_SIDE as u32;
    if let Some(seen) = GrayImage::from_raw(side, side, pixels) {
        steps.push(("what the model sees: cropped, fitted to 20x20, centred by mass in 28x28", seen));
    }
    steps
}

/// An observer of the intermediate planes (see [`to_mnist_steps`]).
pub(crate) type Steps<'a> = dyn FnMut(&'static str, &GrayPlane) + 'a;

/// Steps 1 to 3 up to the mask, shared with [`crate::read`]: the image
/// shrunk to at most `work_side` pixels a side, its paper divided out, the
/// ink thresholded and ruled lines removed. `None` when nothing on the page
/// stands out from the paper.
pub(crate) fn page_ink(image: &DynamicImage, work_side: u32, steps: &mut Steps<'_>) -> Option<InkPage> {
    let image = shrink_to_work_size(image, work_side);
    let plane = GrayPlane::from_image(&image);
    let light_ink = plane.polarity().light_ink();
    plane.into_oriented(light_ink).ink_page(steps)
}

/// The image itself when it is small enough, else a copy whose longer side
/// is `work_side` (each source pixel averaged into one target pixel).
fn shrink_to_work_size(image: &DynamicImage, work_side: u32) -> std::borrow::Cow<'_, DynamicImage> {
    if image.width().max(image.height()) <= work_side {
        std::borrow::Cow::Borrowed(image)
    } else {
        std::borrow::Cow::Owned(image.thumbnail(work_side, work_side))
    }
}

/// A page's ink (how much darker than its paper each pixel is, 0 to 1) and
/// the mask of the pixels taken for strokes: above the Otsu threshold, ruled
/// and grid lines removed. Digits are cut from it.
pub(crate) struct InkPage {
    /// Width of the page, in pixels (at the work size).
    pub width: usize,
    /// Height of the page, in pixels (at the work size).
    pub height: usize,
    /// Ink of every pixel, row-major.
    pub ink: Vec<f32>,
    /// Whether each pixel belongs to a stroke.
    pub mask: Vec<bool>,
    /// The threshold the mask was taken at.
    pub level: f32,
}

/// A connected component of a page's mask (see [`InkPage::components`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Component {
    /// Its label in [`InkPage::labels`].
    pub(crate) label: u32,
    /// The box of its ink, `x0..x1` x `y0..y1` (ends exclusive, work pixels).
    pub(crate) x0: usize,
    pub(crate) x1: usize,
    pub(crate) y0: usize,
    pub(crate) y1: usize,
    /// Its ink: the sum of its pixels' ink.
    pub(crate) mass: f32,
}

impl Component {
    /// Columns from its first inked one to its last.
    pub(crate) fn width(&self) -> usize {
        self.x1 - self.x0
    }

    /// Rows from its first inked one to its last.
    pub(crate) fn height(&self) -> usize {
        self.y1 - self.y0
    }

    /// Takes `other` in: the box holding both, the ink of both (its label
    /// stays this one's).
    fn absorb(&mut self, other: &Component) {
        self.x0 = self.x0.min(other.x0);
        self.x1 = self.x1.max(other.x1);
        self.y0 = self.y0.min(other.y0);
        self.y1 = self.y1.max(other.y1);
        self.mass += other.mass;
    }
}

impl InkPage {
    /// The label of every pixel's 8-connected component of the mask (0
    /// where there is no ink), row-major.
    pub fn labels(&self) -> Vec<u32> {
        use imageproc::region_labelling::{Connectivity, connected_components};
        let w = self.width;
        let image = ImageBuffer::<Luma<u8>, Vec<u8>>::from_fn(w as u32, self.height as u32, |x, y| {
            Luma([u8::from(self.mask[y as usize * w + x as usize])])
        });
        connected_components(&image, Connectivity::Eight, Luma([0u8])).into_raw()
    }

    /// Every component of the mask labelled `labels` (see
    /// [`InkPage::labels`]), in label order: its box and ink, measured in
    /// one pass and shared by everything that looks at components (the
    /// single digit, the count of digits side by side, reading).
    pub(crate) fn components(&self, labels: &[u32]) -> Vec<Component> {
        let w = self.width;
        let mut components: Vec<Option<Component>> = Vec::new();
        for (i, &label) in labels.iter().enumerate() {
            if label == 0 {
                continue;
            }
            let slot = label as usize - 1;
            if components.len() <= slot {
                components.resize(slot + 1, None);
            }
            let (x, y) = (i % w, i / w);
            let c = components[slot].get_or_insert(Component { label, x0: x, x1: x + 1, y0: y, y1: y + 1, mass: 0.0 });
            c.x0 = c.x0.min(x);
            c.x1 = c.x1.max(x + 1);
            c.y0 = c.y0.min(y);
            c.y1 = c.y1.max(y + 1);
            c.mass += self.ink[i];
        }
        components.into_iter().flatten().collect()
    }

    /// The one digit of a page whose mask is labelled `labels`: the
    /// components grouping into the most ink (see `digit_components`),
    /// stretched (step 3's end); `None` when no component is left.
    fn isolate_digit(self, labels: &[u32], components: &[Component], steps: &mut Steps<'_>) -> Option<GrayPlane> {
        let keep = digit_components(labels, components)?;
        let digit = self.keep_only(&keep)?;
        steps("the digit: the pieces grouping into the most ink, gray levels kept, stretched", &digit);
        Some(digit)
    }

    /// The 784 pixels the model sees for the strokes `keep(x, y)` selects
    /// within the `x0..x1` x `y0..y1` window of the page: the window's ink
    /// masked, stretched, fitted and centred as for a single digit.
    pub fn digit_pixels(&self, window: (usize, usize, usize, usize), keep: impl Fn(usize, usize) -> bool) -> Vec<u8> {
        digit_pixels_of(&self.ink, self.width, self.level, window, keep)
    }

    /// The page's ink where `keep` holds (and a pixel or two around it),
    /// stretched as for a digit ([`InkPage::keep_only`]), row-major: the
    /// line of a number, read whole by [`crate::read::line`].
    pub(crate) fn kept_ink(&self, keep: &[bool]) -> Option<Vec<f32>> {
        self.keep_only(keep).map(|plane| plane.values)
    }

    /// The ink of the pixels `keep` selects, widened by a pixel or two so
    /// the strokes' antialiased edges (below the threshold) come along, and
    /// stretched so the strongest strokes become MNIST's 1.0. The ink keeps
    /// its gray levels: the mask selects pixels, the model sees antialiased
    /// strokes. `None` when nothing is kept.
    fn keep_only(&self, keep: &[bool]) -> Option<GrayPlane> {
        let (w, h) = (self.width, self.height);
        let keep_image = ImageBuffer::<Luma<u8>, Vec<u8>>::from_fn(w as u32, h as u32, |x, y| {
            Luma([if keep[y as usize * w + x as usize] { 255 } else { 0 }])
        });
        let grow = (w.max(h) / 256).clamp(1, 2) as u8;
        let keep = imageproc::morphology::dilate(&keep_image, imageproc::distance_transform::Norm::LInf, grow);
        let mut values: Vec<f32> =
            self.ink.iter().zip(keep.as_raw()).map(|(&v, &k)| if k > 0 { v } else { 0.0 }).collect();
        let mut strokes: Vec<f32> = values.iter().copied().filter(|&v| v > self.level).collect();
        let full = percentile(&mut strokes, 0.95);
        if full <= 0.0 {
            return None;
        }
        values.iter_mut().for_each(|v| *v = (*v / full).min(1.0));
        Some(GrayPlane { width: w as u32, height: h as u32, values })
    }
}

/// [`InkPage::digit_pixels`] of a page's `ink` (`width` pixels a row,
/// strokes above `level`), for callers that keep a page's ink without its mask.
pub(crate) fn digit_pixels_of(
    ink: &[f32],
    width: usize,
    level: f32,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    keep: impl Fn(usize, usize) -> bool,
) -> Vec<u8> {
    let height = ink.len() / width.max(1);
    let (x1, y1) = (x1.min(width), y1.min(height));
    if x0 >= x1 || y0 >= y1 {
        return vec![0; IMAGE_PIXELS];
    }
    let (w, h) = (x1 - x0, y1 - y0);
    let mut window = InkPage { width: w, height: h, ink: Vec::with_capacity(w * h), mask: Vec::new(), level };
    let mut window_keep = Vec::with_capacity(w * h);
    for y in y0..y1 {
        let row = y * width;
        window.ink.extend_from_slice(&ink[row + x0..row + x1]);
        window_keep.extend((x0..x1).map(|x| keep(x, y)));
    }
    match window.keep_only(&window_keep) {
        Some(digit) => digit.fit_and_center().to_bytes(),
        None => vec![0; IMAGE_PIXELS],
    }
}

/// One channel of f32 values in [0, 1], row-major.
#[derive(Debug, Clone)]
pub(crate) struct GrayPlane {
    width: u32,
    height: u32,
    values: Vec<f32>,
}

impl GrayPlane {
    /// Luma (ITU-R 601, as PIL and the reference compute it) of any image,
    /// with transparency composited over a background that contrasts with the
    /// opaque ink: dark strokes on a transparent sheet become dark on white,
    /// light strokes become light on black.
    fn from_image(image: &DynamicImage) -> Self {
        let rgba = image.to_rgba32f();
        let (width, height) = rgba.dimensions();
        let mut luma = Vec::with_capacity(rgba.len() / 4);
        let mut alpha = Vec::with_capacity(rgba.len() / 4);
        for px in rgba.pixels() {
            let [r, g, b, a] = px.0;
            luma.push((0.299 * r + 0.587 * g + 0.114 * b).clamp(0.0, 1.0));
            alpha.push(a.clamp(0.0, 1.0));
        }
        if image.color().has_alpha() && alpha.iter().any(|&a| a < 1.0) {
            let opaque: f32 = alpha.iter().sum();
            let ink: f32 = luma.iter().zip(&alpha).map(|(l, a)| l * a).sum();
            let background = if opaque > 0.0 && ink / opaque < 0.5 { 1.0 } else { 0.0 };
            for (l, a) in luma.iter_mut().zip(&alpha) {
                *l = *l * a + background * (1.0 - a);
            }
        }
        Self { width, height, values: luma }
    }

    /// Inverts the image when its border (the background, for a digit that
    /// does not fill the frame) is light.
    fn make_ink_bright(&mut self) {
        if self.border_median() > 0.5 {
            self.values.iter_mut().for_each(|v| *v = 1.0 - *v);
        }
    }

    fn border_median(&self) -> f32 {
        median(&mut self.border())
    }

    /// The pixels of a ring about 3% of the shorter side thick (at least one
    /// pixel) around the image.
    fn border(&self) -> Vec<f32> {
        let (w, h) = (self.width as usize, self.height as usize);
        let ring = (w.min(h) / 32).max(1);
        let mut border = Vec::new();
        for y in 0..h {
            for x in 0..w {
                if x < ring || y < ring || x + ring >= w || y + ring >= h {
                    border.push(self.values[y * w + x]);
                }
            }
        }
        border
    }

    /// Which way round the ink is, by the strokes (`polarity`).
    fn polarity(&self) -> polarity::Polarity {
        polarity::of_strokes(&self.values, self.width, self.height)
    }

    /// This plane with its paper light: inverted when the ink is light.
    fn into_oriented(mut self, light_ink: bool) -> Self {
        if light_ink {
            self.values.iter_mut().for_each(|v| *v = 1.0 - *v);
        }
        self
    }

    /// Steps 2 and 3 on a plane whose paper is light: the ink page, or
    /// `None` when nothing on it stands out from the paper.
    fn ink_page(&self, steps: &mut Steps<'_>) -> Option<InkPage> {
        steps("gray, at most 320 px, paper light", self);
        let ink = self.ink_on_flat_paper(steps);
        steps("ink: how much darker than its paper each pixel is", &ink);
        ink.threshold_without_lines(steps)
    }

    /// The one digit of a plane whose paper is light (steps 2 to 4), with
    /// what is noted about it; `None` when it holds no digit: nothing
    /// stands out from the paper, or what does is a speck.
    fn one_digit(&self, steps: &mut Steps<'_>) -> Option<OneWay> {
        let page = self.ink_page(steps)?;
        let labels = page.labels();
        let components = page.components(&labels);
        let digits_side_by_side = crate::read::digits_side_by_side(&components);
        let digit = page.isolate_digit(&labels, &components, steps)?;
        if digit.full_strength_pixels() < MIN_DIGIT_PIXELS {
            return None;
        }
        let cut_by_frame = digit.full_strength_on_frame() >= CUT_MIN_PIXELS;
        Some(OneWay { pixels: digit.fit_and_center().to_bytes(), cut_by_frame, digits_side_by_side })
    }

    /// Pixels at half the stretched ink and more.
    fn full_strength_pixels(&self) -> usize {
        self.values.iter().filter(|&&v| v >= 0.5).count()
    }

    /// Full-strength pixels on the image's outermost rows and columns.
    fn full_strength_on_frame(&self) -> usize {
        let (w, h) = (self.width as usize, self.height as usize);
        (0..w * h)
            .filter(|&i| {
                let (x, y) = (i % w, i / w);
                (x == 0 || y == 0 || x + 1 == w || y + 1 == h) && self.values[i] >= 0.5
            })
            .count()
    }

    /// Divides the paper out: estimates the paper's brightness everywhere
    /// (a grayscale closing, which removes every stroke thinner than its
    /// window, on a low-resolution copy, then smoothed and scaled back up)
    /// and returns how much darker than its paper each pixel is, as bright
    /// ink on black. Shadows, gradients and tinted paper become 0; faint
    /// pencil keeps its strokes' relative darkness.
    fn ink_on_flat_paper(&self, steps: &mut Steps<'_>) -> Self {
        let (w, h) = (self.width, self.height);
        let gray = self.to_gray_image();
        let scale = (PAPER_SIDE as f32 / w.max(h) as f32).min(1.0);
        let (small_w, small_h) = if scale < 1.0 {
            (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1))
        } else {
            (w, h)
        };
        let small = image::imageops::thumbnail(&gray, small_w, small_h);
        // The window must be wider than a stroke: a digit that fills the
        // page has strokes about a tenth of its side wide. On a long strip
        // (a number) the digits scale with the short side, and a window
        // as tall as the strip would close a shadow across it over too:
        // never more than an eighth of the short side (for pages from 3:4 to 1:1,
        // as single-digit photos are, the first bound is the smaller).
        let radius = (small_w.max(small_h) / 10).min(small_w.min(small_h) / 8).clamp(1, 12) as u8;
        let (mut ink, mut paper) = self.ink_over_paper(&small, radius);
        // Marker strokes can be wider than that window: their middles,
        // taken for paper, fade (a 7 becomes an outline, read as a 9). When
        // the strokes found are that wide, the paper is estimated again
        // with a window that spans them; thinner strokes keep the window
        // above, which follows shadows more closely. (Measuring the strokes
        // on the ink over the widest window instead would keep very wide
        // strokes whole, but takes the shadows of unevenly lit pages for
        // strokes too.)
        let widest = (small_w.max(small_h) / 4).clamp(1, MAX_PAPER_RADIUS) as u8;
        let needed = ink.paper_radius_for_strokes(scale).min(widest);
        if needed > radius {
            (ink, paper) = self.ink_over_paper(&small, needed);
        }
        steps("the paper, estimated: strokes closed over, shadows kept", &paper);
        ink
    }

    /// The ink of this plane over a paper estimated from `small` (its
    /// low-resolution copy) by a closing of `radius`, and that paper.
    fn ink_over_paper(&self, small: &GrayImage, radius: u8) -> (Self, Self) {
        let (w, h) = (self.width, self.height);
        let paper = imageproc::morphology::grayscale_close(small, &imageproc::morphology::Mask::square(radius));
        let paper = imageproc::filter::gaussian_blur_f32(&paper, f32::from(radius) / 2.0);
        let paper = image::imageops::resize(&paper, w, h, FilterType::Triangle);
        let paper =
            Self { width: w, height: h, values: paper.as_raw().iter().map(|&p| f32::from(p) / 255.0).collect() };
        let values = self
            .values
            .iter()
            .zip(&paper.values)
            .map(|(&v, &p)| if p < 0.05 { 0.0 } else { (1.0 - v / p).clamp(0.0, 1.0) })
            .collect();
        (Self { width: w, height: h, values }, paper)
    }

    /// The closing radius, on a copy `scale` times this ink plane's size,
    /// that spans its strokes where two of them meet (half as wide again
    /// as one): the stroke width is twice the depth that nine in ten ink
    /// pixels lie within from the paper (a distance transform of the ink
    /// above half its Otsu level, so that middles already fading count).
    /// 0 when there is too little ink to tell.
    fn paper_radius_for_strokes(&self, scale: f32) -> u8 {
        let gray = self.to_gray_image();
        let level = (f32::from(imageproc::contrast::otsu_level(&gray)) / 255.0).max(MIN_INK * 2.0) / 2.0;
        let paper_only = GrayImage::from_fn(self.width, self.height, |x, y| {
            let v = self.values[(y * self.width + x) as usize];
            Luma([if v > level { 0 } else { 255 }])
        });
        let depth = imageproc::distance_transform::distance_transform(&paper_only, Norm::L2);
        let mut depths: Vec<f32> = paper_only
            .pixels()
            .zip(depth.pixels())
            .filter(|(p, _)| p.0[0] == 0)
            .map(|(_, d)| f32::from(d.0[0]))
            .collect();
        if depths.len() < MIN_STROKE_PIXELS {
            return 0;
        }
        let stroke = 2.0 * percentile(&mut depths, 0.9) * scale;
        ((1.5 * stroke - 1.0) / 2.0).ceil().clamp(0.0, f32::from(u8::MAX)) as u8
    }

    /// Thresholds an ink plane (Otsu) into a mask and removes ruled and
    /// grid lines from it (restoring the strokes that cross them); `None`
    /// when nothing stands out from the paper.
    fn threshold_without_lines(self, steps: &mut Steps<'_>) -> Option<InkPage> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut sorted = self.values.clone();
        if w == 0 || h == 0 || percentile(&mut sorted, 0.999) < MIN_INK * 2.0 {
            return None; // nothing on the page stands out from the paper
        }
        let level = (f32::from(imageproc::contrast::otsu_level(&self.to_gray_image())) / 255.0).max(MIN_INK);
        let mut ink = self.values;
        let mut mask: Vec<bool> = ink.iter().map(|&v| v > level).collect();
        let as_plane = |mask: &[bool]| Self {
            width: self.width,
            height: self.height,
            values: mask.iter().map(|&m| f32::from(u8::from(m))).collect(),
        };
        steps("ink above the Otsu threshold", &as_plane(&mask));
        remove_lines(&mut mask, &mut ink, w, h);
        remove_short_rules(&mut mask, &mut ink, w, h);
        steps("ruled and grid lines removed, crossing strokes restored", &as_plane(&mask));
        Some(InkPage { width: w, height: h, ink, mask, level })
    }

    /// Crops to the digit, scales it to fit 20x20 and centers it by mass in 28x28.
    fn fit_and_center(self) -> Self {
        let blank = Self { width: IMAGE_SIDE as u32, height: IMAGE_SIDE as u32, values: vec![0.0; IMAGE_PIXELS] };
        let w = self.width as usize;
        let Some((x0, x1, y0, y1)) = self.ink_bounds() else {
            return blank;
        };
        let (crop_w, crop_h) = (x1 - x0 + 1, y1 - y0 + 1);
        let mut crop = Vec::with_capacity(crop_w * crop_h);
        for y in y0..=y1 {
            crop.extend_from_slice(&self.values[y * w + x0..=y * w + x1]);
        }
        let scale = DIGIT_BOX / crop_w.max(crop_h) as f32;
        let new_w = ((crop_w as f32 * scale).round() as u32).clamp(1, DIGIT_BOX as u32);
        let new_h = ((crop_h as f32 * scale).round() as u32).clamp(1, DIGIT_BOX as u32);
        let Some(crop) = ImageBuffer::<Luma<f32>, Vec<f32>>::from_raw(crop_w as u32, crop_h as u32, crop) else {
            return blank;
        };
        // Triangle filtering widens its support with the scale factor, so a
        // large photo is area-averaged (antialiased) rather than point-sampled.
        let scaled = image::imageops::resize(&crop, new_w, new_h, FilterType::Triangle).into_raw();
        // Thin pen strokes lose intensity when shrunk a lot: bring the
        // strongest stroke back to full ink, as MNIST's strokes are.
        let scaled_peak = scaled.iter().copied().fold(0.0f32, f32::max);
        if scaled_peak <= 0.0 {
            return blank;
        }
        let scaled: Vec<f32> = scaled.iter().map(|v| (v / scaled_peak).clamp(0.0, 1.0)).collect();
        place_by_center_of_mass(&scaled, new_w as usize, new_h as usize)
    }

    /// Bounding box (x0, x1, y0, y1) holding all but a sliver of the ink mass.
    fn ink_bounds(&self) -> Option<(usize, usize, usize, usize)> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut cols = vec![0.0f64; w];
        let mut rows = vec![0.0f64; h];
        for (y, row) in self.values.chunks_exact(w).enumerate() {
            for (x, &v) in row.iter().enumerate() {
                cols[x] += f64::from(v);
                rows[y] += f64::from(v);
            }
        }
        let (x0, x1) = trimmed_range(&cols)?;
        let (y0, y1) = trimmed_range(&rows)?;
        Some((x0, x1, y0, y1))
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.values.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
    }

    fn to_gray_image(&self) -> GrayImage {
        // `values` always holds width x height pixels, so the buffer fits.
        GrayImage::from_raw(self.width, self.height, self.to_bytes())
            .unwrap_or_else(|| GrayImage::new(self.width, self.height))
    }
}

/// Removes ruled and grid lines from `mask` and `ink`: rows (columns) where
/// the mask covers at least [`LINE_COVERAGE`] of the page. Where a stroke
/// crosses a line (ink just above and just below the line's band), the band
/// is filled from both sides instead of cut.
fn remove_lines(mask: &mut [bool], ink: &mut [f32], w: usize, h: usize) {
    for horizontal in [true, false] {
        let (lines, length) = if horizontal { (h, w) } else { (w, h) };
        let index = |line: usize, along: usize| if horizontal { line * w + along } else { along * w + line };
        let is_line: Vec<bool> = (0..lines)
            .map(|line| {
                let covered = (0..length).filter(|&along| mask[index(line, along)]).count();
                covered as f32 >= LINE_COVERAGE * length as f32
            })
            .collect();
        let mut line = 0;
        while line < lines {
            if !is_line[line] {
                line += 1;
                continue;
            }
            let first = line;
            while line < lines && is_line[line] {
                line += 1;
            }
            let last = line - 1; // the band is first..=last
            for along in 0..length {
                let before = first.checked_sub(1).map(|l| index(l, along));
                let after = (last + 1 < lines).then(|| index(last + 1, along));
                let crossing = match (before, after) {
                    (Some(b), Some(a)) if mask[b] && mask[a] => Some((ink[b] + ink[a]) / 2.0),
                    _ => None,
                };
                for band in first..=last {
                    let i = index(band, along);
                    match crossing {
                        Some(value) => {
                            mask[i] = true;
                            ink[i] = value;
                        }
                        None => {
                            mask[i] = false;
                            ink[i] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// Removes rules and borders that stop short of the page's edges (a
/// margin rule, a table's border), which [`remove_lines`] leaves because
/// they cover too little of any row: straight runs of the mask at least
/// [`RULE_MIN_RUN`] of the page long, and thin across ([`RULE_MAX_WIDTH`]
/// of the page's short side, at least 3 px) along most of their length.
/// A digit's strokes are either short (a small digit's) or thick (a large
/// one's), never both long and thin. What is kept of such a run is where it
/// is thick across: where a stroke crosses or touches it.
///
/// A run at least `K` long is what an opening with a `K`-pixel line kernel
/// keeps; finding the runs directly costs one pass over the mask instead of
/// `K` per pixel.
fn remove_short_rules(mask: &mut [bool], ink: &mut [f32], w: usize, h: usize) {
    let thin = (RULE_MAX_WIDTH * w.min(h) as f32).max(3.0) as usize;
    for horizontal in [true, false] {
        let (lines, length) = if horizontal { (h, w) } else { (w, h) };
        let index = |line: usize, along: usize| if horizontal { line * w + along } else { along * w + line };
        // On a tiny image every stroke is thin and a rule cannot be told apart.
        let min_run = ((RULE_MIN_RUN * length as f32) as usize).max(RULE_MIN_PIXELS);
        // How far the mask reaches across the line from (line, along), both ways.
        let across = |mask: &[bool], line: usize, along: usize| {
            let up = (1..=thin + 1).take_while(|&d| line >= d && mask[index(line - d, along)]).count();
            let down = (1..=thin + 1).take_while(|&d| line + d < lines && mask[index(line + d, along)]).count();
            (up, down)
        };
        for line in 0..lines {
            let mut along = 0;
            while along < length {
                if !mask[index(line, along)] {
                    along += 1;
                    continue;
                }
                let start = along;
                while along < length && mask[index(line, along)] {
                    along += 1;
                }
                if along - start < min_run {
                    continue;
                }
                let widths: Vec<(usize, usize)> = (start..along).map(|a| across(mask, line, a)).collect();
                let thin_share = widths.iter().filter(|(up, down)| up + down < thin).count();
                if (thin_share as f32) < RULE_THIN_SHARE * widths.len() as f32 {
                    continue;
                }
                for (a, (up, down)) in (start..along).zip(widths) {
                    if up + down < thin {
                        for l in line - up..=line + down {
                            mask[index(l, a)] = false;
                            ink[index(l, a)] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The pixels of the digit: of the `components` of the mask labelled
/// `labels` (see [`InkPage::components`]), those with a real share of ink
/// (specks are left out) are grouped, two groups joining when the gap
/// between them is at most [`MAX_PART_GAP`] of the larger one's size and
/// they are not two digits of a number (tall marks side by side), and the
/// group with the most ink is the digit. Grouping pieces with pieces,
/// not only with the heaviest one, keeps a stroke broken in several pieces
/// whole even when its heaviest piece is a blot apart from them (a digit
/// written in faint or skipping ink, or cut by the frame); marks elsewhere
/// are left out.
fn digit_components(labels: &[u32], components: &[Component]) -> Option<Vec<bool>> {
    let heaviest = components.iter().map(|c| c.mass).fold(0.0f32, f32::max);
    // Gaps and sizes between first and last inked pixels, as the constants
    // were chosen with.
    let gap = |a0: usize, a1: usize, b0: usize, b1: usize| {
        let (a1, b1) = (a1 - 1, b1 - 1);
        if a1 < b0 {
            (b0 - a1) as f32
        } else if b1 < a0 {
            (a0 - b1) as f32
        } else {
            0.0
        }
    };
    let mut groups: Vec<(Component, Vec<u32>)> =
        components.iter().filter(|c| c.mass >= MIN_PART_MASS * heaviest).map(|c| (*c, vec![c.label])).collect();
    groups.sort_by(|a, b| b.0.mass.total_cmp(&a.0.mass));
    groups.truncate(MAX_PARTS);
    loop {
        let mut pair = None;
        'search: for i in 0..groups.len() {
            for j in i + 1..groups.len() {
                let (a, b) = (&groups[i].0, &groups[j].0);
                let side = (a.width().max(a.height()).max(b.width()).max(b.height()) - 1) as f32;
                // Two digits of a number are never parts of one digit.
                let height = (a.y1.max(b.y1) - a.y0.min(b.y0)) as f32;
                let apart =
                    crate::read::two_digits_side_by_side((a.x0, a.x1, a.height()), (b.x0, b.x1, b.height()), height);
                if !apart && gap(a.x0, a.x1, b.x0, b.x1).max(gap(a.y0, a.y1, b.y0, b.y1)) <= MAX_PART_GAP * side {
                    pair = Some((i, j));
                    break 'search;
                }
            }
        }
        let Some((i, j)) = pair else { break };
        let (b, labels_b) = groups.swap_remove(j);
        groups[i].0.absorb(&b);
        groups[i].1.extend(labels_b);
    }
    let (_, members) = groups.into_iter().max_by(|a, b| a.0.mass.total_cmp(&b.0.mass))?;
    let mut kept = vec![false; components.iter().map(|c| c.label as usize + 1).max().unwrap_or(0)];
    for label in members {
        kept[label as usize] = true;
    }
    Some(labels.iter().map(|&label| kept.get(label as usize).copied().unwrap_or(false)).collect())
}

/// The index range of `mass` that leaves at most [`CROP_TRIM`] of the total
/// outside on each side; `None` when there is no mass.
fn trimmed_range(mass: &[f64]) -> Option<(usize, usize)> {
    let total: f64 = mass.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let cut = total * f64::from(CROP_TRIM);
    let first = first_index_past(mass.iter(), cut)?;
    let last = mass.len() - 1 - first_index_past(mass.iter().rev(), cut)?;
    Some((first, last.max(first)))
}

fn first_index_past<'a>(mass: impl Iterator<Item = &'a f64>, cut: f64) -> Option<usize> {
    let mut cumulative = 0.0;
    for (i, m) in mass.enumerate() {
        cumulative += m;
        if cumulative > cut && *m > 0.0 {
            return Some(i);
        }
    }
    None
}

/// Pastes a `w` x `h` digit into 28x28 so that its center of mass falls on
/// MNIST's, keeping the whole digit inside the field.
fn place_by_center_of_mass(digit: &[f32], w: usize, h: usize) -> GrayPlane {
    let (mut mass, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
    for (i, &v) in digit.iter().enumerate() {
        mass += v;
        mx += v * (i % w) as f32;
        my += v * (i / w) as f32;
    }
    let (cx, cy) = if mass > 0.0 { (mx / mass, my / mass) } else { (w as f32 / 2.0, h as f32 / 2.0) };
    let side = IMAGE_SIDE as i64;
    let offset =
        |center: f32, len: usize| ((CENTER_OF_MASS - center).round() as i64).clamp(0, side - len as i64) as usize;
    let (ox, oy) = (offset(cx, w), offset(cy, h));
    let mut values = vec![0.0; IMAGE_PIXELS];
    for y in 0..h {
        let dst = (y + oy) * IMAGE_SIDE + ox;
        values[dst..dst + w].copy_from_slice(&digit[y * w..(y + 1) * w]);
    }
    GrayPlane { width: IMAGE_SIDE as u32, height: IMAGE_SIDE as u32, values }
}

fn median(values: &mut [f32]) -> f32 {
    percentile(values, 0.5)
}

/// The `q` quantile (0 to 1) of `values`, reordering them; 0 when empty.
fn percentile(values: &mut [f32], q: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let k = ((values.len() - 1) as f32 * q).round() as usize;
    *values.select_nth_unstable_by(k, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Rgba, RgbaImage};

    use super::*;

    #[test]
    fn components_are_measured_with_exclusive_ends_in_label_order() {
        // A 3x2 block of ink 0.5 and, apart from it, a single pixel of ink 1.
        let (w, h) = (10usize, 6usize);
        let mut ink = vec![0.0f32; w * h];
        for y in 1..3 {
            for x in 2..5 {
                ink[y * w + x] = 0.5;
            }
        }
        ink[4 * w + 8] = 1.0;
        let mask = ink.iter().map(|&v| v > 0.0).collect();
        let page = InkPage { width: w, height: h, ink, mask, level: 0.25 };
        let labels = page.labels();
        let components = page.components(&labels);
        let boxes: Vec<_> = components.iter().map(|c| (c.label, c.x0, c.x1, c.y0, c.y1, c.mass)).collect();
        assert_eq!(boxes, vec![(1, 2, 5, 1, 3, 3.0), (2, 8, 9, 4, 5, 1.0)]);
        assert_eq!((components[0].width(), components[0].height()), (3, 2));
        // The single digit keeps the heavier block and drops the far pixel.
        let keep = digit_components(&labels, &components).unwrap();
        assert_eq!(keep.iter().filter(|&&k| k).count(), 6);
        assert!(!keep[4 * w + 8]);
    }

    #[test]
    fn a_broken_stroke_is_kept_whole_though_its_heaviest_piece_is_a_blob_apart() {
        // A "1" written with a blot at its top and its stroke broken in
        // three: the blot is the heaviest piece, and the stroke's pieces lie
        // further from it than a third of its size, but near each other;
        // together they are a digit, and the blot belongs to it. A speck of
        // the blot's size far away does not.
        let (w, h) = (100usize, 90usize);
        let mut ink = vec![0.0f32; w * h];
        let mut fill = |x0: usize, x1: usize, y0: usize, y1: usize| {
            for y in y0..y1 {
                for x in x0..x1 {
                    ink[y * w + x] = 1.0;
                }
            }
        };
        fill(20, 32, 2, 14); // the blot, 144
        fill(24, 28, 20, 40); // the stroke: 80, 6 rows below the blot
        fill(24, 28, 43, 63); // 80
        fill(24, 28, 66, 80); // 56
        fill(80, 88, 10, 18); // a mark far away, 64
        let mask = ink.iter().map(|&v| v > 0.0).collect();
        let page = InkPage { width: w, height: h, ink, mask, level: 0.5 };
        let labels = page.labels();
        let keep = digit_components(&labels, &page.components(&labels)).unwrap();
        let kept = |x: usize, y: usize| keep[y * w + x];
        assert!(kept(25, 5) && kept(25, 30) && kept(25, 50) && kept(25, 70), "the blot and every piece of the stroke");
        assert!(!kept(84, 14), "the far mark");
    }

    #[test]
    fn two_digits_side_by_side_are_not_grouped_into_one() {
        // "11" written close: two tall strokes a few pixels apart. They are
        // two digits of a number, and the single digit is the heavier one
        // (predict warns that the image holds a number).
        let (w, h) = (60usize, 60usize);
        let mut ink = vec![0.0f32; w * h];
        for y in 10..50 {
            for x in (20..25).chain(30..34) {
                ink[y * w + x] = 1.0;
            }
        }
        let mask = ink.iter().map(|&v| v > 0.0).collect();
        let page = InkPage { width: w, height: h, ink, mask, level: 0.5 };
        let labels = page.labels();
        let keep = digit_components(&labels, &page.components(&labels)).unwrap();
        assert!(keep[30 * w + 22] && !keep[30 * w + 31]);
    }

    #[test]
    fn marker_strokes_wider_than_the_paper_window_keep_their_middles() {
        // A "T" drawn with a marker: strokes a fifth of the page wide, as
        // wide as the paper estimate's first window, the junction wider. Taken for paper, its middle would fade and
        // leave an outline (a hole in the 28x28), which reads as a loop.
        let page = GrayImage::from_fn(400, 400, |x, y| {
            let bar = (60..340).contains(&x) && (60..144).contains(&y);
            let stem = (158..242).contains(&x) && (144..350).contains(&y);
            Luma([if bar || stem { 30 } else { 225 }])
        });
        let out = to_mnist(&DynamicImage::ImageLuma8(page));
        let peak = *out.iter().max().unwrap();
        // The stem's middle column, from the bar down: ink all the way.
        let (cx, _) = center_of_mass(&out);
        let column: Vec<u8> = (0..28).map(|y| out[y * 28 + cx.round() as usize]).collect();
        let inked: Vec<usize> = (0..28).filter(|&y| column[y] > peak / 4).collect();
        let (top, bottom) = (inked[0], *inked.last().unwrap());
        let faintest = (top..=bottom).map(|y| column[y]).min().unwrap();
        assert!(faintest as f32 >= 0.8 * peak as f32, "the stroke's middle fades to {faintest} of {peak}: {column:?}");
    }

    /// A synthetic "digit": a thick vertical bar with a foot, in a 28x28 field,
    /// roughly where MNIST would put it.
    fn synthetic_digit() -> Vec<u8> {
        let mut px = vec![0u8; IMAGE_PIXELS];
        for y in 4..24 {
            for x in 12..16 {
                px[y * 28 + x] = 255;
            }
        }
        for x in 8..20 {
            px[23 * 28 + x] = 200;
        }
        px
    }

    fn gray(px: &[u8], side: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_raw(side, side, px.to_vec()).unwrap())
    }

    fn center_of_mass(px: &[u8]) -> (f32, f32) {
        let (mut m, mut x, mut y) = (0.0, 0.0, 0.0);
        for (i, &v) in px.iter().enumerate() {
            let v = f32::from(v);
            m += v;
            x += v * (i % 28) as f32;
            y += v * (i / 28) as f32;
        }
        (x / m, y / m)
    }

    #[test]
    fn mnist_style_28x28_passes_through_bit_exact() {
        let px = synthetic_digit();
        assert_eq!(to_mnist(&gray(&px, 28)), px);
    }

    #[test]
    fn inverted_28x28_is_restored_exactly() {
        let px = synthetic_digit();
        let inverted: Vec<u8> = px.iter().map(|v| 255 - v).collect();
        assert_eq!(to_mnist(&gray(&inverted, 28)), px);
    }

    #[test]
    fn transparent_background_is_composited_by_contrast() {
        let px = synthetic_digit();
        // Black ink whose alpha is the digit, over nothing.
        let rgba = RgbaImage::from_fn(28, 28, |x, y| Rgba([0, 0, 0, px[(y * 28 + x) as usize]]));
        let out = to_mnist(&DynamicImage::ImageRgba8(rgba));
        let diff = out.iter().zip(&px).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(diff <= 1, "max difference {diff}");
    }

    #[test]
    fn sixteen_bit_is_scaled_down() {
        let px = synthetic_digit();
        let wide: Vec<u16> = px.iter().map(|&v| u16::from(v) * 257).collect();
        let img = DynamicImage::ImageLuma16(ImageBuffer::from_raw(28, 28, wide).unwrap());
        assert_eq!(to_mnist(&img), px);
    }

    #[test]
    fn large_off_center_dark_on_light_digit_is_cropped_scaled_and_centered() {
        // A dark bar on white paper, 400x300, far in the top-left corner.
        let img = GrayImage::from_fn(400, 300, |x, y| {
            if (20..60).contains(&x) && (10..210).contains(&y) { image::Luma([30]) } else { image::Luma([235]) }
        });
        let out = to_mnist(&DynamicImage::ImageLuma8(img));
        let (cx, cy) = center_of_mass(&out);
        assert!((cx - 14.0).abs() < 0.6 && (cy - 14.0).abs() < 0.6, "center {cx},{cy}");
        let ink_rows = (0..28).filter(|y| out[y * 28..(y + 1) * 28].iter().any(|&v| v > 0)).count();
        assert!((19..=21).contains(&ink_rows), "digit spans {ink_rows} rows, expected 20");
        assert_eq!(out[0], 0, "background must be dark");
        assert!(out.contains(&255), "ink must be full");
    }

    #[test]
    fn isolated_speck_does_not_widen_the_crop() {
        let mut img = GrayImage::from_fn(200, 200, |x, y| {
            if (90..110).contains(&x) && (40..160).contains(&y) { image::Luma([255]) } else { image::Luma([0]) }
        });
        img.put_pixel(2, 197, image::Luma([255]));
        let out = to_mnist(&DynamicImage::ImageLuma8(img));
        let ink_rows = (0..28).filter(|y| out[y * 28..(y + 1) * 28].iter().any(|&v| v > 0)).count();
        assert!((19..=21).contains(&ink_rows), "speck widened the crop: {ink_rows} rows");
    }

    #[test]
    fn a_ruled_line_is_removed_and_the_stroke_crossing_it_kept() {
        // A dark vertical bar on white paper, crossed by a gray line across the page.
        let img = GrayImage::from_fn(300, 240, |x, y| {
            let bar = (140..160).contains(&x) && (40..200).contains(&y);
            let line = (119..121).contains(&y);
            image::Luma([if bar {
                20
            } else if line {
                90
            } else {
                235
            }])
        });
        let out = to_mnist(&DynamicImage::ImageLuma8(img));
        let ink_rows: Vec<usize> = (0..28).filter(|y| out[y * 28..(y + 1) * 28].iter().any(|&v| v > 64)).collect();
        assert_eq!(ink_rows.len(), 20, "the bar fills 20 rows: {ink_rows:?}");
        assert!(ink_rows.windows(2).all(|w| w[1] == w[0] + 1), "the bar is cut where the line was: {ink_rows:?}");
        let ink_cols = (0..28).filter(|x| (0..28).any(|y| out[y * 28 + x] > 64)).count();
        assert!(ink_cols <= 6, "the line was kept: {ink_cols} columns of ink");
    }

    #[test]
    fn a_rule_stopping_short_of_the_edges_is_removed_where_it_touches_the_digit() {
        // A dark vertical bar; a thinner horizontal rule from x = 60 to 250
        // (well under 70 % of the row) touching its bottom end; a thick,
        // long stroke elsewhere would be kept (see the next assertion).
        let img = GrayImage::from_fn(300, 240, |x, y| {
            let bar = (140..160).contains(&x) && (40..200).contains(&y);
            let rule = (200..203).contains(&y) && (60..250).contains(&x);
            image::Luma([if bar || rule { 25 } else { 235 }])
        });
        let out = to_mnist(&DynamicImage::ImageLuma8(img));
        let ink_cols = (0..28).filter(|x| (0..28).any(|y| out[y * 28 + x] > 64)).count();
        assert!(ink_cols <= 6, "the rule was kept: {ink_cols} columns of ink");

        // A long stroke as thick as a large digit's is not a rule.
        let thick = GrayImage::from_fn(300, 240, |x, y| {
            image::Luma([if (100..116).contains(&y) && (60..250).contains(&x) { 25 } else { 235 }])
        });
        let out = to_mnist(&DynamicImage::ImageLuma8(thick));
        let ink_cols = (0..28).filter(|x| (0..28).any(|y| out[y * 28 + x] > 64)).count();
        assert!(ink_cols >= 18, "the thick stroke was removed: {ink_cols} columns of ink");
    }

    #[test]
    fn paper_in_deep_shadow_is_not_taken_for_a_dark_background() {
        // Paper falling from 200 to 10 across the page, a dark bar on it: the
        // border's median is below mid-gray, but it is paper, not a black ground.
        let img = GrayImage::from_fn(300, 300, |x, y| {
            let paper = 200.0 - 190.0 * x as f32 / 299.0;
            let bar = (130..150).contains(&x) && (60..240).contains(&y);
            image::Luma([if bar { (paper * 0.2) as u8 } else { paper as u8 }])
        });
        let out = to_mnist(&DynamicImage::ImageLuma8(img));
        let ink_cols = (0..28).filter(|x| (0..28).any(|y| out[y * 28 + x] > 64)).count();
        assert!((1..=6).contains(&ink_cols), "the bar, and only the bar, is ink: {ink_cols} columns");
        assert_eq!(out[0], 0, "the background must be dark");
    }

    #[test]
    fn paper_in_shadow_with_a_band_of_light_is_not_taken_for_a_dark_background() {
        // Paper in shadow (100) with a band of light across it (170), and a
        // dark bar: the border is below mid-gray and its brightness varies
        // by a quarter, the page's darkest pixels lie no further below its
        // median than the band lies above; but it is paper, and stays light.
        let img = GrayImage::from_fn(300, 300, |x, y| {
            let paper = if (200..290).contains(&x) { 170.0 } else { 100.0 };
            let bar = (100..120).contains(&x) && (60..240).contains(&y);
            image::Luma([if bar { (paper * 0.2) as u8 } else { paper as u8 }])
        });
        let plane = GrayPlane::from_image(&DynamicImage::ImageLuma8(img));
        let light_ink = plane.polarity().light_ink();
        let plane = plane.into_oriented(light_ink);
        assert!(plane.values[150 * 300 + 50] < 0.5, "the paper was inverted: {}", plane.values[150 * 300 + 50]);
        assert!(plane.values[150 * 300 + 110] < 0.1, "the ink was inverted: {}", plane.values[150 * 300 + 110]);
    }

    #[test]
    fn pages_with_nothing_on_them_hold_no_digit() {
        let blank = GrayImage::from_pixel(200, 150, image::Luma([235]));
        let black = GrayImage::from_pixel(200, 150, image::Luma([6]));
        let gradient = GrayImage::from_fn(200, 150, |x, _| image::Luma([(x + 30) as u8]));
        for (name, image) in [("blank", blank), ("black", black), ("gradient", gradient)] {
            let view = view_digit(&DynamicImage::ImageLuma8(image));
            assert!(view.notes.no_digit, "{name}: {view:?}");
            assert!(view.pixels.iter().all(|&p| p == 0) && view.other_polarity.is_none(), "{name}");
        }
        let blank28 = view_digit(&gray(&[255; 784], 28));
        assert!(blank28.notes.no_digit);
        let digit = view_digit(&gray(&synthetic_digit(), 28));
        assert!(!digit.notes.no_digit && digit.other_polarity.is_none());
    }

    #[test]
    fn a_digit_running_into_the_frame_is_noted_and_one_inside_it_is_not() {
        // A ring (a 0) of dark ink, whole or with its left third off the image.
        let ring = |cx: f32| {
            GrayImage::from_fn(200, 200, move |x, y| {
                let r = ((x as f32 - cx).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
                image::Luma([if (40.0..52.0).contains(&r) { 20 } else { 230 }])
            })
        };
        let whole = view_digit(&DynamicImage::ImageLuma8(ring(100.0)));
        assert!(!whole.notes.cut_by_frame && !whole.notes.no_digit, "{:?}", whole.notes);
        let cut = view_digit(&DynamicImage::ImageLuma8(ring(20.0)));
        assert!(cut.notes.cut_by_frame, "{:?}", cut.notes);
        assert!(!whole.notes.polarity_uncertain && whole.other_polarity.is_none());
    }

    #[test]
    fn steps_end_with_what_the_model_sees() {
        let img = GrayImage::from_fn(120, 90, |x, y| {
            image::Luma([if (50..60).contains(&x) && (20..70).contains(&y) { 10 } else { 230 }])
        });
        let img = DynamicImage::ImageLuma8(img);
        let steps = to_mnist_steps(&img);
        assert!(steps.len() >= 5, "{} steps", steps.len());
        let (_, seen) = steps.last().unwrap();
        assert_eq!(seen.as_raw(), &to_mnist(&img));
    }

    #[test]
    fn blank_image_gives_blank_digit() {
        let img = GrayImage::from_pixel(100, 80, image::Luma([240]));
        assert!(to_mnist(&DynamicImage::ImageLuma8(img)).iter().all(|&v| v == 0));
    }

    #[test]
    fn decode_refuses_oversized_files_and_dimensions_before_decoding() {
        let limits = DecodeLimits { max_encoded_bytes: 10, ..DecodeLimits::default() };
        assert!(matches!(decode(&[0; 11], &limits), Err(Error::ImageTooLarge { size: 11, limit: 10 })));

        let mut png = Vec::new();
        GrayImage::new(300, 2).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let limits = DecodeLimits { max_side: 256, ..DecodeLimits::default() };
        let err = decode(&png, &limits).unwrap_err();
        assert!(matches!(err, Error::ImageDimensions { width: 300, height: 2, .. }), "{err}");
        assert!(err.to_string().contains("256"));
    }

    #[test]
    fn decode_reports_garbage_and_truncated_files() {
        assert!(matches!(decode(b"definitely not an image", &DecodeLimits::default()), Err(Error::Decode(_))));
        let mut png = Vec::new();
        gray(&synthetic_digit(), 28).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        png.truncate(png.len() / 2);
        assert!(matches!(decode(&png, &DecodeLimits::default()), Err(Error::Decode(_))));
    }

    #[test]
    fn png_round_trip_matches_pixels() {
        let px = synthetic_digit();
        let mut png = Vec::new();
        gray(&px, 28).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(preprocess(&png, &DecodeLimits::default()).unwrap(), px);
    }

    #[test]
    fn only_images_of_another_size_than_28x28_need_fitting() {
        let png = |side: u32| {
            let mut bytes = Vec::new();
            GrayImage::new(side, side).write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
            bytes
        };
        assert!(!needs_fitting(&png(28)));
        assert!(needs_fitting(&png(56)));
        assert!(needs_fitting(b"not an image"), "decoding reports what is wrong with it");
    }

    #[test]
    fn pixel_count_is_checked() {
        assert!(check_pixels(&[0; 784]).is_ok());
        assert!(matches!(check_pixels(&[0; 783]), Err(Error::PixelCount(783))));
    }
}
