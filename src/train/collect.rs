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
    if cfg.episodes == 0 || cfg.steps == 0 || cfg.envs == 0 || cfg.shard_episodes == 0 {
        bail!("episodes, steps, envs and shard_episodes must all be at least 1");
    }
    let scene = Scene::load(&cfg.scene)?;
    let scene_file: PathBuf = resolve_scene_path(&cfg.scene);
    let n = cfg.envs.min(cfg.episodes);
    let mut env = VecEnv::new(scene.clone(), n)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
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
        shards: (0..cfg.episodes.div_ceil(cfg.shard_episodes))
            .map(|k| shard_path(out, k).file_name().unwrap().to_string_lossy().into_owned())
            .collect(),
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
    let new_shard = |first: usize| Shard {
        steps: cfg.steps,
        frame_shape,
        layout_width: columns.len(),
        first_episode: first,
        ..Default::default()
    };
    let mut shard = new_shard(0);
    let mut written = 0usize;
    let mut done = 0usize;
    let mut preview_frames: Vec<Vec<u8>> = Vec::new();
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
        let mut obs = env.render()?;
        let mut infos_states: Vec<Vec<EnvState>> = vec![env.states().to_vec()];
        let mut frames = vec![obs.frames.clone()];
        for t in 0..cfg.steps {
            let actions: Vec<[f32; 2]> = plans.iter().map(|p| p[t]).collect();
            let (o, _) = env.step(&actions)?;
            obs = o;
            frames.push(obs.frames.clone());
            infos_states.push(env.states().to_vec());
        }
        let take = n.min(cfg.episodes - done);
        for i in 0..take {
            for f in &frames {
                shard.frames.extend_from_slice(&f[i * frame_len..(i + 1) * frame_len]);
            }
            for p in &plans[i] {
                shard.actions.extend_from_slice(p);
            }
            for st in &infos_states {
                shard.states.extend_from_slice(&st[i].to_vec());
                shard.collided.push(st[i].collided as u8);
            }
            shard.layout.extend(layout_row(&infos_states[0][i]));
            shard.episodes += 1;
            if preview.is_some() && batch == 0 && i < 4 {
                let picks = 8.min(cfg.steps + 1);
                for k in 0..picks {
                    let t = k * cfg.steps / (picks - 1).max(1);
                    preview_frames.push(frames[t][i * frame_len..(i + 1) * frame_len].to_vec());
                }
            }
            if shard.episodes == cfg.shard_episodes {
                shard.write(&shard_path(out, written), &header)?;
                written += 1;
                shard = new_shard(done + i + 1);
            }
        }
        done += take;
        batch += 1;
        bar.set_position(done as u64);
    }
    if shard.episodes > 0 {
        shard.write(&shard_path(out, written), &header)?;
        written += 1;
    }
    debug_assert_eq!(written, header.shards.len());
    write_header(out, &header)?;
    bar.finish();
    if let Some(path) = preview {
        let cols = 8.min(cfg.steps + 1);
        let refs: Vec<&[u8]> = preview_frames.iter().map(|f| f.as_slice()).collect();
        let (w, h, rgb) = contact_sheet(&refs, res, res, cols, 3);
        save_rgb_png(path, w, h, &rgb)?;
    }
    Ok(header)
}
