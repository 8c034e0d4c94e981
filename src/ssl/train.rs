//! The pretraining loop: AdamW with warm-up and cosine decay, clipped gradients, the EMA
//! targets stepped after each update; a non-finite loss stops it with an error naming the step.
//! The batch and the random draws (masks, augmentations) of step `s` depend only on the seed
//! and `s`, so a run is reproducible.

use super::model::{Objective, SslConfig, SslModel, Terms};
use crate::data::Episodes;
use crate::train::jepa::{seeded, stable_param_ids};
use crate::train::store::{adamw, steps_bar, warmup_cosine};
use anyhow::{bail, Result};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// How long each objective trains: a number of steps, or a wall-clock budget (turned into a
/// number of steps by timing a few steps first, so the learning-rate schedule runs its course).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    Steps(usize),
    Seconds(f64),
}

impl Budget {
    /// `"500 steps"`, `"120 s"`.
    pub fn describe(&self) -> String {
        match self {
            Budget::Steps(s) => format!("{s} steps"),
            Budget::Seconds(s) => format!("{s:.0} s"),
        }
    }
}

/// What a pretraining run gives back.
#[derive(Debug)]
pub struct Pretrained {
    /// The trained model, off autodiff.
    pub model: SslModel,
    pub config: SslConfig,
    pub steps: usize,
    pub seconds: f64,
    pub frames_per_s: f64,
    pub ms_per_step: f64,
    /// The loss terms of the first and the last step.
    pub first: Terms,
    pub last: Terms,
}

/// Steps that fit in `seconds` for `cfg` on `data`, from timing 3 steps after one warm-up step.
pub fn steps_for(cfg: &SslConfig, data: &Episodes, seconds: f64) -> Result<usize> {
    let probe = run(cfg, data, 4, 4, false)?;
    let per_step = probe.seconds / 4.0;
    Ok(((seconds / per_step.max(1e-6)) as usize).max(1))
}

/// Pretrains `cfg.objective` on `data` for `budget`.
pub fn pretrain(cfg: &SslConfig, data: &Episodes, budget: Budget, show_progress: bool) -> Result<Pretrained> {
    let steps = match budget {
        _ if cfg.objective == Objective::Random => 0,
        Budget::Steps(s) => s,
        Budget::Seconds(s) => steps_for(cfg, data, s)?,
    };
    run(cfg, data, steps, steps, show_progress)
}

/// `steps` steps of a schedule laid out for `schedule` steps.
fn run(cfg: &SslConfig, data: &Episodes, steps: usize, schedule: usize, show_progress: bool) -> Result<Pretrained> {
    if let Err(e) = cfg.validate() {
        bail!("config: {e}");
    }
    if steps == 0 && cfg.objective != Objective::Random {
        bail!("ssl: steps must be ≥ 1");
    }
    let frames = cfg.objective.frames(cfg);
    if frames > data.steps + 1 {
        bail!(
            "{}: needs clips of {frames} frames, the episodes have {}",
            cfg.objective.name(),
            data.steps + 1
        );
    }
    if cfg.encoder.resolution != data.frame_shape[1] || cfg.encoder.in_channels != data.frame_shape[0] {
        bail!(
            "ssl.encoder expects {}×{}×{} frames, the data has {:?}",
            cfg.encoder.in_channels,
            cfg.encoder.resolution,
            cfg.encoder.resolution,
            data.frame_shape
        );
    }
    let mut cfg = cfg.clone();
    if cfg.encoder.input_mean.is_empty() {
        let (mean, std) = data.channel_stats();
        cfg.encoder.input_mean = mean;
        cfg.encoder.input_std = std;
    }
    let device = crate::train::jepa::cpu_device().autodiff();
    let mut model = stable_param_ids(seeded(&device, cfg.seed, || cfg.init(&device)));
    let mut optim = adamw(cfg.weight_decay, cfg.clip).init();
    let warmup = ((schedule as f64) * cfg.warmup_share) as usize;
    let bar = steps_bar(cfg.objective.name(), steps, show_progress);
    let started = Instant::now();
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for step in 0..steps {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(step as u64 + 1);
        let (clips, _) = if frames >= 2 {
            data.batch(cfg.batch, frames, &mut rng, &device)
        } else {
            // Single frames: windows of 2, the second frame dropped.
            let (w, a) = data.batch(cfg.batch, 2, &mut rng, &device);
            let [b, _, c, h, wd] = w.dims();
            (w.slice([0..b, 0..1, 0..c, 0..h, 0..wd]), a)
        };
        let (loss, terms) = model.loss(&cfg, clips, &mut rng);
        if !terms[0].1.is_finite() {
            bar.abandon();
            bail!(
                "{}: loss is {} at step {step} ({terms:?}); pretraining stopped",
                cfg.objective.name(),
                terms[0].1
            );
        }
        let lr = warmup_cosine(step, schedule, warmup, cfg.lr, cfg.min_lr);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        if cfg.objective.has_target() {
            model = model.update_targets(&cfg, step, schedule);
        }
        if step == 0 {
            first = terms.clone();
        }
        if (step + 1) % 25 == 0 || step + 1 == steps {
            let msg = terms
                .iter()
                .map(|(n, v)| format!("{n} {v:.4}"))
                .collect::<Vec<_>>()
                .join(" ");
            bar.set_message(msg);
        }
        last = terms;
        bar.set_position(step as u64 + 1);
    }
    bar.finish();
    if steps == 0 {
        // Nothing trained: no loss to report.
        first = vec![("total", f32::NAN)];
        last = first.clone();
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Pretrained {
        model: model.valid(),
        config: cfg.clone(),
        steps,
        seconds,
        frames_per_s: (steps * cfg.batch * frames) as f64 / seconds.max(1e-9),
        ms_per_step: seconds * 1e3 / steps.max(1) as f64,
        first,
        last,
    })
}

/// The objective's name and whether it is one of the JEPA family (for tables).
pub fn family(o: Objective) -> &'static str {
    match o {
        Objective::IJepa | Objective::VJepa | Objective::McJepa => "JEPA",
        Objective::Mae => "generative",
        Objective::Energy => "energy-based",
        Objective::Random => "baseline",
        _ => "joint-embedding",
    }
}
