//! PNG charts of a run: training curves, the confusion matrix and the
//! reliability diagram.
//!
//! The font is compiled in (DejaVu Sans) so charts draw the same on a
//! machine without fontconfig or any installed font.

use std::{path::Path, sync::Once};

use plotters::prelude::*;

use crate::{
    Error, Result,
    calibrate::{Bin, expected_calibration_error},
    eval::Evaluation,
    record::EpochRecord,
};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to be valid; a failure here would
        // only mean text is missing from the charts.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_error(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::Plot { path: path.to_path_buf(), reason }
}

/// Draws train and evaluation loss (left) and evaluation accuracy (right) per
/// epoch; `split` names the evaluation split (validation or test).
pub fn training_curves(history: &[EpochRecord], split: &str, title: &str, path: &Path) -> Result<()> {
    register_font();
    let err = plot_error(path);
    if history.is_empty() {
        return Err(err("no epochs to plot".into()));
    }
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(e.to_string()))?;
    let (left, right) = root.split_horizontally(600);
    let epochs = history.len() as f64;
    let x_range = 0.5..epochs + 0.5;

    let max_loss = history.iter().flat_map(|r| [r.train_loss, r.eval_loss]).fold(0.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .margin(15)
        .caption("loss", ("sans-serif", 18))
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range.clone(), 0.0..max_loss.max(1e-3))
        .map_err(|e| err(e.to_string()))?;
    chart.configure_mesh().x_desc("epoch").draw().map_err(|e| err(e.to_string()))?;
    for (name, color, values) in [
        ("train", BLUE, history.iter().map(|r| (r.epoch as f64, r.train_loss)).collect::<Vec<_>>()),
        (split, RED, history.iter().map(|r| (r.epoch as f64, r.eval_loss)).collect()),
    ] {
        chart
            .draw_series(LineSeries::new(values.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(values.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| err(e.to_string()))?;

    let accuracies: Vec<(f64, f64)> = history.iter().map(|r| (r.epoch as f64, r.eval_accuracy * 100.0)).collect();
    let low = accuracies.iter().map(|a| a.1).fold(100.0, f64::min);
    let mut chart = ChartBuilder::on(&right)
        .margin(15)
        .caption(format!("{split} accuracy (%)"), ("sans-serif", 18))
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range, (low - 0.2).max(0.0)..100.0)
        .map_err(|e| err(e.to_string()))?;
    chart.configure_mesh().x_desc("epoch").draw().map_err(|e| err(e.to_string()))?;
    chart.draw_series(LineSeries::new(accuracies.clone(), GREEN.stroke_width(2))).map_err(|e| err(e.to_string()))?;
    chart.draw_series(accuracies.iter().map(|&p| Circle::new(p, 3, GREEN.filled()))).map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Draws the confusion matrix as a heat map with counts; the diagonal is
/// shaded separately so the few errors stand out.
pub fn confusion_matrix(eval: &Evaluation, path: &Path) -> Result<()> {
    register_font();
    let err = plot_error(path);
    let root = BitMapBackend::new(path, (720, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let title = format!("confusion matrix: {:.2}% of {} test images", eval.accuracy() * 100.0, eval.images());
    // Cell (true t, predicted p) spans x in [p, p+1] and y in [9-t, 10-t], so
    // digit 0 is the top row; labels sit at the cell centres (x.5).
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .caption(title, ("sans-serif", 20))
        .x_label_area_size(45)
        .y_label_area_size(45)
        .build_cartesian_2d(0f64..10f64, 0f64..10f64)
        .map_err(|e| err(e.to_string()))?;
    let centre_label = |flip: bool| {
        move |v: &f64| {
            let digit = v - 0.5;
            if (digit - digit.round()).abs() < 1e-6 && (0.0..10.0).contains(&digit) {
                format!("{}", if flip { 9 - digit.round() as i32 } else { digit.round() as i32 })
            } else {
                String::new()
            }
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted")
        .y_desc("true")
        .x_labels(21)
        .y_labels(21)
        .x_label_formatter(&centre_label(false))
        .y_label_formatter(&centre_label(true))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let confusion = eval.confusion();
    let max_error = confusion
        .iter()
        .enumerate()
        .flat_map(|(t, row)| row.iter().enumerate().filter(move |(p, _)| *p != t).map(|(_, c)| *c))
        .max()
        .unwrap_or(0)
        .max(1);
    let centred = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    );
    for (t, row) in confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let (x, y) = (p as f64, 9.0 - t as f64);
            let color = if t == p {
                RGBColor(200, 230, 201)
            } else if count == 0 {
                WHITE
            } else {
                let heat = count as f64 / max_error as f64;
                let fade = (255.0 * (0.85 - 0.6 * heat)) as u8;
                RGBColor(255, fade, fade)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new([(x, y), (x + 1.0, y + 1.0)], color.filled())))
                .map_err(|e| err(e.to_string()))?;
            let style = ("sans-serif", 16).into_font().color(&BLACK).pos(centred);
            chart
                .draw_series(std::iter::once(Text::new(count.to_string(), (x + 0.5, y + 0.5), style)))
                .map_err(|e| err(e.to_string()))?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))
}

/// Draws a reliability diagram: for each confidence bin, the accuracy of
/// the images in it against their mean confidence, before (left) and after
/// (right) temperature scaling. A calibrated model's points sit on the
/// diagonal; the bar under each point is the share of images in its bin.
pub fn reliability_diagram(before: &[Bin], after: &[Bin], temperature: f64, title: &str, path: &Path) -> Result<()> {
    register_font();
    let err = plot_error(path);
    let root = BitMapBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(e.to_string()))?;
    let (left, right) = root.split_horizontally(600);
    for (area, bins, caption) in [
        (&left, before, "as trained (T = 1)".to_string()),
        (&right, after, format!("temperature-scaled (T = {temperature:.3})")),
    ] {
        let images: usize = bins.iter().map(|b| b.images).sum::<usize>().max(1);
        let ece = expected_calibration_error(bins);
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .caption(format!("{caption}, ECE {:.2}%", ece * 100.0), ("sans-serif", 18))
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|e| err(e.to_string()))?;
        chart.configure_mesh().x_desc("confidence").y_desc("accuracy").draw().map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(bins.iter().filter(|b| b.images > 0).map(|b| {
                let share = b.images as f64 / images as f64;
                Rectangle::new([(b.low, 0.0), (b.high, share.max(0.004))], BLUE.mix(0.25).filled())
            }))
            .map_err(|e| err(e.to_string()))?
            .label("share of images")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.25).filled()));
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.5).stroke_width(1)))
            .map_err(|e| err(e.to_string()))?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5).stroke_width(1)));
        let points: Vec<(f64, f64)> =
            bins.iter().filter(|b| b.images > 0).map(|b| (b.confidence, b.accuracy)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), RED.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label("accuracy per bin")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, RED.filled()))).map_err(|e| err(e.to_string()))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}
