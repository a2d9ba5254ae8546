//! Reading a line of digits as a whole, without choosing cuts: the line's
//! ink becomes one strip 28 pixels high (digits about MNIST's 20), the
//! classifier looks at it through 28x28 windows [`FRAME_STRIDE`] pixels
//! apart, and connectionist temporal classification (CTC) turns what it
//! says of each window into digits.
//!
//! Cutting touching digits apart and asking which cut the classifier likes
//! best fails where two touching digits look like one wide digit; a model
//! that says, for every position along the line, "a 3 is centred here" or
//! "nothing is centred here" needs no cuts at all.
//!
//! The line is read through two [`View`]s of its strip (test-time
//! augmentation, [`READING_VIEWS`]): each proposes the text of its best
//! path, and the text both favour together is the reading.
//!
//! The windows are ordinary 28x28 images, so they go through the server's
//! micro-batcher like any other digit, and the window model is exported as
//! any classifier is (`mnist-train train --line-set`): ten logits, one per
//! digit. The eleventh class, CTC's *blank* ("no digit centred here"), has
//! its logit fixed at zero: softmax does not change when every logit moves
//! together, so pinning one of eleven logits loses nothing, and the model
//! keeps the shape every served model has.

use std::sync::Arc;

use image::{DynamicImage, ImageBuffer, Luma, imageops};

use super::{Line, PixelBox, READ_WORK_SIDE, ReadDigit, Reading, to_original};
use crate::{Error, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES, Result, preprocess::page_ink};

/// Columns between the left edges of two neighbouring windows. The window
/// model's first layers see the strip the same way whatever the offset, as
/// long as it is even (its 2x2 pooling): training computes every window of
/// a strip at once on that account.
pub const FRAME_STRIDE: usize = 4;

/// Height of a digit of the line in the strip, as in MNIST's 20x20 box.
const DIGIT_HEIGHT: f32 = 20.0;

/// Blank columns kept between two marks, in line heights: wider gaps are
/// narrowed to this so that a widely spaced number is not mostly paper.
const MAX_GAP: f32 = 0.3;

/// Blank columns before and after the ink, so that the first and last
/// windows are centred on the line's ends.
const PAD: usize = 12;

/// Most windows per line: a line that would need more is squeezed
/// (bounded work for a 20000x200 strip).
pub const MAX_FRAMES: usize = 96;

/// Most digits a reading holds: a longer one is not a number.
pub const MAX_DIGITS: usize = 24;

/// A line of ink, normalized for the window model, and the way back to the
/// original image.
#[derive(Debug, Clone)]
pub struct LineStrip {
    /// Columns of the strip.
    pub width: usize,
    /// `IMAGE_SIDE` rows of `width` MNIST-style pixels (0 paper, 255 ink).
    pub pixels: Vec<u8>,
    /// Blank columns before the ink.
    pad_left: usize,
    /// Strip columns per band column.
    scale: f32,
    /// Whether the line was made smaller than its digits' reading height to
    /// fit [`MAX_FRAMES`] windows.
    squeezed: bool,
    /// Where the strip's columns are on the page: shared by every view.
    page: Arc<LineOnPage>,
}

/// The line on the page, to map a strip's columns back to the photo.
#[derive(Debug)]
struct LineOnPage {
    /// The work-size column each column of the narrowed band came from.
    columns: Vec<usize>,
    /// The page's ink, kept only on the line (work size, row-major), to
    /// find each digit's rows.
    ink: Vec<f32>,
    page_width: usize,
    level: f32,
    /// Rows of the line's band (work size).
    rows: (usize, usize),
    /// Original pixels per work pixel, and the original size.
    to_original: (f32, u32, u32),
}

/// One way of laying a line out for the window model. Reading a line
/// through more than one view and averaging what they say of each text is
/// test-time augmentation: a view shifted by half a window stride puts the
/// windows' edges elsewhere on the digits, so that a pair of touching
/// digits one view's windows straddle badly another sees whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Blank columns added before the ink (fewer than [`FRAME_STRIDE`]).
    pub shift: usize,
    /// Height of a digit of the line in the strip (MNIST's is 20).
    pub digit_height: f32,
}

impl View {
    /// The view the window model is trained on.
    pub const PLAIN: View = View { shift: 0, digit_height: DIGIT_HEIGHT };
}

/// The views a line is read through: two, half a window stride apart, with
/// digits a little taller than the plain view's (the window model then
/// finds more of two touching digits). Chosen on numbers of MNIST training
/// digits with the 4-epoch window model (docs/reading-numbers.md): 2,856
/// of 3,000 read right against 2,823 through the plain view alone, for
/// twice the windows.
pub const READING_VIEWS: [View; 2] =
    [View { shift: 0, digit_height: 22.0 }, View { shift: FRAME_STRIDE / 2, digit_height: 22.0 }];

/// The line's ink on the page, cut to the line's band: what every view's
/// strip is made from.
struct Band {
    /// Ink values of the narrowed band (its columns x its rows).
    image: ImageBuffer<Luma<f32>, Vec<f32>>,
    line_height: f32,
    page: Arc<LineOnPage>,
}

impl Band {
    /// The band of a page's line, from the components on it.
    fn new(image: &DynamicImage) -> Option<Self> {
        let page = page_ink(image, READ_WORK_SIDE, &mut |_, _| {})?;
        let scale = image.width().max(image.height()) as f32 / page.width.max(page.height) as f32;
        let labels = page.labels();
        let components = page.components(&labels);
        let line = Line::of(&components)?;
        let mut on_line = vec![false; components.iter().map(|c| c.label as usize + 1).max().unwrap_or(0)];
        let (mut x0, mut x1, mut y0, mut y1) = (usize::MAX, 0, usize::MAX, 0);
        let mut covered = vec![false; page.width];
        for c in components.iter().filter(|c| line.holds(c)) {
            on_line[c.label as usize] = true;
            (x0, x1, y0, y1) = (x0.min(c.x0), x1.max(c.x1), y0.min(c.y0), y1.max(c.y1));
            // The strokes' antialiased edges reach a pixel or two past the mask.
            covered[c.x0.saturating_sub(2)..(c.x1 + 2).min(page.width)].fill(true);
        }
        if x0 >= x1 {
            return None;
        }
        let keep: Vec<bool> = labels.iter().map(|&l| on_line.get(l as usize).copied().unwrap_or(false)).collect();
        let ink = page.kept_ink(&keep)?;
        let (x0, x1) = (x0.saturating_sub(2), (x1 + 2).min(page.width));
        let (y0, y1) = (y0.saturating_sub(2), (y1 + 2).min(page.height));
        let max_gap = (MAX_GAP * line.height).round().max(1.0) as usize;
        let mut columns = Vec::with_capacity(x1 - x0);
        let mut gap = 0;
        for (x, &inked) in covered.iter().enumerate().take(x1).skip(x0) {
            gap = if inked { 0 } else { gap + 1 };
            if gap <= max_gap {
                columns.push(x);
            }
        }
        let band = ImageBuffer::<Luma<f32>, Vec<f32>>::from_fn(columns.len() as u32, (y1 - y0) as u32, |c, r| {
            Luma([ink[(y0 + r as usize) * page.width + columns[c as usize]]])
        });
        let on_page = LineOnPage {
            columns,
            ink,
            page_width: page.width,
            level: page.level,
            rows: (y0, y1),
            to_original: (scale, image.width(), image.height()),
        };
        Some(Self { image: band, line_height: line.height, page: Arc::new(on_page) })
    }

    /// The band as `view` lays it out for the window model.
    fn strip(&self, view: View) -> LineStrip {
        let band_height = self.page.rows.1 - self.page.rows.0;
        let band_width = self.page.columns.len();
        let pad_left = PAD + view.shift.min(FRAME_STRIDE - 1);
        // Room for the largest shift, so that every view keeps within MAX_FRAMES.
        let most_ink_columns = (MAX_FRAMES - 1) * FRAME_STRIDE + IMAGE_SIDE - 2 * PAD - FRAME_STRIDE;
        let reading_scale = (view.digit_height / self.line_height).min((IMAGE_SIDE - 2) as f32 / band_height as f32);
        let fitting_scale = most_ink_columns as f32 / band_width as f32;
        let strip_scale = reading_scale.min(fitting_scale);
        // Digits under 80 % of their reading height read worse.
        let squeezed = fitting_scale < 0.8 * reading_scale;
        let ink_width = ((band_width as f32 * strip_scale).round() as u32).max(1);
        let ink_height = ((band_height as f32 * strip_scale).round() as u32).clamp(1, IMAGE_SIDE as u32);
        let resized = imageops::resize(&self.image, ink_width, ink_height, imageops::FilterType::Triangle);
        let width = strip_width(pad_left - PAD + ink_width as usize);
        let mut pixels = vec![0u8; IMAGE_SIDE * width];
        let top = (IMAGE_SIDE - ink_height as usize) / 2;
        for (x, y, value) in resized.enumerate_pixels() {
            pixels[(top + y as usize) * width + pad_left + x as usize] =
                (value.0[0].clamp(0.0, 1.0) * 255.0).round() as u8;
        }
        LineStrip { width, pixels, pad_left, scale: strip_scale, squeezed, page: Arc::clone(&self.page) }
    }
}

impl LineStrip {
    /// Whether the line had to be made smaller than its digits' reading
    /// height to fit the windows a reading may take: a line of more digits
    /// than [`MAX_DIGITS`].
    pub fn is_squeezed(&self) -> bool {
        self.squeezed
    }

    /// Makes the strips of a page's line, one per view (none when the page
    /// holds no line of ink); the page is normalized once for all of them.
    pub(super) fn views(image: &DynamicImage, views: &[View]) -> Vec<Self> {
        Band::new(image).map(|band| views.iter().map(|&view| band.strip(view)).collect()).unwrap_or_default()
    }

    /// How many windows the model looks through.
    pub fn frames(&self) -> usize {
        (self.width - IMAGE_SIDE) / FRAME_STRIDE + 1
    }

    /// The 28x28 window of frame `k` (784 MNIST-style pixels).
    pub fn window(&self, k: usize) -> Vec<u8> {
        let left = k * FRAME_STRIDE;
        let mut pixels = Vec::with_capacity(IMAGE_PIXELS);
        for row in self.pixels.chunks_exact(self.width) {
            pixels.extend_from_slice(&row[left..left + IMAGE_SIDE]);
        }
        pixels
    }

    /// The work-size column under strip column `x`.
    fn work_column(&self, x: f32) -> usize {
        let band_column = ((x - self.pad_left as f32) / self.scale).round().max(0.0) as usize;
        let columns = &self.page.columns;
        columns[band_column.min(columns.len() - 1)]
    }

    /// The box, in the original image, of the line's ink between strip
    /// columns `left..right` (the columns themselves when they hold none).
    pub(super) fn ink_box(&self, left: f32, right: f32) -> PixelBox {
        let (x0, x1) = (self.work_column(left), self.work_column(right) + 1);
        let page = &*self.page;
        let (band_top, band_bottom) = page.rows;
        let inked = |x: usize, y: usize| page.ink[y * page.page_width + x] > page.level;
        let inked_row = |y: &usize| (x0..x1).any(|x| inked(x, *y));
        let inked_column = |x: &usize| (band_top..band_bottom).any(|y| inked(*x, y));
        let (y0, y1) = match ((band_top..band_bottom).find(inked_row), (band_top..band_bottom).rfind(inked_row)) {
            (Some(top), Some(bottom)) => (top, bottom + 1),
            _ => page.rows,
        };
        let (x0, x1) = match ((x0..x1).find(inked_column), (x0..x1).rfind(inked_column)) {
            (Some(first), Some(last)) => (first, last + 1),
            _ => (x0, x1),
        };
        let (scale, width, height) = page.to_original;
        to_original((x0, y0, x1, y1), scale, width, height)
    }

    /// The line's ink between strip columns `left..right`, at the page's
    /// resolution (finer than the strip's), fitted and centred as a single
    /// digit is.
    fn digit_pixels(&self, left: f32, right: f32) -> Vec<u8> {
        let (x0, x1) = (self.work_column(left), self.work_column(right) + 1);
        let page = &*self.page;
        let (y0, y1) = page.rows;
        crate::preprocess::digit_pixels_of(&page.ink, page.page_width, page.level, (x0, y0, x1, y1), |_, _| true)
    }

    /// The ink of the strip's column `x` (0: blank paper; the last column
    /// for any `x` past it).
    fn column_ink(&self, x: usize) -> u32 {
        let x = x.min(self.width.saturating_sub(1));
        self.pixels.iter().skip(x).step_by(self.width).map(|&v| u32::from(v)).sum()
    }

    /// The strip column at the centre of frame `k`'s window.
    fn frame_centre(k: usize) -> usize {
        k * FRAME_STRIDE + IMAGE_SIDE / 2
    }

    /// Between the centres of frames `from` and `to`, the column of the
    /// strip with the least ink (the middle one of equals): the gap between
    /// two digits, or where two touching digits meet.
    fn emptiest_column(&self, from: usize, to: usize) -> f32 {
        let (a, b) = (Self::frame_centre(from), Self::frame_centre(to).min(self.width));
        // Twice the distance to the middle, in whole columns.
        let off_middle = |x: usize| (2 * x).abs_diff(a + b);
        (a..b).min_by_key(|&x| (self.column_ink(x), off_middle(x))).map_or((a + b) as f32 / 2.0, |x| x as f32 + 0.5)
    }

    /// The digits `spans` emit, with their boxes in the photo;
    /// `probabilities` are the frames' the spans were found in, and
    /// `first_candidate` is the index of this strip's first window among the
    /// segmentation's candidates.
    fn digits(&self, probabilities: &[[f32; BLANK + 1]], spans: &[Span], first_candidate: usize) -> Vec<ReadDigit> {
        spans
            .iter()
            .enumerate()
            .map(|(i, span)| {
                // A digit reaches to the emptiest column between it and
                // each neighbour, and to the line's ends at either end.
                let left = match i {
                    0 => 0.0,
                    _ => self.emptiest_column(spans[i - 1].peak, span.peak),
                };
                let right = match spans.get(i + 1) {
                    Some(next) => self.emptiest_column(span.peak, next.peak),
                    None => self.width as f32,
                };
                let p = &probabilities[span.peak];
                let digit_mass: f32 = p[..BLANK].iter().sum();
                ReadDigit {
                    digit: span.digit as u8,
                    confidence: p[span.digit],
                    probabilities: p[..BLANK].iter().map(|v| v / digit_mass.max(f32::MIN_POSITIVE)).collect(),
                    bounds: self.ink_box(left, right),
                    candidate: first_candidate + span.peak,
                    // Cut columns are whole columns plus a half, or the line's ends.
                    alone: (self.column_ink(left as usize) == 0 && self.column_ink(right as usize) == 0)
                        .then(|| self.digit_pixels(left, right)),
                    checked: false,
                }
            })
            .collect()
    }
}

/// Reads a line from the window model's logits for every window of every
/// view of it (`strips`, one per [`View`], their windows in order; one
/// vector of ten logits per window).
///
/// Each view proposes the text of its best path; the answer is the
/// proposal the views give the highest mean probability (CTC's sum over
/// every alignment, [`text_probability`]), and that mean is its
/// confidence. With one view this is that view's best path.
pub(super) fn read_views(strips: &[LineStrip], logits: &[Vec<f32>], expected_digits: Option<usize>) -> Result<Reading> {
    let frames: usize = strips.iter().map(LineStrip::frames).sum();
    if logits.len() != frames {
        return Err(Error::Reading(format!("{frames} windows but {} logit vectors", logits.len())));
    }
    if let Some(bad) = logits.iter().find(|l| l.len() != NUM_CLASSES) {
        return Err(Error::Reading(format!("a logit vector has {} values, not {NUM_CLASSES}", bad.len())));
    }
    let mut views = Vec::with_capacity(strips.len());
    let mut first_candidate = 0;
    for strip in strips {
        let probabilities: Vec<[f32; BLANK + 1]> =
            logits[first_candidate..first_candidate + strip.frames()].iter().map(|l| with_blank(l)).collect();
        let path = best_path(&probabilities, expected_digits);
        let spans = path.spans(&probabilities);
        views.push(DecodedView { probabilities, first_candidate, spans, best_length: path.best_length });
        first_candidate += strip.frames();
    }
    let proposals: Vec<Vec<usize>> = views.iter().map(|v| v.spans.iter().map(|s| s.digit).collect()).collect();
    let probabilities: Vec<&[[f32; BLANK + 1]]> = views.iter().map(|v| v.probabilities.as_slice()).collect();
    let Some((chosen, confidence)) = surest_proposal(&probabilities, &proposals) else {
        return Ok(Reading {
            text: String::new(),
            confidence: 0.0,
            digits: Vec::new(),
            best_length: 0,
            cut_short: None,
        });
    };
    // Only the answer's digits need their boxes (a scan of the page's ink).
    let view = &views[chosen];
    let digits = strips[chosen].digits(&view.probabilities, &view.spans, view.first_candidate);
    let best_length = view.best_length;
    let text = super::text_of(&digits);
    let confidence = if digits.is_empty() { 0.0 } else { confidence };
    Ok(Reading { text, confidence, digits, best_length, cut_short: None })
}

/// One view of a line, decoded.
struct DecodedView {
    /// Its frames' eleven probabilities.
    probabilities: Vec<[f32; BLANK + 1]>,
    /// Index of its first window among the segmentation's candidates.
    first_candidate: usize,
    /// The digits of its best path.
    spans: Vec<Span>,
    /// How many digits its best path of any length has.
    best_length: usize,
}

/// Of the texts the views propose (`proposals`, one per view), the one the
/// views' frames (`probabilities`, one list per view) give the highest mean
/// probability, and that mean; the first of equals. `None` without views.
fn surest_proposal(probabilities: &[&[[f32; BLANK + 1]]], proposals: &[Vec<usize>]) -> Option<(usize, f32)> {
    let mean = |labels: &[usize]| {
        probabilities.iter().map(|p| text_probability(p, labels)).sum::<f32>() / probabilities.len().max(1) as f32
    };
    let mut best: Option<(usize, f32)> = None;
    for (index, labels) in proposals.iter().enumerate() {
        if proposals[..index].contains(labels) {
            continue;
        }
        let score = mean(labels);
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((index, score));
        }
    }
    best
}

/// The strip's width for `ink` columns of ink: padded on both sides, and
/// so that windows `FRAME_STRIDE` apart end exactly at its right edge.
fn strip_width(ink: usize) -> usize {
    let width = (ink + 2 * PAD).max(IMAGE_SIDE);
    IMAGE_SIDE + (width - IMAGE_SIDE).div_ceil(FRAME_STRIDE) * FRAME_STRIDE
}

/// CTC's blank: the eleventh class, "no digit centred in this window".
const BLANK: usize = NUM_CLASSES;

/// The eleven probabilities of a frame: softmax of its ten logits and the
/// blank's, fixed at zero.
fn with_blank(logits: &[f32]) -> [f32; BLANK + 1] {
    let max = logits.iter().copied().fold(0.0f32, f32::max);
    let mut p = [0.0; BLANK + 1];
    for (to, &l) in p.iter_mut().zip(logits) {
        *to = (l - max).exp();
    }
    p[BLANK] = (-max).exp();
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= sum);
    p
}

/// The frames one emitted digit spans on the best path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    digit: usize,
    first: usize,
    last: usize,
    /// The frame of the span where the digit is likeliest.
    peak: usize,
}

/// A best path: the symbol of every frame.
#[derive(Debug)]
struct Path {
    symbols: Vec<usize>,
    /// How many digits the best path of any length has.
    best_length: usize,
}

impl Path {
    /// The digits the path emits: runs of one digit, split where a blank
    /// stands between two runs of the same digit; `probabilities` are the
    /// frames' the path was found in.
    fn spans(&self, probabilities: &[[f32; BLANK + 1]]) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        let mut previous = BLANK;
        for (t, &s) in self.symbols.iter().enumerate() {
            if s != BLANK {
                match spans.last_mut() {
                    Some(span) if s == previous => {
                        span.last = t;
                        if probabilities[t][s] > probabilities[span.peak][s] {
                            span.peak = t;
                        }
                    }
                    _ => spans.push(Span { digit: s, first: t, last: t, peak: t }),
                }
            }
            previous = s;
        }
        spans
    }
}

/// The likeliest frame-by-frame symbols (Viterbi over CTC's paths, counting
/// emitted digits), with exactly `expected_digits` digits if any path has
/// that many, else the likeliest of any length.
fn best_path(probabilities: &[[f32; BLANK + 1]], expected_digits: Option<usize>) -> Path {
    let frames = probabilities.len();
    let most = frames.min(MAX_DIGITS);
    let states = (most + 1) * (BLANK + 1);
    let index = |k: usize, s: usize| k * (BLANK + 1) + s;
    let log = |p: f32| p.max(1e-30).ln();
    // score[k][s]: the best log-probability of the frames so far, having
    // emitted k digits and now on symbol s; `from` the state before.
    let mut score = vec![f32::NEG_INFINITY; states];
    let mut from = vec![usize::MAX; frames * states];
    if frames == 0 {
        return Path { symbols: Vec::new(), best_length: 0 };
    }
    score[index(0, BLANK)] = log(probabilities[0][BLANK]);
    for d in 0..BLANK {
        if most >= 1 {
            score[index(1, d)] = log(probabilities[0][d]);
        }
    }
    for t in 1..frames {
        let mut next = vec![f32::NEG_INFINITY; states];
        for k in 0..=most {
            for s in 0..=BLANK {
                let here = score[index(k, s)];
                if here == f32::NEG_INFINITY {
                    continue;
                }
                let mut go = |k2: usize, s2: usize| {
                    let candidate = here + log(probabilities[t][s2]);
                    if candidate > next[index(k2, s2)] {
                        next[index(k2, s2)] = candidate;
                        from[t * states + index(k2, s2)] = index(k, s);
                    }
                };
                go(k, BLANK);
                if s != BLANK {
                    go(k, s);
                }
                if k < most {
                    for d in (0..BLANK).filter(|&d| d != s) {
                        go(k + 1, d);
                    }
                }
            }
        }
        score = next;
    }
    let best_of_length = |k: usize| {
        (0..=BLANK).map(|s| (score[index(k, s)], index(k, s))).max_by(|a, b| a.0.total_cmp(&b.0)).unwrap_or((0.0, 0))
    };
    let best_any = (0..=most).map(best_of_length).max_by(|a, b| a.0.total_cmp(&b.0)).unwrap_or((0.0, 0));
    let best_length = best_any.1 / (BLANK + 1);
    let chosen =
        expected_digits.filter(|&k| k <= most).map(best_of_length).filter(|(s, _)| s.is_finite()).unwrap_or(best_any);
    let mut symbols = vec![BLANK; frames];
    let mut state = chosen.1;
    for t in (0..frames).rev() {
        symbols[t] = state % (BLANK + 1);
        if t > 0 {
            state = from[t * states + state];
        }
    }
    Path { symbols, best_length }
}

/// The probability the frames give `labels` as the whole text: CTC's sum
/// over every way of aligning them with the frames (the forward algorithm).
///
/// This, not the product of each digit's peak probability, is the
/// reading's confidence: a digit the best path left out (a window unsure
/// between a 0 and the blank) lowers it, where the product of the digits
/// read never sees what was not read.
fn text_probability(probabilities: &[[f32; BLANK + 1]], labels: &[usize]) -> f32 {
    // Extended labels: a blank before, between and after the digits.
    let extended: Vec<usize> = std::iter::once(BLANK).chain(labels.iter().flat_map(|&l| [l, BLANK])).collect();
    let Some(first) = probabilities.first() else {
        return if labels.is_empty() { 1.0 } else { 0.0 };
    };
    let mut alpha = vec![0.0f64; extended.len()];
    alpha[0] = f64::from(first[BLANK]);
    if let Some(&l) = extended.get(1) {
        alpha[1] = f64::from(first[l]);
    }
    // Rescaled every frame (a long line's probabilities underflow); the
    // log of the scales is added back at the end.
    let mut log_scale = 0.0f64;
    for frame in &probabilities[1..] {
        let mut next = vec![0.0f64; extended.len()];
        for (i, &symbol) in extended.iter().enumerate() {
            let mut reach = alpha[i];
            if i >= 1 {
                reach += alpha[i - 1];
            }
            // A digit may follow the previous digit straight on unless the two are the same.
            if i >= 2 && symbol != BLANK && extended[i - 2] != symbol {
                reach += alpha[i - 2];
            }
            next[i] = reach * f64::from(frame[symbol]);
        }
        let sum: f64 = next.iter().sum();
        if sum <= 0.0 {
            return 0.0;
        }
        next.iter_mut().for_each(|a| *a /= sum);
        log_scale += sum.ln();
        alpha = next;
    }
    let end = alpha[extended.len() - 1] + if extended.len() >= 2 { alpha[extended.len() - 2] } else { 0.0 };
    (end.ln() + log_scale).exp().clamp(0.0, 1.0) as f32
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Made-up window logits: at each `(frame, digit)` the digit is sure,
    /// elsewhere the blank.
    pub(in crate::read) fn logits_for(frames: usize, digits: &[(usize, usize)]) -> Vec<Vec<f32>> {
        (0..frames)
            .map(|t| {
                let mut l = vec![-6.0; NUM_CLASSES];
                if let Some(&(_, d)) = digits.iter().find(|(at, _)| *at == t) {
                    l[d] = 8.0;
                }
                l
            })
            .collect()
    }

    fn symbols_of(logits: &[Vec<f32>], expected: Option<usize>) -> Vec<usize> {
        let p = probabilities_of(logits);
        best_path(&p, expected).spans(&p).iter().map(|s| s.digit).collect()
    }

    #[test]
    fn the_blank_is_an_eleventh_class_with_its_logit_at_zero() {
        let p = with_blank(&[0.0; NUM_CLASSES]);
        assert!(p.iter().all(|&v| (v - 1.0 / 11.0).abs() < 1e-6));
        let p = with_blank(&[-20.0; NUM_CLASSES]);
        assert!(p[BLANK] > 0.999);
        let sum: f32 = with_blank(&[3.0, -1.0, 0.5, 0.0, 2.0, 9.0, -4.0, 1.0, 0.0, 0.0]).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }

    #[test]
    fn repeated_digits_need_a_blank_between_them() {
        // 7 7 blank 7 -> "77"; 3 3 3 -> "3".
        let logits = logits_for(8, &[(1, 7), (2, 7), (4, 7), (6, 3)]);
        assert_eq!(symbols_of(&logits, None), [7, 7, 3]);
        let logits = logits_for(5, &[(1, 3), (2, 3), (3, 3)]);
        assert_eq!(symbols_of(&logits, None), [3]);
    }

    #[test]
    fn an_expected_length_takes_the_best_path_with_that_many_digits() {
        // Frame 4 is unsure between blank and 2: left alone it is blank.
        let mut logits = logits_for(8, &[(1, 5), (6, 9)]);
        logits[4][2] = -0.3;
        assert_eq!(symbols_of(&logits, None), [5, 9]);
        assert_eq!(symbols_of(&logits, Some(3)), [5, 2, 9]);
        // More digits than frames allow: the best reading of any length.
        assert_eq!(symbols_of(&logits, Some(40)), [5, 9]);
        let p = probabilities_of(&logits);
        assert_eq!(best_path(&p, Some(3)).best_length, 2);
    }

    #[test]
    fn the_text_probability_sums_every_alignment() {
        // Two frames, each sure of nothing: every one of the 121 symbol
        // pairs has probability 1/121; "5" is emitted by 5-5, 5-blank,
        // blank-5; "" by blank-blank alone; "55" by none (no blank between).
        let flat = vec![with_blank(&[0.0; NUM_CLASSES]); 2];
        let pair = 1.0 / 121.0;
        assert!((text_probability(&flat, &[5]) - 3.0 * pair).abs() < 1e-6);
        assert!((text_probability(&flat, &[]) - pair).abs() < 1e-6);
        assert!((text_probability(&flat, &[5, 3]) - pair).abs() < 1e-6);
        assert_eq!(text_probability(&flat, &[5, 5]), 0.0);
        // Every text of at most two digits: the probabilities sum to one.
        let mut total = text_probability(&flat, &[]);
        for a in 0..NUM_CLASSES {
            total += text_probability(&flat, &[a]);
            for b in 0..NUM_CLASSES {
                total += text_probability(&flat, &[a, b]);
            }
        }
        assert!((total - 1.0).abs() < 1e-5, "{total}");
    }

    #[test]
    fn a_digit_the_best_path_leaves_out_lowers_the_confidence() {
        let mut logits = sure_logits(8, &[(1, 5), (6, 9)]);
        assert!(text_probability(&probabilities_of(&logits), &[5, 9]) > 0.99);
        // Frame 4 becomes a 2 with probability about 0.43: the best path
        // still says blank there, and "59" is no longer sure of itself.
        logits[4][2] = -0.3;
        assert_eq!(symbols_of(&logits, None), [5, 9]);
        let unsure = text_probability(&probabilities_of(&logits), &[5, 9]);
        assert!((0.55..0.6).contains(&unsure), "{unsure}");
        // A long line of sure frames does not underflow.
        let long = probabilities_of(&sure_logits(96, &[(10, 1), (40, 2), (80, 3)]));
        assert!(text_probability(&long, &[1, 2, 3]) > 0.99);
    }

    /// Like [`logits_for`], every other logit far lower: frames sure of
    /// what they see, so that a line of blanks is not itself unsure.
    fn sure_logits(frames: usize, digits: &[(usize, usize)]) -> Vec<Vec<f32>> {
        let far_lower = |v: f32| if v < 0.0 { -16.0 } else { v };
        logits_for(frames, digits).into_iter().map(|l| l.into_iter().map(far_lower).collect()).collect()
    }

    fn probabilities_of(logits: &[Vec<f32>]) -> Vec<[f32; BLANK + 1]> {
        logits.iter().map(|l| with_blank(l)).collect()
    }

    #[test]
    fn the_views_choose_the_text_they_favour_together() {
        // The first view is unsure of a 2 at frame 4 and proposes "59"
        // (probability about 0.57 there, "529" about 0.43); the second sees
        // the 2 clearly. Together they favour "529".
        let mut unsure = sure_logits(8, &[(1, 5), (6, 9)]);
        unsure[4][2] = -0.3;
        let clear = sure_logits(8, &[(1, 5), (4, 2), (6, 9)]);
        let (a, b) = (probabilities_of(&unsure), probabilities_of(&clear));
        let proposals = [vec![5, 9], vec![5, 2, 9]];
        let (chosen, confidence) = surest_proposal(&[&a, &b], &proposals).unwrap();
        assert_eq!(chosen, 1);
        let expected = (text_probability(&a, &[5, 2, 9]) + text_probability(&b, &[5, 2, 9])) / 2.0;
        assert!((confidence - expected).abs() < 1e-6 && (0.65..0.8).contains(&confidence), "{confidence}");
        // One view: its own proposal and probability; no views: nothing.
        assert_eq!(surest_proposal(&[&a], &proposals[..1]), Some((0, text_probability(&a, &[5, 9]))));
        assert_eq!(surest_proposal(&[], &[]), None);
    }

    #[test]
    fn a_shifted_view_is_the_plain_strip_moved_right() {
        let mut page = image::GrayImage::from_pixel(300, 120, Luma([235]));
        for left in [40, 120, 200] {
            imageproc::drawing::draw_filled_rect_mut(
                &mut page,
                imageproc::rect::Rect::at(left, 30).of_size(14, 60),
                Luma([20]),
            );
        }
        let views = [View::PLAIN, View { shift: 2, ..View::PLAIN }, View { digit_height: 24.0, ..View::PLAIN }];
        let strips = LineStrip::views(&DynamicImage::ImageLuma8(page), &views);
        let [plain, shifted, taller] = &strips[..] else { panic!("{} strips", strips.len()) };
        for row in 0..IMAGE_SIDE {
            let (p, s) = (&plain.pixels[row * plain.width..], &shifted.pixels[row * shifted.width..]);
            assert_eq!(&s[..2], &[0, 0]);
            assert!((0..plain.width - 2).all(|x| p[x] == s[x + 2]), "row {row}");
        }
        assert!(shifted.width >= plain.width && (shifted.width - IMAGE_SIDE).is_multiple_of(FRAME_STRIDE));
        let inked_rows =
            |strip: &LineStrip| strip.pixels.chunks(strip.width).filter(|r| r.iter().any(|&v| v > 128)).count();
        assert!(inked_rows(taller) > inked_rows(plain), "taller digits fill more rows");
    }

    #[test]
    fn strips_are_windows_apart_and_padded() {
        for ink in [0, 1, 5, 40, 41, 42, 43, 300] {
            let width = strip_width(ink);
            assert!(width >= ink + 2 * PAD && width >= IMAGE_SIDE, "{ink}");
            assert_eq!((width - IMAGE_SIDE) % FRAME_STRIDE, 0, "{ink}");
            assert!(width < ink + 2 * PAD + FRAME_STRIDE || width == IMAGE_SIDE, "{ink}");
        }
    }
}
