//! `amisim collect`: runs an exploration policy in many environments at once and writes the
//! episodes as safetensors shards.

use super::dataset::{shard_path, write_header, DatasetHeader, Shard, FORMAT};
use crate::image::{contact_sheet, save_rgb_png};
use crate::world::policy::{plan_episode, PolicyKind, RandomWalkConfig};
use crate::world::scene::{resolve_scene_path, Axis, Scene};
use crate::world::sim::{EnvState, STATE_NAMES};
use crate::world::{env::env_rng, VecEnv};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings of a collection run (saved in the dataset header).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectConfig {
    pub scene: String,
    pub policy: PolicyKind,
    pub episodes: usize,
    /// Actions per episode (frames per episode = steps + 1).
    pub steps: usize,
    /// Environments run side by side.
    pub envs: usize,
    pub seed: u64,
    pub shard_episodes: usize,
    pub random_walk: RandomWalkConfig,
}

impl CollectConfig {
    /// The reference random walk in `scene`, all episodes in one shard.
    pub fn random_walk(scene: &str, episodes: usize, steps: usize, envs: usize, seed: u64) -> CollectConfig {
        CollectConfig {
            scene: scene.to_string(),
            policy: PolicyKind::RandomWalk,
            episodes,
            steps,
            envs,
            seed,
            shard_episodes: episodes,
            random_walk: RandomWalkConfig::default(),
        }
    }
}

/// Salt that separates the policy's RNG streams from the episodes'.
const POLICY_SALT: u64 = 0x05ee_d0fa_11c0_ffee;

/// The seed of batch `b` of a run seeded with `seed`.
fn batch_seed(seed: u64, b: usize) -> u64 {
    seed.wrapping_add((b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Ground-truth layout of one episode as a flat row (see `layout_columns`).
fn layout_row(state: &EnvState) -> Vec<f32> {
    match &state.layout {
        Some(l) => l
            .drawn
            .iter()
            .flat_map(|(axis, at, doors)| {
                let mut v = vec![if *axis == Axis::Vertical { 0.0 } else { 1.0 }, *at as f32];
                v.extend(doors.iter().map(|d| *d as f32));
                v
            })
            .collect(),
        None => vec![state.goal_object.map_or(-1.0, |k| k as f32)],
    }
}

fn layout_columns(scene: &Scene) -> Vec<String> {
    match scene {
        Scene::TopDown(s) => s
            .walls
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                let mut v = vec![format!("wall{i}_axis"), format!("wall{i}_at")];
                v.extend((0..w.doors.len()).map(|j| format!("wall{i}_door{j}")));
                v
            })
            .collect(),
        Scene::FirstPerson(_) => vec!["goal_object".into()],
    }
}

/// Runs the collection and writes `out/shard-*.safetensors` and `out/header.json`; with
/// `preview`, also a PNG contact sheet of the first episodes.
pub fn collect(cfg: &CollectConfig, out: &Path, preview: Option<&Path>, show_progress: bool) -> Result<DatasetHeader> {
    if cfg.shard_episodes == 0 {
        bail!("shard_episodes must be at least 1");
    }
    let (all, mut header) = collect_in_memory(cfg, show_progress)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let shards = cfg.episodes.div_ceil(cfg.shard_episodes);
    header.shards = (0..shards)
        .map(|k| shard_path(out, k).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for k in 0..shards {
        let first = k * cfg.shard_episodes;
        let last = (first + cfg.shard_episodes).min(cfg.episodes);
        all.slice(first, last).write(&shard_path(out, k), &header)?;
    }
    write_header(out, &header)?;
    if let Some(path) = preview {
        let [_, res, _] = all.frame_shape;
        let cols = 8.min(cfg.steps + 1);
        let frame_len = all.frame_shape.iter().product::<usize>();
        let mut frames: Vec<&[u8]> = Vec::new();
        for e in 0..all.episodes.min(4) {
            for k in 0..cols {
                let t = k * cfg.steps / (cols - 1).max(1);
                let i = e * (cfg.steps + 1) + t;
                frames.push(&all.frames[i * frame_len..(i + 1) * frame_len]);
            }
        }
        let (w, h, rgb) = contact_sheet(&frames, res, res, cols, 3);
        save_rgb_png(path, w, h, &rgb)?;
    }
    Ok(header)
}

/// Runs the collection and returns every episode in one [`Shard`] (nothing written), with the
/// dataset header (its `shards` list empty).
pub fn collect_in_memory(cfg: &CollectConfig, show_progress: bool) -> Result<(Shard, DatasetHeader)> {
    if cfg.episodes == 0 || cfg.steps == 0 || cfg.envs == 0 {
        bail!("episodes, steps and envs must all be at least 1");
    }
    let scene = Scene::load(&cfg.scene)?;
    let scene_file: PathBuf = resolve_scene_path(&cfg.scene);
    let n = cfg.envs.min(cfg.episodes);
    let mut env = VecEnv::new(scene.clone(), n)?;
    let res = scene.resolution() as usize;
    let frame_shape = [3, res, res];
    let frame_len = 3 * res * res;
    let columns = layout_columns(&scene);
    let header = DatasetHeader {
        format: FORMAT.into(),
        scene: scene.name().into(),
        scene_file: scene_file.display().to_string(),
        seed: cfg.seed,
        policy: format!("{:?}", cfg.policy),
        settings: serde_json::to_value(cfg)?,
        episodes: cfg.episodes,
        steps_per_episode: cfg.steps,
        frame_shape,
        state_names: STATE_NAMES.iter().map(|s| s.to_string()).collect(),
        layout_columns: columns.clone(),
        shards: Vec::new(),
    };
    let bar = if show_progress {
        ProgressBar::new(cfg.episodes as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} episodes, {per_sec}, eta {eta}")
            .expect("progress template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("collect {}", scene.name()));
    let mut all = Shard {
        steps: cfg.steps,
        frame_shape,
        layout_width: columns.len(),
        ..Default::default()
    };
    let mut done = 0usize;
    let mut batch = 0usize;
    while done < cfg.episodes {
        let seed = batch_seed(cfg.seed, batch);
        env.reset(seed)?;
        let mut states = env.states().to_vec();
        let plans: Vec<Vec<[f32; 2]>> = states
            .iter_mut()
            .enumerate()
            .map(|(i, st)| {
                let mut rng = env_rng(seed ^ POLICY_SALT, i);
                plan_episode(&scene, cfg.policy, &cfg.random_walk, st, cfg.steps, &mut rng)
            })
            .collect();
        env.set_states(states);
        let mut frames = vec![env.render()?.frames];
        let mut trajectory: Vec<Vec<EnvState>> = vec![env.states().to_vec()];
        for t in 0..cfg.steps {
            let actions: Vec<[f32; 2]> = plans.iter().map(|p| p[t]).collect();
            frames.push(env.step(&actions)?.0.frames);
            trajectory.push(env.states().to_vec());
        }
        let take = n.min(cfg.episodes - done);
        for i in 0..take {
            for f in &frames {
                all.frames.extend_from_slice(&f[i * frame_len..(i + 1) * frame_len]);
            }
            for p in &plans[i] {
                all.actions.extend_from_slice(p);
            }
            for st in &trajectory {
                all.states.extend_from_slice(&st[i].to_vec());
                all.collided.push(st[i].collided as u8);
            }
            all.layout.extend(layout_row(&trajectory[0][i]));
            all.episodes += 1;
        }
        done += take;
        batch += 1;
        bar.set_position(done as u64);
    }
    bar.finish_and_clear();
    Ok((all, header))
}
