//! Command-line arguments, turned into validated configurations before any work
//! starts, so a wrong flag fails in milliseconds rather than after model loading.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use mimic::batch::Shard;
use mimic::device::DeviceChoice;
use mimic::model_choice::ModelRequest;

/// Per-frame facial-expression analysis of video with a MIMIC-trained ViT.
#[derive(Debug, Parser)]
// A flag given twice takes its last value, so that scripts (the Slurm array's) can set
// defaults the user's options override.
#[command(
    name = "mimic",
    version,
    about,
    propagate_version = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find every face in videos, streams, webcams or stills and write what each
    /// face expresses, frame by frame, to CSV or JSON Lines.
    Analyze(AnalyzeArgs),
    /// Make one self-contained HTML page from a results file: per track its best face,
    /// a timeline of its class probabilities and its time in each label.
    Report(ReportArgs),
    /// Concatenate the outputs of an --out-dir run (all its shards) into one file, in
    /// input order, checking that every frame of every input appears exactly once.
    Merge(MergeArgs),
    /// Measure throughput: end to end on a clip (per stage, frames/s, peak
    /// memory) and the expression model alone (faces/s per batch size).
    Bench(BenchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Csv,
    Jsonl,
    /// Apache Parquet: the same columns, typed (readable once the run has finished).
    Parquet,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Video files, folders (searched recursively for videos and images),
    /// still images or stream URLs (rtsp://, http://, ...).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,

    /// Read a webcam: an index (0) or a device path (/dev/video0).
    #[arg(long, value_name = "N|PATH")]
    pub webcam: Option<String>,

    /// Where to write the rows; `-` is standard output.
    #[arg(short, long, value_name = "FILE", default_value = "mimic.csv")]
    pub output: String,

    /// Output format (default: from the output's extension, else csv).
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,

    /// Batch mode for many inputs: one output per input in this folder (named after the
    /// input, written under a temporary name and renamed when complete) and a
    /// manifest.jsonl line per finished input; instead of -o.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub out_dir: Option<PathBuf>,

    /// With --out-dir: skip the inputs whose output is complete and matches the
    /// manifest (a killed or requeued run goes on where it stopped).
    #[arg(long, requires = "out_dir")]
    pub resume: bool,

    /// Read inputs from FILE, one path, folder or URL a line (`-`: standard input;
    /// blank lines and lines starting with # are skipped).
    #[arg(long, value_name = "FILE")]
    pub inputs_from: Option<String>,

    /// Analyse only shard K of N of the inputs: a stable hash of each input's path
    /// decides, so N workers given the same inputs cover each exactly once.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,

    /// Expression model: `fast` (the CPU default), `accurate` (the GPU default, where
    /// shipped) or a model package folder.
    #[arg(long, value_name = "fast|accurate|DIR")]
    pub model: Option<ModelRequest>,

    /// MTCNN weights folder (default: models/mtcnn).
    #[arg(long, value_name = "DIR")]
    pub detector: Option<PathBuf>,

    /// Where the networks run. `auto` takes a hardware GPU when one exists.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,

    /// Also write an HTML report of the run (see `mimic report`), with its speed.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Also write the video with boxes, labels and probabilities drawn.
    #[arg(long, value_name = "FILE")]
    pub annotate: Option<PathBuf>,

    /// Show a live window with the analysis drawn (q or Esc stops).
    #[arg(long)]
    pub preview: bool,

    /// The inputs are images that are already face crops (as in FER datasets):
    /// no detection or alignment, each image is one face.
    #[arg(long)]
    pub crops: bool,

    /// Live mode: when analysis falls behind, the newest frame wins and the
    /// dropped frames get a `skipped` row. On by default for webcams and URLs.
    #[arg(long)]
    pub live: bool,

    /// Smallest face to find: `PX` pixels whatever the frame's size, or `1/N` of the
    /// frame's shorter side (never under 20 px), to the nearest level of facenet's pyramid.
    /// Default 1/18: 20 px on 360 lines, 40 on 720, 60 on 1080, so P-Net costs about the
    /// same at any resolution; the faces found are found as `--min-face 20` finds them.
    #[arg(long, value_name = "PX|1/N", default_value = "1/18")]
    pub min_face: MinFace,

    /// MTCNN score thresholds of P-Net, R-Net and O-Net.
    #[arg(long, value_name = "P,R,O", value_delimiter = ',', num_args = 3, default_values_t = [0.6, 0.7, 0.7])]
    pub thresholds: Vec<f32>,

    /// Scale factor between image-pyramid levels.
    #[arg(long, default_value_t = 0.709)]
    pub pyramid_factor: f32,

    /// Faces per expression-model batch.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub batch: usize,

    /// Run the full face detector on every K-th frame of a video only; in between,
    /// follow the faces already found with MTCNN's last stage (O-Net) around their
    /// previous boxes. Faster; a face that enters waits for the next full detection.
    #[arg(long, value_name = "K", default_value = "1")]
    pub detect_every: std::num::NonZeroUsize,

    /// Batch mode: up to N frames already decoded go through the face detector together
    /// (detecting on every frame of files; live mode takes the newest frame alone).
    /// Default: 8 on the GPU, 1 on the CPU.
    #[arg(long, value_name = "N")]
    pub detect_batch: Option<std::num::NonZeroUsize>,

    /// No face tracking: no track_id and no smoothed columns.
    #[arg(long)]
    pub no_track: bool,

    /// Half-life of the per-face probability smoothing, in milliseconds of
    /// video time (0: no smoothing). The raw probabilities are always kept.
    #[arg(long, value_name = "MS", default_value_t = 250.0)]
    pub smooth_half_life_ms: f64,

    /// Seconds a network stream may deliver nothing before it counts as stalled: a
    /// stall after frames ends the stream (a notice, not a failure) unless --reconnect.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub stall_timeout: f64,

    /// Reconnect a network stream that stalls or drops, up to N attempts in a row
    /// (waiting 1 s, 2 s, 4 s … up to 30 s between them); frames are numbered on.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub reconnect: u32,

    /// Continue with the next input when one fails (the failure is still
    /// reported and the exit code is non-zero).
    #[arg(long)]
    pub keep_going: bool,

    /// No progress bar or summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--min-face`: absolute pixels, or a share of the frame's shorter side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MinFace {
    Pixels(f64),
    /// The shorter side divided by this.
    OfShortSide(f64),
}

impl std::str::FromStr for MinFace {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?}: give pixels (20) or a share of the shorter side (1/18)");
        match text.trim().split_once('/') {
            Some((one, n)) if one.trim() == "1" => {
                let n: f64 = n.trim().parse().map_err(|_| bad())?;
                (n >= 1.0 && n.is_finite())
                    .then_some(MinFace::OfShortSide(n))
                    .ok_or_else(bad)
            }
            Some(_) => Err(bad()),
            None => {
                let px: f64 = text.trim().parse().map_err(|_| bad())?;
                (px >= 1.0 && px.is_finite())
                    .then_some(MinFace::Pixels(px))
                    .ok_or_else(bad)
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The CSV or JSON Lines file `mimic analyze` wrote.
    #[arg(value_name = "RESULTS")]
    pub results: PathBuf,

    /// The page to write.
    #[arg(short, long, value_name = "FILE", default_value = "report.html")]
    pub output: PathBuf,

    /// The model the results came from, for its card's figures (default: the one
    /// `analyze` takes on the CPU).
    #[arg(long, value_name = "fast|accurate|DIR")]
    pub model: Option<ModelRequest>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The --out-dir folder of a run.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The merged file (.csv or .jsonl: the format of the outputs).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Video to analyse end to end.
    #[arg(value_name = "VIDEO")]
    pub video: Option<PathBuf>,

    /// Loop the video until this many frames were analysed (0: play it once).
    #[arg(long, default_value_t = 0)]
    pub frames: u64,

    /// Expression model: `fast`, `accurate` or a model package folder (default: the
    /// device's, as in `analyze`).
    #[arg(long, value_name = "fast|accurate|DIR")]
    pub model: Option<ModelRequest>,

    /// MTCNN weights folder (default: models/mtcnn).
    #[arg(long, value_name = "DIR")]
    pub detector: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,

    /// Batch sizes for the expression-model-only measurement.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32])]
    pub vit_batches: Vec<usize>,

    /// Run the end-to-end measurement once per value of `--detect-every` given here,
    /// and compare the faces and labels of each with the first one's.
    #[arg(long, value_name = "K,...", value_delimiter = ',', default_value = "1")]
    pub detect_every: Vec<std::num::NonZeroUsize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_face_takes_pixels_or_a_share_of_the_short_side() {
        assert_eq!("20".parse::<MinFace>(), Ok(MinFace::Pixels(20.0)));
        assert_eq!("1/24".parse::<MinFace>(), Ok(MinFace::OfShortSide(24.0)));
        for bad in ["0", "1/0", "2/18", "x", "1/"] {
            assert!(bad.parse::<MinFace>().is_err(), "{bad}");
        }
    }
}
