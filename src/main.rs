//! The `amisim` command line.

use amisim::bench::{bench_env_all, EnvBenchRow};
use amisim::train::collect::{collect, CollectConfig};
use amisim::world::policy::{PolicyKind, RandomWalkConfig};
use amisim::world::scene::shipped_scene_names;
use amisim::world::{check_adapter, Scene};
use anyhow::Result;
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
    /// Run an exploration policy in many environments and write the episodes as safetensors.
    Collect(CollectArgs),
    /// Measure throughput.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Check scene files and print what they hold (all shipped scenes when none is given).
    Scenes {
        /// Scene names or paths to `.ron` files.
        scenes: Vec<String>,
    },
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
    /// Output folder.
    #[arg(long, default_value = "out/dataset")]
    out: PathBuf,
    /// Also write a PNG contact sheet of the first episodes.
    #[arg(long)]
    preview: Option<PathBuf>,
}

#[derive(Subcommand)]
enum BenchWhat {
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
                    ..Default::default()
                },
            };
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
        Command::Scenes { scenes } => {
            let names = if scenes.is_empty() {
                shipped_scene_names()
            } else {
                scenes
            };
            let mut failed = false;
            for name in names {
                match Scene::load(&name) {
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
                        eprintln!("{e}");
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
