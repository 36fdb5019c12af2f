//! Command-line input arguments → [`InputSpec`]s, folders expanded recursively.

use std::fs;
use std::path::{Path, PathBuf};

use super::{DecodeError, InputSpec, WebcamSpec};

/// File extensions (lower case) taken as videos when expanding a folder. An explicitly
/// named file that is not a still is opened as a video whatever its extension.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "wmv", "flv", "mpg", "mpeg", "m2v", "ts", "mts",
    "m2ts", "3gp", "3g2", "ogv", "mxf", "y4m", "gif",
];

/// File extensions (lower case) read as still images, in a folder or named alone.
pub const STILL_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp"];

/// URL schemes whose streams are live (no end, real time).
const LIVE_SCHEMES: &[&str] = &[
    "rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "tcp", "srt", "mms", "mmsh",
];

/// Turns input arguments into specs, in argument order:
/// - `scheme://...` is a URL (handed to FFmpeg);
/// - `/dev/videoN` is a webcam;
/// - a folder expands recursively to the videos and stills under it (by extension,
///   see [`VIDEO_EXTENSIONS`] and [`STILL_EXTENSIONS`], case-insensitive), sorted by
///   path (byte order, so `b.mp4` < `sub/a.mp4` is decided per component),
///   skipping hidden files and folders (name starting with `.`) and files of other
///   types; symbolic links to files are followed, links to folders are not (no cycles);
/// - a file is a still when its extension says so, else a video;
/// - a path that does not exist is an error naming it.
///
/// A folder holding nothing usable is not an error here; the caller decides.
pub fn expand_inputs(paths: &[String]) -> Result<Vec<InputSpec>, DecodeError> {
    let mut specs = Vec::new();
    for arg in paths {
        if looks_like_url(arg) {
            specs.push(InputSpec::Url(arg.clone()));
            continue;
        }
        let path = Path::new(arg);
        if is_video_device(path) {
            specs.push(InputSpec::Webcam(WebcamSpec::Device(path.to_path_buf())));
            continue;
        }
        let meta = fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DecodeError::NotFound { input: arg.clone() },
            _ => DecodeError::Io {
                input: arg.clone(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk_folder(path, &mut found)?;
            found.sort();
            specs.extend(found.into_iter().map(|(p, kind)| kind.spec(p)));
        } else if has_extension(path, STILL_EXTENSIONS) {
            specs.push(InputSpec::Still(path.to_path_buf()));
        } else {
            specs.push(InputSpec::Video(path.to_path_buf()));
        }
    }
    Ok(specs)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MediaKind {
    Video,
    Still,
}

impl MediaKind {
    fn of(path: &Path) -> Option<MediaKind> {
        if has_extension(path, STILL_EXTENSIONS) {
            Some(MediaKind::Still)
        } else if has_extension(path, VIDEO_EXTENSIONS) {
            Some(MediaKind::Video)
        } else {
            None
        }
    }

    fn spec(self, path: PathBuf) -> InputSpec {
        match self {
            MediaKind::Video => InputSpec::Video(path),
            MediaKind::Still => InputSpec::Still(path),
        }
    }
}

/// Collects media files under `dir`. Uses the directory entries' own file types (no
/// `stat` per file), which keeps folders of many thousands of images fast.
fn walk_folder(dir: &Path, found: &mut Vec<(PathBuf, MediaKind)>) -> Result<(), DecodeError> {
    let io_err = |e: std::io::Error| DecodeError::Io {
        input: dir.display().to_string(),
        source: e,
    };
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_err)?;
        if file_type.is_dir() {
            walk_folder(&path, found)?;
        } else if let Some(kind) = MediaKind::of(&path) {
            // A symlink counts when it leads to a file; a dangling link or a link to a
            // folder is skipped.
            if file_type.is_file() || (file_type.is_symlink() && path.is_file()) {
                found.push((path, kind));
            }
        }
    }
    Ok(())
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// `scheme://rest` with a scheme of letters, digits, `+`, `-` or `.` (RFC 3986).
fn looks_like_url(arg: &str) -> bool {
    url_scheme(arg).is_some()
}

fn url_scheme(arg: &str) -> Option<&str> {
    let (scheme, _) = arg.split_once("://")?;
    let ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

pub(super) fn is_live_scheme(url: &str) -> bool {
    url_scheme(url).is_some_and(|s| LIVE_SCHEMES.iter().any(|l| l.eq_ignore_ascii_case(s)))
}

fn is_video_device(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        s.strip_prefix("/dev/video")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}

/// `rtsp://user:secret@host/x` → `rtsp://user:***@host/x`, so passwords never reach
/// the output file or the terminal.
pub(super) fn redact_url_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn folder_expands_recursively_sorted_skipping_hidden_and_unknown_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "b.mp4",
            "a.JPG",
            "notes.txt",
            ".hidden.mp4",
            ".cache/c.mp4",
            "sub/deeper/d.MKV",
            "sub/e.png",
            "sub/f.csv",
        ] {
            touch(&root.join(name));
        }
        let specs = expand_inputs(&[root.display().to_string()]).unwrap();
        let expected = vec![
            InputSpec::Still(root.join("a.JPG")),
            InputSpec::Video(root.join("b.mp4")),
            InputSpec::Video(root.join("sub/deeper/d.MKV")),
            InputSpec::Still(root.join("sub/e.png")),
        ];
        assert_eq!(specs, expected);
    }

    #[test]
    fn missing_path_is_an_error_naming_it() {
        let err = expand_inputs(&["/no/such/place/clip.mp4".to_string()]).unwrap_err();
        assert!(matches!(err, DecodeError::NotFound { .. }));
        assert!(err.to_string().contains("/no/such/place/clip.mp4"), "{err}");
    }

    #[test]
    fn arguments_are_classified_as_url_webcam_still_or_video() {
        let dir = tempfile::tempdir().unwrap();
        let still = dir.path().join("face.jpeg");
        let video = dir.path().join("clip.weird");
        touch(&still);
        touch(&video);
        let args = [
            "rtsp://cam.local/stream".to_string(),
            "/dev/video2".to_string(),
            still.display().to_string(),
            video.display().to_string(),
        ];
        let specs = expand_inputs(&args).unwrap();
        assert_eq!(
            specs,
            vec![
                InputSpec::Url("rtsp://cam.local/stream".into()),
                InputSpec::Webcam(WebcamSpec::Device("/dev/video2".into())),
                InputSpec::Still(still),
                InputSpec::Video(video),
            ]
        );
    }

    #[test]
    fn webcam_argument_is_an_index_or_a_device() {
        assert_eq!(
            InputSpec::webcam("0"),
            InputSpec::Webcam(WebcamSpec::Index(0))
        );
        assert_eq!(
            InputSpec::webcam("/dev/video1"),
            InputSpec::Webcam(WebcamSpec::Device("/dev/video1".into()))
        );
        assert_eq!(InputSpec::webcam("3").source_id().as_str(), "webcam:3");
    }

    #[test]
    fn url_passwords_are_redacted_in_source_names() {
        assert_eq!(
            redact_url_credentials("rtsp://admin:hunter2@10.0.0.5:554/live?x=1"),
            "rtsp://admin:***@10.0.0.5:554/live?x=1"
        );
        assert_eq!(
            redact_url_credentials("rtsp://admin@host/a"),
            "rtsp://admin@host/a"
        );
        assert_eq!(redact_url_credentials("http://host/a@b"), "http://host/a@b");
        assert!(is_live_scheme("RTSP://x/y"));
        assert!(!is_live_scheme("https://x/y.mp4"));
    }

    #[test]
    fn folder_of_thousands_of_images_expands_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3000 {
            fs::write(dir.path().join(format!("{i:05}.png")), b"").unwrap();
        }
        let specs = expand_inputs(&[dir.path().display().to_string()]).unwrap();
        assert_eq!(specs.len(), 3000);
        assert_eq!(specs[0], InputSpec::Still(dir.path().join("00000.png")));
        assert_eq!(specs[2999], InputSpec::Still(dir.path().join("02999.png")));
    }
}
