//! The `amisim` command line.

mod compare_cli;
mod eval_cli;
mod train_cli;

use amisim::bench::{bench_env_all, bench_train, EnvBenchRow};
use amisim::config::with_sets;
use amisim::data::collect::{collect, CollectConfig};
use amisim::data::Episodes;
use amisim::probe::probe;
use amisim::train::jepa::{cpu_device, load_checkpoint, TrainConfig};
use amisim::world::policy::{PolicyKind, RandomWalkConfig};
use amisim::world::scene::shipped_scene_names;
use amisim::world::{check_adapter, Scene};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// amisim: a simulator for autonomous machine intelligence (LeCun's AMI architecture).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open a window onto a scene and watch an agent (the shipped one by default) plan and act,
    /// with an overlay that shows what it sees, imagines and pays.
    Run(RunArgs),
    /// Run an exploration policy in many environments and write the episodes as safetensors.
    Collect(CollectArgs),
    /// Measure throughput.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Train the JEPA world model (encoder + level-1 predictor) self-supervised from video.
    Train(TrainArgs),
    /// Probe a trained encoder and predictor: linear/MLP position probes, rollout probe, rank.
    Probe(ProbeArgs),
    /// Evaluate goal-reaching: agents (the scene's shipped agent by default) beside a random
    /// policy and an oracle, one row each, on the same episodes.
    Eval(Box<eval_cli::EvalArgs>),
    /// Train every self-supervised objective (I-JEPA, V-JEPA, MC-JEPA, SimCLR, BYOL, MAE,
    /// VICReg, SIGReg, energy-based) on the same data and budget; probe each frozen encoder,
    /// fit a world model on it and plan with it; one table (CSV, JSON, SVG charts).
    Compare(Box<compare_cli::CompareArgs>),
    /// Write a checkpoint's weights and config without the optimizer state (for shipping).
    Export {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check scene files and print what they hold (all shipped scenes when none is given).
    Scenes {
        /// Scene names or paths to `.ron` files.
        scenes: Vec<String>,
    },
    /// Parse command lines without running them: one JSON array of arguments (after
    /// `amisim`) per line on stdin, one JSON verdict per line on stdout. The test that keeps
    /// README's and docs' commands true uses it.
    #[command(hide = true)]
    CheckCommands,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scene to show (top-down).
    #[arg(long, default_value = "two_rooms")]
    scene: String,
    /// The agent: `default` (the scene's shipped agent, assets/<scene>/agent.ron), a preset
    /// beside it (cem, hierarchical, configured, …), a spec file, a folder with an agent.ron,
    /// or `oracle` (the true simulator); the window's menu switches between them.
    #[arg(long, default_value = "default")]
    agent: String,
    /// Override an entry of the agent's spec: `--set planner.samples=200`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Environment steps per second (the agent's pace; the window draws at its own rate).
    #[arg(long, default_value_t = 10.0)]
    steps_per_second: f32,
    /// Save a screenshot of the window (PNG) and exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Frames to draw before the screenshot, counted once the agent has planned and the energy
    /// landscape of its goal is in.
    #[arg(long, default_value_t = 60)]
    frames: usize,
    /// Window size in pixels.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 800)]
    height: u32,
}

#[derive(clap::Args)]
struct CollectArgs {
    /// Scene name (looked up in scenes/) or path to a .ron file.
    #[arg(long, default_value = "two_rooms")]
    scene: String,
    /// Exploration policy.
    #[arg(long, value_enum, default_value_t = PolicyKind::RandomWalk)]
    policy: PolicyKind,
    /// Number of episodes.
    #[arg(long, default_value_t = 256)]
    episodes: usize,
    /// Actions per episode (each episode has steps + 1 frames).
    #[arg(long, default_value_t = 16)]
    steps: usize,
    /// Environments run side by side in one Bevy world.
    #[arg(long, default_value_t = 64)]
    envs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Episodes per shard file.
    #[arg(long, default_value_t = 1000)]
    shard_episodes: usize,
    /// Share of random-walk episodes forced through a door.
    #[arg(long, default_value_t = RandomWalkConfig::default().cross_rate)]
    cross_rate: f32,
    /// Share of random-walk episodes that start by pushing the box (scenes with a box).
    #[arg(long, default_value_t = RandomWalkConfig::default().push_rate)]
    push_rate: f32,
    /// Share of random-walk episodes that start by walking into a wall.
    #[arg(long, default_value_t = RandomWalkConfig::default().wall_rate)]
    wall_rate: f32,
    /// Share of random-walk episodes aimed at a dividing wall near a door's edge.
    #[arg(long, default_value_t = RandomWalkConfig::default().door_rate)]
    door_rate: f32,
    /// Share of random-walk episodes that start near a room's corner heading into it.
    #[arg(long, default_value_t = RandomWalkConfig::default().corner_rate)]
    corner_rate: f32,
    /// Output folder.
    #[arg(long, default_value = "out/dataset")]
    out: PathBuf,
    /// Also write a PNG contact sheet of the first episodes.
    #[arg(long)]
    preview: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct TrainArgs {
    /// Where to train: cpu, or wgpu (a GPU; needs a build with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// A dataset folder written by `amisim collect` (or `eval --record`); several, comma-separated,
    /// train on all of them.
    #[arg(long, conflicts_with = "scene", value_delimiter = ',')]
    data: Vec<PathBuf>,
    /// Collect the training data on the fly in this scene instead.
    #[arg(long)]
    scene: Option<String>,
    /// Episodes to collect on the fly [default: 2000; with --all, the scene's recipe: 16 000
    /// walks in two_rooms].
    #[arg(long)]
    episodes: Option<usize>,
    /// Actions per collected episode (default 16; 64 with --level 2).
    #[arg(long)]
    episode_steps: Option<usize>,
    /// What to train: 1 (encoder and level-1 predictor), 2 (the level-2 model), critic (the
    /// cost-to-go C(z, z_goal), by hindsight relabelling) or mode1 (the policy π(z, z_goal),
    /// distilled from the planner); 2, critic and mode1 read the frozen latents of the level-1
    /// model in --checkpoint.
    #[arg(long, default_value = "1")]
    level: String,
    /// Pretrain the encoder (a ViT) with a self-supervised objective instead: ijepa, vjepa,
    /// mcjepa, simclr, byol, mae, vicreg, sigreg or energy (`--steps`, default 1000), then fit
    /// the level-1 predictor on its frozen latents and probe it, as one row of `amisim compare`;
    /// the world model lands in --out/<objective>/checkpoint.safetensors. Needs --scene.
    #[arg(long, value_parser = amisim::ssl::model::Objective::parse)]
    objective: Option<amisim::ssl::model::Objective>,
    /// Pretrain every component in order into --out, as the scene's recipe says: the walks,
    /// encoder + level 1, then level 2, critic and mode 1 where the recipe runs them (a stage
    /// whose model is there is skipped; level 1 resumes); `--set STAGE.KEY=V` with STAGE
    /// collect (the walks), level1, level2, critic or mode1.
    #[arg(long)]
    all: bool,
    /// With --all: the stages to run, comma-separated (level1, level2, critic, mode1)
    /// [default: the scene's recipe; two_rooms: level1].
    #[arg(long, value_delimiter = ',', requires = "all")]
    stages: Option<Vec<String>>,
    /// With --level 2, critic or mode1: the level-1 checkpoint (default: the shipped model
    /// for --scene).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// With --level mode1: the agent distilled (as `eval --agent` names it; default: the run
    /// folder's agent with --all, else the scene's shipped agent).
    #[arg(long)]
    teacher: Option<String>,
    /// Run folder (checkpoint.safetensors, metrics.csv, config.json).
    #[arg(long, default_value = "runs/default")]
    out: PathBuf,
    /// A config file (JSON, as written to config.json); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any config entry: `--set model.weights.variance=0 --set batch=32`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Continue the run in --out exactly where its checkpoint left off.
    #[arg(long)]
    resume: bool,
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// Scene to probe in (fresh episodes are collected, with seeds unlike the training data's).
    #[arg(long, default_value = "two_rooms")]
    scene: String,
    /// Checkpoint to probe (default: the scene's shipped model, assets/<scene>/checkpoint.safetensors).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Episodes to fit the probes on.
    #[arg(long, default_value_t = 300)]
    train_episodes: usize,
    /// Held-out episodes to score on.
    #[arg(long, default_value_t = 100)]
    test_episodes: usize,
    /// Open-loop rollout length (actions per held-out episode).
    #[arg(long, default_value_t = 32)]
    rollout: usize,
    #[arg(long, default_value_t = 1_000_003)]
    seed: u64,
    /// Share of held-out episodes that start by walking into a wall (1: how well the model
    /// knows that walls stop the agent).
    #[arg(long, default_value_t = 0.0)]
    wall_rate: f32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write the rollout probe curve (RMSE px against steps) as a PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Probe the level-2 model instead (default: the one beside the checkpoint): position error
    /// of k-step level-2 jumps against k chained level-1 steps, for 8 jumps.
    #[arg(long, num_args = 0..=1, value_name = "LEVEL2")]
    level2: Option<Option<PathBuf>>,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Training speed of the default world model: ms per optimiser step, frames/s, GFLOP/s.
    Train {
        /// Backends to compare (flex, ndarray).
        #[arg(long, value_delimiter = ',', default_value = "flex")]
        backend: Vec<String>,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 9)]
        window: usize,
        /// Timed optimiser steps per backend.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Override any model config entry, as for `train`: `--set model.encoder.kind=Vit`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Latency of one plan and predictor rollout steps per second (burn ops, hand-written, CEM).
    Plan {
        #[arg(long, default_value_t = 300)]
        candidates: usize,
        #[arg(long, default_value_t = 16)]
        horizon: usize,
        #[arg(long, default_value_t = 10)]
        iterations: usize,
        /// Timed plans per implementation.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        #[arg(long)]
        json: bool,
    },
    /// Observations per second for every scene at several environment counts.
    Env {
        /// Scenes to measure (default: every shipped scene).
        #[arg(long)]
        scene: Vec<String>,
        /// Environment counts.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
        envs: Vec<usize>,
        /// Seconds of stepping per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Print a JSON array of {"scene", "envs", "obs_per_s"} instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    amisim::tune_allocator();
    quiet_display_probe();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Headless, the Vulkan driver's display probe prints "XDG_RUNTIME_DIR is invalid or not set"
/// when that variable is missing. Give it a private runtime folder so the output stays clean.
/// Runs first in `main`, before any thread exists.
fn quiet_display_probe() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join("amisim-runtime");
        let made = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        if made.is_ok() || dir.is_dir() {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => run_command(a)?,
        Command::Compare(a) => compare_cli::compare_command(*a)?,
        Command::Collect(a) => {
            let cfg = CollectConfig {
                scene: a.scene,
                policy: a.policy,
                episodes: a.episodes,
                steps: a.steps,
                envs: a.envs,
                seed: a.seed,
                shard_episodes: a.shard_episodes,
                random_walk: RandomWalkConfig {
                    cross_rate: a.cross_rate,
                    push_rate: a.push_rate,
                    wall_rate: a.wall_rate,
                    door_rate: a.door_rate,
                    corner_rate: a.corner_rate,
                    ..Default::default()
                },
            };
            let _lock = amisim::lock::DirLock::acquire(&a.out, "collect --out")?;
            let header = collect(&cfg, &a.out, a.preview.as_deref(), true)?;
            println!(
                "wrote {} episodes × {} frames of {:?} in {} shard(s) to {}",
                header.episodes,
                header.steps_per_episode + 1,
                header.frame_shape,
                header.shards.len(),
                a.out.display()
            );
            if let Some(p) = a.preview {
                println!("preview: {}", p.display());
            }
        }
        Command::Bench {
            what:
                BenchWhat::Env {
                    scene,
                    envs,
                    seconds,
                    json,
                },
        } => {
            let adapter = check_adapter()?;
            if !json {
                println!("adapter: {adapter}");
                println!("{:<18} {:>6} {:>12} {:>12}", "scene", "envs", "obs/s", "ms/step");
            }
            let budget = Duration::try_from_secs_f64(seconds)
                .map_err(|_| anyhow::anyhow!("--seconds must be a non-negative number, got {seconds}"))?;
            let rows = bench_env_all(&scene, &envs, budget, |r: &EnvBenchRow| {
                if !json {
                    println!(
                        "{:<18} {:>6} {:>12.0} {:>12.2}",
                        r.scene, r.envs, r.obs_per_s, r.ms_per_step
                    );
                }
            })?;
            if json {
                let out: Vec<_> = rows
                    .iter()
                    .map(|r| serde_json::json!({"scene": r.scene, "envs": r.envs, "obs_per_s": r.obs_per_s}))
                    .collect();
                println!("{}", serde_json::to_string(&out)?);
            }
        }
        Command::Bench {
            what:
                BenchWhat::Train {
                    backend,
                    batch,
                    window,
                    steps,
                    sets,
                    json,
                },
        } => {
            let cfg = with_sets(TrainConfig::default_for(65), &sets)?
                .with_batch(batch)
                .with_window(window);
            if let Err(e) = cfg.model.validate() {
                anyhow::bail!("config: {e}");
            }
            let mut rows = Vec::new();
            for b in &backend {
                #[allow(deprecated)]
                let device = match b.as_str() {
                    "flex" => burn::prelude::Device::flex(),
                    "ndarray" => burn::prelude::Device::ndarray(),
                    other => anyhow::bail!("--backend {other}: expected flex or ndarray"),
                };
                let row = bench_train(&cfg, device, b, steps.max(1));
                if !json {
                    println!(
                        "{:<8} B={} T={}: {:.0} ms/step, {:.0} frames/s, {:.2} GFLOP/step, {:.1} GFLOP/s{}",
                        row.backend,
                        row.batch,
                        row.window,
                        row.ms_per_step,
                        row.frames_per_s,
                        row.gflop_per_step,
                        row.gflop_per_s,
                        row.peak_fraction
                            .map(|f| format!(", {:.1} % of the CPU's estimated fp32 peak", f * 100.0))
                            .unwrap_or_default()
                    );
                }
                rows.push(row);
            }
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            }
        }
        Command::Bench {
            what:
                BenchWhat::Plan {
                    candidates,
                    horizon,
                    iterations,
                    reps,
                    json,
                },
        } => {
            if candidates == 0 || horizon == 0 || iterations == 0 {
                anyhow::bail!("--candidates, --horizon and --iterations must be ≥ 1");
            }
            let rows = amisim::bench::bench_plan(candidates, horizon, iterations, reps.max(1));
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                println!(
                    "{:<22} {:>11} {:>8} {:>11} {:>12} {:>18} {:>9}",
                    "implementation", "candidates", "horizon", "iterations", "ms/plan", "rollout steps/s", "GFLOP/s"
                );
                for r in &rows {
                    println!(
                        "{:<22} {:>11} {:>8} {:>11} {:>12.1} {:>18.0} {:>9.1}",
                        r.implementation,
                        r.candidates,
                        r.horizon,
                        r.iterations,
                        r.ms_per_plan,
                        r.rollout_steps_per_s,
                        r.gflop_per_s
                    );
                }
            }
        }
        Command::Train(a) => train_command(a)?,
        Command::Export { checkpoint, out } => {
            let ck = load_checkpoint(&checkpoint, None, &cpu_device())?;
            amisim::train::jepa::save_checkpoint(&out, &ck.config, ck.step, &ck.model, None)?;
            println!("wrote {} (step {}, no optimizer state)", out.display(), ck.step);
        }
        Command::Probe(a) => probe_command(a)?,
        Command::Eval(a) => eval_cli::eval_command(*a)?,
        Command::CheckCommands => check_commands()?,
        Command::Scenes { scenes } => {
            let names = if scenes.is_empty() {
                shipped_scene_names()
            } else {
                scenes
            };
            let mut failed = false;
            for name in names {
                // A scene loads, and its episodes can be drawn (a few of them, as eval would).
                let checked = Scene::load(&name).map_err(anyhow::Error::from).and_then(|s| {
                    for k in 0..SCENE_CHECK_EPISODES {
                        amisim::world::sim::sample_episode(&s, &mut amisim::world::env::env_rng(0, k))
                            .with_context(|| format!("scene {name}: episode {k} of seed 0"))?;
                    }
                    Ok(s)
                });
                match checked {
                    Ok(s) => {
                        let kind = match &s {
                            Scene::TopDown(_) => "top-down",
                            Scene::FirstPerson(_) => "first-person",
                        };
                        println!(
                            "{:<18} ok  {kind}, {}×{} px, {} steps, success within {}",
                            s.name(),
                            s.resolution(),
                            s.resolution(),
                            s.episode().max_steps,
                            s.episode().success_radius
                        );
                    }
                    Err(e) => {
                        eprintln!("{e:#}");
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("some scene files are invalid");
            }
        }
    }
    Ok(())
}

/// `amisim check-commands`: each line of stdin, a JSON array of arguments, parsed as `amisim`
/// would parse it; prints `{"ok": true}` or `{"ok": false, "error": "…"}` for each.
fn check_commands() -> Result<()> {
    use std::io::BufRead;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let args: Vec<String> = serde_json::from_str(&line)
            .with_context(|| format!("check-commands: not a JSON array of strings: {line}"))?;
        let verdict = match Cli::try_parse_from(std::iter::once("amisim".to_string()).chain(args)) {
            Ok(_) => serde_json::json!({"ok": true}),
            Err(e)
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
            {
                serde_json::json!({"ok": true})
            }
            Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
        };
        println!("{verdict}");
    }
    Ok(())
}

/// Episodes `amisim scenes` draws from each scene to check that its task can be set.
const SCENE_CHECK_EPISODES: usize = 20;

/// A training run's config (either level's): `--config FILE` or `default`, then every
/// `--set KEY=VALUE`, then `--steps` and `--seed`.
fn train_config<C: serde::Serialize + serde::de::DeserializeOwned>(
    a: &TrainArgs,
    default: impl FnOnce() -> C,
) -> Result<C> {
    let base = match &a.config {
        Some(p) => amisim::train::jepa::read_config_file(p, default())?,
        None => default(),
    };
    let mut sets = a.sets.clone();
    sets.extend(a.steps.map(|v| format!("steps={v}")));
    sets.extend(a.seed.map(|v| format!("seed={v}")));
    with_sets(base, &sets)
}

fn train_command(a: TrainArgs) -> Result<()> {
    let _lock = amisim::lock::DirLock::acquire(&a.out, "train --out")?;
    if a.all {
        return train_cli::all_command(a);
    }
    if let Some(o) = a.objective {
        let scene = a
            .scene
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--objective collects its episodes: give --scene S"))?;
        return compare_cli::train_objective(
            o,
            scene,
            a.episodes.unwrap_or(DEFAULT_EPISODES),
            a.steps.unwrap_or(1000),
            a.seed.unwrap_or(0),
            &a.out,
        );
    }
    match a.level.as_str() {
        "1" => train_level1(&a),
        "2" => train_level2_command(&a).map(|_| ()),
        "critic" => train_cli::critic_command(&a).map(|_| ()),
        "mode1" => train_cli::mode1_command(&a).map(|_| ()),
        other => anyhow::bail!("--level {other}: expected 1, 2, critic or mode1"),
    }
}

/// Episodes `train` collects on the fly when `--episodes` is not given (outside `--all`).
const DEFAULT_EPISODES: usize = 2000;

/// `amisim train` (level 1): the encoder and the level-1 predictor.
fn train_level1(a: &TrainArgs) -> Result<()> {
    train_level1_with(a, None)
}

/// Level 1, collecting its walks with `collect` where given (`--all`: the scene's recipe),
/// else the reference random walk of `--episodes` episodes.
fn train_level1_with(a: &TrainArgs, collect: Option<CollectConfig>) -> Result<()> {
    if a.checkpoint.is_some() {
        anyhow::bail!(
            "--checkpoint is for --level 2 (the level-1 model it learns on); level 1 continues with --resume"
        );
    }
    // A bad config is refused before minutes of collection (the frame size is the data's;
    // every other entry is checked here).
    train_config(a, || TrainConfig::default_for(65))?
        .validate()
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let data = match (a.data.as_slice(), &a.scene) {
        ([_, ..], _) => Episodes::load_all(&a.data)?,
        ([], Some(scene)) => {
            let c = collect.unwrap_or_else(|| {
                let steps = a.episode_steps.unwrap_or(16);
                CollectConfig::random_walk(scene, a.episodes.unwrap_or(DEFAULT_EPISODES), steps, 256, 0)
            });
            let rw = &c.random_walk;
            eprintln!(
                "collecting {} episodes of {} steps in {scene} (seed {}; wall walks {}, door walks {}) …",
                c.episodes, c.steps, c.seed, rw.wall_rate, rw.door_rate
            );
            let t = std::time::Instant::now();
            let data = Episodes::collect(&c)?;
            eprintln!("collected in {:.0} s", t.elapsed().as_secs_f64());
            data
        }
        ([], None) => anyhow::bail!("give --data DIR (a collected dataset) or --scene S (collect on the fly)"),
    };
    let cfg = train_config(a, || TrainConfig::default_for(data.frame_shape[1]))?;
    eprintln!(
        "training on {} episodes × {} frames of {:?} from {}; run folder {}",
        data.episodes,
        data.steps + 1,
        data.frame_shape,
        data.scene,
        a.out.display()
    );
    let device = amisim::train::jepa::device_named(&a.device)?;
    let summary = amisim::train::jepa::train_on(&cfg, &data, &a.out, a.resume, true, &device)?;
    if let Some(t) = summary.last {
        println!(
            "done: {} steps, loss {:.4} (pred {:.4} var {:.4} cov {:.4} smooth {:.4} idm {:.4} sigreg {:.4}), {:.0} frames/s, {:.0} ms/step",
            summary.steps, t.total, t.prediction, t.variance, t.covariance, t.smoothness, t.idm, t.sigreg, summary.frames_per_s, summary.ms_per_step
        );
    }
    println!("checkpoint: {}", summary.checkpoint.display());
    Ok(())
}

/// `amisim train --level 2`: the level-2 model on a frozen level-1 model, then its rollout
/// probe (k-step jumps against chained level-1 steps). Returns the probe as one line.
fn train_level2_command(a: &TrainArgs) -> Result<String> {
    use amisim::train::level2::{train_level2, Level2TrainConfig};
    if a.resume {
        anyhow::bail!("--resume: level-2 training takes a minute or two and starts over; drop --resume");
    }
    let loaded = (!a.data.is_empty()).then(|| Episodes::load_all(&a.data)).transpose()?;
    let scene_name = match (&loaded, &a.scene) {
        (Some(d), _) => d.scene.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => anyhow::bail!("give --data DIR (a collected dataset) or --scene S (collect on the fly)"),
    };
    let path = a
        .checkpoint
        .clone()
        .unwrap_or_else(|| amisim::agents::default_checkpoint(&scene_name));
    if !path.exists() {
        return Err(amisim::agents::missing_checkpoint(&path, &scene_name));
    }
    let device = cpu_device();
    let ck = load_checkpoint(&path, None, &device)?;
    let data = match loaded {
        Some(d) => d,
        None => {
            let steps = a.episode_steps.unwrap_or(64);
            let episodes = a.episodes.unwrap_or(DEFAULT_EPISODES);
            eprintln!("collecting {episodes} episodes of {steps} steps in {scene_name} …");
            Episodes::collect(&CollectConfig::random_walk(&scene_name, episodes, steps, 256, 0))?
        }
    };
    let cfg = train_config(a, || Level2TrainConfig::default_for(ck.model.latent()))?;
    eprintln!(
        "training level 2 (k = {}, {} jumps per sample) on {} episodes × {} frames of {} under {}; run folder {}",
        cfg.model.k,
        cfg.jumps,
        data.episodes,
        data.steps + 1,
        data.scene,
        path.display(),
        a.out.display()
    );
    let summary = train_level2(&cfg, &ck.model, &data, &a.out, true, &device)?;
    if let Some(t) = summary.last {
        println!(
            "done: {} steps in {:.0} s, loss {:.4} (pred {:.4} var {:.4} cov {:.4} macro var {:.4})",
            cfg.steps, summary.seconds, t.total, t.prediction, t.variance, t.covariance, t.macro_variance
        );
    }
    println!("level-2 checkpoint: {}", summary.checkpoint.display());
    // The probe: fitted on fresh 16-step episodes, scored on fresh episodes of 8 jumps.
    let probe_train = Episodes::collect(&CollectConfig::random_walk(&data.scene, 300, 16, 128, 2_000_003))?;
    let probe_test = Episodes::collect(&CollectConfig::random_walk(
        &data.scene,
        100,
        8 * cfg.model.k,
        100,
        2_000_004,
    ))?;
    let report = amisim::probe::jump_probe::jump_probe(
        &ck.model,
        &summary.model,
        &cfg.model,
        &probe_train,
        &probe_test,
        &device,
    )?;
    print!("{}", report.table());
    std::fs::write(a.out.join("level2_probe.json"), serde_json::to_string_pretty(&report)?)?;
    let last = report.steps.len().saturating_sub(1);
    Ok(format!(
        "agent position after {} steps: level-2 jumps {:.2} px, level 1 chained {:.2} px",
        report.steps.get(last).copied().unwrap_or(0),
        report.level2_rmse_px.get(last).copied().unwrap_or(f32::NAN),
        report.level1_rmse_px.get(last).copied().unwrap_or(f32::NAN)
    ))
}

/// A per-step curve as `1:v 2:v …`.
fn by_step(curve: &[f32]) -> String {
    let steps: Vec<String> = curve
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}:{v:.2}", i + 1))
        .collect();
    steps.join(" ")
}

fn probe_command(a: ProbeArgs) -> Result<()> {
    let path = a
        .checkpoint
        .clone()
        .unwrap_or_else(|| amisim::agents::default_checkpoint(&a.scene));
    if !path.exists() {
        return Err(amisim::agents::missing_checkpoint(&path, &a.scene));
    }
    let ck = load_checkpoint(&path, None, &cpu_device())?;
    let collect = |episodes, steps, seed, wall_rate| {
        let mut c = CollectConfig::random_walk(&a.scene, episodes, steps, 128, seed);
        c.random_walk.wall_rate = wall_rate;
        Episodes::collect(&c)
    };
    let train_data = collect(a.train_episodes, 16, a.seed, 0.0)?;
    if let Some(l2) = &a.level2 {
        let l2_path = l2
            .clone()
            .unwrap_or_else(|| amisim::train::level2::default_level2_path(&path));
        let l2 = amisim::train::level2::load_level2(&l2_path, Some(&ck.model), &cpu_device())?;
        let k = l2.config.model.k;
        let test_data = collect(a.test_episodes, 8 * k, a.seed + 1, a.wall_rate)?;
        let report = amisim::probe::jump_probe::jump_probe(
            &ck.model,
            &l2.model,
            &l2.config.model,
            &train_data,
            &test_data,
            &cpu_device(),
        )?;
        if a.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "checkpoint {} (step {}), level 2 {}",
                path.display(),
                ck.step,
                l2_path.display()
            );
            print!("{}", report.table());
        }
        return Ok(());
    }
    let test_data = collect(a.test_episodes, a.rollout, a.seed + 1, a.wall_rate)?;
    let report = probe(&ck.model, &train_data, &test_data, 500);
    if let Some(p) = &a.plot {
        // Blue: the rollout probe; orange: the linear probe on real frames, for reference.
        // Then the spatial predictor's rollout probe, where there is one.
        let flat = vec![report.linear_rmse_px; report.rollout_rmse_px.len()];
        let mut lines: Vec<&[f32]> = vec![&report.rollout_rmse_px, &flat];
        if let Some(sp) = &report.spatial_rollout_rmse_px {
            lines.push(sp);
        }
        let canvas = amisim::image::line_plot(&lines);
        amisim::image::save_rgb_png(p, canvas.width as u32, canvas.height as u32, &canvas.rgb)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let u = amisim::world::Scene::load(&a.scene)?.position_unit();
        println!("checkpoint {} (step {})", path.display(), ck.step);
        println!(
            "probe targets: {:?}; {} train frames, {} held-out frames",
            report.targets, report.train_frames, report.test_frames
        );
        println!(
            "linear probe RMSE {:.2} {u}, MLP probe RMSE {:.2} {u}",
            report.linear_rmse_px, report.mlp_rmse_px
        );
        println!(
            "effective rank {:.1}, RankMe {:.1} of {}; per-dimension std min {:.3}, mean {:.3}",
            report.effective_rank, report.rank_me, report.latent_dim, report.min_dim_std, report.mean_dim_std
        );
        println!("rollout probe RMSE ({u}) by step: {}", by_step(&report.rollout_rmse_px));
        if let Some(h) = &report.heading {
            println!(
                "heading: linear probe RMSE {:.1}°, MLP {:.1}° (one guess for all: {:.1}°); rollout by step: {}",
                h.linear_rmse_deg,
                h.mlp_rmse_deg,
                h.constant_rmse_deg,
                by_step(&h.rollout_rmse_deg)
            );
        }
        if let Some(sp) = &report.spatial_rollout_rmse_px {
            println!("spatial predictor's rollout probe RMSE ({u}) by step: {}", by_step(sp));
        }
        for l in &report.layout {
            println!(
                "layout {}: linear {:.2} px, MLP {:.2} px (spread {:.2} px)",
                l.column, l.linear_rmse_px, l.mlp_rmse_px, l.std_px
            );
        }
        if report.by_target.len() > 1 {
            for t in &report.by_target {
                println!(
                    "  {}: linear {:.2} {u}, MLP {:.2} {u}, rollout by step: {}",
                    t.target,
                    t.linear_rmse_px,
                    t.mlp_rmse_px,
                    by_step(&t.rollout_rmse_px)
                );
            }
        }
    }
    Ok(())
}

fn run_command(a: RunArgs) -> Result<()> {
    amisim::world::Scene::load(&a.scene)?;
    if !(a.steps_per_second.is_finite() && a.steps_per_second > 0.0) {
        anyhow::bail!("--steps-per-second {} must be a positive number", a.steps_per_second);
    }
    // Check the agent before opening a window: a bad name or spec is an error here.
    amisim::agents::resolve(&a.agent, &a.scene)?;
    let scenes = shipped_scene_names()
        .into_iter()
        .filter(|n| Scene::load(n).is_ok_and(|s| s.top_down().is_some()))
        .collect();
    amisim::ui::run(amisim::ui::RunOptions {
        agent: amisim::ui::agent::AgentOptions {
            scene: a.scene,
            agent: a.agent,
            sets: a.sets,
            seed: a.seed,
            steps_per_second: a.steps_per_second,
        },
        screenshot: a.screenshot,
        frames: a.frames.max(1),
        width: a.width,
        height: a.height,
        scenes,
    })
}
