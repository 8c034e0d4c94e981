//! `amisim collect`: runs an exploration policy in many environments at once and writes the
//! episodes as safetensors shards.

use super::dataset::{shard_path, write_header, DatasetHeader, Provenance, Shard, FORMAT};
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

impl CollectConfig {
    /// Settings that cannot collect, named by their keys (as `recipe.json`'s "collect" and
    /// `train --all --set collect.KEY=V` name them).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("episodes", self.episodes), ("steps", self.steps), ("envs", self.envs)] {
            if v == 0 {
                bail!("collect.{name} = 0 must be at least 1");
            }
        }
        if self.shard_episodes == 0 {
            bail!("collect.shard_episodes = 0 must be at least 1");
        }
        let w = &self.random_walk;
        for (name, v) in [
            ("cross_rate", w.cross_rate),
            ("push_rate", w.push_rate),
            ("wall_rate", w.wall_rate),
            ("door_rate", w.door_rate),
            ("corner_rate", w.corner_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("collect.random_walk.{name} = {v} must be a share in 0..=1");
            }
        }
        for (name, v) in [
            ("kappa", w.kappa),
            ("step_mean", w.step_mean),
            ("step_std", w.step_std),
            ("step_min", w.step_min),
            ("step_max", w.step_max),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("collect.random_walk.{name} = {v} must be a number ≥ 0");
            }
        }
        if w.step_min > w.step_max {
            bail!(
                "collect.random_walk.step_min = {} must not exceed step_max = {}",
                w.step_min,
                w.step_max
            );
        }
        Ok(())
    }
}

/// Salt that separates the policy's RNG streams from the episodes'.
const POLICY_SALT: u64 = 0x05ee_d0fa_11c0_ffee;

/// The seed of batch `b` of a run seeded with `seed`.
fn batch_seed(seed: u64, b: usize) -> u64 {
    seed.wrapping_add((b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Ground-truth layout of one episode as a flat row (see `layout_columns`).
pub fn layout_row(state: &EnvState) -> Vec<f32> {
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

/// Names of the columns of [`layout_row`] for `scene`.
pub fn layout_columns(scene: &Scene) -> Vec<String> {
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
    cfg.validate()?;
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

/// One environment's running episode, as a [`Recorder`] keeps it.
#[derive(Default)]
struct Track {
    frames: Vec<u8>,
    actions: Vec<f32>,
    states: Vec<f32>,
    collided: Vec<u8>,
    layout: Vec<f32>,
}

/// Records episodes an agent plays (`amisim eval --record`) and cuts each into pieces of
/// `steps` actions (`steps + 1` frames; the rest of an episode shorter than a piece is dropped),
/// so that they train a world model beside collected exploration episodes (`train --data A,B`):
/// the states a planner drives the agent into are the ones its model must get right.
pub struct Recorder {
    steps: usize,
    scene: String,
    scene_file: String,
    columns: Vec<String>,
    running: Vec<Track>,
    pieces: Shard,
    /// Episodes finished (recorded, whether or not long enough for a piece).
    pub episodes: usize,
}

impl Recorder {
    pub fn new(scene: &Scene, scene_arg: &str, steps: usize) -> Result<Recorder> {
        if steps == 0 {
            bail!("--record-steps must be at least 1");
        }
        let res = scene.resolution() as usize;
        let columns = layout_columns(scene);
        Ok(Recorder {
            steps,
            scene: scene.name().into(),
            scene_file: resolve_scene_path(scene_arg).display().to_string(),
            pieces: Shard {
                steps,
                frame_shape: [3, res, res],
                layout_width: columns.len(),
                ..Default::default()
            },
            columns,
            running: Vec::new(),
            episodes: 0,
        })
    }

    /// A new batch of `n` environments: every running episode starts empty.
    pub fn start(&mut self, n: usize) {
        self.running = (0..n).map(|_| Track::default()).collect();
    }

    /// Environment `i`'s observation and state: the first after its reset, then one after
    /// each [`Recorder::action`].
    pub fn frame(&mut self, i: usize, frame: &[u8], state: &EnvState) {
        let tr = &mut self.running[i];
        if tr.frames.is_empty() {
            tr.layout = layout_row(state);
        }
        tr.frames.extend_from_slice(frame);
        tr.states.extend(state.to_vec());
        tr.collided.push(state.collided as u8);
    }

    pub fn action(&mut self, i: usize, a: [f32; 2]) {
        self.running[i].actions.extend_from_slice(&a);
    }

    /// Environment `i`'s episode is over: its pieces join the record.
    pub fn finish(&mut self, i: usize) {
        let tr = std::mem::take(&mut self.running[i]);
        let t = self.steps;
        let frame_len: usize = self.pieces.frame_shape.iter().product();
        let sd = tr.states.len() / tr.collided.len().max(1);
        let actions = tr.actions.len() / 2;
        debug_assert_eq!(tr.collided.len(), actions + 1, "one frame more than actions");
        for c in 0..actions / t {
            let (f0, f1) = (c * t, c * t + t + 1);
            self.pieces
                .frames
                .extend_from_slice(&tr.frames[f0 * frame_len..f1 * frame_len]);
            self.pieces
                .actions
                .extend_from_slice(&tr.actions[2 * c * t..2 * (c * t + t)]);
            self.pieces.states.extend_from_slice(&tr.states[f0 * sd..f1 * sd]);
            self.pieces.collided.extend_from_slice(&tr.collided[f0..f1]);
            self.pieces.layout.extend_from_slice(&tr.layout);
            self.pieces.episodes += 1;
        }
        self.episodes += 1;
    }

    /// Pieces recorded so far.
    pub fn pieces(&self) -> usize {
        self.pieces.episodes
    }

    /// Writes the pieces as a dataset (one shard and `header.json`) to `out`; `policy` and
    /// `settings` say what played them.
    pub fn write(&self, out: &Path, policy: &str, seed: u64, settings: serde_json::Value) -> Result<DatasetHeader> {
        if self.pieces.episodes == 0 {
            bail!(
                "--record: no episode ran {} steps or more, so there is nothing to write to {}",
                self.steps,
                out.display()
            );
        }
        self.pieces.write_dataset(
            out,
            Provenance {
                scene: self.scene.clone(),
                scene_file: self.scene_file.clone(),
                seed,
                policy: policy.into(),
                settings,
                layout_columns: self.columns.clone(),
            },
        )
    }
}
