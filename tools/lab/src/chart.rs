//! The two pictures of LAB.md, as small SVGs: throughput and redelivery
//! against the commit interval (scenario 5), and a slow consumer's lag over
//! time (scenario 11).

use std::path::Path;

use plotters::prelude::*;

use crate::LabError;

/// One commit interval of scenario 5.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPoint {
    /// Records per offset commit.
    pub every: u64,
    /// Records processed per second.
    pub throughput: f64,
    /// Records processed again after the crash.
    pub reprocessed: u64,
}

/// Scenario 11's lag samples.
#[derive(Debug, Clone, PartialEq)]
pub struct LagSeries {
    /// (seconds since the producer started, records not yet committed by the
    /// group); `None` where the sample failed, drawn as a gap in the line.
    pub samples: Vec<(f64, Option<i64>)>,
    /// When the consumer dropped its processing delay.
    pub speed_up_at: f64,
    /// When the producer sent its last record.
    pub producer_done_at: f64,
}

/// A picture worth drawing.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Throughput and reprocessed records against the commit interval.
    BatchCommits(Vec<BatchPoint>),
    /// Lag over time.
    Lag(LagSeries),
}

impl Chart {
    /// The file name under the charts directory.
    pub fn file_name(&self) -> &'static str {
        match self {
            Chart::BatchCommits(_) => "batch-commits.svg",
            Chart::Lag(_) => "slow-consumer-lag.svg",
        }
    }

    /// Draws the chart into `path`.
    pub fn draw(&self, path: &Path) -> Result<(), LabError> {
        let result = match self {
            Chart::BatchCommits(points) => batch_commits(points, path),
            Chart::Lag(series) => lag(series, path),
        };
        result.map_err(|e| LabError::Write {
            what: path.display().to_string(),
            source: e.to_string().into(),
        })
    }
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(127, 127, 127);

fn batch_commits(points: &[BatchPoint], path: &Path) -> Drawn {
    let root = SVGBackend::new(path, (880, 340)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(440);
    let throughput: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.every as f64, p.throughput))
        .collect();
    let reprocessed: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.every as f64, p.reprocessed as f64))
        .collect();
    against_interval(
        &left,
        "Records processed per second",
        "records/s",
        &throughput,
        BLUE,
    )?;
    against_interval(
        &right,
        "Processed again after a crash",
        "records",
        &reprocessed,
        RED,
    )?;
    root.present()?;
    Ok(())
}

/// One panel of the batch-commits chart: `points` against K, K on a log scale.
fn against_interval(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    points: &[(f64, f64)],
    color: RGBColor,
) -> Drawn {
    let x_max = points.iter().map(|p| p.0).fold(2.0, f64::max) * 2.0;
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0.5..x_max).log_scale(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("records per offset commit (K)")
        .y_desc(unit)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    chart.draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    Ok(())
}

fn lag(series: &LagSeries, path: &Path) -> Drawn {
    let root = SVGBackend::new(path, (880, 340)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = series.samples.iter().map(|s| s.0).fold(1.0, f64::max);
    let y_max = series
        .samples
        .iter()
        .filter_map(|s| s.1)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "A slow consumer's lag: records written but not yet processed",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the producer started")
        .y_desc("lag (records)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    // One line per run of successful samples: a failed sample leaves a gap
    // rather than a value the run did not see.
    for (i, run) in series
        .samples
        .split(|(_, lag)| lag.is_none())
        .filter(|run| !run.is_empty())
        .enumerate()
    {
        let line = chart.draw_series(LineSeries::new(
            run.iter().filter_map(|&(t, lag)| Some((t, lag? as f64))),
            BLUE.stroke_width(2),
        ))?;
        if i == 0 {
            line.label("consumer group lag (gaps: failed samples)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        }
    }
    for (at, label, color) in [
        (series.speed_up_at, "consumer speeds up", RED),
        (series.producer_done_at, "producer done", GREY),
    ] {
        chart
            .draw_series(LineSeries::new(
                [(at, 0.0), (at, y_max)],
                color.stroke_width(1),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_lag_sample_is_a_gap_not_a_value() {
        let path = std::env::temp_dir().join(format!("lab-lag-{}.svg", std::process::id()));
        let chart = Chart::Lag(LagSeries {
            samples: vec![
                (0.0, Some(0)),
                (0.25, Some(40)),
                (0.5, None),
                (0.75, Some(80)),
                (1.0, Some(0)),
            ],
            speed_up_at: 0.5,
            producer_done_at: 0.75,
        });
        let drawn = chart.draw(&path).map(|()| std::fs::read_to_string(&path));
        let _ = std::fs::remove_file(&path);
        let svg = drawn
            .expect("drawing the chart")
            .expect("reading the chart");
        // Two lines of lag (before and after the gap) and the legend's, the only ones 2 px wide.
        let blue = svg
            .lines()
            .filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\""))
            .count();
        assert_eq!(blue, 3, "{svg}");
    }
}
