//! The report page: one HTML file, its style, charts (SVG) and pictures (JPEG data
//! URLs) inline, no script and nothing fetched, so that it opens anywhere and can be
//! mailed or archived as it is.

use std::fmt::Write as _;

use super::RunInfo;
use super::results::Results;
use super::summary::{ReportSummary, TrackSummary};
use super::thumbnails::Thumbnail;
use crate::chart::{LineChart, Series, escape};
use crate::colours::class_colour_css;

/// At most this many points per line of a timeline (longer tracks are thinned evenly).
const TIMELINE_POINTS: usize = 800;

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;background:#fafafa}\
h1{margin:0 0 4px}h2{margin:0 0 8px;font-size:1.2em}h3{margin:16px 0 6px;font-size:1em}\
section{background:white;border:1px solid #ddd;border-radius:6px;padding:16px;margin:16px 0}\
table{border-collapse:collapse}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}\
.track-head{display:flex;gap:16px;align-items:center}\
.track-head img{border:1px solid #ccc;border-radius:4px}\
.bars{display:grid;grid-template-columns:110px 1fr 60px;gap:3px 8px;align-items:center;max-width:640px}\
.bar{height:12px;border-radius:2px}.muted{color:#777}";

/// The page for `results`.
pub fn render_html(
    results: &Results,
    summary: &ReportSummary,
    thumbnails: &[Option<Thumbnail>],
    info: &RunInfo,
) -> String {
    let mut s = String::new();
    let title = results.path.file_name().map_or_else(
        || results.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mimic report: {}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    )
    .unwrap();
    write!(
        s,
        "<header><h1>mimic report</h1><div class=\"muted\">{}</div></header>",
        escape(&results.path.display().to_string())
    )
    .unwrap();
    overview(&mut s, summary, info);
    for (i, track) in summary.tracks.iter().enumerate() {
        track_section(
            &mut s,
            i,
            track,
            summary,
            thumbnails.get(i).and_then(Option::as_ref),
        );
    }
    write!(
        s,
        "<footer class=\"muted\">Made by mimic {} from the rows of {}. Labels are the model's reading of each face's appearance, not a measurement of felt emotion.</footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(&title)
    )
    .unwrap();
    s
}

fn overview(s: &mut String, summary: &ReportSummary, info: &RunInfo) {
    s.push_str("<section class=\"overview\"><h2>Overview</h2><table>");
    let mut row = |k: &str, v: String| {
        write!(s, "<tr><th>{k}</th><td>{v}</td></tr>").unwrap();
    };
    row(
        "inputs",
        summary
            .sources
            .iter()
            .map(|x| escape(x))
            .collect::<Vec<_>>()
            .join("<br>"),
    );
    row(
        "frames",
        format!(
            "{} ({} skipped in live mode)",
            summary.frames, summary.skipped_frames
        ),
    );
    row(
        "faces",
        format!("{} in {} track(s)", summary.faces, summary.tracks.len()),
    );
    match &info.model {
        Some((name, figures)) => {
            let figures: Vec<String> = figures
                .iter()
                .map(|(k, v)| format!("{} {:.1} %", escape(&k.replace('_', " ")), v * 100.0))
                .collect();
            row(
                "model",
                format!(
                    "{}{}",
                    escape(name),
                    if figures.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " <span class=\"muted\">(its card: {})</span>",
                            figures.join(", ")
                        )
                    }
                ),
            );
        }
        None => row("model", "<span class=\"muted\">not recorded</span>".into()),
    }
    match (info.frames_per_second, info.seconds) {
        (Some(fps), Some(secs)) => row(
            "speed",
            format!(
                "{fps:.1} frames/s, {secs:.1} s{}",
                info.device.as_deref().map(|d| format!(" on {}", escape(d))).unwrap_or_default()
            ),
        ),
        _ => row(
            "speed",
            "<span class=\"muted\">not recorded (a report made by <code>mimic analyze --report</code> has it)</span>".into(),
        ),
    }
    s.push_str("</table><h3>Labels over all faces</h3>");
    let total = summary.label_counts.iter().sum::<u64>().max(1) as f64;
    let shares: Vec<f64> = summary
        .label_counts
        .iter()
        .map(|&c| c as f64 / total)
        .collect();
    bars(s, &summary.classes, &shares);
    s.push_str("</section>");
}

fn track_section(
    s: &mut String,
    index: usize,
    track: &TrackSummary,
    summary: &ReportSummary,
    thumbnail: Option<&Thumbnail>,
) {
    write!(
        s,
        "<section class=\"track\" id=\"track-{index}\"><h2>{} — {}</h2><div class=\"track-head\">",
        escape(&track.source),
        escape(&track.title())
    )
    .unwrap();
    match thumbnail {
        Some(t) => write!(s, "<img alt=\"best face\" src=\"{}\">", t.data_url).unwrap(),
        None => {
            s.push_str("<div class=\"muted\">(no picture: the input cannot be read again)</div>")
        }
    }
    write!(
        s,
        "<div>{} frame{}, {:.1} s to {:.1} s<br>best face: frame {} (detection score {:.3})</div></div>",
        track.rows,
        if track.rows == 1 { "" } else { "s" },
        track.first_ms / 1000.0,
        track.last_ms / 1000.0,
        track.best.frame,
        track.best.det_score
    )
    .unwrap();
    s.push_str(&timeline(track, &summary.classes));
    s.push_str("<h3>Time in each label</h3>");
    bars(s, &summary.classes, &track.label_share);
    s.push_str("</section>");
}

/// The class probabilities of a track over time, one line per class.
fn timeline(track: &TrackSummary, classes: &[String]) -> String {
    let stride = track.timeline.len().div_ceil(TIMELINE_POINTS).max(1);
    let points: Vec<&(f64, Vec<f32>)> = track
        .timeline
        .iter()
        .enumerate()
        .filter(|(i, _)| i % stride == 0 || *i + 1 == track.timeline.len())
        .map(|(_, p)| p)
        .collect();
    let mut chart = LineChart::new("class probabilities over time", "time (s)", "probability")
        .with_size(940, 260)
        .with_y_range(0.0, 1.0);
    for (c, name) in classes.iter().enumerate() {
        chart = chart.with_series(Series {
            name: name.clone(),
            colour: class_colour_css(c),
            points: points
                .iter()
                .map(|(t, probs)| {
                    (
                        t / 1000.0,
                        probs.get(c).copied().map_or(f64::NAN, f64::from),
                    )
                })
                .collect(),
        });
    }
    chart.to_svg()
}

/// A horizontal bar per class: its share, in its colour.
fn bars(s: &mut String, classes: &[String], shares: &[f64]) {
    s.push_str("<div class=\"bars\">");
    for (c, (name, share)) in classes.iter().zip(shares).enumerate() {
        write!(
            s,
            "<div>{}</div><div><div class=\"bar\" style=\"width:{:.1}%;background:{}\"></div></div><div>{:.1} %</div>",
            escape(name),
            share * 100.0,
            class_colour_css(c),
            share * 100.0
        )
        .unwrap();
    }
    s.push_str("</div>");
}
