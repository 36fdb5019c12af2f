//! The Slurm job array of `scripts/slurm/mimic-array.sbatch` on a real single-node
//! cluster started on this machine (`scripts/slurm/local_cluster.sh`: MUNGE, slurmctld
//! and slurmd from Debian's packages, which `scripts/setup.sh` installs; root needed):
//! three shards cover every input exactly once, their merge is row for row one
//! process's table, and a task requeued mid-run finishes with `--resume` without a
//! duplicate.

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cli_common::{manifest_lines, root, rows_without_latency as rows};

/// The cluster, stopped when the test ends however it ends.
struct Cluster {
    state: PathBuf,
}

impl Cluster {
    fn start(state: &Path) -> Self {
        let out = Command::new(root().join("scripts/slurm/local_cluster.sh"))
            .args(["start", state.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the local Slurm cluster did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            state: state.to_path_buf(),
        }
    }

    /// A Slurm client command against this cluster.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.state.join("slurm.conf"));
        c
    }

    /// Submits the array script; returns the job id.
    fn submit(&self, work: &Path, tasks: usize, inputs: &Path, out: &Path) -> String {
        let model = root().join("tests/fixtures/vit/cls");
        let out = self
            .command("sbatch")
            .current_dir(work)
            .env("MIMIC", env!("CARGO_BIN_EXE_mimic"))
            .env("MIMIC_MODELS", root().join("models"))
            .args(["--parsable", &format!("--array=1-{tasks}")])
            .arg(root().join("scripts/slurm/mimic-array.sbatch"))
            .arg(inputs)
            .arg(out)
            .args(["--model", model.to_str().unwrap(), "--device", "cpu", "-q"])
            .output()
            .unwrap();
        ok(&out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until no task of `job` is pending or running.
    fn wait(&self, job: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let out = self
                .command("squeue")
                .args(["-h", "-j", job, "-o", "%i %t"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} still queued after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/slurm/local_cluster.sh"))
            .args(["stop", self.state.to_str().unwrap()])
            .output();
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn mimic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mimic"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_job_array_covers_every_input_once_and_a_requeued_task_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&tmp.path().join("slurm"));
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // Six short inputs and one longer video (the clip five times), so that a task is
    // still busy when it is requeued.
    let long = tmp.path().join("long.mp4");
    ok(&Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-stream_loop",
            "4",
            "-i",
        ])
        .arg(fixture("clip.mp4"))
        .args(["-an", "-c:v", "mpeg4", "-q:v", "5"])
        .arg(&long)
        .output()
        .unwrap());
    let inputs = tmp.path().join("inputs.txt");
    let names = [
        fixture("clip.mp4"),
        fixture("mtcnn/still_obama.png"),
        fixture("mtcnn/still_biden.png"),
        fixture("mtcnn/frame_000.png"),
        long.display().to_string(),
        fixture("mtcnn/frame_120.png"),
        fixture("decode/rotated90.mp4"),
    ];
    std::fs::write(&inputs, names.join("\n")).unwrap();
    let single = tmp.path().join("single.csv");
    let model = fixture("vit/cls");
    ok(&mimic(&[
        "analyze",
        "--inputs-from",
        inputs.to_str().unwrap(),
        "--model",
        &model,
        "--device",
        "cpu",
        "-q",
        "-o",
        single.to_str().unwrap(),
    ]));

    // Three shards, one array.
    let out = tmp.path().join("out");
    let started = Instant::now();
    let job = cluster.submit(&work, 3, &inputs, &out);
    cluster.wait(&job, Duration::from_secs(300));
    eprintln!(
        "slurm: the 3-task array took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(manifest_lines(&out).len(), names.len(), "every input once");
    let merged = tmp.path().join("merged.csv");
    ok(&mimic(&[
        "merge",
        out.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]));
    assert_eq!(
        rows(&merged),
        rows(&single),
        "the array's table is one process's"
    );

    // The same array again into a new folder; the task that holds the long video is
    // requeued while it analyses it.
    let out2 = tmp.path().join("out2");
    let job = cluster.submit(&work, 3, &inputs, &out2);
    let long_part = |dir: &Path| dir.join(".long.csv.part");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !long_part(&out2).exists() {
        assert!(Instant::now() < deadline, "the long input never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Which task has it: the one whose log names the shard of the long input.
    let running = cluster
        .command("squeue")
        .args(["-h", "-j", &job, "-t", "R", "-o", "%i"])
        .output()
        .unwrap();
    let running = String::from_utf8_lossy(&running.stdout).to_string();
    let holder = running
        .lines()
        .map(str::trim)
        .find(|task| {
            let (_, k) = task.split_once('_').unwrap_or(("", ""));
            let log = work.join(format!("mimic-{job}_{k}.log"));
            std::fs::read_to_string(log).is_ok_and(|l| !l.is_empty())
                && mimic::batch::Shard::new(k.parse().unwrap_or(0), 3)
                    .is_some_and(|s| s.takes(&long.display().to_string()))
        })
        .expect("the task analysing the long input is running")
        .to_string();
    ok(&cluster
        .command("scontrol")
        .args(["requeue", &holder])
        .output()
        .unwrap());
    // Slurm holds a requeued task back for about two minutes (its begin time); a test
    // need not wait for that.
    let release = Instant::now() + Duration::from_secs(60);
    while Instant::now() < release {
        let state = cluster
            .command("squeue")
            .args(["-h", "-j", &holder, "-o", "%t"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&state.stdout).trim() == "PD" {
            ok(&cluster
                .command("scontrol")
                .args(["update", &format!("JobId={holder}"), "StartTime=now"])
                .output()
                .unwrap());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.wait(&job, Duration::from_secs(300));
    let lines = manifest_lines(&out2);
    assert_eq!(
        lines.len(),
        names.len(),
        "each input once, the requeued ones too: {lines:#?}"
    );
    ok(&mimic(&[
        "merge",
        out2.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]));
    assert_eq!(rows(&merged), rows(&single));
    let (_, k) = holder.split_once('_').unwrap();
    let log =
        std::fs::read_to_string(work.join(format!("mimic-{job}_{k}.log"))).unwrap_or_default();
    assert!(
        log.contains("restart 1"),
        "the requeued task ran again: {log}"
    );
}
