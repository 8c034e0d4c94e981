//! What amisim survives, through the binary as a user runs it: training killed at several
//! points resumes to the same weights bit for bit; a killed collection leaves complete shards
//! or a clear refusal; a killed evaluation resumes to the same episodes; two writers of one
//! folder are refused; a checkpoint that cannot be written leaves the last one intact; NaN and
//! ∞ actions never reach the world's state.

use super::jepa::{temp_dir, toy_episodes, weights, RES};
use amisim::data::dataset::{shard_path, write_header, DatasetHeader, Shard, FORMAT};
use amisim::data::Episodes;
use amisim::perception::EncoderConfig;
use amisim::train::jepa::{load_checkpoint, TrainConfig};
use amisim::world::{Scene, VecEnv};
use amisim::world_model::jepa::{JepaConfig, LossWeights};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn amisim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amisim"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs to the end; the error output on failure.
fn finish(mut c: Command) -> Result<(), String> {
    let out = c.output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Waits until `ready` holds (or the child ends, or a minute passes), then kills the child with
/// SIGKILL. Whether `ready` held before the kill.
fn kill_when(mut child: Child, ready: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    let mut held = false;
    while t0.elapsed() < Duration::from_secs(60) {
        if ready() {
            held = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    held
}

/// The toy episodes of the JEPA tests as a dataset folder.
fn toy_dataset(dir: &Path) {
    let e = toy_episodes(16, 6);
    let shard = Shard {
        episodes: e.episodes,
        steps: e.steps,
        frame_shape: e.frame_shape,
        frames: e.frames.clone(),
        actions: e.actions.clone(),
        states: e.states.clone(),
        collided: vec![0; e.episodes * (e.steps + 1)],
        layout: vec![0.0; e.episodes],
        layout_width: 1,
        first_episode: 0,
    };
    let header = DatasetHeader {
        format: FORMAT.into(),
        scene: "toy".into(),
        scene_file: String::new(),
        seed: 0,
        policy: "toy".into(),
        settings: serde_json::json!({}),
        episodes: e.episodes,
        steps_per_episode: e.steps,
        frame_shape: e.frame_shape,
        state_names: (0..7).map(|i| format!("s{i}")).collect(),
        layout_columns: vec!["none".into()],
        shards: vec!["shard-00000.safetensors".into()],
    };
    std::fs::create_dir_all(dir).unwrap();
    shard.write(&shard_path(dir, 0), &header).unwrap();
    write_header(dir, &header).unwrap();
}

/// The JEPA tests' tiny model on the toy frames, for `steps` steps.
fn tiny(steps: usize) -> TrainConfig {
    TrainConfig::new(JepaConfig::new(EncoderConfig::lenet(RES, 16), LossWeights::new()))
        .with_batch(8)
        .with_window(4)
        .with_steps(steps)
}

/// `amisim train --data DATA` with `cfg` (written to `dir/config.json`), as a command for an
/// output folder, resuming or not.
fn train_command(dir: &Path, data: &Path, cfg: &TrainConfig) -> impl Fn(&Path, bool) -> Command {
    let config = dir.join("config.json");
    std::fs::write(&config, serde_json::to_string(cfg).unwrap()).unwrap();
    let data = data.to_path_buf();
    move |out: &Path, resume: bool| {
        let mut c = amisim();
        c.arg("train").arg("--data").arg(&data).arg("--config").arg(&config);
        c.arg("--out").arg(out);
        if resume {
            c.arg("--resume");
        }
        c
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn training_killed_at_several_points_resumes_to_the_same_weights() {
    let root = temp_dir("kill-train");
    let data = root.join("data");
    toy_dataset(&data);
    let steps = 24;
    let cfg = tiny(steps).with_warmup(2).with_log_every(1).with_checkpoint_every(3);
    let train = train_command(&root, &data, &cfg);
    let straight = root.join("straight");
    finish(train(&straight, false)).unwrap();
    let want = weights(&straight.join("checkpoint.safetensors"));
    // Killed once a given number of steps is logged (metrics.csv: a header, a line a step):
    // before the first checkpoint, between checkpoints, right after one, near the end.
    let points = [1usize, 5, 9, 13, 20];
    let mut mid_run = 0;
    for (k, &after) in points.iter().enumerate() {
        let out = root.join(format!("killed-{k}"));
        let child = train(&out, false).spawn().unwrap();
        let csv = out.join("metrics.csv");
        assert!(
            kill_when(child, || lines(&csv) > after),
            "kill point {after}: the run ended first"
        );
        let ck = out.join("checkpoint.safetensors");
        let at = ck.exists().then(|| {
            load_checkpoint(&ck, None, &amisim::train::jepa::cpu_device())
                .unwrap()
                .step
        });
        mid_run += at.is_some_and(|s| s > 0 && s < steps) as usize;
        finish(train(&out, true)).unwrap_or_else(|e| panic!("resume after kill point {after}: {e}"));
        assert!(
            weights(&ck) == want,
            "killed after {after} steps (checkpoint at {at:?}), resumed: the weights differ from the straight run"
        );
        assert_eq!(
            lines(&out.join("metrics.csv")),
            steps + 1,
            "kill point {after}: one log line a step"
        );
    }
    assert!(mid_run >= 2, "only {mid_run} kills landed between checkpoints");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn two_writers_of_one_folder_the_second_is_refused_and_a_killed_ones_lock_is_taken_over() {
    let root = temp_dir("lock");
    let data = root.join("data");
    toy_dataset(&data);
    let out = root.join("run");
    let train_in = train_command(&root, &data, &tiny(100_000).with_log_every(1));
    let train = || train_in(&out, true);
    let first = train().spawn().unwrap();
    let csv = out.join("metrics.csv");
    let t0 = Instant::now();
    while lines(&csv) < 2 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The second writer is refused while the first runs, with the first one's id.
    let e = finish(train()).expect_err("a second writer of the same folder");
    assert!(
        e.contains("being written by another amisim process") && e.contains(&first.id().to_string()),
        "{e}"
    );
    // Killed, the first leaves its lock; the next writer takes it over.
    assert!(kill_when(first, || true));
    assert!(
        out.join(amisim::lock::LOCK_FILE).exists(),
        "a killed writer leaves its lock"
    );
    let _taken = amisim::lock::DirLock::acquire(&out, "test").expect("a dead writer's lock is taken over");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_training_and_keeps_the_last_one() {
    let root = temp_dir("unwritable");
    let data = root.join("data");
    toy_dataset(&data);
    let out = root.join("run");
    let cfg = tiny(2).with_warmup(1).with_checkpoint_every(2);
    let data_eps = Episodes::load(&data).unwrap();
    amisim::train::jepa::train(&cfg, &data_eps, &out, false, false).unwrap();
    let ck = out.join("checkpoint.safetensors");
    let before = std::fs::read(&ck).unwrap();
    // The write-then-rename's temporary file cannot be made (a folder holds its name): the
    // same failure as a full disk or a read-only folder, at the next checkpoint.
    std::fs::create_dir(out.join("checkpoint.safetensors.tmp")).unwrap();
    let e = amisim::train::jepa::train(&cfg.clone().with_steps(4), &data_eps, &out, true, false)
        .expect_err("training must stop")
        .to_string();
    assert!(e.contains("checkpoint.safetensors.tmp"), "{e}");
    assert_eq!(std::fs::read(&ck).unwrap(), before, "the last checkpoint changed");
    assert_eq!(
        load_checkpoint(&ck, None, &amisim::train::jepa::cpu_device())
            .unwrap()
            .step,
        2
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_killed_collection_leaves_complete_shards_or_a_clear_refusal() {
    let root = temp_dir("kill-collect");
    for (k, wait_ms) in [300u64, 1500, 4000].into_iter().enumerate() {
        let out = root.join(format!("c{k}"));
        let mut c = amisim();
        c.args([
            "collect",
            "--scene",
            "two_rooms",
            "--episodes",
            "60",
            "--steps",
            "8",
            "--envs",
            "4",
        ]);
        c.args(["--shard-episodes", "4", "--out", out.to_str().unwrap()]);
        let child = c.spawn().unwrap();
        let t0 = Instant::now();
        kill_when(child, || t0.elapsed() > Duration::from_millis(wait_ms));
        // Each shard there is whole; the dataset loads or says what is missing.
        let shards: Vec<PathBuf> = std::fs::read_dir(&out)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        for p in shards
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        {
            Shard::read(p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        }
        if let Err(e) = Episodes::load(&out) {
            let e = format!("{e:#}");
            assert!(e.contains("header.json") && e.contains("collection"), "{e}");
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_killed_evaluation_resumes_to_the_same_episodes() {
    let root = temp_dir("kill-eval");
    let eval = |out: &Path, resume: bool| {
        let mut c = amisim();
        c.args([
            "eval",
            "--scene",
            "two_rooms",
            "--agent",
            "random,oracle",
            "--episodes",
            "10",
            "--envs",
            "2",
        ]);
        c.args([
            "--seed",
            "5",
            "--set",
            "eval.max_steps=40",
            "--out",
            out.to_str().unwrap(),
        ]);
        if resume {
            c.arg("--resume");
        }
        c
    };
    let episodes = |dir: &Path| -> Vec<serde_json::Value> {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["episodes"].clone())
            .collect()
    };
    let straight = root.join("straight");
    finish(eval(&straight, false)).unwrap();
    assert!(
        !straight.join("progress.jsonl").exists(),
        "a finished run leaves no journal"
    );
    // 10 batches in all (2 rows × 5); killed after 2, 5 and 8 are journaled.
    for after in [2usize, 5, 8] {
        let out = root.join(format!("killed-{after}"));
        let journal = out.join("progress.jsonl");
        assert!(kill_when(eval(&out, false).spawn().unwrap(), || lines(&journal) > after));
        finish(eval(&out, true)).unwrap_or_else(|e| panic!("resume after {after}: {e}"));
        assert_eq!(episodes(&out), episodes(&straight), "killed after {after} batches");
    }
    // Nothing to resume, or other settings: refused, saying why.
    let e = finish(eval(&straight, true)).expect_err("nothing to resume");
    assert!(e.contains("nothing to resume"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn non_finite_actions_never_reach_the_world_and_are_counted() {
    let scene = Scene::load("two_rooms").unwrap();
    let mut env = VecEnv::new(scene, 3).unwrap();
    env.reset(0).unwrap();
    let before: Vec<[f32; 2]> = env.states().iter().map(|s| [s.agent.x, s.agent.y]).collect();
    env.step(&[[f32::NAN, f32::NAN], [f32::INFINITY, 0.0], [0.0, f32::NEG_INFINITY]])
        .unwrap();
    for (s, b) in env.states().iter().zip(&before) {
        assert!(s.agent.x.is_finite() && s.agent.y.is_finite());
        assert_eq!([s.agent.x, s.agent.y], *b, "a NaN or ∞ action moved the agent");
    }
    assert_eq!(env.non_finite_actions(), 4);
}

/// Resident memory of process `pid` ("self" for this one), in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

/// Least-squares slope of `(x, y)` samples.
fn slope(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    let (mx, my) = (
        samples.iter().map(|s| s.0).sum::<f64>() / n,
        samples.iter().map(|s| s.1).sum::<f64>() / n,
    );
    let cov: f64 = samples.iter().map(|s| (s.0 - mx) * (s.1 - my)).sum();
    let var: f64 = samples.iter().map(|s| (s.0 - mx) * (s.0 - mx)).sum();
    cov / var.max(f64::MIN_POSITIVE)
}

/// Memory at start, after warm-up (the first tenth) and at the end, and the slope after
/// warm-up; fails if memory keeps growing (more than 1 KiB per unit of `per`).
fn report_soak(name: &str, per: &str, samples: &[(f64, f64)]) {
    let warm = samples.len() / 10;
    let s = slope(&samples[warm..]);
    println!(
        "soak {name}: RSS {:.1} MiB at start, {:.1} MiB after warm-up, {:.1} MiB at the end; slope after warm-up {s:.4} KiB per {per}",
        samples[0].1 / 1024.0,
        samples[warm].1 / 1024.0,
        samples[samples.len() - 1].1 / 1024.0
    );
    assert!(s < 1.0, "{name}: memory grows by {s:.3} KiB per {per}");
}

/// `VecEnv` stepped 10⁶ environment steps (64 environments, a reset every 200 steps).
#[test]
#[ignore]
fn soak_vecenv() {
    let scene = Scene::load("two_rooms").unwrap();
    let n = 64;
    let mut env = VecEnv::new(scene, n).unwrap();
    let mut samples = Vec::new();
    let calls = 1_000_000 / n;
    let actions = vec![[1.0f32, -0.5]; n];
    for c in 0..calls {
        if c % 200 == 0 {
            env.reset(c as u64).unwrap();
        }
        env.step(&actions).unwrap();
        if c % 100 == 0 {
            samples.push(((c * n) as f64 / 1000.0, rss_kib("self").unwrap() as f64));
        }
    }
    report_soak("VecEnv 10^6 steps", "1000 environment steps", &samples);
}

/// `amisim eval` over 2 000 episodes (the mode-1 agent and random), its memory sampled every
/// second from outside. The report it builds grows with the run (every episode's result and
/// every planning call's time: some 200 KiB here), the rest must not.
#[test]
#[ignore]
fn soak_eval() {
    let mut c = amisim();
    c.args([
        "eval",
        "--scene",
        "two_rooms",
        "--agent",
        "mode1,random",
        "--episodes",
        "2000",
        "--envs",
        "20",
    ]);
    let mut child = c.stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id().to_string();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    // The first sample a second in (before, the process is still being set up).
    std::thread::sleep(Duration::from_secs(1));
    while child.try_wait().unwrap().is_none() {
        if let Some(r) = rss_kib(&pid) {
            samples.push((t0.elapsed().as_secs_f64(), r as f64));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(child.wait().unwrap().success());
    report_soak("eval 2000 episodes", "second", &samples);
}

/// `amisim run`'s agent thread (the window's, without the window) for 20 000 steps of the
/// mode-1 agent, its memory sampled every 500 steps.
#[test]
#[ignore]
fn soak_run_agent_thread() {
    use amisim::ui::agent::{spawn, AgentOptions, Event};
    let (tx, rx) = crossbeam_channel::unbounded();
    let commands = spawn(
        AgentOptions {
            scene: "two_rooms".into(),
            agent: "mode1".into(),
            sets: Vec::new(),
            seed: 0,
            steps_per_second: 1e6,
        },
        tx,
    );
    let (mut steps, mut samples) = (0usize, Vec::new());
    while steps < 20_000 {
        match rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the agent thread stalled")
        {
            Event::Snapshot(_) => {
                steps += 1;
                if steps % 500 == 0 {
                    samples.push((steps as f64, rss_kib("self").unwrap() as f64));
                }
            }
            Event::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
    drop(commands);
    report_soak("run's agent thread 20000 steps", "step", &samples);
}
