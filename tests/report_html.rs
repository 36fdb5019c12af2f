//! `mimic analyze --report` and `mimic report`: one self-contained page, rendered by a
//! real browser (Debian's headless Chromium, installed by `scripts/setup.sh`) to a
//! picture that is not blank and a document with one section per track.

mod cli_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use cli_common::{Rows, analyze, assert_success, root};

/// Chromium headless, as the machine's notes say it runs here as root: no sandbox, no
/// GPU, none of the background connections a closed network refuses.
fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("running chromium (scripts/setup.sh installs it)")
}

#[test]
fn the_report_renders_with_one_section_per_track() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("clip.csv");
    let page = dir.path().join("clip.html");
    let clip = root().join("tests/fixtures/clip.mp4");
    let model = root().join("tests/fixtures/vit/cls");
    let out = analyze(&[
        clip.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "-o",
        csv.to_str().unwrap(),
        "--report",
        page.to_str().unwrap(),
    ]);
    assert_success(&out);
    let rows = Rows::read(&csv);
    let track = rows.column("track_id");
    let tracks: BTreeSet<&str> = rows
        .rows
        .iter()
        .map(|r| &r[track])
        .filter(|t| !t.is_empty())
        .collect();
    assert!(tracks.len() >= 2, "the clip has several people: {tracks:?}");

    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "self-contained"
    );
    assert_eq!(
        html.matches("<section class=\"track\"").count(),
        tracks.len()
    );
    assert_eq!(
        html.matches("<img alt=\"best face\" src=\"data:image/jpeg")
            .count(),
        tracks.len()
    );
    assert!(html.contains("frames/s"), "the run's speed");

    // What the browser makes of it.
    let profile = dir.path().join("profile");
    let url = format!("file://{}", page.display());
    let dom = chromium(&profile, &["--dump-dom", &url]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<section class=\"track\"").count(),
        tracks.len()
    );
    assert!(
        dom.matches("<polyline").count() >= tracks.len(),
        "a timeline per track"
    );

    let png = dir.path().join("clip.png");
    let shot = chromium(
        &profile,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1000,1600",
            &url,
        ],
    );
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let picture = image::open(&png).unwrap().to_rgb8();
    assert_eq!(picture.dimensions(), (1000, 1600));
    let inked = picture
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count();
    let colours: BTreeSet<[u8; 3]> = picture.pixels().map(|p| p.0.map(|c| c / 32)).collect();
    assert!(
        inked > 10_000 && colours.len() > 20,
        "a blank page? {inked} dark pixels, {} colours",
        colours.len()
    );

    // The standalone command makes the same page from the CSV (without the speed).
    let again = dir.path().join("again.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mimic"))
        .current_dir(root())
        .args([
            "report",
            csv.to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_success(&out);
    let html = std::fs::read_to_string(&again).unwrap();
    assert_eq!(
        html.matches("<section class=\"track\"").count(),
        tracks.len()
    );
    assert!(html.contains("not recorded"));
}
