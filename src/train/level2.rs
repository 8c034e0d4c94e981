//! `amisim train --level 2`: trains the level-2 model on the frozen level-1 encoder's latents.
//!
//! The latents of every frame are computed once; each step then draws `batch` stretches of
//! `jumps · k` actions (the level-1 latents at their ends and every `k` steps between, and the
//! action chunks), computes the level-2 loss terms, stops on a non-finite loss, and takes an
//! AdamW step. The checkpoint (`level2.safetensors`) holds the weights, the step, the resolved
//! config and a fingerprint of the level-1 model it was trained on, and is written to a
//! temporary file and renamed.

use super::data::Episodes;
use super::jepa::{seeded, stable_param_ids};
use super::store::{load_weights, read_with_metadata, save_module, steps_bar, warmup_cosine};
use crate::eval::probe::encode_all;
use crate::world_model::jepa::Jepa;
use crate::world_model::level2::{Level2, Level2Config, Level2Terms, Level2Weights};
use anyhow::{bail, Context, Result};
use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Name of the level-2 checkpoint in a run folder.
pub const LEVEL2_CHECKPOINT: &str = "level2.safetensors";

/// Where the level-2 model of a level-1 checkpoint lives by default: `level2.safetensors`
/// beside a run folder's `checkpoint.safetensors`, `<name>.level2.safetensors` beside any other
/// (the shipped `assets/<scene>.safetensors`).
pub fn default_level2_path(checkpoint: &Path) -> PathBuf {
    let dir = checkpoint.parent().unwrap_or(Path::new(""));
    match checkpoint.file_name().and_then(|n| n.to_str()) {
        Some(super::jepa::CHECKPOINT) | None => dir.join(LEVEL2_CHECKPOINT),
        Some(name) => dir.join(format!("{}.level2.safetensors", name.trim_end_matches(".safetensors"))),
    }
}

/// Everything a level-2 training run is defined by; saved in its checkpoint.
#[derive(Config, Debug)]
pub struct Level2TrainConfig {
    pub model: Level2Config,
    #[config(default = 3000)]
    pub steps: usize,
    #[config(default = 256)]
    pub batch: usize,
    /// Level-2 steps the predictor is unrolled per sample.
    #[config(default = 4)]
    pub jumps: usize,
    #[config(default = 1e-3)]
    pub lr: f64,
    #[config(default = 1e-5)]
    pub min_lr: f64,
    #[config(default = 100)]
    pub warmup: usize,
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    #[config(default = 1.0)]
    pub clip: f32,
    #[config(default = 0)]
    pub seed: u64,
    #[config(default = 100)]
    pub log_every: usize,
}

impl Level2TrainConfig {
    /// The default recipe on level-1 latents of `latent` dimensions.
    pub fn default_for(latent: usize) -> Level2TrainConfig {
        Level2TrainConfig::new(Level2Config::new(latent, Level2Weights::new()))
    }

    /// Learning rate at `step`: linear warm-up, then cosine decay to `min_lr`.
    pub fn lr_at(&self, step: usize) -> f64 {
        warmup_cosine(step, self.steps, self.warmup, self.lr, self.min_lr)
    }
}

/// A fingerprint of a level-1 model's weights (FNV-1a over every parameter, in the module's
/// order): a level-2 model only fits the level-1 model it was trained on.
pub fn level1_fingerprint(model: &Jepa) -> String {
    struct Fnv(u64);
    impl ModuleVisitor for Fnv {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            for x in crate::values(param.val()) {
                for b in x.to_bits().to_le_bytes() {
                    self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    model.visit(&mut h);
    format!("{:016x}", h.0)
}

/// Checks that the `what` stored at `path`, which reads `latent`-d level-1 latents and was
/// trained on the level-1 model with fingerprint `trained_on`, fits `level1`; the error says
/// how to train it again (`amisim train --level LEVEL`).
pub fn check_level1(
    path: &Path,
    what: &str,
    latent: usize,
    trained_on: &str,
    level1: &Jepa,
    level: &str,
) -> Result<()> {
    if level1.latent() != latent {
        bail!(
            "{}: the {what} reads {latent}-d level-1 latents, the level-1 model has {}",
            path.display(),
            level1.latent()
        );
    }
    let have = level1_fingerprint(level1);
    if have != trained_on {
        bail!(
            "{}: trained on the level-1 model with fingerprint {trained_on}, not on this one ({have}); train it again with `amisim train --level {level} --checkpoint …`",
            path.display()
        );
    }
    Ok(())
}

/// A loaded level-2 checkpoint.
pub struct Level2Checkpoint {
    pub config: Level2TrainConfig,
    pub step: usize,
    pub model: Level2,
    /// The level-1 model it was trained on ([`level1_fingerprint`]).
    pub level1: String,
}

/// Writes the level-2 model at `step` to `path` atomically.
pub fn save_level2(path: &Path, cfg: &Level2TrainConfig, step: usize, model: &Level2, level1: &str) -> Result<()> {
    let meta = HashMap::from([
        ("amisim.config".to_string(), cfg.to_string()),
        ("amisim.step".to_string(), step.to_string()),
        ("amisim.format".to_string(), "amisim-level2-v1".to_string()),
        ("amisim.level1".to_string(), level1.to_string()),
    ]);
    save_module(path, model, meta)
}

/// Reads a level-2 checkpoint; with `level1`, it must have been trained on that level-1 model
/// (a clear error says otherwise).
pub fn load_level2(path: &Path, level1: Option<&Jepa>, device: &Device) -> Result<Level2Checkpoint> {
    let (bytes, meta) = read_with_metadata(path, "level-2 checkpoint")?;
    if meta.get("amisim.format").map(String::as_str) != Some("amisim-level2-v1") {
        bail!(
            "{}: not a level-2 checkpoint (amisim.format is {:?}, expected amisim-level2-v1)",
            path.display(),
            meta.get("amisim.format")
        );
    }
    let config: Level2TrainConfig = serde_json::from_str(meta.get("amisim.config").map_or("", |s| s.as_str()))
        .with_context(|| format!("{}: the saved config does not parse", path.display()))?;
    config
        .model
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let trained_on = meta.get("amisim.level1").cloned().unwrap_or_default();
    if let Some(m) = level1 {
        check_level1(path, "level-2 model", config.model.latent, &trained_on, m, "2")?;
    }
    let step: usize = meta.get("amisim.step").and_then(|s| s.parse().ok()).unwrap_or(0);
    let model = load_weights(stable_param_ids(config.model.init(device)), bytes, path)?;
    Ok(Level2Checkpoint {
        config,
        step,
        model,
        level1: trained_on,
    })
}

/// The level-1 latents of a dataset and the actions, for drawing level-2 batches.
pub struct LatentEpisodes {
    pub episodes: usize,
    pub steps: usize,
    pub latent: usize,
    /// `[episodes, steps + 1, latent]`.
    pub z: Vec<f32>,
    /// `[episodes, steps, 2]`.
    pub actions: Vec<f32>,
}

impl LatentEpisodes {
    pub fn encode(model: &Jepa, data: &Episodes, device: &Device) -> LatentEpisodes {
        let (z, latent) = encode_all(model, data, device);
        LatentEpisodes {
            episodes: data.episodes,
            steps: data.steps,
            latent,
            z,
            actions: data.actions.clone(),
        }
    }

    /// A batch: latents `[batch, jumps + 1, latent]` `k` steps apart and the action chunks
    /// between them `[batch, jumps, k, 2]`.
    pub fn batch(
        &self,
        batch: usize,
        jumps: usize,
        k: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> (Tensor<3>, Tensor<4>) {
        let span = jumps * k;
        assert!(
            span <= self.steps,
            "{jumps} jumps of {k} steps need episodes of ≥ {span} steps"
        );
        let d = self.latent;
        let mut z = Vec::with_capacity(batch * (jumps + 1) * d);
        let mut a = Vec::with_capacity(batch * span * 2);
        for _ in 0..batch {
            let e = rng.random_range(0..self.episodes);
            let t0 = rng.random_range(0..=self.steps - span);
            for j in 0..=jumps {
                let row = e * (self.steps + 1) + t0 + j * k;
                z.extend_from_slice(&self.z[row * d..(row + 1) * d]);
            }
            let first = (e * self.steps + t0) * 2;
            a.extend_from_slice(&self.actions[first..first + span * 2]);
        }
        (
            Tensor::from_data(TensorData::new(z, [batch, jumps + 1, d]), device),
            Tensor::from_data(TensorData::new(a, [batch, jumps, k, 2]), device),
        )
    }
}

/// What a finished level-2 run reports.
pub struct Level2Summary {
    pub last: Option<Level2Terms>,
    pub seconds: f64,
    pub checkpoint: PathBuf,
    pub model: Level2,
}

/// Trains the level-2 model on `data`'s latents under the frozen `level1`, into the run folder
/// `out` (`level2.safetensors`, `level2_metrics.csv`, `level2_config.json`).
pub fn train_level2(
    cfg: &Level2TrainConfig,
    level1: &Jepa,
    data: &Episodes,
    out: &Path,
    show_progress: bool,
    device: &Device,
) -> Result<Level2Summary> {
    if let Err(e) = cfg.model.validate() {
        bail!("config: {e}");
    }
    if cfg.model.latent != level1.latent() {
        bail!(
            "level2.latent = {} but the level-1 model's latent has {} dimensions",
            cfg.model.latent,
            level1.latent()
        );
    }
    if cfg.jumps == 0 || cfg.batch == 0 {
        bail!("level-2 training needs jumps ≥ 1 and batch ≥ 1");
    }
    if cfg.jumps * cfg.model.k > data.steps {
        bail!(
            "{} jumps of k = {} steps need episodes of ≥ {} steps; the data has {} (collect longer episodes with --episode-steps)",
            cfg.jumps,
            cfg.model.k,
            cfg.jumps * cfg.model.k,
            data.steps
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ckpt = out.join(LEVEL2_CHECKPOINT);
    let fingerprint = level1_fingerprint(level1);
    let started = Instant::now();
    let latents = LatentEpisodes::encode(level1, data, device);
    let ad = device.clone().autodiff();
    let mut model = stable_param_ids(seeded(&ad, cfg.seed, || cfg.model.init(&ad)));
    let mut optim = super::store::adamw(cfg.weight_decay, cfg.clip).init();
    std::fs::write(out.join("level2_config.json"), cfg.to_string())?;
    let mut csv = std::fs::File::create(out.join("level2_metrics.csv"))?;
    writeln!(
        csv,
        "step,lr,{}",
        Level2Terms::NAMES.map(|n| format!("loss/{n}")).join(",")
    )?;
    let bar = steps_bar("level 2", cfg.steps, show_progress);
    let mut last = None;
    // The last model whose loss was finite, and its step.
    let mut good: Option<(usize, Level2)> = None;
    for step in 0..cfg.steps {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(step as u64 + 1);
        let (z, chunks) = latents.batch(cfg.batch, cfg.jumps, cfg.model.k, &mut rng, &ad);
        let (loss, terms) = model.loss(z, chunks, &cfg.model);
        if !terms.total.is_finite() {
            bar.abandon();
            if let Some((at, m)) = &good {
                save_level2(&ckpt, cfg, *at, m, &fingerprint)?;
            }
            bail!(
                "level-2 loss is {} at step {step} ({terms:?}); training stopped{}",
                terms.total,
                if good.is_some() {
                    format!(", the last good model is in {}", ckpt.display())
                } else {
                    String::new()
                }
            );
        }
        let lr = cfg.lr_at(step);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        last = Some(terms);
        let done = step + 1;
        if done % cfg.log_every == 0 || done == cfg.steps {
            let vals = terms.values().map(|v| format!("{v:.5}")).join(",");
            writeln!(csv, "{done},{lr:.3e},{vals}")?;
            csv.flush()?;
            let msg = format!(
                "loss {:.4} pred {:.4} var {:.3} cov {:.4} macro var {:.3}",
                terms.total, terms.prediction, terms.variance, terms.covariance, terms.macro_variance
            );
            bar.set_message(msg.clone());
            if bar.is_hidden() {
                eprintln!("level 2 step {done}/{}: lr {lr:.2e} {msg}", cfg.steps);
            }
            good = Some((done, model.valid()));
        }
        bar.set_position(done as u64);
    }
    bar.finish();
    let model = model.valid();
    save_level2(&ckpt, cfg, cfg.steps, &model, &fingerprint)?;
    Ok(Level2Summary {
        last,
        seconds: started.elapsed().as_secs_f64(),
        checkpoint: ckpt,
        model,
    })
}
