//! Datasets of exploration episodes as safetensors shards, openable from Python with the
//! `safetensors` package. Every episode of a dataset has the same length.
//!
//! Tensors of a shard with `E` episodes of `T` steps (`T + 1` frames):
//! - `frames`   u8  `[E, T+1, 3, H, W]` — observations, first one after reset
//! - `actions`  f32 `[E, T, 2]`          — action taken after frame `t`
//! - `states`   f32 `[E, T+1, 7]`        — ground truth (see `state_names` in the header)
//! - `collided` u8  `[E, T+1]`           — the step into frame `t` was blocked
//! - `layout`   f32 `[E, L]`             — drawn walls: per wall axis (0 vertical, 1 horizontal), centre, door centres
//! - `episode_start` i64 `[E]`           — index of each episode's first frame in the whole dataset
//!
//! The shard's safetensors metadata holds the dataset header as JSON under `amisim`.

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a dataset holds and how it was made: written as `header.json` beside the shards and
/// into every shard's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetHeader {
    pub format: String,
    pub scene: String,
    pub scene_file: String,
    pub seed: u64,
    pub policy: String,
    pub settings: serde_json::Value,
    pub episodes: usize,
    pub steps_per_episode: usize,
    pub frame_shape: [usize; 3],
    pub state_names: Vec<String>,
    pub layout_columns: Vec<String>,
    pub shards: Vec<String>,
}

pub const FORMAT: &str = "amisim-episodes-v1";

/// One shard's worth of episodes, filled in episode order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Shard {
    pub episodes: usize,
    pub steps: usize,
    pub frame_shape: [usize; 3],
    pub frames: Vec<u8>,
    pub actions: Vec<f32>,
    pub states: Vec<f32>,
    pub collided: Vec<u8>,
    pub layout: Vec<f32>,
    pub layout_width: usize,
    pub first_episode: usize,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Shard {
    /// Episodes `first..last` as a shard of their own.
    pub fn slice(&self, first: usize, last: usize) -> Shard {
        let t = self.steps;
        let fl: usize = self.frame_shape.iter().product::<usize>() * (t + 1);
        let sl = self.states.len() / self.episodes.max(1);
        Shard {
            episodes: last - first,
            steps: t,
            frame_shape: self.frame_shape,
            frames: self.frames[first * fl..last * fl].to_vec(),
            actions: self.actions[first * t * 2..last * t * 2].to_vec(),
            states: self.states[first * sl..last * sl].to_vec(),
            collided: self.collided[first * (t + 1)..last * (t + 1)].to_vec(),
            layout: self.layout[first * self.layout_width..last * self.layout_width].to_vec(),
            layout_width: self.layout_width,
            first_episode: self.first_episode + first,
        }
    }

    /// Writes the shard atomically (to a temporary file, then renamed).
    pub fn write(&self, path: &Path, header: &DatasetHeader) -> Result<()> {
        let (e, t) = (self.episodes, self.steps);
        let [c, h, w] = self.frame_shape;
        let actions = f32_bytes(&self.actions);
        let states = f32_bytes(&self.states);
        let layout = f32_bytes(&self.layout);
        let starts: Vec<u8> = (0..e)
            .flat_map(|k| (((self.first_episode + k) * (t + 1)) as i64).to_le_bytes())
            .collect();
        let sd = super::super::world::sim::STATE_DIM;
        let tensors = vec![
            (
                "frames",
                TensorView::new(Dtype::U8, vec![e, t + 1, c, h, w], &self.frames)?,
            ),
            ("actions", TensorView::new(Dtype::F32, vec![e, t, 2], &actions)?),
            ("states", TensorView::new(Dtype::F32, vec![e, t + 1, sd], &states)?),
            ("collided", TensorView::new(Dtype::U8, vec![e, t + 1], &self.collided)?),
            (
                "layout",
                TensorView::new(Dtype::F32, vec![e, self.layout_width], &layout)?,
            ),
            ("episode_start", TensorView::new(Dtype::I64, vec![e], &starts)?),
        ];
        let mut meta = HashMap::new();
        meta.insert("amisim".to_string(), serde_json::to_string(header)?);
        let tmp = path.with_extension("safetensors.tmp");
        safetensors::serialize_to_file(tensors, Some(meta), &tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// Reads a shard written by [`Shard::write`].
    pub fn read(path: &Path) -> Result<(Shard, DatasetHeader)> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .with_context(|| format!("{}: not a safetensors file", path.display()))?;
        let header: DatasetHeader = serde_json::from_str(
            meta.metadata()
                .as_ref()
                .and_then(|m| m.get("amisim"))
                .with_context(|| format!("{}: no amisim header in the metadata", path.display()))?,
        )
        .with_context(|| format!("{}: malformed amisim header", path.display()))?;
        if header.format != FORMAT {
            bail!("{}: format `{}`, expected `{FORMAT}`", path.display(), header.format);
        }
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
        // Each tensor is there, of its dtype and of a shape that agrees with the frames'.
        let get = |name: &str, dtype: Dtype, dims: usize| {
            let t = st
                .tensor(name)
                .with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
            if t.dtype() != dtype || t.shape().len() != dims {
                bail!(
                    "{}: `{name}` is {:?} of shape {:?}, expected {dtype:?} with {dims} dimensions",
                    path.display(),
                    t.dtype(),
                    t.shape()
                );
            }
            Ok(t)
        };
        let frames = get("frames", Dtype::U8, 5)?;
        let shape = frames.shape().to_vec();
        let (e, t1) = (shape[0], shape[1]);
        if t1 < 2 {
            bail!(
                "{}: `frames` has shape {shape:?}: an episode needs at least 2 frames",
                path.display()
            );
        }
        let actions = get("actions", Dtype::F32, 3)?;
        let states = get("states", Dtype::F32, 3)?;
        let collided = get("collided", Dtype::U8, 2)?;
        let layout = get("layout", Dtype::F32, 2)?;
        let starts = get("episode_start", Dtype::I64, 1)?;
        let steps = [e, t1 - 1];
        let agree = [
            ("actions", actions.shape(), steps.as_slice(), Some(2)),
            ("states", states.shape(), &[e, t1], None),
            ("collided", collided.shape(), &[e, t1], None),
            ("layout", layout.shape(), &[e], None),
            ("episode_start", starts.shape(), &[e], None),
        ];
        for (name, got, lead, last) in agree {
            if got[..lead.len()] != *lead || last.is_some_and(|l| got[got.len() - 1] != l) {
                bail!(
                    "{}: `{name}` has shape {got:?}, which disagrees with `frames` {shape:?}",
                    path.display()
                );
            }
        }
        let to_f32 = |b: &[u8]| crate::le_f32s(b).collect::<Vec<_>>();
        let first = starts
            .data()
            .get(..8)
            .map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap()).max(0) as usize);
        Ok((
            Shard {
                episodes: e,
                steps: t1 - 1,
                frame_shape: [shape[2], shape[3], shape[4]],
                frames: frames.data().to_vec(),
                actions: to_f32(actions.data()),
                states: to_f32(states.data()),
                collided: collided.data().to_vec(),
                layout: to_f32(layout.data()),
                layout_width: layout.shape()[1],
                first_episode: first / t1,
            },
            header,
        ))
    }
}

/// Where a dataset's episodes come from: what its header says besides what the episodes
/// themselves determine.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub scene: String,
    pub scene_file: String,
    pub seed: u64,
    pub policy: String,
    pub settings: serde_json::Value,
    pub layout_columns: Vec<String>,
}

impl Shard {
    /// Writes the shard as a dataset folder of its own: `out/shard-00000.safetensors` and
    /// `header.json`, each atomically.
    pub fn write_dataset(&self, out: &Path, from: Provenance) -> Result<DatasetHeader> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let shard = shard_path(out, 0);
        let header = DatasetHeader {
            format: FORMAT.into(),
            scene: from.scene,
            scene_file: from.scene_file,
            seed: from.seed,
            policy: from.policy,
            settings: from.settings,
            episodes: self.episodes,
            steps_per_episode: self.steps,
            frame_shape: self.frame_shape,
            state_names: crate::world::sim::STATE_NAMES.iter().map(|s| s.to_string()).collect(),
            layout_columns: from.layout_columns,
            shards: vec![shard.file_name().unwrap().to_string_lossy().into_owned()],
        };
        self.write(&shard, &header)?;
        write_header(out, &header)?;
        Ok(header)
    }
}

/// Path of shard `k` in `dir`.
pub fn shard_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("shard-{k:05}.safetensors"))
}

/// Writes `header.json` atomically.
pub fn write_header(dir: &Path, header: &DatasetHeader) -> Result<()> {
    crate::write_file_atomic(&dir.join("header.json"), serde_json::to_string_pretty(header)?)
}
