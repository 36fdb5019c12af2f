//! `mimic report`: one self-contained HTML page of what a run found — per track, its
//! best face, a timeline of its (smoothed) class probabilities and the share of time in
//! each label; overall, the label distribution, frames, faces, the model and its
//! card's accuracy, the run's speed.
//!
//! | file | what |
//! |---|---|
//! | `results.rs` | the CSV or JSON Lines of `mimic analyze`, read back typed |
//! | `summary.rs` | tracks and counts computed from the rows |
//! | `thumbnails.rs` | each track's best face, cut from its video |
//! | `html.rs` | the page: inline CSS, inline SVG charts, inline JPEGs; no scripts |

mod html;
mod results;
mod summary;
mod thumbnails;

use std::path::Path;

pub use html::render_html;
pub use results::{FaceColumns, ResultRow, Results, ResultsError, read_results};
pub use summary::{ReportSummary, TrackSummary, summarise};
pub use thumbnails::{Thumbnail, cut_thumbnails};

/// What the results file does not say about its run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
    /// The model's name and the accuracies its package records (e.g.
    /// `ferplus_test_accuracy`), as `(name, value)`.
    pub model: Option<(String, Vec<(String, f64)>)>,
    /// Device, frames/s and wall time of the run, when the report is made by it.
    pub device: Option<String>,
    pub frames_per_second: Option<f64>,
    pub seconds: Option<f64>,
}

impl RunInfo {
    /// The model part from a package's config: its name and the measured figures
    /// `mimic-train export` stored in its provenance.
    pub fn from_model(config: &crate::model::ModelConfig) -> Self {
        let mut figures: Vec<(String, f64)> = config
            .provenance
            .iter()
            .filter(|(k, _)| k.ends_with("_accuracy") && !k.starts_with("valid"))
            .filter_map(|(k, v)| Some((k.clone(), v.parse::<f64>().ok()?)))
            .collect();
        figures.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            model: Some((config.name.clone(), figures)),
            ..Self::default()
        }
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("cannot write the report {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Reads `results`, cuts the thumbnails from the videos it names and writes the page
/// to `out`. Returns the summary it drew.
pub fn write_report(
    results: &Path,
    out: &Path,
    info: &RunInfo,
) -> Result<ReportSummary, ReportError> {
    let results = read_results(results)?;
    let summary = summarise(&results);
    let thumbnails = cut_thumbnails(&summary);
    let page = render_html(&results, &summary, &thumbnails, info);
    std::fs::write(out, page).map_err(|source| ReportError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(summary)
}
