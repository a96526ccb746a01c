//! The report's plot: latency percentiles versus offered rate, as SVG.
//!
//! One line per (latency, percentile): `POST /orders` p50/p99/p99.9 and order
//! to invoice / shipment p50/p99, on a logarithmic millisecond axis, so the
//! knee where queues start to build is visible at a glance.

use std::path::Path;

use plotters::prelude::*;

use super::BenchError;
use super::latency::Percentiles;
use super::step::StepResult;

/// One line of the plot.
struct Line {
    name: &'static str,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

/// Draws the plot of `steps` into `path`.
pub(crate) fn latency_vs_rate(steps: &[StepResult], path: &Path) -> Result<(), BenchError> {
    type Pick = fn(&StepResult) -> Option<Percentiles>;
    let series: [(&'static str, Pick, f64, RGBColor); 7] = [
        ("POST /orders p50", |s| s.http, 0.5, RGBColor(31, 119, 180)),
        ("POST /orders p99", |s| s.http, 0.99, RGBColor(31, 119, 180)),
        (
            "POST /orders p99.9",
            |s| s.http,
            0.999,
            RGBColor(31, 119, 180),
        ),
        (
            "order → invoice p50",
            |s| s.invoice,
            0.5,
            RGBColor(214, 39, 40),
        ),
        (
            "order → invoice p99",
            |s| s.invoice,
            0.99,
            RGBColor(214, 39, 40),
        ),
        (
            "order → shipment p50",
            |s| s.shipment,
            0.5,
            RGBColor(44, 160, 44),
        ),
        (
            "order → shipment p99",
            |s| s.shipment,
            0.99,
            RGBColor(44, 160, 44),
        ),
    ];
    let at = |p: Percentiles, q: f64| {
        if q >= 0.999 {
            p.p999
        } else if q >= 0.99 {
            p.p99
        } else {
            p.p50
        }
    };
    let lines: Vec<Line> = series
        .iter()
        .map(|(name, pick, q, color)| {
            let width = if *q >= 0.999 {
                1
            } else if *q >= 0.99 {
                2
            } else {
                3
            };
            let points = steps
                .iter()
                .filter_map(|s| pick(s).map(|p| (s.rate, at(p, *q).max(0.01))))
                .collect();
            Line {
                name,
                color: *color,
                width,
                points,
            }
        })
        .collect();
    let values = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let y_min = values().fold(f64::INFINITY, f64::min);
    let y_max = values().fold(0.0, f64::max);
    let (y_min, y_max) = if y_min.is_finite() && y_max > 0.0 {
        (y_min / 2.0, y_max * 2.0)
    } else {
        (0.1, 1000.0)
    };
    let x_max = steps.iter().map(|s| s.rate).fold(1.0, f64::max) * 1.1;

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    let plot_error = |e: &dyn std::fmt::Display| BenchError::Plot(e.to_string());
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency percentiles versus offered rate",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
        .map_err(|e| plot_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("offered rate (orders/s)")
        .y_desc("latency (ms, log scale)")
        .draw()
        .map_err(|e| plot_error(&e))?;
    for Line {
        name,
        color,
        width,
        points,
    } in lines
    {
        let style = ShapeStyle::from(&color).stroke_width(width);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(|e| plot_error(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, width + 2, color.filled())),
            )
            .map_err(|e| plot_error(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))?;
    Ok(())
}
