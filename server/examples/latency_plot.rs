//! Draws the latency-against-throughput curves that `scripts/bench-ghz.sh`
//! measures: p50 and p99 against answered images/s, one point per number
//! of concurrent callers, batching on and off, one panel per RPC.
//!
//! Run: `cargo run --release -p mnist-server --example latency_plot -- POINTS.tsv OUT.png`
//! where each line of POINTS.tsv is `rpc  batching  callers  images_per_s  p50_ms  p99_ms`
//! (tab-separated, no header).

use std::{collections::BTreeMap, error::Error, path::Path};

use plotters::prelude::*;

/// Compiled in, so the chart draws the same on a machine without fonts.
static FONT: &[u8] = include_bytes!("../../train/assets/DejaVuSans.ttf");

/// One measured load.
struct Point {
    callers: u32,
    images_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [points, out] = args.as_slice() else {
        return Err("usage: latency_plot POINTS.tsv OUT.png".into());
    };
    // rpc -> batching -> points, in the order measured.
    let mut series: BTreeMap<String, BTreeMap<String, Vec<Point>>> = BTreeMap::new();
    for (number, line) in std::fs::read_to_string(points)?.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [rpc, batching, callers, rate, p50, p99] = fields.as_slice() else {
            return Err(format!("{points}:{}: expected 6 tab-separated fields", number + 1).into());
        };
        let point = Point {
            callers: callers.parse()?,
            images_per_s: rate.parse()?,
            p50_ms: p50.parse()?,
            p99_ms: p99.parse()?,
        };
        series.entry(rpc.to_string()).or_default().entry(batching.to_string()).or_default().push(point);
    }
    draw(&series, Path::new(out))
}

fn draw(series: &BTreeMap<String, BTreeMap<String, Vec<Point>>>, out: &Path) -> Result<(), Box<dyn Error>> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| "cannot load the font")?;
    let width = 640 * series.len().max(1) as u32;
    let root = BitMapBackend::new(out, (width, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled("latency against throughput (one point per number of callers)", ("sans-serif", 22))?;
    let panels = root.split_evenly((1, series.len().max(1)));
    for (panel, (rpc, by_batching)) in panels.iter().zip(series) {
        let all = by_batching.values().flatten();
        let max_rate = all.clone().map(|p| p.images_per_s).fold(1.0, f64::max) * 1.1;
        let low = all.clone().map(|p| p.p50_ms).fold(f64::INFINITY, f64::min).max(1e-3) / 1.5;
        let high = all.map(|p| p.p99_ms).fold(0.0, f64::max).max(low * 10.0) * 1.5;
        let mut chart = ChartBuilder::on(panel)
            .margin(15)
            .caption(rpc, ("sans-serif", 18))
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_rate, (low..high).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("answered images/s")
            .y_desc("latency (ms, log scale)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| if *y >= 1.0 { format!("{y:.0}") } else { format!("{y:.1}") })
            .draw()?;
        for (index, (batching, points)) in by_batching.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            for (quantile, width, value) in
                [("p50", 2, (|p: &Point| p.p50_ms) as fn(&Point) -> f64), ("p99", 1, |p: &Point| p.p99_ms)]
            {
                let line: Vec<(f64, f64)> = points.iter().map(|p| (p.images_per_s, value(p))).collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), color.stroke_width(width)))?
                    .label(format!("{quantile}, batching {batching}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width)));
                if quantile == "p50" {
                    chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
                } else {
                    chart.draw_series(line.iter().map(|&p| TriangleMarker::new(p, 5, color.filled())))?;
                }
            }
            chart.draw_series(points.iter().map(|p| {
                Text::new(format!("{}", p.callers), (p.images_per_s, p.p50_ms), ("sans-serif", 13).into_font())
            }))?;
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}
