//! Pictures of a [`Reading`]: the photo with each digit's box and the digit
//! read drawn on it, and beneath it the 28x28 images the model saw. For
//! `mnist-client read --debug-preprocess` and the documentation's figures:
//! a person sees at once which digit was cut where.

use image::{DynamicImage, Rgb, RgbImage, imageops};
use imageproc::{drawing::draw_filled_rect_mut, rect::Rect};

use super::{PixelBox, Reading, Segmentation};
use crate::IMAGE_SIDE;

/// Longest side of the drawn photo: boxes and digits stay legible and the
/// file small, whatever the camera's resolution.
const PICTURE_SIDE: u32 = 960;

/// Colours of the boxes, one per digit in turn.
const COLOURS: [[u8; 3]; 4] = [[220, 40, 40], [30, 110, 220], [20, 150, 60], [200, 120, 0]];

/// 5x7 bitmaps of the digits 0-9, one row per byte (low 5 bits, the
/// leftmost pixel the highest): the labels need no font file.
const GLYPHS: [[u8; 7]; 10] = [
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
];

/// The photo (at most [`PICTURE_SIDE`] a side) with a box around each digit
/// read and the digit above it, and beneath it, for each digit, the 28x28
/// image the model saw (shown 3x) with the digit read under it.
pub fn annotated(image: &DynamicImage, segmentation: &Segmentation, reading: &Reading) -> RgbImage {
    let (photo, scale) = picture_of(image);
    let tile = IMAGE_SIDE as u32 * 3;
    let label_scale = 3u32;
    let strip = tile + 8 * label_scale + 16;
    let width = photo.width().max(reading.digits.len() as u32 * (tile + 8) + 8);
    let mut picture = RgbImage::from_pixel(width, photo.height() + strip, Rgb([255, 255, 255]));
    imageops::overlay(&mut picture, &photo, 0, 0);

    let glyph_scale = ((photo.height() as f32 / 120.0).round() as u32).clamp(2, 6);
    for (n, digit) in reading.digits.iter().enumerate() {
        let colour = Rgb(COLOURS[n % COLOURS.len()]);
        let (x, y, w, h) = scaled(digit.bounds, scale);
        for t in 0..2 {
            if w > 2 * t && h > 2 * t {
                let rect = Rect::at(x + t as i32, y + t as i32).of_size(w - 2 * t, h - 2 * t);
                imageproc::drawing::draw_hollow_rect_mut(&mut picture, rect, colour);
            }
        }
        let label_y = (y - 8 * glyph_scale as i32).max(0);
        draw_digit(&mut picture, digit.digit, x, label_y, glyph_scale, colour);

        if let Some(candidate) = segmentation.candidates.get(digit.candidate)
            && let Some(seen) =
                image::GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, candidate.pixels.clone())
        {
            let seen = DynamicImage::ImageLuma8(seen).resize(tile, tile, imageops::FilterType::Nearest).to_rgb8();
            let tile_x = 8 + n as u32 * (tile + 8);
            let tile_y = photo.height() + 8;
            imageops::overlay(&mut picture, &seen, i64::from(tile_x), i64::from(tile_y));
            let under = tile_y + tile + 4;
            draw_digit(&mut picture, digit.digit, tile_x as i32 + (tile as i32 - 5 * 3) / 2, under as i32, 3, colour);
        }
    }
    picture
}

/// The photo (at most [`PICTURE_SIDE`] a side) with a thin box around each
/// piece the segmentation found, in alternating colours: where components
/// were cut, and which marks were left out (no box).
pub fn pieces(image: &DynamicImage, segmentation: &Segmentation) -> RgbImage {
    let (mut picture, scale) = picture_of(image);
    for (n, &bounds) in segmentation.piece_bounds.iter().enumerate() {
        let (x, y, w, h) = scaled(bounds, scale);
        imageproc::drawing::draw_hollow_rect_mut(
            &mut picture,
            Rect::at(x, y).of_size(w, h),
            Rgb(COLOURS[n % COLOURS.len()]),
        );
    }
    picture
}

/// The line's strip as a window model reads it ([`super::Method::Windows`]),
/// shown 4x: for each digit read, the 28x28 window where the model was
/// surest of it, outlined, and the digit under it. The strip is the view
/// whose reading was the answer (the first when none was read). `None`
/// for a reading by cuts, which has no strip.
pub fn windows(segmentation: &Segmentation, reading: &Reading) -> Option<RgbImage> {
    let (strip, _) = segmentation.window(reading.digits.first().map_or(0, |d| d.candidate))?;
    let zoom = 4u32;
    let gray = image::GrayImage::from_raw(strip.width as u32, IMAGE_SIDE as u32, strip.pixels.clone())?;
    // MNIST's white-on-black, inverted to ink on paper like the photo.
    let mut gray = imageops::resize(&gray, gray.width() * zoom, gray.height() * zoom, imageops::FilterType::Nearest);
    imageops::invert(&mut gray);
    let label = 9 * 3 + 8;
    let mut picture = RgbImage::from_pixel(gray.width(), gray.height() + label, Rgb([255, 255, 255]));
    imageops::overlay(&mut picture, &DynamicImage::ImageLuma8(gray).to_rgb8(), 0, 0);
    let side = IMAGE_SIDE as u32 * zoom;
    for (n, digit) in reading.digits.iter().enumerate() {
        let colour = Rgb(COLOURS[n % COLOURS.len()]);
        let Some((_, frame)) = segmentation.window(digit.candidate) else { continue };
        let left = (frame * super::line::FRAME_STRIDE) as u32 * zoom;
        for t in 0..2 {
            let rect = Rect::at((left + t) as i32, t as i32).of_size(side - 2 * t, side - 2 * t);
            imageproc::drawing::draw_hollow_rect_mut(&mut picture, rect, colour);
        }
        draw_digit(&mut picture, digit.digit, (left + side / 2) as i32 - 7, side as i32 + 6, 3, colour);
    }
    Some(picture)
}

/// The digits of a reading that stand alone, as the check model saw them
/// (shown 4x, ink on paper), each with the digit the window model read
/// (`unchecked`, the same reading before [`Reading::check_digits`]) and,
/// under it, the digit read once checked: black where they agree, red where
/// the check changed it. `None` when no digit stands alone.
pub fn checked(unchecked: &Reading, checked: &Reading) -> Option<RgbImage> {
    let alone = checked.digits_to_check();
    if alone.is_empty() {
        return None;
    }
    let zoom = 4u32;
    let side = IMAGE_SIDE as u32 * zoom;
    let (gap, label) = (12u32, 2 * (9 * 3 + 8));
    let width = alone.len() as u32 * (side + gap) - gap;
    let mut picture = RgbImage::from_pixel(width, side + label, Rgb([255, 255, 255]));
    for (n, (index, pixels)) in alone.into_iter().enumerate() {
        let left = n as u32 * (side + gap);
        let Some(gray) = image::GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, pixels.to_vec()) else {
            continue;
        };
        let mut gray = imageops::resize(&gray, side, side, imageops::FilterType::Nearest);
        imageops::invert(&mut gray);
        imageops::overlay(&mut picture, &DynamicImage::ImageLuma8(gray).to_rgb8(), i64::from(left), 0);
        let before = unchecked.digits.get(index).map_or(checked.digits[index].digit, |d| d.digit);
        let after = checked.digits[index].digit;
        let x = (left + side / 2) as i32 - 7;
        draw_digit(&mut picture, before, x, side as i32 + 6, 3, Rgb([90, 90, 90]));
        let colour = if before == after { Rgb([0, 0, 0]) } else { Rgb([220, 40, 40]) };
        draw_digit(&mut picture, after, x, side as i32 + 6 + 35, 3, colour);
    }
    Some(picture)
}

/// The photo as the pictures show it, at most [`PICTURE_SIDE`] a side, and
/// its scale against the original.
fn picture_of(image: &DynamicImage) -> (RgbImage, f32) {
    let picture = if image.width().max(image.height()) > PICTURE_SIDE {
        image.thumbnail(PICTURE_SIDE, PICTURE_SIDE).to_rgb8()
    } else {
        image.to_rgb8()
    };
    let scale = picture.width() as f32 / image.width().max(1) as f32;
    (picture, scale)
}

/// A box of the original image in a picture at `scale`: left, top, width,
/// height (at least one pixel each way).
fn scaled(b: PixelBox, scale: f32) -> (i32, i32, u32, u32) {
    let (x, y) = ((b.x as f32 * scale) as i32, (b.y as f32 * scale) as i32);
    (x, y, ((b.width as f32 * scale) as u32).max(1), ((b.height as f32 * scale) as u32).max(1))
}

/// Draws `digit` from [`GLYPHS`], each bitmap pixel `scale` pixels square,
/// on a white backing so it reads on any photo.
fn draw_digit(picture: &mut RgbImage, digit: u8, x: i32, y: i32, scale: u32, colour: Rgb<u8>) {
    let Some(glyph) = GLYPHS.get(usize::from(digit)) else { return };
    let s = scale as i32;
    draw_filled_rect_mut(picture, Rect::at(x - s, y - s).of_size(7 * scale, 9 * scale), Rgb([255, 255, 255]));
    for (row, bits) in glyph.iter().enumerate() {
        for column in 0..5 {
            if bits & (0x10 >> column) != 0 {
                let rect = Rect::at(x + column * s, y + row as i32 * s).of_size(scale, scale);
                draw_filled_rect_mut(picture, rect, colour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_digits_are_drawn_with_both_readings() {
        let digit = |d: u8, alone: bool| super::super::ReadDigit {
            digit: d,
            confidence: 0.9,
            probabilities: vec![0.1; 10],
            bounds: PixelBox::default(),
            candidate: 0,
            alone: alone.then(|| vec![255; IMAGE_SIDE * IMAGE_SIDE]),
            checked: alone,
        };
        let reading = |digits: Vec<super::super::ReadDigit>| Reading {
            text: super::super::text_of(&digits),
            confidence: 0.9,
            digits,
            best_length: 2,
            cut_short: None,
        };
        let before = reading(vec![digit(1, true), digit(7, false)]);
        let after = reading(vec![digit(4, true), digit(7, false)]);
        let picture = checked(&before, &after).expect("one digit stands alone");
        // One 28x28 shown 4x, and two labels under it; the changed one in red.
        assert_eq!(picture.width(), 112);
        assert!(picture.pixels().any(|p| p.0 == [220, 40, 40]));
        let none = reading(vec![digit(7, false)]);
        assert!(checked(&none, &none).is_none());
    }

    #[test]
    fn glyphs_are_five_pixels_wide() {
        assert!(GLYPHS.iter().flatten().all(|row| row & !0x1F == 0));
    }
}
