//! `amisim train --level 2`: trains the level-2 model on the frozen level-1 encoder's latents.
//!
//! The latents of every frame are computed once; each step then draws `batch` stretches of
//! `jumps · k` actions (the level-1 latents at their ends and every `k` steps between, and the
//! action chunks), computes the level-2 loss terms, stops on a non-finite loss, and takes an
//! AdamW step. The checkpoint (`level2.safetensors`) holds the weights, the step, the resolved
//! config and a fingerprint of the level-1 model it was trained on, and is written to a
//! temporary file and renamed.

use super::jepa::{seeded, stable_param_ids};
use super::store::steps_bar;
pub use crate::checkpoint::{
    check_level1, default_level2_path, level1_fingerprint, load_level2, save_level2, Level2Checkpoint,
    Level2TrainConfig, LEVEL2_CHECKPOINT,
};
use crate::data::Episodes;
use crate::probe::encode_all;
use crate::world_model::jepa::Jepa;
use crate::world_model::level2::{Level2, Level2Terms};
use anyhow::{bail, Context, Result};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
