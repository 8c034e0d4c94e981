//! `amisim train`: self-supervised training of the JEPA world model, a custom burn loop.
//!
//! Each step: 1. draw a batch of windows, 2. encode, roll the predictor out open-loop and compute
//! every loss term, 3. stop on a non-finite loss (the last checkpoint stays), 4. backward and an
//! AdamW step with the scheduled learning rate and clipped gradients, 5. log.
//! Checkpoints are single safetensors files holding the weights, the optimizer state, the
//! step and the resolved config, written to a temporary file and renamed.

use super::data::Episodes;
use super::store::{load_weights, module_bytes, read_with_metadata, steps_bar, warmup_cosine, write_atomic};
use crate::perception::EncoderConfig;
use crate::world_model::jepa::{ema_momentum_at, ema_update, Jepa, JepaConfig, LossTerms, LossWeights, LOSS_NAMES};
use anyhow::{bail, Context, Result};
use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything a training run is defined by; saved in every checkpoint.
#[derive(Config, Debug)]
pub struct TrainConfig {
    pub model: JepaConfig,
    #[config(default = 1500)]
    pub steps: usize,
    #[config(default = 32)]
    pub batch: usize,
    /// Frames per training window (the predictor is unrolled `window − 1` steps).
    #[config(default = 17)]
    pub window: usize,
    #[config(default = 1e-3)]
    pub lr: f64,
    #[config(default = 1e-5)]
    pub min_lr: f64,
    #[config(default = 100)]
    pub warmup: usize,
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    /// Each parameter's gradient is clipped to this L2 norm.
    #[config(default = 1.0)]
    pub clip: f32,
    #[config(default = 0)]
    pub seed: u64,
    #[config(default = 50)]
    pub log_every: usize,
    #[config(default = 500)]
    pub checkpoint_every: usize,
}

impl TrainConfig {
    /// The default recipe for frames of `resolution` pixels.
    pub fn default_for(resolution: usize) -> TrainConfig {
        TrainConfig::new(JepaConfig::new(
            EncoderConfig::new().with_resolution(resolution),
            LossWeights::new(),
        ))
    }

    /// Learning rate at `step`: linear warm-up, then cosine decay to `min_lr`.
    pub fn lr_at(&self, step: usize) -> f64 {
        warmup_cosine(step, self.steps, self.warmup, self.lr, self.min_lr)
    }
}

/// Gives every parameter an id derived from its path in the module tree. Burn draws ids at
/// random; the optimizer's state is keyed by id, so a resumed run (a freshly built model with
/// loaded weights) only finds its Adam moments again when ids are the same in every process.
pub fn stable_param_ids<M: Module>(module: M) -> M {
    struct StableIds(Vec<String>);
    impl ModuleMapper for StableIds {
        // Enum variants (the encoder's kind) are not part of the path, as in the checkpoint
        // files: the config says which kind it is.
        fn enter_module(&mut self, name: &str, container_type: &str) {
            if !container_type.starts_with("Enum:") {
                self.0.push(name.to_string());
            }
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            if !container_type.starts_with("Enum:") {
                self.0.pop();
            }
        }
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // FNV-1a of the path.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in self.0.join(".").bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
            param.id = ParamId::from(h);
            param
        }
    }
    module.map(&mut StableIds(Vec::new()))
}

/// Builds a module with its random initial values drawn from `seed`. Burn's seed may be global
/// to the process and parameters are initialised lazily (on first use), so the build and the
/// first touch of every parameter happen under one lock: models built at once on different
/// threads would otherwise draw interleaved values.
pub fn seeded<M: Module>(device: &Device, seed: u64, build: impl FnOnce() -> M) -> M {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let module = build();
    module.visit(&mut Touch);
    module
}

/// The CPU device used for training and inference.
pub fn cpu_device() -> Device {
    Device::flex()
}

/// The device named on the command line: `cpu` (burn's flex backend), or `wgpu` (the default
/// GPU adapter, in builds with the `wgpu` feature).
pub fn device_named(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(cpu_device()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => bail!(
            "--device wgpu: this build has no GPU backend; build with it: cargo run --release --features wgpu -- …"
        ),
        other => bail!("--device {other}: expected cpu or wgpu"),
    }
}

/// Name of the checkpoint file in a run folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// A loaded checkpoint.
pub struct Checkpoint {
    pub config: TrainConfig,
    pub step: usize,
    pub model: Jepa,
    optimizer: Option<Vec<u8>>,
}

/// Writes the model (and optimizer state) at `step` to `path` atomically.
pub fn save_checkpoint(
    path: &Path,
    cfg: &TrainConfig,
    step: usize,
    model: &Jepa,
    optim: Option<&ModuleOptimizer>,
) -> Result<()> {
    let weights = module_bytes(model)?;
    let st = safetensors::SafeTensors::deserialize(&weights)?;
    let optim_bytes: Option<Vec<u8>> = match optim {
        Some(o) => Some(
            o.into_bytes()
                .map_err(|e| anyhow::anyhow!("serialising the optimizer: {e:?}"))?
                .to_vec(),
        ),
        None => None,
    };
    let mut views: Vec<(String, TensorView<'_>)> = st.tensors().into_iter().collect();
    if let Some(b) = &optim_bytes {
        views.push(("__optimizer__".into(), TensorView::new(Dtype::U8, vec![b.len()], b)?));
    }
    let mut meta = HashMap::new();
    meta.insert("amisim.config".to_string(), cfg.to_string());
    meta.insert("amisim.step".to_string(), step.to_string());
    meta.insert("amisim.format".to_string(), "amisim-jepa-v1".to_string());
    write_atomic(path, views, meta)
}

/// Reads a checkpoint. With `expected`, its model config must match (a clear error names the
/// difference otherwise).
pub fn load_checkpoint(path: &Path, expected: Option<&JepaConfig>, device: &Device) -> Result<Checkpoint> {
    let (bytes, meta) = read_with_metadata(path, "checkpoint")?;
    let config_json = meta.get("amisim.config").with_context(|| {
        format!(
            "{}: not an amisim checkpoint (no amisim.config metadata)",
            path.display()
        )
    })?;
    // Entries added to the config after the checkpoint was written take their defaults.
    let mut saved: serde_json::Value = serde_json::from_str(config_json)
        .with_context(|| format!("{}: the saved config is not JSON", path.display()))?;
    let defaults: serde_json::Value =
        serde_json::from_str(&TrainConfig::default_for(EncoderConfig::new().resolution).to_string())?;
    fill_missing(&mut saved, &defaults, "", &mut Vec::new());
    let config: TrainConfig = serde_json::from_value(saved)
        .with_context(|| format!("{}: the saved config does not parse", path.display()))?;
    if let Some(exp) = expected {
        check_model_config(path, &config.model, exp)?;
    }
    config
        .model
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let step: usize = meta.get("amisim.step").and_then(|s| s.parse().ok()).unwrap_or(0);
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let optimizer = st.tensor("__optimizer__").ok().map(|t| t.data().to_vec());
    let model = load_weights(stable_param_ids(config.model.init(device)), bytes, path)?;
    Ok(Checkpoint {
        config,
        step,
        model,
        optimizer,
    })
}

/// Fails, naming every differing entry, when a checkpoint's model config is not `expected`.
fn check_model_config(path: &Path, saved: &JepaConfig, expected: &JepaConfig) -> Result<()> {
    if saved == expected {
        return Ok(());
    }
    let a: serde_json::Value = serde_json::from_str(&saved.to_string())?;
    let b: serde_json::Value = serde_json::from_str(&expected.to_string())?;
    let mut diffs = Vec::new();
    json_diff("model", &a, &b, &mut diffs);
    bail!(
        "{}: the checkpoint's model config differs from the requested one: {}",
        path.display(),
        diffs.join("; ")
    );
}

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
    if let Err(e) = cfg.model.validate() {
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
    let resumed = if resume {
        Some(load_checkpoint(&ckpt_path, None, &device)?)
    } else {
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
    std::fs::write(out.join("config.json"), cfg.to_string())?;
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
    for step in start..cfg.steps {
        // The batch of step `s` depends only on (seed, s), so a resumed run sees the same data.
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(step as u64 + 1);
        let (frames, actions) = data.batch(cfg.batch, cfg.window, &mut rng, &device);
        let (loss, terms) = model.loss(frames, actions, &cfg.model);
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

/// A config file (JSON, as a run writes to `config.json`). Entries added to the config after
/// the file was written take their values from `defaults`, as a checkpoint's do; anything else
/// that does not parse is an error naming the file.
pub fn read_config_file<C: serde::Serialize + serde::de::DeserializeOwned>(path: &Path, defaults: C) -> Result<C> {
    let named = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| named(&e))?;
    let mut v: serde_json::Value = serde_json::from_str(&text).map_err(|e| named(&e))?;
    let mut filled = Vec::new();
    fill_missing(&mut v, &serde_json::to_value(defaults)?, "", &mut filled);
    if !filled.is_empty() {
        eprintln!(
            "{}: not in the file, defaults used: {}",
            path.display(),
            filled.join(", ")
        );
    }
    serde_json::from_value(v).map_err(|e| named(&e))
}

/// Adds to `value` every object entry of `defaults` it lacks, recursively, and names each
/// one added (`model.spatial_anchor`) in `filled`; `at` is the path of `value`.
fn fill_missing(value: &mut serde_json::Value, defaults: &serde_json::Value, at: &str, filled: &mut Vec<String>) {
    if let (serde_json::Value::Object(v), serde_json::Value::Object(d)) = (value, defaults) {
        for (k, dv) in d {
            let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            match v.get_mut(k) {
                Some(vv) => fill_missing(vv, dv, &path, filled),
                None => {
                    v.insert(k.clone(), dv.clone());
                    filled.push(path);
                }
            }
        }
    }
}

/// Lists the leaves where two JSON trees differ, as `path: checkpoint A, requested B`.
fn json_diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                json_diff(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path}: checkpoint {a}, requested {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_config_entries_take_defaults() {
        let mut saved = serde_json::json!({"a": 1, "b": {"c": 2}});
        let defaults = serde_json::json!({"a": 9, "b": {"c": 9, "d": 3}, "e": 4});
        fill_missing(&mut saved, &defaults, "", &mut Vec::new());
        assert_eq!(saved, serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4}));
    }

    #[test]
    fn learning_rate_warms_up_then_decays_to_min() {
        let cfg = TrainConfig::default_for(65)
            .with_steps(1000)
            .with_warmup(100)
            .with_lr(1e-3)
            .with_min_lr(1e-5);
        assert!((cfg.lr_at(0) - 1e-5).abs() < 1e-12);
        assert!((cfg.lr_at(99) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(100) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(550) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-9);
        assert!((cfg.lr_at(1000) - 1e-5).abs() < 1e-12);
    }
}
