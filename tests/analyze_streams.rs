//! Network streams end by ending, by going silent, or by coming back: `mimic analyze` on
//! local streams served by FFmpeg (the `ffmpeg` program `scripts/setup.sh` installs),
//! and SIGTERM treated as Ctrl-C.
//!
//! The streams are the 2-second fixture clip, re-encoded by the sender with a keyframe
//! every 5 frames so that a receiver joining late can start at once.

mod cli_common;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_common::{Rows, root};

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A free local port of `kind` ("udp" or "tcp").
fn free_port(kind: &str) -> u16 {
    match kind {
        "udp" => UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        _ => TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    }
}

/// FFmpeg sending the fixture clip in real time (`-re`) as MPEG-TS to `url`.
fn send(url: &str, extra_output: &[&str]) -> Child {
    send_with(&[], url, extra_output)
}

/// [`send`] with options for the input (e.g. `-stream_loop -1`).
fn send_with(input_options: &[&str], url: &str, extra_output: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(input_options)
        .arg("-i")
        .arg(fixture("clip.mp4"))
        .args([
            "-an",
            "-c:v",
            "mpeg2video",
            "-q:v",
            "4",
            "-g",
            "5",
            "-f",
            "mpegts",
        ])
        .args(extra_output)
        .arg(url)
        .stdin(Stdio::null())
        .spawn()
        .expect("running ffmpeg (scripts/setup.sh installs it)")
}

/// `mimic analyze URL` in the background with the fast test model.
fn analyze_stream(url: &str, csv: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mimic"))
        .current_dir(root())
        .arg("analyze")
        .arg(url)
        .arg("--model")
        .arg(fixture("vit/cls"))
        .args(["--device", "cpu", "-o"])
        .arg(csv)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the mimic binary")
}

/// Waits for `child` for at most `limit`; kills it and fails past that.
fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Frame indices of the CSV's rows, one per frame, checked to count 0, 1, 2 … in order.
fn frames_in_order(csv: &Path) -> u64 {
    let mut frames = Rows::read(csv).frames();
    frames.dedup();
    let n = frames.len() as u64;
    assert_eq!(
        frames,
        (0..n).collect::<Vec<_>>(),
        "one row per frame, in order"
    );
    n
}

#[test]
fn the_end_of_an_http_stream_ends_the_run_normally() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let url = format!("http://127.0.0.1:{}/live.ts", free_port("tcp"));
    // FFmpeg as the HTTP server: it waits for one client, streams the clip, closes.
    let server = send(&url, &["-listen", "1"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = finish(
        analyze_stream(&url, &csv, &["--live"]),
        Duration::from_secs(60),
    );
    let _ = finish(server, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let frames = frames_in_order(&csv);
    assert!(frames >= 30, "{frames} frames of the 60 sent");
    assert!(!stderr(&out).contains("failed"), "{}", stderr(&out));
}

#[test]
fn a_silent_udp_stream_is_reported_as_a_stall_and_ends_normally() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let url = format!("udp://127.0.0.1:{}", free_port("udp"));
    let mimic = analyze_stream(&url, &csv, &["--stall-timeout", "1.5"]);
    std::thread::sleep(Duration::from_millis(700));
    let sender = send(&url, &[]);
    let _ = finish(sender, Duration::from_secs(20));
    let started = Instant::now();
    let out = finish(mimic, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ended {:?} after the sender",
        started.elapsed()
    );
    let text = stderr(&out);
    assert!(
        text.contains("delivered nothing for 1.5 s") && text.contains("end of the stream"),
        "{text}"
    );
    assert!(frames_in_order(&csv) >= 20);
}

#[test]
fn a_udp_stream_that_comes_back_is_reconnected_and_numbered_on() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let url = format!("udp://127.0.0.1:{}", free_port("udp"));
    let mimic = analyze_stream(&url, &csv, &["--stall-timeout", "1", "--reconnect", "4"]);
    std::thread::sleep(Duration::from_millis(700));
    let _ = finish(send(&url, &[]), Duration::from_secs(20));
    let first = frames_in_order(&csv);
    // Silent for 2.5 s (a stall, then a reconnection), then the same clip again.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = finish(send(&url, &[]), Duration::from_secs(20));
    let out = finish(mimic, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("reconnecting") && text.contains("reconnected"),
        "{text}"
    );
    let total = frames_in_order(&csv);
    assert!(
        first >= 20 && total >= first + 20,
        "{first} frames before the silence, {total} in all"
    );
    // Presentation times go on increasing across the reconnection.
    let rows = Rows::read(&csv);
    let pts = rows.column("pts_ms");
    let times: Vec<f64> = rows.rows.iter().map(|r| r[pts].parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] >= w[0]), "pts not monotonic");
}

#[test]
fn sigterm_ends_like_ctrl_c_with_a_complete_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    // The clip, looped, as a long stream.
    let url = format!("udp://127.0.0.1:{}", free_port("udp"));
    let mimic = analyze_stream(&url, &csv, &[]);
    std::thread::sleep(Duration::from_millis(700));
    let mut sender = send_with(&["-stream_loop", "-1"], &url, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&csv).map_or(0, |t| t.lines().count()) < 10 {
        assert!(Instant::now() < deadline, "no rows within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = Command::new("kill")
        .args(["-TERM", &mimic.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let out = finish(mimic, Duration::from_secs(30));
    let _ = sender.kill();
    let _ = sender.wait();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.ends_with('\n'), "the last row is whole");
    assert!(frames_in_order(&csv) >= 9);
    assert!(
        stderr(&out).contains("frames/s"),
        "the summary: {}",
        stderr(&out)
    );
}
