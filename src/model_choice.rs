//! Which expression model a run takes: `--model fast|accurate|DIR`, or, without
//! the flag, the one that suits the device.
//!
//! Two models ship under `models/`: [`FAST_MODEL`], sized for real time on a
//! CPU, and [`ACCURATE_MODEL`], a larger ViT for a GPU. Without `--model`, a
//! run on the GPU takes the accurate model when it is there and the fast one
//! otherwise; a run on the CPU takes the fast one. The choice comes with the
//! reason, which the analyzer prints.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::model::CONFIG_FILE;

/// Folder name of the CPU default under `models/`.
pub const FAST_MODEL: &str = "mimic-fast";
/// Folder name of the GPU default under `models/`.
pub const ACCURATE_MODEL: &str = "mimic-accurate";

/// What `--model` asked for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ModelRequest {
    /// No `--model`: the device decides.
    #[default]
    ForDevice,
    Fast,
    Accurate,
    /// A model package folder.
    Folder(PathBuf),
}

impl FromStr for ModelRequest {
    type Err = std::convert::Infallible;

    /// `fast` and `accurate` name the shipped models; anything else is a folder.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "fast" => ModelRequest::Fast,
            "accurate" => ModelRequest::Accurate,
            folder => ModelRequest::Folder(PathBuf::from(folder)),
        })
    }
}

/// The model a run takes, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChosenModel {
    pub dir: PathBuf,
    /// Why this one, for the run's first line (e.g. "the CPU default").
    pub reason: String,
}

impl fmt::Display for ChosenModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.dir.display(), self.reason)
    }
}

/// Why no model could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelChoiceError {
    #[error(
        "--model {name}: no model package in {dir} (a package has {CONFIG_FILE}); \
         pass --model with a package folder, or set MIMIC_MODELS to the folder holding {FAST_MODEL}/"
    )]
    NotShipped { name: &'static str, dir: PathBuf },
}

/// Turns `request` into a package folder under `models_dir` (or the folder
/// given), for a run whose networks are on a GPU when `on_gpu`.
pub fn choose_model(
    request: &ModelRequest,
    models_dir: &Path,
    on_gpu: bool,
) -> Result<ChosenModel, ModelChoiceError> {
    let shipped = |name: &str| {
        let dir = models_dir.join(name);
        dir.join(CONFIG_FILE).is_file().then_some(dir)
    };
    let require = |name: &'static str, label: &'static str| {
        shipped(name)
            .map(|dir| ChosenModel {
                dir,
                reason: format!("--model {label}"),
            })
            .ok_or(ModelChoiceError::NotShipped {
                name: label,
                dir: models_dir.join(name),
            })
    };
    match request {
        ModelRequest::Folder(dir) => Ok(ChosenModel {
            dir: dir.clone(),
            reason: "--model".into(),
        }),
        ModelRequest::Fast => require(FAST_MODEL, "fast"),
        ModelRequest::Accurate => require(ACCURATE_MODEL, "accurate"),
        ModelRequest::ForDevice if on_gpu => match shipped(ACCURATE_MODEL) {
            Some(dir) => Ok(ChosenModel {
                dir,
                reason: "the accurate model, the GPU default".into(),
            }),
            None => require(FAST_MODEL, "fast").map(|chosen| ChosenModel {
                reason: format!(
                    "the fast model: the GPU default, {ACCURATE_MODEL}, is not in {}",
                    models_dir.display()
                ),
                ..chosen
            }),
        },
        ModelRequest::ForDevice => require(FAST_MODEL, "fast").map(|chosen| ChosenModel {
            reason: "the fast model, the CPU default".into(),
            ..chosen
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(with: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in with {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(CONFIG_FILE), "{}").unwrap();
        }
        dir
    }

    #[test]
    fn the_device_picks_accurate_on_a_gpu_and_fast_on_the_cpu() {
        let both = models(&[FAST_MODEL, ACCURATE_MODEL]);
        let gpu = choose_model(&ModelRequest::ForDevice, both.path(), true).unwrap();
        assert_eq!(gpu.dir, both.path().join(ACCURATE_MODEL));
        assert!(gpu.reason.contains("GPU default"), "{gpu}");
        let cpu = choose_model(&ModelRequest::ForDevice, both.path(), false).unwrap();
        assert_eq!(cpu.dir, both.path().join(FAST_MODEL));
        assert!(cpu.reason.contains("CPU default"), "{cpu}");
    }

    #[test]
    fn a_gpu_without_the_accurate_model_says_it_took_the_fast_one() {
        let fast = models(&[FAST_MODEL]);
        let gpu = choose_model(&ModelRequest::ForDevice, fast.path(), true).unwrap();
        assert_eq!(gpu.dir, fast.path().join(FAST_MODEL));
        assert!(gpu.reason.contains("is not in"), "{gpu}");
        let err = choose_model(&ModelRequest::Accurate, fast.path(), true).unwrap_err();
        assert!(err.to_string().contains("--model accurate"), "{err}");
    }

    #[test]
    fn names_and_folders_parse() {
        assert_eq!("fast".parse::<ModelRequest>().unwrap(), ModelRequest::Fast);
        assert_eq!(
            "accurate".parse::<ModelRequest>().unwrap(),
            ModelRequest::Accurate
        );
        assert_eq!(
            "models/x".parse::<ModelRequest>().unwrap(),
            ModelRequest::Folder("models/x".into())
        );
        let none = models(&[]);
        let chosen = choose_model(&"/elsewhere".parse().unwrap(), none.path(), false).unwrap();
        assert_eq!(chosen.dir, PathBuf::from("/elsewhere"));
    }
}
