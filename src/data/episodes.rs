//! Episodes in memory for training and probing, loaded from a collected dataset (or collected
//! on the fly), and batches of windows cut from them.

use super::collect::{collect_in_memory, CollectConfig};
use super::dataset::{DatasetHeader, Shard};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use rand::{Rng, RngExt};
use std::path::Path;

/// A batch of windows in host memory: frames `[B, T, C, H, W]` in 0..1, actions `[B, T−1, 2]`.
pub struct HostBatch {
    pub frames: Vec<f32>,
    pub actions: Vec<f32>,
    pub batch: usize,
    pub window: usize,
    pub frame_shape: [usize; 3],
}

impl HostBatch {
    pub fn tensors(self, device: &Device) -> (Tensor<5>, Tensor<3>) {
        let [c, h, w] = self.frame_shape;
        let (b, t) = (self.batch, self.window);
        (
            Tensor::from_data(TensorData::new(self.frames, [b, t, c, h, w]), device),
            Tensor::from_data(TensorData::new(self.actions, [b, t - 1, 2]), device),
        )
    }
}

/// Below this spread (in units of the full 0–1 range) a channel counts as constant.
pub const CONSTANT_CHANNEL_STD: f32 = 0.01;

/// Equal-length episodes: frames `[E, T+1, C, H, W]` u8, actions `[E, T, 2]`, states
/// `[E, T+1, S]`.
#[derive(Debug, Clone, Default)]
pub struct Episodes {
    pub episodes: usize,
    pub steps: usize,
    pub frame_shape: [usize; 3],
    pub state_dim: usize,
    pub frames: Vec<u8>,
    pub actions: Vec<f32>,
    pub states: Vec<f32>,
    pub scene: String,
    /// The ground-truth layout of each episode (wall positions, door rows), `[E, layout_width]`,
    /// one value per entry of `layout_columns`.
    pub layout: Vec<f32>,
    pub layout_width: usize,
    pub layout_columns: Vec<String>,
}

impl Episodes {
    /// Loads every shard of a dataset folder written by `amisim collect`.
    pub fn load(dir: &Path) -> Result<Episodes> {
        Episodes::load_all(&[dir])
    }

    /// A dataset folder's `header.json`.
    pub fn header(dir: &Path) -> Result<DatasetHeader> {
        let header_path = dir.join("header.json");
        let text = match std::fs::read_to_string(&header_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} has no header.json: not a dataset folder, or its collection did not finish \
                 (the header is written last; run `amisim collect` again)",
                dir.display()
            ),
            r => r.with_context(|| format!("reading {}", header_path.display()))?,
        };
        serde_json::from_str(&text).with_context(|| format!("{}: not a dataset header", header_path.display()))
    }

    /// Loads several dataset folders as one (the same scene, episode length and frame shape):
    /// exploration episodes beside episodes a planner played (`eval --record`).
    pub fn load_all(dirs: &[impl AsRef<Path>]) -> Result<Episodes> {
        let mut all = Episodes::default();
        for dir in dirs {
            let dir = dir.as_ref();
            let header = Episodes::header(dir)?;
            if all.episodes == 0 {
                all.scene = header.scene.clone();
                all.layout_columns = header.layout_columns.clone();
            } else if (&header.scene, &header.layout_columns) != (&all.scene, &all.layout_columns) {
                bail!(
                    "{}: scene {} with layout columns {:?}, but the datasets before it hold {} with {:?}",
                    dir.display(),
                    header.scene,
                    header.layout_columns,
                    all.scene,
                    all.layout_columns
                );
            } else if (header.steps_per_episode, header.frame_shape) != (all.steps, all.frame_shape) {
                bail!(
                    "{}: episodes of {} steps of {:?} frames, but the datasets before it hold {} steps of {:?}",
                    dir.display(),
                    header.steps_per_episode,
                    header.frame_shape,
                    all.steps,
                    all.frame_shape
                );
            }
            let before = all.episodes;
            let header_path = dir.join("header.json");
            for name in &header.shards {
                if Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)) {
                    bail!(
                        "{}: shard `{name}` is not a file name in the dataset folder",
                        header_path.display()
                    );
                }
                let (shard, _) = Shard::read(&dir.join(name))
                    .with_context(|| format!("{}: shard `{name}` it lists", header_path.display()))?;
                all.append(shard)?;
            }
            if all.episodes == before {
                bail!("{}: the dataset holds no episodes", dir.display());
            }
        }
        if all.episodes == 0 {
            bail!("no dataset given");
        }
        Ok(all)
    }

    /// Collects episodes with the Bevy world, without writing files.
    pub fn collect(cfg: &CollectConfig) -> Result<Episodes> {
        let (shard, header) = collect_in_memory(cfg, false)?;
        let mut all = Episodes {
            scene: header.scene,
            layout_columns: header.layout_columns,
            ..Default::default()
        };
        all.append(shard)?;
        Ok(all)
    }

    fn append(&mut self, s: Shard) -> Result<()> {
        let state_dim = if s.episodes > 0 {
            s.states.len() / (s.episodes * (s.steps + 1))
        } else {
            0
        };
        if self.episodes == 0 {
            self.steps = s.steps;
            self.frame_shape = s.frame_shape;
            self.state_dim = state_dim;
            self.layout_width = s.layout_width;
        } else if (self.steps, self.frame_shape, self.state_dim, self.layout_width)
            != (s.steps, s.frame_shape, state_dim, s.layout_width)
        {
            bail!("shards disagree on episode length, frame shape or layout columns");
        }
        self.episodes += s.episodes;
        self.frames.extend(s.frames);
        self.actions.extend(s.actions);
        self.states.extend(s.states);
        self.layout.extend(s.layout);
        Ok(())
    }

    pub fn frame_len(&self) -> usize {
        self.frame_shape.iter().product()
    }

    /// Frame `t` of episode `e`, `[C, H, W]`.
    pub fn frame(&self, e: usize, t: usize) -> &[u8] {
        let n = self.frame_len();
        let i = e * (self.steps + 1) + t;
        &self.frames[i * n..(i + 1) * n]
    }

    /// Ground-truth state `t` of episode `e`.
    pub fn state(&self, e: usize, t: usize) -> &[f32] {
        let i = e * (self.steps + 1) + t;
        &self.states[i * self.state_dim..(i + 1) * self.state_dim]
    }

    /// Action `t` of episode `e`.
    pub fn action(&self, e: usize, t: usize) -> [f32; 2] {
        let i = (e * self.steps + t) * 2;
        [self.actions[i], self.actions[i + 1]]
    }

    /// Per-channel mean and std of the frames (values in `0..=1`), from at most 2 000 frames
    /// spread over the data.
    ///
    /// A channel whose spread is under [`CONSTANT_CHANNEL_STD`] (a level of 2.5 in 255) keeps
    /// its scale (std 1).
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.frame_shape;
        let frames = self.episodes * (self.steps + 1);
        let stride = (frames / 2000).max(1);
        let (mut sum, mut sq, mut n) = (vec![0f64; c], vec![0f64; c], 0f64);
        for f in (0..frames).step_by(stride) {
            let px = &self.frames[f * c * h * w..(f + 1) * c * h * w];
            for ch in 0..c {
                for &v in &px[ch * h * w..(ch + 1) * h * w] {
                    let v = v as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
            n += (h * w) as f64;
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| {
                let std = (q / n - (s / n).powi(2)).max(0.0).sqrt() as f32;
                // A channel that (nearly) never changes carries nothing: dividing it by its
                // tiny spread would turn a level of compression noise into several units of
                // input (JPEG's chroma noise in a constant channel was ×1000 with a 1e-3 floor).
                if std < CONSTANT_CHANNEL_STD {
                    1.0
                } else {
                    std
                }
            })
            .collect();
        (mean, std)
    }

    /// Splits into (first `n` episodes, the rest).
    pub fn split(&self, n: usize) -> (Episodes, Episodes) {
        let n = n.min(self.episodes);
        let (fl, sl, al) = (
            self.frame_len() * (self.steps + 1),
            self.state_dim * (self.steps + 1),
            self.steps * 2,
        );
        let part = |a: usize, b: usize| Episodes {
            episodes: b - a,
            steps: self.steps,
            frame_shape: self.frame_shape,
            state_dim: self.state_dim,
            frames: self.frames[a * fl..b * fl].to_vec(),
            actions: self.actions[a * al..b * al].to_vec(),
            states: self.states[a * sl..b * sl].to_vec(),
            scene: self.scene.clone(),
            layout: self.layout
                [(a * self.layout_width).min(self.layout.len())..(b * self.layout_width).min(self.layout.len())]
                .to_vec(),
            layout_width: self.layout_width,
            layout_columns: self.layout_columns.clone(),
        };
        (part(0, n), part(n, self.episodes))
    }

    /// A batch of `batch` windows of `window` frames (and `window − 1` actions), drawn with `rng`:
    /// frames `[batch, window, C, H, W]` scaled to `0..=1`, actions `[batch, window − 1, 2]`.
    pub fn batch(&self, batch: usize, window: usize, rng: &mut impl Rng, device: &Device) -> (Tensor<5>, Tensor<3>) {
        self.host_batch(batch, window, None, rng)
            .expect("no JPEG round trip, nothing to fail")
            .tensors(device)
    }

    /// [`Episodes::batch`]'s values in host memory (a training loop builds the next batch on
    /// another thread while the current step runs), each window passed through JPEG as `jpeg`
    /// draws it (decided after the windows are drawn, so that without it the draws are those
    /// of [`Episodes::batch`]).
    pub fn host_batch(
        &self,
        batch: usize,
        window: usize,
        jpeg: Option<crate::jpeg::JpegAugment>,
        rng: &mut impl Rng,
    ) -> Result<HostBatch> {
        assert!(
            window >= 2 && window <= self.steps + 1,
            "window {window} does not fit episodes of {} frames",
            self.steps + 1
        );
        let [c, h, w] = self.frame_shape;
        let mut frames = Vec::with_capacity(batch * window * self.frame_len());
        let mut actions = Vec::with_capacity(batch * (window - 1) * 2);
        for _ in 0..batch {
            let e = rng.random_range(0..self.episodes);
            let t0 = rng.random_range(0..=self.steps + 1 - window);
            for t in t0..t0 + window {
                frames.extend_from_slice(self.frame(e, t));
            }
            for t in t0..t0 + window - 1 {
                actions.extend_from_slice(&self.action(e, t));
            }
        }
        if let Some(j) = jpeg {
            for win in frames.chunks_mut(window * self.frame_len()) {
                if rng.random::<f32>() < j.p {
                    let q = rng.random_range(j.min_quality..=100);
                    crate::jpeg::round_trip_all(win, [window, c, h, w], q)?;
                }
            }
        }
        Ok(HostBatch {
            frames: frames.iter().map(|&v| v as f32 / 255.0).collect(),
            actions,
            batch,
            window,
            frame_shape: [c, h, w],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Two episodes of 3 frames, 3×4×4: channel 0 a moving dot, channel 1 a fixed wall,
    /// channel 2 always 0.
    fn episodes() -> Episodes {
        let (c, h, w) = (3, 4, 4);
        let mut frames = vec![0u8; 2 * 3 * c * h * w];
        for f in 0..6 {
            let base = f * c * h * w;
            frames[base + f % (h * w)] = 255;
            for y in 0..h {
                frames[base + h * w + y * w + 2] = 200;
            }
        }
        Episodes {
            episodes: 2,
            steps: 2,
            frame_shape: [c, h, w],
            state_dim: 1,
            frames,
            actions: vec![0.5; 2 * 2 * 2],
            states: vec![0.0; 6],
            scene: "test".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_constant_channel_keeps_its_scale() {
        let (mean, std) = episodes().channel_stats();
        assert_eq!(mean[2], 0.0);
        assert_eq!(std[2], 1.0, "a constant channel is not divided by a tiny spread");
        assert!(std[0] > CONSTANT_CHANNEL_STD && std[0] < 1.0);
        assert!(std[1] > CONSTANT_CHANNEL_STD && std[1] < 1.0);
    }

    #[test]
    fn jpeg_windows_are_drawn_after_the_windows_and_change_only_them() {
        let e = episodes();
        let draw = |jpeg| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            e.host_batch(4, 3, jpeg, &mut rng).unwrap()
        };
        let plain = draw(None);
        let same = draw(None);
        assert_eq!(plain.frames, same.frames);
        let all = draw(Some(crate::jpeg::JpegAugment {
            p: 1.0,
            min_quality: 10,
        }));
        assert_eq!(plain.actions, all.actions, "the same windows");
        assert_ne!(plain.frames, all.frames, "every window through JPEG");
        let none = draw(Some(crate::jpeg::JpegAugment {
            p: 0.0,
            min_quality: 10,
        }));
        assert_eq!(plain.frames, none.frames);
        let again = draw(Some(crate::jpeg::JpegAugment {
            p: 1.0,
            min_quality: 10,
        }));
        assert_eq!(all.frames, again.frames, "deterministic");
    }
}
