//! Small SVG line charts: training curves in model cards and probability
//! timelines in reports.
//!
//! Written by hand rather than with a plotting crate: the charts are a few
//! polylines, axes and labels, and SVG text needs no font at drawing time
//! (the viewer lays it out), whereas the raster and font back ends of the
//! plotting crates pull in system-font lookups this tool does not need.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// A CSS colour, e.g. `#1f77b4` or `rgb(31,119,180)`.
    pub colour: String,
    /// `(x, y)` in data units, drawn in the given order; non-finite points
    /// break the line.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: shared axes, one polyline per series, a legend.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub width: u32,
    pub height: u32,
    /// Fixed y range (e.g. `[0, 1]` for probabilities); from the data when `None`.
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
}

const MARGIN_LEFT: f64 = 56.0;
const MARGIN_RIGHT: f64 = 12.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_BOTTOM: f64 = 58.0;

impl LineChart {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            width: 640,
            height: 280,
            y_range: None,
            series: Vec::new(),
        }
    }

    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    pub fn with_y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }

    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The chart as a standalone `<svg>` element (embeddable in HTML as is).
    pub fn to_svg(&self) -> String {
        let finite = |v: &f64| v.is_finite();
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(finite)
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(finite)
            .collect();
        let (x0, x1) = padded_range(&xs, false);
        let (y0, y1) = self.y_range.unwrap_or_else(|| padded_range(&ys, true));
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let plot_w = (w - MARGIN_LEFT - MARGIN_RIGHT).max(1.0);
        let plot_h = (h - MARGIN_TOP - MARGIN_BOTTOM).max(1.0);
        let px = |x: f64| MARGIN_LEFT + (x - x0) / (x1 - x0) * plot_w;
        let py = |y: f64| MARGIN_TOP + (1.0 - (y - y0) / (y1 - y0)) * plot_h;

        let mut s = String::new();
        write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
        )
        .unwrap();
        write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#).unwrap();
        write!(
            s,
            r#"<text x="{}" y="16" font-size="13" font-weight="bold">{}</text>"#,
            MARGIN_LEFT,
            escape(&self.title)
        )
        .unwrap();
        // Grid and ticks.
        for t in nice_ticks(y0, y1, 5) {
            let y = py(t);
            write!(s, r##"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/>"##, MARGIN_LEFT + plot_w).unwrap();
            write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                MARGIN_LEFT - 4.0,
                y + 4.0,
                tick_label(t)
            )
            .unwrap();
        }
        for t in nice_ticks(x0, x1, 8) {
            let x = px(t);
            write!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/>"##,
                MARGIN_TOP + plot_h,
                MARGIN_TOP + plot_h + 4.0
            )
            .unwrap();
            write!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                MARGIN_TOP + plot_h + 16.0,
                tick_label(t)
            )
            .unwrap();
        }
        write!(
            s,
            r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#999"/>"##
        )
        .unwrap();
        write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            MARGIN_LEFT + plot_w / 2.0,
            MARGIN_TOP + plot_h + 30.0,
            escape(&self.x_label)
        )
        .unwrap();
        write!(
            s,
            r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            MARGIN_TOP + plot_h / 2.0,
            escape(&self.y_label)
        )
        .unwrap();
        // Lines: one polyline per unbroken run of finite points.
        for series in &self.series {
            let mut run: Vec<String> = Vec::new();
            let flush = |run: &mut Vec<String>, s: &mut String| {
                if run.len() > 1 {
                    write!(
                        s,
                        r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                        escape(&series.colour),
                        run.join(" ")
                    )
                    .unwrap();
                } else if let Some(p) = run.first() {
                    let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                    write!(
                        s,
                        r#"<circle cx="{x}" cy="{y}" r="1.5" fill="{}"/>"#,
                        escape(&series.colour)
                    )
                    .unwrap();
                }
                run.clear();
            };
            for &(x, y) in &series.points {
                if x.is_finite() && y.is_finite() {
                    run.push(format!("{:.1},{:.1}", px(x), py(y.clamp(y0, y1))));
                } else {
                    flush(&mut run, &mut s);
                }
            }
            flush(&mut run, &mut s);
        }
        // Legend under the x label, left to right.
        let mut lx = MARGIN_LEFT;
        let ly = h - 10.0;
        for series in &self.series {
            write!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/>"#,
                ly - 9.0,
                escape(&series.colour)
            )
            .unwrap();
            write!(
                s,
                r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
                lx + 14.0,
                escape(&series.name)
            )
            .unwrap();
            lx += 24.0 + 6.5 * series.name.chars().count() as f64;
        }
        s += "</svg>";
        s
    }
}

/// The range of `values`, widened a little (and to a unit span when flat);
/// `(0, 1)` when there are none.
fn padded_range(values: &[f64], pad: bool) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let margin = if pad { 0.05 * (hi - lo) } else { 0.0 };
    (lo - margin, hi + margin)
}

/// About `count` round tick values (1, 2 or 5 × 10^k apart) inside `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if !(hi > lo) || count == 0 {
        return Vec::new();
    }
    let raw = (hi - lo) / count as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// Text made safe for SVG/HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        let t = nice_ticks(0.0, 1.0, 5);
        assert_eq!(t.len(), 6);
        assert!(
            t.iter()
                .zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
                .all(|(a, b)| (a - b).abs() < 1e-12)
        );
        let t = nice_ticks(3.0, 97.0, 8);
        assert_eq!(
            t,
            vec![20.0, 40.0, 60.0, 80.0],
            "steps of 20 for a span of 94"
        );
        assert!(nice_ticks(1.0, 1.0, 5).is_empty());
    }

    #[test]
    fn svg_has_one_line_per_series_and_escapes_text() {
        let chart = LineChart::new("loss <MAE>", "epoch", "loss")
            .with_series(Series {
                name: "train".into(),
                colour: "#1f77b4".into(),
                points: vec![(1.0, 0.9), (2.0, 0.8), (3.0, 0.75)],
            })
            .with_series(Series {
                name: "a & b".into(),
                colour: "red".into(),
                // A gap splits the line in two.
                points: vec![
                    (1.0, 0.5),
                    (2.0, 0.6),
                    (2.5, f64::NAN),
                    (3.0, 0.7),
                    (3.5, 0.72),
                ],
            });
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
        assert!(svg.contains("loss &lt;MAE&gt;") && svg.contains("a &amp; b"));
        assert!(!svg.contains("NaN"));
    }
}
