//! Output file names for `--out-dir`: each input's file stem, made unique over the
//! whole input list (before sharding, so that every worker names an input the same).

use std::collections::HashMap;

use crate::decode::InputSpec;

/// One file name per input (without folder), ending in `.{extension}`, in input order.
///
/// The name is the input's file stem (a URL's last path segment, `webcam-N` for a
/// camera) with characters outside `[A-Za-z0-9._-]` replaced by `_`. When two inputs
/// share a stem, each of them gets `-N` appended, N counting from 1 in input order, so
/// names are stable as long as the list is.
pub fn output_names(inputs: &[InputSpec], extension: &str) -> Vec<String> {
    let stems: Vec<String> = inputs.iter().map(stem).collect();
    let mut total: HashMap<&str, usize> = HashMap::new();
    for s in &stems {
        *total.entry(s.as_str()).or_default() += 1;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    stems
        .iter()
        .map(|s| {
            if total[s.as_str()] == 1 {
                format!("{s}.{extension}")
            } else {
                let n = seen.entry(s.as_str()).or_default();
                *n += 1;
                format!("{s}-{n}.{extension}")
            }
        })
        .collect()
}

fn stem(input: &InputSpec) -> String {
    let raw = match input {
        InputSpec::Video(p) | InputSpec::Still(p) => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        InputSpec::Url(u) => {
            let path = u.split(['?', '#']).next().unwrap_or(u);
            let last = path
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(path);
            last.rsplit_once('.').map_or(last, |(s, _)| s).to_string()
        }
        InputSpec::Webcam(_) => input.source_id().as_str().replace([':', '/'], "-"),
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() {
        "input".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn video(p: &str) -> InputSpec {
        InputSpec::Video(PathBuf::from(p))
    }

    #[test]
    fn stems_become_names_and_shared_stems_are_numbered_in_order() {
        let inputs = [
            video("a/interview.mp4"),
            video("b/interview.mkv"),
            video("b/other one.mp4"),
            InputSpec::Url("rtsp://cam.local/stream/main.sdp?x=1".into()),
            InputSpec::webcam("0"),
            video("c/.hidden.mp4"),
        ];
        assert_eq!(
            output_names(&inputs, "csv"),
            vec![
                "interview-1.csv",
                "interview-2.csv",
                "other_one.csv",
                "main.csv",
                "webcam-0.csv",
                "hidden.csv",
            ]
        );
    }
}
