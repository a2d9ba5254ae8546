//! Which way round a photo's ink is: dark strokes on light paper (pen,
//! pencil) or light strokes on a dark ground (chalk on a board, a digital
//! drawing), decided by the strokes themselves.
//!
//! The border's brightness does not decide it. A threshold on how even a
//! dark border is was fitted to the project's own chalkboards once, and a
//! real board lit by a lamp (its brightness spreading more than the
//! threshold) then had its board taken for ink: a chalk 5 came back "0" at
//! 0.994. Strokes are what a person looks at: thin marks that differ from
//! the ground around them. The ground near each pixel is the median of a
//! window wider than a digit's strokes (they, and the paper between them,
//! cover a minority of it), so it follows a lamp's spot, a gradient or a
//! shadow; marks are what stands out from it, darker or lighter. Whichever
//! kind weighs more is the ink; where the two are close, the photo is read
//! both ways (`DigitView::other_polarity`) and the model arbitrates; where
//! neither weighs anything, there is no digit.

/// Longest side of the copy the strokes are measured on: a digit a person
/// can read has strokes of a few pixels there, and the work stays small.
const EVIDENCE_SIDE: u32 = 128;

/// Departures from the ground below this (of the 0-1 brightness) are paper grain,
/// JPEG ringing or chalk dust, not strokes.
const GRAIN: f32 = 0.04;

/// |ln(light / dark)| below this leaves the polarity uncertain: the photo
/// is read both ways. Chosen on `mnist::synth`'s photos (seed 2026: every
/// dark-ink condition scores -0.5 and below, its chalkboards +2.7 and
/// above); checked on the second renderer's (`scripts/eval-renderers.sh`:
/// dark ink -0.1 and below, chalk under a lamp +0.3 and above, so a few
/// of each are read both ways and the model arbitrates).
const SURE: f32 = 1.0;

/// A page whose marks weigh less than this (per pixel of the measuring
/// copy) has nothing on it that stands out from its ground: no digit. The
/// faintest digits of `mnist::synth`'s photos weigh 3.4e-4 (small digits
/// among specks; faint pencil 1.1e-3), seed 2026; checked on the second
/// renderer's: its faintest pencil digit 3.2e-4, its blank paper, black
/// frames and gradients 0, its textured paper at most 2e-6.
const MIN_MARKS: f32 = 0.5e-4;

/// The evidence for one way round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Polarity {
    /// ln of the light strokes' weight over the dark strokes': above 0, the
    /// ink is light on a dark ground.
    pub evidence: f32,
    /// How much marks stand out from their ground at all: the larger
    /// weight, per pixel of the measuring copy (0 for an even page).
    pub marks: f32,
}

impl Polarity {
    /// Whether the ink is light on a dark ground (the image is inverted so
    /// that paper is light, as the rest of preprocessing expects).
    pub fn light_ink(self) -> bool {
        self.evidence > 0.0
    }

    /// Whether the strokes say clearly which way round the ink is.
    pub fn certain(self) -> bool {
        self.evidence.abs() >= SURE
    }

    /// Whether anything on the page stands out from its ground at all.
    pub fn has_marks(self) -> bool {
        self.marks >= MIN_MARKS
    }
}

/// The strokes' evidence in a gray image (`values` 0-1, `width` x `height`).
pub(crate) fn of_strokes(values: &[f32], width: u32, height: u32) -> Polarity {
    let (small, w, h) = shrink(values, width, height);
    if w < 3 || h < 3 {
        return Polarity { evidence: 0.0, marks: 0.0 };
    }
    // The ground near each pixel: the median of a window a quarter of the
    // image across, which follows a lamp's spot and a gradient but not a
    // digit's strokes (they cover a minority of any such window, and so
    // does the paper between them: it is ground, not a mark).
    let bytes: Vec<u8> = small.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    let Some(image) = image::GrayImage::from_raw(w as u32, h as u32, bytes) else {
        return Polarity { evidence: 0.0, marks: 0.0 };
    };
    let radius = (w.max(h) / 8).clamp(1, 24) as u32;
    let ground = imageproc::filter::median_filter(&image, radius, radius);
    let (mut dark, mut light) = (0.0f64, 0.0f64);
    for (&v, g) in image.as_raw().iter().zip(ground.as_raw()) {
        let deviation = (f32::from(v) - f32::from(*g)) / 255.0;
        let strength = (deviation.abs() - GRAIN).max(0.0);
        if deviation < 0.0 {
            dark += f64::from(strength * strength);
        } else {
            light += f64::from(strength * strength);
        }
    }
    // A floor so that a page with no marks either way is 0, not the ratio
    // of two kinds of noise.
    let floor = 1e-3 * (w * h) as f64 * f64::from(GRAIN * GRAIN);
    Polarity {
        evidence: ((light + floor) / (dark + floor)).ln() as f32,
        marks: (light.max(dark) / (w * h) as f64) as f32,
    }
}

/// An area-averaged copy no longer than [`EVIDENCE_SIDE`] a side, by an
/// integer factor. (`image`'s thumbnail, to an exact size, was tried in its
/// place: it moved photos across the thresholds chosen with this one, one
/// more empty ruled page named a digit at 0.99.)
fn shrink(values: &[f32], width: u32, height: u32) -> (Vec<f32>, usize, usize) {
    let (w, h) = (width as usize, height as usize);
    let longer = width.max(height);
    if longer <= EVIDENCE_SIDE {
        return (values.to_vec(), w, h);
    }
    let factor = longer.div_ceil(EVIDENCE_SIDE) as usize;
    let (sw, sh) = (w.div_ceil(factor), h.div_ceil(factor));
    let mut sum = vec![0.0f32; sw * sh];
    let mut count = vec![0u32; sw * sh];
    for y in 0..h {
        for x in 0..w {
            let i = (y / factor) * sw + x / factor;
            sum[i] += values[y * w + x];
            count[i] += 1;
        }
    }
    let small = sum.iter().zip(&count).map(|(s, &n)| s / n.max(1) as f32).collect();
    (small, sw, sh)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `side` x `side` image of `ground` with a ring of `ink` (a 0).
    fn ring(side: usize, ground: impl Fn(usize, usize) -> f32, ink: f32) -> Vec<f32> {
        let c = side as f32 / 2.0;
        let (outer, inner) = (side as f32 * 0.3, side as f32 * 0.22);
        (0..side * side)
            .map(|i| {
                let (x, y) = ((i % side) as f32, (i / side) as f32);
                let r = ((x - c).powi(2) + (y - c).powi(2)).sqrt();
                if r < outer && r > inner { ink } else { ground(i % side, i / side) }
            })
            .collect()
    }

    #[test]
    fn dark_ink_on_paper_is_dark_and_sure() {
        let p = of_strokes(&ring(200, |_, _| 0.9, 0.15), 200, 200);
        assert!(!p.light_ink() && p.certain(), "{p:?}");
    }

    #[test]
    fn chalk_on_a_board_under_a_lamp_is_light_and_sure() {
        // The board's brightness spreads from 0.1 to 0.6 across the image
        // (a lamp's spot in one corner): the border rule took such boards
        // for paper in shadow.
        let lamp = |x: usize, y: usize| 0.1 + 0.5 * (-(((x * x + y * y) as f32) / 20000.0)).exp();
        let p = of_strokes(&ring(200, lamp, 0.9), 200, 200);
        assert!(p.light_ink() && p.certain(), "{p:?}");
    }

    #[test]
    fn a_page_without_strokes_is_uncertain() {
        let gradient: Vec<f32> = (0..200 * 200).map(|i| (i % 200) as f32 / 200.0).collect();
        let p = of_strokes(&gradient, 200, 200);
        assert!(!p.certain(), "{p:?}");
        assert_eq!(of_strokes(&[0.0; 400], 20, 20).evidence, 0.0);
    }
}
