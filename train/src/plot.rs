//! PNG charts of a run: training curves and the confusion matrix.
//!
//! The font is compiled in (DejaVu Sans) so charts draw the same on a
//! machine without fontconfig or any installed font.

use std::{path::Path, sync::Once};

use plotters::prelude::*;

use crate::{Error, Result, eval::Evaluation, train::EpochRecord};

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

/// Draws train and test loss (left) and test accuracy (right) per epoch.
pub fn training_curves(history: &[EpochRecord], title: &str, path: &Path) -> Result<()> {
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

    let max_loss = history.iter().flat_map(|r| [r.train_loss, r.test_loss]).fold(0.0, f64::max) * 1.1;
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
        ("test", RED, history.iter().map(|r| (r.epoch as f64, r.test_loss)).collect()),
    ] {
        chart
            .draw_series(LineSeries::new(values.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(values.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| err(e.to_string()))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| err(e.to_string()))?;

    let accuracies: Vec<(f64, f64)> = history.iter().map(|r| (r.epoch as f64, r.test_accuracy * 100.0)).collect();
    let low = accuracies.iter().map(|a| a.1).fold(100.0, f64::min);
    let mut chart = ChartBuilder::on(&right)
        .margin(15)
        .caption("test accuracy (%)", ("sans-serif", 18))
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range, (low - 0.2).max(0.0)..100.0)
        .map_err(|e| err(e.to_string()))?;
    chart.configure_mesh().x_desc("epoch").draw().map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(accuracies.clone(), GREEN.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(accuracies.iter().map(|&p| Circle::new(p, 3, GREEN.filled())))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Draws the confusion matrix as a heat map with counts; the diagonal is
/// shaded separately so the few errors stand out.
pub fn confusion_matrix(eval: &Evaluation, path: &Path) -> Result<()> {
    register_font();
    let err = plot_error(path);
    let root = BitMapBackend::new(path, (720, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let title = format!("confusion matrix: {:.2}% of {} test images", eval.accuracy * 100.0, eval.images);
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .caption(title, ("sans-serif", 20))
        .x_label_area_size(45)
        .y_label_area_size(45)
        .build_cartesian_2d(0i32..10i32, 10i32..0i32)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted")
        .y_desc("true")
        .x_labels(10)
        .y_labels(10)
        .x_label_formatter(&|v| format!("{v}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let max_error = eval
        .confusion
        .iter()
        .enumerate()
        .flat_map(|(t, row)| row.iter().enumerate().filter(move |(p, _)| *p != t).map(|(_, c)| *c))
        .max()
        .unwrap_or(0)
        .max(1);
    for (t, row) in eval.confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let (t, p) = (t as i32, p as i32);
            let color = if t == p {
                RGBColor(200, 230, 201)
            } else {
                let heat = count as f64 / max_error as f64;
                RGBColor(255, (255.0 * (1.0 - 0.8 * heat)) as u8, (255.0 * (1.0 - 0.8 * heat)) as u8)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new([(p, t), (p + 1, t + 1)], color.filled())))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (p, t),
                    ("sans-serif", 15).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Top,
                    )),
                )))
                .map_err(|e| err(e.to_string()))?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))
}
