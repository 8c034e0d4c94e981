//! `amisim train`: self-supervised training of the JEPA world model, a custom burn loop.
//!
//! Each step: 1. draw a batch of windows, 2. encode, roll the predictor out open-loop and compute
//! every loss term, 3. stop on a non-finite loss (the last checkpoint stays), 4. backward and an
//! AdamW step with the scheduled learning rate and clipped gradients, 5. log.
//! Checkpoints are single safetensors files holding the weights, the optimizer state, the
//! step and the resolved config, written to a temporary file and renamed.

use super::store::steps_bar;
use crate::checkpoint::check_model_config;
pub use crate::checkpoint::{
    cpu_device, device_named, load_checkpoint, read_config_file, save_checkpoint, seeded, stable_param_ids, Checkpoint,
    TrainConfig, CHECKPOINT,
};
use crate::data::Episodes;
use crate::world_model::jepa::{ema_momentum_at, ema_update, LossTerms, LOSS_NAMES};
use anyhow::{bail, Context, Result};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps: usize,
    pub last: Option<LossTerms>,
    pub frames_per_s: f64,
    pub ms_per_step: f64,
    pub checkpoint: PathBuf,
}

/// Trains from `data` into the run folder `out` (`checkpoint.safetensors`, `metrics.csv`,
/// `config.json`). With `resume`, continues from the checkpoint there exactly.
pub fn train(
    cfg: &TrainConfig,
    data: &Episodes,
    out: &Path,
    resume: bool,
    show_progress: bool,
) -> Result<TrainSummary> {
    train_on(cfg, data, out, resume, show_progress, &cpu_device())
}

/// [`train`] on a chosen device (see [`device_named`]).
pub fn train_on(
    cfg: &TrainConfig,
    data: &Episodes,
    out: &Path,
    resume: bool,
    show_progress: bool,
    device: &Device,
) -> Result<TrainSummary> {
    if cfg.window < 2 || cfg.window > data.steps + 1 {
        bail!(
            "window {} must be in 2..={} (frames per episode)",
            cfg.window,
            data.steps + 1
        );
    }
    if let Err(e) = cfg.validate() {
        bail!("config: {e}");
    }
    if cfg.model.encoder.resolution != data.frame_shape[1] || cfg.model.encoder.in_channels != data.frame_shape[0] {
        bail!(
            "the encoder expects {}×{}×{} frames, the data has {:?}",
            cfg.model.encoder.in_channels,
            cfg.model.encoder.resolution,
            cfg.model.encoder.resolution,
            data.frame_shape
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ckpt_path = out.join(CHECKPOINT);
    let device = device.clone().autodiff();
    // A run killed before its first checkpoint resumes from the start.
    let resumed = if resume && ckpt_path.exists() {
        Some(load_checkpoint(&ckpt_path, None, &device)?)
    } else {
        if resume {
            eprintln!("{}: no checkpoint yet; starting from step 0", out.display());
        }
        None
    };
    // Input normalisation comes from the data unless the config fixes it; a resumed run reads
    // it from the checkpoint's config, whose model config must then match.
    let mut cfg = cfg.clone();
    if cfg.model.encoder.input_mean.is_empty() {
        let (mean, std) = match &resumed {
            Some(ck) => (
                ck.config.model.encoder.input_mean.clone(),
                ck.config.model.encoder.input_std.clone(),
            ),
            None => data.channel_stats(),
        };
        cfg.model.encoder.input_mean = mean;
        cfg.model.encoder.input_std = std;
    }
    let cfg = &cfg;
    let optim_cfg = super::store::adamw(cfg.weight_decay, cfg.clip);
    let (mut model, mut optim, start) = match resumed {
        Some(ck) => {
            check_model_config(&ckpt_path, &ck.config.model, &cfg.model)?;
            let mut optim = optim_cfg.init();
            if let Some(b) = ck.optimizer {
                optim = optim
                    .from_bytes(burn::tensor::Bytes::from_bytes_vec(b))
                    .map_err(|e| anyhow::anyhow!("{}: optimizer state: {e:?}", ckpt_path.display()))?;
            }
            (ck.model, optim, ck.step)
        }
        None => (
            stable_param_ids(seeded(&device, cfg.seed, || cfg.model.init(&device))),
            optim_cfg.init(),
            0,
        ),
    };
    crate::write_file_atomic(&out.join("config.json"), cfg.to_string())?;
    let csv_path = out.join("metrics.csv");
    let mut csv = if resume && csv_path.exists() {
        keep_csv_rows_before(&csv_path, start)?;
        std::fs::OpenOptions::new().append(true).open(&csv_path)?
    } else {
        let mut f = std::fs::File::create(&csv_path)?;
        writeln!(
            f,
            "step,lr,{},frames_per_s",
            LOSS_NAMES.map(|n| format!("loss/{n}")).join(",")
        )?;
        f
    };
    let bar = steps_bar("train", cfg.steps, show_progress);
    bar.set_position(start as u64);
    let frames_per_step = cfg.batch * cfg.window;
    let started = Instant::now();
    let mut last = None;
    let mut window_start = Instant::now();
    // The batch of step `s` depends only on (seed, s), so a resumed run sees the same data.
    // The next step's batch (its windows, its JPEG round trips) is built on a thread of its own
    // while this step computes.
    let host_batch = |step: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(step as u64 + 1);
        data.host_batch(cfg.batch, cfg.window, cfg.jpeg, &mut rng)
    };
    // Earlier batches' context latents, the context contrast's further negatives (empty at
    // the start and after a resume: see `JepaConfig::context_queue`).
    let mut queue: std::collections::VecDeque<Tensor<2>> = std::collections::VecDeque::new();
    std::thread::scope(|scope| -> Result<()> {
        let mut next = (start < cfg.steps).then(|| scope.spawn(move || host_batch(start)));
        for step in start..cfg.steps {
            let batch = next
                .take()
                .expect("the step's batch")
                .join()
                .expect("the batch thread")?;
            if step + 1 < cfg.steps {
                next = Some(scope.spawn(move || host_batch(step + 1)));
            }
            let (frames, actions) = batch.tensors(&device);
            let negatives = (!queue.is_empty()).then(|| Tensor::cat(queue.iter().cloned().collect(), 0));
            let (loss, terms, context) = model.loss_with_negatives(frames, actions, &cfg.model, negatives);
            if let (Some(c), true) = (context, cfg.model.context_queue > 0) {
                queue.push_back(c);
                while queue.iter().map(|q| q.dims()[0]).sum::<usize>() > cfg.model.context_queue {
                    queue.pop_front();
                }
            }
            if !terms.total.is_finite() {
                bar.abandon();
                bail!(
                    "loss is {} at step {step} ({terms:?}); training stopped, the last good checkpoint ({}) is kept",
                    terms.total,
                    ckpt_path.display()
                );
            }
            let lr = cfg.lr_at(step);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            if let (Some(m0), Some(target)) = (cfg.model.ema_momentum, model.target.take()) {
                let m = ema_momentum_at(m0, step, cfg.steps);
                model.target = Some(ema_update(target, &model.encoder, m));
            }
            last = Some(terms);
            let done = step + 1;
            if done % cfg.log_every == 0 || done == cfg.steps {
                let n = (done - start).min(cfg.log_every).max(1);
                let fps = (n * frames_per_step) as f64 / window_start.elapsed().as_secs_f64();
                window_start = Instant::now();
                let vals = terms.values().map(|v| format!("{v:.5}")).join(",");
                writeln!(csv, "{done},{lr:.3e},{vals},{fps:.1}")?;
                csv.flush()?;
                let spatial = if model.spatial.is_some() {
                    format!(" spatial {:.4} spvar {:.3}", terms.spatial, terms.spatial_variance)
                } else {
                    String::new()
                };
                let msg = format!(
                "loss {:.4} pred {:.4} var {:.3} cov {:.4} smooth {:.4} idm {:.4} sigreg {:.4} ctx {:.4} nce {:.4}{spatial} | {fps:.0} frames/s",
                terms.total,
                terms.prediction,
                terms.variance,
                terms.covariance,
                terms.smoothness,
                terms.idm,
                terms.sigreg,
                terms.context,
                terms.context_contrast
            );
                bar.set_message(msg.clone());
                if bar.is_hidden() {
                    // No terminal (a log file, CI): one line every `log_every` steps instead.
                    eprintln!("step {done}/{}: lr {lr:.2e} {msg}", cfg.steps);
                }
            }
            bar.set_position(done as u64);
            if done % cfg.checkpoint_every == 0 || done == cfg.steps {
                save_checkpoint(&ckpt_path, cfg, done, &model, Some(&optim))?;
            }
        }
        Ok(())
    })?;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    let steps = cfg.steps.saturating_sub(start).max(1);
    Ok(TrainSummary {
        steps: cfg.steps,
        last,
        frames_per_s: (steps * frames_per_step) as f64 / secs,
        ms_per_step: secs * 1e3 / steps as f64,
        checkpoint: ckpt_path,
    })
}

/// Drops CSV rows logged after `step` (they belong to a run that stopped before its next
/// checkpoint), so a resumed log has each step once.
fn keep_csv_rows_before(path: &Path, step: usize) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || l.split(',')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok())
                    .is_some_and(|s| s <= step)
        })
        .map(|(_, l)| l)
        .collect();
    std::fs::write(path, kept.join("\n") + "\n")?;
    Ok(())
}
