//! Reads a handwritten number: the digits of one line of handwriting, left
//! to right (`docs/reading-numbers.md` shows each step).
//!
//! Reading is split in two around the classifier, so that every digit of
//! every image in flight goes through the server's micro-batcher together
//! and the client can use the same code with the server as its classifier:
//!
//! 1. [`segment`]: the page's ink, as for one digit ([`crate::preprocess`],
//!    at up to [`READ_WORK_SIDE`] pixels); its connected components; specks
//!    and marks off the line of digits dropped; components much wider than
//!    a digit cut at the valleys of their column profile (where two touching
//!    digits meet). What remains are *pieces*, left to right. Every run of
//!    up to [`MAX_PIECES_PER_DIGIT`] neighbouring pieces no wider than a
//!    digit can be is a *candidate* digit, fitted to 28x28 as a single
//!    digit is: a broken 5 is its two pieces together, two touching digits
//!    are the pieces on either side of a cut.
//! 2. The caller classifies every candidate, in one batch.
//! 3. [`Segmentation::read`]: the split of the pieces into digits whose
//!    candidates the classifier is most sure of (the product of their
//!    confidences, with a penalty for digits wider than handwriting makes
//!    them) wins; with `expected_digits`, the best split into exactly that
//!    many. Work is bounded: at most [`MAX_PIECES`] pieces and
//!    [`MAX_PIECES_PER_DIGIT`] per candidate, so at most a few hundred
//!    candidates per image, whatever it holds.
//!
//! That is [`Method::Cuts`]. A model trained on whole lines reads them
//! without cuts ([`Method::Windows`], [`line`]): step 1 makes the line's
//! ink one strip 28 pixels high and its candidates are 28x28 windows along
//! it, step 3 decodes what the model says of each window. Both run the
//! same three steps, so callers need not know which one a model uses: its
//! ONNX metadata says ([`Method::METADATA_KEY`]).
//!
//! 4. Optionally, [`check`]: each digit read through windows that stands
//!    apart from its neighbours is classified alone by a single-digit model
//!    too, and the two models' probabilities are combined.

pub mod check;
pub mod draw;
pub mod line;

use image::DynamicImage;

use crate::{
    Error, IMAGE_SIDE, NUM_CLASSES, Result,
    preprocess::{Component, DecodeLimits, InkPage, page_ink},
};

/// Longest side at which a photo of a number is read: twice a single
/// digit's, so that each of eight digits in a row still has tens of pixels.
pub const READ_WORK_SIDE: u32 = 640;

/// Most pieces (components and the parts of cut ones) read on a line; the
/// lightest beyond them are left out as noise. More is not one handwritten
/// number, and bounds the work on a page of text or a field of specks.
pub const MAX_PIECES: usize = 48;

/// Most pieces one digit may be made of (a 5 written in three strokes and
/// cut once).
pub const MAX_PIECES_PER_DIGIT: usize = 5;

/// Components whose ink is less than this share of the heaviest one's and
/// that are also shorter than [`SPECK_HEIGHT`] of the line are specks.
const SPECK_MASS: f32 = 0.08;

/// See [`SPECK_MASS`].
const SPECK_HEIGHT: f32 = 0.35;

/// Components with at least this share of the heaviest one's ink set the
/// line's height and vertical band.
const LINE_MASS: f32 = 0.2;

/// A component wider than this many line heights may be two or more
/// touching digits, and is cut at its column profile's valleys.
const CUT_ASPECT: f32 = 0.6;

/// Cuts are at least this many line heights from each other and from the
/// component's ends: a digit is never narrower than a 1.
const MIN_CUT_SPACING: f32 = 0.08;

/// How far a cut may wander from its column, in line heights: about half
/// a narrow digit, so it can follow a slanted gap without reaching the
/// next cut.
const PATH_REACH: f32 = 0.15;

/// Cost of a cut's path per column away from its starting column, against
/// 1 or more per pixel of ink it crosses.
const PATH_DRIFT_COST: f32 = 0.02;

/// Cost of a cut's path per sideways step.
const PATH_STEP_COST: f32 = 0.05;

/// A piece at least this share of the line's height tall is a digit or most
/// of one (see [`two_digits_side_by_side`]).
const TALL_PIECE: f32 = 0.6;

/// A candidate wider than this many line heights is not one digit.
const MAX_DIGIT_ASPECT: f32 = 1.5;

/// Log-score penalty per line height of width beyond [`WIDE_DIGIT_ASPECT`]:
/// two digits squeezed into one 28x28 can look like one digit to the
/// classifier, but not like a digit of handwriting's proportions.
const WIDTH_PENALTY: f32 = 2.0;

/// Widest a single handwritten digit usually is, in line heights.
const WIDE_DIGIT_ASPECT: f32 = 1.1;

/// Mean and standard deviation of ln(width / height) of each digit's ink in
/// MNIST's training set: a 1 is narrow, a 0 or a 2 can be wider than tall,
/// and two digits squeezed into one box are wider than any.
const SHAPES: [(f32, f32); NUM_CLASSES] = [
    (-0.106, 0.196),
    (-0.931, 0.459),
    (-0.071, 0.218),
    (-0.235, 0.212),
    (-0.241, 0.212),
    (-0.074, 0.258),
    (-0.326, 0.217),
    (-0.264, 0.215),
    (-0.282, 0.221),
    (-0.395, 0.205),
];

/// Standard deviations of shape (see [`SHAPES`]) within which a candidate
/// is not penalized.
const SHAPE_SLACK: f32 = 1.0;

/// Log-score penalty per squared standard deviation beyond [`SHAPE_SLACK`].
const SHAPE_PENALTY: f32 = 0.2;

/// Log-score penalty for each digit read: of two readings the classifier is
/// equally sure of, the one with fewer digits (a 0 is not two 1s).
const DIGIT_PENALTY: f32 = 0.1;

/// An axis-aligned box in the original image's pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PixelBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// One candidate digit: a run of neighbouring pieces, as the model sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// 784 MNIST-style pixels (28x28, row-major).
    pub pixels: Vec<u8>,
    /// Where it is in the original image.
    pub bounds: PixelBox,
    /// The first piece and how many (in left-to-right order).
    first_piece: usize,
    piece_count: usize,
    /// Width over the line's height.
    aspect: f32,
    /// Width over its own height.
    shape: f32,
}

/// A segmented image: the candidates to classify, and how they may combine.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Every candidate digit, to classify in one batch.
    pub candidates: Vec<Candidate>,
    /// Number of pieces, left to right.
    pieces: usize,
    /// Where each piece is in the original image, left to right.
    pub piece_bounds: Vec<PixelBox>,
    /// Pieces that may be left out of the reading: small marks on the line
    /// (dust, a stray dot) that are not digits.
    optional: Vec<bool>,
    /// The line read whole ([`Method::Windows`]), one strip per view: the
    /// candidates are their windows, view after view, and no pieces are cut.
    lines: Vec<line::LineStrip>,
    /// Why the segmentation left part of the line out, if it did.
    pub cut_short: Option<String>,
}

/// The most candidates [`segment`] gives for one photo, whatever the
/// method: cuts give at most [`MAX_PIECES_PER_DIGIT`] runs from each of
/// [`MAX_PIECES`] pieces, windows at most [`line::MAX_FRAMES`] per view.
/// It bounds the work one reading can take, known before the photo is
/// decoded: a server admits a reading for this many images.
pub const MAX_CANDIDATES: usize = {
    let cuts = MAX_PIECES * MAX_PIECES_PER_DIGIT;
    let windows = line::MAX_FRAMES * line::READING_VIEWS.len();
    if cuts > windows { cuts } else { windows }
};

/// How a model reads a number: which images of the line it is shown, and
/// how its answers become digits. A model file says which in its ONNX
/// metadata ([`Method::METADATA_KEY`]); models that say nothing read cuts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// Candidate digits between cuts, the split the classifier is most
    /// sure of chosen (steps 1 to 3 of the module documentation).
    #[default]
    Cuts,
    /// The whole line through 28x28 windows, decoded by CTC
    /// ([`line`]); for models trained on lines (`mnist-train --line-set`).
    Windows,
}

impl Method {
    /// The ONNX metadata property naming the method: `windows` or `cuts`.
    pub const METADATA_KEY: &'static str = "reading";

    /// The method a model's ONNX metadata properties name (cuts when they
    /// name none): the server's and the client's `HashMap` and the
    /// backend's `BTreeMap` alike.
    pub fn of_model<'a>(metadata: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        match metadata.into_iter().find(|(key, _)| *key == Self::METADATA_KEY) {
            Some((_, value)) if value == Method::Windows.name() => Method::Windows,
            _ => Method::Cuts,
        }
    }

    /// The metadata value naming this method.
    pub fn name(self) -> &'static str {
        match self {
            Method::Cuts => "cuts",
            Method::Windows => "windows",
        }
    }
}

/// The digits read from an image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reading {
    /// The digits, left to right ("" when the image holds no ink).
    pub text: String,
    /// How sure the reading is as a whole (0 when nothing was read): read
    /// through windows, the probability the model gives this whole text,
    /// summed over every alignment with the windows (so a digit left out
    /// counts against it); read by cuts, the product of the digits'
    /// confidences.
    pub confidence: f32,
    /// Each digit, left to right.
    pub digits: Vec<ReadDigit>,
    /// How many digits the best reading of any length has: the number of
    /// digits unless a length was required that the marks do not favour.
    pub best_length: usize,
    /// Why the reading may have left part of the line out, when it hit one
    /// of the bounds that keep a reading's work small: more marks than
    /// [`MAX_PIECES`], a line longer than [`line::MAX_DIGITS`] digits at
    /// their size, or a reading of that many digits.
    pub cut_short: Option<String>,
}

impl Reading {
    /// Whether this reading should be the answer over `other`, a reading
    /// of the same photo by another model: it is surer of itself. Ties go
    /// to `other`, so that of readings compared in order the first wins.
    /// The server and the client choose between their readers with this,
    /// so that both read alike.
    pub fn is_surer_than(&self, other: &Reading) -> bool {
        self.confidence > other.confidence
    }
}

/// The text `digits` spell, left to right.
pub(crate) fn text_of(digits: &[ReadDigit]) -> String {
    digits.iter().map(|d| char::from(b'0' + d.digit)).collect()
}

/// One digit of a [`Reading`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReadDigit {
    /// The digit, 0 to 9.
    pub digit: u8,
    /// Its probability.
    pub confidence: f32,
    /// The probabilities of all ten digits.
    pub probabilities: Vec<f32>,
    /// Where it is in the original image.
    pub bounds: PixelBox,
    /// Index of its candidate in [`Segmentation::candidates`].
    #[serde(skip)]
    pub candidate: usize,
    /// The digit alone, 784 MNIST-style pixels fitted and centred as a
    /// single digit is, when blank columns part it from its neighbours:
    /// what a single-digit model checks ([`check`]). `None` for a digit
    /// touching a neighbour, and for digits read between cuts (their
    /// candidates already are single digits).
    #[serde(skip)]
    pub alone: Option<Vec<u8>>,
    /// Whether a single-digit model checked it ([`Reading::check_digits`]).
    pub checked: bool,
}

/// A connected component of the ink mask, or the part of one between two cuts.
#[derive(Debug, Clone)]
struct Piece {
    /// Label of the component in the label image.
    label: u32,
    /// The cuts bounding it on the left and right (indices into the
    /// segmentation's [`CutPath`]s), `None` at the component's own ends.
    left: Option<usize>,
    right: Option<usize>,
    /// Bounds of the piece's ink, `x0..x1` x `y0..y1` (work pixels).
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
    mass: f32,
}

impl Piece {
    /// A whole component as one piece.
    fn whole(c: &Component) -> Self {
        Self { label: c.label, left: None, right: None, x0: c.x0, x1: c.x1, y0: c.y0, y1: c.y1, mass: c.mass }
    }

    fn center_x(&self) -> f32 {
        (self.x0 + self.x1) as f32 / 2.0
    }

    /// Whether the pixel at `(x, y)`, labelled `label`, is this piece's.
    fn holds_pixel(&self, x: usize, y: usize, label: u32, cuts: &[CutPath]) -> bool {
        label == self.label
            && self.left.is_none_or(|c| x >= cuts[c].column(y))
            && self.right.is_none_or(|c| x < cuts[c].column(y))
    }
}

/// A cut through a component from its top row to its bottom one: a column
/// per row, moving at most one column from row to row, so that it can
/// follow the slanted gap between touching digits (two leaning 1s, a 7's
/// foot under the next digit) where a straight cut would slice a stroke.
#[derive(Debug, Clone)]
struct CutPath {
    /// The first row it covers.
    top: usize,
    /// The column where it crosses each row from `top` on: pixels left of
    /// it are on its left.
    columns: Vec<usize>,
}

impl CutPath {
    /// The column where it crosses row `y` (rows beyond its ends take the
    /// nearest end's).
    fn column(&self, y: usize) -> usize {
        let row = y.saturating_sub(self.top).min(self.columns.len().saturating_sub(1));
        self.columns.get(row).copied().unwrap_or(0)
    }
}

/// An image from raw 8-bit gray pixels (`width` x `height`, row-major),
/// checked against the same limits as encoded files.
pub fn gray_image(width: u32, height: u32, pixels: Vec<u8>, limits: &DecodeLimits) -> Result<DynamicImage> {
    let expected = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return Err(Error::EmptyImage { width, height });
    }
    if width > limits.max_side || height > limits.max_side || expected > limits.max_pixels {
        return Err(Error::ImageDimensions { width, height, max_side: limits.max_side, max_pixels: limits.max_pixels });
    }
    let found = pixels.len();
    image::GrayImage::from_raw(width, height, pixels)
        .filter(|_| found as u64 == expected)
        .map(DynamicImage::ImageLuma8)
        .ok_or(Error::PixelDimensions { width, height, expected, found })
}

/// Segments a decoded image into the images `method` shows the model:
/// candidate digits (step 1 of the module documentation) or the line's
/// windows. An image with no ink gives no candidates.
pub fn segment(image: &DynamicImage, method: Method) -> Segmentation {
    match method {
        Method::Cuts => segment_into_cuts(image),
        Method::Windows => segment_into_windows(image),
    }
}

/// The line of ink of a decoded image, as [`Method::Windows`] reads it
/// (its plain view, the one window models are trained on).
pub fn line_strip(image: &DynamicImage) -> Option<line::LineStrip> {
    line::LineStrip::views(image, &[line::View::PLAIN]).pop()
}

fn segment_into_windows(image: &DynamicImage) -> Segmentation {
    let mut segmentation = Segmentation::empty();
    let strips = line::LineStrip::views(image, &line::READING_VIEWS);
    for strip in &strips {
        segmentation.candidates.extend((0..strip.frames()).map(|k| {
            let left = (k * line::FRAME_STRIDE) as f32;
            Candidate {
                pixels: strip.window(k),
                bounds: strip.ink_box(left, left + IMAGE_SIDE as f32),
                first_piece: k,
                piece_count: 1,
                aspect: 0.0,
                shape: 0.0,
            }
        }));
    }
    if strips.first().is_some_and(line::LineStrip::is_squeezed) {
        segmentation.cut_short = Some(format!(
            "the line is longer than {} digits at their size: it was squeezed to fit, and may be misread; \
             photograph fewer digits at a time",
            line::MAX_DIGITS
        ));
    }
    segmentation.lines = strips;
    segmentation
}

fn segment_into_cuts(image: &DynamicImage) -> Segmentation {
    let empty = Segmentation::empty();
    let Some(page) = page_ink(image, READ_WORK_SIDE, &mut |_, _| {}) else { return empty };
    let scale = image.width().max(image.height()) as f32 / page.width.max(page.height) as f32;
    let w = page.width;
    let labels = page.labels();
    let components = page.components(&labels);
    let Some(line) = Line::of(&components) else { return empty };
    let (mut pieces, mut paths) = (Vec::new(), Vec::new());
    for component in components.iter().filter(|c| line.holds(c)) {
        pieces.extend(cut_where_digits_touch(component, &page, &labels, line.height, &mut paths));
    }
    let mut cut_short = None;
    if pieces.len() > MAX_PIECES {
        // Noise that passed for marks (a grainy, faint photo): the heaviest
        // pieces are the writing.
        cut_short = Some(format!(
            "the line has {} marks; only the {MAX_PIECES} heaviest were read: photograph fewer digits at a time",
            pieces.len()
        ));
        pieces.sort_by(|a, b| b.mass.total_cmp(&a.mass));
        pieces.truncate(MAX_PIECES);
    }
    pieces.sort_by(|a, b| a.center_x().total_cmp(&b.center_x()));
    let heaviest = pieces.iter().map(|p| p.mass).fold(0.0f32, f32::max);
    let optional = pieces
        .iter()
        .map(|p| p.mass < SPECK_MASS * 2.0 * heaviest && ((p.y1 - p.y0) as f32) < 0.5 * line.height)
        .collect();

    let mut candidates = Vec::new();
    for first in 0..pieces.len() {
        for count in 1..=MAX_PIECES_PER_DIGIT.min(pieces.len() - first) {
            let run = &pieces[first..first + count];
            let (x0, x1) = (run.iter().map(|p| p.x0).min().unwrap_or(0), run.iter().map(|p| p.x1).max().unwrap_or(0));
            let aspect = (x1 - x0) as f32 / line.height;
            if count > 1 && aspect > MAX_DIGIT_ASPECT {
                break;
            }
            if count > 1 && holds_two_digits(run, line.height) {
                continue;
            }
            let (y0, y1) = (run.iter().map(|p| p.y0).min().unwrap_or(0), run.iter().map(|p| p.y1).max().unwrap_or(0));
            let keep = |x: usize, y: usize| {
                let label = labels[y * w + x];
                label != 0 && run.iter().any(|p| p.holds_pixel(x, y, label, &paths))
            };
            // Room for the strokes' antialiased edges.
            let pad = 3;
            let window = (x0.saturating_sub(pad), y0.saturating_sub(pad), x1 + pad, y1 + pad);
            candidates.push(Candidate {
                pixels: page.digit_pixels(window, keep),
                bounds: to_original((x0, y0, x1, y1), scale, image.width(), image.height()),
                first_piece: first,
                piece_count: count,
                aspect,
                shape: (x1 - x0) as f32 / (y1 - y0).max(1) as f32,
            });
        }
    }
    let piece_bounds =
        pieces.iter().map(|p| to_original((p.x0, p.y0, p.x1, p.y1), scale, image.width(), image.height())).collect();
    Segmentation { candidates, pieces: pieces.len(), piece_bounds, optional, lines: Vec::new(), cut_short }
}

/// Whether a run of pieces holds two separate digits side by side: two
/// pieces of different components, both nearly the line's height, that do
/// not overlap in columns. Pieces of one digit overlap (the bar over a 5's
/// body) or are short (a 7's crossbar); two written digits stand apart.
fn holds_two_digits(run: &[Piece], line_height: f32) -> bool {
    let mark = |p: &Piece| (p.x0, p.x1, p.y1 - p.y0);
    run.iter().enumerate().any(|(i, a)| {
        run[i + 1..].iter().any(|b| a.label != b.label && two_digits_side_by_side(mark(a), mark(b), line_height))
    })
}

/// Whether two marks, each its columns `x0..x1` and its height, are two
/// digits side by side rather than pieces of one: both at least
/// [`TALL_PIECE`] of `height` tall, and apart in columns. Used for the
/// line's runs here and for the single digit's pieces
/// (`preprocess::digit_components`).
pub(crate) fn two_digits_side_by_side(a: (usize, usize, usize), b: (usize, usize, usize), height: f32) -> bool {
    let tall = |(_, _, h): (usize, usize, usize)| h as f32 >= TALL_PIECE * height;
    let (a0, a1, _) = a;
    let (b0, b1, _) = b;
    tall(a) && tall(b) && (a1 <= b0 || b1 <= a0)
}

/// How many digit-like marks stand side by side on a page's line of ink:
/// components nearly the line's height, not specks, counted once per group
/// overlapping in columns (the pieces of one broken digit). More than one
/// means the image holds a number, not a digit.
pub(crate) fn digits_side_by_side(components: &[Component]) -> usize {
    let Some(line) = Line::of(components) else { return 0 };
    let mut spans: Vec<(usize, usize)> = components
        .iter()
        .filter(|c| line.holds(c) && c.height() as f32 >= TALL_PIECE * line.height)
        .map(|c| (c.x0, c.x1))
        .collect();
    spans.sort_unstable();
    let mut groups = 0;
    let mut reach = 0;
    for (x0, x1) in spans {
        if groups == 0 || x0 >= reach {
            groups += 1;
        }
        reach = reach.max(x1);
    }
    groups
}

/// A work-size box `x0..x1` x `y0..y1` in the original image's pixels.
fn to_original((x0, y0, x1, y1): (usize, usize, usize, usize), scale: f32, width: u32, height: u32) -> PixelBox {
    let left = ((x0 as f32 * scale).floor() as u32).min(width);
    let top = ((y0 as f32 * scale).floor() as u32).min(height);
    let right = ((x1 as f32 * scale).ceil() as u32).clamp(left, width);
    let bottom = ((y1 as f32 * scale).ceil() as u32).clamp(top, height);
    PixelBox { x: left, y: top, width: right - left, height: bottom - top }
}

/// The line of digits: its height and vertical band, from the components
/// with a real share of the ink.
struct Line {
    height: f32,
    top: f32,
    bottom: f32,
    heaviest: f32,
}

impl Line {
    fn of(components: &[Component]) -> Option<Self> {
        let heaviest = components.iter().map(|c| c.mass).fold(0.0f32, f32::max);
        if heaviest <= 0.0 {
            return None;
        }
        let major: Vec<&Component> = components.iter().filter(|c| c.mass >= LINE_MASS * heaviest).collect();
        let middle = |values: Vec<f32>| {
            let mut values = values;
            values.sort_by(f32::total_cmp);
            values[values.len() / 2]
        };
        let height = middle(major.iter().map(|c| c.height() as f32).collect()).max(1.0);
        let top = middle(major.iter().map(|c| c.y0 as f32).collect());
        let bottom = middle(major.iter().map(|c| c.y1 as f32).collect());
        Some(Self { height, top, bottom, heaviest })
    }

    /// Whether a component belongs to the line: not a speck, and within
    /// the line's band (with room for a wobbling baseline).
    fn holds(&self, c: &Component) -> bool {
        let is_speck = c.mass < SPECK_MASS * self.heaviest && (c.height() as f32) < SPECK_HEIGHT * self.height;
        let slack = 0.5 * self.height;
        let in_band = (c.y1 as f32) > self.top - slack && (c.y0 as f32) < self.bottom + slack;
        !is_speck && in_band
    }
}

/// The pieces of one component: itself, or, when it is wider than a digit,
/// its parts between cuts (paths crossing the least ink, see
/// [`cheapest_cut`]) started near where equal-width digits would meet and at
/// the deepest valleys of its column profile (touching digits meet where few
/// of their pixels share a column). The cuts are added to `paths`.
fn cut_where_digits_touch(
    component: &Component,
    page: &InkPage,
    labels: &[u32],
    line_height: f32,
    paths: &mut Vec<CutPath>,
) -> Vec<Piece> {
    let width = component.width();
    if (width as f32) < CUT_ASPECT * line_height {
        return vec![Piece::whole(component)];
    }
    let w = page.width;
    let mut profile = vec![0u32; width];
    for y in component.y0..component.y1 {
        for (x, count) in profile.iter_mut().enumerate() {
            if labels[y * w + component.x0 + x] == component.label {
                *count += 1;
            }
        }
    }
    let spacing = ((MIN_CUT_SPACING * line_height).round() as usize).max(2);
    // Valleys: columns no higher than any within `spacing / 2`, away from the ends.
    let reach = (spacing / 2).max(1);
    let mut valleys: Vec<usize> = (spacing..width.saturating_sub(spacing))
        .filter(|&x| {
            let lo = x.saturating_sub(reach);
            let hi = (x + reach + 1).min(width);
            profile[lo..hi].iter().all(|&v| profile[x] <= v)
        })
        .collect();
    // Where k digits of equal width would meet (k = 2, 3, ... as the width
    // allows), each moved to the lowest column near it, come first: a
    // touching pair's join is not always a valley of its own. Then the
    // valleys, deepest first; no two cuts closer than `spacing`.
    let snap = ((0.08 * line_height).round() as usize).max(1);
    let lowest_near = |x: usize| {
        let lo = x.saturating_sub(snap).max(spacing);
        let hi = (x + snap + 1).min(width.saturating_sub(spacing));
        (lo..hi).min_by_key(|&c| (profile[c], c.abs_diff(x))).unwrap_or(x)
    };
    let digits_wide = ((width as f32 / (0.55 * line_height)).round() as usize).clamp(2, 4);
    let even = (2..=digits_wide).flat_map(|k| (1..k).map(move |j| width * j / k)).map(lowest_near);
    valleys.sort_by_key(|&x| (profile[x], x));
    let mut most = ((width as f32 / (0.25 * line_height)).floor() as usize).clamp(1, 10);
    if (width as f32) <= MAX_DIGIT_ASPECT * line_height {
        // It may be one wide digit: its pieces must fit one candidate.
        most = most.min(MAX_PIECES_PER_DIGIT - 1);
    }
    let mut cuts: Vec<usize> = Vec::new();
    for x in even.chain(valleys) {
        if cuts.len() >= most {
            break;
        }
        if x >= spacing && x + spacing <= width && cuts.iter().all(|&c| c.abs_diff(x) >= spacing) {
            cuts.push(x);
        }
    }
    cuts.sort_unstable();
    let reach = ((PATH_REACH * line_height).round() as usize).max(2);
    let first_cut = paths.len();
    for cut in cuts {
        let mut columns = cheapest_cut(component, page, labels, component.x0 + cut, reach);
        // Cuts never cross: each stays right of the one before.
        if let Some(before) = paths[first_cut..].last() {
            for (column, left) in columns.iter_mut().zip(&before.columns) {
                *column = (*column).max(left + 1);
            }
        }
        paths.push(CutPath { top: component.y0, columns });
    }
    // One pass over the component: each pixel goes to the piece between the
    // cuts on either side of it (in every row the cuts lie left to right,
    // so its piece is the number of cuts at or left of it).
    let cuts = &paths[first_cut..];
    let mut pieces: Vec<Piece> = (0..=cuts.len())
        .map(|k| Piece {
            left: k.checked_sub(1).map(|c| first_cut + c),
            right: (k < cuts.len()).then_some(first_cut + k),
            x0: usize::MAX,
            x1: 0,
            y0: usize::MAX,
            y1: 0,
            mass: 0.0,
            ..Piece::whole(component)
        })
        .collect();
    for y in component.y0..component.y1 {
        for x in component.x0..component.x1 {
            let i = y * w + x;
            if labels[i] != component.label {
                continue;
            }
            let piece = &mut pieces[cuts.iter().take_while(|cut| x >= cut.column(y)).count()];
            piece.x0 = piece.x0.min(x);
            piece.x1 = piece.x1.max(x + 1);
            piece.y0 = piece.y0.min(y);
            piece.y1 = piece.y1.max(y + 1);
            piece.mass += page.ink[i];
        }
    }
    pieces.retain(|piece| piece.y0 < piece.y1);
    pieces
}

/// The cut through a component near column `start` that crosses the least
/// ink: the cheapest path from its top row to its bottom one, one column
/// per row, at most `reach` columns from `start` (dynamic programming over
/// rows; a small cost for each column away from `start` and for each
/// sideways step keeps it straight where nothing is gained).
fn cheapest_cut(component: &Component, page: &InkPage, labels: &[u32], start: usize, reach: usize) -> Vec<usize> {
    let w = page.width;
    let lo = start.saturating_sub(reach).max(component.x0 + 1);
    let hi = (start + reach).min(component.x1.saturating_sub(1)).max(lo);
    let span = hi - lo + 1;
    let rows = component.height();
    let step_cost = |x: usize, y: usize| {
        let i = y * w + x;
        let ink = if labels[i] == component.label { 1.0 + page.ink[i] } else { 0.0 };
        ink + PATH_DRIFT_COST * x.abs_diff(start) as f32
    };
    let mut cost: Vec<f32> = (lo..=hi).map(|x| step_cost(x, component.y0)).collect();
    // from[row * span + i]: the column index the path came from on the row above.
    let mut from = vec![0usize; rows * span];
    for row in 1..rows {
        let y = component.y0 + row;
        let next: Vec<f32> = (0..span)
            .map(|i| {
                let (best, came) = (i.saturating_sub(1)..=(i + 1).min(span - 1))
                    .map(|j| (cost[j] + if j == i { 0.0 } else { PATH_STEP_COST }, j))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .unwrap_or((cost[i], i));
                from[row * span + i] = came;
                best + step_cost(lo + i, y)
            })
            .collect();
        cost = next;
    }
    let mut at = (0..span).min_by(|&a, &b| cost[a].total_cmp(&cost[b])).unwrap_or(0);
    let mut columns = vec![0; rows];
    for row in (0..rows).rev() {
        columns[row] = lo + at;
        at = from[row * span + at];
    }
    columns
}

impl Segmentation {
    fn empty() -> Self {
        Segmentation {
            candidates: Vec::new(),
            pieces: 0,
            piece_bounds: Vec::new(),
            optional: Vec::new(),
            lines: Vec::new(),
            cut_short: None,
        }
    }

    /// The strip a window candidate belongs to and its frame on it (`None`
    /// for a candidate between cuts).
    pub fn window(&self, candidate: usize) -> Option<(&line::LineStrip, usize)> {
        let mut first = 0;
        for strip in &self.lines {
            if candidate < first + strip.frames() {
                return Some((strip, candidate - first));
            }
            first += strip.frames();
        }
        None
    }

    /// Whether the image held nothing to read.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The candidates of the best-scoring reading (with `expected_digits`
    /// digits if reachable), left to right, and the best reading's length.
    fn best_path(&self, scores: &[f32], expected_digits: Option<usize>) -> (Vec<usize>, usize) {
        let n = self.pieces;
        let most_digits = n;
        // best[i][k]: the best score of reading the first i pieces as k
        // digits, and how it was reached (previous i, the candidate or None
        // for a left-out piece).
        let mut best = vec![vec![None::<(f32, usize, Option<usize>)>; most_digits + 1]; n + 1];
        best[0][0] = Some((0.0, 0, None));
        let mut by_end: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
        for (index, c) in self.candidates.iter().enumerate() {
            by_end[c.first_piece + c.piece_count].push(index);
        }
        for end in 1..=n {
            for k in 0..=most_digits {
                let mut here = None::<(f32, usize, Option<usize>)>;
                let mut consider = |score: f32, from: usize, candidate: Option<usize>| {
                    if here.is_none_or(|(s, _, _)| score > s) {
                        here = Some((score, from, candidate));
                    }
                };
                if self.optional[end - 1]
                    && let Some((s, _, _)) = best[end - 1][k]
                {
                    consider(s, end - 1, None);
                }
                if k > 0 {
                    for &index in &by_end[end] {
                        let start = self.candidates[index].first_piece;
                        if let Some((s, _, _)) = best[start][k - 1] {
                            consider(s + scores[index], start, Some(index));
                        }
                    }
                }
                best[end][k] = here;
            }
        }
        let reachable = |k: usize| best[n][k].map(|(s, _, _)| (s, k));
        let best_any = (0..=most_digits).filter_map(reachable).max_by(|a, b| a.0.total_cmp(&b.0));
        let chosen = expected_digits.filter(|&k| k <= most_digits).and_then(reachable).or(best_any);
        let best_length = best_any.map_or(0, |(_, k)| k);
        let Some((_, mut k)) = chosen else {
            return (Vec::new(), best_length);
        };
        let mut picked = Vec::new();
        let mut end = n;
        while end > 0 {
            let Some((_, from, candidate)) = best[end][k] else { break };
            if let Some(index) = candidate {
                picked.push(index);
                k -= 1;
            }
            end = from;
        }
        picked.reverse();
        (picked, best_length)
    }

    /// Reads the number from the model's logits for each candidate, in
    /// order: cuts choose their digits (step 3 of the module
    /// documentation), a line's windows are decoded ([`line`]). With
    /// `expected_digits`, the best reading with exactly that many digits, if
    /// the marks allow one; otherwise the best reading of any length.
    pub fn read(&self, logits: &[Vec<f32>], expected_digits: Option<usize>) -> Result<Reading> {
        let mut reading = if self.lines.is_empty() {
            let probabilities: Vec<Vec<f32>> = logits.iter().map(|l| crate::softmax(l)).collect();
            self.choose_cuts(&probabilities, expected_digits)?
        } else {
            line::read_views(&self.lines, logits, expected_digits)?
        };
        reading.cut_short = self.cut_short.clone().or_else(|| {
            (reading.digits.len() >= line::MAX_DIGITS).then(|| {
                format!(
                    "read as {} digits, the most one reading gives: the line may hold more; photograph fewer digits \
                     at a time",
                    line::MAX_DIGITS
                )
            })
        });
        Ok(reading)
    }

    fn choose_cuts(&self, probabilities: &[Vec<f32>], expected_digits: Option<usize>) -> Result<Reading> {
        if probabilities.len() != self.candidates.len() {
            return Err(Error::Reading(format!(
                "{} candidates but {} probability vectors",
                self.candidates.len(),
                probabilities.len()
            )));
        }
        if let Some(bad) = probabilities.iter().find(|p| p.len() != NUM_CLASSES) {
            return Err(Error::Reading(format!("a probability vector has {} values, not {NUM_CLASSES}", bad.len())));
        }
        let scores: Vec<f32> =
            self.candidates.iter().zip(probabilities).map(|(c, p)| candidate_score(c, best_of(p))).collect();
        let (picked, best_length) = self.best_path(&scores, expected_digits);
        let digits: Vec<ReadDigit> = picked
            .into_iter()
            .map(|index| {
                let (digit, confidence) = best_of(&probabilities[index]);
                ReadDigit {
                    digit: digit as u8,
                    confidence,
                    probabilities: probabilities[index].clone(),
                    bounds: self.candidates[index].bounds,
                    candidate: index,
                    alone: None,
                    checked: false,
                }
            })
            .collect();
        let text = text_of(&digits);
        let confidence = if digits.is_empty() { 0.0 } else { digits.iter().map(|d| d.confidence).product() };
        Ok(Reading { text, confidence, digits, best_length, cut_short: None })
    }
}

/// How much a candidate's being one digit adds to a reading's log-score:
/// the classifier's confidence, less penalties for a shape unlike that
/// digit's in handwriting and for a width no digit has.
fn candidate_score(candidate: &Candidate, (digit, confidence): (usize, f32)) -> f32 {
    let too_wide = (candidate.aspect - WIDE_DIGIT_ASPECT).max(0.0);
    let (mean, spread) = SHAPES[digit.min(NUM_CLASSES - 1)];
    let z = (candidate.shape.max(0.01).ln() - mean) / spread;
    let unusual = (z.abs() - SHAPE_SLACK).max(0.0);
    confidence.max(1e-6).ln() - WIDTH_PENALTY * too_wide - SHAPE_PENALTY * unusual * unusual - DIGIT_PENALTY
}

/// The likeliest digit and its probability.
fn best_of(probabilities: &[f32]) -> (usize, f32) {
    probabilities.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0))
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Luma};
    use imageproc::{
        drawing::{draw_filled_rect_mut, draw_hollow_ellipse_mut},
        rect::Rect,
    };

    use super::*;

    /// White paper `width` x `height` with dark vertical strokes (6 px wide,
    /// `tall` px tall, centred vertically) at the given left edges.
    fn strokes(width: u32, height: u32, tall: u32, lefts: &[i32]) -> GrayImage {
        let mut page = GrayImage::from_pixel(width, height, Luma([240]));
        for &x in lefts {
            draw_filled_rect_mut(&mut page, Rect::at(x, ((height - tall) / 2) as i32).of_size(6, tall), Luma([20]));
        }
        page
    }

    /// A line of 80 strokes, each one a digit's height and 40 px from the
    /// next: longer than a reading takes (48 marks, 24 digits).
    fn long_line() -> GrayImage {
        let mut page = GrayImage::from_pixel(3400, 200, Luma([240]));
        for i in 0..80 {
            draw_filled_rect_mut(&mut page, Rect::at(20 + i * 42, 40).of_size(12, 120), Luma([20]));
        }
        page
    }

    /// Rings (3 px thick) of radii `rx` x `ry` centred at the given columns.
    fn rings(page: &mut GrayImage, centres: &[i32], rx: i32, ry: i32) {
        let cy = page.height() as i32 / 2;
        for &cx in centres {
            for t in 0..3 {
                draw_hollow_ellipse_mut(page, (cx, cy), rx - t, ry - t, Luma([20]));
            }
        }
    }

    /// A stand-in classifier's logits: single-piece candidates are read as
    /// the digit `first piece + 1`, sure (0.91); runs of pieces are read as
    /// 8, unsure (0.3).
    fn by_position(segmentation: &Segmentation) -> Vec<Vec<f32>> {
        segmentation
            .candidates
            .iter()
            .map(|c| {
                let mut p = vec![0.01f32; NUM_CLASSES];
                if c.piece_count == 1 {
                    p[(c.first_piece + 1) % NUM_CLASSES] = 0.91;
                } else {
                    p = vec![0.7 / 9.0; NUM_CLASSES];
                    p[8] = 0.3;
                }
                p.iter().map(|v| v.ln()).collect()
            })
            .collect()
    }

    #[test]
    fn separate_strokes_are_read_left_to_right_with_their_boxes() {
        let image = DynamicImage::ImageLuma8(strokes(300, 120, 60, &[40, 140, 240]));
        let segmentation = segment(&image, Method::Cuts);
        let reading = segmentation.read(&by_position(&segmentation), None).unwrap();
        assert_eq!(reading.text, "123");
        let lefts: Vec<u32> = reading.digits.iter().map(|d| d.bounds.x).collect();
        for (found, drawn) in lefts.iter().zip([40u32, 140, 240]) {
            assert!(found.abs_diff(drawn) <= 4, "box at {found}, stroke at {drawn}");
        }
        assert!(reading.digits.iter().all(|d| d.bounds.height.abs_diff(60) <= 6), "{:?}", reading.digits);
        let product: f32 = reading.digits.iter().map(|d| d.confidence).product();
        assert!((reading.confidence - product).abs() < 1e-6);
    }

    #[test]
    fn boxes_are_in_the_original_images_coordinates() {
        // 4x larger than the work size: the boxes scale back.
        let image = DynamicImage::ImageLuma8(imageops_resize(&strokes(300, 120, 60, &[40, 140, 240]), 4));
        let segmentation = segment(&image, Method::Cuts);
        let reading = segmentation.read(&by_position(&segmentation), None).unwrap();
        assert_eq!(reading.text, "123");
        assert!(reading.digits[2].bounds.x.abs_diff(960) <= 16, "{:?}", reading.digits[2].bounds);
    }

    fn imageops_resize(page: &GrayImage, factor: u32) -> GrayImage {
        image::imageops::resize(
            page,
            page.width() * factor,
            page.height() * factor,
            image::imageops::FilterType::Triangle,
        )
    }

    #[test]
    fn touching_rings_are_cut_and_the_length_can_be_required() {
        let mut page = GrayImage::from_pixel(220, 120, Luma([240]));
        rings(&mut page, &[80, 136], 28, 40); // touching: 28 + 28 = 56 apart
        let segmentation = segment(&DynamicImage::ImageLuma8(page), Method::Cuts);
        assert!(segmentation.pieces >= 2, "the wide component was not cut: {} pieces", segmentation.pieces);
        // Equally sure of every candidate: the pair is too wide for one digit...
        let same = vec![
            {
                let mut p = vec![0.01f32.ln(); NUM_CLASSES];
                p[0] = 0.91f32.ln();
                p
            };
            segmentation.candidates.len()
        ];
        assert_eq!(segmentation.read(&same, None).unwrap().text, "00");
        // ... unless the caller knows there is one.
        assert_eq!(segmentation.read(&same, Some(1)).unwrap().text, "0");
    }

    #[test]
    fn a_cut_follows_the_slanted_gap_between_touching_strokes() {
        // Two parallel strokes leaning right whose columns overlap (60-104
        // and 90-134), joined by a bar at mid-height: no straight column
        // separates them; the cheapest cut runs down the slanted gap and
        // crosses only the bar.
        let (w, h) = (200usize, 140usize);
        let mut mask = vec![false; w * h];
        for y in 10..130 {
            let lean = (130 - y) * 36 / 120;
            for x in (60 + lean..68 + lean).chain(90 + lean..98 + lean) {
                mask[y * w + x] = true;
            }
        }
        for y in 68..73 {
            for x in 80..112 {
                mask[y * w + x] = true;
            }
        }
        let ink = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
        let page = InkPage { width: w, height: h, ink, mask, level: 0.5 };
        let labels = page.labels();
        let components = page.components(&labels);
        assert_eq!(components.len(), 1);
        let path = cheapest_cut(&components[0], &page, &labels, 97, 18);
        let inked = path.iter().enumerate().filter(|&(row, &x)| page.mask[(10 + row) * w + x]).count();
        assert!(inked <= 5, "the cut crosses {inked} pixels of ink, not just the bar's 5: {path:?}");
        let (top, bottom) = (path[0], path[path.len() - 1]);
        assert!(top >= bottom + 10, "the cut does not lean with the strokes: {top} at the top, {bottom} at the bottom");
    }

    #[test]
    fn an_impossible_length_gives_the_best_reading() {
        let image = DynamicImage::ImageLuma8(strokes(300, 120, 60, &[40, 140, 240]));
        let segmentation = segment(&image, Method::Cuts);
        // Three strokes far apart cannot be one digit, nor 40.
        for expected in [1, 40] {
            assert_eq!(segmentation.read(&by_position(&segmentation), Some(expected)).unwrap().text, "123");
        }
    }

    #[test]
    fn specks_are_not_digits() {
        let mut page = strokes(300, 120, 60, &[140]);
        for i in 0..30u32 {
            let (x, y) = ((i * 37) % 290 + 3, (i * 53) % 110 + 3);
            if !(130..160).contains(&x) {
                draw_filled_rect_mut(&mut page, Rect::at(x as i32, y as i32).of_size(2, 2), Luma([60]));
            }
        }
        let segmentation = segment(&DynamicImage::ImageLuma8(page), Method::Cuts);
        let reading = segmentation.read(&by_position(&segmentation), None).unwrap();
        assert_eq!(reading.digits.len(), 1, "{reading:?}");
    }

    #[test]
    fn an_empty_page_reads_as_nothing() {
        let segmentation =
            segment(&DynamicImage::ImageLuma8(GrayImage::from_pixel(200, 100, Luma([230]))), Method::Cuts);
        assert!(segmentation.is_empty());
        let reading = segmentation.read(&[], None).unwrap();
        assert_eq!((reading.text.as_str(), reading.confidence), ("", 0.0));
    }

    #[test]
    fn hostile_pages_give_a_bounded_number_of_candidates() {
        let most = MAX_PIECES * MAX_PIECES_PER_DIGIT;
        assert!(most <= MAX_CANDIDATES);
        // A 20000x200 strip of strokes, 500 specks, all ink.
        let lefts: Vec<i32> = (0..400).map(|i| 20 + i * 50).collect();
        let strip = strokes(20_000, 200, 120, &lefts);
        let mut specks = GrayImage::from_pixel(800, 600, Luma([235]));
        for i in 0..500u32 {
            let (x, y) = ((i * 97) % 790 + 4, (i * 61) % 590 + 4);
            draw_filled_rect_mut(&mut specks, Rect::at(x as i32, y as i32).of_size(3, 3), Luma([30]));
        }
        let all_ink = GrayImage::from_pixel(640, 480, Luma([5]));
        let many = segment(&DynamicImage::ImageLuma8(long_line()), Method::Cuts);
        let note = many.cut_short.as_deref().expect("80 strokes are more marks than a line may have");
        assert!(note.contains("80 marks") && note.contains("48 heaviest"), "{note}");
        for page in [strip, specks, all_ink] {
            let segmentation = segment(&DynamicImage::ImageLuma8(page), Method::Cuts);
            assert!(segmentation.candidates.len() <= most, "{} candidates", segmentation.candidates.len());
            let probabilities = by_position(&segmentation);
            assert!(segmentation.read(&probabilities, None).is_ok());
        }
    }

    #[test]
    fn a_line_read_through_windows_has_each_digit_boxed_over_its_stroke() {
        // Three strokes 60 px tall, far apart: the wide gaps are narrowed,
        // and the strip is 28 px high.
        let page = strokes(600, 160, 60, &[60, 280, 500]);
        let segmentation = segment(&DynamicImage::ImageLuma8(page), Method::Windows);
        assert_eq!(segmentation.lines.len(), line::READING_VIEWS.len());
        let frames: usize = segmentation.lines.iter().map(|strip| strip.frames()).sum();
        assert_eq!(segmentation.candidates.len(), frames, "every view's windows are candidates");
        // A made-up model that, in each view, sees a stroke in the windows
        // whose middle columns hold the most of it.
        let mut logits = Vec::new();
        for strip in &segmentation.lines {
            assert_eq!(strip.pixels.len(), IMAGE_SIDE * strip.width);
            assert!(strip.width < 200, "wide gaps are narrowed: {} columns", strip.width);
            let middle_ink: Vec<u32> = (0..strip.frames())
                .map(|k| {
                    let window = strip.window(k);
                    window.chunks(IMAGE_SIDE).map(|row| row[12..16].iter().map(|&v| u32::from(v)).sum::<u32>()).sum()
                })
                .collect();
            let frames: Vec<usize> = (0..middle_ink.len())
                .filter(|&k| {
                    let before = k.checked_sub(1).map_or(0, |j| middle_ink[j]);
                    let after = middle_ink.get(k + 1).copied().unwrap_or(0);
                    middle_ink[k] > 0 && middle_ink[k] >= before && middle_ink[k] > after
                })
                .collect();
            assert_eq!(frames.len(), 3, "{middle_ink:?}");
            logits.extend(line::tests::logits_for(strip.frames(), &[(frames[0], 4), (frames[1], 0), (frames[2], 4)]));
        }
        let reading = segmentation.read(&logits, None).unwrap();
        assert_eq!(reading.text, "404");
        for (digit, left) in reading.digits.iter().zip([60, 280, 500]) {
            let b = digit.bounds;
            assert!(b.x <= left && left + 6 <= b.x + b.width, "{b:?} does not hold the stroke at {left}");
            assert!(b.y <= 50 && b.y + b.height >= 110, "{b:?} does not hold the stroke's rows");
            assert!(b.x + b.width <= 600 && b.y + b.height <= 160);
        }
        assert!(segmentation.read(&logits[1..], None).is_err(), "one logit vector per window");
    }

    #[test]
    fn a_models_metadata_names_its_reading_method() {
        let windows = std::collections::HashMap::from([("reading".to_string(), "windows".to_string())]);
        assert_eq!(Method::of_model(&windows), Method::Windows);
        let other = std::collections::BTreeMap::from([("reading".to_string(), "letters".to_string())]);
        assert_eq!(Method::of_model(&other), Method::Cuts);
        assert_eq!(Method::of_model(&std::collections::BTreeMap::new()), Method::Cuts);
    }

    #[test]
    fn hostile_pages_give_a_bounded_number_of_windows() {
        let lefts: Vec<i32> = (0..400).map(|i| 20 + i * 50).collect();
        let empty = GrayImage::from_pixel(200, 100, Luma([230]));
        let long = segment(&DynamicImage::ImageLuma8(long_line()), Method::Windows);
        let note = long.cut_short.as_deref().expect("a line of 400 strokes is squeezed, and says so");
        assert!(note.contains("squeezed"), "{note}");
        let reading = long.read(&vec![vec![0.0; NUM_CLASSES]; long.candidates.len()], None).unwrap();
        assert!(reading.cut_short.is_some(), "the reading carries the note");
        let short = segment(&DynamicImage::ImageLuma8(strokes(300, 120, 60, &[40, 140])), Method::Windows);
        assert_eq!(short.cut_short, None, "a line of two digits is read whole");
        for page in [strokes(20_000, 200, 120, &lefts), GrayImage::from_pixel(640, 480, Luma([5])), empty] {
            let segmentation = segment(&DynamicImage::ImageLuma8(page), Method::Windows);
            let most = line::MAX_FRAMES * line::READING_VIEWS.len();
            assert!(most <= MAX_CANDIDATES);
            assert!(segmentation.candidates.len() <= most, "{} windows", segmentation.candidates.len());
            let uniform = vec![vec![0.0; NUM_CLASSES]; segmentation.candidates.len()];
            let reading = segmentation.read(&uniform, None).unwrap();
            assert!(reading.digits.len() <= line::MAX_DIGITS);
        }
    }

    #[test]
    fn classifier_output_must_match_the_candidates() {
        let segmentation = segment(&DynamicImage::ImageLuma8(strokes(300, 120, 60, &[40, 140])), Method::Cuts);
        assert!(matches!(segmentation.read(&[], None), Err(Error::Reading(_))));
        let short = vec![vec![0.5; 3]; segmentation.candidates.len()];
        assert!(matches!(segmentation.read(&short, None), Err(Error::Reading(_))));
    }

    #[test]
    fn raw_gray_pixels_must_match_their_size() {
        let limits = DecodeLimits::default();
        assert!(gray_image(4, 2, vec![0; 8], &limits).is_ok());
        assert!(matches!(gray_image(4, 2, vec![0; 7], &limits), Err(Error::PixelDimensions { found: 7, .. })));
        assert!(matches!(gray_image(0, 2, Vec::new(), &limits), Err(Error::EmptyImage { width: 0, height: 2 })));
        assert!(matches!(gray_image(9000, 1, vec![0; 9000], &limits), Err(Error::ImageDimensions { .. })));
    }
}
